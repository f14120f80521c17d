//! A counting semaphore in shared memory, as Python's `multiprocessing.Semaphore` and
//! `BoundedSemaphore`.
//!
//! `value` is the futex word (the number of permits); `waiters` counts sleepers so that
//! `release` makes the wake syscall only when someone sleeps.
//!
//! # Two ways to hold a permit
//! - [`acquire`](Semaphore::acquire) / [`release`](Semaphore::release): Python's plain
//!   counting semaphore. A permit taken this way belongs to nobody: it may be released
//!   by another process, or never (a permit used as a signal is *consumed*). A process
//!   that dies holding one does not give it back: nobody could tell a leaked permit from
//!   a consumed one.
//! - [`acquire_permit`](Semaphore::acquire_permit) (and its `try_`/`_timeout` forms):
//!   returns a [`SemaphorePermit`] that gives the permit back when dropped. The holding
//!   *process* (pid + start time, so any of its threads may drop the permit) is recorded
//!   in one of [`HOLDER_SLOTS`](Semaphore::HOLDER_SLOTS) (16) holder slots, each
//!   counting up to 1023 permits of one process. If the process dies (killed, exited,
//!   or its pid now names another process) with permits held, a waiter that finds no
//!   permit gives them back: waiters register the recorded holder processes with the
//!   floor's death watcher ([`shmkit_sys::watcher`]; a holder's exit wakes them at
//!   once) and sleep in 1 s safety slices, or, when a holder cannot be watched (no
//!   pidfd), in paced slices from [`OWNER_CHECK_INTERVAL`](crate::OWNER_CHECK_INTERVAL)
//!   (10 ms doubling to 80 ms); they check the recorded holders' liveness in `/proc`
//!   when a slice ends or the watcher fires, as the [`Mutex`](crate::Mutex)'s waiters do. The slot is cleared with a CAS, so each dead holder's permits are given
//!   back exactly once. Cost: one more CAS to record and one to un-record (measured
//!   uncontended on the 2-vCPU development machine: 22 ns per `acquire_permit` + drop,
//!   against 7 ns for `acquire` + `release`).
//!
//! - [`acquire_for_process`](Semaphore::acquire_for_process) (and its
//!   `try_`/`_timeout`/`_deadline` forms) / [`release_for_process`](Semaphore::release_for_process):
//!   the same recorded permits without a guard, for callers that cannot keep one across
//!   calls (the Python binding's `Semaphore.acquire`/`release`). The permit is held by
//!   the *process* until it calls `release_for_process`, which un-records one of its
//!   permits (or, holding none, releases a plain one, as a signal); a process that dies
//!   or exits holding some gives them back as above, each once. So they suit permits
//!   that are given back, not signals that are consumed: a process that took a
//!   signal this way and exited would hand it back.
//!
//! Not covered (docs/reliability.md): permits of a process that finds every slot taken
//! by 16 other live processes (or holds more than 16 × 1023) are counted but not
//! recorded, so they are not recovered if it dies ([`SemaphorePermit::is_tracked`]
//! says which); and a process killed in the few instructions between taking the
//! permit and recording it (or between un-recording it and giving it back) leaks that
//! one permit.

use std::fmt;
use std::time::{Duration, Instant};

use crate::atomic::{AtomicU32, AtomicU64, Ordering::*};
use crate::error::SemaphoreError;
use crate::futex::{Deadline, WaitOutcome};
use crate::owner::{ident_start, OwnerIdent};
use crate::wait::WatchSet;
use crate::wait::{Futex, Waiter, SPIN_LIMIT};
use shmkit_sys::watcher::SAFETY_SLICE;

