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
