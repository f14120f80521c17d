//! # shmkit-typed
//!
//! Typed shared memory: `SharedValue<T>`, `SharedArray<T>`, an SPSC [`Ring`] of byte
//! messages and a bounded MPMC [`Queue<T>`].

// Under loom only the algorithms are built and checked; the constructors over raw
// memory and segments are not.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
pub mod array;
mod error;
pub mod queue;
pub mod ring;
pub mod types;
#[cfg(not(loom))]
pub mod value;

#[cfg(all(test, loom))]
mod loom_tests;
mod process;
mod shim;

#[cfg(not(loom))]
pub use array::{ArrayError, SharedArray};
pub use error::{CreateError, OpenError, OpenOrCreateError};
pub use queue::{GetError, PutError, Queue, QueueLayoutError};
pub use ring::{ReadError, Ring, RingLayoutError, WriteError};
#[cfg(not(loom))]
pub use value::{RawValue, SharedValue};

pub use bytemuck;
pub use shmkit_sync::{LockError, MutexGuard};
