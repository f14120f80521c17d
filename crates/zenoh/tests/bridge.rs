//! Two bridge processes (the crate's `shmkit-bridge`) standing for two hosts that
//! share nothing but a TCP connection on 127.0.0.1: a producer on one side, consumers
//! on the other; the importing bridge is killed (SIGKILL) and restarted mid-stream.
//! Each side's objects have their own names; Zenoh's shared memory is not built. One
//! test (as root) goes further: each side runs in a mount namespace with a private
//! `/dev/shm`, both using the same names.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_testkit::{stress, unique_name, ShmCleanup};
use shmkit_typed::topic::{Block, ReadError, Topic, TopicConfig};
use shmkit_typed::{Channel, RecvError, SendError};
use shmkit_zenoh::state::{export_state_name, state_name, ImportState, StateValue};

const DEADLINE: Duration = Duration::from_secs(120);

/// A bridge process; killed (SIGKILL) if still running when dropped.
struct Bridge {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Bridge {
    /// Starts and waits until the bridge says it is exporting or importing.
    fn start(args: &[&str]) -> Bridge {
        let b = Bridge::spawn(args);
        b.expect_line(|l| l.contains("exporting") || l.contains("importing"));
        b
    }

    /// Starts without waiting for the bridge to be ready (its stderr lines are echoed
    /// to the test's output and kept for [`Bridge::expect_line`]).
    fn spawn(args: &[&str]) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shmkit-bridge"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmkit-bridge");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[bridge] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Bridge { child, stderr }
    }

    /// Waits (bounded) for a stderr line that `f` accepts; returns it.
    fn expect_line(&self, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("bridge said nothing expected within 30 s: {e}"),
            }
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the counters line it prints.
    fn stop(mut self) -> String {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let line = self.expect_line(|l| l.contains("delivered="));
        let _ = self.child.wait();
        line
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn as_str(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The names of the exported object (`<prefix>-a`) and of the one imported into
/// (`<prefix>-b`), each unique, with the guards that remove them and the bridges'
/// state objects beside them.
fn sides(prefix: &str) -> (String, String, [ShmCleanup; 4]) {
    let (a, b) = (
        unique_name(&format!("{prefix}-a")),
        unique_name(&format!("{prefix}-b")),
    );
    let clean = [
        ShmCleanup::new(&a),
        ShmCleanup::new(&b),
        ShmCleanup::new(&state_name(&b)),
        ShmCleanup::new(&export_state_name(&a)),
    ];
    (a, b, clean)
}

/// The importer's persisted state for the object `b` it imports into.
fn import_state(b: &str) -> ImportState {
    StateValue::open(&state_name(b))
        .expect("state")
        .get()
        .expect("get")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

/// The arguments of an exporting bridge (`kind:a`, listening on a free loopback port)
/// and of its importer (into `kind:b`, connecting to it), on a key named after `a`.
fn bridge_args(kind: &str, a: &str, b: &str) -> ([String; 6], [String; 6]) {
    let key = format!("shmkit/test/{a}");
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    let export = [
        "--export".into(),
        format!("{kind}:{a}"),
        "--key".into(),
        key.clone(),
        "--listen".into(),
        listen.clone(),
    ];
    let import = [
        "--import".into(),
        key,
        "--into".into(),
        format!("{kind}:{b}"),
        "--connect".into(),
        listen,
    ];
    (export, import)
}

/// Sends `0..n` into `tx` from a thread while [`consume`] reads `rx`, the last third
/// only after `mid` has run (once a third has arrived), so that the last third crosses
/// whatever `mid` changed: a restarted bridge, a new connection. (Else every message
/// could be across, or taken by a bridge that `mid` kills, before `mid`: about one
/// test run in 20 to 25 ended early or waited for ever.) A send that finds no receiver
/// (an exporter between its kill and its restart) is retried. Returns how many values
/// arrived, and `tx`, kept open until the caller is done.
fn stream_around(
    tx: Channel<u64>,
    rx: &Channel<u64>,
    n: u64,
    mut mid: impl FnMut(),
) -> (u64, Channel<u64>) {
    let (after_mid, is_after_mid) = std::sync::mpsc::channel::<()>();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            if i == n - n / 3 {
                is_after_mid.recv().expect("mid");
            }
            let mut msg = i;
            loop {
                match tx.send_timeout(msg, DEADLINE) {
                    Ok(()) => break,
                    Err(SendError::Disconnected(m)) => {
                        msg = m;
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
        }
        tx
    });
    let seen = consume(rx, n, || {
        mid();
        after_mid.send(()).expect("producer");
    });
    (seen, producer.join().expect("producer"))
}

#[test]
fn channel_exactly_once_across_an_importer_kill() {
    let n = stress(3_000, 100_000) as u64;
    let (a, b, _clean) = sides("zch");
    let tx = Channel::<u64>::create(&a, 1 << 16).expect("channel a");
    let rx = Channel::<u64>::create(&b, 1 << 16).expect("channel b");
    let (export, import) = bridge_args("channel", &a, &b);
    let exporter = Bridge::start(&as_str(&export));
    let mut importer = Some(Bridge::start(&as_str(&import)));
    let (seen, _tx) = stream_around(tx, &rx, n, || {
        importer.take().expect("importer").kill9();
        importer = Some(Bridge::start(&as_str(&import)));
    });
    let line = importer.take().expect("importer").stop();
    drop(exporter);
    let missing = assert_losses_reported(n, seen, &b, &line);
    assert!(
        missing <= 1,
        "more than the one pending put lost: {missing}"
    );
}

/// That the `n - seen` values lost on the way into `b` are no more than the gaps its
/// importer reported (`line`: its last stats); returns how many were lost.
fn assert_losses_reported(n: u64, seen: u64, b: &str, line: &str) -> u64 {
    let (missing, gaps) = (n - seen, import_state(b).gaps);
    assert!(
        missing <= gaps,
        "{missing} messages lost but {gaps} gaps reported ({line})"
    );
    missing
}

#[test]
fn topic_two_readers_across_an_importer_kill() {
    let n = stress(2_000, 100_000) as u64;
    let (a, b, _clean) = sides("ztp");
    let mut writer = Topic::<Block>::create(&a, TopicConfig::new(1 << 16)).expect("topic a");
    let far = Topic::<Block>::create(&b, TopicConfig::new(1 << 16)).expect("topic b");
    let (export, import) = bridge_args("topic", &a, &b);
    let (mut exporter, mut producer) = (None, None);
    topic_far_side(&b, n, &as_str(&import), || {
        exporter = Some(Bridge::start(&as_str(&export)));
        producer = Some(std::thread::spawn(move || {
            for i in 0..n {
                writer.write(&i.to_le_bytes()).expect("write");
            }
            writer
        }));
    });
    let _writer = producer.expect("started").join().expect("producer");
    drop(exporter);
    drop(far);
}

/// The far side of a topic test: two readers of the topic `b` subscribed before
/// anything is imported, then `near()` (the exporting side starts), then the importing
/// bridge (`import`), killed and restarted once reader 0 has seen a third. Every
/// reader sees values only grow (no duplicate, no reordering) and loses no more than
/// the gaps the importer reports.
fn topic_far_side(b: &str, n: u64, import: &[&str], near: impl FnOnce()) {
    let end = Instant::now() + DEADLINE;
    let (seen_tx, seen_rx) = mpsc::channel::<(usize, u64)>();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let t = Topic::<Block>::open(b).expect("open b");
            let seen_tx = seen_tx.clone();
            let (ok_tx, ok_rx) = mpsc::channel();
            let h = std::thread::spawn(move || {
                let mut sub = t.subscribe().expect("subscribe");
                ok_tx.send(()).expect("subscribed");
                let mut buf = Vec::new();
                let mut last: Option<u64> = None;
                let mut count = 0u64;
                while last != Some(n - 1) {
                    let left = end
                        .checked_duration_since(Instant::now())
                        .expect("deadline passed");
                    match sub.read_into_timeout(&mut buf, left) {
                        Ok(_) => {}
                        // The importer (the writer) was killed: a new one takes over.
                        Err(ReadError::PeerDied { .. }) => continue,
                        Err(e) => panic!("reader {r}: {e} after {count} (last {last:?})"),
                    }
                    let v = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                    assert!(
                        last.is_none_or(|l| v > l),
                        "reader {r}: duplicate or reordered {v} after {last:?}"
                    );
                    last = Some(v);
                    count += 1;
                    let _ = seen_tx.send((r, count));
                }
                count
            });
            ok_rx.recv().expect("reader subscribed");
            h
        })
        .collect();
    drop(seen_tx);
    near();
    let mut importer = Some(Bridge::start(import));
    // Kill the importer once reader 0 has seen a third.
    while let Ok((r, count)) = seen_rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if r == 0 && count == n / 3 {
            importer.take().expect("importer").kill9();
            importer = Some(Bridge::start(import));
            break;
        }
    }
    let counts: Vec<u64> = readers
        .into_iter()
        .map(|h| h.join().expect("reader"))
        .collect();
    let line = importer.take().expect("importer").stop();
    for c in counts {
        assert_losses_reported(n, c, b, &line);
    }
}

