//! Process identity and liveness for ring and queue peers: the sync crate's
//! [`shmkit_sync::process`] (pid + start time against pid reuse, zombies count as dead,
//! caches cleared in forked children), seen through the small interface the ring and
//! queue use.
//!
//! Pid namespaces: every liveness check on an object in a segment runs under the
//! segment's probe ([`in_segment`]): once the segment is marked shared across pid
//! namespaces (an opener from another namespace opted in), no owner is declared dead,
//! because one over there cannot be told from a dead one here. Objects on raw memory
//! (no segment, no header) are judged as if all their users shared our pid namespace.

use shmkit_segment::Segment;

/// This process's pid (cached; no syscall on the fast path).
pub(crate) fn current_pid() -> u32 {
    shmkit_sync::process::current_pid()
}

/// This process's start time, low 32 bits (what shared words keep).
pub(crate) fn current_start_time() -> u64 {
    u64::from(shmkit_sync::process::current_start_time())
}

/// Whether the process `pid` (started at `start_time`, 0 = unknown) is still running.
/// Only the low 32 bits of the start time are compared (shared words keep only those);
/// pid 0 ("nobody") counts as alive so that an empty slot is never "recovered".
pub(crate) fn is_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return true;
    }
    let start = (start_time != 0).then_some(start_time as u32);
    shmkit_sync::process::is_alive(pid, start)
}

/// Runs `f` (a lock call, a liveness check) so that every liveness check in it asks
/// `seg` whether its objects may be shared across pid namespaces (at the time of the
/// check, after the owner word was read), and then declares nobody dead. With `None`
/// (raw memory) `f` just runs.
pub(crate) fn in_segment<R>(seg: Option<&Segment>, f: impl FnOnce() -> R) -> R {
    match seg {
        Some(seg) => {
            let shared = || seg.shared_across_pid_namespaces();
            shmkit_sync::process::with_pid_namespace_probe(&shared, f)
        }
        None => f(),
    }
}

/// [`is_alive`] for a peer of an object in `seg` (see [`in_segment`]): always `true`
/// once `seg` is shared across pid namespaces.
pub(crate) fn is_alive_in(seg: Option<&Segment>, pid: u32, start_time: u64) -> bool {
    in_segment(seg, || is_alive(pid, start_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_a_segment_shared_across_pid_namespaces_nobody_is_dead() {
        let missing = 4_194_305 + 7;
        let local = Segment::options().anonymous().size(8).create().unwrap();
        assert!(!is_alive_in(Some(&local), missing, 0));
        assert!(!is_alive_in(None, missing, 0));
        // As a creator that expects peers from other containers marks it.
        let shared = Segment::options()
            .anonymous()
            .size(8)
            .allow_foreign_pid_namespace(true)
            .create()
            .unwrap();
        assert!(is_alive_in(Some(&shared), missing, 0));
        assert!(is_alive_in(
            Some(&shared),
            current_pid(),
            current_start_time() + 1
        ));
        // Outside the check, judging is back to normal.
        assert!(!is_alive(missing, 0));
    }

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
