//! Cross-process tests of `Event`.

use std::time::{Duration, Instant};

use shmkit_sync::Event;
use shmkit_testkit::{fork_child, Pipe, SharedRegion};

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds, aligned offset in a page-aligned zeroed region; Event is valid
    // when zeroed (or initialised in place before use).
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

#[test]
fn set_wakes_every_waiting_process_and_stays_set() {
    let region = SharedRegion::new(4096);
    let ev: &Event = at(&region, 0); // zeroed: clear, manual reset
    let started = Pipe::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                started.send(1);
                if ev.wait_timeout(Duration::from_secs(30)) == Ok(true) {
                    0
                } else {
                    1
                }
            })
        })
        .collect();
    started.recv_n(4);
    assert!(!ev.is_set());
    ev.set();
    for c in children {
        c.join_ok();
    }
    assert!(ev.is_set());
    ev.wait().expect("set: no sleep"); // returns at once while set
    ev.clear();
    assert!(!ev.is_set());
}

#[test]
fn wait_timeout_returns_false_after_at_least_the_timeout() {
    let ev = Event::new();
    let d = Duration::from_millis(40);
    let start = Instant::now();
    assert_eq!(ev.wait_timeout(d), Ok(false));
    assert!(start.elapsed() >= d);
}

#[test]
fn auto_reset_lets_one_waiter_through_per_set() {
    let region = SharedRegion::new(4096);
    // SAFETY: offset 0 is ours, aligned and unused.
    unsafe { Event::init_in_place(region.as_ptr().cast(), true) };
    let ev: &Event = at(&region, 0);
    let started = Pipe::new();
    let woke = Pipe::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                started.send(1);
                if ev.wait_timeout(Duration::from_secs(30)) != Ok(true) {
                    return 1;
                }
                woke.send(1);
                0
            })
        })
        .collect();
    started.recv_n(3);
    for _ in 0..3 {
        ev.set();
        woke.recv_n(1);
        // The one waiter that went through consumed the flag.
        assert!(!ev.is_set());
    }
    for c in children {
        c.join_ok();
    }
}
