//! The main job, in one command: a writer process and a reader process stream
//! messages through shared memory (every byte verified), then a quick comparison of
//! shmkit's ring and queue with a pipe and a Unix socket between two processes.
//!
//! Run: `cargo run --release --example demo`
//! (`-- --count N --size BYTES` change the stream; `--no-bench` skips the comparison)

use std::process::{Command, Stdio};

use shmkit_cli::bench::{self, BenchConfig, Transport};
use shmkit_cli::pair::{self, Report};

fn role(args: &[String]) -> std::process::ExitCode {
    let (side, name, count, size) = (&args[1], &args[2], &args[3], &args[4]);
    let count: u64 = count.parse().expect("count");
    let size: usize = size.parse().expect("size");
    pair::catch_interrupts();
    let result = if side == "writer" {
        pair::run_writer(name, count, size, true)
    } else {
        pair::run_reader(name, count, size, true)
    };
    pair::finish(side, result, true)
}

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return role(&args);
    }
    let count = flag(&args, "--count", 1_000_000);
    let size = flag(&args, "--size", 1024);
    let name = format!("shmkit-demo-{}", std::process::id());
    let exe = std::env::current_exe().expect("path of this example");

    println!("== 1. writer -> reader through shared memory");
    println!("   two processes, ring '{name}', {count} messages of {size} bytes");
    let spawn = |side: &str| {
        Command::new(&exe)
            .args(["--role", side, &name, &count.to_string(), &size.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a child process")
    };
    // The reader first: it creates the ring and waits; the writer attaches.
    let reader = spawn("reader");
    let writer = spawn("writer");
    let mut ok = true;
    let mut reports = Vec::new();
    for (side, child) in [("writer", writer), ("reader", reader)] {
        let out = child.wait_with_output().expect("wait for a child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        if let Some(human) = lines.next() {
            println!("   {human}");
        }
        let report: Option<Report> = lines
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Report {
                messages: v["messages"].as_u64().unwrap_or(0),
                bytes: v["bytes"].as_u64().unwrap_or(0),
                seconds: v["seconds"].as_f64().unwrap_or(0.0),
                verified: v["verified"].as_bool().unwrap_or(false),
            });
        ok &= out.status.success();
        reports.push((side, report));
    }
    let verified = reports
        .iter()
        .any(|(side, r)| *side == "reader" && r.is_some_and(|r| r.verified && r.messages == count));
    if !ok || !verified {
        eprintln!("demo: the writer/reader pair failed");
        return std::process::ExitCode::FAILURE;
    }
    println!("   OK: {count} messages arrived in order, every byte verified");

    if args.iter().any(|a| a == "--no-bench") {
        return std::process::ExitCode::SUCCESS;
    }
    println!();
    println!("== 2. the same between two processes: shmkit ring and queue vs pipe and Unix socket");
    let config = BenchConfig {
        sizes: vec![64, 1024, 64 * 1024],
        transports: Transport::ALL.to_vec(),
        ..BenchConfig::quick()
    };
    match bench::run(&config) {
        Ok(results) => print!("{}", bench::table(&results)),
        Err(e) => {
            eprintln!("demo: benchmark failed: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    println!();
    println!("What to look at:");
    println!("- `× pipe`: how many times more messages per second than a pipe moves;");
    println!("- `rtt × pipe`: how many times faster a ping-pong round trip is;");
    println!("- the full table (sizes 8 B to 1 MiB, JSON and SVG): cargo run --release -p shmkit-cli -- bench");
    println!("- run the pair yourself in two terminals: cargo run --release --example reader");
    println!("                                   and: cargo run --release --example writer");
    std::process::ExitCode::SUCCESS
}
