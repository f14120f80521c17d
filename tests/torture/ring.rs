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
//!
//! The same part runs batched (`ring-batch`): the writer writes through
//! `Ring::write_batch` (a limit of 1 to 16 messages per publish, by pid) and the reader
//! reads with `Ring::read_batch` (up to 8 per head store). Then a killed writer loses
//! the messages of its unpublished batch (those after the last sequence it knew
//! published, `w_published`) and no others, and a killed reader's whole last batch
//! may be read again by its successor: a run of consecutive sequences, each at most
//! the last one recorded, at the start of the new reader's stream.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::ring::{ReadError, Ring, WriteError};

use crate::common::{
    code, ld, missing, running, spawn, splitmix, AtomicsOnly, Config, Control, Fleet, Rng, Totals,
    Violation, DEADLINE,
};

/// Data capacity: small, so the writer often waits for space and records wrap.
const CAPACITY: usize = 16 << 10;
/// Message header: sequence (8), length (4), reserved (4); trailer: checksum (8).
const MIN_LEN: usize = 24;
/// Longest message.
const MAX_LEN: usize = 1024;
/// Slow operations per round: a live writer (mid-message) or reader (mid-read) stalls
/// for [`SLOW_OP`], longer than two of the ring's liveness-check slices
/// (`SLEEP_SLICE`, 20 ms), so its blocked peer checks it while it is alive and must
/// not report `PeerDied`.
const SLOW_OPS: u64 = 2;
const SLOW_OP: Duration = Duration::from_millis(50);
/// Largest pause before each kill (uniformly random below it).
const KILL_GAP: Duration = Duration::from_millis(30);
/// Most messages one `read_batch` reads in the batched part (so at most this many are
/// read again after a reader kill).
const READ_BATCH: usize = 8;

/// Shared bookkeeping of one round.
#[repr(C)]
struct RingCtl {
    /// The sequence the writer writes next (1-based); stored before the write.
    w_next: AtomicU64,
    /// The last sequence the writer knows published (stored after each write; a batch
    /// holds the ones after it back).
    w_published: AtomicU64,
    /// The last sequence the reader recorded (0: none yet).
    r_last: AtomicU64,
    /// Redeliveries recognised by restarted readers.
    redeliveries: AtomicU64,
    /// Role takeovers: a writer or reader that started after a predecessor died.
    takeovers: AtomicU64,
    /// Detail of a failure reported by a child's exit code (a sequence number, or
    /// the pid of a peer reported dead while alive).
    bad_seq: AtomicU64,
    /// Set by the harness after its last kill: the writer finishes its message,
    /// closes the ring and exits; the reader drains and exits.
    stop: AtomicU64,
    /// 1 while the writer fills a reserved record (between the ring writing the
    /// record's length and publishing it): a kill then leaves a torn record behind.
    w_filling: AtomicU64,
    /// Slow operations claimed this round (at most [`SLOW_OPS`] happen).
    slow_ops: AtomicU64,
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

/// The sequence number of a message whose header is well-formed (length as long as
/// the sequence number says), or `None`.
fn header_seq(msg: &[u8], n: u64) -> Option<u64> {
    let seq = u64::from_le_bytes(msg.get(0..8)?.try_into().ok()?);
    let len = u32::from_le_bytes(msg.get(8..12)?.try_into().ok()?);
    (seq != 0 && seq <= n && msg.len() == msg_len(seq) && len as usize == msg.len()).then_some(seq)
}

/// Whether every byte of message `seq` is what the writer wrote (body and checksum).
fn body_ok(seq: u64, msg: &[u8]) -> bool {
    let mut expect = vec![0u8; msg.len()];
    fill(seq, &mut expect);
    expect == msg && checksum(&msg[..msg.len() - 8]).to_le_bytes() == msg[msg.len() - 8..]
}

fn writer(name: &str, ctl: &RingCtl, n: u64, batched: bool) -> i32 {
    let Ok(mut ring) = Ring::open(name) else {
        return code::OPEN;
    };
    if ld(&ctl.w_next) > 1 {
        ctl.takeovers.fetch_add(1, Ordering::SeqCst);
    }
    let salt = splitmix(u64::from(std::process::id()) ^ 0x57);
    let slow_at = salt % 2000;
    // 1: every message is published by its own write.
    let limit = if batched {
        1 + (salt >> 32) as usize % 16
    } else {
        1
    };
    let Ok(mut batch) = ring.write_batch(limit) else {
        return code::ERROR;
    };
    let mut i = 0u64;
    loop {
        let seq = ld(&ctl.w_next);
        if seq > n || ld(&ctl.stop) != 0 {
            break;
        }
        // Intent first: a kill from here until the publish loses `seq` (and, batched,
        // the pending ones before it).
        ctl.w_next.store(seq + 1, Ordering::SeqCst);
        let len = msg_len(seq);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = batch.write_with_timeout(len, left, |buf| {
                ctl.w_filling.store(1, Ordering::SeqCst);
                fill(seq, buf);
                if i == slow_at && ctl.slow_ops.fetch_add(1, Ordering::SeqCst) < SLOW_OPS {
                    std::thread::sleep(SLOW_OP);
                }
            });
            i += 1;
            ctl.w_filling.store(0, Ordering::SeqCst);
            match r {
                Ok(()) => break,
                // The reader was killed while the ring was full; the harness starts a
                // new one, which takes the role over. Nothing was written: retry.
                Err(WriteError::PeerDied { pid }) if running(pid) => {
                    ctl.bad_seq.store(u64::from(pid), Ordering::SeqCst);
                    return code::FALSE_DEATH;
                }
                Err(WriteError::PeerDied { .. }) if !left.is_zero() => {}
                Err(WriteError::PeerDied { .. } | WriteError::Timeout) => return code::TIMEOUT,
                // The reader stopped early without being killed: it failed, and its
                // exit code says why; this one only says the writer noticed.
                Err(WriteError::ReaderLeft { .. }) => return code::PEER_LEFT,
                Err(WriteError::Corrupt { .. }) => return code::CORRUPT,
                Err(_) => return code::ERROR,
            }
        }
        ctl.w_published
            .store(seq - batch.pending() as u64, Ordering::SeqCst);
    }
    drop(batch);
    match ring.close() {
        Ok(()) => code::OK,
        Err(_) => code::ERROR,
    }
}

