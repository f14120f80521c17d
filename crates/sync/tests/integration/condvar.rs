//! Cross-process tests of `Condvar` with `Mutex`.

use std::time::{Duration, Instant};

use shmkit_sync::{Condvar, Mutex};
use shmkit_testkit::{fork_child, stress, SharedRegion};

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds, 64-aligned offsets in a page-aligned zeroed region; Mutex<u64>
    // and Condvar are valid when zeroed.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

/// Two processes take turns 2x`rounds` times; each waits for its turn on the condvar.
/// A lost wake-up would leave a process waiting out the (generous) timeout.
#[test]
fn ping_pong_between_processes_loses_no_wakeup() {
    let region = SharedRegion::new(4096);
    let turn: &Mutex<u64> = at(&region, 0);
    let cv: &Condvar = at(&region, 64);
    let rounds = stress(2_000, 50_000) as u64;
    let play = |me: u64| -> i32 {
        for _ in 0..rounds {
            let Ok(g) = turn.lock() else { return 2 };
            let Ok((mut g, timed_out)) =
                cv.wait_timeout_while(g, Duration::from_secs(20), |t| *t % 2 != me)
            else {
                return 3;
            };
            if timed_out {
                return 4; // lost wake-up
            }
            *g += 1;
            drop(g);
            cv.notify_one();
        }
        0
    };
    let child = fork_child(|| play(1));
    assert_eq!(play(0), 0);
    child.join_ok();
    assert_eq!(*turn.lock().unwrap(), 2 * rounds);
}

#[test]
fn notify_all_wakes_every_waiting_process() {
    let region = SharedRegion::new(4096);
    let gate: &Mutex<u64> = at(&region, 0);
    let cv: &Condvar = at(&region, 64);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                let Ok(mut g) = gate.lock() else { return 2 };
                *g += 1; // announce: waiting
                match cv.wait_timeout_while(g, Duration::from_secs(30), |v| *v < 100) {
                    Ok((_, false)) => 0,
                    _ => 1,
                }
            })
        })
        .collect();
    // Wait (on the condvar too) until all four are waiting.
    let mut g = gate.lock().unwrap();
    while *g < 4 {
        g = cv.wait_timeout(g, Duration::from_millis(5)).unwrap().0;
    }
    *g = 100;
    drop(g);
    cv.notify_all();
    for w in waiters {
        w.join_ok();
    }
}

#[test]
fn wait_timeout_times_out_after_at_least_the_duration() {
    let m = Mutex::new(0u32);
    let cv = Condvar::new();
    let d = Duration::from_millis(30);
    let start = Instant::now();
    let (g, timed_out) = cv
        .wait_timeout_while(m.lock().unwrap(), d, |v| *v == 0)
        .unwrap();
    assert!(timed_out);
    assert!(start.elapsed() >= d);
    drop(g);
    assert!(m.try_lock().is_ok(), "the mutex was re-locked and released");
}
