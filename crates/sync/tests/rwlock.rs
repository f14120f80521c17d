//! Cross-process tests of `RwLock` (forked processes sharing an anonymous region).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{LockError, RwLock};
use shmkit_testkit::{fork_child, stress, Pipe, SharedRegion};

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
