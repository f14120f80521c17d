//! Part 1: a writer and a reader process stream sequence-numbered, checksummed
//! messages through a named `Ring`; the harness SIGKILLs one of them at random
//! moments and restarts it, and the new process takes the role over.
//!
//! What a kill may cost, from the Ring's docs (`crates/typed/src/ring.rs`):
//! - a killed writer never exposes a torn message (the record lies beyond the
//!   published `tail`); the message it was writing is lost. The writer here stores
//!   "next sequence = s + 1" *before* writing `s`, so a restarted writer never writes
//!   a sequence twice, and the one lost message is exactly `s`, which the harness
//!   reads back after the kill.
//! - a killed reader loses nothing: `head` is published only after `read_with`'s
//!   closure returns, so the message whose closure ran (or was running) when the
//!   reader died is delivered *again* to the next reader (at-least-once). The reader
//!   here records its progress inside the closure, so it recognises that one
//!   redelivery (the first message a restarted reader sees, equal to the last one
//!   recorded) and counts it; any other repeat is a duplicate and fails.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::ring::{ReadError, Ring, WriteError};

use crate::common::{code, ld, missing, spawn, splitmix, AtomicsOnly, Config, Control, Fleet, Rng, Totals, Violation, DEADLINE};

/// Data capacity: small, so the writer often waits for space and records wrap.
const CAPACITY: usize = 16 << 10;
/// Message header: sequence (8), length (4), reserved (4); trailer: checksum (8).
const MIN_LEN: usize = 24;
/// Longest message.
const MAX_LEN: usize = 1024;

/// Shared bookkeeping of one round.
#[repr(C)]
struct RingCtl {
    /// The sequence the writer writes next (1-based); stored before the write.
    w_next: AtomicU64,
    /// The last sequence the reader recorded (0: none yet).
    r_last: AtomicU64,
    /// Redeliveries recognised by restarted readers.
    redeliveries: AtomicU64,
    /// Role takeovers: a writer or reader that started after a predecessor died.
    takeovers: AtomicU64,
    /// Detail of a failure reported by a child's exit code.
    bad_seq: AtomicU64,
}

// SAFETY: repr(C), atomics only.
unsafe impl AtomicsOnly for RingCtl {}

fn msg_len(seq: u64) -> usize {
    MIN_LEN + (splitmix(seq) % (MAX_LEN - MIN_LEN + 1) as u64) as usize
}

fn fill(seq: u64, buf: &mut [u8]) {
    let len = buf.len();
    buf[0..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    buf[12..16].copy_from_slice(&0u32.to_le_bytes());
    let mut x = splitmix(seq ^ 0xA5A5_A5A5);
    for b in &mut buf[16..len - 8] {
        x = splitmix(x);
        *b = x as u8;
    }
    let sum = checksum(&buf[..len - 8]);
    buf[len - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// FNV-1a over the bytes.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The sequence number of a well-formed message, or `None` if it is torn/corrupted.
fn verify(msg: &[u8], n: u64) -> Option<u64> {
    if msg.len() < MIN_LEN {
        return None;
    }
    let seq = u64::from_le_bytes(msg[0..8].try_into().ok()?);
    if seq == 0 || seq > n || msg.len() != msg_len(seq) {
        return None;
    }
    let mut expect = vec![0u8; msg.len()];
    fill(seq, &mut expect);
    (expect == msg).then_some(seq)
}

fn writer(name: &str, ctl: &RingCtl, n: u64) -> i32 {
    let Ok(mut ring) = Ring::open(name) else {
        return code::OPEN;
    };
    if ld(&ctl.w_next) > 1 {
        ctl.takeovers.fetch_add(1, Ordering::SeqCst);
    }
    loop {
        let seq = ld(&ctl.w_next);
        if seq > n {
            break;
        }
        // Intent first: a kill from here until the publish loses exactly `seq`.
        ctl.w_next.store(seq + 1, Ordering::SeqCst);
        let len = msg_len(seq);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ring.write_with_timeout(len, left, |buf| fill(seq, buf)) {
                Ok(()) => break,
                // The reader was killed while the ring was full; the harness starts a
                // new one, which takes the role over. Nothing was written: retry.
                Err(WriteError::PeerDied { .. }) if !left.is_zero() => {}
                Err(WriteError::PeerDied { .. } | WriteError::Timeout) => return code::TIMEOUT,
                Err(WriteError::Corrupt { .. }) => return code::CORRUPT,
                Err(_) => return code::ERROR,
            }
        }
    }
    match ring.close() {
        Ok(()) => code::OK,
        Err(_) => code::ERROR,
    }
}

fn reader(name: &str, ctl: &RingCtl, received: &[std::sync::atomic::AtomicU8], n: u64) -> i32 {
    let Ok(mut ring) = Ring::open(name) else {
        return code::OPEN;
    };
    let restarted = ld(&ctl.r_last) > 0;
    if restarted {
        ctl.takeovers.fetch_add(1, Ordering::SeqCst);
    }
    let mut first = true;
    let mut deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = ring.read_with_timeout(left, |msg| {
            let Some(seq) = verify(msg, n) else {
                ctl.bad_seq.store(
                    msg.get(0..8)
                        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap())),
                    Ordering::SeqCst,
                );
                return Err(code::CORRUPT);
            };
            let last = ld(&ctl.r_last);
            let was_first = std::mem::replace(&mut first, false);
            if seq <= last {
                if was_first && seq == last {
                    // The predecessor recorded `seq` but died before the ring freed
                    // it: the documented redelivery. Make sure it counts once.
                    received[seq as usize].store(1, Ordering::SeqCst);
                    ctl.redeliveries.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                ctl.bad_seq.store(seq, Ordering::SeqCst);
                return Err(code::DUPLICATE);
            }
            ctl.r_last.store(seq, Ordering::SeqCst);
            if received[seq as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                ctl.bad_seq.store(seq, Ordering::SeqCst);
                return Err(code::DUPLICATE);
            }
            Ok(())
        });
        match r {
            Ok(Ok(())) => deadline = Instant::now() + DEADLINE,
            Ok(Err(c)) => return c,
            Err(ReadError::Closed) => return code::OK,
            // The writer was killed; the harness starts a new one. Keep reading.
            Err(ReadError::PeerDied { .. }) if !left.is_zero() => {}
            Err(ReadError::PeerDied { .. } | ReadError::Timeout) => return code::TIMEOUT,
            Err(ReadError::Corrupt { .. }) => return code::CORRUPT,
            Err(_) => return code::ERROR,
        }
    }
}

