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
    let inside: &AtomicU32 = at(&region, 64);
    let most: &AtomicU32 = at(&region, 128);
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
