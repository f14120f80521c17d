//! Part 3: several processes increment a counter under the `shmkit_sync::Mutex` of a
//! named `SharedValue<Ledger>`; the harness SIGKILLs one at random moments (often one
//! inside its critical section) and restarts it.
//!
//! An increment is several separate stores (an undo log, a "half-done" marker, the
//! counter, a check word, the worker's commit count, the marker cleared), so a holder
//! killed in between leaves the ledger half-updated. The next locker gets
//! `OwnerDied` with the guard, rolls a half-done increment back from the undo log (or
//! finds none), calls `make_consistent`, and carries on. At the end: the lock is free
//! and consistent (`try_lock` succeeds), no increment is half-done, the counter equals
//! the sum of committed increments, and each worker's commits match what it counted
//! (allowing the one increment a worker can commit and then die before counting),
//! and no `OwnerDied` was reported more often than a process was killed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit::{Pod, Zeroable};
use shmkit_sync::LockError;
use shmkit_testkit::{unique_name, ShmCleanup};
use shmkit_typed::SharedValue;

use crate::common::{
    code, ld, spawn, splitmix, AtomicsOnly, Config, Control, Fleet, Rng, Totals, Violation,
    DEADLINE,
};

const WORKERS: usize = 4;
/// Slow holds per round: a live worker keeps the lock for [`SLOW_HOLD`], longer than
/// two of the mutex's owner-check slices (`OWNER_CHECK_INTERVAL`, 10 ms), so waiters
/// check its liveness while it is alive and must not take the lock from it.
const SLOW_HOLDS: u64 = 2;
const SLOW_HOLD: Duration = Duration::from_millis(25);
/// Largest pause before each kill (uniformly random below it).
const KILL_GAP: Duration = Duration::from_millis(30);

/// The data behind the lock.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
#[bytemuck(crate = "shmkit::bytemuck")]
struct Ledger {
    counter: u64,
    /// `!counter` when consistent.
    check: u64,
    /// 0, or `worker + 1` while that worker's increment is half-done.
    marker: u64,
    /// Counter before the half-done increment.
    undo_counter: u64,
    /// The worker's commit count before the half-done increment.
    undo_commit: u64,
    /// Increments committed by each worker slot.
    commits: [u64; WORKERS],
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            check: !0,
            ..Ledger::zeroed()
        }
    }
}

#[repr(C)]
struct LockCtl {
    /// Per worker slot: increments it saw complete (counted after unlocking).
    done: [AtomicU64; WORKERS],
    /// Per worker slot: 1 while it holds the lock (lets the harness aim its kills).
    holding: [AtomicU64; WORKERS],
    /// `OwnerDied` results repaired.
    recoveries: AtomicU64,
    /// Of those, half-done increments rolled back.
    rollbacks: AtomicU64,
    /// Slow holds claimed this round (at most [`SLOW_HOLDS`] happen).
    slow_holds: AtomicU64,
    /// Set by the harness after its last kill: workers finish and exit.
    stop: AtomicU64,
}

// SAFETY: repr(C), atomics only.
unsafe impl AtomicsOnly for LockCtl {}

/// One store the compiler may not drop or reorder against the other volatile ones:
/// a process may die between any two of them.
fn put(field: &mut u64, v: u64) {
    // SAFETY: `field` is a valid, aligned, exclusive reference.
    unsafe { std::ptr::write_volatile(field, v) }
}

fn get(field: &u64) -> u64 {
    // SAFETY: `field` is a valid, aligned reference.
    unsafe { std::ptr::read_volatile(field) }
}

fn consistent(l: &Ledger) -> bool {
    get(&l.marker) == 0 && get(&l.check) == !get(&l.counter)
}

/// Repairs the ledger left by a dead holder; returns whether it rolled back.
fn repair(l: &mut Ledger) -> Result<bool, i32> {
    let marker = get(&l.marker);
    if marker == 0 {
        return if consistent(l) {
            Ok(false)
        } else {
            Err(code::INCONSISTENT)
        };
    }
    let w = (marker - 1) as usize;
    if w >= WORKERS {
        return Err(code::CORRUPT);
    }
    let c = get(&l.undo_counter);
    put(&mut l.counter, c);
    put(&mut l.check, !c);
    put(&mut l.commits[w], get(&l.undo_commit));
    put(&mut l.marker, 0);
    Ok(true)
}

/// One increment; `slow` holds the lock (half-done) that long in the middle.
fn increment(l: &mut Ledger, w: usize, slow: Option<Duration>) {
    put(&mut l.undo_counter, get(&l.counter));
    put(&mut l.undo_commit, get(&l.commits[w]));
    put(&mut l.marker, w as u64 + 1);
    put(&mut l.counter, get(&l.undo_counter) + 1);
    // Widen the half-done window a little, as real work under a lock would.
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    if let Some(d) = slow {
        // A live holder that keeps the lock across several of the waiters' owner
        // checks: they must keep waiting, never declare it dead.
        std::thread::sleep(d);
    }
    put(&mut l.check, !get(&l.counter));
    let committed = get(&l.commits[w]) + 1;
    put(&mut l.commits[w], committed);
    put(&mut l.marker, 0);
}