fn reader(
    name: &str,
    ctl: &RingCtl,
    received: &[std::sync::atomic::AtomicU8],
    n: u64,
    batched: bool,
) -> i32 {
    let Ok(mut ring) = Ring::open(name) else {
        return code::OPEN;
    };
    let restarted = ld(&ctl.r_last) > 0;
    if restarted {
        ctl.takeovers.fetch_add(1, Ordering::SeqCst);
    }
    // While true, a message at or below the last one recorded is a redelivery of the
    // predecessor's last read (one message, or batched its last batch: consecutive).
    let mut redelivering = true;
    let mut prev = 0u64;
    let max = if batched { READ_BATCH } else { 1 };
    let slow_at = splitmix(u64::from(std::process::id()) ^ 0x52) % 2000;
    let mut i = 0u64;
    let mut deadline = Instant::now() + DEADLINE;
    let mut failed = None;
    let mut check = |msg: &[u8]| -> Result<(), i32> {
        let Some(seq) = header_seq(msg, n) else {
            let seq = msg.get(0..8).and_then(|b| b.try_into().ok());
            ctl.bad_seq
                .store(seq.map_or(0, u64::from_le_bytes), Ordering::SeqCst);
            return Err(code::CORRUPT);
        };
        let last = ld(&ctl.r_last);
        if seq <= last {
            let next_in_run = prev == 0 || seq == prev + 1;
            if !(redelivering && next_in_run && (batched || seq == last)) {
                ctl.bad_seq.store(seq, Ordering::SeqCst);
                return Err(code::DUPLICATE);
            }
            // The predecessor recorded `seq` but died before the ring freed it: the
            // documented redelivery. Make sure it counts once.
            received[seq as usize].store(1, Ordering::SeqCst);
            ctl.redeliveries.fetch_add(1, Ordering::SeqCst);
        } else {
            redelivering = false;
            ctl.r_last.store(seq, Ordering::SeqCst);
            if received[seq as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                ctl.bad_seq.store(seq, Ordering::SeqCst);
                return Err(code::DUPLICATE);
            }
        }
        prev = seq;
        if i == slow_at && ctl.slow_ops.fetch_add(1, Ordering::SeqCst) < SLOW_OPS {
            std::thread::sleep(SLOW_OP);
        }
        i += 1;
        // The full check comes after recording: it is the slowest part of a read,
        // so a reader killed mid-read often leaves a recorded message that the
        // ring has not freed yet, which exercises the redelivery above.
        if !body_ok(seq, msg) {
            ctl.bad_seq.store(seq, Ordering::SeqCst);
            return Err(code::CORRUPT);
        }
        Ok(())
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = ring.read_batch_timeout(max, left, |msg| {
            if failed.is_none() {
                failed = check(msg).err();
            }
        });
        if let Some(c) = failed {
            return c;
        }
        match r {
            Ok(_) => deadline = Instant::now() + DEADLINE,
            Err(ReadError::Closed) => return code::OK,
            // The writer was killed; the harness starts a new one. Keep reading.
            Err(ReadError::PeerDied { pid }) if running(pid) => {
                ctl.bad_seq.store(u64::from(pid), Ordering::SeqCst);
                return code::FALSE_DEATH;
            }
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
    /// Writer kills that landed while it was filling a reserved record (a torn
    /// record was left beyond the published tail).
    pub torn_kills: u64,
    /// Slow operations by a live writer or reader (their peer must not see PeerDied).
    pub slow_ops: u64,
}

/// Runs the ring part (`batched`: through `write_batch` / `read_batch`).
pub fn run(cfg: &Config, seed: u64, batched: bool) -> Result<RingTotals, Violation> {
    let rounds = cfg.rounds(25, 200);
    // Upper bound of a round's stream (the harness stops it after its kills).
    let n = 1 << 20;
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = RingTotals::default();
    for round in 0..rounds {
        one_round(&mut rng, n, kills, batched, &mut tot)
            .map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round(
    rng: &mut Rng,
    n: u64,
    kills: usize,
    batched: bool,
    tot: &mut RingTotals,
) -> Result<(), Violation> {
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
            spawn(|| writer(name, ctl, n, batched))
        } else {
            spawn(|| reader(name, ctl, received, n, batched))
        }
    });
    let mut inflight = HashSet::new();
    let (mut wk, mut rk) = (0, 0);
    for _ in 0..kills {
        rng.pause(KILL_GAP);
        let killed = fleet.kill_random(rng, &[], 0);
        let killed =
            killed.map_err(|e| format!("{e} (detail: sequence or pid {})", ld(&ctl.bad_seq)))?;
        match killed {
            Some(0) => {
                wk += 1;
                if ctl.w_filling.swap(0, Ordering::SeqCst) != 0 {
                    tot.torn_kills += 1;
                }
                // Written but maybe never published: after the last sequence the
                // writer knew published, up to the one it was writing.
                let next = ld(&ctl.w_next).min(n + 1);
                inflight.extend(ld(&ctl.w_published) + 1..next);
                fleet.restart(0);
            }
            Some(_) => {
                rk += 1;
                fleet.restart(1);
            }
            None => {}
        }
    }
    // Let the restarted process work a little, then stop the stream.
    rng.pause(KILL_GAP);
    ctl.stop.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    let waited = fleet
        .wait(0, deadline)
        .and_then(|()| fleet.wait(1, deadline));
    if let Err(e) = waited {
        return Err(format!(
            "{e} (detail: sequence or pid {})",
            ld(&ctl.bad_seq)
        ));
    }

    // Sequences the writers started: 1..=sent (a later one may be in the map only
    // if something is badly wrong, which `missing` then reports as well).
    let sent = (ld(&ctl.w_next) - 1).min(n);
    if let Some(s) = (sent + 1..=n).find(|&s| received[s as usize].load(Ordering::SeqCst) != 0) {
        return Err(format!("message {s} arrived but was never written"));
    }
    let lost = missing(received, sent as usize, "message")?;
    if let Some(bad) = lost.iter().find(|s| !inflight.contains(s)) {
        return Err(format!(
            "message {bad} never arrived, but no writer was killed while writing it \
             (writer kills lost {inflight:?})"
        ));
    }
    let redelivered = ld(&ctl.redeliveries);
    let per_kill = if batched { READ_BATCH } else { 1 };
    if redelivered > (rk * per_kill) as u64 {
        return Err(format!(
            "{redelivered} redeliveries for {rk} reader kills: at most {per_kill} per kill"
        ));
    }
    tot.t.kills += wk + rk;
    tot.writer_kills += wk;
    tot.reader_kills += rk;
    tot.t.moved += sent - lost.len() as u64;
    tot.t.lost += lost.len() as u64;
    tot.t.allowed += inflight.len() as u64;
    tot.t.recoveries += ld(&ctl.takeovers);
    tot.redelivered += redelivered;
    tot.slow_ops += ld(&ctl.slow_ops).min(SLOW_OPS);
    Ok(())
}
