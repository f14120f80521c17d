//! `--zenoh`: shmkit's Zenoh bridge against plain Zenoh pub/sub, TCP on loopback,
//! between two processes, in the same JSON rows as the other cases.
//!
//! - `zenoh`: a publisher (congestion control `Block`) in one process, a subscriber
//!   (its default FIFO handler) in the other: no shmkit in the path.
//! - `zenoh-bridge`: the sender writes a shmkit `Ring` whose exporter (threads of
//!   `shmkit_zenoh::bridge::export`) runs in the sender's process; the importer (in
//!   the receiver's process) writes another `Ring`, which the receiver reads. So a
//!   message goes ring → bridge → Zenoh → bridge → ring, with the same two processes.
//!
//! Zenoh's runtime does not survive `fork`, so unlike the other cases each side is a
//! new process of this executable (`--zenoh-role`), started by the measuring process,
//! which never opens Zenoh itself. Throughput: `count` verified messages one way, timed
//! by the receiver from the first message to the last. Round trips: `rounds` verified
//! ping-pongs after 100 unmeasured ones, timed by the pinging process.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmkit_cli::bench::Pattern;
use shmkit_cli::bench::{self, CaseResult};
use shmkit_typed::Ring;
use shmkit_zenoh::bridge::{self as zbridge, Bridge};
use shmkit_zenoh::ZenohOptions;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

const WARMUP: usize = 100;
const WINDOW: u32 = zbridge::DEFAULT_WINDOW;

