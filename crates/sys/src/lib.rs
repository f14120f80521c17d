//! shmkit's floor 0: what every other shmkit crate builds on, written once.
//!
//! - [`owner`]: process and thread identity (pid or tid + start time, the pid
//!   namespace) and **the one judgement of whether a peer is alive**
//!   ([`owner::is_alive`]), used by the segment crate (a creator that died before
//!   READY), the locks (a dead holder) and the typed objects (a dead ring or queue peer).
//! - [`futex`]: shared futex wait/wake with absolute `CLOCK_MONOTONIC` [`Deadline`]s.
//! - [`backoff`]: the one [`Backoff`] (spin, yield, then sleep).
//! - [`parker`]: the one [`Parker`] (sleepers count + event word, the Dekker
//!   sleep/wake), with paced liveness checks of the peer a waiter depends on.
//! - [`doorbell`]: the async doorbell (helper threads sleeping in `futex_waitv` on
//!   the words pending futures wait on), so futures wait without a thread each.
//! - [`watcher`]: the per-process death watcher (one thread epolling the pidfds of
//!   the peers current waiters depend on), so idle waiters sleep without a timer.
//! - [`OsError`]: the kernel failed where no error was expected; carried by every
//!   shmkit error's `Os` variant (clonable and comparable, unlike `io::Error`).
//! - [`atomic`]: `std`'s atomics, or loom's under `cfg(loom)`.
//!
//! Syscalls go through `rustix`; `libc` only for `pthread_atfork` (a libc function,
//! not a syscall). Linux only.
//!
//! This crate is published because the other shmkit crates depend on it; its API is
//! shmkit's internal floor and follows their versions. Users normally need only
//! [`Deadline`] (re-exported by `shmkit_sync`).

pub mod atomic;
pub mod backoff;
#[cfg(not(loom))]
pub mod doorbell;
pub mod futex;
pub mod os_error;
pub mod owner;
pub mod parker;
pub mod per_process;
pub mod watcher;

pub use backoff::Backoff;
pub use futex::Deadline;
pub use os_error::OsError;
pub use parker::Parker;
