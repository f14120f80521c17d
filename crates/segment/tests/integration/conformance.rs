//! One conformance suite, instantiated for every backend: create/write in one process,
//! open/read in another, header contents, unlink and drop semantics.

use crate::common;

use common::{read_payload, run_role, write_payload, Kind, Target};
use shmkit_segment::{Backend, OpenError, Segment, TypeTag, HEADER_LEN, LAYOUT_VERSION, MAGIC};
use shmkit_testkit::{child_role, fork_child, Exit, Pipe};

const SIZE: usize = 8192;
const MSG: &[u8] = b"written by the creator before READY";
const REPLY: &[u8] = b"and this by another process";

fn backend_of(kind: Kind) -> Backend {
    match kind {
        Kind::Posix => Backend::Posix,
        Kind::SysV => Backend::SysV,
        Kind::File => Backend::File,
        Kind::Anonymous => Backend::Anonymous,
    }
}

fn create_with_msg(t: &Target) -> Segment {
    t.options()
        .size(SIZE)
        .create_with(|p, len| {
            assert_eq!(len, SIZE);
            // SAFETY: the payload is ours alone until READY; MSG fits.
            unsafe { std::ptr::copy_nonoverlapping(MSG.as_ptr(), p, MSG.len()) };
        })
        .expect("create")
}

/// The creator writes in `init`; another real process reads it and replies; the
/// creator sees the reply.
fn roundtrip(kind: Kind, test_path: &str) {
    if child_role().is_some() {
        let t = Target::from_env();
        let seg = t.options().size(SIZE).open().expect("child open");
        assert!(!seg.is_creator());
        assert_eq!(read_payload(&seg, MSG.len()), MSG);
        write_payload(&seg, 1024, REPLY);
        return;
    }
    let (t, _c) = Target::new(kind, "conf-rt");
    let seg = create_with_msg(&t);
    assert!(seg.is_creator());
    if kind == Kind::Anonymous {
        // Anonymous memory has no name: the other process is a fork child.
        let mut child = fork_child(|| {
            if read_payload(&seg, MSG.len()) != MSG {
                return 1;
            }
            write_payload(&seg, 1024, REPLY);
            0
        });
        assert_eq!(child.wait(), Exit::Code(0));
    } else {
        let (ok, _) = run_role(test_path, "reader", &t);
        assert!(ok, "reader process failed");
    }
    // SAFETY: the other process has exited; nobody else writes.
    let bytes = unsafe { seg.as_slice() };
    assert_eq!(
        &bytes[HEADER_LEN + 1024..HEADER_LEN + 1024 + REPLY.len()],
        REPLY
    );
}

fn header_and_geometry(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-hdr");
    let tag = TypeTag::new(9, "conformance::Thing", 16, 8);
    let seg = t
        .options()
        .size(1000)
        .type_tag(tag)
        .create()
        .expect("create");
    assert_eq!(seg.backend(), backend_of(kind));
    assert_eq!(seg.payload_len(), 1000);
    assert_eq!(seg.len(), HEADER_LEN + 1000);
    assert_eq!(seg.payload_ptr() as usize % 128, 0);
    assert_eq!(
        seg.payload_ptr() as usize - seg.as_ptr() as usize,
        HEADER_LEN
    );
    let h = seg.header().expect("header");
    assert_eq!(h.magic, MAGIC);
    assert_eq!(h.version, LAYOUT_VERSION);
    assert!(h.ready);
    assert_eq!(h.creator_pid, std::process::id());
    assert_eq!(h.total_size, (HEADER_LEN + 1000) as u64);
    assert_eq!(h.payload_offset, HEADER_LEN as u64);
    assert_eq!(h.payload_size, 1000);
    assert_eq!(h.type_tag, tag);
    assert_eq!(h.type_tag.name(), "conformance::Thing");
    // The payload starts zeroed.
    assert!(read_payload(&seg, 1000).iter().all(|b| *b == 0));
    assert_eq!(seg.name().is_some(), kind != Kind::Anonymous);
}

