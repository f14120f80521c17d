//! Anonymous segments are inherited by fork children: writes in any process are seen
//! by all, and the memory outlives every child.

use std::sync::atomic::{AtomicU64, Ordering};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use shmkit_segment::{Backend, CreateError, Segment, TypeTag};
use shmkit_testkit::{child_role, fork_child, spawn_role, Exit};

#[test]
fn fork_children_share_anonymous_memory() {
    let seg = Segment::options()
        .anonymous()
        .size(4096)
        .create_with(|p, _| {
            // SAFETY: the payload is ours alone until READY; 128-aligned, 8 bytes fit.
            unsafe { p.cast::<u64>().write(1000) };
        })
        .unwrap();
    assert_eq!(seg.backend(), Backend::Anonymous);
    // SAFETY: the payload is 128-byte aligned and 4096 bytes long; only atomics touch
    // this word from here on, in every process.
    let counter = unsafe { &*seg.payload_ptr().cast::<AtomicU64>() };
    assert_eq!(
        counter.load(Ordering::Relaxed),
        1000,
        "init ran before READY"
    );
    let per_child = shmkit_testkit::stress(10_000, 1_000_000) as u64;
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                for _ in 0..per_child {
                    // Relaxed: a counter; the parent reads it after waitpid.
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                0
            })
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait(), Exit::Code(0));
    }
    assert_eq!(counter.load(Ordering::Relaxed), 1000 + 4 * per_child);
}

const FD_ENV: &str = "SHMKIT_SEG_FD";
const FD_TAG: TypeTag = TypeTag::new(2, "anonymous::FdPassing", 8, 8);

/// An unrelated process (exec, not fork) opens an anonymous segment from its memfd.
#[test]
fn anonymous_segment_opens_from_a_passed_fd() {
    if child_role().is_some() {
        let n: i32 = std::env::var(FD_ENV).unwrap().parse().unwrap();
        // SAFETY: the parent passed us this fd number, open and ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(n) };
        let seg = Segment::options()
            .fd(fd)
            .type_tag(FD_TAG)
            .size(64)
            .open()
            .unwrap();
        assert_eq!(seg.backend(), Backend::Anonymous);
        assert!(seg.name().is_none());
        // SAFETY: 128-aligned payload of 64 bytes; only atomics touch this word.
        let word = unsafe { &*seg.payload_ptr().cast::<AtomicU64>() };
        // Relaxed: the parent reads after our exit.
        assert_eq!(word.load(Ordering::Relaxed), 0xfeed);
        word.store(0xbeef, Ordering::Relaxed);
        return;
    }
    let seg = Segment::options()
        .anonymous()
        .type_tag(FD_TAG)
        .size(64)
        .create_with(|p, _| {
            // SAFETY: the payload is ours alone until READY.
            unsafe { p.cast::<u64>().write(0xfeed) };
        })
        .unwrap();
    let fd = seg.fd().expect("anonymous segments keep their memfd");
    // dup without O_CLOEXEC so the re-executed child inherits it.
    // SAFETY: dup of a valid fd we hold.
    let inheritable = unsafe { libc::dup(fd.as_raw_fd()) };
    assert!(inheritable >= 0);
    // SAFETY: `inheritable` is a fresh fd we own.
    let inheritable = unsafe { OwnedFd::from_raw_fd(inheritable) };
    let child = spawn_role(
        shmkit_testkit::test_path!(anonymous_segment_opens_from_a_passed_fd),
        "fd-reader",
        &[(FD_ENV, &inheritable.as_raw_fd().to_string())],
    );
    drop(inheritable);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed");
    // SAFETY: as in the child.
    let word = unsafe { &*seg.payload_ptr().cast::<AtomicU64>() };
    assert_eq!(word.load(Ordering::Relaxed), 0xbeef);

    // A received fd can only be opened; named segments have no fd to pass.
    // SAFETY: dup of a valid fd we hold.
    let again = unsafe { OwnedFd::from_raw_fd(libc::dup(seg.fd().unwrap().as_raw_fd())) };
    assert!(matches!(
        Segment::options().fd(again).size(64).create(),
        Err(CreateError::InvalidName { .. })
    ));
    let name = shmkit_testkit::unique_name("anon-fd");
    let named = Segment::options().posix(&name).size(8).create().unwrap();
    assert!(named.fd().is_none());
}
