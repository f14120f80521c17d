//! Runs every non-interactive example as a user would and checks what it prints.
//!
//! The examples run as the programs `cargo run --example NAME` builds. Plain
//! `cargo test` builds those programs next to the test binaries, but
//! `cargo test --all-targets` (or `--examples`) builds examples as test harnesses
//! instead, and a program left there by an earlier run may be stale; so the first test
//! that needs one asks cargo to build them (a no-op when they are up to date), with the
//! profile, target directory and target triple this test binary was built with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/[TRIPLE/]PROFILE/examples`, with every example built as a program.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // This binary is target/[TRIPLE/]PROFILE/deps/examples-HASH.
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps")
            .to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|p| p.to_str())
            .expect("a profile directory name");
        // Cargo gives integration tests TARGET_DIR/tmp; a `--target TRIPLE` build puts
        // its profile directories under TARGET_DIR/TRIPLE.
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("a target directory");
        let above = profile_dir.parent().expect("a target directory");
        let triple = if above == target_dir {
            None
        } else {
            above.file_name().and_then(|t| t.to_str())
        };
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--examples", "-p", "shmkit"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        match profile {
            // `cargo test` builds with the test profile into target/debug.
            "debug" => cargo.args(["--profile", "test"]),
            "release" => cargo.arg("--release"),
            other => cargo.args(["--profile", other]),
        };
        if let Some(triple) = triple {
            cargo.args(["--target", triple]);
        }
        let out = cargo.output().expect("run cargo to build the examples");
        assert!(
            out.status.success(),
            "building the examples failed ({:?}):\n{}",
            cargo,
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join("examples")
    })
}

fn example(name: &str) -> PathBuf {
    let path = examples_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing after building the examples",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn tickets_with_the_lock_sells_exactly_the_tickets() {
    let out = run("tickets", &[]);
    assert!(
        out.contains("sold 2000 of 2000 tickets with the lock: 0 oversold"),
        "{out}"
    );
    assert!(out.contains("OK: nothing oversold"), "{out}");
}

#[test]
fn tickets_without_the_lock_runs_and_reports() {
    // Whether the race shows is timing-dependent; the report must be there either way.
    let out = run("tickets", &["--no-lock"]);
    assert!(out.contains("tickets without a lock"), "{out}");
}

#[test]
fn print_lock_keeps_every_line_whole() {
    let out = run("print_lock", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"20 whole lines from 4 processes"),
        "{out}"
    );
    let mut numbers = Vec::new();
    for line in &lines[..lines.len() - 1] {
        // Every line whole: "[line NN] process P says hello number I".
        let rest = line.strip_prefix("[line ").expect("line starts whole");
        let (n, tail) = rest.split_once("] process ").expect("one prefix per line");
        assert!(tail.contains(" says hello number "), "torn line: {line}");
        assert_eq!(tail.matches("says").count(), 1, "interleaved: {line}");
        numbers.push(n.trim().parse::<u32>().expect("line number"));
    }
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>(), "{out}");
}

#[test]
fn ticker_subscribers_see_whole_ticks_in_order_and_count_what_they_missed() {
    let out = run("ticker", &[]);
    assert_eq!(out.matches("all whole and in order").count(), 4, "{out}");
    assert!(
        out.contains("OK: every subscriber saw whole ticks in order, missed ones counted"),
        "{out}"
    );
}

#[test]
fn latest_quote_watchers_see_whole_quotes_and_learn_how_the_feed_went() {
    let out = run("latest_quote", &["--quotes", "20000"]);
    assert_eq!(
        out.matches("0 torn; then the feed left").count(),
        3,
        "{out}"
    );
    assert_eq!(out.matches(") died").count(), 3, "{out}");
    assert!(out.contains("a restarted feed took over"), "{out}");
    assert!(
        out.contains("OK: every watcher saw only whole quotes"),
        "{out}"
    );
}

#[test]
fn job_queue_does_every_job_exactly_once() {
    let out = run("job_queue", &[]);
    assert!(out.contains("OK: every job done exactly once"), "{out}");
}

#[test]
fn channel_jobs_delivers_every_job_once_and_survives_a_killed_consumer() {
    let out = run("channel_jobs", &[]);
    assert!(
        out.contains(
            "clean run: 4000 jobs sent by 2 producers, 4000 done by the consumers, 0 lost, 0 twice"
        ),
        "{out}"
    );
    assert!(out.contains("one consumer killed: 4000 jobs sent"), "{out}");
    assert!(out.contains("(at most the one it was taking)"), "{out}");
}

#[test]
fn python_interop_round_trips() {
    let python = Command::new("python3").arg("--version").output().is_ok();
    if !shmkit_testkit::skip_or_fail(
        python,
        "python3 is not installed (the interop example runs it)",
    ) {
        return;
    }
    let out = run("python_interop", &[]);
    assert!(
        out.contains("python says the sum plus the value is 327"),
        "{out}"
    );
    assert!(out.contains("OK: Rust -> Python -> Rust"), "{out}");
}