#[test]
fn clear_errors() {
    let (a, b) = (unique_name("zer-a"), unique_name("zer-b"));
    let _clean = [ShmCleanup::new(&a), ShmCleanup::new(&b)];
    let _ch = Channel::<u64>::create(&a, 4096).expect("channel");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shmkit-bridge"))
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let port = format!("tcp/127.0.0.1:{}", free_port());
    let (code, err) = run(&[
        "--export",
        &format!("channel:{a}"),
        "--key",
        "a/*/b",
        "--listen",
        &port,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad key expression"), "{err}");
    let (code, err) = run(&[
        "--export",
        &format!("ring:{a}"),
        "--key",
        "a/b",
        "--listen",
        &port,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot open the local object"), "{err}");
    let (code, err) = run(&[
        "--export",
        &format!("channel:{b}"),
        "--key",
        "a/b",
        "--listen",
        &port,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&b), "{err}");
    // Nobody listens there: retried with backoff, said on stderr.
    let lonely = Bridge::spawn(&[
        "--import",
        "a/b",
        "--into",
        &format!("channel:{a}"),
        "--connect",
        &port,
    ]);
    lonely.expect_line(|l| l.contains("cannot reach") && l.contains("retrying"));
    lonely.kill9();
}

/// A TCP relay on 127.0.0.1 between an importer and its exporter, whose connections
/// the test can cut (both directions shut down; the relay keeps listening, so the
/// importer's session reconnects through it).
struct Relay {
    port: u16,
    /// The sockets of the connections not cut yet, and how many were made.
    live: std::sync::Arc<std::sync::Mutex<(Vec<std::net::TcpStream>, usize)>>,
}

impl Relay {
    fn new(to: u16) -> Relay {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = l.local_addr().expect("addr").port();
        let live = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), 0)));
        let conns = live.clone();
        std::thread::spawn(move || {
            for a in l.incoming() {
                let Ok(a) = a else { return };
                let Ok(b) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                };
                let mut v = conns.lock().expect("relay list");
                v.0.push(a.try_clone().expect("clone"));
                v.0.push(b.try_clone().expect("clone"));
                v.1 += 1;
                pipe(a.try_clone().expect("clone"), b.try_clone().expect("clone"));
                pipe(b, a);
            }
        });
        Relay { port, live }
    }

    /// Cuts every connection made so far.
    fn cut(&self) {
        for s in self.live.lock().expect("relay list").0.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Connections made through the relay so far.
    fn connections(&self) -> usize {
        self.live.lock().expect("relay list").1
    }
}

