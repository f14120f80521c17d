//! Peers in another pid namespace (containers sharing `/dev/shm`, `--ipc=host`).
//!
//! A thread id only means something in its own pid namespace, so a waiter cannot tell a
//! holder in another namespace from a dead one. These tests put one side in a new pid
//! namespace with its own `/proc` (as a container has: `unshare -p -f --mount-proc`),
//! which needs root.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use shmkit_segment::{OpenError as SegmentOpenError, Segment};
use shmkit_testkit::{
    fork_child, is_root, skip_or_fail, unique_name, Child, Exit, Pipe, ShmCleanup,
};
use shmkit_typed::{LockError, OpenError, ReadError, Ring, SharedValue, WriteError};

/// Inode of this process's pid namespace.
fn our_pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid")
        .expect("/proc/self/ns/pid")
        .ino()
}

fn can_unshare() -> bool {
    skip_or_fail(is_root(), "needs root to create a pid namespace (unshare)")
}

/// Runs `f` in a new process that is pid 1 of a new pid namespace with its own `/proc`
/// (a new mount namespace too, so our `/proc` is untouched; `/dev/shm` stays shared).
/// The returned child exits with `f`'s code (90..=92: the namespace setup failed).
fn in_new_pid_namespace(f: impl FnOnce() -> i32) -> Child {
    fork_child(move || {
        die_with_parent();
        // SAFETY: unshare takes no pointers; this forked child is single-threaded.
        if unsafe { libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) } != 0 {
            return 90;
        }
        // SAFETY: fork in a single-threaded process; the grandchild only runs `f` and
        // `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return 91;
        }
        if pid == 0 {
            die_with_parent();
            let code = if mount_own_proc() {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101)
            } else {
                92
            };
            // SAFETY: ends the grandchild at once, without the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
            if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
                break;
            }
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            100 + libc::WTERMSIG(status)
        }
    })
}

/// SIGKILL this process when its parent dies: a failing test (which kills its child)
/// must not leave a grandchild behind, blocked on a pipe.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number, no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// Gives the calling process (in a new mount namespace) a `/proc` of its own pid
/// namespace.
fn mount_own_proc() -> bool {
    // SAFETY: mount(2) with static NUL-terminated strings and null data; this process
    // is alone in its mount namespace, which dies with it.
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) == 0
            && libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) == 0
    }
}

/// Opens the named `SharedValue<u64>` with the opt-in.
fn open_shared(name: &str) -> Result<SharedValue<u64>, OpenError> {
    SharedValue::<u64>::open_in(
        Segment::options()
            .posix(name)
            .allow_foreign_pid_namespace(true),
    )
}

/// Asserts that `v`'s lock, held by a live process, is neither taken over nor reported
/// as ours: `try_lock` is `WouldBlock`, `lock_timeout` is `Timeout`.
fn assert_held_elsewhere(v: &SharedValue<u64>) -> Result<(), String> {
    match v.try_lock() {
        Err(LockError::WouldBlock) => {}
        Err(e) => return Err(format!("try_lock: {e}")),
        Ok(_) => return Err("try_lock took a lock a live process holds".into()),
    }
    match v.lock_timeout(Duration::from_millis(50)) {
        Err(LockError::Timeout) => Ok(()),
        Err(e) => Err(format!("lock_timeout: {e}")),
        Ok(_) => Err("lock_timeout took a lock a live process holds".into()),
    }
}

/// Before the fix the open succeeded, and a waiter here found no `/proc/<tid>` for the
/// holder over there (or an unrelated thread with that tid), declared it dead and took
/// its lock: `try_lock` returned `OwnerDied` while the holder still held it.
#[test]
fn opening_from_another_pid_namespace_is_refused_by_default() {
    if !can_unshare() {
        return;
    }
    let name = unique_name("pidns-refuse");
    let _cleanup = ShmCleanup::new(&name);
    let counter = SharedValue::<u64>::create(&name, 0).expect("create");
    let ring_name = unique_name("pidns-refuse-ring");
    let _ring_cleanup = ShmCleanup::new(&ring_name);
    let _ring = Ring::create(&ring_name, 4096).expect("create ring");
    let creator_ns = our_pid_namespace();
    let child_name = name.clone();
    let mut child = in_new_pid_namespace(|| {
        let ours = our_pid_namespace();
        if ours == creator_ns {
            return 3; // the setup did not give us a namespace of our own
        }
        match SharedValue::<u64>::open(&child_name) {
            Err(OpenError::Segment(SegmentOpenError::ForeignPidNamespace {
                creator,
                ours: got,
                ..
            })) if creator == creator_ns && got == ours => {}
            Err(_) => return 4,
            Ok(_) => return 5,
        }
        // The message names both namespaces and the way out.
        let Err(e) = SharedValue::<u64>::open(&child_name) else {
            return 5;
        };
        let msg = e.to_string();
        if !msg.contains(&creator_ns.to_string())
            || !msg.contains(&ours.to_string())
            || !msg.contains("allow_foreign_pid_namespace(true)")
        {
            return 6;
        }
        // Every typed object goes through the same open: a ring too.
        match Ring::open(&ring_name) {
            Err(OpenError::Segment(SegmentOpenError::ForeignPidNamespace { .. })) => 0,
            _ => 7,
        }
    });
    assert_eq!(child.wait(), Exit::Code(0));
    // Nothing was changed by the refused opener.
    assert!(!counter.segment().shared_across_pid_namespaces());
    assert_eq!(counter.get().expect("get"), 0);
}

