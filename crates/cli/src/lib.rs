//! Library side of the `shmkit` command: the benchmark harness used by `shmkit bench`
//! and by the `demo` example, and the segment listing behind `ls`, `inspect` and `rm`.

pub mod bench;
pub mod segments;
