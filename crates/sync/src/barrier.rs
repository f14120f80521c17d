//! A cyclic barrier in shared memory, as Python's `multiprocessing.Barrier`: `wait`
//! returns the arrival index; a timeout breaks the barrier for everyone
//! (`BrokenBarrierError`) until `reset`.
//!
//! `generation` is the futex word: `round << 1 | BROKEN`. The last arrival resets the
//! count and advances the round (Release), waking all; a waiter that times out sets
//! `BROKEN` (only if its round is still current), waking all.
//!
//! # A party that dies
//! A barrier learns its parties as they wait: each waiting *process* (pid + start
//! time; threads of one process share it) records itself in one of
//! [`PARTY_SLOTS`](Barrier::PARTY_SLOTS) (16) party slots on its first wait (or on
//! [`register`](Barrier::register)), and on every wait notes the round it arrived in.
//! Waiters sleep as the [`Mutex`](crate::Mutex)'s do: in 1 s safety slices while the
//! floor's death watcher watches every party that has not arrived (a party's exit
//! wakes them at once), else in paced slices from
//! [`OWNER_CHECK_INTERVAL`](crate::OWNER_CHECK_INTERVAL); when a slice ends (or the
//! watcher fires) with the round still open, a
//! waiter checks the recorded parties that have not arrived in this round, and if one
//! is dead (killed, exited, or its pid now names another process) it breaks the
//! barrier: every waiter gets [`BarrierError::PartyDied`] naming that pid, and so does
//! every later `wait` until [`reset`](Barrier::reset), like a timed-out barrier.
//!
//! Not covered (docs/reliability.md): a process that dies before its first wait (and
//! did not `register`) is unknown, so waiters wait until their timeout; so is a 17th
//! and later process when 16 others hold the slots; a process killed in the few
//! instructions between noting its round and counting its arrival looks arrived. A
//! party that leaves for good is reported as dead too: to replace a party by a new
//! process, `reset` the barrier while nobody waits (reset forgets the parties).

use std::time::{Duration, Instant};

use crate::atomic::{AtomicU32, AtomicU64, Ordering::*};
use crate::error::BarrierError;
use crate::futex::{Deadline, WaitOutcome};
use crate::owner::{ident_start, OwnerIdent};
use crate::wait::{spin_until, Futex, Waiter, WatchSet};
use shmkit_sys::watcher::SAFETY_SLICE;

const BROKEN: u32 = 1;
const ROUND: u32 = 2;
/// Set in a party slot's `arrived_in` (whose generation never has `BROKEN` set), so
/// that the zeroed "never arrived" value never equals an arrival.
const ARRIVED: u32 = 1;

/// One party slot. `#[repr(C)]`, 16 bytes, align 8.
#[repr(C)]
#[derive(Debug)]
struct PartySlot {
    /// `start_time_low32 << 32 | pid` of a process that waits on the barrier; 0 = free.
    ident: AtomicU64,
    /// `generation | ARRIVED` of the round it last arrived in; 0 = none yet.
    arrived_in: AtomicU32,
    _reserved: AtomicU32,
}

impl PartySlot {
    fn new() -> Self {
        PartySlot {
            ident: AtomicU64::new(0),
            arrived_in: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        }
    }
}

/// A barrier for a fixed number of parties. `#[repr(C)]`, 272 bytes, align 8,
/// pointer-free, `Sync`: the 16-byte counter words, then
/// [`PARTY_SLOTS`](Self::PARTY_SLOTS) 16-byte party slots (docs/layout.md; the layout
/// grew from 16 bytes when party slots were added). Not valid when zeroed (0 parties):
/// use [`Barrier::new`] or [`Barrier::init_in_place`].
///
/// A party process that dies before arriving breaks the barrier with
/// [`BarrierError::PartyDied`] (see the module docs).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sync::{Barrier, BarrierError};
///
/// let b = Barrier::new(2);
/// let (mine, theirs) = std::thread::scope(|s| {
///     let other = s.spawn(|| b.wait());
///     (b.wait(), other.join().unwrap())
/// });
/// let mut order = [mine?, theirs?];
/// order.sort();
/// assert_eq!(order, [0, 1]); // each party gets its arrival index
/// // A party that waits in vain breaks the barrier for everyone, until `reset`.
/// assert_eq!(b.wait_timeout(Duration::from_millis(10)), Err(BarrierError::Broken));
/// assert!(b.is_broken());
/// b.reset();
/// assert!(!b.is_broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct Barrier {
    /// Arrivals in the current round.
    arrived: AtomicU32,
    /// `round << 1 | BROKEN` (the futex word).
    generation: AtomicU32,
    /// Number of parties.
    parties: AtomicU32,
    /// The pid of the party whose death broke the barrier; 0 = none.
    dead_party: AtomicU32,
    /// The processes known to wait on this barrier.
    party_slots: [PartySlot; Barrier::PARTY_SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Barrier>() == 16 + 16 * Barrier::PARTY_SLOTS);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<Barrier>() == 8);

