//! # shmkit-typed
//!
//! Typed shared memory: `SharedValue<T>`, `SharedArray<T>`, an SPSC [`Ring`] of byte
//! messages and a bounded MPMC [`Queue<T>`].

// Under loom only the algorithms are built and checked; the constructors over raw
// memory and segments are not.
#![cfg_attr(loom, allow(dead_code))]

mod error;
pub mod queue;
pub mod ring;
pub mod types;

#[cfg(all(test, loom))]
mod loom_tests;
mod process;
mod shim;

pub use error::{CreateError, OpenError, OpenOrCreateError};
pub use queue::{GetError, PutError, Queue, QueueLayoutError};
pub use ring::{ReadError, Ring, RingLayoutError, WriteError};
