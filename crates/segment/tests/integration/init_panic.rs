//! A panicking `init` removes the half-made segment.
//!
//! In its own test binary: a panic on one harness thread while another test forks can
//! leave the forked child blocked on the panic-hook lock (see testkit's fork notes).

use crate::common;

use common::{Kind, Target};

const NAMED: [Kind; 3] = [Kind::Posix, Kind::SysV, Kind::File];

/// One test only in this binary: a panic on one harness thread while another test
/// forks could leave the forked child blocked on the panic-hook lock.
#[test]
fn init_panic() {
    a_failed_init_is_published_to_openers();
    init_panic_removes_the_half_made_segment();
}

fn init_panic_removes_the_half_made_segment() {
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-panic");
        let r = std::panic::catch_unwind(|| {
            t.options()
                .size(64)
                .create_with(|_, _| panic!("init failed"))
        });
        assert!(r.is_err());
        assert!(!t.exists(), "{kind:?}: the half-made segment was removed");
    }
}

/// A process that mapped the segment before the creator's `init` panicked sees state 2
/// (FAILED) instead of waiting out its timeout; `open` reports it as `InitFailed`.
fn a_failed_init_is_published_to_openers() {
    use shmkit_segment::OpenError;
    use shmkit_testkit::{fork_child, Exit, Pipe};

    let (t, _c) = Target::new(Kind::Posix, "panic-pub");
    let Target::Posix(name) = &t else {
        unreachable!()
    };
    let in_init = Pipe::new();
    let go = Pipe::new();
    let mut child = fork_child(|| {
        let _ = t.options().size(64).create_with(|_, _| {
            in_init.send(1);
            go.recv();
            panic!("init failed");
        });
        0
    });
    in_init.recv_n(1);
    // Map it while the creator is still in init (raw: no waiting).
    let raw = shmkit_segment::Segment::open_raw(name).unwrap();
    go.send(1);
    assert_eq!(child.wait(), Exit::Code(101), "the child's init panicked");
    // SAFETY: offset 12 (state) is inside the mapping; a u32 read, aligned.
    let state = unsafe { raw.as_ptr().add(12).cast::<u32>().read_volatile() };
    assert_eq!(state, 2, "FAILED was published");
    assert!(!t.exists(), "the name was removed");

    // `open` on a segment in that state reports InitFailed at once.
    let (t2, _c2) = Target::new(Kind::Posix, "panic-state");
    let mut seg = t2.options().size(64).create().unwrap();
    seg.persist();
    // SAFETY: as above, in our own mapping.
    unsafe { seg.as_ptr().add(12).cast::<u32>().write_volatile(2) };
    match t2
        .options()
        .open_timeout(std::time::Duration::from_secs(60))
        .open()
    {
        Err(OpenError::InitFailed { pid }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
}
