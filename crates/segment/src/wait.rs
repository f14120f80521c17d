//! Waiting for another process: the object to be sized, and the header to be READY.
//! The floor's [`Backoff`]: spin briefly, yield a few times, then sleep in short
//! doubling steps (at most 1 ms), never past the deadline. No futex: creation is rare
//! and brief.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::OpenError;
use crate::header::{
    HeaderRef, HEADER_LEN, LAYOUT_VERSION, MAGIC, STATE_FAILED, STATE_INIT_MASK, STATE_READY,
};
use crate::options::open_io_error;
use crate::sys;
use shmkit_sys::Backoff;

/// How long one sleep of the polling loops lasts at most, once spinning and yielding
/// are over. No futex here: creation is rare and brief.
const NAP_CAP: Duration = Duration::from_millis(1);

fn timed_out(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Waits until the object is at least a header long (the creator sizes it right after
/// `O_EXCL`); returns its size.
pub(crate) fn wait_for_size(
    file: &File,
    name: &str,
    start: Instant,
    deadline: Option<Instant>,
) -> Result<usize, OpenError> {
    // A FIFO, device or directory planted under the name is never a segment: say so
    // instead of waiting for it to grow.
    let meta = file
        .metadata()
        .map_err(|e| open_io_error(name, "fstat", e))?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegularFile {
            name: name.to_owned(),
        });
    }
    let mut backoff = Backoff::new();
    loop {
        let len = sys::fsize(file).map_err(|e| open_io_error(name, "fstat", e))?;
        if len >= HEADER_LEN as u64 {
            return usize::try_from(len).map_err(|_| OpenError::Corrupt {
                name: name.to_owned(),
                reason: "size does not fit in the address space",
            });
        }
        if len > 0 {
            // A shmkit creator goes from 0 to the full size in one step.
            return Err(OpenError::TooSmall {
                name: name.to_owned(),
                len,
                needed: HEADER_LEN as u64,
            });
        }
        if timed_out(deadline) {
            return Err(OpenError::Timeout {
                name: name.to_owned(),
                waited: start.elapsed(),
            });
        }
        backoff.snooze_or_sleep(NAP_CAP, deadline);
    }
}

/// Waits for READY (Acquire). Fails early on a foreign magic, an unknown version, or a
/// creator that died before READY.
pub(crate) fn wait_ready(
    h: HeaderRef<'_>,
    name: &str,
    start: Instant,
    deadline: Option<Instant>,
) -> Result<(), OpenError> {
    let mut backoff = Backoff::new();
    loop {
        // Acquire: pairs with the Release store of READY in `create_inner`; the header
        // and payload written before it are visible after.
        // Only atomics are read before READY.
        let state = h.state().load(Ordering::Acquire) & STATE_INIT_MASK;
        if state == STATE_READY {
            return Ok(());
        }
        if state == STATE_FAILED {
            // Relaxed: the pid was published before the state we just Acquired.
            let pid = h.creator_pid().load(Ordering::Relaxed);
            return Err(OpenError::InitFailed { pid });
        }
        // Relaxed: only compared against 0 / MAGIC (see `Header::write_creating`).
        let magic = h.magic().load(Ordering::Relaxed);
        if magic != 0 && magic != MAGIC {
            return Err(OpenError::NotShmkit {
                name: name.to_owned(),
                found: magic,
            });
        }
        // Acquire: pairs with the Release in `Header::write_creating`; a non-zero pid
        // makes the plain header fields (version) readable.
        let pid = h.creator_pid().load(Ordering::Acquire);
        if pid != 0 {
            // The creator published the plain fields before the pid (Acquired).
            let version = h.version();
            if version != LAYOUT_VERSION {
                return Err(OpenError::Version {
                    found: version,
                    supported: LAYOUT_VERSION,
                });
            }
            let pidns = h.creator_pidns();
            if backoff.is_spun() && !sys::creator_alive(pid, pidns) {
                // It may have published READY just before exiting.
                // Acquire: as the first load.
                if h.state().load(Ordering::Acquire) & STATE_INIT_MASK == STATE_READY {
                    return Ok(());
                }
                return Err(OpenError::CreatorDied { pid });
            }
        }
        if timed_out(deadline) {
            return Err(OpenError::Timeout {
                name: name.to_owned(),
                waited: start.elapsed(),
            });
        }
        backoff.snooze_or_sleep(NAP_CAP, deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::TypeTag;

    /// A header-sized, 8-aligned buffer standing in for a mapping.
    fn buf() -> Box<[u64; HEADER_LEN / 8]> {
        Box::new([0u64; HEADER_LEN / 8])
    }

    fn wait(b: &mut [u64; HEADER_LEN / 8], ms: u64) -> Result<(), OpenError> {
        let start = Instant::now();
        let deadline = start.checked_add(Duration::from_millis(ms));
        wait_ready(HeaderRef::from_buf(b), "unit", start, deadline)
    }

    fn written(pid: u32) -> Box<[u64; HEADER_LEN / 8]> {
        let mut b = buf();
        // SAFETY: the buffer is zeroed and owned by this test.
        unsafe { HeaderRef::from_buf(&mut b).write_creating(128, 0, &TypeTag::BYTES, pid, 0) };
        b
    }

    fn set_state(b: &mut [u64; HEADER_LEN / 8], state: u32) {
        HeaderRef::from_buf(b)
            .state()
            .store(state, Ordering::Release);
    }

    #[test]
    fn ready_header_returns_at_once() {
        let mut b = written(std::process::id());
        set_state(&mut b, STATE_READY);
        assert!(wait(&mut b, 0).is_ok());
    }

    #[test]
    fn zeroed_header_times_out_after_the_deadline() {
        let mut b = buf();
        let start = Instant::now();
        assert!(matches!(wait(&mut b, 20), Err(OpenError::Timeout { .. })));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn live_creator_times_out_dead_creator_is_reported() {
        let mut b = written(std::process::id());
        assert!(matches!(wait(&mut b, 10), Err(OpenError::Timeout { .. })));
        // Pid 0x3fff_fffe is above any pid_max Linux allows: never a live process.
        let mut b = written(0x3fff_fffe);
        assert!(matches!(
            wait(&mut b, 5_000),
            Err(OpenError::CreatorDied { pid: 0x3fff_fffe })
        ));
    }

    #[test]
    fn foreign_magic_version_and_failed_init_fail_fast() {
        let mut b = buf();
        b[0] = u64::from_le_bytes(*b"PYTHON!!");
        assert!(matches!(
            wait(&mut b, 5_000),
            Err(OpenError::NotShmkit { .. })
        ));

        let mut b = written(std::process::id());
        b[1] = u64::from(LAYOUT_VERSION + 1); // version (low half of word 1), state 0
        assert!(matches!(
            wait(&mut b, 5_000),
            Err(OpenError::Version { found, .. }) if found == LAYOUT_VERSION + 1
        ));

        let mut b = written(7);
        set_state(&mut b, STATE_FAILED);
        assert!(matches!(
            wait(&mut b, 5_000),
            Err(OpenError::InitFailed { pid: 7 })
        ));
    }

    #[test]
    fn backoff_moves_to_the_slow_phase() {
        let mut bo = Backoff::new();
        for _ in 0..100 {
            bo.snooze_or_sleep(NAP_CAP, Some(Instant::now()));
        }
        assert!(bo.is_spun());
    }
}
