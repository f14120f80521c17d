//! Two producer processes send `Job { id, name, payload }` structs through one named
//! `Channel<Job>` to three consumer processes: every job is delivered exactly once
//! (checked). Then the same again with one consumer killed (SIGKILL) mid-stream: it
//! costs at most the one job it had in hand, and the others go on.
//!
//! The channel carries any `serde` type (postcard-encoded) between unrelated
//! processes that agree only on its name and message type. When every sender is gone
//! (here: both producers exit, and the parent has dropped the sender handle it held
//! until both had attached), the consumers drain what is left and get `Disconnected`, as
//! with `crossbeam-channel`.
//!
//! Run: `cargo run --release --example channel_jobs`

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shmkit::typed::{Channel, RecvError};

const PRODUCERS: u64 = 2;
const CONSUMERS: usize = 3;
const JOBS_EACH: u64 = 2_000;

#[derive(Serialize, Deserialize, Debug)]
struct Job {
    id: u64,
    name: String,
    payload: Vec<u8>,
}

fn producer(name: &str, first: u64) {
    let jobs = Channel::<Job>::open(name).expect("open the channel");
    // Counted as a sender before the parent lets go of its own hold (see `run`).
    jobs.attach_sender().expect("attach as a sender");
    println!("attached");
    for id in first..first + JOBS_EACH {
        let job = Job {
            id,
            name: format!("resize-{id}"),
            payload: vec![id as u8; (id % 700) as usize],
        };
        jobs.send(job).expect("send a job");
    }
    // Dropping the handle leaves the channel: once both producers did, consumers
    // get `Disconnected` after the last job.
}

/// Prints the id of every job it takes (one line each, flushed), until disconnected.
fn consumer(name: &str, work: Duration) {
    use std::io::Write;
    let jobs = Channel::<Job>::open(name).expect("open the channel");
    let mut out = std::io::stdout().lock();
    loop {
        match jobs.recv() {
            Ok(job) => {
                assert_eq!(job.name, format!("resize-{}", job.id), "a torn job");
                assert!(job.payload.iter().all(|&b| b == job.id as u8));
                let start = Instant::now();
                while start.elapsed() < work {
                    std::hint::spin_loop(); // the work itself
                }
                writeln!(out, "{}", job.id)
                    .and_then(|()| out.flush())
                    .expect("stdout");
            }
            Err(RecvError::Disconnected) => return,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

/// One run: returns how many jobs were not delivered (at most one per killed consumer).
fn run(kill_one: bool) -> usize {
    let name = common::run_name(if kill_one { "jobs-kill" } else { "jobs" });
    let channel = Channel::<Job>::create(&name, 256 * 1024).expect("create the channel");
    // Held as a sender until both producers have attached: a producer that finished
    // before the other had attached would otherwise end the consumers (Disconnected),
    // and the late one's sends would find no receiver.
    let hold = channel.clone();
    hold.attach_sender().expect("attach as a sender");
    // Consumer 0 works slowly (200 us a job) so that it is still busy when killed.
    let mut consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| common::spawn_self(&["--consumer", &name, if i == 0 { "200" } else { "0" }]))
        .collect();
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|p| common::spawn_self(&["--producer", &name, &(p * JOBS_EACH).to_string()]))
        .collect();
    for p in &mut producers {
        let mut line = String::new();
        BufReader::new(p.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("a producer's first line");
        assert_eq!(line.trim(), "attached");
    }
    // Every producer is attached: once they are all done, the consumers drain and end.
    drop(hold);
    let mut seen = Vec::new();
    if kill_one {
        // Read the victim's first 50 jobs, then kill it mid-stream.
        let mut victim = consumers.remove(0);
        let mut lines = BufReader::new(victim.stdout.take().expect("piped")).lines();
        for line in lines.by_ref().take(50) {
            seen.push(line.expect("a line").parse::<u64>().expect("an id"));
        }
        victim.kill().expect("SIGKILL the consumer");
        victim.wait().expect("reap it");
        // Whatever it printed before dying counts as done.
        seen.extend(
            lines
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<u64>().ok()),
        );
    }
    for p in producers {
        common::output_of(p);
    }
    for c in consumers {
        seen.extend(
            common::output_of(c)
                .lines()
                .map(|l| l.parse::<u64>().expect("an id")),
        );
    }
    let total = (PRODUCERS * JOBS_EACH) as usize;
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a job was delivered twice");
    assert!(unique.iter().all(|&id| id < total as u64));
    let lost = total - unique.len();
    println!(
        "{}: {} jobs sent by {PRODUCERS} producers, {} done by the consumers, {lost} lost, 0 twice",
        if kill_one {
            "one consumer killed"
        } else {
            "clean run"
        },
        total,
        unique.len(),
    );
    assert!(channel.is_empty());
    lost
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--producer") => return producer(&args[1], args[2].parse().expect("first id")),
        Some("--consumer") => {
            let us = args[2].parse().expect("work in microseconds");
            return consumer(&args[1], Duration::from_micros(us));
        }
        _ => {}
    }
    assert_eq!(run(false), 0, "a clean run delivers every job exactly once");
    let lost = run(true);
    assert!(
        lost <= 1,
        "a killed consumer costs at most the job in its hands"
    );
    println!("a killed consumer cost {lost} job(s) (at most the one it was taking)");
}
