//! The integration tests of `shmkit-typed`, one module per subject, all in one test
//! binary (one link instead of one per file). Run one subject with
//! `cargo test -p shmkit-typed --test integration ring::`.
//!
//! The modules run beside each other on the harness's threads, so none may change
//! process-wide state; the futex fault hook used by `futex_errors` is per thread.

mod array;
mod channel;
mod deadlines;
mod futex_errors;
mod fuzz;
mod homes;
mod latest;
mod pid_namespace;
mod queue;
mod ring;
mod topic;
mod value;
mod versions;
