//! Process identity and liveness, used to detect a peer that died while the other
//! side waits on it (a ring writer or reader, a queue producer or consumer in the
//! middle of an operation).
//!
//! A process is identified by its pid plus its start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot), so a pid reused by a new process is
//! not mistaken for the old one. A zombie (killed but not yet reaped) counts as dead.
//! Pids are those of the caller's pid namespace: processes sharing a ring or queue
//! must live in the same pid namespace.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// This process's pid, cached; reset in the child after `fork` (see [`current_pid`]).
static PID: AtomicU32 = AtomicU32::new(0);
/// This process's start time, cached (0 = not read yet); reset after `fork`.
static START: AtomicU64 = AtomicU64::new(0);

extern "C" fn reset_after_fork() {
    // Relaxed: the child is single-threaded right after fork.
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
}

/// The current pid without a syscall on the fast path (glibc no longer caches
/// `getpid`; a syscall costs ~220 ns here). The cache is cleared in a forked child by
/// a `pthread_atfork` handler, so a handle inherited through `fork` notices that it now
/// runs in another process.
pub(crate) fn current_pid() -> u32 {
    // Relaxed: the value is the same for every thread of the process; a stale 0 only
    // makes us ask the kernel.
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a child handler that only stores to two atomics (which
        // is async-signal-safe) has no other preconditions.
        unsafe {
            libc::pthread_atfork(None, None, Some(reset_after_fork));
        }
    });
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// This process's start time (0 if `/proc` is not readable).
pub(crate) fn current_start_time() -> u64 {
    let t = START.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    let t = match read_stat(current_pid()) {
        Some((_, start)) => start,
        None => 0,
    };
    START.store(t, Ordering::Relaxed);
    t
}

/// `(state, starttime)` from `/proc/<pid>/stat`, or `None` if there is no such process.
fn read_stat(pid: u32) -> Option<(u8, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split after
    // the last ')'. Fields after it start at field 3 (state); starttime is field 22.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether the process `pid` (started at `start_time`, 0 = unknown) is still running.
/// Only the low 32 bits of the start time are compared (shared words keep only those).
///
/// Costs a `/proc` read (a few microseconds): call it only on slow paths.
pub(crate) fn is_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return true;
    }
    match read_stat(pid) {
        None => false,
        Some((b'Z' | b'X' | b'x', _)) => false,
        Some((_, start)) => start_time == 0 || start as u32 == start_time as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        let pid = current_pid();
        assert_eq!(pid, std::process::id());
        assert!(current_start_time() > 0);
        assert!(is_alive(pid, current_start_time()));
    }

    #[test]
    fn reused_pid_with_another_start_time_is_dead() {
        assert!(!is_alive(current_pid(), current_start_time() + 1));
    }

    #[test]
    fn missing_pid_is_dead() {
        // Above the kernel's pid_max limit (4194304), so never a real process.
        assert!(!is_alive(4_194_305 + 7, 0));
    }
}