/// A holder slot: `start_time_low32 << 32 | count << PID_BITS | pid`. Linux pids are
/// below `PID_MAX_LIMIT` = 2^22.
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
/// One permit in a holder slot's count (bits 22..32).
const ONE_PERMIT: u64 = 1 << PID_BITS;
const COUNT_MASK: u64 = 0x3FF << PID_BITS;
/// The most permits one slot counts.
const MAX_PER_SLOT: u64 = 0x3FF;
/// "No holder slot": the permit is counted but not recorded.
const NO_SLOT: usize = usize::MAX;

fn slot_count(v: u64) -> u64 {
    (v & COUNT_MASK) >> PID_BITS
}
fn slot_holder(v: u64) -> u64 {
    v & !COUNT_MASK
}

/// A counting semaphore. `#[repr(C)]`, 144 bytes, align 8, pointer-free, `Sync`; valid
/// when zeroed (value 0, unbounded). The 16-byte counter words, then
/// [`HOLDER_SLOTS`](Self::HOLDER_SLOTS) 8-byte holder slots (docs/layout.md; the
/// layout grew from 16 bytes when holder slots were added).
///
/// Permits taken with [`acquire_permit`](Self::acquire_permit) come back when their
/// process dies; permits taken with [`acquire`](Self::acquire) do not (see the module
/// docs).
///
/// # Examples
/// A bounded semaphore (Python's `BoundedSemaphore`) guarding two slots:
/// ```
/// use shmkit_sync::{Semaphore, SemaphoreError};
///
/// let slots = Semaphore::bounded(2, 2);
/// slots.acquire()?;
/// slots.try_acquire()?;
/// assert_eq!(slots.try_acquire(), Err(SemaphoreError::WouldBlock));
/// slots.release()?;
/// slots.release()?;
/// // One release too many is an error, not a silent third slot.
/// assert_eq!(slots.release(), Err(SemaphoreError::Overflow { max: 2 }));
/// assert_eq!(slots.value(), 2);
/// // A permit owned by a guard goes back on drop (or when its process dies).
/// {
///     let _p = slots.acquire_permit()?;
///     assert_eq!(slots.value(), 1);
/// }
/// assert_eq!(slots.value(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct Semaphore {
    /// Available permits (the futex word).
    value: AtomicU32,
    /// Processes/threads sleeping in `acquire`.
    waiters: AtomicU32,
    /// Upper bound for `release`; 0 = unbounded.
    max: AtomicU32,
    _reserved: AtomicU32,
    /// Processes holding permits taken with `acquire_permit`: `start_time_low32 << 32 |
    /// count << 22 | pid`, 0 = free.
    holders: [AtomicU64; Semaphore::HOLDER_SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Semaphore>() == 16 + 8 * Semaphore::HOLDER_SLOTS);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<Semaphore>() == 8);

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: snapshots.
        let tracked: u64 = self
            .holders
            .iter()
            .map(|h| slot_count(h.load(Relaxed)))
            .sum();
        f.debug_struct("Semaphore")
            .field("value", &self.value.load(Relaxed))
            .field("max", &self.max())
            .field("tracked_permits", &tracked)
            .finish_non_exhaustive()
    }
}

impl Semaphore {
    /// How many processes holding permits taken with
    /// [`acquire_permit`](Self::acquire_permit) are recorded (and so get their permits
    /// back to the others if they die).
    #[cfg(not(loom))]
    pub const HOLDER_SLOTS: usize = 16;
    /// Under loom every slot probe is a schedule point: two slots keep models small.
    #[cfg(loom)]
    pub const HOLDER_SLOTS: usize = 2;

    /// An unbounded semaphore with `initial` permits.
    pub fn new(initial: u32) -> Self {
        Self::make(initial, 0)
    }

    /// A bounded semaphore: `release` past `max` is [`SemaphoreError::Overflow`].
    ///
    /// # Panics
    /// If `initial > max` or `max == 0`.
    pub fn bounded(initial: u32, max: u32) -> Self {
        assert!(
            max > 0 && initial <= max,
            "bounded semaphore needs 0 <= initial <= max, max > 0"
        );
        Self::make(initial, max)
    }

