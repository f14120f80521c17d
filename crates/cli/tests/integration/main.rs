//! The integration tests of `shmkit-cli` (the `shmkit` command run as a process), one
//! module per subject, all in one test binary. Run one subject with
//! `cargo test -p shmkit-cli --test integration segments_cmd::`.

mod bridge_cmd;
mod objects_cmd;
mod segments_cmd;