/// Reads `b` until the value `n - 1`, checking that values only grow (no duplicate,
/// no reordering) and calling `mid` once a third has been seen; returns how many
/// values arrived.
fn consume(rx: &Channel<u64>, n: u64, mut mid: impl FnMut()) -> u64 {
    let end = Instant::now() + DEADLINE;
    let (mut seen, mut last): (u64, Option<u64>) = (0, None);
    let mut done_mid = false;
    while last != Some(n - 1) {
        let left = end
            .checked_duration_since(Instant::now())
            .expect("deadline passed");
        let v = match rx.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvError::Timeout) => panic!("timed out after {seen} messages (last {last:?})"),
            Err(RecvError::Disconnected) => continue,
            Err(e) => panic!("recv: {e}"),
        };
        assert!(
            last.is_none_or(|l| v > l),
            "duplicate or reordered: {v} after {last:?}"
        );
        last = Some(v);
        seen += 1;
        if !done_mid && seen == n / 3 {
            mid();
            done_mid = true;
        }
    }
    seen
}

#[test]
fn channel_across_a_dropped_connection() {
    let n = stress(3_000, 100_000) as u64;
    let (a, b, _clean) = sides("zdc");
    let tx = Channel::<u64>::create(&a, 1 << 16).expect("channel a");
    let rx = Channel::<u64>::create(&b, 1 << 16).expect("channel b");
    let (export, mut import) = bridge_args("channel", &a, &b);
    let port: u16 = export[5].rsplit(':').next().unwrap().parse().expect("port");
    let relay = Relay::new(port);
    import[5] = format!("tcp/127.0.0.1:{}", relay.port);
    let exporter = Bridge::start(&as_str(&export));
    let importer = Bridge::start(&as_str(&import));
    // The last third crosses after the cut, through a new connection.
    let (seen, _tx) = stream_around(tx, &rx, n, || relay.cut());
    let line = importer.stop();
    drop(exporter);
    // Both bridges kept running: what the exporter held was resent, nothing is lost.
    assert_eq!(
        seen, n,
        "messages lost across a dropped connection ({line})"
    );
    assert!(
        relay.connections() >= 2,
        "the importer did not reconnect after the cut"
    );
    let state = import_state(&b);
    assert_eq!(state.gaps, 0, "{line}");
}