impl Barrier {
    /// How many party processes are recorded (and so reported if they die).
    #[cfg(not(loom))]
    pub const PARTY_SLOTS: usize = 16;
    /// Under loom every slot probe is a schedule point: keep models small.
    #[cfg(loom)]
    pub const PARTY_SLOTS: usize = 3;

    /// A barrier for `parties` parties.
    ///
    /// # Panics
    /// If `parties == 0`.
    pub fn new(parties: u32) -> Self {
        assert!(parties > 0, "a barrier needs at least one party");
        Barrier {
            arrived: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            dead_party: AtomicU32::new(0),
            party_slots: std::array::from_fn(|_| PartySlot::new()),
        }
    }

    /// Initialises a barrier in place.
    ///
    /// # Safety
    /// `ptr` must be valid for writes, 4-aligned, and not in use by anyone.
    ///
    /// # Panics
    /// If `parties == 0`.
    ///
    /// # Examples
    /// A parent and a forked child meet at a barrier in shared memory:
    pub unsafe fn init_in_place(ptr: *mut Self, parties: u32) {
        let b = Self::new(parties);
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(b) }
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        // Relaxed: fixed since initialisation.
        self.parties.load(Relaxed)
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.generation.load(Relaxed) & BROKEN != 0
    }

    /// Waits until all parties have arrived; returns this caller's arrival index
    /// (`0..parties`).
    ///
    /// # Errors
    /// [`BarrierError::PartyDied`] if a party process died before arriving (now or
    /// since the barrier broke); [`BarrierError::Broken`] if the barrier is or becomes
    /// broken otherwise.
    pub fn wait(&self) -> Result<usize, BarrierError> {
        self.wait_with(&Futex, None)
    }

    /// As [`wait`](Self::wait), but breaks the barrier (for everyone) if the other
    /// parties do not arrive within `timeout`.
    ///
    /// # Errors
    /// [`BarrierError::Broken`] on timeout or if the barrier is broken;
    /// [`BarrierError::PartyDied`] as for [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, BarrierError> {
        self.wait_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline` at most (an `Instant`
    /// too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<usize, BarrierError> {
        self.wait_with(&Futex, Some(&Deadline::at(deadline)))
    }

    /// Breaks the barrier: current and future waiters get `Broken` until `reset`.
    pub fn abort(&self) {
        self.abort_with(&Futex)
    }

    /// Makes a broken (or used) barrier fresh again, and forgets its parties (they are
    /// learned again from their next wait). Call it only while no party is waiting.
    pub fn reset(&self) {
        // Relaxed: nobody is waiting (documented precondition); the Release below
        // publishes the reset count with the new round.
        self.arrived.store(0, Relaxed);
        self.dead_party.store(0, Relaxed);
        for slot in &self.party_slots {
            slot.ident.store(0, Relaxed);
            slot.arrived_in.store(0, Relaxed);
        }
        let g = self.generation.load(Relaxed);
        self.generation
            .store((g & !BROKEN).wrapping_add(ROUND), Release);
        Futex.wake(&self.generation, u32::MAX);
    }

    /// Records this process as a party before its first wait, so that its death is
    /// reported to the waiters even if it dies before ever waiting. Waiting records it
    /// too; calling this again does nothing. Returns false if all
    /// [`PARTY_SLOTS`](Self::PARTY_SLOTS) hold other live processes (then its death is
    /// not reported).
    pub fn register(&self) -> bool {
        self.party_slot(&Futex, Futex.process()).is_some()
    }

    /// The party slot of process `me`: its own, else a free one, else one whose process
    /// is dead (a replacement takes its place). `None` if all hold live others.
    fn party_slot<W: Waiter>(&self, w: &W, me: OwnerIdent) -> Option<&PartySlot> {
        // Relaxed throughout: the slots publish no data; a party's own slot is only
        // ever written by that party's process (or a reclaimer once it is dead).
        if let Some(s) = self
            .party_slots
            .iter()
            .find(|s| s.ident.load(Relaxed) == me)
        {
            return Some(s);
        }
        // `arrived_in` is reset only once the slot is ours (never in a slot another
        // process may have just won).
        for s in &self.party_slots {
            if s.ident.load(Relaxed) == 0
                && s.ident.compare_exchange(0, me, Relaxed, Relaxed).is_ok()
            {
                s.arrived_in.store(0, Relaxed);
                return Some(s);
            }
        }
        for s in &self.party_slots {
            let v = s.ident.load(Relaxed);
            if v != 0
                && !Self::alive(w, v)
                && s.ident.compare_exchange(v, me, Relaxed, Relaxed).is_ok()
            {
                s.arrived_in.store(0, Relaxed);
                return Some(s);
            }
        }
        None
    }

    fn alive<W: Waiter>(w: &W, ident: OwnerIdent) -> bool {
        let start = (ident_start(ident) != 0).then(|| ident_start(ident));
        w.owner_alive(ident as u32, start)
    }

    /// A recorded party that has not arrived in round `current` and is dead, if any: its pid.
    #[cold]
    fn dead_party_in<W: Waiter>(&self, w: &W, current: u32) -> Option<u32> {
        for s in &self.party_slots {
            // Relaxed: a dead process's stores were made before the kernel tore it
            // down, and the /proc read that tells us it is dead comes after; a live
            // party's slot is only a hint here (it is re-read below).
            let v = s.ident.load(Relaxed);
            if v == 0 || s.arrived_in.load(Relaxed) == current | ARRIVED || Self::alive(w, v) {
                continue;
            }
            // Still that dead process, still not arrived (a replacement may have taken
            // the slot meanwhile).
            if s.ident.load(Relaxed) == v && s.arrived_in.load(Relaxed) != current | ARRIVED {
                return Some(v as u32);
            }
        }
        None
    }

    /// The error for a broken barrier: `PartyDied` if a death broke it.
    fn broken_error(&self) -> BarrierError {
        // Relaxed: stored before the Release CAS that set BROKEN, which the caller's
        // Acquire load of `generation` saw.
        match self.dead_party.load(Relaxed) {
            0 => BarrierError::Broken,
            pid => BarrierError::PartyDied { pid },
        }
    }

    fn abort_with<W: Waiter>(&self, w: &W) {
        // Relaxed: breaking publishes no data.
        self.generation.fetch_or(BROKEN, Relaxed);
        w.wake(&self.generation, u32::MAX);
    }

    /// Breaks round `current` because party `pid` died; `None` if the round had already
    /// ended or broken (the caller's loop then sees how).
    fn break_for_death<W: Waiter>(&self, w: &W, current: u32, pid: u32) -> Option<BarrierError> {
        // Relaxed: published by the Release CAS below. Only the first death is kept.
        let _ = self.dead_party.compare_exchange(0, pid, Relaxed, Relaxed);
        // Release: publishes `dead_party` to the waiters' Acquire load of the BROKEN
        // generation.
        match self
            .generation
            .compare_exchange(current, current | BROKEN, Release, Relaxed)
        {
            Ok(_) => {
                w.wake(&self.generation, u32::MAX);
                Some(self.broken_error())
            }
            Err(g) => {
                if g & BROKEN == 0 {
                    // The round completed after all (the party had arrived): forget
                    // the death we noted. (Relaxed: as above.)
                    let _ = self.dead_party.compare_exchange(pid, 0, Relaxed, Relaxed);
                }
                None
            }
        }
    }

    pub(crate) fn wait_with<W: Waiter>(
        &self,
        w: &W,
        deadline: Option<&Deadline>,
    ) -> Result<usize, BarrierError> {
        // Acquire: pairs with the Release round advance of the previous round, so the
        // count reset is visible before we add to it.
        let current = self.generation.load(Acquire);
        if current & BROKEN != 0 {
            return Err(self.broken_error());
        }
        if let Some(slot) = self.party_slot(w, w.process()) {
            // Relaxed: published with our arrival by the AcqRel fetch_add below; a
            // checker reads it only for a dead party (see dead_party_in).
            slot.arrived_in.store(current | ARRIVED, Relaxed);
        }
        // AcqRel: Release publishes our pre-barrier writes to the last arrival, Acquire
        // lets the last arrival see everyone's.
        let idx = self.arrived.fetch_add(1, AcqRel);
        if idx + 1 == self.parties() {
            // Relaxed: published by the Release CAS below.
            self.arrived.store(0, Relaxed);
            // Release: publishes every party's pre-barrier writes (gathered by the AcqRel
            // counts) to the waiters' Acquire loads.
            let advanced = self
                .generation
                .compare_exchange(current, current.wrapping_add(ROUND), Release, Relaxed)
                .is_ok();
            w.wake(&self.generation, u32::MAX);
            return if advanced {
                Ok(idx as usize)
            } else {
                Err(BarrierError::Broken)
            };
        }
        let mut pace = shmkit_sys::parker::CheckPace::new();
        let mut watched = WatchSet::new();
        loop {
            let g = spin_until(&self.generation, |g| g != current);
            if g == current | BROKEN {
                // Acquire: pairs with the breaker's Release, for `dead_party`.
                let _ = self.generation.load(Acquire);
                return Err(self.broken_error());
            }
            if g != current {
                // Acquire: pairs with the last arrival's Release.
                let _ = self.generation.load(Acquire);
                return Ok(idx as usize);
            }
            // Sleep in slices, as the Mutex's waiters do, to check the parties that
            // have not arrived: long safety slices when the death watcher watches
            // every one of them.
            // Relaxed: hints; each registration verifies its process after opening
            // its pidfd.
            let idents = self
                .party_slots
                .iter()
                .filter(|s| s.arrived_in.load(Relaxed) != current | ARRIVED)
                .map(|s| s.ident.load(Relaxed));
            watched.refresh(w, idents, &self.generation);
            let slice = if watched.all_watched() {
                Deadline::after(SAFETY_SLICE)
            } else {
                pace.next_slice(None)
            };
            let until = match deadline {
                Some(d) if *d < slice => d,
                _ => &slice,
            };
            let out = if watched.fired() {
                Ok(WaitOutcome::TimedOut)
            } else {
                w.wait(&self.generation, current, Some(until))
            };
            let out = match out {
                Ok(WaitOutcome::Woken) if watched.fired() => Ok(WaitOutcome::TimedOut),
                out => out,
            };
            let give_up = match out {
                Ok(WaitOutcome::TimedOut) if deadline.is_some_and(Deadline::has_passed) => {
                    BarrierError::Broken
                }
                Ok(WaitOutcome::TimedOut) => {
                    // A slice ended: is a party that has not arrived dead?
                    if let Some(pid) = self.dead_party_in(w, current) {
                        if let Some(e) = self.break_for_death(w, current, pid) {
                            return Err(e);
                        }
                    }
                    watched.forget_fired();
                    continue;
                }
                Ok(_) => continue,
                // A failing wait is never retried (a retry would fail at once): leave
                // as a timeout does, breaking the round so no party waits for us.
                Err(e) => BarrierError::Os(e),
            };
            // Break it only if our round is still current.
            // Relaxed: breaking publishes no data.
            match self
                .generation
                .compare_exchange(current, current | BROKEN, Relaxed, Relaxed)
            {
                Ok(_) => {
                    w.wake(&self.generation, u32::MAX);
                    return Err(give_up);
                }
                // The round completed (or broke) meanwhile: the next pass reports it.
                Err(_) => continue,
            }
        }
    }
}

/// Loom model of a barrier round (no lost wake-up, distinct indices). Run with:
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-sync --release --lib loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::wait::loom_model::{Kernel, LoomWaiter};
    use loom::sync::Arc;

    /// Three parties (two sleepers for the last arrival to wake, one wake for all)
    /// with at most two preemptions: a lost wake-up needs one or two (a waiter
    /// preempted between its check and its announcement, the releaser between its
    /// publish and its look for sleepers). With three this one model was most of CI's
    /// loom step (731 s here, against 56 s with two); with two it still fails when the
    /// last arrival wakes one sleeper instead of all (tried).
    #[test]
    fn loom_barrier_releases_every_party_with_distinct_indices() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let kernel = Kernel::with_dead(vec![]);
            let barrier = Arc::new(Barrier::new(3));
            let parties: Vec<_> = (1..=2)
                .map(|tid| {
                    let (barrier, kernel) = (barrier.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter { kernel, me: tid };
                        barrier.wait_with(&w, None).unwrap()
                    })
                })
                .collect();
            let mine = barrier
                .wait_with(&LoomWaiter { kernel, me: 3 }, None)
                .unwrap();
            let mut seen = 1u32 << mine;
            for p in parties {
                seen |= 1 << p.join().unwrap();
            }
            assert_eq!(seen, 0b111);
        });
    }

    /// A recorded party is dead and has not arrived: both live waiters are released
    /// with `PartyDied` naming it (one breaks the barrier, the other sees why), and
    /// the barrier stays broken.
    #[test]
    fn loom_barrier_dead_party_is_reported_to_every_waiter() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            const DEAD: u64 = 99;
            // Timed sleeps end at once: every liveness check finds the dead party.
            let kernel = Kernel::with_dead_probe(vec![DEAD as u32], |_| true);
            let barrier = Arc::new(Barrier::new(3));
            barrier.party_slots[0].ident.store(DEAD, Relaxed);
            let other = {
                let (barrier, kernel) = (barrier.clone(), kernel.clone());
                loom::thread::spawn(move || barrier.wait_with(&LoomWaiter { kernel, me: 1 }, None))
            };
            let mine = barrier.wait_with(&LoomWaiter { kernel, me: 2 }, None);
            let died = Err(BarrierError::PartyDied { pid: DEAD as u32 });
            assert_eq!(mine, died);
            assert_eq!(other.join().unwrap(), died);
            assert!(barrier.is_broken());
        });
    }
}
