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
    // After the barrier (272 bytes with its party slots).
    let seen: &[AtomicU32; 64] = at(&region, 512);
    let before: &[AtomicU32; 64] = at(&region, 512 + 256);
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

#[test]
fn a_party_killed_before_arriving_is_reported_to_the_waiters() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 3) };
    let barrier: &Barrier = at(&region, 0);
    let second_round = Pipe::new();
    // One round with everyone, so the barrier knows its parties; then the victim
    // stops before the second round and is killed.
    let mut victim = fork_child(|| {
        if barrier.wait().is_err() {
            return 1;
        }
        second_round.send(1);
        loop {
            std::hint::spin_loop();
        }
    });
    let victim_pid = victim.pid() as u32;
    let other = fork_child(move || {
        if barrier.wait().is_err() {
            return 1;
        }
        match barrier.wait_timeout(Duration::from_secs(30)) {
            Err(BarrierError::PartyDied { pid }) if pid == victim_pid => 0,
            _ => 2,
        }
    });
    barrier.wait().unwrap();
    second_round.recv_n(1);
    victim.kill();
    let _ = victim.wait();
    assert_eq!(
        barrier.wait_timeout(Duration::from_secs(30)),
        Err(BarrierError::PartyDied { pid: victim_pid })
    );
    other.join_ok();
    // Broken until reset, like a timed-out barrier.
    assert!(barrier.is_broken());
    assert!(barrier.wait().is_err());
    barrier.reset();
    assert!(!barrier.is_broken());
}

#[test]
fn a_party_that_exits_cleanly_instead_of_arriving_is_reported() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 2) };
    let barrier: &Barrier = at(&region, 0);
    // Known as a party from `register`, then gone without ever waiting.
    let leaver = fork_child(|| i32::from(!barrier.register()));
    let pid = leaver.pid() as u32;
    leaver.join_ok();
    assert_eq!(
        barrier.wait_timeout(Duration::from_secs(30)),
        Err(BarrierError::PartyDied { pid })
    );
    assert_eq!(barrier.wait(), Err(BarrierError::PartyDied { pid }));
}

#[test]
fn a_party_slot_whose_pid_was_reused_is_reported_dead() {
    // Forge a party slot as docs/layout.md describes it: this very process's pid with
    // another start time (the pid was reused: the recorded party is gone).
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 2) };
    let barrier: &Barrier = at(&region, 0);
    let pid = std::process::id();
    let start = shmkit_sys::owner::start_time(pid).expect("we exist");
    let slot0: &std::sync::atomic::AtomicU64 = at(&region, 16);
    slot0.store(
        (u64::from(start.wrapping_add(1)) << 32) | u64::from(pid),
        Ordering::SeqCst,
    );
    assert_eq!(
        barrier.wait_timeout(Duration::from_secs(30)),
        Err(BarrierError::PartyDied { pid })
    );
}

#[test]
fn a_hung_party_breaks_the_barrier_only_at_the_timeout() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Barrier::init_in_place(region.as_ptr().cast(), 2) };
    let barrier: &Barrier = at(&region, 0);
    let ready = Pipe::new();
    let release = Pipe::new();
    // Alive and known, but never arrives: that is a timeout, not a death.
    let hung = fork_child(|| {
        barrier.register();
        ready.send(1);
        release.recv();
        0
    });
    ready.recv_n(1);
    let d = Duration::from_millis(100);
    let start = Instant::now();
    assert_eq!(barrier.wait_timeout(d), Err(BarrierError::Broken));
    assert!(start.elapsed() >= d);
    release.send(1);
    hung.join_ok();
}
