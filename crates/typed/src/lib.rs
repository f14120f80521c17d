//! # shmkit-typed
//!
//! Typed shared memory: `SharedValue<T>`, `SharedArray<T>`, an SPSC `Ring` of byte
//! messages and a bounded MPMC `Queue<T>`.
