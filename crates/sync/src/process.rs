//! Process identity and liveness, shared with the typed crate (ring and queue peers).
//!
//! A process is named by its pid plus its start time (field 22 of `/proc/<pid>/stat`,
//! clock ticks since boot, low 32 bits), so a pid reused by a new process is not
//! mistaken for the old one; a zombie (killed, not yet reaped) counts as dead. The
//! calling process's pid and start time are cached (no syscall on fast paths) and
//! cleared in a forked child by a fork handler that is registered without ever
//! blocking. All processes sharing an object must be in the same pid namespace.

use crate::owner;

/// This process's pid, cached (correct in a forked child too).
///
/// # Examples
/// ```
/// assert_eq!(shmkit_sync::process::current_pid(), std::process::id());
/// ```
pub fn current_pid() -> u32 {
    owner::current_pid()
}

/// This process's start time (low 32 bits), cached; 0 if `/proc` cannot be read.
///
/// # Examples
/// ```
/// use shmkit_sync::process::{current_pid, current_start_time, is_alive};
///
/// let start = current_start_time(); // with the pid, names this process uniquely
/// assert!(is_alive(current_pid(), Some(start)));
/// ```
pub fn current_start_time() -> u32 {
    owner::current_start_time()
}

/// The start time (low 32 bits) of process `pid`, or `None` if there is none.
///
/// # Examples
/// ```
/// use shmkit_sync::process::{current_pid, current_start_time, start_time};
///
/// assert_eq!(start_time(current_pid()), Some(current_start_time()));
/// assert_eq!(start_time(u32::MAX), None); // no such process
/// ```
pub fn start_time(pid: u32) -> Option<u32> {
    owner::start_time(pid)
}

/// Whether process `pid` still runs and, when `start` is given, is the same process
/// that had that start time (not a new one that reused the pid). Costs one `/proc`
/// read (a few microseconds): for slow paths only.
///
/// # Examples
/// ```
/// use shmkit_sync::process::{current_pid, current_start_time, is_alive};
/// assert!(is_alive(current_pid(), Some(current_start_time())));
/// assert!(!is_alive(current_pid(), Some(current_start_time().wrapping_add(1))));
/// ```
pub fn is_alive(pid: u32, start: Option<u32>) -> bool {
    owner::is_alive(pid, start)
}
