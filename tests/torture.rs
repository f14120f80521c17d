//! Crash torture: real processes using a `Ring`, a `Queue` and a `Mutex` are
//! SIGKILLed at random moments and restarted; after each round the invariants are
//! checked (see `docs/torture.md` and the docs of each part).
//!
//! Runs without libtest (`harness = false`): the harness is one thread, so forking
//! children is safe. Settings: `SHMKIT_TORTURE_ROUNDS` (rounds per part),
//! `SHMKIT_TORTURE_SEED` (replay a run; the seed is printed first), `SHMKIT_STRESS=1`
//! (more rounds, longer streams, more kills per round). Ends with the line
//! `N passed, M failed` and a non-zero exit status on any violation.

#[path = "torture/common.rs"]
mod common;
#[path = "torture/locks.rs"]
mod locks;
#[path = "torture/queue.rs"]
mod queue;
#[path = "torture/ring.rs"]
mod ring;

use std::time::Instant;

use common::{splitmix, Config};

fn main() {
    // libtest-style arguments (`--list`, filters, `--quiet`) from cargo: `--list`
    // must print nothing, so `cargo test -- --list` and nextest see no tests to run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("torture: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "torture: seed {:#x} (replay with SHMKIT_TORTURE_SEED={:#x}), stress {}",
        cfg.seed, cfg.seed, cfg.stress
    );

    let mut passed = 0;
    let mut failed = 0;
    let mut report = |part: &str, start: Instant, r: Result<String, String>| {
        let secs = start.elapsed().as_secs_f64();
        match r {
            Ok(line) => {
                passed += 1;
                println!("{part}: {line}, {secs:.1} s: ok");
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{part}: FAILED after {secs:.1} s: {e} (seed {:#x})",
                    cfg.seed
                );
            }
        }
    };

    let start = Instant::now();
    let r = ring::run(&cfg, splitmix(cfg.seed ^ 1)).map(|t| {
        format!(
            "rounds {}, kills {} (writer {}, reader {}), messages {}, lost {} (allowed <= {}: \
             one per writer kill), redelivered {} (allowed <= {}: one per reader kill), \
             role takeovers {}",
            t.t.rounds,
            t.t.kills,
            t.writer_kills,
            t.reader_kills,
            t.t.moved,
            t.t.lost,
            t.t.allowed,
            t.redelivered,
            t.reader_kills,
            t.t.recoveries
        )
    });
    report("ring", start, r);

    let start = Instant::now();
    let r = queue::run(&cfg, splitmix(cfg.seed ^ 2)).map(|t| {
        format!(
            "rounds {}, kills {} (producer {}, consumer {}), items {}, lost {} ({} in killed \
             producers' puts, {} by killed consumers; allowed <= {}: one per kill), duplicated 0",
            t.t.rounds,
            t.t.kills,
            t.producer_kills,
            t.consumer_kills,
            t.t.moved,
            t.t.lost,
            t.lost_by_producers,
            t.t.lost - t.lost_by_producers,
            t.t.allowed
        )
    });
    report("queue", start, r);

    let start = Instant::now();
    let r = locks::run(&cfg, splitmix(cfg.seed ^ 3)).map(|t| {
        format!(
            "rounds {}, kills {} ({} holding the lock), increments {}, owner-died recoveries {} \
             ({} half-done rolled back), committed-but-uncounted {} (allowed <= kills), \
             lock free at the end",
            t.t.rounds,
            t.t.kills,
            t.holder_kills,
            t.t.moved,
            t.t.recoveries,
            t.rollbacks,
            t.uncounted
        )
    });
    report("locks", start, r);

    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
