//! The `_deadline(Instant)` form of every blocking call in shmkit-typed: a deadline
//! that has passed gives up with the family's timeout error without waiting for the
//! peer, and one in the future waits until a peer (a forked process) acts, then
//! succeeds. One test per family: Ring, Queue, SharedValue / SharedArray, and the
//! homes of the other sync objects.
//!
//! The "future" deadlines are far away ([`FAR`]): reaching one means the test failed.
//! The order "the waiter starts waiting, then the peer acts" is arranged with pipes;
//! when the peer happens to act first the call must succeed all the same.

use std::time::{Duration, Instant};

use shmkit_sync::{Barrier, BarrierError, Condvar, LockError, Semaphore, SemaphoreError};
use shmkit_testkit::{fork_child, unique_name, Pipe, SharedRegion, ShmCleanup};
use shmkit_typed::{
    GetError, PutError, Queue, ReadError, Ring, SharedArray, SharedBarrier, SharedCondvar,
    SharedRwValue, SharedSemaphore, SharedValue, WriteError,
};

/// A deadline no healthy machine reaches in these tests.
const FAR: Duration = Duration::from_secs(60);

fn far() -> Instant {
    Instant::now() + FAR
}

/// A deadline that has already passed.
fn past() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_millis(1)).unwrap_or(now)
}

fn ring_region(capacity: usize) -> SharedRegion {
    let region = SharedRegion::new(Ring::region_size(capacity));
    // SAFETY: a fresh, exclusive, page-aligned mapping that outlives every handle.
    unsafe { Ring::init(region.as_ptr(), region.len(), capacity) }.expect("init ring");
    region
}

fn ring_attach(region: &SharedRegion) -> Ring {
    // SAFETY: the region holds an initialised ring and outlives the handle.
    unsafe { Ring::attach(region.as_ptr(), region.len()) }.expect("attach ring")
}

/// A 16-byte message takes a 24-byte record: two, and the 8 bytes for the next header,
/// leave a third no room in the smallest (64-byte) ring.
const MSG: [u8; 16] = [7; 16];

#[test]
fn ring_reader_deadline_passed_times_out_and_future_one_gets_the_late_message() {
    let region = ring_region(4096);
    let mut reader = ring_attach(&region);
    let mut buf = Vec::new();
    assert!(matches!(
        reader.read_with_deadline(past(), |m| m.len()),
        Err(ReadError::Timeout)
    ));
    assert!(matches!(
        reader.read_into_deadline(&mut buf, past()),
        Err(ReadError::Timeout)
    ));

    let go = Pipe::new();
    let writer = fork_child(|| {
        let mut ring = ring_attach(&region);
        go.recv();
        if ring.write(b"late").is_err() {
            return 1;
        }
        go.recv();
        if ring.write(b"later").is_err() {
            return 2;
        }
        0
    });
    go.send(1);
    let got = reader.read_with_deadline(far(), |m| m.to_vec());
    assert_eq!(
        got.expect("the writer's message before the deadline"),
        b"late"
    );
    go.send(2);
    let n = reader.read_into_deadline(&mut buf, far());
    assert_eq!(
        n.expect("the writer's second message before the deadline"),
        5
    );
    assert_eq!(buf, b"later");
    writer.join_ok();
}

#[test]
fn ring_writer_deadline_passed_times_out_and_future_one_waits_for_the_reader() {
    let region = ring_region(64);
    let mut writer = ring_attach(&region);
    writer.write(&MSG).expect("first");
    writer.write(&MSG).expect("second: the ring is now full");
    assert!(matches!(
        writer.write_deadline(&MSG, past()),
        Err(WriteError::Timeout)
    ));
    assert!(matches!(
        writer.write_with_deadline(MSG.len(), past(), |b| b.fill(1)),
        Err(WriteError::Timeout)
    ));
    // Unread messages and a reader that never attached: nothing to wait for yet.
    assert!(matches!(
        writer.wait_consumed_deadline(past()),
        Err(WriteError::Timeout)
    ));

    let go = Pipe::new();
    let reader = fork_child(|| {
        let mut ring = ring_attach(&region);
        go.recv();
        for expected in [7u8, 7, 7, 1] {
            match ring.read_with_deadline(far(), |m| m.len() == MSG.len() && m[0] == expected) {
                Ok(true) => {}
                Ok(false) => return 1,
                Err(_) => return 2,
            }
        }
        0
    });
    go.send(1);
    writer
        .write_deadline(&MSG, far())
        .expect("room once the reader read one");
    writer
        .write_with_deadline(MSG.len(), far(), |b| b.fill(1))
        .expect("room once the reader read another");
    writer
        .wait_consumed_deadline(far())
        .expect("the reader read all four");
    reader.join_ok();
}

