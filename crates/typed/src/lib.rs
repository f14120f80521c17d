//! # shmkit-typed
//!
//! Typed shared memory: `SharedValue<T>`, `SharedArray<T>`, an SPSC [`Ring`] of byte
//! messages and a bounded MPMC [`Queue<T>`].

pub mod ring;

mod process;
mod shim;

pub use ring::{ReadError, Ring, RingLayoutError, WriteError};