/// Ring totals beyond [`Totals`].
#[derive(Debug, Default)]
pub struct RingTotals {
    /// The common figures.
    pub t: Totals,
    /// Writer kills.
    pub writer_kills: usize,
    /// Reader kills.
    pub reader_kills: usize,
    /// Messages delivered twice after a reader kill (the documented redelivery).
    pub redelivered: u64,
}

/// Runs the ring part.
pub fn run(cfg: &Config, seed: u64) -> Result<RingTotals, Violation> {
    let rounds = cfg.rounds(6, 200);
    let n = cfg.size(40_000, 200_000) as u64;
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = RingTotals::default();
    for round in 0..rounds {
        one_round(&mut rng, n, kills, &mut tot).map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round(rng: &mut Rng, n: u64, kills: usize, tot: &mut RingTotals) -> Result<(), Violation> {
    let name = unique_name("torture-ring");
    let _cleanup = ShmCleanup::new(&name);
    let _ring = Ring::create(&name, CAPACITY).map_err(|e| format!("create ring: {e}"))?;
    let control = Control::<RingCtl>::new(n as usize + 1);
    let ctl = control.ctl();
    ctl.w_next.store(1, Ordering::SeqCst);
    let received = control.bytes();

    let names = ["writer", "reader"];
    let mut fleet = Fleet::start(&names, |role| {
        let name = name.as_str();
        if role == 0 {
            spawn(|| writer(name, ctl, n))
        } else {
            spawn(|| reader(name, ctl, received, n))
        }
    });
    let mut inflight = HashSet::new();
    let (mut wk, mut rk) = (0, 0);
    for _ in 0..kills {
        // A round streams for some tens of milliseconds; kill somewhere inside.
        rng.pause(Duration::from_millis(40));
        match fleet.kill_random(rng, &[], 0)? {
            Some(0) => {
                wk += 1;
                let next = ld(&ctl.w_next);
                if (2..=n + 1).contains(&next) {
                    inflight.insert(next - 1);
                }
                fleet.restart(0);
            }
            Some(_) => {
                rk += 1;
                fleet.restart(1);
            }
            None => {}
        }
    }
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    let waited = fleet.wait(0, deadline).and_then(|()| fleet.wait(1, deadline));
    if let Err(e) = waited {
        return Err(format!("{e} (detail: seq {})", ld(&ctl.bad_seq)));
    }

    let lost = missing(received, n as usize, "message")?;
    if let Some(bad) = lost.iter().find(|s| !inflight.contains(s)) {
        return Err(format!(
            "message {bad} never arrived, but no writer was killed while writing it \
             (writer kills lost {inflight:?})"
        ));
    }
    let redelivered = ld(&ctl.redeliveries);
    if redelivered > rk as u64 {
        return Err(format!(
            "{redelivered} redeliveries for {rk} reader kills: at most one per kill"
        ));
    }
    tot.t.kills += wk + rk;
    tot.writer_kills += wk;
    tot.reader_kills += rk;
    tot.t.moved += n - lost.len() as u64;
    tot.t.lost += lost.len() as u64;
    tot.t.allowed += wk as u64;
    tot.t.recoveries += ld(&ctl.takeovers);
    tot.redelivered += redelivered;
    Ok(())
}