    fn make(initial: u32, max: u32) -> Self {
        Semaphore {
            value: AtomicU32::new(initial),
            waiters: AtomicU32::new(0),
            max: AtomicU32::new(max),
            _reserved: AtomicU32::new(0),
            holders: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Initialises a semaphore in place (`max`: `None` = unbounded).
    ///
    /// # Safety
    /// `ptr` must be valid for writes, 4-aligned, and not in use by anyone.
    pub unsafe fn init_in_place(ptr: *mut Self, initial: u32, max: Option<u32>) {
        let s = match max {
            Some(m) => Self::bounded(initial, m),
            None => Self::new(initial),
        };
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(s) }
    }

    /// Takes a permit, waiting as long as needed. The permit belongs to nobody: if this
    /// process dies before releasing it, it is not given back (use
    /// [`acquire_permit`](Self::acquire_permit) for that).
    ///
    /// # Errors
    /// None today (the `Result` leaves room for future failure modes).
    pub fn acquire(&self) -> Result<(), SemaphoreError> {
        self.acquire_with(&Futex, None)
    }

    /// Takes a permit if one is available now.
    ///
    /// # Errors
    /// [`SemaphoreError::WouldBlock`] if none is.
    pub fn try_acquire(&self) -> Result<(), SemaphoreError> {
        let mut v = self.value.load(Relaxed);
        while v > 0 {
            // Acquire: pairs with the Release in `release`.
            match self.value.compare_exchange_weak(v, v - 1, Acquire, Relaxed) {
                Ok(_) => return Ok(()),
                Err(e) => v = e,
            }
        }
        Err(SemaphoreError::WouldBlock)
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] after at least `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// Takes a permit, waiting until `deadline` at most (an `Instant` too far ahead to
    /// reach means no deadline). See [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] once the deadline passed.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::at(deadline)))
    }

    /// Gives a permit back and wakes one sleeper, if any.
    ///
    /// # Errors
    /// [`SemaphoreError::Overflow`] if a bounded semaphore is already at its maximum.
    pub fn release(&self) -> Result<(), SemaphoreError> {
        self.release_with(&Futex)
    }

    /// The number of permits available now (a snapshot).
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot.
        self.value.load(Relaxed)
    }

    /// Waiters counted now (blocking and async), a snapshot for tests and diagnostics.
    pub fn waiters(&self) -> u32 {
        // Relaxed: a snapshot.
        self.waiters.load(Relaxed)
    }

    /// The maximum of a bounded semaphore (`None`: unbounded).
    pub fn max(&self) -> Option<u32> {
        // Relaxed: set at initialisation, before the semaphore was shared.
        match self.max.load(Relaxed) {
            0 => None,
            m => Some(m),
        }
    }

    pub(crate) fn acquire_with<W: Waiter>(
        &self,
        w: &W,
        deadline: Option<&Deadline>,
    ) -> Result<(), SemaphoreError> {
        let mut spins = SPIN_LIMIT;
        let mut pace = shmkit_sys::parker::CheckPace::new();
        // The death watcher's registrations for the recorded holders (their slot
        // words), refreshed when the slots change.
        let mut watched = WatchSet::new();
        loop {
            if self.try_acquire().is_ok() {
                return Ok(());
            }
            if spins > 0 {
                spins -= 1;
                crate::atomic::spin_hint();
                continue;
            }
            // AcqRel RMW, paired with the releaser's RMW on `waiters` (see release_with).
            self.waiters.fetch_add(1, AcqRel);
            // Sleep in slices, as the Mutex's waiters do, to check recorded holders:
            // long safety slices when the watcher watches every one of them.
            // Relaxed: hints; each registration verifies its process after opening
            // its pidfd.
            let idents = self.holders.iter().map(|s| s.load(Relaxed) & !COUNT_MASK);
            watched.refresh(w, idents, &self.value);
            let fired = || watched.fired();
            let slice = if watched.all_watched() {
                Deadline::after(SAFETY_SLICE)
            } else {
                pace.next_slice(None)
            };
            let until = match deadline {
                Some(d) if *d < slice => d,
                _ => &slice,
            };
            let out = if fired() {
                Ok(WaitOutcome::TimedOut)
            } else {
                w.wait(&self.value, 0, Some(until))
            };
            // Relaxed: only a hint for releasers.
            self.waiters.fetch_sub(1, Relaxed);
            // A failing wait is returned, never retried (a retry would fail at once).
            let out = out.map_err(SemaphoreError::Os)?;
            if out == WaitOutcome::TimedOut || fired() {
                if deadline.is_some_and(Deadline::has_passed) {
                    // A permit may have arrived just now: one last try.
                    return self.try_acquire().map_err(|_| SemaphoreError::Timeout);
                }
                self.reclaim_dead_holders(w);
                // A fired registration whose slot could not be reclaimed (the
                // judgement still says alive): paced checks for it, never a hot loop.
                watched.forget_fired();
            }
        }
    }

    /// Gives back the permits of recorded holders that are dead (exited, killed, or
    /// their pid now names another process). Exactly one caller reclaims each slot (the
    /// CAS). Returns how many permits were given back.
    #[cold]
    pub(crate) fn reclaim_dead_holders<W: Waiter>(&self, w: &W) -> u64 {
        let mut given = 0;
        for slot in &self.holders {
            // Relaxed: a hint, validated by the CAS below.
            let v = slot.load(Relaxed);
            if v == 0 {
                continue;
            }
            let start = (ident_start(v) != 0).then(|| ident_start(v));
            if w.owner_alive((v & PID_MASK) as u32, start) {
                continue;
            }
            // Acquire: pairs with the holder's Release when it recorded itself, so its
            // decrements of `value` happened-before our increments. Fails if another
            // waiter reclaimed it first (a dead process never changes its slot).
            if slot.compare_exchange(v, 0, Acquire, Relaxed).is_ok() {
                let n = slot_count(v);
                self.give_back(w, n as u32);
                given += n;
            }
        }
        given
    }

    /// Adds `n` permits (a dead holder's), saturating at the maximum, and wakes up to
    /// `n` sleepers.
    fn give_back<W: Waiter>(&self, w: &W, n: u32) {
        if n == 0 {
            return;
        }
        // Relaxed: fixed since initialisation.
        let max = match self.max.load(Relaxed) {
            0 => u32::MAX,
            m => m,
        };
        let mut v = self.value.load(Relaxed);
        loop {
            let to = v.saturating_add(n).min(max).max(v);
            // Release: pairs with the acquirers' Acquire CAS, as in release_with.
            match self.value.compare_exchange_weak(v, to, Release, Relaxed) {
                Ok(_) => break,
                Err(e) => v = e,
            }
        }
        // AcqRel RMW: as in release_with.
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            w.wake(&self.value, n);
        }
    }

    /// Records one permit for the process `me` (`start << 32 | pid`) in a holder slot:
    /// its own slot if it has one with room, else a free one. `NO_SLOT` if none.
    fn record_holder(&self, me: OwnerIdent) -> usize {
        if me & PID_MASK != me & 0xFFFF_FFFF {
            return NO_SLOT; // a pid too large to record (Linux pids never are)
        }
        let first = (me & PID_MASK) as usize % Self::HOLDER_SLOTS;
        for k in 0..Self::HOLDER_SLOTS {
            let i = (first + k) % Self::HOLDER_SLOTS;
            let slot = &self.holders[i];
            // Relaxed: a hint; the CAS decides.
            let mut v = slot.load(Relaxed);
            loop {
                let to = if v == 0 {
                    me | ONE_PERMIT
                } else if slot_holder(v) == me && slot_count(v) < MAX_PER_SLOT {
                    v + ONE_PERMIT
                } else {
                    break;
                };
                // Release: our decrement of `value` happens-before the increment of a
                // reclaimer whose Acquire CAS reads this (so it never comes first).
                match slot.compare_exchange_weak(v, to, Release, Relaxed) {
                    Ok(_) => return i,
                    Err(e) => v = e,
                }
            }
        }
        NO_SLOT
    }

    /// Un-records one permit of process `me` from slot `i`; false if the slot holds no
    /// permit of `me` (then the permit is not ours to give back).
    fn unrecord_holder(&self, me: OwnerIdent, i: usize) -> bool {
        let Some(slot) = self.holders.get(i) else {
            return true; // not recorded: nothing to un-record
        };
        // Relaxed: the slot publishes nothing; the permit is given back (Release) after.
        let mut v = slot.load(Relaxed);
        loop {
            if slot_holder(v) != me || slot_count(v) == 0 {
                return false;
            }
            let to = if slot_count(v) == 1 {
                0
            } else {
                v - ONE_PERMIT
            };
            match slot.compare_exchange_weak(v, to, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(e) => v = e,
            }
        }
    }

    /// Takes a permit that is given back when the returned guard is dropped, or when
    /// this process dies holding it (see the module docs). Waits as long as needed.
    ///
    /// # Errors
    /// None today (the `Result` leaves room for future failure modes).
    ///
    /// # Examples
    /// A pool of two connections shared by processes; a holder that is killed gives its
    /// connection back to the others:
    pub fn acquire_permit(&self) -> Result<SemaphorePermit<'_>, SemaphoreError> {
        self.acquire_with(&Futex, None)?;
        Ok(self.permit_taken(&Futex))
    }

    /// As [`acquire_permit`](Self::acquire_permit), if a permit is available now.
    ///
    /// # Errors
    /// [`SemaphoreError::WouldBlock`] if none is.
    pub fn try_acquire_permit(&self) -> Result<SemaphorePermit<'_>, SemaphoreError> {
        self.try_acquire()?;
        Ok(self.permit_taken(&Futex))
    }

    /// As [`acquire_permit`](Self::acquire_permit), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] after at least `timeout`.
    pub fn acquire_permit_timeout(
        &self,
        timeout: Duration,
    ) -> Result<SemaphorePermit<'_>, SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::after(timeout)))?;
        Ok(self.permit_taken(&Futex))
    }

    /// As [`acquire_permit`](Self::acquire_permit), waiting until `deadline` at most
    /// (an `Instant` too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] once the deadline passed.
    pub fn acquire_permit_deadline(
        &self,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'_>, SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::at(deadline)))?;
        Ok(self.permit_taken(&Futex))
    }

    pub(crate) fn permit_taken<W: Waiter>(&self, w: &W) -> SemaphorePermit<'_> {
        let holder = w.process();
        SemaphorePermit {
            sem: self,
            holder,
            slot: self.record_holder(holder),
        }
    }

    /// The futex word (permits) and the sleepers count, for the async acquire
    /// (`crate::future`).
    pub(crate) fn wait_words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.value, &self.waiters)
    }

    /// The holder processes recorded now (pid, start time low 32 bits), for the
    /// async acquire's death watch (`crate::future`).
    pub(crate) fn recorded_holders(&self) -> Vec<(u32, u64)> {
        self.holders
            .iter()
            // Relaxed: hints; the doorbell's watcher verifies each process.
            .map(|s| s.load(Relaxed))
            .filter(|&v| v != 0)
            .map(|v| ((v & PID_MASK) as u32, u64::from(ident_start(v))))
            .collect()
    }

    /// Gives back a permit taken by `permit_taken` for process `holder` in `slot`.
    pub(crate) fn release_permit_with<W: Waiter>(&self, w: &W, holder: OwnerIdent, slot: usize) {
        // A permit guard copied into a forked child is the parent's, not the child's.
        if w.process() != holder || !self.unrecord_holder(holder, slot) {
            return;
        }
        // Overflow only if someone over-released with `release`; nothing to report
        // from a drop, and the value is at its maximum anyway.
        let _ = self.release_with(w);
    }

    // ---- Permits held by this process, without a guard (process-scoped) ----

    /// Takes a permit held by this *process* until it calls
    /// [`release_for_process`](Self::release_for_process), or until it dies: then a
    /// waiter gives it back, as a [`SemaphorePermit`]'s. For callers that cannot keep a
    /// guard across calls (the Python binding). Waits as long as needed. Returns whether
    /// the permit is tracked (recorded in this process's holder slot; see
    /// [`SemaphorePermit::is_tracked`]).
    ///
    /// # Errors
    /// None today (the `Result` leaves room for future failure modes).
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let slots = Semaphore::bounded(2, 2);
    /// assert!(slots.acquire_for_process()?); // tracked: comes back if we die
    /// assert_eq!(slots.value(), 1);
    /// slots.release_for_process()?;
    /// assert_eq!(slots.value(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_for_process(&self) -> Result<bool, SemaphoreError> {
        self.acquire_with(&Futex, None)?;
        Ok(self.record_for_process(&Futex))
    }

    /// As [`acquire_for_process`](Self::acquire_for_process), if a permit is available
    /// now.
    ///
    /// # Errors
    /// [`SemaphoreError::WouldBlock`] if none is.
    pub fn try_acquire_for_process(&self) -> Result<bool, SemaphoreError> {
        self.try_acquire()?;
        Ok(self.record_for_process(&Futex))
    }

    /// As [`acquire_for_process`](Self::acquire_for_process), waiting at most
    /// `timeout`.
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] after at least `timeout`.
    pub fn acquire_for_process_timeout(&self, timeout: Duration) -> Result<bool, SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::after(timeout)))?;
        Ok(self.record_for_process(&Futex))
    }

    /// As [`acquire_for_process`](Self::acquire_for_process), waiting until `deadline`
    /// at most (an `Instant` too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// [`SemaphoreError::Timeout`] once the deadline passed.
    pub fn acquire_for_process_deadline(&self, deadline: Instant) -> Result<bool, SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::at(deadline)))?;
        Ok(self.record_for_process(&Futex))
    }

    /// Gives back one permit: one this process recorded with
    /// [`acquire_for_process`](Self::acquire_for_process) (or a guard's, if it holds no
    /// other), or, if it holds none, a plain permit as [`release`](Self::release) (a
    /// signal to another process; a forked child holds none of its parent's).
    ///
    /// # Errors
    /// [`SemaphoreError::Overflow`] if a bounded semaphore is already at its maximum
    /// (then a recorded permit of this process is un-recorded all the same: the count
    /// is full).
    pub fn release_for_process(&self) -> Result<(), SemaphoreError> {
        self.release_for_process_with(&Futex)
    }

    fn record_for_process<W: Waiter>(&self, w: &W) -> bool {
        self.record_holder(w.process()) != NO_SLOT
    }

    pub(crate) fn release_for_process_with<W: Waiter>(&self, w: &W) -> Result<(), SemaphoreError> {
        let me = w.process();
        // Un-record before giving back, as a guard's drop does (a reclaimer never
        // counts a permit that is already back). The probe order is record_holder's.
        let first = (me & PID_MASK) as usize % Self::HOLDER_SLOTS;
        for k in 0..Self::HOLDER_SLOTS {
            if self.unrecord_holder(me, (first + k) % Self::HOLDER_SLOTS) {
                break;
            }
        }
        self.release_with(w)
    }

    pub(crate) fn release_with<W: Waiter>(&self, w: &W) -> Result<(), SemaphoreError> {
        // Relaxed: fixed since initialisation.
        let max = self.max.load(Relaxed);
        let mut v = self.value.load(Relaxed);
        loop {
            if max != 0 && v >= max {
                return Err(SemaphoreError::Overflow { max });
            }
            if v == u32::MAX {
                return Err(SemaphoreError::Overflow { max: u32::MAX });
            }
            // Release: pairs with the acquirer's Acquire CAS.
            match self.value.compare_exchange_weak(v, v + 1, Release, Relaxed) {
                Ok(_) => break,
                Err(e) => v = e,
            }
        }
        // An RMW (not a load) on `waiters`, AcqRel: the two RMWs (ours, the sleeper's
        // increment) are ordered in `waiters`' modification order. If ours is first, the
        // sleeper's increment reads from it, so our permit happens-before the kernel's
        // check of `value` and it does not sleep; if the sleeper's is first, we see it
        // and wake. (A plain SeqCst load would do on hardware, but RMWs make the
        // argument one that loom can check: loom treats SeqCst as AcqRel.)
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            w.wake(&self.value, 1);
        }
        Ok(())
    }
}

/// A permit taken with [`Semaphore::acquire_permit`]: given back when dropped, or by a
/// waiter if this process dies first. Dropping it in a forked child that inherited it
/// does nothing (the parent's copy gives it back).
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    /// The process that took it (`start << 32 | pid`).
    holder: OwnerIdent,
    /// Its holder slot, or `NO_SLOT`.
    slot: usize,
}

impl SemaphorePermit<'_> {
    /// Whether this permit is recorded in a holder slot, so that it comes back if this
    /// process dies holding it (false only when all 16 slots hold other processes).
    pub fn is_tracked(&self) -> bool {
        self.slot != NO_SLOT
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("tracked", &self.is_tracked())
            .finish_non_exhaustive()
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release_permit_with(&Futex, self.holder, self.slot);
    }
}

/// Loom model of acquire/release (no lost wake-up: loom reports a deadlock if every
/// thread sleeps). Run with:
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-sync --release --lib loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::wait::loom_model::{Kernel, LoomWaiter};
    use loom::sync::Arc;

    #[test]
    fn loom_semaphore_release_wakes_a_sleeper() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let kernel = Kernel::with_dead(vec![]);
            let sem = Arc::new(Semaphore::new(0));
            let takers: Vec<_> = (1..=2)
                .map(|tid| {
                    let (sem, kernel) = (sem.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter { kernel, me: tid };
                        sem.acquire_with(&w, None).unwrap();
                    })
                })
                .collect();
            let w = LoomWaiter { kernel, me: 3 };
            sem.release_with(&w).unwrap();
            sem.release_with(&w).unwrap();
            for t in takers {
                t.join().unwrap();
            }
            assert_eq!(sem.value(), 0);
        });
    }

    /// A process died holding one recorded permit (slot 0) while two takers wait and
    /// one plain permit is released: both takers get a permit (one of them the dead
    /// holder's, given back exactly once), and the slot ends free.
    #[test]
    fn loom_semaphore_dead_holders_permit_is_given_back_once() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            const DEAD: u64 = 99;
            let sem = Arc::new(Semaphore::bounded(0, 2));
            sem.holders[0].store(DEAD | ONE_PERMIT, Relaxed);
            let probe = sem.clone();
            let kernel = Kernel::with_dead_probe(vec![DEAD as u32], move |_| {
                probe.holders[0].load(Relaxed) != 0
            });
            let takers: Vec<_> = (1..=2)
                .map(|tid| {
                    let (sem, kernel) = (sem.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter { kernel, me: tid };
                        sem.acquire_with(&w, None).unwrap();
                    })
                })
                .collect();
            let w = LoomWaiter { kernel, me: 3 };
            sem.release_with(&w).unwrap();
            for t in takers {
                t.join().unwrap();
            }
            assert_eq!(sem.value(), 0);
            assert_eq!(sem.holders[0].load(Relaxed), 0);
        });
    }
}
