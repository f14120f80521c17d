//! A futex wait that fails (an errno other than EAGAIN/ETIMEDOUT/EINTR) must come back
//! as the typed `Os` error at once, never as a retry loop (which spins on the CPU until
//! the timeout, or for ever without one).
//!
//! The failure is injected with the hidden `futex::fault` hook: it fails the next waits
//! exactly as if `futex(2)` had returned that errno, and counts them. The hook is per
//! thread, so these tests run beside the others in this binary. Each test arms it for *every*
//! wait and asserts that exactly one wait was attempted: a caller that retried would
//! count thousands (before the fix: `lock_timeout(1s)` returned `Timeout` after
//! ~390 000 failed waits in release builds; debug builds panicked in futex.rs).

use std::time::Duration;

use shmkit_sync::{
    Barrier, BarrierError, Condvar, Event, EventError, LockError, Mutex, RwLock, Semaphore,
    SemaphoreError,
};
use shmkit_sys::futex::fault;
use shmkit_testkit::{fork_child, Pipe, SharedRegion};

/// Long enough that a retry loop would be caught spinning, never reached by a correct
/// implementation (it returns after the first failed wait).
const PATIENCE: Duration = Duration::from_secs(10);

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds, 128-aligned offsets of a page-aligned zero-filled region that
    // outlives the reference; the types used here are valid when zeroed and Sync.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

/// Runs `f` with every futex wait failing with `errno`; returns its result and how many
/// waits it attempted.
fn with_failing_futex<R>(errno: i32, f: impl FnOnce() -> R) -> (R, u32) {
    fault::fail_next_waits(u32::MAX, errno);
    let r = f();
    let n = fault::injected();
    fault::reset();
    (r, n)
}

/// Drops any guard, keeping the outcome.
fn unguarded<G, H>(r: Result<G, LockError<H>>) -> Result<(), LockError<()>> {
    r.map(drop).map_err(|e| e.map(drop))
}

fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    e.source()?
        .downcast_ref::<shmkit_sync::OsError>()?
        .raw_os_error()
}

#[test]
fn mutex_held_by_another_process_wait_failure_is_returned_not_looped_on() {
    let region = SharedRegion::new(4096);
    let m: &Mutex<u64> = at(&region, 0);
    let rw: &RwLock<u64> = at(&region, 128);
    let (held, release) = (Pipe::new(), Pipe::new());
    let child = fork_child(|| {
        let g = m.lock().map_err(|_| ()).unwrap();
        let w = rw.write().map_err(|_| ()).unwrap();
        held.send(1);
        release.recv();
        drop((g, w));
        0
    });
    held.recv_n(1);

    let (r, waits) = with_failing_futex(libc::EINVAL, || unguarded(m.lock_timeout(PATIENCE)));
    let e = r.expect_err("the holder is alive: no lock");
    assert!(
        matches!(e, LockError::Os(ref io) if io.raw_os_error() == Some(libc::EINVAL)),
        "{e:?}"
    );
    assert_eq!(waits, 1, "a failing wait was retried");
    assert_eq!(
        errno_of(&e),
        Some(libc::EINVAL),
        "the OsError is the source"
    );
    assert!(e.to_string().contains("futex"), "{e}");
    // The raw layer reports the same.
    let (r, waits) = with_failing_futex(libc::EFAULT, || m.raw().lock_until(None));
    assert!(
        matches!(r, Err(shmkit_sync::RawLockError::Os(ref io)) if io.raw_os_error() == Some(libc::EFAULT)),
        "{r:?}"
    );
    assert_eq!(waits, 1);

    // Both sides of a RwLock whose writer lives in another process.
    let (r, waits) = with_failing_futex(libc::ENOSYS, || unguarded(rw.read_timeout(PATIENCE)));
    assert!(
        matches!(r, Err(LockError::Os(ref io)) if io.raw_os_error() == Some(libc::ENOSYS)),
        "{r:?}"
    );
    assert_eq!(waits, 1);
    let (r, waits) = with_failing_futex(libc::ENOSYS, || unguarded(rw.write_timeout(PATIENCE)));
    assert!(
        matches!(r, Err(LockError::Os(ref io)) if io.raw_os_error() == Some(libc::ENOSYS)),
        "{r:?}"
    );
    assert_eq!(waits, 1);

    // Nothing was taken or broken: once the holder lets go, both lock normally.
    release.send(1);
    child.join_ok();
    assert_eq!(*m.lock().map_err(|e| e.to_string()).unwrap(), 0);
    assert_eq!(*rw.write().map_err(|e| e.to_string()).unwrap(), 0);
}

#[test]
fn semaphore_event_barrier_wait_failures_are_returned_not_looped_on() {
    let sem = Semaphore::new(0);
    let (r, waits) = with_failing_futex(libc::EFAULT, || sem.acquire_timeout(PATIENCE));
    assert_eq!(
        r,
        Err(SemaphoreError::Os(
            std::io::Error::from_raw_os_error(libc::EFAULT).into()
        ))
    );
    assert_eq!(waits, 1);
    assert_eq!(sem.value(), 0);

    let ev = Event::new();
    let (r, waits) = with_failing_futex(libc::EFAULT, || ev.wait_timeout(PATIENCE));
    assert_eq!(
        r,
        Err(EventError::Os(
            std::io::Error::from_raw_os_error(libc::EFAULT).into()
        ))
    );
    assert_eq!(waits, 1);
    let (r, waits) = with_failing_futex(libc::EFAULT, || ev.wait());
    assert!(matches!(r, Err(EventError::Os(_))), "{r:?}");
    assert_eq!(waits, 1, "wait() without a timeout gave up too");

    // A party whose wait fails leaves as a timed-out one does: the round is broken, so
    // the other parties are not left waiting for it.
    let b = Barrier::new(2);
    let (r, waits) = with_failing_futex(libc::EFAULT, || b.wait_timeout(PATIENCE));
    assert!(matches!(r, Err(BarrierError::Os(_))), "{r:?}");
    assert_eq!(waits, 1);
    assert!(b.is_broken());
    assert_eq!(b.wait(), Err(BarrierError::Broken));
}

#[test]
fn condvar_wait_failure_is_returned_with_the_mutex_unlocked() {
    let (m, cv) = (Mutex::new(5u32), Condvar::new());
    let guard = m.lock().map_err(|e| e.to_string()).unwrap();
    let (r, waits) =
        with_failing_futex(libc::EFAULT, || unguarded(cv.wait_timeout(guard, PATIENCE)));
    assert!(matches!(r, Err(LockError::Os(_))), "{r:?}");
    assert_eq!(waits, 1);
    assert!(
        !m.raw().is_locked(),
        "the guard was given up to sleep and not retaken"
    );
    assert_eq!(*m.try_lock().map_err(|e| e.to_string()).unwrap(), 5);
}
