//! Cross-process tests of `FileLock` (flock and OFD byte-range locks).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shmkit_sync::{FileLock, FileLockError, LockMode};
use shmkit_testkit::{fork_child, unique_name, Exit, Pipe};

/// A unique lock-file path, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new() -> Self {
        TempPath(std::env::temp_dir().join(unique_name("flock")))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn whole_file_lock_is_exclusive_and_released_by_the_kernel_on_sigkill() {
    let path = TempPath::new();
    let ready = Pipe::new();
    let mut child = fork_child(|| {
        let Ok(lock) = FileLock::open(&path.0) else {
            return 2;
        };
        let Ok(g) = lock.lock(LockMode::Exclusive) else {
            return 3;
        };
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop(); // hold until killed
        }
    });
    ready.recv_n(1);
    let lock = FileLock::open(&path.0).unwrap();
    assert!(matches!(
        lock.try_lock(LockMode::Exclusive),
        Err(FileLockError::WouldBlock)
    ));
    assert!(matches!(
        lock.try_lock(LockMode::Shared),
        Err(FileLockError::WouldBlock)
    ));
    let d = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(
        lock.lock_timeout(LockMode::Exclusive, d),
        Err(FileLockError::Timeout)
    ));
    assert!(start.elapsed() >= d);
    child.kill();
    assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
    let g = lock
        .lock_timeout(LockMode::Exclusive, Duration::from_secs(10))
        .expect("the kernel released the dead holder's lock");
    drop(g);
}

#[test]
fn shared_locks_coexist_and_exclude_writers() {
    let path = TempPath::new();
    let a = FileLock::open(&path.0).unwrap();
    let b = FileLock::open(&path.0).unwrap();
    let c = FileLock::open(&path.0).unwrap();
    let ga = a.lock(LockMode::Shared).unwrap();
    let gb = b.try_lock(LockMode::Shared).unwrap();
    assert!(matches!(
        c.try_lock(LockMode::Exclusive),
        Err(FileLockError::WouldBlock)
    ));
    drop(ga);
    drop(gb);
    assert!(c.try_lock(LockMode::Exclusive).is_ok());
}

#[test]
fn byte_ranges_lock_independently_and_die_with_their_holder() {
    let path = TempPath::new();
    let ready = Pipe::new();
    let mut child = fork_child(|| {
        let Ok(lock) = FileLock::open(&path.0) else {
            return 2;
        };
        let Ok(g) = lock.lock_range(0, 10, LockMode::Exclusive) else {
            return 3;
        };
        ready.send(1);
        std::mem::forget(g);
        loop {
            std::hint::spin_loop();
        }
    });
    ready.recv_n(1);
    let lock = FileLock::open(&path.0).unwrap();
    assert!(matches!(
        lock.try_lock_range(5, 10, LockMode::Shared),
        Err(FileLockError::WouldBlock)
    ));
    let other = lock
        .try_lock_range(10, 10, LockMode::Exclusive)
        .expect("disjoint range");
    let d = Duration::from_millis(30);
    let start = Instant::now();
    assert!(matches!(
        lock.lock_range_timeout(0, 1, LockMode::Exclusive, d),
        Err(FileLockError::Timeout)
    ));
    assert!(start.elapsed() >= d);
    child.kill();
    assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
    let g = lock
        .lock_range_timeout(0, 10, LockMode::Exclusive, Duration::from_secs(10))
        .unwrap();
    drop(g);
    drop(other);
}
