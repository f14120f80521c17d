//! # shmkit-segment
//!
//! Shared memory created and opened safely: POSIX named, System V, file-backed and
//! anonymous (fork-shared) segments behind one [`Segment`] type.