fn worker(name: &str, ctl: &LockCtl, w: usize) -> i32 {
    let Ok(v) = SharedValue::<Ledger>::open(name) else {
        return code::OPEN;
    };
    // Which of its increments this process makes slow (if the round still allows one).
    let slow_at = splitmix(u64::from(std::process::id())) % 1000;
    let mut i = 0u64;
    while ld(&ctl.stop) == 0 {
        let mut g = match v.lock_timeout(DEADLINE) {
            Ok(g) => {
                if !consistent(&g) {
                    return code::INCONSISTENT;
                }
                g
            }
            Err(LockError::OwnerDied(mut g)) => {
                match repair(&mut g) {
                    Ok(rolled_back) => {
                        if rolled_back {
                            ctl.rollbacks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(c) => return c,
                }
                g.make_consistent();
                ctl.recoveries.fetch_add(1, Ordering::SeqCst);
                g
            }
            Err(LockError::Poisoned(_)) => return code::POISONED,
            Err(LockError::Timeout) => return code::TIMEOUT,
            Err(_) => return code::ERROR,
        };
        ctl.holding[w].store(1, Ordering::SeqCst);
        let slow = (i == slow_at && ctl.slow_holds.fetch_add(1, Ordering::SeqCst) < SLOW_HOLDS)
            .then_some(SLOW_HOLD);
        i += 1;
        increment(&mut g, w, slow);
        ctl.holding[w].store(0, Ordering::SeqCst);
        drop(g);
        ctl.done[w].fetch_add(1, Ordering::SeqCst);
    }
    code::OK
}

/// Lock totals beyond [`Totals`].
#[derive(Debug, Default)]
pub struct LockTotals {
    /// The common figures.
    pub t: Totals,
    /// Kills of a process that had announced it held the lock just before (it may
    /// have released it by the time the signal landed: `recoveries` is exact).
    pub holder_kills: usize,
    /// Half-done increments rolled back.
    pub rollbacks: u64,
    /// Slow holds started (the holder may have been killed during one).
    pub slow_holds: u64,
    /// Increments committed whose worker died before counting them (allowed: one
    /// per kill).
    pub uncounted: u64,
}

/// Runs the locks part.
pub fn run(cfg: &Config, seed: u64) -> Result<LockTotals, Violation> {
    let rounds = cfg.rounds(25, 200);
    let kills = cfg.size(3, 6);
    let mut rng = Rng::new(seed);
    let mut tot = LockTotals::default();
    for round in 0..rounds {
        one_round(&mut rng, kills, &mut tot).map_err(|e| format!("round {round}: {e}"))?;
        tot.t.rounds += 1;
    }
    Ok(tot)
}

fn one_round(rng: &mut Rng, kills: usize, tot: &mut LockTotals) -> Result<(), Violation> {
    let name = unique_name("torture-lock");
    let _cleanup = ShmCleanup::new(&name);
    let value =
        SharedValue::create(&name, Ledger::new()).map_err(|e| format!("create value: {e}"))?;
    let control = Control::<LockCtl>::new(0);
    let ctl = control.ctl();

    let names = ["worker 0", "worker 1", "worker 2", "worker 3"];
    let mut fleet = Fleet::start(&names, |w| {
        let name = name.as_str();
        spawn(move || worker(name, ctl, w))
    });
    let mut killed = [0u64; WORKERS];
    for _ in 0..kills {
        rng.pause(KILL_GAP);
        // Half the time aim at a worker inside its critical section.
        let holders: Vec<usize> = (0..WORKERS).filter(|&w| ld(&ctl.holding[w]) != 0).collect();
        if let Some(w) = fleet.kill_random(rng, &holders, 128)? {
            killed[w] += 1;
            if holders.contains(&w) {
                tot.holder_kills += 1;
            }
            ctl.holding[w].store(0, Ordering::SeqCst);
            fleet.restart(w);
        }
    }
    rng.pause(KILL_GAP);
    ctl.stop.store(1, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + DEADLINE;
    for w in 0..WORKERS {
        fleet.wait(w, deadline)?;
    }

    let l = match value.try_lock() {
        Ok(g) => *g,
        Err(e) => {
            return Err(format!(
                "after every worker finished, try_lock failed: {e} (a lock left held or unrepaired)"
            ))
        }
    };
    if l.marker != 0 || l.check != !l.counter {
        return Err(format!(
            "the ledger is half-updated at the end: marker {}, counter {}, check {:#x}",
            l.marker, l.counter, l.check
        ));
    }
    let committed: u64 = l.commits.iter().sum();
    if l.counter != committed {
        return Err(format!(
            "counter {} != {committed} committed increments (commits {:?}): an update was lost",
            l.counter, l.commits
        ));
    }
    let mut uncounted = 0;
    for (w, (&c, &k)) in l.commits.iter().zip(&killed).enumerate() {
        let done = ld(&ctl.done[w]);
        if c < done || c - done > k {
            return Err(format!(
                "worker {w}: {c} committed, {done} counted, {k} kills: committed must be \
                 counted + at most one per kill"
            ));
        }
        uncounted += c - done;
    }
    let kills_made: u64 = killed.iter().sum();
    let recoveries = ld(&ctl.recoveries);
    if recoveries > kills_made {
        return Err(format!(
            "{recoveries} OwnerDied results for {kills_made} kills: owner death reported \
             for a holder that did not die"
        ));
    }
    tot.t.kills += kills_made as usize;
    tot.t.moved += l.counter;
    tot.t.recoveries += recoveries;
    tot.rollbacks += ld(&ctl.rollbacks);
    tot.slow_holds += ld(&ctl.slow_holds).min(SLOW_HOLDS);
    tot.uncounted += uncounted;
    Ok(())
}
