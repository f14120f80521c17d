//! Cross-process tests of `Semaphore`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{Semaphore, SemaphoreError};
use shmkit_testkit::{fork_child, stress, Pipe, SharedRegion};

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds, 64-aligned offsets in a page-aligned zeroed region; the types
    // used are valid when zeroed or initialised in place before use.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

#[test]
fn at_most_max_processes_are_inside_at_once() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 of the region is ours, aligned and unused.
    unsafe { Semaphore::init_in_place(region.as_ptr().cast(), 2, Some(2)) };
    let sem: &Semaphore = at(&region, 0);
    // After the semaphore (144 bytes with its holder slots).
    let inside: &AtomicU32 = at(&region, 256);
    let most: &AtomicU32 = at(&region, 320);
    let rounds = stress(2_000, 50_000);
    let children: Vec<_> = (0..6)
        .map(|_| {
            fork_child(|| {
                for _ in 0..rounds {
                    if sem.acquire().is_err() {
                        return 2;
                    }
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::hint::spin_loop();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    if sem.release().is_err() {
                        return 3;
                    }
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok();
    }
    let most = most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "max inside = {most}");
    assert_eq!(sem.value(), 2);
}

#[test]
fn bounded_over_release_is_an_error_and_empty_blocks() {
    let sem = Semaphore::bounded(1, 1);
    assert_eq!(sem.release(), Err(SemaphoreError::Overflow { max: 1 }));
    assert!(sem.try_acquire().is_ok());
    assert_eq!(sem.try_acquire(), Err(SemaphoreError::WouldBlock));
    let d = Duration::from_millis(40);
    let start = Instant::now();
    assert_eq!(sem.acquire_timeout(d), Err(SemaphoreError::Timeout));
    assert!(start.elapsed() >= d);
    assert!(sem.release().is_ok());
    assert_eq!(sem.value(), 1);
    let unbounded = Semaphore::new(0);
    for _ in 0..10 {
        unbounded.release().unwrap();
    }
    assert_eq!(unbounded.value(), 10);
    assert_eq!(unbounded.max(), None);
}

#[test]
fn a_release_in_one_process_wakes_a_sleeper_in_another() {
    let region = SharedRegion::new(4096);
    let sem: &Semaphore = at(&region, 0); // zeroed: value 0, unbounded
    let started = Pipe::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                started.send(1);
                match sem.acquire_timeout(Duration::from_secs(30)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                }
            })
        })
        .collect();
    started.recv_n(3);
    for _ in 0..3 {
        sem.release().unwrap();
    }
    for c in children {
        c.join_ok();
    }
    assert_eq!(sem.value(), 0);
}

#[test]
fn a_permit_held_by_a_killed_process_is_given_back_to_a_waiter() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 of the region is ours, aligned and unused.
    unsafe { Semaphore::init_in_place(region.as_ptr().cast(), 2, Some(2)) };
    let sem: &Semaphore = at(&region, 0);
    let ready = Pipe::new();
    // The victim holds both permits (two permits of one process share one slot).
    let mut victim = fork_child(|| {
        let (Ok(a), Ok(b)) = (sem.acquire_permit(), sem.acquire_permit()) else {
            return 2;
        };
        ready.send(u8::from(a.is_tracked() && b.is_tracked()));
        std::mem::forget((a, b));
        loop {
            std::hint::spin_loop();
        }
    });
    assert_eq!(ready.recv(), Some(1), "the victim's permits are tracked");
    // A waiter that is already asleep when the holder dies.
    let started = Pipe::new();
    let waiter = fork_child(|| {
        started.send(1);
        match sem.acquire_permit_timeout(Duration::from_secs(30)) {
            Ok(_) => 0,
            Err(_) => 1,
        }
    });
    started.recv_n(1);
    victim.kill();
    let _ = victim.wait();
    waiter.join_ok();
    // Both permits came back (and the waiter's went back when it dropped it).
    let p = sem
        .acquire_permit_timeout(Duration::from_secs(30))
        .expect("the dead holder's permits are back");
    assert_eq!(sem.value(), 1);
    drop(p);
    assert_eq!(sem.value(), 2);
}

#[test]
fn a_permit_holder_that_exits_without_releasing_gives_it_back() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 of the region is ours, aligned and unused.
    unsafe { Semaphore::init_in_place(region.as_ptr().cast(), 1, Some(1)) };
    let sem: &Semaphore = at(&region, 0);
    fork_child(|| match sem.acquire_permit() {
        Ok(p) => {
            std::mem::forget(p); // exits cleanly with the permit held
            0
        }
        Err(_) => 1,
    })
    .join_ok();
    assert_eq!(sem.try_acquire(), Err(SemaphoreError::WouldBlock));
    sem.acquire_timeout(Duration::from_secs(30))
        .expect("the exited holder's permit is back");
}

