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
    assert!(out.contains("python says the sum is 285"), "{out}");
    assert!(out.contains("OK: Rust -> Python -> Rust"), "{out}");
}