#[test]
fn channel_gap_reported_across_an_exporter_kill() {
    let n = stress(3_000, 100_000) as u64;
    let (a, b, _clean) = sides("zek");
    let tx = Channel::<u64>::create(&a, 1 << 16).expect("channel a");
    let rx = Channel::<u64>::create(&b, 1 << 16).expect("channel b");
    let (export, import) = bridge_args("channel", &a, &b);
    let mut exporter = Some(Bridge::start(&as_str(&export)));
    let importer = Bridge::start(&as_str(&import));
    // The exporter killed with messages in flight (taken from `a`, not acknowledged):
    // those are lost, and must be counted as gaps.
    let (seen, _tx) = stream_around(tx, &rx, n, || {
        exporter.take().expect("exporter").kill9();
        exporter = Some(Bridge::start(&as_str(&export)));
    });
    let line = importer.stop();
    drop(exporter);
    // The exporter records a message's sequence number before it claims the message
    // (docs/distributed.md, "Exporter restart"): every lost message is counted. (Before
    // it did, one run in 40 lost one uncounted: killed between claim and record.)
    assert_losses_reported(n, seen, &b, &line);
}

/// Messages larger than Zenoh's batch arrive in fragments (several slices): they are
/// copied from those into the local ring, byte for byte.
#[test]
fn ring_large_messages_from_fragments() {
    let (a, b, _clean) = sides("zlg");
    let mut tx = shmkit_typed::Ring::create(&a, 1 << 22).expect("ring a");
    let mut rx = shmkit_typed::Ring::create(&b, 1 << 22).expect("ring b");
    let (export, import) = bridge_args("ring", &a, &b);
    let _exporter = Bridge::start(&as_str(&export));
    let importer = Bridge::start(&as_str(&import));
    // 150,000 bytes: three fragments or more.
    let msg = |i: u32| -> Vec<u8> {
        (0..150_000u32)
            .map(|k| (k.wrapping_mul(31) ^ i) as u8)
            .collect()
    };
    let n = 20;
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            tx.write(&msg(i)).expect("write");
        }
        tx
    });
    let mut buf = Vec::new();
    for i in 0..n {
        rx.read_into_timeout(&mut buf, DEADLINE).expect("read");
        assert!(buf == msg(i), "message {i} differs ({} bytes)", buf.len());
    }
    let _tx = producer.join().expect("producer");
    drop(importer);
}

/// The two sides of [`channel_between_two_private_dev_shm`], each re-executed from
/// this test binary inside its own mount namespace with a tmpfs of its own on
/// `/dev/shm` (`unshare --mount`), so that the side and the bridge it starts share
/// nothing with the other side but TCP on 127.0.0.1. Its stdin stays open until the
/// test closes it.
fn spawn_side(test: &str, role: &str, env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("this test binary");
    let script = r#"mount -t tmpfs -o mode=1777,size=256m shmkit-side /dev/shm && exec "$@""#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(exe)
        .args([test, "--exact", "--test-threads=1", "--quiet"])
        .env(shmkit_testkit::ROLE_ENV, role)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn unshare")
}

