//! A process-shared futex mutex that survives a dead holder.
//!
//! # The lock word
//! ```text
//!  bit 31      bit 30   bits 29..0
//! +-----------+--------+------------------+
//! | CONTENDED | unused | owner TID        |     0 = unlocked
//! +-----------+--------+------------------+
//! ```
//! This is std's three-state futex mutex (unlocked / locked / contended) with the
//! "locked" state spelled as the holder's thread id, so a waiter knows whom to check:
//! - lock fast path: one CAS `0 -> tid` (Acquire), then the owner's full identity
//!   (TID + start time) is stored in `owner`. No syscall.
//! - contended path (`#[cold]`): spin on loads, `sched_yield` a few times, then set
//!   `CONTENDED` and futex-wait. A waiter that takes the lock takes it as
//!   `tid | CONTENDED` (others may still sleep).
//! - unlock: clear `owner`, swap the word to 0 (Release) and `FUTEX_WAKE` one sleeper
//!   only if `CONTENDED` was set.
//!
//! # Owner death
//! We do not use the kernel's robust-futex list: glibc already registers one per thread
//! for pthread robust mutexes, and sharing it is fragile. Instead a waiter registers the
//! holder's *process* (its thread group, read once per holder change from
//! `/proc/<tid>/status`) with the floor's death watcher ([`shmkit_sys::watcher`]: one
//! thread per process epolling pidfds) and sleeps in 1 s safety slices; the process's
//! exit wakes it at once (p99 well under 100 ms). A holder *thread* that exits while its
//! process lives is not seen by the watcher: it is found at the end of a safety slice
//! (up to 1 s). Where no pidfd can be had (kernel before 5.3, holder in another pid
//! namespace) waiters sleep in paced slices from [`OWNER_CHECK_INTERVAL`] (10 ms)
//! doubling to 80 ms. Each time a slice ends (or the watcher fires) with the word
//! unchanged, the waiter checks whether the holder still exists (`/proc/<tid>/stat`: gone, zombie,
//! or a different start time = the TID was reused). The first waiter to find it dead
//! re-reads word and owner (both unchanged), CASes the word to itself and returns
//! `OwnerDied`; the `consistency` word records this until the new holder calls
//! `make_consistent`. Unlocking without that leaves the mutex *poisoned*: every later
//! lock still succeeds but reports `Poisoned` (never a deadlock). A holder that
//! dies between its CAS and its store of `owner` is still found: the TID alone is then
//! checked for existence.
//!
//! PID (TID) reuse: the start time recorded in `owner` tells a reused TID apart from the
//! original holder. What remains is a theoretical window where a holder unlocks, dies,
//! and its TID is reused *and* locks this same mutex between a waiter's reads; the
//! double read before the CAS makes that window a few instructions long.
//!
//! Fork: a child inherits no locks. The thread identity cache is reset in the child
//! (see [`crate::owner`]), so the child locks under its own TID; a guard copied into the
//! child by `fork` does not unlock its parent's lock (unlock checks the word's TID).
//!
//! Threads: ownership is per thread (like pthread mutexes); a thread that exits while
//! holding the lock counts as dead. Locking twice from one thread is `WouldDeadlock`.

use std::cell::UnsafeCell;
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::atomic::{AtomicU32, AtomicU64, Ordering::*};
use crate::error::{LockError, NotHeld, RawLockError};
use crate::futex::{Deadline, WaitOutcome};
use crate::guard::{Exclusive, LockGuard, RawLock, RawLockRepair, RawLockTimed};
use crate::owner::{ident_start, ident_tid, OwnerIdent, TID_MASK};
use crate::wait::{spin_until, yield_cpu, Futex, Waiter};
use shmkit_sys::parker::CheckPace;
use shmkit_sys::watcher::{WordWatch, SAFETY_SLICE};

/// Set in the lock word when a waiter may be asleep on it.
const CONTENDED: u32 = 1 << 31;

/// `consistency`: the data is consistent.
const CONSISTENT: u32 = 0;
/// `consistency`: the current holder took the lock from a dead owner and has not yet
/// called `make_consistent`.
const OWNER_DIED: u32 = 1;
/// `consistency`: a holder that got `OwnerDied` (or panicked) unlocked without
/// `make_consistent`.
const POISONED: u32 = 2;

