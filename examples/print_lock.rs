//! Several processes print lines to one terminal; a shared lock keeps every line whole.
//!
//! Each process writes its lines word by word (one `write` per word, as a program that
//! prints piecemeal does). Holding the shared mutex for the whole line, no other process
//! can write in between, so lines never interleave. With `--no-lock` they can.
//! The lock lives in a `SharedValue<u64>` that also numbers the lines.
//!
//! Run: `cargo run --release --example print_lock` (or `-- --no-lock`)

#[path = "common/mod.rs"]
mod common;

use std::io::Write;

use shmkit::typed::SharedValue;

const PROCESSES: usize = 4;
const LINES: usize = 5;

fn write_piecewise(line: &str) {
    let mut out = std::io::stdout().lock();
    for word in line.split_inclusive(' ') {
        // One write(2) per word: the unit another process could slip in between.
        out.write_all(word.as_bytes()).expect("write to stdout");
        out.flush().expect("flush stdout");
        std::thread::yield_now();
    }
}

fn child(name: &str, id: usize, locked: bool) {
    let lines = SharedValue::<u64>::open(name).expect("open the print lock");
    for i in 0..LINES {
        if locked {
            let mut n = lines.lock().expect("take the print lock");
            *n += 1;
            write_piecewise(&format!(
                "[line {:2}] process {id} says hello number {i}\n",
                *n
            ));
        } else {
            write_piecewise(&format!("[unlocked] process {id} says hello number {i}\n"));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1], args[2].parse().expect("id"), args[3] == "lock");
        return;
    }
    let locked = !args.iter().any(|a| a == "--no-lock");
    let name = common::run_name("print-lock");
    let lines = SharedValue::<u64>::create(&name, 0).expect("create the print lock");
    let mode = if locked { "lock" } else { "nolock" };
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| common::spawn_self_inherit(&["--child", &name, &id.to_string(), mode]))
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a child failed");
    }
    if locked {
        let printed = lines.get().expect("read the line count");
        println!("{printed} whole lines from {PROCESSES} processes");
    }
}
