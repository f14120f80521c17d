//! A condition variable in shared memory, used with [`Mutex`](crate::Mutex).
//!
//! `seq` is the futex word: a waiter reads it while holding the mutex, unlocks, and
//! sleeps only while `seq` is unchanged; every notify bumps `seq` first. A notify that
//! follows the waiter's check of its predicate (made under the mutex) therefore changes
//! `seq` after the waiter read it, and the kernel's compare refuses to sleep: no lost
//! wake-ups. `waiters` counts sleepers so notifies with nobody waiting make no syscall.
//! `notify_all` wakes every sleeper (no requeue onto the mutex: a thundering herd on
//! broadcast, accepted for simplicity).

use std::time::{Duration, Instant};

use crate::atomic::{AtomicU32, Ordering::*};
use crate::error::LockError;
use crate::futex::{Deadline, WaitOutcome};
use crate::mutex::MutexGuard;
use crate::wait::{Futex, Waiter};

/// A condition variable. `#[repr(C)]`, 8 bytes, pointer-free, `Sync`; valid when zeroed.
///
/// # Examples
/// ```
/// use shmkit_sync::{Condvar, Mutex};
///
/// // In shared memory, put both in one `#[repr(C)]` struct in a segment.
/// let (ready, cv) = (Mutex::new(false), Condvar::new());
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *ready.lock().unwrap() = true;
///         cv.notify_one();
///     });
///     // Sleeps until notified with the flag set (spurious wake-ups are handled).
///     let guard = cv.wait_while(ready.lock().unwrap(), |r| !*r).unwrap();
///     assert!(*guard);
/// });
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Condvar {
    /// Notification counter (the futex word).
    seq: AtomicU32,
    /// Sleepers in `wait*`.
    waiters: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Condvar>() == 8);

/// The result of [`Condvar::wait`] and friends: the re-locked guard, or the mutex's
/// `OwnerDied`/`Poisoned` (still carrying the guard).
pub type CondvarResult<'a, T> = Result<MutexGuard<'a, T>, LockError<MutexGuard<'a, T>>>;

impl Condvar {
    /// A new condition variable.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Condvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// A new condition variable.
    #[cfg(loom)]
    pub fn new() -> Self {
        Condvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Unlocks the guard's mutex, sleeps until notified (or spuriously), re-locks.
    ///
    /// # Errors
    /// What re-locking the mutex returned (`OwnerDied`/`Poisoned` carry the guard).
    /// [`LockError::Os`] if sleeping failed in the kernel: the mutex is then *not*
    /// locked again (the guard was given up to sleep), so the caller must lock anew.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> CondvarResult<'a, T> {
        self.wait_until(guard, None).0
    }

    /// As [`wait`](Self::wait), at most `timeout`; the `bool` is `true` if it timed out.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        let (r, timed_out) = self.wait_until(guard, Some(&Deadline::after(timeout)));
        r.map(|g| (g, timed_out))
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline` at most (an `Instant`
    /// too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_deadline<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        let (r, timed_out) = self.wait_until(guard, Some(&Deadline::at(deadline)));
        r.map(|g| (g, timed_out))
    }

    /// Waits while `condition` holds for the protected data.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> CondvarResult<'a, T> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits while `condition` holds, at most `timeout` in total; the `bool` is `true`
    /// if it gave up because of the timeout (the condition still held).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        self.wait_while_until(guard, Deadline::after(timeout), condition)
    }

    /// As [`wait_timeout_while`](Self::wait_timeout_while), until `deadline` at most
    /// (an `Instant` too far ahead to reach means no deadline).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_deadline_while<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
        condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        self.wait_while_until(guard, Deadline::at(deadline), condition)
    }

    fn wait_while_until<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        deadline: Deadline,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        while condition(&mut *guard) {
            if deadline.has_passed() {
                return Ok((guard, true));
            }
            guard = self.wait_until(guard, Some(&deadline)).0?;
        }
        Ok((guard, false))
    }

    /// Wakes one waiter (if any sleeps).
    pub fn notify_one(&self) {
        self.notify_with(&Futex, 1)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify_with(&Futex, u32::MAX)
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<&Deadline>,
    ) -> (CondvarResult<'a, T>, bool) {
        let (raw, data) = MutexGuard::parts(&guard);
        // Relaxed: the mutex orders this read before any notify that follows our
        // predicate check (see the module docs).
        let seq = self.seq.load(Relaxed);
        // AcqRel RMW, paired with the notifier's RMW on `waiters` (see notify_with).
        self.waiters.fetch_add(1, AcqRel);
        drop(guard);
        let out = Futex.wait(&self.seq, seq, deadline);
        // Relaxed: a hint for notifiers.
        self.waiters.fetch_sub(1, Relaxed);
        let out = match out {
            Ok(out) => out,
            // Returned, not retried: a retry would fail at once again. The mutex stays
            // unlocked; the caller gets no guard (see `wait`).
            Err(e) => return (Err(LockError::Os(e)), false),
        };
        // SAFETY: `acquired` makes the guard only once this thread holds the lock
        // again, and `raw` protects `data` (both came from the guard we were given).
        let relocked =
            crate::error::acquired(raw.lock(), || unsafe { MutexGuard::exclusive(raw, data) });
        (relocked, out == WaitOutcome::TimedOut)
    }

    fn notify_with<W: Waiter>(&self, w: &W, n: u32) {
        // Release: orders the bump before our RMW on `waiters` below.
        self.seq.fetch_add(1, Release);
        // An RMW on `waiters` (AcqRel): either the sleeper's increment reads from it
        // (then our bump happens-before the kernel's check of `seq` and it does not
        // sleep) or we see its increment and wake it. See Semaphore::release_with.
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            w.wake(&self.seq, n);
        }
    }
}