/// How long a waiter first sleeps before checking whether the holder is still alive;
/// the lock waiters' later slices double up to
/// [`CHECK_CAP`](shmkit_sys::parker::CHECK_CAP) (80 ms), so a long wait costs little
/// CPU and a dead holder is still found within 80 ms.
pub const OWNER_CHECK_INTERVAL: Duration = shmkit_sys::parker::FIRST_CHECK;

/// `sched_yield`s between spinning and sleeping.
#[cfg(not(loom))]
const YIELDS: u32 = shmkit_sys::backoff::YIELD_LIMIT;
/// Under loom every yield is a schedule point: keep the model small.
#[cfg(loom)]
const YIELDS: u32 = 0;

/// How a [`RawMutex`] was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Normally; the data is consistent.
    Consistent,
    /// From a holder that died; the data may be half-updated. Call
    /// [`RawMutex::make_consistent`] once repaired.
    OwnerDied,
    /// Normally, but the mutex is poisoned (an earlier `OwnerDied` or panic was not
    /// followed by `make_consistent`).
    Poisoned,
}

/// A process-shared mutex word with owner-death detection, without data.
///
/// `#[repr(C)]`, 16 bytes, align 8, pointer-free, valid when zeroed (unlocked,
/// consistent) and `Sync`: place it in shared memory at any 8-aligned offset. It is
/// deliberately not padded to a cache line: the holder touches the lock and the data it
/// protects together. Put it in a `#[repr(C, align(128))]` wrapper when several
/// independent mutexes sit side by side.
///
/// A dead holder is reported as [`Acquired::OwnerDied`]; the scenario is worked out
/// on [`Mutex`].
///
/// # Examples
/// ```
/// use shmkit_sync::{Acquired, RawLockError, RawMutex};
///
/// let raw = RawMutex::new(); // or zeroed shared memory, or `RawMutex::init_in_place`
/// assert_eq!(raw.lock()?, Acquired::Consistent);
/// assert!(raw.is_locked());
/// // The holder locking again is an error, not a deadlock.
/// assert_eq!(raw.try_lock(), Err(RawLockError::WouldDeadlock));
/// // SAFETY: this thread holds the lock (taken above) and unlocks it once.
/// unsafe { raw.unlock() };
/// assert!(!raw.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct RawMutex {
    /// The futex word: `0`, or `owner_tid | CONTENDED?` (see the module docs).
    word: AtomicU32,
    /// `CONSISTENT`, `OWNER_DIED` or `POISONED`; only written by the holder.
    consistency: AtomicU32,
    /// The holder's identity `start_time_low32 << 32 | tid`, or 0. Written by the holder
    /// right after taking the word and cleared right before releasing it; read by
    /// waiters only to check liveness.
    owner: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawMutex>() == 16);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<RawMutex>() == 8);

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex")
            .field("word", &format_args!("{:#x}", self.word.load(Relaxed)))
            .field("consistency", &self.consistency.load(Relaxed))
            .finish()
    }
}

