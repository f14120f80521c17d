//! The main job, in one command: a writer process and a reader process stream
//! messages through shared memory (every byte verified), then a quick comparison of
//! shmkit's ring and queue with a pipe and a Unix socket between two processes.
//!
//! Run: `cargo run --release --example demo`
//! (`-- --count N --size BYTES` change the stream; `--no-bench` skips the comparison)

// The demo runs the writer and reader programs themselves: this binary includes them
// (each with its own copy of `common`) and starts itself again in either role.
#![allow(clippy::duplicate_mod)]

#[path = "common/mod.rs"]
mod common;
#[path = "reader.rs"]
mod reader;
#[path = "writer.rs"]
mod writer;

use std::process::{Command, ExitCode, Stdio};

use clap::Parser;
use shmkit_cli::bench::{self, BenchConfig, Transport};

use common::pair::DemoArgs;

/// Set in the environment of the demo's children: which program to be.
const ROLE: &str = "SHMKIT_DEMO_ROLE";

fn main() -> ExitCode {
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => return writer::main(),
        Ok("reader") => return reader::main(),
        _ => {}
    }
    let args = DemoArgs::parse();
    let (count, size) = (args.stream.count, args.stream.size);
    let name = format!("shmkit-demo-{}", std::process::id());
    let exe = std::env::current_exe().expect("path of this example");

    println!("== 1. writer -> reader through shared memory");
    println!("   two processes, ring '{name}', {count} messages of {size} bytes");
    let spawn = |side: &str, args: &[&str]| {
        Command::new(&exe)
            .env(ROLE, side)
            .args(["--name", &name, "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a child process")
    };
    // The reader first: it creates the ring and waits; the writer attaches. The reader
    // needs no --count or --size: the writer's first message announces them.
    let reader = spawn("reader", &[]);
    let writer = spawn(
        "writer",
        &["--count", &count.to_string(), "--size", &size.to_string()],
    );
    let mut ok = true;
    let mut reports = Vec::new();
    for (side, child) in [("writer", writer), ("reader", reader)] {
        let out = child.wait_with_output().expect("wait for a child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        if let Some(human) = lines.next() {
            println!("   {human}");
        }
        // The last line is the JSON report: {"messages":N,...,"verified":true}.
        let report = lines
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        if !out.status.success() {
            ok = false;
            eprint!("   {}", String::from_utf8_lossy(&out.stderr));
        }
        reports.push((side, report));
    }
    let verified = reports.iter().any(|(side, r)| {
        *side == "reader"
            && r.as_ref()
                .is_some_and(|r| r["verified"] == true && r["messages"] == count)
    });
    if !ok || !verified {
        eprintln!("demo: the writer/reader pair failed");
        return ExitCode::FAILURE;
    }
    println!("   OK: {count} messages arrived in order, every byte verified");

    if args.no_bench {
        return ExitCode::SUCCESS;
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
            return ExitCode::FAILURE;
        }
    }
    println!();
    println!("What to look at:");
    println!("- `× pipe`: how many times more messages per second than a pipe moves;");
    println!("- `rtt × pipe`: how many times faster a ping-pong round trip is;");
    println!("- `÷ floor`, `rtt ÷ floor`: each figure over the floor's (a minimal spin ring over");
    println!("  the same mapping, measured in this run): 1.00 is this machine's limit;");
    println!("- the full table (sizes 8 B to 1 MiB, JSON and SVG): cargo run --release -p shmkit-cli -- bench");
    println!("- run the pair yourself in two terminals: cargo run --release --example reader");
    println!("                                   and: cargo run --release --example writer");
    ExitCode::SUCCESS
}