#[test]
fn demo_streams_through_the_pair_and_verifies_every_byte() {
    let out = run("demo", &["--count", "20000", "--size", "256", "--no-bench"]);
    assert!(out.contains("reader: 20000 messages"), "{out}");
    assert!(out.contains("every byte verified"), "{out}");
    assert!(out.contains("OK: 20000 messages arrived in order"), "{out}");
}

fn json_last_line(out: &str) -> serde_json::Value {
    let last = out.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

#[test]
fn writer_and_reader_pair_in_either_order() {
    for reader_first in [true, false] {
        let name = format!("shmkit-t-pair-{}-{reader_first}", std::process::id());
        let args = [
            "--name", &name, "--count", "50000", "--size", "100", "--json",
        ];
        let start = |which: &str| {
            Command::new(example(which))
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start")
        };
        let (reader, writer) = if reader_first {
            let r = start("reader");
            (r, start("writer"))
        } else {
            let w = start("writer");
            (start("reader"), w)
        };
        let w = writer.wait_with_output().expect("writer");
        let r = reader.wait_with_output().expect("reader");
        let _ = shmkit::segment::remove(&name);
        assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let v = json_last_line(&String::from_utf8_lossy(&r.stdout));
        assert_eq!(v["messages"], 50000);
        assert_eq!(v["bytes"], 5_000_000);
        assert_eq!(v["verified"], true);
        assert!(v["seconds"].as_f64().is_some());
        assert!(
            !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
            "the pair leaves no segment behind"
        );
    }
}

#[test]
fn producer_consumer_consumes_every_item_once() {
    let out = run("producer_consumer", &[]);
    assert!(
        out.contains("5 producers put 100000 items; 2 consumers got 100000"),
        "{out}"
    );
    assert!(
        out.contains("OK: every item consumed exactly once"),
        "{out}"
    );
}

/// Reads the child's stderr until a line containing `what` (a readiness signal through
/// a pipe, not a sleep); returns the reader to keep the pipe open.
fn wait_for_line(
    child: &mut std::process::Child,
    what: &str,
) -> std::io::BufReader<std::process::ChildStderr> {
    use std::io::BufRead;
    let mut err = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "the child ended before printing {what:?}");
        if line.contains(what) {
            return err;
        }
    }
}