/// With the opt-in, a holder in either namespace keeps its lock: the other side waits
/// or times out, never takes it as "dead", never thinks it holds it itself.
#[test]
fn with_the_opt_in_a_holder_in_either_namespace_keeps_the_lock() {
    if !can_unshare() {
        return;
    }
    let name = unique_name("pidns-hold");
    let _cleanup = ShmCleanup::new(&name);
    let counter = SharedValue::<u64>::create(&name, 0).expect("create");
    let (to_parent, to_child) = (Pipe::new(), Pipe::new());
    let child_name = name.clone();
    let mut child = in_new_pid_namespace(|| {
        let Ok(v) = open_shared(&child_name) else {
            return 2;
        };
        if !v.segment().shared_across_pid_namespaces() {
            return 3;
        }
        // 1. We hold; the creator's side must not take it.
        let Ok(mut guard) = v.lock() else {
            return 4;
        };
        *guard += 1;
        to_parent.send(1);
        to_child.recv();
        drop(guard);
        to_parent.send(2);
        // 2. The creator's side holds; we must not take it.
        to_child.recv();
        let code = if assert_held_elsewhere(&v).is_ok() {
            0
        } else {
            5
        };
        to_parent.send(3);
        code
    });
    assert_eq!(
        to_parent.recv(),
        Some(1),
        "the child could not take the lock"
    );
    // The flag set by the opener over there is seen here.
    assert!(counter.segment().shared_across_pid_namespaces());
    assert_held_elsewhere(&counter).unwrap();
    to_child.send(1);
    assert_eq!(to_parent.recv(), Some(2));
    let guard = counter.lock().expect("lock after the child released it");
    assert_eq!(*guard, 1);
    to_child.send(2);
    assert_eq!(to_parent.recv(), Some(3));
    drop(guard);
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(counter.get().expect("get"), 1);
}

/// With the opt-in, both namespaces increment one counter under contention: no
/// increment is lost (exclusion holds) and nobody gets `OwnerDied` or `WouldDeadlock`.
#[test]
fn with_the_opt_in_updates_from_both_namespaces_exclude_each_other() {
    if !can_unshare() {
        return;
    }
    let per_side = shmkit_testkit::stress(2_000, 100_000);
    let name = unique_name("pidns-count");
    let _cleanup = ShmCleanup::new(&name);
    let counter = SharedValue::<u64>::create(&name, 0).expect("create");
    let go = Pipe::new();
    let child_name = name.clone();
    let child = in_new_pid_namespace(|| {
        let Ok(v) = open_shared(&child_name) else {
            return 2;
        };
        go.send(1);
        for _ in 0..per_side {
            if v.update(|x| *x += 1).is_err() {
                return 3;
            }
        }
        0
    });
    assert_eq!(go.recv(), Some(1));
    for _ in 0..per_side {
        counter.update(|x| *x += 1).expect("update");
    }
    child.join_ok();
    assert_eq!(counter.get().expect("get"), 2 * per_side as u64);
}

/// Ring roles: with the opt-in, a reader in another pid namespace keeps its role and
/// is never reported dead to the writer (which times out instead of `PeerDied`).
#[test]
fn with_the_opt_in_a_ring_peer_in_another_namespace_is_never_declared_dead() {
    if !can_unshare() {
        return;
    }
    let name = unique_name("pidns-ring");
    let _cleanup = ShmCleanup::new(&name);
    let mut writer = Ring::create(&name, 4096).expect("create");
    writer
        .write(b"hello")
        .expect("first write claims the writer role");
    let (to_parent, to_child) = (Pipe::new(), Pipe::new());
    let child_name = name.clone();
    let mut child = in_new_pid_namespace(|| {
        let opts = Segment::options()
            .posix(&child_name)
            .allow_foreign_pid_namespace(true);
        let Ok(mut reader) = Ring::open_in(opts) else {
            return 2;
        };
        // Takes the reader role and the message.
        if reader.read_with(|m| m == b"hello").ok() != Some(true) {
            return 3;
        }
        to_parent.send(1);
        to_child.recv();
        0
    });
    assert_eq!(to_parent.recv(), Some(1), "the child could not read");
    // Another reader here must not steal the role of the live reader over there.
    let mut thief = Ring::open(&name).expect("open in the creator's namespace");
    assert!(
        matches!(
            thief.try_read_with(|_| ()),
            Err(ReadError::RoleTaken { .. })
        ),
        "a live reader's role was taken"
    );
    // Fill the ring: the writer waits for a reader it cannot judge, and times out.
    let msg = [7u8; 1000];
    let mut timed_out = false;
    for _ in 0..16 {
        match writer.write_timeout(&msg, Duration::from_millis(30)) {
            Ok(()) => {}
            Err(WriteError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(e) => panic!("write_timeout: {e}"),
        }
    }
    assert!(
        timed_out,
        "a 4 KiB ring took 16 KB without a reader reading"
    );
    to_child.send(1);
    assert_eq!(child.wait(), Exit::Code(0));
}