/// Forked children share the mapping and never remove the parent's name, even when
/// they drop a copy of the handle.
fn forked_child_drop_keeps_segment(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-fork");
    let seg = create_with_msg(&t);
    let done = Pipe::new();
    let seg_ref = &seg;
    let mut child = fork_child(|| {
        // SAFETY: a bitwise copy in the child's own address space; the parent's
        // original is never dropped here (the child `_exit`s).
        let copy: Segment = unsafe { std::ptr::read(seg_ref) };
        write_payload(&copy, 2048, b"child");
        drop(copy);
        done.send(1);
        0
    });
    done.recv_n(1);
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(read_payload(&seg, 2048 + 5)[2048..], *b"child");
    if kind != Kind::Anonymous {
        assert!(t.exists(), "a forked child removed its parent's segment");
        t.options()
            .open()
            .expect("still opens after the child dropped its copy");
    }
}

/// POSIX and System V: the creator's drop removes the name. File: the file persists
/// (it is meant to survive restarts) unless the creator opted in with
/// `unlink_on_drop(true)`.
fn creator_drop_follows_backend_default(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-drop");
    let seg = create_with_msg(&t);
    assert!(t.exists());
    if kind == Kind::File {
        assert!(!seg.unlinks_on_drop(), "a file creator keeps the file");
        drop(seg);
        assert!(t.exists(), "the file outlived its creator's handle");
        let again = t.options().open().expect("reopen the persisted file");
        assert_eq!(read_payload(&again, MSG.len()), MSG, "data persisted");
        drop(again);
        assert!(t.exists(), "an opener never removes it");
        std::fs::remove_file(match &t {
            Target::File(p) => p,
            _ => unreachable!(),
        })
        .unwrap();
        let seg = t
            .options()
            .size(64)
            .unlink_on_drop(true)
            .create()
            .expect("create");
        assert!(seg.unlinks_on_drop(), "opted in");
        drop(seg);
        assert!(!t.exists(), "unlink_on_drop(true) removes the file");
        return;
    }
    assert!(seg.unlinks_on_drop());
    drop(seg);
    assert!(!t.exists());
    assert!(matches!(
        t.options().open(),
        Err(OpenError::NotFound { .. })
    ));
}

fn opener_drop_keeps(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-open");
    let seg = t.options().size(64).create().expect("create");
    let opener = t.options().open().expect("open");
    assert!(!opener.unlinks_on_drop());
    assert_eq!(opener.payload_len(), 64);
    drop(opener);
    assert!(t.exists());
    let again = t.options().size(64).open().expect("open again");
    drop(again);
    drop(seg);
    // The creator removes it, except a file, which persists by default.
    assert_eq!(t.exists(), kind == Kind::File);
}

fn persist_keeps(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-persist");
    let mut seg = create_with_msg(&t);
    seg.persist();
    drop(seg);
    assert!(t.exists());
    let seg = t.options().open().expect("reopen persisted");
    assert_eq!(read_payload(&seg, MSG.len()), MSG);
    // The data outlived every handle; the guard `_c` removes it.
}

fn opener_can_own_the_name(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-own");
    let seg = t
        .options()
        .size(64)
        .unlink_on_drop(false)
        .create()
        .expect("create");
    drop(seg);
    assert!(
        t.exists(),
        "unlink_on_drop(false) on the creator keeps the name"
    );
    let owner = t.options().unlink_on_drop(true).open().expect("open");
    drop(owner);
    assert!(!t.exists(), "unlink_on_drop(true) on an opener removes it");
}

