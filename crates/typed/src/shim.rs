//! Switches the atomics and the futex calls between `std` (normal builds) and `loom`
//! (model checking, `--cfg loom`), so the index protocols of [`crate::ring`] and
//! [`crate::queue`] are checked by loom without the `futex(2)` syscall.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use shmkit_sync::futex::Deadline;

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
#[cfg(not(loom))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<&Deadline>) {
    let _ = shmkit_sync::futex::wait(word, expected, deadline);
}

/// Wakes up to `n` sleepers on `word`.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let _ = shmkit_sync::futex::wake(word, n);
}

/// Under loom a wait is a yield (a spurious wake-up, which every caller tolerates).
#[cfg(loom)]
pub(crate) fn futex_wait(_word: &AtomicU32, _expected: u32, _deadline: Option<&Deadline>) {
    loom::thread::yield_now();
}

/// Under loom a wake is a no-op (waits never block).
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
