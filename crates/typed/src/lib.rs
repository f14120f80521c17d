//! # shmkit-typed
//!
//! Typed shared memory: `SharedValue<T>`, `SharedArray<T>`, an SPSC [`Ring`] of byte
//! messages and a bounded MPMC [`Queue<T>`].

mod error;
pub mod queue;
pub mod ring;
pub mod types;

mod process;
mod shim;

pub use error::{CreateError, OpenError, OpenOrCreateError};
pub use queue::{GetError, PutError, Queue, QueueLayoutError};
pub use ring::{ReadError, Ring, RingLayoutError, WriteError};
