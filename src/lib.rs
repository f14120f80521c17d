//! # shmkit
//!
//! Inter-process communication over shared memory for Rust: segments created and
//! opened safely ([`segment`]), locks that live inside a segment and survive a
//! crashed holder ([`sync`]), and typed values, arrays, rings and queues
//! ([`typed`]).
//!
//! This facade re-exports the three crates so one dependency gives you all of them.

pub use shmkit_segment as segment;
pub use shmkit_sync as sync;
pub use shmkit_typed as typed;
