//! The integration tests of `shmkit-sync`, one module per subject, all in one test
//! binary (one link instead of one per file). Run one subject with
//! `cargo test -p shmkit-sync --test integration mutex::`.
//!
//! The modules run beside each other on the harness's threads, so none may change
//! process-wide state; the futex fault hook used by `futex_errors` is per thread.

mod barrier;
mod condvar;
mod event;
mod file_lock;
mod futex_errors;
mod mutex;
mod named_lock;
mod python_lockf;
mod rwlock;
mod semaphore;
