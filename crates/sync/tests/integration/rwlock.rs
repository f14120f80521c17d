//! Cross-process tests of `RwLock` (forked processes sharing an anonymous region).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{LockError, RwLock};
use shmkit_testkit::{fork_child, stress, Exit, Pipe, SharedRegion};

fn at<T>(region: &SharedRegion, offset: usize) -> &T {
    assert!(offset + std::mem::size_of::<T>() <= region.len());
    // SAFETY: in bounds (checked), aligned for the types used here (offsets are
    // multiples of 64 in a page-aligned region), zero-filled, valid when zeroed, Sync.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

#[test]
fn writers_and_readers_keep_the_invariant_and_the_exact_total() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<[u64; 2]> = at(&region, 0);
    let done: &AtomicU32 = at(&region, 256);
    let per = stress(20_000, 200_000);
    let writers: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                for _ in 0..per {
                    let Ok(mut g) = lock.write() else { return 2 };
                    // Two non-atomic writes that readers must never see half-done.
                    g[0] = std::hint::black_box(g[0]) + 1;
                    g[1] = std::hint::black_box(g[1]) + 1;
                }
                0
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                let mut reads = 0u64;
                // Read at least a few times, then until the writers are done.
                while reads < 100 || done.load(Ordering::Acquire) == 0 {
                    let Ok(g) = lock.read() else { return 2 };
                    if g[0] != g[1] {
                        return 3; // torn: a writer was inside with us
                    }
                    reads += 1;
                }
                0
            })
        })
        .collect();
    for w in writers {
        w.join_ok();
    }
    done.store(1, Ordering::Release);
    for r in readers {
        r.join_ok();
    }
    let g = lock.read().unwrap();
    assert_eq!(*g, [4 * per as u64, 4 * per as u64]);
}

#[test]
fn readers_share_writer_excludes_and_timeouts_are_respected() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    let ready = Pipe::new();
    let release = Pipe::new();
    let reader = fork_child(|| {
        let g = lock.read();
        ready.send(1);
        release.recv();
        drop(g);
        0
    });
    ready.recv_n(1);
    // Another reader gets in while a reader holds it.
    assert!(lock.try_read().is_ok());
    assert!(lock.read_timeout(Duration::from_millis(10)).is_ok());
    assert!(matches!(lock.try_write(), Err(LockError::WouldBlock)));
    let d = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(lock.write_timeout(d), Err(LockError::Timeout)));
    assert!(start.elapsed() >= d);
    release.send(1);
    reader.join_ok();
    let mut w = lock.write_timeout(Duration::from_secs(10)).unwrap();
    *w = 5;
    assert!(matches!(lock.try_read(), Err(LockError::WouldBlock)));
    drop(w);
    assert_eq!(*lock.read().unwrap(), 5);
}

#[test]
fn a_sleeping_writer_is_woken_when_the_readers_leave() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    let ready = Pipe::new();
    let release = Pipe::new();
    let reader = fork_child(|| {
        let g = lock.read();
        ready.send(1);
        release.recv();
        drop(g);
        0
    });
    ready.recv_n(1);
    let started = Pipe::new();
    let writer = fork_child(|| {
        started.send(1);
        match lock.write() {
            Ok(mut g) => {
                *g = 9;
                0
            }
            Err(_) => 1,
        }
    });
    started.recv_n(1);
    release.send(1);
    reader.join_ok();
    writer.join_ok();
    assert_eq!(*lock.read().unwrap(), 9);
}