#[test]
fn plain_permits_stay_consumed_when_their_taker_exits() {
    // `acquire` without a guard is Python's semaphore: a signal consumed by a process
    // that then exits must not come back.
    let region = SharedRegion::new(4096);
    let sem: &Semaphore = at(&region, 0);
    sem.release().unwrap();
    fork_child(|| if sem.acquire().is_ok() { 0 } else { 1 }).join_ok();
    assert_eq!(
        sem.acquire_timeout(Duration::from_millis(100)),
        Err(SemaphoreError::Timeout)
    );
    assert_eq!(sem.value(), 0);
}

#[test]
fn a_permit_copied_into_a_forked_child_is_given_back_once() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 of the region is ours, aligned and unused.
    unsafe { Semaphore::init_in_place(region.as_ptr().cast(), 1, Some(1)) };
    let sem: &Semaphore = at(&region, 0);
    let p = sem.acquire_permit().unwrap();
    let p_ref = &p;
    // The child drops its copy of the guard: that must not give back the parent's
    // permit.
    fork_child(|| {
        // SAFETY: the child's memory is a copy of the parent's; this moves the child's
        // copy of the guard out once and drops it (the child `_exit`s, so its `p` is
        // never dropped a second time).
        drop(unsafe { std::ptr::read(p_ref) });
        i32::from(sem.value() != 0)
    })
    .join_ok();
    assert_eq!(sem.value(), 0, "the child's copy gave the permit back");
    drop(p);
    assert_eq!(sem.value(), 1);
}

#[test]
fn process_scoped_permits_of_a_killed_process_come_back_once() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 of the region is ours, aligned and unused.
    unsafe { Semaphore::init_in_place(region.as_ptr().cast(), 3, Some(3)) };
    let sem: &Semaphore = at(&region, 0);
    let ready = Pipe::new();
    // The victim takes two permits without guards (as the Python binding does), and
    // gives one back and takes it again: its slot counts two when it is killed.
    let mut victim = fork_child(|| {
        let (Ok(a), Ok(b)) = (sem.acquire_for_process(), sem.try_acquire_for_process()) else {
            return 2;
        };
        if sem.release_for_process().is_err() || sem.acquire_for_process() != Ok(true) {
            return 3;
        }
        ready.send(u8::from(a && b));
        loop {
            std::hint::spin_loop();
        }
    });
    assert_eq!(ready.recv(), Some(1), "the victim's permits are tracked");
    assert_eq!(sem.value(), 1);
    // The parent takes the last one (tracked in its own slot), then waits for more.
    assert_eq!(sem.try_acquire_for_process(), Ok(true));
    victim.kill();
    let _ = victim.wait();
    for _ in 0..2 {
        assert_eq!(
            sem.acquire_for_process_timeout(Duration::from_secs(30)),
            Ok(true),
            "the killed holder's permits are back"
        );
    }
    // Counted once: nothing more to take, and three releases fill the bound exactly.
    assert_eq!(
        sem.try_acquire_for_process(),
        Err(SemaphoreError::WouldBlock)
    );
    for _ in 0..3 {
        sem.release_for_process().unwrap();
    }
    assert_eq!(sem.value(), 3);
    assert_eq!(
        sem.release_for_process(),
        Err(SemaphoreError::Overflow { max: 3 })
    );
    assert!(format!("{sem:?}").contains("tracked_permits: 0"));
}

#[test]
fn a_process_release_without_a_recorded_permit_is_a_plain_signal() {
    let region = SharedRegion::new(4096);
    // Zeroed: value 0, unbounded. A child signals (it holds no permit), then the
    // parent takes the signal.
    let sem: &Semaphore = at(&region, 0);
    fork_child(|| i32::from(sem.release_for_process().is_err())).join_ok();
    assert_eq!(sem.value(), 1);
    assert_eq!(sem.try_acquire_for_process(), Ok(true));
    // A forked child does not give back its parent's recorded permit as its own: its
    // release is a plain one, and the parent's stays recorded.
    fork_child(|| i32::from(sem.release_for_process().is_err())).join_ok();
    assert_eq!(sem.value(), 1);
    assert!(format!("{sem:?}").contains("tracked_permits: 1"));
    sem.release_for_process().unwrap();
    assert!(format!("{sem:?}").contains("tracked_permits: 0"));
    assert_eq!(sem.value(), 2);
}
