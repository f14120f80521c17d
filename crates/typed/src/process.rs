//! Process identity and liveness for ring and queue peers: the sync crate's
//! [`shmkit_sync::process`] (pid + start time against pid reuse, zombies count as dead,
//! caches cleared in forked children), seen through the small interface the ring and
//! queue use.

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
