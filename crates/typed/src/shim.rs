//! Switches the atomics and the data cells between `std` (normal builds) and `loom`
//! (model checking, `--cfg loom`), so the index protocols of [`crate::ring`] and
//! [`crate::queue`] are checked by loom; their sleep/wake goes through the floor's
//! [`Parker`](shmkit_sys::Parker), which has its own loom futex model.

pub(crate) use shmkit_sys::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// The floor's deadline (under loom too: the loom models pass no deadline, and the
/// floor's [`Parker`](shmkit_sys::Parker) ignores its sleep slices under loom, where a
/// wait returns only when the event word changes).
pub(crate) use shmkit_sys::futex::Deadline;

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

/// The floor's [`Backoff`](shmkit_sys::Backoff), polling for [`POLL_TIME`] before a
/// futex sleep (spinning, with a `sched_yield` every few thousand spins so a peer on
/// our CPU can run), or not at all while `gauge` says polls keep running out (see
/// [`PollGauge`](shmkit_sys::backoff::PollGauge)). Each waiting side of a handle keeps
/// its own gauge.
pub(crate) fn poll_backoff(
    gauge: &shmkit_sys::backoff::PollGauge,
) -> shmkit_sys::backoff::GaugedPoll<'_> {
    gauge.poll(POLL_TIME)
}
