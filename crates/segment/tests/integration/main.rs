//! The integration tests of `shmkit-segment`, one module per subject, all in one test
//! binary (one link instead of one per file). Run one subject with
//! `cargo test -p shmkit-segment --test integration conformance::`.
//!
//! The modules run beside each other on the harness's threads, so none may change
//! process-wide state (umask, signal dispositions, the current directory): a test
//! that must does it in a forked child (see `permission`).

mod anonymous;
mod bad_input;
mod common;
mod conformance;
mod creator_zombie;
mod fuzz;
mod init_panic;
mod list;
mod no_space;
mod peer_shared_memory;
mod permission;
mod python;
mod race;
mod security;
