//! # shmkit
//!
//! This facade re-exports the three crates: [`segment`], [`sync`], [`typed`].
//! The README follows (its examples are compiled and run as doctests).
#![doc = include_str!("../README.md")]

pub use shmkit_segment as segment;
pub use shmkit_sync as sync;
pub use shmkit_typed as typed;
