//! An event flag in shared memory, as `multiprocessing.Event`, with an auto-reset mode
//! (a `set` lets exactly one waiter through, then the flag is clear again).

use std::time::{Duration, Instant};

use crate::atomic::{AtomicU32, Ordering::*};
use crate::error::EventError;
use crate::futex::{Deadline, WaitOutcome};
use crate::wait::{Futex, Waiter};

/// An event. `#[repr(C)]`, 16 bytes, pointer-free, `Sync`; valid when zeroed (clear,
/// manual reset).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sync::Event;
///
/// let ready = Event::new();
/// assert!(!ready.wait_timeout(Duration::from_millis(1))?); // not set: times out
/// std::thread::scope(|s| {
///     s.spawn(|| ready.set());
///     ready.wait() // returns once set
/// })?;
/// assert!(ready.is_set()); // manual reset: stays set for every later waiter
/// ready.clear();
/// assert!(!ready.is_set());
/// // Auto-reset: each `set` releases exactly one waiter, then it is clear again.
/// let one = Event::new_auto_reset();
/// one.set();
/// assert!(one.wait_timeout(Duration::ZERO)?);
/// assert!(!one.is_set());
/// # Ok::<(), shmkit_sync::EventError>(())
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct Event {
    /// 0 = clear, 1 = set (the futex word).
    state: AtomicU32,
    /// Sleepers in `wait`, so `set` wakes only when someone sleeps.
    waiters: AtomicU32,
    /// 0 = manual reset, 1 = auto reset.
    auto: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Event>() == 16);

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A clear manual-reset event (stays set until `clear`, wakes every waiter).
    pub fn new() -> Self {
        Self::make(0)
    }

    /// A clear auto-reset event: each `set` releases exactly one waiter and the event
    /// is clear again.
    pub fn new_auto_reset() -> Self {
        Self::make(1)
    }

    fn make(auto: u32) -> Self {
        Event {
            state: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            auto: AtomicU32::new(auto),
            _reserved: AtomicU32::new(0),
        }
    }

    /// Initialises an event in place.
    ///
    /// # Safety
    /// `ptr` must be valid for writes, 4-aligned, and not in use by anyone.
    ///
    /// # Examples
    /// A forked child signals its parent through an event in shared memory:
    pub unsafe fn init_in_place(ptr: *mut Self, auto_reset: bool) {
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unused.
        unsafe { ptr.write(Self::make(u32::from(auto_reset))) }
    }

    pub(crate) fn is_auto(&self) -> bool {
        // Relaxed: fixed since initialisation.
        self.auto.load(Relaxed) != 0
    }

    /// Sets the flag and wakes the waiters (one, for an auto-reset event).
    pub fn set(&self) {
        self.set_with(&Futex)
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing.
        self.state.store(0, Relaxed);
    }

    /// Whether the flag is set (a snapshot).
    pub fn is_set(&self) -> bool {
        // Acquire: a `true` answer orders later reads after the setter's writes.
        self.state.load(Acquire) != 0
    }

    /// Waiters counted now (blocking and async), a snapshot for tests and diagnostics.
    pub fn waiters(&self) -> u32 {
        // Relaxed: a snapshot.
        self.waiters.load(Relaxed)
    }

    /// Waits until the flag is set (and, for auto reset, consumes it).
    ///
    /// # Errors
    /// [`EventError::Os`] if sleeping failed in the kernel (never in normal use).
    pub fn wait(&self) -> Result<(), EventError> {
        self.wait_with(&Futex, None).map(drop)
    }

    /// Waits at most `timeout`; returns whether the flag was set (as Python's
    /// `Event.wait(timeout)`).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, EventError> {
        self.wait_with(&Futex, Some(&Deadline::after(timeout)))
    }

    /// Waits until `deadline` at most (an `Instant` too far ahead to reach means no
    /// deadline); returns whether the flag was set. See [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<bool, EventError> {
        self.wait_with(&Futex, Some(&Deadline::at(deadline)))
    }

    pub(crate) fn try_take(&self) -> bool {
        if self.is_auto() {
            // Acquire: pairs with the Release part of `set`'s swap.
            self.state.compare_exchange(1, 0, Acquire, Relaxed).is_ok()
        } else {
            self.is_set()
        }
    }

    /// The futex word (0 = clear) and the sleepers count, for the async wait
    /// (`crate::future`).
    pub(crate) fn words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.state, &self.waiters)
    }

    pub(crate) fn set_with<W: Waiter>(&self, w: &W) {
        // Release: pairs with the waiters' Acquire loads of `state`.
        self.state.swap(1, Release);
        // An RMW on `waiters` (AcqRel), paired with the sleeper's increment: either the
        // sleeper's RMW reads from ours (then the flag happens-before the kernel's check
        // and it does not sleep) or ours sees its increment and we wake it. See
        // Semaphore::release_with for why an RMW and not a SeqCst load.
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            if self.is_auto() {
                w.wake(&self.state, 1);
            } else {
                w.wake(&self.state, u32::MAX);
            }
        }
    }

    pub(crate) fn wait_with<W: Waiter>(
        &self,
        w: &W,
        deadline: Option<&Deadline>,
    ) -> Result<bool, EventError> {
        loop {
            if self.try_take() {
                return Ok(true);
            }
            // AcqRel: see set_with.
            self.waiters.fetch_add(1, AcqRel);
            let out = w.wait(&self.state, 0, deadline);
            // Relaxed: a hint for setters.
            self.waiters.fetch_sub(1, Relaxed);
            // A failing wait is returned, never retried (a retry would fail at once).
            let out = out.map_err(EventError::Os)?;
            if out == WaitOutcome::TimedOut && deadline.is_some_and(Deadline::has_passed) {
                return Ok(self.try_take());
            }
        }
    }
}

/// Loom model of set/wait (no lost wake-up). Run with:
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-sync --release --lib loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::wait::loom_model::{Kernel, LoomWaiter};
    use loom::sync::Arc;

    #[test]
    fn loom_event_set_wakes_every_waiter() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let kernel = Kernel::with_dead(vec![]);
            let ev = Arc::new(Event::new());
            let waiters: Vec<_> = (1..=2)
                .map(|tid| {
                    let (ev, kernel) = (ev.clone(), kernel.clone());
                    loom::thread::spawn(move || {
                        let w = LoomWaiter { kernel, me: tid };
                        assert_eq!(ev.wait_with(&w, None), Ok(true));
                    })
                })
                .collect();
            ev.set_with(&LoomWaiter { kernel, me: 3 });
            for t in waiters {
                t.join().unwrap();
            }
        });
    }
}
