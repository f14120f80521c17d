//! A counting semaphore in shared memory, as Python's `multiprocessing.Semaphore` and
//! `BoundedSemaphore`.
//!
//! `value` is the futex word (the number of permits); `waiters` counts sleepers so that
//! `release` makes the wake syscall only when someone sleeps. Like Python's, a
//! semaphore has no owner: a process that dies holding a permit does not give it back.

use std::time::Duration;

use crate::atomic::{AtomicU32, Ordering::*};
use crate::error::SemaphoreError;
use crate::futex::{Deadline, WaitOutcome};
use crate::wait::{Futex, Waiter, SPIN_LIMIT};

/// A counting semaphore. `#[repr(C)]`, 16 bytes, pointer-free, `Sync`; valid when
/// zeroed (value 0, unbounded).
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct Semaphore {
    /// Available permits (the futex word).
    value: AtomicU32,
    /// Processes/threads sleeping in `acquire`.
    waiters: AtomicU32,
    /// Upper bound for `release`; 0 = unbounded.
    max: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Semaphore>() == 16);

impl Semaphore {
    /// An unbounded semaphore with `initial` permits.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let s = Semaphore::new(2);
    /// assert_eq!((s.value(), s.max()), (2, None));
    /// for _ in 0..3 {
    ///     s.release()?; // unbounded: may grow past its start value
    /// }
    /// assert_eq!(s.value(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(initial: u32) -> Self {
        Self::make(initial, 0)
    }

    /// A bounded semaphore: `release` past `max` is [`SemaphoreError::Overflow`].
    ///
    /// # Panics
    /// If `initial > max` or `max == 0`.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let pool = Semaphore::bounded(0, 4); // starts empty, at most 4 permits
    /// pool.release()?;
    /// assert_eq!((pool.value(), pool.max()), (1, Some(4)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
        }
    }

    /// Initialises a semaphore in place (`max`: `None` = unbounded).
    ///
    /// # Safety
    /// `ptr` must be valid for writes, 4-aligned, and not in use by anyone.
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::Segment;
    /// use shmkit_sync::Semaphore;
    ///
    /// let seg = Segment::options().anonymous().size(size_of::<Semaphore>()).create()?;
    /// let ptr = seg.payload_ptr().cast::<Semaphore>();
    /// // SAFETY: the payload is 128-byte aligned, large enough, and nobody uses it yet.
    /// unsafe { Semaphore::init_in_place(ptr, 3, Some(3)) };
    /// // SAFETY: initialised above; `seg` keeps the memory mapped while `sem` is used.
    /// let sem = unsafe { &*ptr };
    /// assert_eq!((sem.value(), sem.max()), (3, Some(3)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn init_in_place(ptr: *mut Self, initial: u32, max: Option<u32>) {
        let s = match max {
            Some(m) => Self::bounded(initial, m),
            None => Self::new(initial),
        };
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(s) }
    }

    /// Takes a permit, waiting as long as needed.
    ///
    /// # Errors
    /// None today (the `Result` leaves room for future failure modes).
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let done = Semaphore::new(0);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| done.release());
    ///     done.acquire() // waits for the release
    /// })?;
    /// assert_eq!(done.value(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire(&self) -> Result<(), SemaphoreError> {
        self.acquire_with(&Futex, None)
    }

    /// Takes a permit if one is available now.
    ///
    /// # Errors
    /// [`SemaphoreError::WouldBlock`] if none is.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::{Semaphore, SemaphoreError};
    ///
    /// let s = Semaphore::new(1);
    /// s.try_acquire()?;
    /// assert_eq!(s.try_acquire(), Err(SemaphoreError::WouldBlock)); // does not wait
    /// s.release()?;
    /// assert_eq!(s.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_sync::{Semaphore, SemaphoreError};
    ///
    /// let s = Semaphore::new(0);
    /// let r = s.acquire_timeout(Duration::from_millis(10));
    /// assert_eq!(r, Err(SemaphoreError::Timeout));
    /// s.release()?;
    /// s.acquire_timeout(Duration::from_millis(10))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), SemaphoreError> {
        self.acquire_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// Gives a permit back and wakes one sleeper, if any.
    ///
    /// # Errors
    /// [`SemaphoreError::Overflow`] if a bounded semaphore is already at its maximum.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let slots = Semaphore::new(1);
    /// slots.acquire()?;
    /// // ... use the slot ...
    /// slots.release()?; // wakes one waiter, if any sleeps (no syscall otherwise)
    /// assert_eq!(slots.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), SemaphoreError> {
        self.release_with(&Futex)
    }

    /// The number of permits available now (a snapshot).
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// let s = Semaphore::new(2);
    /// s.acquire()?;
    /// assert_eq!(s.value(), 1); // a snapshot
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot.
        self.value.load(Relaxed)
    }

    /// The maximum of a bounded semaphore (`None`: unbounded).
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::Semaphore;
    ///
    /// assert_eq!(Semaphore::new(0).max(), None);
    /// assert_eq!(Semaphore::bounded(0, 8).max(), Some(8));
    /// ```
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
            let out = w.wait(&self.value, 0, deadline);
            // Relaxed: only a hint for releasers.
            self.waiters.fetch_sub(1, Relaxed);
            // A failing wait is returned, never retried (a retry would fail at once).
            let out = out.map_err(SemaphoreError::Os)?;
            if out == WaitOutcome::TimedOut && deadline.is_some_and(Deadline::has_passed) {
                // A permit may have arrived just now: one last try.
                return self.try_acquire().map_err(|_| SemaphoreError::Timeout);
            }
        }
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
}
