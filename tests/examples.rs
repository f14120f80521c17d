//! Runs every non-interactive example as a user would and checks what it prints.
//!
//! `cargo test` builds the examples next to the test binaries
//! (`target/<profile>/examples/`), so the tests run those binaries directly.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p shmkit` (or --workspace), which builds the examples first",
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
fn job_queue_does_every_job_exactly_once() {
    let out = run("job_queue", &[]);
    assert!(out.contains("OK: every job done exactly once"), "{out}");
}

#[test]
fn python_interop_round_trips() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is required for the interop example (CI installs it)");
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
fn reader_reports_a_writer_that_stops_early() {
    let name = format!("shmkit-t-pair-early-{}", std::process::id());
    let reader = Command::new(example("reader"))
        .args(["--name", &name, "--count", "1000", "--size", "64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start reader");
    let w = Command::new(example("writer"))
        .args(["--name", &name, "--count", "10", "--size", "64"])
        .output()
        .expect("writer");
    assert!(w.status.success());
    let r = reader.wait_with_output().expect("reader");
    let _ = shmkit::segment::remove(&name);
    assert!(!r.status.success(), "10 of 1000 messages is a failure");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("10 of 1000 messages arrived"), "{err}");
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