/// A side of the private-`/dev/shm` tests, for the object kind `ZNS_KIND`
/// (`channel` or `topic`): `export` creates the object `ZNS_NAME`, exports it and
/// writes `ZNS_N` values, then waits for its stdin to close; `import` creates an
/// object of the *same name* (possible only if the other side's is not visible),
/// imports into it and takes the values (a channel: one receiver; a topic: two
/// readers), across a kill and restart of its bridge a third of the way.
fn run_side(role: &str) {
    let var = |k: &str| std::env::var(k).expect(k);
    let (kind, name, listen) = (var("ZNS_KIND"), var("ZNS_NAME"), var("ZNS_LISTEN"));
    let n: u64 = var("ZNS_N").parse().expect("ZNS_N");
    let key = format!("shmkit/test/{name}");
    let object = format!("{kind}:{name}");
    let config = TopicConfig::new(1 << 16);
    if role == "export" {
        let export = ["--export", &object, "--key", &key, "--listen", &listen];
        // The object and the bridge live until the stdin read below.
        let (_object, _bridge): (Box<dyn std::any::Any>, Bridge) = if kind == "topic" {
            let mut t = Topic::<Block>::create(&name, config).expect("the same name on each side");
            let bridge = Bridge::start(&export);
            (0..n).for_each(|i| t.write(&i.to_le_bytes()).expect("write"));
            (Box::new(t), bridge)
        } else {
            let ch = Channel::<u64>::create(&name, 1 << 16).expect("the same name on each side");
            let bridge = Bridge::start(&export);
            (0..n).for_each(|i| ch.send_timeout(i, DEADLINE).expect("send"));
            (Box::new(ch), bridge)
        };
        // Until the importing side got everything (the test closes our stdin).
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
        return;
    }
    let args = ["--import", &key, "--into", &object, "--connect", &listen];
    if kind == "topic" {
        let _far = Topic::<Block>::create(&name, config).expect("the same name on each side");
        return topic_far_side(&name, n, &args, || {});
    }
    let ch = Channel::<u64>::create(&name, 1 << 16).expect("the same name on each side");
    let mut bridge = Some(Bridge::start(&args));
    // Values only grow (no duplicate, no reordering) across a kill of the bridge.
    let seen = consume(&ch, n, || {
        bridge.take().expect("importer").kill9();
        bridge = Some(Bridge::start(&args));
    });
    let line = bridge.take().expect("importer").stop();
    let missing = assert_losses_reported(n, seen, &name, &line);
    assert!(
        missing <= 1,
        "more than the one pending put lost: {missing}"
    );
}

/// As two hosts: each side (its process and its bridge) in a mount namespace of its
/// own with a private `/dev/shm` (root only: `unshare`), both using the same object
/// name; only the TCP connection crosses. The importing bridge is killed and
/// restarted mid-stream: no duplicate, any loss reported as a gap. Nothing of either
/// side reaches this process's `/dev/shm`.
fn two_private_dev_shm(test: &str, kind: &str) {
    if let Some(role) = shmkit_testkit::child_role() {
        return run_side(&role);
    }
    let unshare = Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !shmkit_testkit::skip_or_fail(
        shmkit_testkit::is_root() && unshare,
        "needs root and unshare(1) to give each side a private /dev/shm",
    ) {
        return;
    }
    let n = stress(3_000, 100_000).to_string();
    let name = unique_name(&format!("zns-{kind}"));
    let listen = format!("tcp/127.0.0.1:{}", free_port());
    let env = [
        ("ZNS_KIND", kind),
        ("ZNS_NAME", name.as_str()),
        ("ZNS_LISTEN", &listen),
        ("ZNS_N", &n),
    ];
    let mut export = spawn_side(test, "export", &env);
    let mut import = spawn_side(test, "import", &env);
    let got = import.wait().expect("wait for the importing side");
    drop(export.stdin.take()); // the exporting side may go now
    let sent = export.wait().expect("wait for the exporting side");
    assert!(got.success(), "importing side failed: {got}");
    assert!(sent.success(), "exporting side failed: {sent}");
    for own in [name.clone(), state_name(&name), export_state_name(&name)] {
        assert!(
            !std::path::Path::new("/dev/shm").join(&own).exists(),
            "{own} reached the host's /dev/shm"
        );
    }
}

/// [`two_private_dev_shm`] for a channel (one receiver on the far side).
#[test]
fn channel_between_two_private_dev_shm() {
    two_private_dev_shm(
        shmkit_testkit::test_path!(channel_between_two_private_dev_shm),
        "channel",
    );
}

/// [`two_private_dev_shm`] for a topic (two readers on the far side).
#[test]
fn topic_between_two_private_dev_shm() {
    two_private_dev_shm(
        shmkit_testkit::test_path!(topic_between_two_private_dev_shm),
        "topic",
    );
}
