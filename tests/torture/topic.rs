//! Part `topic`: one writer and three readers share a named `Topic` (Block and
//! Overwrite in alternate rounds); the harness SIGKILLs a random one at random moments
//! and restarts it.
//!
//! What a kill may cost, from the topic's docs (`crates/typed/src/topic.rs`): a writer
//! killed mid-record never shows that record; the restarted writer continues the
//! sequence numbers (one number may be skipped if the kill fell between its two
//! publishing stores). A killed reader frees its slot: the topic has exactly as many
//! slots as readers, so every restarted reader must find its predecessor's slot again.
//! Each message carries its own number (the writer numbers it with `published()`,
//! which is the record's sequence number) and a checksum; a reader checks every
//! message is whole, numbers only grow, and every gap is explained: Overwrite gaps by
//! the `Lagged(n)` it was told, and at most one per writer kill beyond that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::topic::{Block, Overwrite, ReadError, Topic, TopicConfig, TopicPolicy};

use crate::common::{
    code, ld, spawn, AtomicsOnly, Config, Control, Fleet, Rng, Totals, Violation, DEADLINE,
};

const READERS: usize = 3;
/// Small, so Block writers often wait and Overwrite readers often lag.
const CAPACITY: usize = 16 << 10;
/// Largest pause before each kill (uniformly random below it).
const KILL_GAP: Duration = Duration::from_millis(30);

#[repr(C)]
struct TopicCtl {
    /// Set by the harness after its last kill: the writer closes the topic.
    stop: AtomicU64,
    /// Per reader: messages read, gaps not explained by `Lagged`, lag events.
    read: [AtomicU64; READERS],
    extra_gaps: [AtomicU64; READERS],
    lags: [AtomicU64; READERS],
    /// Detail of a failure reported by a child's exit code.
    bad: AtomicU64,
}

// SAFETY: repr(C), atomics only.
unsafe impl AtomicsOnly for TopicCtl {}

fn msg_len(n: u64) -> usize {
    9 + (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as usize % 600
}

fn fill(n: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&n.to_le_bytes());
    let last = buf.len() - 1;
    for (i, b) in buf.iter_mut().enumerate().take(last).skip(8) {
        *b = (n as u8).wrapping_add((i as u8).wrapping_mul(13));
    }
    buf[last] = buf[..last].iter().fold(0u8, |a, &b| a.wrapping_add(b));
}

/// The number of `msg` if it is whole.
fn check(msg: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    let mut want = vec![0; msg_len(n)];
    fill(n, &mut want);
    (want == msg).then_some(n)
}

fn writer<P: TopicPolicy>(name: &str, ctl: &TopicCtl) -> i32 {
    let Ok(mut topic) = Topic::<P>::open(name) else {
        return code::OPEN;
    };
    loop {
        if ld(&ctl.stop) != 0 {
            return if topic.close().is_ok() {
                code::OK
            } else {
                code::ERROR
            };
        }
        // The writer alone publishes: this is the sequence number of the next record.
        let n = topic.published();
        match topic.write_with_timeout(msg_len(n), DEADLINE, |buf| fill(n, buf)) {
            Ok(()) => {}
            Err(shmkit_typed::topic::WriteError::Timeout) => return code::TIMEOUT,
            Err(_) => return code::ERROR,
        }
    }
}