fn create_existing_and_open_missing(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-exist");
    assert!(matches!(
        t.options().open(),
        Err(OpenError::NotFound { .. })
    ));
    let _seg = t.options().size(64).create().expect("create");
    let err = t.options().size(64).create().unwrap_err();
    assert!(
        matches!(err, shmkit_segment::CreateError::AlreadyExists { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"));
}

/// The creator's drop removes only the object it made: if the name was removed and
/// re-created by someone else meanwhile, the new segment survives.
fn drop_spares_a_replacement(kind: Kind) {
    let (t, _c) = Target::new(kind, "conf-replace");
    // Opt in explicitly: a file creator does not remove the file by default.
    let first = t
        .options()
        .size(64)
        .unlink_on_drop(true)
        .create()
        .expect("create");
    match &t {
        Target::Posix(n) => shmkit_segment::remove(n).unwrap(),
        Target::SysV(k) => shmkit_segment::remove_sysv(*k).unwrap(),
        Target::File(p) => std::fs::remove_file(p).unwrap(),
        Target::Anonymous => unreachable!(),
    }
    assert!(!t.exists());
    let second = t
        .options()
        .size(32)
        .unlink_on_drop(false)
        .create()
        .expect("re-create");
    drop(first);
    assert!(
        t.exists(),
        "the first creator's drop removed someone else's segment"
    );
    let again = t.options().open().expect("the replacement still opens");
    assert_eq!(again.payload_len(), 32);
    drop(second);
}

macro_rules! conformance_all {
    ($m:ident, $kind:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn cross_process_roundtrip() {
                roundtrip($kind, shmkit_testkit::test_path!(cross_process_roundtrip));
            }

            #[test]
            fn header_fields_and_geometry() {
                header_and_geometry($kind);
            }

            #[test]
            fn forked_child_drop_keeps_parent_segment() {
                forked_child_drop_keeps_segment($kind);
            }
        }
    };
}

macro_rules! conformance_named {
    ($m:ident, $kind:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn creator_drop_follows_backend_default() {
                super::creator_drop_follows_backend_default($kind);
            }

            #[test]
            fn opener_drop_keeps_name() {
                opener_drop_keeps($kind);
            }

            #[test]
            fn persist_keeps_name_and_data() {
                persist_keeps($kind);
            }

            #[test]
            fn unlink_on_drop_overrides_default() {
                opener_can_own_the_name($kind);
            }

            #[test]
            fn drop_spares_a_replacement_segment() {
                drop_spares_a_replacement($kind);
            }

            #[test]
            fn create_existing_fails_open_missing_fails() {
                create_existing_and_open_missing($kind);
            }
        }
    };
}

conformance_all!(posix, Kind::Posix);
conformance_all!(sysv, Kind::SysV);
conformance_all!(file, Kind::File);
conformance_all!(anonymous, Kind::Anonymous);

conformance_named!(posix_names, Kind::Posix);
conformance_named!(sysv_names, Kind::SysV);
conformance_named!(file_names, Kind::File);

#[test]
fn anonymous_cannot_be_opened_by_name() {
    let err = Segment::options().anonymous().open().unwrap_err();
    assert!(matches!(err, OpenError::Anonymous), "{err:?}");
    let seg = Segment::options()
        .anonymous()
        .size(10)
        .create()
        .expect("anon");
    assert!(seg.name().is_none());
    assert!(!seg.unlinks_on_drop());
}

#[test]
fn sysv_ftok_key_names_the_same_segment_as_the_explicit_key() {
    let path = std::env::temp_dir().join(shmkit_testkit::unique_name("ftok"));
    std::fs::write(&path, b"ftok anchor").unwrap();
    struct RmFile(std::path::PathBuf);
    impl Drop for RmFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = RmFile(path.clone());
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C path.
    let key = unsafe { libc::ftok(cpath.as_ptr(), 0x2a) };
    assert_ne!(key, -1);
    let _c = common::Cleanup(Target::SysV(key));
    let seg = Segment::options()
        .sysv_ftok(&path, 0x2a)
        .size(256)
        .create()
        .unwrap();
    assert_eq!(seg.name(), Some(format!("{key:#010x}").as_str()));
    let other = Segment::options().sysv(key).size(256).open().unwrap();
    assert_eq!(other.backend(), Backend::SysV);
    drop(other);
    drop(seg);
    // A missing anchor file is an error naming ftok.
    let err = Segment::options()
        .sysv_ftok("/nonexistent/shmkit/anchor", 1)
        .size(8)
        .create()
        .unwrap_err();
    assert!(err.to_string().contains("ftok"), "{err}");
}