#[test]
fn a_killed_writer_is_replaced_by_a_waiting_writer_with_owner_died() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<[u64; 2]> = at(&region, 0);
    let ready = Pipe::new();
    let mut writer = fork_child(|| {
        let Ok(mut g) = lock.write() else { return 2 };
        g[0] = 1; // half of an update
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    writer.kill();
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
    let mut g = match lock.write() {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    };
    assert_eq!(*g, [1, 0]);
    g[1] = 1;
    g.make_consistent();
    drop(g);
    assert_eq!(*lock.read().expect("consistent"), [1, 1]);
    assert!(lock.write().is_ok());
}

#[test]
fn a_reader_waiting_on_a_killed_writer_sees_poison_until_a_writer_repairs() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    let ready = Pipe::new();
    let mut writer = fork_child(|| {
        let g = lock.write();
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    let started = Pipe::new();
    let reader = fork_child(|| {
        started.send(1);
        match lock.read() {
            Err(LockError::Poisoned(_)) => 0,
            _ => 1,
        }
    });
    started.recv_n(1);
    writer.kill();
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
    reader.join_ok();
    assert!(lock.is_poisoned());
    assert!(lock.read().is_err_and(|e| e.is_poisoned()));
    let g = lock.write().expect_err("poisoned").into_guard().unwrap();
    g.make_consistent();
    drop(g);
    assert!(lock.read().is_ok());
}

/// Forks a reader that takes a read lock, says so, and spins until killed.
fn reader_that_hangs_on(lock: &RwLock<u32>) -> shmkit_testkit::Child {
    let ready = Pipe::new();
    let child = fork_child(|| {
        let g = lock.read();
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    child
}

#[test]
fn a_killed_reader_does_not_wedge_a_waiting_writer() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    let mut reader = reader_that_hangs_on(lock);
    // A writer already waiting when the reader dies, and one that comes after.
    let started = Pipe::new();
    let writer = fork_child(|| {
        started.send(1);
        match lock.write_timeout(Duration::from_secs(30)) {
            Ok(mut g) => {
                *g += 1;
                0
            }
            Err(LockError::Timeout) => 1,
            Err(_) => 2,
        }
    });
    started.recv_n(1);
    reader.kill();
    assert_eq!(reader.wait(), Exit::Signal(libc::SIGKILL));
    writer.join_ok();
    // A dead reader does not poison: readers cannot have changed the data.
    let mut g = match lock.write_timeout(Duration::from_secs(30)) {
        Ok(g) => g,
        Err(e) => panic!("expected a plain write guard, got {e:?}"),
    };
    *g += 1;
    drop(g);
    assert!(!lock.is_poisoned());
    assert_eq!(*lock.read().unwrap(), 2);
}

#[test]
fn reclaiming_a_killed_reader_keeps_out_writers_while_a_live_reader_holds() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    let mut dead = reader_that_hangs_on(lock);
    let ready = Pipe::new();
    let release = Pipe::new();
    let live = fork_child(|| {
        let g = lock.read();
        ready.send(1);
        release.recv();
        drop(g);
        0
    });
    ready.recv_n(1);
    dead.kill();
    assert_eq!(dead.wait(), Exit::Signal(libc::SIGKILL));
    // Several writers wait; they reclaim the dead reader's count exactly once, so none
    // gets in while the live reader still holds its read lock.
    let inside: &AtomicU32 = at(&region, 2048);
    let writers: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| match lock.write_timeout(Duration::from_secs(30)) {
                Ok(mut g) => {
                    *g += 1;
                    inside.fetch_add(1, Ordering::SeqCst);
                    0
                }
                Err(_) => 1,
            })
        })
        .collect();
    // Long enough for many liveness checks (10 ms each): the writers must still wait.
    assert!(matches!(
        lock.write_timeout(Duration::from_millis(300)),
        Err(LockError::Timeout)
    ));
    assert_eq!(
        inside.load(Ordering::SeqCst),
        0,
        "a writer got in past a live reader"
    );
    release.send(1);
    live.join_ok();
    for w in writers {
        w.join_ok();
    }
    assert_eq!(*lock.read().unwrap(), 3);
    assert!(
        lock.try_write().is_ok(),
        "the reader count went back to zero"
    );
}

#[test]
fn a_reader_slot_whose_tid_was_reused_by_another_thread_is_reclaimed() {
    // Forge what a dead reader leaves behind, as docs/layout.md describes it: a count
    // of one in the state word and a reader slot naming this very thread's TID with
    // another start time (the TID was reused: the recorded reader is gone).
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let start = shmkit_sys::owner::start_time(tid).expect("our own thread exists");
    let forged = (u64::from(start.wrapping_add(1)) << 32) | u64::from(tid);
    let state: &AtomicU32 = at(&region, 0);
    let slot3: &std::sync::atomic::AtomicU64 = at(&region, 24 + 8 * 3);
    state.store(1, Ordering::SeqCst);
    slot3.store(forged, Ordering::SeqCst);
    assert!(matches!(lock.try_write(), Err(LockError::WouldBlock)));
    match lock.write_timeout(Duration::from_secs(30)) {
        Ok(mut g) => *g = 1,
        Err(e) => panic!("expected the forged dead reader to be reclaimed, got {e:?}"),
    }
    assert_eq!(slot3.load(Ordering::SeqCst), 0);
    assert_eq!(state.load(Ordering::SeqCst), 0);
}

#[test]
fn a_reader_that_exits_cleanly_without_unlocking_is_reclaimed() {
    let region = SharedRegion::new(4096);
    let lock: &RwLock<u32> = at(&region, 0);
    // The process leaks its guard and exits with code 0: gone all the same.
    let reader = fork_child(|| {
        std::mem::forget(lock.read());
        0
    });
    reader.join_ok();
    assert!(matches!(lock.try_write(), Err(LockError::WouldBlock)));
    assert!(lock.write_timeout(Duration::from_secs(30)).is_ok());
}

#[test]
fn readers_beyond_the_slots_are_counted_and_released() {
    let lock = RwLock::new(0u32);
    let n = shmkit_sync::RawRwLock::READER_SLOTS + 4;
    let guards: Vec<_> = (0..n).map(|_| lock.read().unwrap()).collect();
    assert!(matches!(lock.try_write(), Err(LockError::WouldBlock)));
    drop(guards);
    assert!(lock.try_write().is_ok());
    // The raw API (no guard, so no slot index) releases by the caller's identity.
    let raw = lock.raw();
    for _ in 0..n {
        raw.try_read().unwrap();
    }
    for _ in 0..n {
        // SAFETY: this thread took each of these read locks just above.
        unsafe { raw.read_unlock() };
    }
    assert!(raw.try_write().is_ok());
    // SAFETY: this thread holds the write lock.
    unsafe { raw.write_unlock() };
}
