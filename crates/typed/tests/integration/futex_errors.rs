//! A futex wait that fails (an errno other than EAGAIN/ETIMEDOUT/EINTR) must come back
//! as the typed `Os` error at once, never as a retry loop. Before the fix the ring and
//! queue dropped the error and slept again: `read_with_timeout(1s)` on an empty ring
//! returned `Timeout` after ~10 million failed waits, `get_timeout(1s)` on an empty
//! queue after ~500 000 (release build).
//!
//! The failure is injected with the hidden `shmkit_sys::futex::fault` hook (it fails
//! the calling thread's next waits as if `futex(2)` had returned that errno, and counts
//! them). It is per thread, so these tests run beside the others in this binary.

use std::time::{Duration, Instant};

use shmkit_sys::futex::fault;
use shmkit_testkit::{fork_child, Pipe};
use shmkit_typed::{
    AccessError, GetError, PutError, Queue, ReadError, Ring, SharedArray, SharedValue, WriteError,
};

/// Far longer than a correct implementation takes (it returns after the first failed
/// wait); a retry loop would spin for all of it.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `f` with every futex wait failing with `errno`; returns its result and how many
/// waits it attempted.
fn with_failing_futex<R>(errno: i32, f: impl FnOnce() -> R) -> (R, u32) {
    fault::fail_next_waits(u32::MAX, errno);
    let r = f();
    let n = fault::injected();
    fault::reset();
    (r, n)
}

fn os_errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    e.source()?
        .downcast_ref::<shmkit_typed::OsError>()?
        .raw_os_error()
}

#[test]
fn ring_reader_on_an_empty_ring_and_writer_on_a_full_one_get_os() {
    let mut ring = Ring::anonymous(4096).expect("ring");
    let (r, waits) = with_failing_futex(libc::EINVAL, || {
        ring.read_with_timeout(PATIENCE, |m| m.len())
    });
    let e = r.expect_err("the ring is empty");
    assert!(matches!(e, ReadError::Os(_)), "{e:?}");
    assert_eq!(os_errno(&e), Some(libc::EINVAL));
    assert_eq!(waits, 1, "a failing wait was retried");
    // Blocking form without a timeout: gives up too.
    let (r, waits) = with_failing_futex(libc::EINVAL, || ring.read_with(|m| m.len()));
    assert!(matches!(r, Err(ReadError::Os(_))), "{r:?}");
    assert_eq!(waits, 1);

    while ring.try_write(&[7; 100]).is_ok() {}
    let (r, waits) = with_failing_futex(libc::EFAULT, || ring.write_timeout(&[7; 100], PATIENCE));
    let e = r.expect_err("the ring is full");
    assert!(matches!(e, WriteError::Os(_)), "{e:?}");
    assert_eq!(os_errno(&e), Some(libc::EFAULT));
    assert_eq!(waits, 1);
    // Nothing was lost or half-done: the ring still works.
    assert_eq!(ring.read_with(|m| m.to_vec()).expect("read"), [7; 100]);
    assert_eq!(ring.read_with(|m| m.to_vec()).expect("read"), [7; 100]);
    // Two records freed: room for one more whatever the wrap costs.
    ring.try_write(&[8; 100]).expect("room again");
}

#[test]
fn queue_get_on_empty_and_put_on_full_get_os_and_keep_the_item() {
    let q = Queue::<u64>::anonymous(2).expect("queue");
    let (r, waits) = with_failing_futex(libc::EINVAL, || q.get_timeout(PATIENCE));
    assert_eq!(
        r,
        Err(GetError::Os(
            std::io::Error::from_raw_os_error(libc::EINVAL).into()
        ))
    );
    assert_eq!(waits, 1);
    let (r, waits) = with_failing_futex(libc::EINVAL, || q.get());
    assert!(matches!(r, Err(GetError::Os(_))), "{r:?}");
    assert_eq!(waits, 1);

    q.put(1).expect("put");
    q.put(2).expect("put");
    let (r, waits) = with_failing_futex(libc::EFAULT, || q.put_timeout(3, PATIENCE));
    let e = r.expect_err("the queue is full");
    assert!(matches!(e, PutError::Os(3, _)), "{e:?}");
    assert_eq!(os_errno(&e), Some(libc::EFAULT));
    assert_eq!(e.into_inner(), 3, "the item comes back");
    assert_eq!(waits, 1);
    assert_eq!(
        (q.get(), q.get(), q.try_get()),
        (Ok(1), Ok(2), Err(GetError::Empty))
    );
}

#[test]
fn shared_value_and_array_locked_by_another_process_get_os() {
    let v = SharedValue::<u64>::anonymous(5).expect("value");
    let a = SharedArray::<u32>::anonymous(3).expect("array");
    let (held, release) = (Pipe::new(), Pipe::new());
    let child = fork_child(|| {
        let g = v.lock().map_err(|_| ()).unwrap();
        let h = a.lock().map_err(|_| ()).unwrap();
        held.send(1);
        release.recv();
        drop((g, h));
        0
    });
    held.recv_n(1);

    // `get`/`set` wait without a timeout; a retry loop would never return while the
    // child holds the locks. Run them on a thread (the hook is per thread: armed there)
    // and give up on them after PATIENCE.
    let (got, set, waits) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            fault::fail_next_waits(u32::MAX, libc::EINVAL);
            let r = (v.get(), a.set(0, 9));
            let waits = fault::injected();
            fault::reset();
            (r, waits)
        });
        let deadline = Instant::now() + PATIENCE;
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let stuck = !t.is_finished();
        // Lets a stuck thread finish (its next attempt finds the locks free), so the
        // scope can end.
        release.send(1);
        let ((got, set), waits) = t.join().expect("no panic");
        assert!(
            !stuck,
            "get/set were still looping after {PATIENCE:?} ({waits} failed waits)"
        );
        (got, set, waits)
    });
    child.join_ok();
    assert_eq!(
        got,
        Err(AccessError::Os(
            std::io::Error::from_raw_os_error(libc::EINVAL).into()
        ))
    );
    assert!(matches!(set, Err(AccessError::Os(_))), "{set:?}");
    assert_eq!(waits, 2, "one failed wait each, no retries");
    // Nothing was taken, poisoned or written.
    assert_eq!(v.get(), Ok(5));
    assert_eq!(a.copy_to_vec(), Ok(vec![0, 0, 0]));
}
