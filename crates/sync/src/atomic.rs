//! The atomics the algorithms use: `std`'s normally, `loom`'s under `cfg(loom)`, so the
//! lock algorithms (not the futex syscall) can be model-checked.
//!
//! Under `cfg(loom)` the shared-memory layout guarantees (sizes, "valid when zeroed")
//! do not hold: loom's atomics are bookkeeping objects. Only the unit-level loom models
//! are meant to be built that way.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;

/// A spin-loop hint (`loom::thread::yield_now` under loom, so models stay finite).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
