//! Switches the atomics and the futex calls between `std` (normal builds) and `loom`
//! (model checking, `--cfg loom`), so the index protocols of [`crate::ring`] and
//! [`crate::queue`] are checked by loom without the `futex(2)` syscall.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use shmkit_sys::futex::Deadline;

/// Under loom there is no clock: deadlines never pass.
#[cfg(loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline;

#[cfg(loom)]
impl Deadline {
    pub(crate) fn after(_: std::time::Duration) -> Self {
        Deadline
    }
    pub(crate) fn has_passed(&self) -> bool {
        false
    }
}

/// Sleeps while `*word == expected` (or until `deadline`); spurious returns allowed.
/// An error means the futex cannot be slept on at all: callers return it as their
/// `Os` error and never retry it (a retry fails at once again: a hot loop).
#[cfg(not(loom))]
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&Deadline>,
) -> std::io::Result<()> {
    shmkit_sys::futex::wait(word, expected, deadline).map(drop)
}

/// Wakes up to `n` sleepers on `word`.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let _ = shmkit_sys::futex::wake(word, n);
}

/// Under loom a wait returns only once `*word` changed (loom has no clock, so the
/// deadline and the sleep slice never end it): a wake-up that the protocol loses then
/// leaves the waiter spinning for ever, which loom reports (it exceeds the model's
/// branch limit), instead of passing unnoticed as one more loop turn.
#[cfg(loom)]
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    _deadline: Option<&Deadline>,
) -> std::io::Result<()> {
    // Relaxed: the caller re-reads what it waits for after waking.
    while word.load(Ordering::Relaxed) == expected {
        loom::thread::yield_now();
    }
    Ok(())
}

/// Under loom a wake is a no-op: the waker's bump of the word is what ends a wait.
#[cfg(loom)]
pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {}

/// One step of a bounded busy-wait: a CPU pause hint (a loom yield under loom).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU to another runnable thread (a loom yield under loom).
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// A cell holding one `T` in a queue slot; under loom, loom's `UnsafeCell` so the
/// model also checks that data accesses are ordered by the slot stamps.
#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct DataCell<T>(std::cell::UnsafeCell<std::mem::MaybeUninit<T>>);

#[cfg(loom)]
pub(crate) struct DataCell<T>(loom::cell::UnsafeCell<std::mem::MaybeUninit<T>>);

impl<T: Copy> DataCell<T> {
    /// A cell for loom models.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        DataCell(loom::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()))
    }

    /// Stores `v`.
    ///
    /// # Safety
    /// The caller has exclusive access to the cell (it holds the slot's WRITING claim).
    pub(crate) unsafe fn write(&self, v: T) {
        #[cfg(not(loom))]
        // SAFETY: exclusive access per the caller's contract; the pointer is valid.
        unsafe {
            (*self.0.get()).write(v);
        }
        #[cfg(loom)]
        // SAFETY: as above.
        self.0.with_mut(|p| unsafe {
            (*p).write(v);
        });
    }

    /// Reads the value.
    ///
    /// # Safety
    /// The caller has exclusive access (it holds the READING claim) and a value was
    /// written (or `T` is valid for any bytes, as every queue element type is).
    pub(crate) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: exclusive access and an initialised value per the caller's contract.
        unsafe {
            (*self.0.get()).assume_init()
        }
        #[cfg(loom)]
        // SAFETY: as above.
        self.0.with(|p| unsafe { (*p).assume_init() })
    }
}

/// How long a blocked side polls before it sleeps on the futex: about what a futex
/// wake across CPUs costs here (~30 us), the classic "poll as long as blocking would
/// cost" rule. Measured on the idle 2-vCPU machine: a 64 B ring ping-pong takes ~0.3 us
/// with this, 44 us when every wait ended in a futex sleep after 2 us of polling.
pub(crate) const POLL_TIME: std::time::Duration = std::time::Duration::from_micros(50);
/// While polling, one `sched_yield` every this many spins (some 20-40 us): when the
/// peer shares our CPU (2 vCPUs, other load), pure spinning would only delay it
/// (measured under load: 20 us of pure spinning made a ping-pong 4x slower than a
/// pipe); on an idle CPU the yield returns at once.
pub(crate) const SPINS_PER_YIELD: u32 = 2048;
/// `sched_yield` calls under loom (where time does not pass).
#[cfg(loom)]
pub(crate) const YIELDS: u32 = 4;

/// Bounded spin-then-yield before a futex sleep.
pub(crate) struct Backoff {
    step: u32,
    #[cfg(not(loom))]
    start: Option<std::time::Instant>,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            step: 0,
            #[cfg(not(loom))]
            start: None,
        }
    }

    /// Waits a little; returns `false` once the caller should sleep instead.
    pub(crate) fn snooze(&mut self) -> bool {
        self.step += 1;
        #[cfg(not(loom))]
        {
            // Read the clock (vDSO, ~20 ns) only every 32 spins.
            if self.step % 32 == 1 {
                let now = std::time::Instant::now();
                if now.duration_since(*self.start.get_or_insert(now)) >= POLL_TIME {
                    return false;
                }
            }
            if self.step.is_multiple_of(SPINS_PER_YIELD) {
                yield_now();
            } else {
                spin_hint();
            }
        }
        #[cfg(loom)]
        {
            if self.step > YIELDS {
                return false;
            }
            yield_now();
        }
        true
    }
}
