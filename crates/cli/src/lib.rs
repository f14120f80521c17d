//! Library side of the `shmkit` command and the examples: the benchmark harness
//! ([`bench`], behind `shmkit bench` and the `demo` example), the writer/reader pair
//! ([`pair`], behind `examples/writer.rs` and `examples/reader.rs`), and the segment
//! listing behind `shmkit ls`, `inspect` and `rm` ([`segments`]).

pub mod bench;
pub mod pair;
pub mod segments;
