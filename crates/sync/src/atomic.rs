//! The atomics the algorithms use: `std`'s normally, `loom`'s under `cfg(loom)`, so the
//! lock algorithms (not the futex syscall) can be model-checked.
//!
//! Under `cfg(loom)` the shared-memory layout guarantees (sizes, "valid when zeroed")
//! do not hold: loom's atomics are bookkeeping objects. Only the unit-level loom models
//! are meant to be built that way.

pub(crate) use shmkit_sys::atomic::{AtomicU32, AtomicU64, Ordering};
pub(crate) use shmkit_sys::backoff::spin_hint;
