//! Every bad input from issue 2 gets a clear, typed error (and leaves nothing behind).

use crate::common;

use std::time::{Duration, Instant};

use common::{Kind, Target};
use shmkit_segment::{
    remove, CreateError, OpenError, OpenOrCreateError, RemoveError, Segment, TypeTag,
    LAYOUT_VERSION,
};
use shmkit_testkit::{fork_child, Pipe, ShmCleanup};

const ALL: [Kind; 4] = [Kind::Posix, Kind::SysV, Kind::File, Kind::Anonymous];
const NAMED: [Kind; 3] = [Kind::Posix, Kind::SysV, Kind::File];

/// Writes `bytes` into the mapping at `offset` (test-only header surgery).
fn poke(seg: &Segment, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= seg.len());
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: inside our mapping (checked); no other process touches it meanwhile.
        unsafe { seg.as_ptr().add(offset + i).write_volatile(*b) };
    }
}

/// A POSIX object with exactly `bytes`, made without shmkit.
fn raw_posix(name: &str, bytes: &[u8]) {
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    // SAFETY: valid C string; plain fd syscalls on our own new fd and local buffer.
    unsafe {
        let fd = libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        );
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, bytes.len() as libc::off_t), 0);
        assert_eq!(
            libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), 0),
            bytes.len() as isize
        );
        libc::close(fd);
    }
}

#[test]
fn zero_size_is_rejected_on_every_backend() {
    for kind in ALL {
        let (t, _c) = Target::new(kind, "bad-zero");
        let err = t.options().size(0).create().unwrap_err();
        assert!(matches!(err, CreateError::ZeroSize), "{kind:?}: {err:?}");
        let err = t.options().create().unwrap_err();
        assert!(
            matches!(err, CreateError::ZeroSize),
            "{kind:?}: no size: {err:?}"
        );
        assert!(!t.exists(), "{kind:?}: nothing created");
    }
}

#[test]
fn size_over_the_backend_limit_is_an_error_not_a_crash() {
    for kind in ALL {
        let (t, _c) = Target::new(kind, "bad-huge");
        let err = t.options().size(usize::MAX).create().unwrap_err();
        assert!(
            matches!(err, CreateError::TooLarge { .. }),
            "{kind:?}: {err:?}"
        );
        // 1 PiB: past /dev/shm, shmall and any file system here.
        let err = t.options().size(1 << 50).create().unwrap_err();
        assert!(
            matches!(
                err,
                CreateError::TooLarge { .. } | CreateError::NoSpace { .. }
            ),
            "{kind:?}: {err:?}"
        );
        assert!(
            !t.exists(),
            "{kind:?}: a failed create leaves nothing behind"
        );
    }
}

#[test]
fn invalid_names_are_rejected_with_reasons() {
    let long = "x".repeat(256);
    let cases: [(&str, &str); 7] = [
        ("", "empty"),
        ("/lead", "'/'"),
        ("a/b", "'/'"),
        (&long, "255"),
        ("nul\0byte", "NUL"),
        ("new\nline", "non-printable"),
        ("tab\there", "non-printable"),
    ];
    for (name, reason) in cases {
        let check = |r: &str| assert!(r.contains(reason), "{name:?}: reason {r:?}");
        match Segment::options().posix(name).size(8).create() {
            Err(CreateError::InvalidName { reason, .. }) => check(reason),
            other => panic!("create {name:?}: {other:?}"),
        }
        match Segment::options().posix(name).open() {
            Err(OpenError::InvalidName { reason, .. }) => check(reason),
            other => panic!("open {name:?}: {other:?}"),
        }
        match Segment::options().posix(name).size(8).open_or_create() {
            Err(OpenOrCreateError::Create(CreateError::InvalidName { reason, .. })) => {
                check(reason)
            }
            other => panic!("open_or_create {name:?}: {other:?}"),
        }
        match Segment::open_raw(name) {
            Err(OpenError::InvalidName { reason, .. }) => check(reason),
            other => panic!("open_raw {name:?}: {other:?}"),
        }
        match remove(name) {
            Err(RemoveError::InvalidName { reason, .. }) => check(reason),
            other => panic!("remove {name:?}: {other:?}"),
        }
    }
    let err = Segment::options().sysv(0).size(8).create().unwrap_err();
    assert!(matches!(err, CreateError::InvalidName { .. }), "{err:?}");
    let err = Segment::options().file("").size(8).create().unwrap_err();
    assert!(matches!(err, CreateError::InvalidName { .. }), "{err:?}");
    let err = Segment::options().size(8).create().unwrap_err();
    assert!(matches!(err, CreateError::NoBackend), "{err:?}");
}

