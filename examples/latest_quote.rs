//! A price ticker: one feed process publishes the newest quote of an instrument in a
//! `Latest<Quote>`, three watcher processes wait for newer quotes and check each one.
//! A watcher that falls behind skips to the newest quote (only the newest matters), and
//! never sees a half-written one, however fast the feed publishes.
//!
//! Then the feed is killed in the middle of its stream (SIGKILL): the watchers learn
//! that it died (`PeerDied`), the last complete quote is still there, and a restarted
//! feed takes over and continues the sequence.
//!
//! Run: `cargo run --release --example latest_quote` (`-- --quotes N` for a longer stream)

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use shmkit::typed::{Latest, LatestError};
use shmkit::{Pod, Zeroable};

/// One quote. `check` ties the fields together, so a quote mixed from two writes would
/// be caught.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "shmkit::bytemuck")]
#[repr(C)]
struct Quote {
    tick: u64,
    bid: f64,
    ask: f64,
    check: u64,
}

impl Quote {
    fn new(tick: u64) -> Quote {
        let bid = 100.0 + (tick as f64 * 0.01).sin();
        let ask = bid + 0.01 + (tick % 7) as f64 * 0.001;
        Quote {
            tick,
            bid,
            ask,
            check: tick ^ bid.to_bits() ^ ask.to_bits(),
        }
    }

    fn whole(&self) -> bool {
        self.check == self.tick ^ self.bid.to_bits() ^ self.ask.to_bits() && self.bid < self.ask
    }
}

const WATCHERS: usize = 3;

/// The next line a child printed, without its newline.
fn first_line(out: &mut impl BufRead) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("read a child's output");
    line.trim_end().to_owned()
}

/// Publishes quotes `from..=to`; with `die`, kills itself (SIGKILL) after `to`. Tells
/// the parent (a line on stdout) once it holds the writer role, then waits for a line
/// on stdin before publishing the rest.
fn feed(name: &str, from: u64, to: u64, die: bool) {
    let mut cell = Latest::<Quote>::open(name).expect("open the ticker");
    cell.publish(Quote::new(from)).expect("publish a quote");
    println!("attached");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("wait for go");
    for tick in from + 1..=to {
        cell.publish(Quote::new(tick)).expect("publish a quote");
    }
    if die {
        // SAFETY: kill(2) on our own pid; SIGKILL ends the process at once (no core
        // file, no destructors: as a crash would).
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    // Dropping the handle leaves cleanly: watchers get `WriterLeft`.
}

/// Waits for newer quotes until the feed leaves or dies; prints what it saw.
fn watcher(name: &str) {
    let cell = Latest::<Quote>::open(name).expect("open the ticker");
    let (mut seen, first) = cell.read().expect("the first quote");
    assert!(first.whole());
    println!("ready");
    let mut updates = 0u64;
    let mut last = first.tick;
    let how = loop {
        match cell.wait_newer(seen) {
            Ok((seq, q)) => {
                assert!(q.whole(), "a torn quote: {q:?}");
                assert!(seq > seen && q.tick > last, "went back in time");
                (seen, last) = (seq, q.tick);
                updates += 1;
            }
            Err(LatestError::WriterLeft) => break "the feed left".to_string(),
            Err(LatestError::PeerDied { pid }) => break format!("the feed (pid {pid}) died"),
            Err(e) => panic!("watching failed: {e}"),
        }
    };
    println!("{updates} {last} {how}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-feed") => {
            let n = |i: usize| args[i].parse::<u64>().expect("a number");
            feed(&args[1], n(2), n(3), args[4] == "die");
            return;
        }
        Some("--child-watch") => {
            watcher(&args[1]);
            return;
        }
        _ => {}
    }
    let quotes: u64 = match args.iter().position(|a| a == "--quotes") {
        Some(i) => args[i + 1].parse().expect("--quotes N"),
        None => 200_000,
    };
    let name = common::run_name("latest-quote");
    // Tick 0 is the opening quote; the segment is removed when `cell` drops.
    let cell = Latest::<Quote>::create(&name, Quote::new(0)).expect("create the ticker");

    for (round, die) in [
        ("a feed that finishes", false),
        ("a feed killed mid-stream", true),
    ] {
        let from = cell.read().expect("read").1.tick + 1;
        let to = from + quotes - 1;
        println!("== {round}: quotes {from}..={to}");
        // The feed first takes the writer role (a watcher that started waiting while
        // the last feed was gone would be told `WriterLeft` at once), the watchers
        // read the current quote, then the feed streams.
        let mut feed = Command::new(std::env::current_exe().expect("this program"))
            .args(["--child-feed", &name, &from.to_string(), &to.to_string()])
            .arg(if die { "die" } else { "leave" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the feed");
        let mut feed_out = BufReader::new(feed.stdout.take().expect("piped"));
        assert_eq!(first_line(&mut feed_out), "attached");
        let mut watchers: Vec<_> = (0..WATCHERS)
            .map(|_| common::spawn_self(&["--child-watch", &name]))
            .collect();
        let mut outs: Vec<_> = watchers
            .iter_mut()
            .map(|w| BufReader::new(w.stdout.take().expect("piped")))
            .collect();
        for out in &mut outs {
            assert_eq!(first_line(out), "ready");
        }
        writeln!(feed.stdin.take().expect("piped"), "go").expect("tell the feed");
        let status = feed.wait().expect("wait for the feed");
        assert_eq!(status.success(), !die, "the feed's exit: {status}");
        for (i, (mut w, mut out)) in watchers.into_iter().zip(outs).enumerate() {
            let line = first_line(&mut out);
            assert!(w.wait().expect("wait for a watcher").success());
            let out = line;
            let mut parts = out.trim().splitn(3, ' ');
            let updates: u64 = parts.next().and_then(|p| p.parse().ok()).expect("updates");
            let last: u64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .expect("last tick");
            let how = parts.next().unwrap_or("");
            println!(
                "watcher {i}: {updates} newer quotes seen (the rest skipped: only the newest matters), \
                 last tick {last}, 0 torn; then {how}"
            );
            assert_eq!(last, to, "every watcher ends on the last quote");
        }
        let (seq, q) = cell.read().expect("read");
        assert!(q.whole() && q.tick == to);
        println!(
            "the newest quote is still there and whole: tick {} (sequence {seq})",
            q.tick
        );
    }
    // A restarted feed takes over from the killed one and continues the sequence.
    let before = cell.sequence();
    let from = cell.read().expect("read").1.tick + 1;
    let mut feed = Command::new(std::env::current_exe().expect("this program"))
        .args([
            "--child-feed",
            &name,
            &from.to_string(),
            &(from + 9).to_string(),
            "leave",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the feed");
    writeln!(feed.stdin.take().expect("piped"), "go").expect("tell the feed");
    assert!(feed.wait().expect("wait for the feed").success());
    assert_eq!(cell.sequence(), before + 10);
    println!(
        "a restarted feed took over and published ticks {from}..={}: sequence {before} -> {}",
        from + 9,
        cell.sequence()
    );
    println!("OK: every watcher saw only whole quotes, in order, and learned how the feed went");
}