fn rest_of(mut err: std::io::BufReader<std::process::ChildStderr>) -> String {
    use std::io::Read;
    let mut s = String::new();
    err.read_to_string(&mut s).expect("read stderr");
    s
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: kill(2) on our own live child with SIGINT, as Ctrl-C would.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

/// Waits for a child, but kills it and fails after 60 s: a hang must fail the test,
/// not CI (polling an exit status is a watchdog here, not synchronisation).
fn wait_deadline(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A writer with far more to send than the test lets it, or a reader of it.
fn start_side(which: &str, name: &str) -> std::process::Child {
    let stream: &[&str] = if which == "writer" {
        &["--count", "1000000000", "--size", "64"]
    } else {
        &[]
    };
    Command::new(example(which))
        .args(["--name", name])
        .args(stream)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start")
}

#[test]
fn ctrl_c_on_the_writer_lets_the_reader_drain_and_leaves_no_segment() {
    let name = format!("shmkit-t-pair-intw-{}", std::process::id());
    let mut reader = start_side("reader", &name);
    let mut writer = start_side("writer", &name);
    // The reader attaches once the writer's first message tells it what comes.
    let r_err = wait_for_line(&mut reader, "attached");
    let w_err = wait_for_line(&mut writer, "attached");
    interrupt(&writer);
    let w = wait_deadline(&mut writer, "the interrupted writer");
    let r = wait_deadline(&mut reader, "the reader");
    let (w_text, r_text) = (rest_of(w_err), rest_of(r_err));
    let _ = shmkit::segment::remove(&name);
    assert!(
        !w.success() && w_text.contains("interrupted after"),
        "{w_text}"
    );
    assert!(!r.success(), "{r_text}");
    assert!(r_text.contains("the writer stopped early"), "{r_text}");
    assert!(r_text.contains("(all verified)"), "{r_text}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn ctrl_c_on_the_reader_is_reported_by_the_writer_and_leaves_no_segment() {
    let name = format!("shmkit-t-pair-intr-{}", std::process::id());
    let mut writer = start_side("writer", &name);
    let w_err = wait_for_line(&mut writer, "attached");
    let mut reader = start_side("reader", &name);
    let r_err = wait_for_line(&mut reader, "attached");
    interrupt(&reader);
    let r = wait_deadline(&mut reader, "the interrupted reader");
    let w = wait_deadline(&mut writer, "the writer");
    let (w_text, r_text) = (rest_of(w_err), rest_of(r_err));
    let _ = shmkit::segment::remove(&name);
    assert!(
        !r.success() && r_text.contains("interrupted after"),
        "{r_text}"
    );
    assert!(!w.success(), "{w_text}");
    // The interrupted reader left cleanly, and the writer says so.
    assert!(w_text.contains("the reader left after"), "{w_text}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

/// Starts an example with piped stdout and stderr.
fn spawn(which: &str, args: &[&str]) -> std::process::Child {
    Command::new(example(which))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start an example")
}

/// Waits for a child (with the 60 s watchdog of [`wait_deadline`]) and returns its
/// exit status, stdout and stderr. For children that print little: their pipes are
/// read after they exit.
fn finish(
    mut child: std::process::Child,
    what: &str,
) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    let status = wait_deadline(&mut child, what);
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).expect("read stdout");
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    (status, out, err)
}

#[test]
fn a_reader_without_flags_receives_whatever_the_writer_sends() {
    let name = shmkit_testkit::unique_name("pair-noflags");
    let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
    let writer = spawn(
        "writer",
        &[
            "--name", &name, "--count", "3000", "--size", "300", "--json",
        ],
    );
    let reader = spawn("reader", &["--name", &name, "--json"]);
    let (w, _, w_err) = finish(writer, "the writer");
    let (r, r_out, r_err) = finish(reader, "the reader");
    assert!(w.success(), "writer: {w_err}");
    assert!(r.success(), "reader: {r_err}");
    let v = json_last_line(&r_out);
    assert_eq!(v["messages"], 3000, "{r_out}");
    assert_eq!(v["bytes"], 900_000, "{r_out}");
    assert_eq!(v["verified"], true, "{r_out}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn a_reader_that_stops_early_makes_the_writer_exit_saying_how_many_it_read() {
    let name = shmkit_testkit::unique_name("pair-early");
    let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
    // Far more than the ring holds: the writer must notice the reader left, not wedge.
    let writer = spawn(
        "writer",
        &["--name", &name, "--count", "2000000", "--size", "64"],
    );
    let reader = spawn("reader", &["--name", &name, "--count", "2000", "--json"]);
    let (r, r_out, r_err) = finish(reader, "the reader");
    let (w, _, w_err) = finish(writer, "the writer");
    assert!(
        r.success(),
        "a reader that got the 2000 it asked for succeeds: {r_err}"
    );
    let v = json_last_line(&r_out);
    assert_eq!(v["messages"], 2000, "{r_out}");
    assert_eq!(v["verified"], true, "{r_out}");
    assert!(
        !w.success(),
        "the writer could not send everything: {w_err}"
    );
    assert!(
        w_err.contains("the reader left after 2000 messages"),
        "{w_err}"
    );
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn a_reader_with_flags_that_disagree_with_the_stream_says_so() {
    for (flag, value, expected) in [
        ("--size", "999", "messages of 64 bytes"),
        ("--count", "1000", "10 messages"),
    ] {
        let name = shmkit_testkit::unique_name("pair-mismatch");
        let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
        let writer = spawn(
            "writer",
            &["--name", &name, "--count", "10", "--size", "64"],
        );
        let reader = spawn("reader", &["--name", &name, flag, value]);
        let (r, _, r_err) = finish(reader, "the reader");
        let (w, _, w_err) = finish(writer, "the writer");
        assert!(!r.success(), "{flag} {value}: {r_err}");
        assert!(r_err.contains(expected), "{flag} {value}: {r_err}");
        assert!(r_err.contains(&format!("{flag} {value}")), "{r_err}");
        assert!(
            !r_err.contains("corrupt"),
            "a mismatch is not corruption: {r_err}"
        );
        assert!(!w.success(), "{w_err}");
        assert!(
            w_err.contains("the reader left after 0 messages"),
            "{w_err}"
        );
    }
}

#[test]
fn a_killed_reader_is_reported_by_the_writer() {
    let name = shmkit_testkit::unique_name("pair-kill");
    let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
    let mut writer = start_side("writer", &name);
    let w_err = wait_for_line(&mut writer, "attached");
    let mut reader = start_side("reader", &name);
    let _r_err = wait_for_line(&mut reader, "attached");
    reader.kill().expect("SIGKILL the reader");
    let r = wait_deadline(&mut reader, "the killed reader");
    let w = wait_deadline(&mut writer, "the writer");
    let w_text = rest_of(w_err);
    assert!(!r.success());
    assert!(!w.success(), "{w_text}");
    assert!(
        w_text.contains(&format!("the reader (pid {}) died", reader.id())),
        "{w_text}"
    );
}

#[test]
fn async_service_selects_over_a_channel_a_socket_and_a_timer() {
    let out = run("async_service", &["--jobs", "500"]);
    assert!(out.contains("received 500 jobs"), "{out}");
    assert!(out.contains("the socket client was told: 500"), "{out}");
    assert!(out.contains("OK: every job received"), "{out}");
}
