//! Crash torture: real processes using a `Ring`, a `Queue`, a `Mutex`, a `Topic` and a `Channel` are
//! SIGKILLed at random moments and restarted; after each round the invariants are
//! checked (see `docs/torture.md` and the docs of each part).
//!
//! Runs without libtest (`harness = false`): the harness is one thread, so forking
//! children is safe. Settings: `SHMKIT_TORTURE_ROUNDS` (rounds per part),
//! `SHMKIT_TORTURE_SEED` (replay a run; the seed is printed first), `SHMKIT_STRESS=1`
//! (more rounds, longer streams, more kills per round). Ends with the line
//! `N passed, M failed` and a non-zero exit status on any violation.

#[path = "torture/channel.rs"]
mod channel;
#[path = "torture/common.rs"]
mod common;
#[path = "torture/locks.rs"]
mod locks;
#[path = "torture/queue.rs"]
mod queue;
#[path = "torture/ring.rs"]
mod ring;
#[path = "torture/topic.rs"]
mod topic;

use std::time::Instant;

use common::{splitmix, Config};

/// The parts, by the names that filters match.
const PARTS: [&str; 6] = ["ring", "ring-batch", "queue", "locks", "topic", "channel"];

/// Which parts to run, from libtest-style arguments (so `cargo test FILTER`,
/// `--exact`, `--skip` and `--list` behave as for other test binaries; other flags
/// such as `--quiet` or `--test-threads N` are accepted and ignored).
struct Selection {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
}

impl Selection {
    fn from_args(args: impl Iterator<Item = String>) -> Selection {
        let mut sel = Selection {
            filters: Vec::new(),
            skips: Vec::new(),
            exact: false,
            list: false,
        };
        let mut args = args.peekable();
        while let Some(a) = args.next() {
            match a.as_str() {
                "--list" => sel.list = true,
                "--exact" => sel.exact = true,
                "--skip" => sel.skips.extend(args.next()),
                // Flags that take a separate value.
                "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                    args.next();
                }
                _ if a.starts_with('-') => {}
                _ => sel.filters.push(a),
            }
        }
        sel
    }

    fn matches(&self, part: &str, pattern: &str) -> bool {
        if self.exact {
            part == pattern
        } else {
            part.contains(pattern) || "torture".contains(pattern)
        }
    }

    fn wants(&self, part: &str) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(part, f)))
            && !self.skips.iter().any(|s| self.matches(part, s))
    }
}

fn main() {
    let sel = Selection::from_args(std::env::args().skip(1));
    if sel.list {
        for part in PARTS.iter().filter(|p| sel.wants(p)) {
            println!("{part}: test");
        }
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
    let stale = common::remove_stale_segments();
    if stale > 0 {
        println!("torture: removed {stale} segment(s) left by an earlier, killed run");
    }

    let mut passed = 0;
    let mut failed = 0;
    let mut report = |part: &str, start: Instant, r: Option<Result<String, String>>| {
        let secs = start.elapsed().as_secs_f64();
        match r {
            None => {}
            Some(Ok(line)) => {
                passed += 1;
                println!("{part}: {line}, {secs:.1} s: ok");
            }
            Some(Err(e)) => {
                failed += 1;
                println!(
                    "{part}: FAILED after {secs:.1} s: {e} (seed {:#x})",
                    cfg.seed
                );
            }
        }
    };

    for (part, batched, salt) in [("ring", false, 1), ("ring-batch", true, 4)] {
        let start = Instant::now();
        let r = sel.wants(part).then(|| {
            ring::run(&cfg, splitmix(cfg.seed ^ salt), batched).map(|t| {
                let (lost_rule, per_kill) = if batched {
                    ("those of the killed writer's unpublished batch", "8")
                } else {
                    ("one per writer kill", "one")
                };
                format!(
                    "rounds {}, kills {} (writer {}, {} of them mid-message; reader {}), \
                     messages {}, lost {} (allowed <= {}: {lost_rule}), redelivered {} \
                     (allowed <= {per_kill} per reader kill), role takeovers {}, slow live \
                     peers {} (no false PeerDied), torn messages seen 0",
                    t.t.rounds,
                    t.t.kills,
                    t.writer_kills,
                    t.torn_kills,
                    t.reader_kills,
                    t.t.moved,
                    t.t.lost,
                    t.t.allowed,
                    t.redelivered,
                    t.t.recoveries,
                    t.slow_ops
                )
            })
        });
        report(part, start, r);
    }

    let start = Instant::now();
    let r = sel.wants("queue").then(|| {
        queue::run(&cfg, splitmix(cfg.seed ^ 2)).map(|t| {
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
        })
    });
    report("queue", start, r);

    let start = Instant::now();
    let r = sel.wants("locks").then(|| {
        locks::run(&cfg, splitmix(cfg.seed ^ 3)).map(|t| {
            format!(
            "rounds {}, kills {} ({} holding the lock), increments {}, owner-died recoveries {} \
             ({} half-done rolled back), slow holds by live holders {} (none taken over), \
             committed-but-uncounted {} (allowed <= kills), lock free at the end",
            t.t.rounds,
            t.t.kills,
            t.holder_kills,
            t.t.moved,
            t.t.recoveries,
            t.rollbacks,
            t.slow_holds,
            t.uncounted
        )
        })
    });
    report("locks", start, r);

    let start = Instant::now();
    let r = sel.wants("topic").then(|| {
        topic::run(&cfg, splitmix(cfg.seed ^ 5)).map(|t| {
            format!(
                "rounds {} (Block and Overwrite alternately), kills {} (writer {}, reader {}), \
                 messages read {}, lag events {}, gaps beyond the lags {} (allowed <= one per \
                 writer kill per reader), torn or out-of-order messages seen 0, every restarted \
                 reader found a slot",
                t.t.rounds,
                t.t.kills,
                t.writer_kills,
                t.reader_kills,
                t.t.moved,
                t.lags,
                t.extra_gaps
            )
        })
    });
    report("topic", start, r);

    let start = Instant::now();
    let r = sel.wants("channel").then(|| {
        channel::run(&cfg, splitmix(cfg.seed ^ 6)).map(|t| {
            format!(
                "rounds {}, kills {} (sender {}, receiver {}), messages {}, lost {} ({} in killed \
             senders' sends, {} by killed receivers; allowed <= {}: one per kill), duplicated 0",
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
        })
    });
    report("channel", start, r);

    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