fn queue_region(capacity: usize) -> SharedRegion {
    let region = SharedRegion::new(Queue::<u64>::region_size(capacity).expect("size"));
    // SAFETY: a fresh, exclusive, page-aligned mapping that outlives every handle.
    unsafe { Queue::<u64>::init(region.as_ptr(), region.len(), capacity) }.expect("init queue");
    region
}

fn queue_attach(region: &SharedRegion) -> Queue<u64> {
    // SAFETY: the region holds an initialised queue and outlives the handle.
    unsafe { Queue::attach(region.as_ptr(), region.len()) }.expect("attach queue")
}

#[test]
fn queue_deadline_passed_times_out_and_future_one_waits_for_the_peer() {
    let region = queue_region(1);
    let q = queue_attach(&region);
    assert_eq!(q.get_deadline(past()), Err(GetError::Timeout));

    // A consumer that gets one item late.
    let go = Pipe::new();
    let consumer = fork_child(|| {
        let q = queue_attach(&region);
        go.recv();
        match q.get_deadline(far()) {
            Ok(1) => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }
    });
    q.put(1).expect("room for one");
    assert!(matches!(
        q.put_deadline(2, past()),
        Err(PutError::Timeout(2))
    ));
    go.send(1);
    q.put_deadline(2, far())
        .expect("room once the consumer took the first");
    consumer.join_ok();

    // A producer that puts one item late.
    assert_eq!(q.get_deadline(past()).expect("the second item"), 2);
    assert_eq!(q.get_deadline(past()), Err(GetError::Timeout));
    let producer = fork_child(|| {
        let q = queue_attach(&region);
        go.recv();
        if q.put_deadline(3, far()).is_ok() {
            0
        } else {
            1
        }
    });
    go.send(1);
    assert_eq!(q.get_deadline(far()).expect("the producer's item"), 3);
    producer.join_ok();
}

/// Forks a child that runs `hold` (which takes a lock or resource and keeps it until
/// it returns): the child signals `held` once it has it, then waits for `release`.
fn hold_in_child(
    held: &Pipe,
    release: &Pipe,
    hold: impl FnOnce(&dyn Fn()) -> i32,
) -> shmkit_testkit::Child {
    fork_child(|| {
        hold(&|| {
            held.send(1);
            release.recv();
        })
    })
}

#[test]
fn value_and_array_lock_deadline_passed_times_out_and_future_one_waits_for_the_holder() {
    let name = unique_name("dl-value");
    let _cleanup = ShmCleanup::new(&name);
    let array_name = unique_name("dl-array");
    let _cleanup_array = ShmCleanup::new(&array_name);
    let value = SharedValue::<u64>::create(&name, 1).expect("create value");
    let array = SharedArray::<u32>::create(&array_name, 4).expect("create array");
    let (held, release) = (Pipe::new(), Pipe::new());
    let holder = hold_in_child(&held, &release, |wait| {
        let (Ok(v), Ok(a)) = (
            SharedValue::<u64>::open(&name),
            SharedArray::<u32>::open(&array_name, 4),
        ) else {
            return 1;
        };
        let (Ok(mut gv), Ok(mut ga)) = (v.lock(), a.lock()) else {
            return 2;
        };
        wait();
        *gv = 2;
        ga[0] = 2;
        0
    });
    held.recv();
    assert!(matches!(
        value.lock_deadline(past()),
        Err(LockError::Timeout)
    ));
    assert!(matches!(
        array.lock_deadline(past()),
        Err(LockError::Timeout)
    ));
    release.send(1);
    let v = *value
        .lock_deadline(far())
        .map_err(LockError::without_guard)
        .expect("the lock once the holder released it");
    assert_eq!(v, 2, "locked after the holder's write");
    let a0 = array
        .lock_deadline(far())
        .map_err(LockError::without_guard)
        .expect("the lock once the holder released it")[0];
    assert_eq!(a0, 2);
    holder.join_ok();
}

