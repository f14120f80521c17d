//! Cross-process tests of `Barrier`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{Barrier, BarrierError};
use shmkit_testkit::{fork_child, Pipe, SharedRegion};

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds, aligned offsets in a page-aligned zeroed region; the types are
    // valid when zeroed or initialised in place before use.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

#[test]
fn parties_are_released_together_with_distinct_indices_every_round() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 4) };
    let barrier: &Barrier = at(&region, 0);
    let rounds = 50usize;
    // seen[round] = bitmask of arrival indices; arrived[round] = parties past the barrier.
    let seen: &[AtomicU32; 64] = at(&region, 64);
    let before: &[AtomicU32; 64] = at(&region, 64 + 256);
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                for r in 0..rounds {
                    before[r].fetch_add(1, Ordering::SeqCst);
                    let Ok(i) = barrier.wait() else { return 2 };
                    // Everyone arrived at round r before anyone left it.
                    if before[r].load(Ordering::SeqCst) != 4 {
                        return 3;
                    }
                    seen[r].fetch_or(1 << i, Ordering::SeqCst);
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok();
    }
    for (r, mask) in seen.iter().take(rounds).enumerate() {
        assert_eq!(mask.load(Ordering::SeqCst), 0b1111, "round {r}");
    }
}

#[test]
fn a_timeout_breaks_the_barrier_for_everyone_until_reset() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 3) };
    let barrier: &Barrier = at(&region, 0);
    let started = Pipe::new();
    // A party that waits without a timeout: it must be released with Broken.
    let patient = fork_child(|| {
        started.send(1);
        match barrier.wait() {
            Err(BarrierError::Broken) => 0,
            _ => 1,
        }
    });
    started.recv_n(1);
    let d = Duration::from_millis(50);
    let start = Instant::now();
    assert_eq!(barrier.wait_timeout(d), Err(BarrierError::Broken));
    assert!(start.elapsed() >= d);
    patient.join_ok();
    assert!(barrier.is_broken());
    assert_eq!(barrier.wait(), Err(BarrierError::Broken));
    barrier.reset();
    assert!(!barrier.is_broken());
    let others: Vec<_> = (0..2)
        .map(|_| fork_child(|| if barrier.wait().is_ok() { 0 } else { 1 }))
        .collect();
    assert!(barrier.wait_timeout(Duration::from_secs(30)).is_ok());
    for c in others {
        c.join_ok();
    }
}