#[test]
fn exists_on_create_and_missing_on_open_and_remove() {
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-exists");
        let err = t.options().open().unwrap_err();
        assert!(
            matches!(err, OpenError::NotFound { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(err.to_string().contains("does not exist"));
        let _seg = t.options().size(16).create().unwrap();
        let err = t.options().size(16).create().unwrap_err();
        assert!(
            matches!(err, CreateError::AlreadyExists { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(
            err.to_string().contains("shmkit rm"),
            "says what to do: {err}"
        );
    }
    let name = shmkit_testkit::unique_name("bad-rm");
    assert!(matches!(remove(&name), Err(RemoveError::NotFound { .. })));
    assert!(matches!(
        Segment::open_raw(&name),
        Err(OpenError::NotFound { .. })
    ));
}

#[test]
fn smaller_than_the_header_says() {
    for kind in [Kind::Posix, Kind::File] {
        let (t, _c) = Target::new(kind, "bad-small");
        let mut seg = t.options().size(1 << 16).create().unwrap();
        seg.persist();
        drop(seg);
        // Truncate to one page: the header still claims 128 + 64 KiB.
        let path = match &t {
            Target::Posix(n) => format!("/dev/shm/{n}"),
            Target::File(p) => p.display().to_string(),
            _ => unreachable!(),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        match t.options().open() {
            Err(OpenError::TooSmall { len, needed, .. }) => {
                assert_eq!(len, 4096);
                assert_eq!(needed, 128 + (1 << 16));
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        // Smaller than a header at all.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        assert!(
            matches!(
                t.options().open(),
                Err(OpenError::TooSmall { len: 100, .. })
            ),
            "{kind:?}"
        );
    }
}

#[test]
fn wrong_magic_is_not_shmkit() {
    // A foreign object (e.g. Python's) with data at offset 0.
    let name = shmkit_testkit::unique_name("bad-magic");
    let _c = ShmCleanup::new(&name);
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(b"PYTHON!!");
    raw_posix(&name, &bytes);
    match Segment::options().posix(&name).open() {
        Err(OpenError::NotShmkit { found, .. }) => {
            assert_eq!(found.to_le_bytes(), *b"PYTHON!!")
        }
        other => panic!("{other:?}"),
    }
    // A shmkit segment whose magic was overwritten later.
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-magic2");
        let seg = t.options().size(64).create().unwrap();
        poke(&seg, 0, b"NOTSHMKT");
        let err = t.options().open().unwrap_err();
        assert!(
            matches!(err, OpenError::NotShmkit { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(err.to_string().contains("open_raw"));
    }
}

#[test]
fn newer_and_older_layout_versions() {
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-version");
        let seg = t.options().size(64).create().unwrap();
        for v in [LAYOUT_VERSION + 1, 0] {
            poke(&seg, 8, &v.to_le_bytes());
            match t.options().open() {
                Err(OpenError::Version { found, supported }) => {
                    assert_eq!(found, v);
                    assert_eq!(supported, LAYOUT_VERSION);
                }
                other => panic!("{kind:?} v{v}: {other:?}"),
            }
        }
    }
}

#[test]
fn another_type_tag_or_size() {
    let u64_tag = TypeTag::new(1, "u64", 8, 8);
    let f32_tag = TypeTag::new(1, "f32", 4, 4);
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-type");
        let _seg = t.options().size(8).type_tag(u64_tag).create().unwrap();
        match t.options().type_tag(f32_tag).open() {
            Err(OpenError::TypeMismatch { expected, found }) => {
                assert!(expected.contains("f32"), "{expected}");
                assert!(found.contains("u64"), "{found}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        // The default tag (bytes) does not match either.
        assert!(matches!(
            t.options().open(),
            Err(OpenError::TypeMismatch { .. })
        ));
        match t.options().type_tag(u64_tag).size(16).open() {
            Err(OpenError::SizeMismatch {
                expected, found, ..
            }) => assert_eq!((expected, found), (16, 8)),
            other => panic!("{kind:?}: {other:?}"),
        }
        let ok = t.options().type_tag(u64_tag).size(8).open().unwrap();
        assert_eq!(ok.header().unwrap().type_tag, u64_tag);
        let any = t.options().any_type().open().unwrap();
        assert_eq!(any.payload_len(), 8);
    }
}

#[test]
fn inconsistent_header_is_corrupt() {
    let (t, _c) = Target::new(Kind::Posix, "bad-corrupt");
    let seg = t.options().size(64).create().unwrap();
    // payload_size (offset 40) no longer adds up with total_size (offset 24).
    poke(&seg, 40, &1u64.to_le_bytes());
    assert!(matches!(t.options().open(), Err(OpenError::Corrupt { .. })));
}

#[test]
fn zero_byte_object_times_out() {
    // What a creator that died between O_EXCL and sizing leaves behind.
    let name = shmkit_testkit::unique_name("bad-empty");
    let _c = ShmCleanup::new(&name);
    raw_posix(&name, &[]);
    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    let err = Segment::options()
        .posix(&name)
        .open_timeout(timeout)
        .open()
        .unwrap_err();
    assert!(matches!(err, OpenError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() >= timeout);
    assert!(matches!(
        Segment::open_raw(&name),
        Err(OpenError::TooSmall { len: 0, .. })
    ));
}

/// A creator that never publishes READY: openers time out; once it is dead they
/// report `CreatorDied` with its pid.
#[test]
fn unpublished_segment_times_out_then_reports_dead_creator() {
    for kind in NAMED {
        let (t, _c) = Target::new(kind, "bad-ready");
        let started = Pipe::new();
        let never = Pipe::new();
        let mut child = fork_child(|| {
            let _seg = t.options().size(64).create_with(|_, _| {
                started.send(1);
                never.recv(); // blocks until killed
            });
            0
        });
        started.recv_n(1);
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        let err = t.options().open_timeout(timeout).open().unwrap_err();
        assert!(
            matches!(err, OpenError::Timeout { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(start.elapsed() >= timeout);
        assert!(err.to_string().contains("open_timeout"));
        let pid = child.pid() as u32;
        child.kill();
        child.wait();
        match t.options().open_timeout(Duration::from_secs(5)).open() {
            Err(OpenError::CreatorDied { pid: p }) => assert_eq!(p, pid),
            other => panic!("{kind:?}: {other:?}"),
        }
        // open_or_create reports it too, instead of hanging or handing out garbage.
        assert!(matches!(
            t.options().size(64).open_or_create(),
            Err(OpenOrCreateError::Open(OpenError::CreatorDied { .. }))
        ));
    }
}

/// A creator recorded in another pid namespace (a container sharing `/dev/shm`) cannot
/// be checked from here: it is never declared dead; the opener times out instead.
#[test]
fn creator_in_another_pid_namespace_is_never_declared_dead() {
    use std::os::unix::fs::FileExt;
    let (t, _c) = Target::new(Kind::Posix, "bad-pidns");
    let Target::Posix(name) = &t else {
        unreachable!()
    };
    let started = Pipe::new();
    let never = Pipe::new();
    let mut child = fork_child(|| {
        let _seg = t.options().size(64).create_with(|_, _| {
            started.send(1);
            never.recv();
        });
        0
    });
    started.recv_n(1);
    child.kill();
    child.wait();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let mut ours = [0u8; 8];
    file.read_exact_at(&mut ours, 120).unwrap();
    assert_ne!(
        u64::from_le_bytes(ours),
        0,
        "the creator recorded its pid namespace"
    );
    file.write_all_at(&12345u64.to_le_bytes(), 120).unwrap();
    let err = t
        .options()
        .open_timeout(Duration::from_millis(50))
        .open()
        .unwrap_err();
    assert!(matches!(err, OpenError::Timeout { .. }), "{err:?}");
    let info = shmkit_segment::list().unwrap();
    let listed = info.iter().find(|i| &i.name == name).expect("listed");
    assert!(listed.creator_alive, "unknown namespace counts as alive");
    file.write_all_at(&ours, 120).unwrap();
    assert!(matches!(
        t.options().open(),
        Err(OpenError::CreatorDied { .. })
    ));
}
