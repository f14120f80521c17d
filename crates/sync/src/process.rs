//! Process identity and liveness, shared with the typed crate (ring and queue peers).
//!
//! A process is named by its pid plus its start time (field 22 of `/proc/<pid>/stat`,
//! clock ticks since boot, low 32 bits), so a pid reused by a new process is not
//! mistaken for the old one; a zombie (killed, not yet reaped) counts as dead. The
//! calling process's pid and start time are cached (no syscall on fast paths) and
//! cleared in a forked child by a fork handler that is registered without ever
//! blocking.
//!
//! # Pid namespaces
//! Pids and tids are namespace-local: an owner in another pid namespace (a container
//! sharing `/dev/shm` or IPC) cannot be told from a dead one. Liveness checks made
//! inside [`with_pid_namespace_probe`] ask the probe first and, while it says "shared
//! across pid namespaces", never declare anyone dead. shmkit's typed objects do this
//! with their segment's header flag (`Segment::shared_across_pid_namespaces`), and
//! opening a segment from another pid namespace is refused unless allowed. Sync types
//! you place by hand carry no header: outside such a probe they are judged as if every
//! user shared one pid namespace, and nothing refuses a foreign user.

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
/// read (a few microseconds): for slow paths only. Always `true` inside a
/// [`with_pid_namespace_probe`] whose probe says "shared across pid namespaces".
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

/// Runs `f`; every liveness check made on this thread meanwhile (by [`is_alive`], and
/// by the dead-holder recovery of [`Mutex`](crate::Mutex), [`RawMutex`](crate::RawMutex)
/// and [`RwLock`](crate::RwLock)) first calls `shared`, and while it returns `true` (the
/// object may be used from another pid namespace) declares no owner dead: a dead holder
/// is then never recovered, and waiters wait or time out.
///
/// `shared` is called at each check, after the owner word was read, so it may read a
/// flag another process sets at any time (shmkit's segment header flag is read that
/// way, after a SeqCst fence). Calls nest; the previous probe comes back when `f`
/// returns or unwinds.
///
/// # Examples
/// A lock placed by hand in a segment that containers share (both sides opened it with
/// `allow_foreign_pid_namespace(true)`):
/// ```
/// use shmkit_segment::Segment;
/// use shmkit_sync::{process, Mutex};
///
/// let seg = Segment::options()
///     .anonymous()
///     .size(size_of::<Mutex<u64>>())
///     .allow_foreign_pid_namespace(true)
///     .create()?;
/// // SAFETY: the payload is 128-byte aligned, large enough and zeroed, which is an
/// // unlocked `Mutex<u64>`; `seg` outlives `counter`.
/// let counter = unsafe { &*seg.payload_ptr().cast::<Mutex<u64>>() };
/// let probe = || seg.shared_across_pid_namespaces();
/// process::with_pid_namespace_probe(&probe, || {
///     *counter.lock().unwrap() += 1; // a holder over there is never taken for dead
/// });
/// // Inside the probe even a pid that exists nowhere counts as alive.
/// assert!(process::with_pid_namespace_probe(&probe, || process::is_alive(u32::MAX, None)));
/// assert!(!process::is_alive(u32::MAX, None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_pid_namespace_probe<R>(shared: &dyn Fn() -> bool, f: impl FnOnce() -> R) -> R {
    owner::with_probe(shared, f)
}