impl RawMutex {
    /// An unlocked, consistent mutex (all zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RawMutex {
            word: AtomicU32::new(0),
            consistency: AtomicU32::new(CONSISTENT),
            owner: AtomicU64::new(0),
        }
    }

    /// An unlocked, consistent mutex.
    #[cfg(loom)]
    pub fn new() -> Self {
        RawMutex {
            word: AtomicU32::new(0),
            consistency: AtomicU32::new(CONSISTENT),
            owner: AtomicU64::new(0),
        }
    }

    /// Initialises a mutex in place (writes zeros).
    ///
    /// # Safety
    /// `ptr` must be valid for writes of `size_of::<RawMutex>()` bytes, 8-aligned, and no
    /// other process or thread may be using a mutex at that address.
    pub unsafe fn init_in_place(ptr: *mut Self) {
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused; all-zero
        // bytes are a valid unlocked RawMutex.
        unsafe { std::ptr::write_bytes(ptr, 0, 1) }
    }

    /// Locks, waiting as long as needed. A dead holder is detected and replaced within
    /// about [`OWNER_CHECK_INTERVAL`].
    ///
    /// # Errors
    /// [`RawLockError::WouldDeadlock`] if the calling thread already holds it.
    #[inline]
    pub fn lock(&self) -> Result<Acquired, RawLockError> {
        self.lock_with(&Futex, None)
    }

    /// Locks if free right now; a dead holder is replaced (that check reads `/proc`).
    ///
    /// # Errors
    /// [`RawLockError::WouldBlock`] if someone alive holds it.
    #[inline]
    pub fn try_lock(&self) -> Result<Acquired, RawLockError> {
        self.try_lock_with(&Futex)
    }

    /// Locks, waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    /// [`RawLockError::Timeout`] after at least `timeout`; `WouldDeadlock` as [`lock`](Self::lock).
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, RawLockError> {
        self.lock_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// Locks, waiting until `deadline` at most (`None`: forever).
    ///
    /// # Errors
    /// As [`lock_timeout`](Self::lock_timeout).
    #[inline]
    pub fn lock_until(&self, deadline: Option<&Deadline>) -> Result<Acquired, RawLockError> {
        self.lock_with(&Futex, deadline)
    }

    /// Unlocks. If the holder took the lock as `OwnerDied` and did not call
    /// [`make_consistent`](Self::make_consistent), the mutex becomes poisoned.
    ///
    /// A call by a thread that does not hold the lock (for example a forked child
    /// dropping a guard it inherited from its parent) does nothing.
    ///
    /// # Safety
    /// The calling thread must hold the lock (every `lock` success is matched by at most
    /// one `unlock`); otherwise the protected data may be accessed concurrently.
    #[inline]
    pub unsafe fn unlock(&self) {
        self.unlock_with(&Futex, false)
    }

    /// Marks the protected data consistent again after `OwnerDied` or `Poisoned`.
    ///
    /// Only the thread that holds the lock may: any other caller (the lock is free, or
    /// held by another thread or process) gets [`NotHeld`] and changes nothing, so a
    /// stray call cannot declare someone else's half-made update repaired.
    ///
    /// # Errors
    /// [`NotHeld`] if the calling thread does not hold the lock.
    #[inline]
    pub fn make_consistent(&self) -> Result<(), NotHeld> {
        self.make_consistent_with(&Futex)
    }

    pub(crate) fn make_consistent_with<W: Waiter>(&self, w: &W) -> Result<(), NotHeld> {
        self.check_held(w)?;
        // Relaxed: written while holding the lock; the next holder reads it after its
        // Acquire of the word, which pairs with our Release in unlock.
        self.consistency.store(CONSISTENT, Relaxed);
        Ok(())
    }

    /// `Ok` if the calling thread holds the lock.
    #[inline]
    fn check_held<W: Waiter>(&self, w: &W) -> Result<(), NotHeld> {
        // Relaxed: see is_mine; only the holder can make the word name it.
        if self.is_mine(self.word.load(Relaxed), w.me()) {
            Ok(())
        } else {
            Err(NotHeld)
        }
    }

    /// Marks the data inconsistent (as a panicking holder does): every later holder is
    /// told `Poisoned` until one calls [`make_consistent`](Self::make_consistent).
    ///
    /// Only the thread that holds the lock may; see `make_consistent`.
    ///
    /// # Errors
    /// [`NotHeld`] if the calling thread does not hold the lock.
    #[inline]
    pub fn poison(&self) -> Result<(), NotHeld> {
        self.check_held(&Futex)?;
        // Relaxed: as in make_consistent.
        self.consistency.store(POISONED, Relaxed);
        Ok(())
    }

    /// Whether the mutex is poisoned (a snapshot).
    pub fn is_poisoned(&self) -> bool {
        // Relaxed: a snapshot for diagnostics.
        self.consistency.load(Relaxed) != CONSISTENT
    }

    /// Whether the calling thread holds the lock (no `/proc` read, no change to the
    /// lock: what `try_lock` answers with `WouldDeadlock`, without trying).
    #[inline]
    pub fn is_held_by_current_thread(&self) -> bool {
        self.check_held(&Futex).is_ok()
    }

    /// Whether someone holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        // Relaxed: a snapshot for diagnostics.
        self.word.load(Relaxed) != 0
    }

    /// Locks if nobody holds it right now: one CAS, never a liveness check, so no
    /// `/proc` read and no pid-namespace probe to set up (the uncontended fast path of
    /// a caller that keeps the lock across calls, such as the Python binding's
    /// `Lock.acquire`). `None` if the word names a holder, even a dead one (then
    /// [`try_lock`](Self::try_lock) or [`lock`](Self::lock) recovers it) or this thread.
    #[inline]
    pub fn try_lock_if_free(&self) -> Option<Acquired> {
        // Relaxed: a hint that spares a held lock's line the CAS; the CAS decides.
        if self.word.load(Relaxed) != 0 {
            return None;
        }
        let me = Futex.me();
        // Acquire: as in lock_with.
        self.word
            .compare_exchange(0, ident_tid(me), Acquire, Relaxed)
            .ok()
            .map(|_| self.took(me))
    }

    /// Unlocks if the calling thread holds the lock and returns `true`, as
    /// [`unlock`](Self::unlock); otherwise changes nothing and returns `false` (a
    /// `release` by a non-holder that the caller reports as an error). Safe: the
    /// ownership check is the one [`is_held_by_current_thread`](Self::is_held_by_current_thread) makes.
    #[inline]
    pub fn unlock_if_held(&self) -> bool {
        let me = Futex.me();
        // Relaxed: as in check_held.
        if !self.is_mine(self.word.load(Relaxed), me) {
            return false;
        }
        self.unlock_as(&Futex, me, false);
        true
    }

    #[inline]
    pub(crate) fn lock_with<W: Waiter>(
        &self,
        w: &W,
        deadline: Option<&Deadline>,
    ) -> Result<Acquired, RawLockError> {
        let me = w.me();
        // Acquire: pairs with the Release swap in `unlock_with`, so the previous holder's
        // writes to the data are visible to us.
        if self
            .word
            .compare_exchange(0, ident_tid(me), Acquire, Relaxed)
            .is_ok()
        {
            return Ok(self.took(me));
        }
        self.lock_contended(w, me, deadline)
    }

    pub(crate) fn try_lock_with<W: Waiter>(&self, w: &W) -> Result<Acquired, RawLockError> {
        let me = w.me();
        // Acquire: as in lock_with.
        match self
            .word
            .compare_exchange(0, ident_tid(me), Acquire, Relaxed)
        {
            Ok(_) => Ok(self.took(me)),
            Err(state) => {
                if self.is_mine(state, me) {
                    return Err(RawLockError::WouldDeadlock);
                }
                self.try_recover(w, state, me)
                    .ok_or(RawLockError::WouldBlock)
            }
        }
    }

    /// Bookkeeping right after winning the word normally.
    #[inline]
    fn took(&self, me: OwnerIdent) -> Acquired {
        // Relaxed: only read by waiters for the liveness check, which tolerates a stale
        // value (it then checks the TID alone).
        self.owner.store(me, Relaxed);
        // Relaxed: written by the previous holder before its Release unlock, which our
        // Acquire CAS synchronised with.
        match self.consistency.load(Relaxed) {
            CONSISTENT => Acquired::Consistent,
            _ => Acquired::Poisoned,
        }
    }

    #[inline]
    fn is_mine(&self, state: u32, me: OwnerIdent) -> bool {
        // Relaxed: if the word names our TID, `owner` is either our own earlier store
        // (program order) or a dead thread's identity, which differs from ours.
        state & TID_MASK == ident_tid(me) && self.owner.load(Relaxed) == me
    }

    #[cold]
    fn lock_contended<W: Waiter>(
        &self,
        w: &W,
        me: OwnerIdent,
        deadline: Option<&Deadline>,
    ) -> Result<Acquired, RawLockError> {
        let tid = ident_tid(me);
        let mut state = spin_until(&self.word, |v| v == 0);
        if state == 0 {
            // Acquire: as in lock_with.
            match self.word.compare_exchange(0, tid, Acquire, Relaxed) {
                Ok(_) => return Ok(self.took(me)),
                Err(s) => state = s,
            }
        }
        if self.is_mine(state, me) {
            return Err(RawLockError::WouldDeadlock);
        }
        let mut yields = 0;
        let mut pace = CheckPace::new();
        // The death watcher's registration for the current holder (its tid), made once
        // per holder change: while it holds, sleeps are long safety slices.
        let mut watched: Option<(u32, Option<WordWatch<'_>>)> = None;
        loop {
            if state == 0 {
                // Others may be asleep, so take it as contended: our unlock will wake one.
                // Acquire: as in lock_with.
                match self
                    .word
                    .compare_exchange(0, tid | CONTENDED, Acquire, Relaxed)
                {
                    Ok(_) => return Ok(self.took(me)),
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            // (YIELDS is 0 under loom, which clippy would flag as an absurd comparison.)
            #[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
            let yield_now = yields < YIELDS;
            if yield_now {
                yields += 1;
                yield_cpu();
                // Relaxed: a hint; the CAS above synchronises.
                state = self.word.load(Relaxed);
                continue;
            }
            if state & CONTENDED == 0 {
                // Relaxed: only announces a sleeper; no data is published by this.
                match self
                    .word
                    .compare_exchange(state, state | CONTENDED, Relaxed, Relaxed)
                {
                    Ok(_) => state |= CONTENDED,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            let holder = state & TID_MASK;
            if watched.as_ref().is_none_or(|(t, _)| *t != holder) {
                watched = Some((holder, self.watch_holder(w, holder)));
            }
            let reg = watched.as_ref().and_then(|(_, r)| r.as_ref());
            let slice = match reg {
                Some(_) => Deadline::after(SAFETY_SLICE),
                None => pace.next_slice(None),
            };
            let until = match deadline {
                Some(d) if *d < slice => d,
                _ => &slice,
            };
            let fired = |r: Option<&WordWatch<'_>>| r.is_some_and(WordWatch::fired);
            // A holder process that exited before the wait: recover now (the watcher
            // also wakes the word again every few ms until we unregister).
            let out = if fired(reg) {
                WaitOutcome::TimedOut
            } else {
                // A failing wait is returned, never retried: a retry would fail at once
                // again and spin on the CPU.
                w.wait(&self.word, state, Some(until))
                    .map_err(RawLockError::Os)?
            };
            if out == WaitOutcome::TimedOut || fired(reg) {
                if deadline.is_some_and(Deadline::has_passed) {
                    return Err(RawLockError::Timeout);
                }
                if let Some(a) = self.try_recover(w, state, me) {
                    return Ok(a);
                }
                if fired(reg) {
                    // Fired, yet not recovered (the word moved on, or the tid names a
                    // new thread): back to paced checks for this holder, never a hot
                    // loop on a fired registration.
                    watched = Some((holder, None));
                }
            }
            state = spin_until(&self.word, |v| v == 0);
        }
    }

    /// The death watcher's registration for holder thread `tid` (0: none), with the
    /// start time the owner word records for it, if any.
    fn watch_holder<'a, W: Waiter>(&'a self, w: &W, tid: u32) -> Option<WordWatch<'a>> {
        if tid == 0 {
            return None;
        }
        // Relaxed: a hint; the watcher verifies the thread after opening the pidfd.
        let ident = self.owner.load(Relaxed);
        let start =
            (ident_tid(ident) == tid && ident_start(ident) != 0).then(|| ident_start(ident));
        w.watch_holder(tid, start, &self.word)
    }

    /// If the holder named by `state` is dead, takes the lock from it.
    #[cold]
    fn try_recover<W: Waiter>(&self, w: &W, state: u32, me: OwnerIdent) -> Option<Acquired> {
        let tid = state & TID_MASK;
        if tid == 0 {
            return None;
        }
        // Relaxed: a liveness hint; re-checked below before acting on it.
        let ident = self.owner.load(Relaxed);
        let start =
            (ident_tid(ident) == tid && ident_start(ident) != 0).then(|| ident_start(ident));
        if w.owner_alive(tid, start) {
            return None;
        }
        // Relaxed: nothing moved while we looked (a live holder would have changed one).
        if self.word.load(Relaxed) != state || self.owner.load(Relaxed) != ident {
            return None;
        }
        // Acquire: the dead holder never released, but its stores reached memory before
        // the kernel tore it down; this keeps our reads of the data after the CAS.
        // Keep CONTENDED: others may be asleep.
        self.word
            .compare_exchange(state, ident_tid(me) | CONTENDED, Acquire, Relaxed)
            .ok()?;
        // Relaxed: as in `took`.
        self.owner.store(me, Relaxed);
        self.consistency.store(OWNER_DIED, Relaxed);
        Some(Acquired::OwnerDied)
    }

    #[inline]
    pub(crate) fn unlock_with<W: Waiter>(&self, w: &W, poison: bool) {
        self.unlock_as(w, w.me(), poison)
    }

    /// `unlock_with` for the thread `me` (the caller's own identity, read once).
    #[inline]
    fn unlock_as<W: Waiter>(&self, w: &W, me: OwnerIdent, poison: bool) {
        // Relaxed: while we hold the lock only the CONTENDED bit can change under us.
        if self.word.load(Relaxed) & TID_MASK != ident_tid(me) {
            return; // not ours (e.g. a guard inherited across fork)
        }
        // Relaxed: we hold the lock; these are ordered before the Release swap below.
        if poison || self.consistency.load(Relaxed) == OWNER_DIED {
            self.consistency.store(POISONED, Relaxed);
        }
        self.owner.store(0, Relaxed);
        // Release: publishes our writes to the data (and `consistency`) to the next
        // holder's Acquire CAS.
        let prev = self.word.swap(0, Release);
        if prev & CONTENDED != 0 {
            w.wake(&self.word, 1);
        }
    }
}

/// A value protected by a process-shared [`RawMutex`]; lives in shared memory.
///
/// `#[repr(C)]`: the raw mutex at offset 0, then the data. `T: ?Sized`, so `Mutex<[T]>`
/// works. Valid when zeroed if `T` is.
///
/// # Example: a holder that dies
/// This is shmkit's one worked dead-holder scenario; every other type that recovers
/// from a dead holder (the [table in the crate docs](crate), `SharedValue` and the
/// other typed homes) links here. A forked child takes the lock in an anonymous
/// segment, updates the counter and dies without unlocking (a `SIGKILL` would do the
/// same, and so would a thread that exits holding the lock). The next locker gets the
/// lock with `OwnerDied`, repairs and marks the data consistent; had it dropped the
/// guard instead, every later locker would be told `Poisoned` until someone repairs.
/// ```
/// use shmkit_segment::Segment;
/// use shmkit_sync::{LockError, Mutex};
///
/// let seg = Segment::options().anonymous().size(size_of::<Mutex<u64>>()).create()?;
/// // SAFETY: the payload is 128-byte aligned, large enough and zeroed, which is an
/// // unlocked `Mutex<u64>` holding 0; `seg` outlives every use of `counter`.
/// let counter = unsafe { &*seg.payload_ptr().cast::<Mutex<u64>>() };
/// // SAFETY: this example is single-threaded, so the child may run any code.
/// let child = unsafe { libc::fork() };
/// if child == 0 {
///     let mut guard = counter.lock().unwrap();
///     *guard += 1;
///     std::mem::forget(guard); // dies holding the lock, mid-update
///     // SAFETY: ends the child without running the parent's exit code.
///     unsafe { libc::_exit(0) }
/// }
/// // SAFETY: `child` is our child's pid; a null status pointer is allowed.
/// assert_eq!(unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) }, child);
/// let mut guard = match counter.lock() {
///     Ok(g) => g,
///     // The previous holder died mid-update: the lock is ours. Repair, then say so.
///     Err(LockError::OwnerDied(g)) | Err(LockError::Poisoned(g)) => {
///         g.make_consistent(); // (here the child's update happens to be complete)
///         g
///     }
///     // Timeout, WouldBlock, ... carry no guard: `?` them as a `'static` error.
///     Err(e) => return Err(e.without_guard().into()),
/// };
/// assert_eq!(*guard, 1);
/// *guard += 1;
/// drop(guard);
/// assert!(!counter.is_poisoned());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one thread at a time, so sharing it only
// requires that `T` can be sent between threads (as std's Mutex).
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T` it owns.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, waiting as long as needed.
    ///
    /// # Errors
    /// `OwnerDied(guard)` if the previous holder died holding it, `Poisoned(guard)` if an
    /// earlier such event was never followed by `make_consistent`; in both cases the lock
    /// is held. `WouldDeadlock` if this thread already holds it.
    ///
    /// # Examples
    /// Recovering from a holder that died mid-update (a thread that exits holding the
    /// lock counts as dead, as a killed process does):
    #[inline]
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.wrap(self.raw.lock())
    }

    /// Locks if the lock is free now (or its holder is dead).
    ///
    /// # Errors
    /// `WouldBlock` if a live holder has it; otherwise as [`lock`](Self::lock).
    #[inline]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.wrap(self.raw.try_lock())
    }

    /// Locks, waiting at most `timeout` (monotonic clock, absolute deadline).
    ///
    /// # Errors
    /// `Timeout` after at least `timeout`; otherwise as [`lock`](Self::lock).
    ///
    /// # Examples
    /// `_timeout(Duration)` and `_deadline(Instant)`, as every blocking call here has:
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shmkit_sync::{LockError, Mutex};
    ///
    /// let m = Mutex::new(0u32);
    /// let guard = m.lock().map_err(LockError::without_guard)?;
    /// let timed_out = std::thread::scope(|s| {
    ///     s.spawn(|| matches!(m.lock_timeout(Duration::from_millis(20)), Err(LockError::Timeout)))
    ///         .join()
    ///         .unwrap()
    /// });
    /// assert!(timed_out);
    /// drop(guard);
    /// // One deadline for several steps, however long each takes.
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(*m.lock_deadline(deadline).map_err(LockError::without_guard)?, 0);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    #[inline]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.wrap(self.raw.lock_timeout(timeout))
    }

    /// Locks, waiting until `deadline` at most (an `Instant` too far ahead to reach
    /// means no deadline). See [`lock_timeout`](Self::lock_timeout).
    ///
    /// # Errors
    /// `Timeout` once the deadline passed; otherwise as [`lock`](Self::lock).
    #[inline]
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.wrap(self.raw.lock_deadline(deadline))
    }

    /// Mutable access without locking (the `&mut` proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The raw mutex inside.
    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }

    /// Whether the mutex is poisoned (a snapshot).
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    #[inline]
    pub(crate) fn wrap(
        &self,
        r: Result<Acquired, RawLockError>,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        // SAFETY: `acquired` makes the guard only when `r` says the lock is held (by
        // this thread: it just took it), and `raw` protects `data`. `UnsafeCell::get`
        // is never null.
        crate::error::acquired(r, || unsafe {
            LockGuard::exclusive(&self.raw, NonNull::new_unchecked(self.data.get()))
        })
    }
}

impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// Access to a [`Mutex`]'s data while it is locked; unlocks on drop. Not `Send`.
///
/// The exclusive [`LockGuard`]: it derefs to `&mut T`, offers
/// [`make_consistent`](LockGuard::make_consistent) after `OwnerDied`/`Poisoned` and
/// [`MutexGuard::map`](LockGuard::map) (see the [`guard`](crate::guard) module). A
/// holder that panics poisons the mutex.
pub type MutexGuard<'a, T> = LockGuard<'a, Exclusive<'a, RawMutex>, T>;

// SAFETY: `RawMutex` is exclusive: the lock word names one holder at a time (the CAS
// from 0, or from a dead holder's word, which exactly one waiter wins).
unsafe impl RawLock for RawMutex {
    #[inline]
    fn lock(&self) -> Result<Acquired, RawLockError> {
        RawMutex::lock(self)
    }
    #[inline]
    fn try_lock(&self) -> Result<Acquired, RawLockError> {
        RawMutex::try_lock(self)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (this function's contract).
        unsafe { RawMutex::unlock(self) }
    }
}

// SAFETY: as for `RawLock`: `lock_until` takes the same word the same way.
unsafe impl RawLockTimed for RawMutex {
    #[inline]
    fn lock_until(&self, deadline: Option<&Deadline>) -> Result<Acquired, RawLockError> {
        RawMutex::lock_until(self, deadline)
    }
}

impl RawLockRepair for RawMutex {
    fn make_consistent(&self) -> Result<(), NotHeld> {
        RawMutex::make_consistent(self)
    }
    fn poison(&self) -> Result<(), NotHeld> {
        RawMutex::poison(self)
    }
    fn is_poisoned(&self) -> bool {
        RawMutex::is_poisoned(self)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_exits_holding_the_lock_counts_as_dead() {
        let m = std::sync::Arc::new(Mutex::new(1u32));
        let m2 = m.clone();
        std::thread::spawn(move || std::mem::forget(m2.lock().unwrap()))
            .join()
            .unwrap();
        assert!(m.raw().is_locked());
        let g = m.lock().expect_err("the holder thread is gone");
        assert!(g.is_owner_died());
        let g = g.into_guard().unwrap();
        assert_eq!(*g, 1);
        g.make_consistent();
        drop(g);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    fn held_by_current_thread_names_the_holder_only() {
        let m = std::sync::Arc::new(Mutex::new(()));
        assert!(!m.raw().is_held_by_current_thread(), "free");
        let g = m.lock().unwrap();
        assert!(m.raw().is_held_by_current_thread());
        let m2 = m.clone();
        let other = std::thread::spawn(move || m2.raw().is_held_by_current_thread());
        assert!(!other.join().unwrap(), "held, but by another thread");
        drop(g);
        assert!(!m.raw().is_held_by_current_thread(), "released");
    }

    /// (A unit test: this binary does not fork, so the panicking thread cannot leave
    /// a forked child waiting on the panic-hook lock.)
    #[test]
    fn panicking_holder_poisons() {
        let m = std::sync::Arc::new(Mutex::new(1u32));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert!(m.lock().is_err_and(|e| e.is_poisoned()));
    }

    #[test]
    fn zeroed_memory_is_an_unlocked_consistent_mutex() {
        let raw: RawMutex = unsafe_zeroed();
        assert!(!raw.is_locked());
        assert!(!raw.is_poisoned());
        assert_eq!(raw.try_lock(), Ok(Acquired::Consistent));
        // SAFETY: we hold it (just locked above).
        unsafe { raw.unlock() };
        assert!(!raw.is_locked());
    }

    fn unsafe_zeroed() -> RawMutex {
        // SAFETY: RawMutex is three atomics, for which all-zero bytes are valid values.
        unsafe { std::mem::zeroed() }
    }
}

/// Loom model of the lock word's state machine (the futex is modelled in
/// `wait::loom_model`). Run with:
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-sync --release --lib loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::wait::loom_model::{Kernel, LoomWaiter};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// Bounded preemptions keep the model under a couple of minutes (loom's advice;
    /// most concurrency bugs need very few preemptions).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    fn ident(tid: u32) -> OwnerIdent {
        (7u64 << 32) | u64::from(tid)
    }

    #[test]
    fn loom_mutex_excludes_and_never_loses_a_wakeup() {
        model(|| {
            let kernel = Kernel::with_dead(vec![]);
            let m = Arc::new((RawMutex::new(), UnsafeCell::new(0u32)));
            let threads: Vec<_> = (1..=2)
                .map(|tid| {
                    let (m, kernel) = (m.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter {
                            kernel,
                            me: ident(tid),
                        };
                        assert_eq!(m.0.lock_with(&w, None), Ok(Acquired::Consistent));
                        // UnsafeCell access: loom reports a race if exclusion fails.
                        // SAFETY: loom checks this access: the lock (or the joins) order it.
                        m.1.with_mut(|p| unsafe { *p += 1 });
                        m.0.unlock_with(&w, false);
                    })
                })
                .collect();
            let w = LoomWaiter {
                kernel,
                me: ident(3),
            };
            assert_eq!(m.0.lock_with(&w, None), Ok(Acquired::Consistent));
            // SAFETY: loom checks this access: the lock (or the joins) order it.
            m.1.with_mut(|p| unsafe { *p += 1 });
            m.0.unlock_with(&w, false);
            for t in threads {
                t.join().unwrap();
            }
            // SAFETY: loom checks this access: the lock (or the joins) order it.
            assert_eq!(m.1.with(|p| unsafe { *p }), 3);
            assert_eq!(m.0.word.load(Relaxed), 0);
        });
    }

    #[test]
    fn loom_mutex_dead_owner_is_replaced_exactly_once() {
        model(|| {
            const DEAD: u32 = 99;
            let kernel = Kernel::with_dead(vec![DEAD]);
            let m = Arc::new(RawMutex::new());
            // The dead thread holds it, with sleepers announced.
            m.word.store(DEAD | CONTENDED, Relaxed);
            m.owner.store(ident(DEAD), Relaxed);
            let threads: Vec<_> = (1..=2)
                .map(|tid| {
                    let (m, kernel) = (m.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter {
                            kernel,
                            me: ident(tid),
                        };
                        let a = m.lock_with(&w, None).unwrap();
                        if a == Acquired::OwnerDied {
                            m.make_consistent_with(&w).unwrap();
                        }
                        m.unlock_with(&w, false);
                        a
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let died = results
                .iter()
                .filter(|&&a| a == Acquired::OwnerDied)
                .count();
            assert_eq!(died, 1, "{results:?}");
            assert!(!m.is_poisoned());
            assert_eq!(m.word.load(Relaxed), 0);
        });
    }

    #[test]
    fn loom_mutex_ignored_owner_death_poisons() {
        model(|| {
            const DEAD: u32 = 99;
            let kernel = Kernel::with_dead(vec![DEAD]);
            let m = Arc::new(RawMutex::new());
            m.word.store(DEAD, Relaxed);
            let m2 = m.clone();
            let k2 = kernel.clone();
            let t = loom::thread::spawn(move || {
                let w = LoomWaiter {
                    kernel: k2,
                    me: ident(1),
                };
                let a = m2.lock_with(&w, None).unwrap();
                m2.unlock_with(&w, false); // no make_consistent
                a
            });
            let w = LoomWaiter {
                kernel,
                me: ident(2),
            };
            let mine = m.lock_with(&w, None).unwrap();
            m.unlock_with(&w, false);
            let theirs = t.join().unwrap();
            let mut got = [mine, theirs];
            got.sort_by_key(|a| *a as u8);
            assert_eq!(got, [Acquired::OwnerDied, Acquired::Poisoned]);
        });
    }
}
