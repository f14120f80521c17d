//! The atomics of the floor's algorithms: `std`'s normally, `loom`'s under `cfg(loom)`,
//! so the protocols (not the futex syscall) can be model-checked. Under loom the
//! layout guarantees of the shared-memory types do not hold (loom's atomics are
//! bookkeeping objects): only the loom models are built that way.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64};

pub use std::sync::atomic::Ordering;