#[test]
fn rw_value_read_and_write_deadline_passed_time_out_and_future_ones_wait_for_the_writer() {
    let name = unique_name("dl-rw");
    let _cleanup = ShmCleanup::new(&name);
    let value = SharedRwValue::<u64>::create(&name, 1).expect("create");
    let (held, release) = (Pipe::new(), Pipe::new());
    let writer = hold_in_child(&held, &release, |wait| {
        let Ok(v) = SharedRwValue::<u64>::open(&name) else {
            return 1;
        };
        let Ok(mut g) = v.write() else {
            return 2;
        };
        wait();
        *g = 2;
        0
    });
    held.recv();
    assert!(matches!(
        value.read_deadline(past()),
        Err(LockError::Timeout)
    ));
    assert!(matches!(
        value.write_deadline(past()),
        Err(LockError::Timeout)
    ));
    release.send(1);
    let seen = *value
        .read_deadline(far())
        .map_err(LockError::without_guard)
        .expect("a read lock once the writer released it");
    assert_eq!(seen, 2);
    *value
        .write_deadline(far())
        .map_err(LockError::without_guard)
        .expect("the write lock") = 3;
    assert_eq!(value.get().expect("get"), 3);
    writer.join_ok();
}

#[test]
fn semaphore_barrier_condvar_deadlines_passed_time_out_and_future_ones_wait_for_the_peer() {
    let name = unique_name("dl-sem");
    let _cleanup = ShmCleanup::new(&name);
    let barrier_name = unique_name("dl-barrier");
    let _cleanup_b = ShmCleanup::new(&barrier_name);
    let cv_name = unique_name("dl-cv");
    let _cleanup_cv = ShmCleanup::new(&cv_name);
    let flag_name = unique_name("dl-cv-flag");
    let _cleanup_flag = ShmCleanup::new(&flag_name);

    let sem = SharedSemaphore::create(&name, Semaphore::bounded(0, 2)).expect("sem");
    let barrier = SharedBarrier::create(&barrier_name, Barrier::new(2)).expect("barrier");
    let cv = SharedCondvar::create(&cv_name, Condvar::new()).expect("condvar");
    let flag = SharedValue::<u32>::create(&flag_name, 0).expect("flag");

    assert_eq!(sem.acquire_deadline(past()), Err(SemaphoreError::Timeout));
    assert_eq!(
        sem.acquire_permit_deadline(past()).err(),
        Some(SemaphoreError::Timeout)
    );
    // A barrier wait that times out breaks the barrier (see `Barrier::wait_timeout`).
    assert_eq!(barrier.wait_deadline(past()), Err(BarrierError::Broken));
    barrier.reset();
    let guard = flag.lock().map_err(LockError::without_guard).expect("lock");
    let (guard, timed_out) = cv
        .wait_deadline(guard, past())
        .map_err(LockError::without_guard)
        .expect("wait");
    assert!(timed_out);
    let (guard, timed_out) = cv
        .wait_deadline_while(guard, past(), |f| *f == 0)
        .map_err(LockError::without_guard)
        .expect("wait while");
    assert!(timed_out && *guard == 0);
    drop(guard);

    let go = Pipe::new();
    let peer = fork_child(|| {
        let (Ok(sem), Ok(barrier), Ok(cv), Ok(flag)) = (
            SharedSemaphore::open(&name),
            SharedBarrier::open(&barrier_name),
            SharedCondvar::open(&cv_name),
            SharedValue::<u32>::open(&flag_name),
        ) else {
            return 1;
        };
        go.recv();
        if sem.release().is_err() {
            return 2;
        }
        go.recv();
        if sem.release().is_err() {
            return 3;
        }
        if barrier.wait_deadline(far()).is_err() {
            return 4;
        }
        if flag.set(1).is_err() {
            return 5;
        }
        cv.notify_all();
        0
    });
    go.send(1);
    sem.acquire_deadline(far())
        .expect("the permit the peer released");
    go.send(2);
    let permit = sem
        .acquire_permit_deadline(far())
        .expect("the second permit the peer released");
    drop(permit);
    barrier
        .wait_deadline(far())
        .expect("the peer arrives before the deadline");
    let guard = flag.lock().map_err(LockError::without_guard).expect("lock");
    let (guard, timed_out) = cv
        .wait_deadline_while(guard, far(), |f| *f == 0)
        .map_err(LockError::without_guard)
        .expect("wait while");
    assert!(!timed_out, "the peer set the flag and notified");
    assert_eq!(*guard, 1);
    drop(guard);
    peer.join_ok();
}