fn reader<P: TopicPolicy>(name: &str, ctl: &TopicCtl, r: usize) -> i32 {
    let Ok(topic) = Topic::<P>::open(name) else {
        return code::OPEN;
    };
    let Ok(mut sub) = topic.subscribe() else {
        return code::ERROR; // every slot taken: a dead reader's slot was not reused
    };
    let mut buf = Vec::new();
    let (mut last, mut lagged) = (None::<u64>, 0u64);
    loop {
        match sub.read_into_timeout(&mut buf, DEADLINE) {
            Ok(_) => {
                let Some(n) = check(&buf) else {
                    return code::CORRUPT;
                };
                if let Some(l) = last {
                    if n <= l {
                        ctl.bad.store(n, Ordering::SeqCst);
                        return code::DUPLICATE;
                    }
                    let gap = n - l - 1;
                    if gap < lagged {
                        ctl.bad.store(n, Ordering::SeqCst);
                        return code::DUPLICATE; // told it missed more than it did
                    }
                    ctl.extra_gaps[r].fetch_add(gap - lagged, Ordering::SeqCst);
                }
                lagged = 0;
                last = Some(n);
                ctl.read[r].fetch_add(1, Ordering::SeqCst);
            }
            Err(ReadError::Lagged(n)) => {
                if last.is_some() {
                    lagged += n;
                }
                ctl.lags[r].fetch_add(1, Ordering::SeqCst);
            }
            // The writer was killed; the harness starts another, which continues.
            Err(ReadError::PeerDied { .. }) => std::thread::yield_now(),
            Err(ReadError::Closed) => return code::OK,
            Err(ReadError::Timeout) => return code::TIMEOUT,
            Err(_) => return code::ERROR,
        }
    }
}

/// Topic totals beyond [`Totals`].
#[derive(Debug, Default)]
pub struct TopicTotals {
    /// The common figures (`moved`: messages read by all readers).
    pub t: Totals,
    /// Writer kills.
    pub writer_kills: usize,
    /// Reader kills.
    pub reader_kills: usize,
    /// Lag events reported to Overwrite readers.
    pub lags: u64,
    /// Gaps not explained by a lag (allowed: one per writer kill, per reader).
    pub extra_gaps: u64,
}

/// Runs the topic part.
pub fn run(cfg: &Config, seed: u64) -> Result<TopicTotals, Violation> {
    let rounds = cfg.rounds(20, 160);
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = TopicTotals::default();
    for round in 0..rounds {
        let r = if round % 2 == 0 {
            one_round::<Block>(&mut rng, kills, &mut tot)
        } else {
            one_round::<Overwrite>(&mut rng, kills, &mut tot)
        };
        r.map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round<P: TopicPolicy>(
    rng: &mut Rng,
    kills: usize,
    tot: &mut TopicTotals,
) -> Result<(), Violation> {
    let name = unique_name("torture-topic");
    let _cleanup = ShmCleanup::new(&name);
    let config = TopicConfig::new(CAPACITY).max_readers(READERS as u32);
    let _topic = Topic::<P>::create(&name, config).map_err(|e| format!("create topic: {e}"))?;
    let control = Control::<TopicCtl>::new(0);
    let ctl = control.ctl();
    let names = ["writer", "reader 0", "reader 1", "reader 2"];
    let mut fleet = Fleet::start(&names, |role| {
        let name = name.as_str();
        if role == 0 {
            spawn(move || writer::<P>(name, ctl))
        } else {
            spawn(move || reader::<P>(name, ctl, role - 1))
        }
    });
    let detail = |e: Violation| format!("{e} (detail: {})", ld(&ctl.bad));
    let (mut wk, mut rk) = (0, 0);
    for _ in 0..kills {
        rng.pause(KILL_GAP);
        match fleet.kill_random(rng, &[], 0).map_err(detail)? {
            Some(0) => {
                wk += 1;
                fleet.restart(0);
            }
            Some(r) => {
                rk += 1;
                fleet.restart(r);
            }
            None => {}
        }
    }
    rng.pause(KILL_GAP);
    ctl.stop.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    for role in 0..names.len() {
        fleet.wait(role, deadline).map_err(detail)?;
    }
    for r in 0..READERS {
        let extra = ld(&ctl.extra_gaps[r]);
        if extra > wk as u64 {
            return Err(format!(
                "reader {r} saw {extra} unexplained gaps with {wk} writer kills: at most one per kill"
            ));
        }
        tot.extra_gaps += extra;
        tot.lags += ld(&ctl.lags[r]);
        tot.t.moved += ld(&ctl.read[r]);
    }
    tot.t.kills += wk + rk;
    tot.writer_kills += wk;
    tot.reader_kills += rk;
    tot.t.recoveries += wk as u64;
    Ok(())
}
