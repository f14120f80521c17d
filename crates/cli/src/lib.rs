//! Library side of the `shmkit` command: the benchmark harness ([`mod@bench`], behind
//! `shmkit bench` and the `demo` example's comparison, reusable by other benchmarks)
//! and the segment listing behind `shmkit ls`, `inspect` and `rm` ([`segments`]).

pub mod bench;
pub mod segments;
