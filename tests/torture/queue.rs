//! Part 2: two producers and two consumers share a named `Queue<u64>`; the harness
//! SIGKILLs a random one at random moments and restarts it.
//!
//! What a kill may cost, from the Queue's docs (`crates/typed/src/queue.rs`): a
//! producer killed inside `put` loses the item it was putting; a consumer killed
//! inside `get` loses the item it was getting; nothing else is lost or duplicated.
//! Here a producer stores "next index = i + 1" *before* putting item `i`, so the one
//! item a producer kill can lose is known (the harness reads it back after the kill).
//! A consumer marks each item in a shared byte map right after `get` returns; a
//! consumer killed inside `get`, or between `get` returning and the mark, loses one
//! item whose id is unknown: at most one per consumer kill.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::queue::{GetError, PutError, Queue};

use crate::common::{
    code, ld, spawn, AtomicsOnly, Config, Control, Fleet, Rng, Totals, Violation, DEADLINE,
};

/// Small, so producers often wait for room and slots are reused many laps.
const CAPACITY: usize = 64;
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
/// Largest pause before each kill (uniformly random below it).
const KILL_GAP: Duration = Duration::from_millis(30);

#[repr(C)]
struct QueueCtl {
    /// Per producer: the index it puts next (stored before the put).
    p_next: [AtomicU64; PRODUCERS],
    /// Detail of a failure reported by a child's exit code.
    bad_id: AtomicU64,
    /// Set by the harness after its last kill: producers stop putting.
    stop: AtomicU64,
}

// SAFETY: repr(C), atomics only.
unsafe impl AtomicsOnly for QueueCtl {}

/// Item ids are `1..=PRODUCERS * per`: producer `p`'s item `i` is `p * per + i + 1`.
fn producer(name: &str, ctl: &QueueCtl, p: usize, per: u64) -> i32 {
    let Ok(q) = Queue::<u64>::open(name) else {
        return code::OPEN;
    };
    loop {
        let i = ld(&ctl.p_next[p]);
        if i >= per || ld(&ctl.stop) != 0 {
            return code::OK;
        }
        // Intent first: a kill from here until `put` returns loses exactly this item.
        ctl.p_next[p].store(i + 1, Ordering::SeqCst);
        match q.put_timeout(p as u64 * per + i + 1, DEADLINE) {
            Ok(()) => {}
            Err(PutError::Timeout(_)) => return code::TIMEOUT,
            Err(_) => return code::ERROR,
        }
    }
}

fn consumer(name: &str, ctl: &QueueCtl, got: &[AtomicU8], total: u64) -> i32 {
    let Ok(q) = Queue::<u64>::open(name) else {
        return code::OPEN;
    };
    loop {
        match q.get_timeout(DEADLINE) {
            Ok(id) if id == 0 || id > total => {
                ctl.bad_id.store(id, Ordering::SeqCst);
                return code::CORRUPT;
            }
            Ok(id) => {
                if got[id as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                    ctl.bad_id.store(id, Ordering::SeqCst);
                    return code::DUPLICATE;
                }
            }
            Err(GetError::Closed) => return code::OK,
            Err(GetError::Timeout) => return code::TIMEOUT,
            Err(_) => return code::ERROR,
        }
    }
}

/// Queue totals beyond [`Totals`].
#[derive(Debug, Default)]
pub struct QueueTotals {
    /// The common figures.
    pub t: Totals,
    /// Producer kills.
    pub producer_kills: usize,
    /// Consumer kills.
    pub consumer_kills: usize,
    /// Lost items that were in flight in a killed producer (the rest were lost by
    /// killed consumers).
    pub lost_by_producers: u64,
}

/// Runs the queue part.
pub fn run(cfg: &Config, seed: u64) -> Result<QueueTotals, Violation> {
    let rounds = cfg.rounds(25, 200);
    // Upper bound of a producer's items per round (the harness stops them after its
    // kills).
    let per = 1 << 19;
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = QueueTotals::default();
    for round in 0..rounds {
        one_round(&mut rng, per, kills, &mut tot).map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round(
    rng: &mut Rng,
    per: u64,
    kills: usize,
    tot: &mut QueueTotals,
) -> Result<(), Violation> {
    let name = unique_name("torture-queue");
    let _cleanup = ShmCleanup::new(&name);
    let q = Queue::<u64>::create(&name, CAPACITY).map_err(|e| format!("create queue: {e}"))?;
    let total = PRODUCERS as u64 * per;
    let control = Control::<QueueCtl>::new(total as usize + 1);
    let ctl = control.ctl();
    let got = control.bytes();

    let names = ["producer 0", "producer 1", "consumer 0", "consumer 1"];
    let mut fleet = Fleet::start(&names, |role| {
        let name = name.as_str();
        if role < PRODUCERS {
            spawn(move || producer(name, ctl, role, per))
        } else {
            spawn(|| consumer(name, ctl, got, total))
        }
    });
    let detail = |e: Violation| format!("{e} (detail: id {})", ld(&ctl.bad_id));
    let mut inflight = HashSet::new();
    let (mut pk, mut ck) = (0, 0);
    for _ in 0..kills {
        rng.pause(KILL_GAP);
        match fleet.kill_random(rng, &[], 0).map_err(detail)? {
            Some(p) if p < PRODUCERS => {
                pk += 1;
                let next = ld(&ctl.p_next[p]);
                if next > 0 {
                    inflight.insert(p as u64 * per + next);
                }
                fleet.restart(p);
            }
            Some(c) => {
                ck += 1;
                fleet.restart(c);
            }
            None => {}
        }
    }
    rng.pause(KILL_GAP);
    ctl.stop.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    for p in 0..PRODUCERS {
        fleet.wait(p, deadline).map_err(detail)?;
    }
    // Every producer finished: close, and the consumers drain and exit.
    q.close();
    for c in PRODUCERS..PRODUCERS + CONSUMERS {
        fleet.wait(c, deadline).map_err(detail)?;
    }
    match q.try_get() {
        Err(GetError::Closed) => {}
        other => {
            return Err(format!(
                "after the drain the queue answered {other:?}, not Closed"
            ))
        }
    }

    // Producer p put (or tried to put) its items 0..p_next[p].
    let mut attempted = 0;
    let mut lost = HashSet::new();
    for p in 0..PRODUCERS {
        let sent = ld(&ctl.p_next[p]);
        attempted += sent;
        for i in 0..per {
            let id = p as u64 * per + i + 1;
            match (got[id as usize].load(Ordering::SeqCst), i < sent) {
                (0, true) => {
                    lost.insert(id);
                }
                (0, false) | (1, true) => {}
                (1, false) => return Err(format!("item {id} arrived but was never put")),
                (k, _) => return Err(format!("item {id} was delivered {k} times")),
            }
        }
    }
    let unexplained = lost.iter().filter(|id| !inflight.contains(id)).count();
    if unexplained > ck {
        return Err(format!(
            "{} items lost ({unexplained} not in flight in a killed producer) with {ck} consumer kills: \
             at most one per killed consumer; lost {:?}",
            lost.len(),
            lost.iter().take(10).collect::<Vec<_>>()
        ));
    }
    tot.t.kills += pk + ck;
    tot.producer_kills += pk;
    tot.consumer_kills += ck;
    tot.t.moved += attempted - lost.len() as u64;
    tot.t.lost += lost.len() as u64;
    tot.lost_by_producers += (lost.len() - unexplained) as u64;
    tot.t.allowed += (pk + ck) as u64;
    Ok(())
}
