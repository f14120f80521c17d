//! Tests of `NamedLock`: unrelated processes (the test binary re-executed) and forked
//! processes taking locks by name.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{NamedLock, NamedLockError};
use shmkit_testkit::{child_role, fork_child, spawn_role, stress, unique_name, SharedRegion};

/// Writes one byte to fd 1 directly (the harness captures `print!`).
fn signal_parent() {
    let b = b"L";
    // SAFETY: writing one byte from a static buffer to stdout.
    unsafe { libc::write(1, b.as_ptr().cast(), 1) };
}

/// Kills and reaps a re-executed child even when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn named_lock_is_released_by_the_kernel_when_an_unrelated_holder_is_killed() {
    if let Some(role) = child_role() {
        if role == "holder" {
            let name = std::env::var("SHMKIT_TEST_LOCK").unwrap();
            let _held = NamedLock::acquire(&name, Duration::from_secs(30)).unwrap();
            signal_parent();
            loop {
                std::thread::park(); // hold until killed
            }
        }
        return;
    }
    let name = unique_name("named");
    let mut child = KillOnDrop(spawn_role(
        shmkit_testkit::test_path!(
            named_lock_is_released_by_the_kernel_when_an_unrelated_holder_is_killed
        ),
        "holder",
        &[("SHMKIT_TEST_LOCK", &name)],
    ));
    // The harness prints its own lines first; our signal is the byte b'L'.
    let mut byte = [0u8; 1];
    while byte[0] != b'L' {
        child
            .0
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut byte)
            .expect("the holder signals once it holds the lock");
    }
    // Busy is not a timeout: `try_acquire` did not wait.
    let busy = NamedLock::try_acquire(&name).expect_err("held by the child");
    assert!(
        matches!(busy, NamedLockError::WouldBlock(ref n) if *n == name),
        "{busy:?}"
    );
    assert!(busy.to_string().contains("did not wait"), "{busy}");
    let d = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(
        NamedLock::acquire(&name, d),
        Err(NamedLockError::Timeout(_))
    ));
    assert!(start.elapsed() >= d);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let g = NamedLock::acquire(&name, Duration::from_secs(10)).expect("released by the kernel");
    let path = g.path().to_owned();
    assert!(path.exists());
    let mode =
        std::fs::metadata(&path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.unwrap() & 0o777, 0o600);
    drop(g);
    assert!(!path.exists(), "the guard removes its file");
}

#[test]
fn named_lock_excludes_across_processes_under_contention() {
    let region = SharedRegion::new(4096);
    // SAFETY: the region is page aligned and zeroed; an AtomicU64 is valid when zeroed.
    let counter = unsafe { &*(region.as_ptr() as *const AtomicU64) };
    let name = unique_name("named-mx");
    let per = stress(100, 2_000);
    let children: Vec<_> = (0..4)
        .map(|_| {
            let name = name.clone();
            fork_child(move || {
                for _ in 0..per {
                    let Ok(g) = NamedLock::acquire(&name, Duration::from_secs(30)) else {
                        return 2;
                    };
                    // A non-atomic read-modify-write through two separate atomic ops.
                    let v = counter.load(Ordering::Relaxed);
                    std::hint::black_box(v);
                    counter.store(v + 1, Ordering::Relaxed);
                    drop(g);
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok();
    }
    assert_eq!(counter.load(Ordering::Relaxed), 4 * per as u64);
}

#[test]
fn invalid_names_are_rejected_before_touching_the_file_system() {
    for bad in ["", "../etc/passwd", ".x", "a/b"] {
        assert!(matches!(
            NamedLock::try_acquire(bad),
            Err(NamedLockError::InvalidName(_))
        ));
    }
}