/// The sending half of a link (a bridged one keeps its exporter running; its state is
/// removed at the end).
enum Out {
    Plain(Publisher<'static>),
    Bridged(Ring, #[allow(dead_code)] Bridge),
}

/// The receiving half of a link (a bridged one keeps its importer running, and the
/// ring's name, to remove the importer's state at the end).
enum In {
    Plain(Subscriber<FifoChannelHandler<Sample>>),
    Bridged(Ring, #[allow(dead_code)] Bridge, String),
}

fn ring_name(tag: &str) -> String {
    format!("shmkit-bench-zenoh-{}-{tag}", std::process::id())
}

fn out(session: &Session, key: &str, bridged: bool) -> Out {
    if bridged {
        let name = ring_name("out");
        let ring = Ring::create(&name, 1 << 22).expect("ring");
        let b = zbridge::export(
            session,
            &format!("ring:{name}").parse().expect("spec"),
            key,
            WINDOW,
        )
        .expect("export");
        Out::Bridged(ring, b)
    } else {
        let p = session
            .declare_publisher(key.to_owned())
            .congestion_control(CongestionControl::Block)
            .wait()
            .expect("publisher");
        // Set-up, not measured: until the far subscriber is known, puts go nowhere.
        let end = Instant::now() + Duration::from_secs(30);
        while !p.matching_status().wait().expect("matching").matching() {
            assert!(Instant::now() < end, "no subscriber matched within 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        Out::Plain(p)
    }
}

fn inp(session: &Session, key: &str, bridged: bool) -> In {
    if bridged {
        let name = ring_name("in");
        let ring = Ring::create(&name, 1 << 22).expect("ring");
        let b = zbridge::import(
            session,
            key,
            &format!("ring:{name}").parse().expect("spec"),
            WINDOW,
        )
        .expect("import");
        In::Bridged(ring, b, name)
    } else {
        In::Plain(
            session
                .declare_subscriber(key.to_owned())
                .wait()
                .expect("subscriber"),
        )
    }
}

impl Out {
    fn send(&mut self, msg: &[u8]) {
        match self {
            Out::Plain(p) => p.put(msg.to_vec()).wait().expect("put"),
            Out::Bridged(r, ..) => r.write(msg).expect("ring write"),
        }
    }
}

impl In {
    fn recv(&mut self, f: impl FnOnce(&[u8]) -> bool) -> bool {
        match self {
            In::Plain(s) => f(&s.recv().expect("sample").payload().to_bytes()),
            In::Bridged(r, ..) => r.read_with(f).expect("ring read"),
        }
    }
}

fn remove_state(name: &str) {
    let _ = std::fs::remove_file(format!(
        "/dev/shm/{}",
        shmkit_zenoh::state::state_name(name)
    ));
}

impl Drop for Out {
    fn drop(&mut self) {
        if let Out::Bridged(..) = self {
            let _ = std::fs::remove_file(format!(
                "/dev/shm/{}",
                shmkit_zenoh::state::export_state_name(&ring_name("out"))
            ));
        }
    }
}

impl Drop for In {
    fn drop(&mut self) {
        if let In::Bridged(_, _, name) = self {
            remove_state(name);
        }
    }
}

/// One side, in its own process: `role` is `rx`/`tx` (throughput) or `pong`/`ping`.
/// Prints `ready` once listening, and its figures as the last line.
pub fn role(role: &str, bridged: bool, size: usize, count: usize, port: u16) {
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let opts = match role {
        "rx" | "pong" => ZenohOptions::listen(&endpoint),
        _ => ZenohOptions::connect(&endpoint),
    };
    let session = opts.open().expect("zenoh session");
    let pattern = Pattern::new(size);
    let mut buf = vec![0u8; size];
    let say = |s: &str| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    };
    match role {
        "rx" => {
            let mut rx = inp(&session, "bench/a", bridged);
            say("ready");
            let mut ok = rx.recv(|m| pattern.check(m, 0));
            let t = Instant::now();
            for seq in 1..count as u64 {
                ok &= rx.recv(|m| pattern.check(m, seq));
            }
            assert!(ok, "a message arrived corrupted");
            say(&format!(
                "{}",
                (count - 1) as f64 / t.elapsed().as_secs_f64()
            ));
        }
        "tx" => {
            let mut tx = out(&session, "bench/a", bridged);
            for seq in 0..count as u64 {
                pattern.fill(&mut buf, seq);
                tx.send(&buf);
            }
            say("sent");
            // Stay until the receiver is done (the bridge holds unacknowledged ones).
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "pong" => {
            let mut rx = inp(&session, "bench/ping", bridged);
            let mut tx = out_after_ready(&session, "bench/pong", bridged, &say);
            for seq in 0..(count + WARMUP) as u64 {
                assert!(rx.recv(|m| pattern.check(m, seq)), "ping corrupted");
                pattern.fill(&mut buf, seq);
                tx.send(&buf);
            }
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "ping" => {
            let mut rx = inp(&session, "bench/pong", bridged);
            let mut tx = out(&session, "bench/ping", bridged);
            let mut rtts = Vec::with_capacity(count);
            for seq in 0..(count + WARMUP) as u64 {
                let t = Instant::now();
                pattern.fill(&mut buf, seq);
                tx.send(&buf);
                assert!(rx.recv(|m| pattern.check(m, seq)), "pong corrupted");
                if seq as usize >= WARMUP {
                    rtts.push(t.elapsed().as_nanos() as u64);
                }
            }
            rtts.sort_unstable();
            say(&format!(
                "{} {}",
                bench::percentile(&rtts, 50.0),
                bench::percentile(&rtts, 99.0)
            ));
        }
        _ => panic!("unknown role {role}"),
    }
}

/// `pong` says ready before its publisher waits for a match (the pinger connects only
/// after `ready`).
fn out_after_ready(session: &Session, key: &str, bridged: bool, say: &dyn Fn(&str)) -> Out {
    say("ready");
    out(session, key, bridged)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn spawn(
    role: &str,
    bridged: bool,
    size: usize,
    count: usize,
    port: u16,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut c = Command::new(std::env::current_exe().expect("exe"))
        .args(["--zenoh-role", role, "--size", &size.to_string()])
        .args([
            "--zenoh-count",
            &count.to_string(),
            "--zenoh-port",
            &port.to_string(),
        ])
        .args(bridged.then_some("--zenoh-bridged"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a role");
    let out = BufReader::new(c.stdout.take().expect("stdout"));
    (c, out)
}

fn line(r: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("read a role's line");
    assert!(!s.is_empty(), "a role ended early");
    s.trim().to_owned()
}

fn finish(mut c: Child) {
    drop(c.stdin.take());
    let st = c.wait().expect("wait");
    assert!(st.success(), "a role failed: {st}");
}

fn throughput(bridged: bool, size: usize, count: usize) -> f64 {
    let port = free_port();
    let (rx, mut rx_out) = spawn("rx", bridged, size, count, port);
    assert_eq!(line(&mut rx_out), "ready");
    let (tx, mut tx_out) = spawn("tx", bridged, size, count, port);
    let rate: f64 = line(&mut rx_out).parse().expect("rate");
    assert_eq!(line(&mut tx_out), "sent");
    finish(tx);
    finish(rx);
    rate
}

fn rtt(bridged: bool, size: usize, rounds: usize) -> (u64, u64) {
    let port = free_port();
    let (pong, mut pong_out) = spawn("pong", bridged, size, rounds, port);
    assert_eq!(line(&mut pong_out), "ready");
    let (ping, mut ping_out) = spawn("ping", bridged, size, rounds, port);
    let l = line(&mut ping_out);
    let (m, p) = l.split_once(' ').expect("two figures");
    finish(ping);
    finish(pong);
    (m.parse().expect("median"), p.parse().expect("p99"))
}

/// Runs both cases at every size, `repeats` times each (medians reported).
pub fn run(sizes: &[usize], repeats: usize, quick: bool) -> Vec<CaseResult> {
    let mut rows = Vec::new();
    for &size in sizes {
        let small = size <= 1024;
        let count = match (small, quick) {
            (true, true) => 50_000,
            (true, false) => 200_000,
            (false, true) => 2_000,
            (false, false) => 10_000,
        };
        let rounds = if quick { 1_000 } else { 5_000 };
        for (name, bridged) in [("zenoh", false), ("zenoh-bridge", true)] {
            let mut rates = Vec::new();
            let mut meds = Vec::new();
            let mut p99s = Vec::new();
            for _ in 0..repeats {
                eprint!("\r\x1b[2K{name} {} ...", bench::human_size(size));
                rates.push(throughput(bridged, size, count));
                let (m, p) = rtt(bridged, size, rounds);
                meds.push(m);
                p99s.push(p);
            }
            eprintln!(
                "\r\x1b[2K{name} {}: messages/s {:?}, rtt median ns {meds:?}, p99 {p99s:?}",
                bench::human_size(size),
                rates.iter().map(|r| *r as u64).collect::<Vec<_>>()
            );
            rates.sort_by(f64::total_cmp);
            meds.sort_unstable();
            p99s.sort_unstable();
            let rate = rates[rates.len() / 2];
            rows.push(CaseResult {
                transport: name,
                size,
                messages_per_s: rate,
                bytes_per_s: rate * size as f64,
                rtt_median_ns: meds[meds.len() / 2],
                rtt_p99_ns: p99s[p99s.len() / 2],
                batched_messages_per_s: None,
            });
        }
    }
    rows
}
