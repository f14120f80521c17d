//! Library side of the `shmkit` command: the benchmark harness used by `shmkit bench`
//! and by the `demo` example.

pub mod bench;
