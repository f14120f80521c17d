//! Security of the segment crate against hostile names, hostile objects planted in
//! `/dev/shm` (world-writable), and objects whose size disagrees with their header.
//! Permission against another uid is in `permission.rs` (needs root); fuzzed headers
//! in `fuzz.rs`.
//!
//! Anything that could fault (SIGBUS) or block runs in a forked child, so a fault is
//! seen as the child's signal instead of killing the test binary, and a block as a
//! child that does not exit.

use crate::common;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::{Kind, Target};
use shmkit_segment::{
    list, remove, CreateError, OpenError, OpenOrCreateError, RemoveError, Segment, HEADER_LEN,
};
use shmkit_testkit::{fork_child, unique_name, Exit, Pipe, ShmCleanup};

/// Path of the object behind a POSIX or file target.
fn path_of(t: &Target) -> String {
    match t {
        Target::Posix(n) => format!("/dev/shm/{n}"),
        Target::File(p) => p.display().to_string(),
        _ => unreachable!("only POSIX and file objects have a path"),
    }
}

/// Mode bits of a System V segment, straight from `IPC_STAT`.
fn sysv_mode(key: i32) -> u32 {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    // SAFETY: shmid_ds is plain data; all-zero is valid for IPC_STAT to fill.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    assert_eq!(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) }, 0);
    u32::from(ds.shm_perm.mode) & 0o777
}

fn mode_of(t: &Target) -> u32 {
    match t {
        Target::SysV(k) => sysv_mode(*k),
        _ => std::fs::metadata(path_of(t)).unwrap().permissions().mode() & 0o7777,
    }
}

/// Segments are created 0600 unless asked otherwise, and exactly the mode asked for
/// (checked with `stat` / `IPC_STAT`, whatever this process's umask is).
#[test]
fn segments_are_created_0600_by_default() {
    for kind in [Kind::Posix, Kind::SysV, Kind::File] {
        let (t, _c) = Target::new(kind, "sec-mode");
        let seg = t.options().size(64).create().unwrap();
        assert_eq!(mode_of(&t), 0o600, "{kind:?}: default mode");
        let opened = t.options().open().unwrap();
        assert_eq!(mode_of(&t), 0o600, "{kind:?}: opening changes nothing");
        drop(opened);
        drop(seg);

        let (t, _c) = Target::new(kind, "sec-mode640");
        let _seg = t.options().size(64).mode(0o640).create().unwrap();
        assert_eq!(mode_of(&t), 0o640, "{kind:?}: the mode asked for");
    }
}

/// `..`, `.`, `/` and NUL can never make a name leave `/dev/shm`: every entry point
/// refuses them with `InvalidName` before any system call, and nothing appears
/// outside `/dev/shm`.
#[test]
fn names_cannot_escape_dev_shm() {
    let marker = unique_name("sec-escape");
    let escapes = [
        ".".to_owned(),
        "..".to_owned(),
        format!("../{marker}"),
        format!("../../tmp/{marker}"),
        format!("./{marker}"),
        format!("{marker}/.."),
        format!("/{marker}"),
        format!("/dev/shm/{marker}"),
        format!("a/{marker}"),
        format!("{marker}\0"),
        format!("..\0/{marker}"),
        "\0".to_owned(),
    ];
    for name in &escapes {
        let name = name.as_str();
        assert!(
            matches!(
                Segment::options().posix(name).size(8).create(),
                Err(CreateError::InvalidName { .. })
            ),
            "create {name:?}"
        );
        assert!(
            matches!(
                Segment::options().posix(name).open(),
                Err(OpenError::InvalidName { .. })
            ),
            "open {name:?}"
        );
        assert!(
            matches!(
                Segment::options().posix(name).size(8).open_or_create(),
                Err(OpenOrCreateError::Create(CreateError::InvalidName { .. }))
            ),
            "open_or_create {name:?}"
        );
        assert!(
            matches!(Segment::open_raw(name), Err(OpenError::InvalidName { .. })),
            "open_raw {name:?}"
        );
        assert!(
            matches!(remove(name), Err(RemoveError::InvalidName { .. })),
            "remove {name:?}"
        );
    }
    for dir in ["/dev", "/tmp", "/", "/dev/shm"] {
        assert!(
            !Path::new(dir).join(&marker).exists(),
            "something was created as {dir}/{marker}"
        );
    }
    // Paths (file backend, ftok) with a NUL are refused the same way.
    let nul = "/tmp/a\0b";
    assert!(matches!(
        Segment::options().file(nul).size(8).create(),
        Err(CreateError::InvalidName { .. })
    ));
    assert!(matches!(
        Segment::options().file(nul).open(),
        Err(OpenError::InvalidName { .. })
    ));
    assert!(matches!(
        Segment::options().sysv_ftok(nul, 1).size(8).create(),
        Err(CreateError::InvalidName { .. })
    ));
    assert!(matches!(
        Segment::options().sysv_ftok(nul, 1).open(),
        Err(OpenError::InvalidName { .. })
    ));
}

/// A symlink planted under a segment's name (in `/dev/shm`, or at a file backend's
/// path) is never followed: create reports the name as taken (and creates nothing
/// at the link's target), open refuses it, `list()` skips it.
#[test]
fn planted_symlinks_are_never_followed() {
    let name = unique_name("sec-link");
    let _c = ShmCleanup::new(&name);
    let target = std::env::temp_dir().join(unique_name("sec-link-target"));
    let _t = RemoveFile(target.clone());
    std::os::unix::fs::symlink(&target, format!("/dev/shm/{name}")).unwrap();

    // Dangling link: creating must not create the target through it.
    let err = Segment::options()
        .posix(&name)
        .size(64)
        .create()
        .unwrap_err();
    assert!(matches!(err, CreateError::AlreadyExists { .. }), "{err:?}");
    assert!(!target.exists(), "create followed the link");

    // Live link to a real shmkit-looking file: open refuses it (O_NOFOLLOW).
    let real = Segment::options()
        .file(&target)
        .size(64)
        .unlink_on_drop(true)
        .create()
        .unwrap();
    let before = std::fs::read(&target).unwrap();
    let r = Segment::options().posix(&name).open();
    assert!(r.is_err(), "open followed the link: {r:?}");
    assert!(Segment::open_raw(&name).is_err(), "open_raw followed it");
    assert!(
        !list().unwrap().iter().any(|i| i.name == name),
        "list() followed the link"
    );
    assert_eq!(std::fs::read(&target).unwrap(), before, "target untouched");
    drop(real);

    // File backend: creating at a dangling symlink fails (O_EXCL) and makes nothing.
    let link = std::env::temp_dir().join(unique_name("sec-file-link"));
    let _l = RemoveFile(link.clone());
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(!target.exists());
    let err = Segment::options()
        .file(&link)
        .size(64)
        .create()
        .unwrap_err();
    assert!(matches!(err, CreateError::AlreadyExists { .. }), "{err:?}");
    assert!(!target.exists(), "file create followed the link");
}

/// A FIFO planted in `/dev/shm` neither blocks `list()` or `open` nor passes for a
/// segment. Run in a child: a block shows as a child that never exits.
#[test]
fn planted_fifo_neither_blocks_nor_opens() {
    let name = unique_name("sec-fifo");
    let _c = ShmCleanup::new(&name);
    let path = CString::new(format!("/dev/shm/{name}")).unwrap();
    // SAFETY: `path` is a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o666) }, 0);
    let mut child = fork_child(|| {
        let Ok(all) = list() else { return 1 };
        if all.iter().any(|i| i.name == name) {
            return 2;
        }
        match Segment::options()
            .posix(&name)
            .open_timeout(Duration::from_secs(30))
            .open()
        {
            Err(OpenError::NotRegularFile { .. }) => {}
            _ => return 3,
        }
        if Segment::open_raw(&name).is_ok() {
            return 4;
        }
        // A create on the name fails cleanly too.
        match Segment::options().posix(&name).size(8).create() {
            Err(CreateError::AlreadyExists { .. }) => 0,
            _ => 5,
        }
    });
    match child.wait_timeout(Duration::from_secs(120)) {
        Some(exit) => assert_eq!(exit, Exit::Code(0)),
        None => {
            child.kill();
            panic!("list()/open blocked on a FIFO planted in /dev/shm");
        }
    }
}

/// A directory planted in `/dev/shm` is "not a regular file" to `open`, `open_raw`
/// and `remove` (glibc's `shm_open` turns `EISDIR` into a bare `EINVAL`).
#[test]
fn planted_directory_is_not_a_regular_file() {
    let name = unique_name("sec-dir");
    let path = format!("/dev/shm/{name}");
    std::fs::create_dir(&path).unwrap();
    struct Rmdir(String);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rmdir = Rmdir(path.clone());
    let open = Segment::options().posix(&name).any_type().open();
    assert!(
        matches!(&open, Err(OpenError::NotRegularFile { name: n }) if *n == name),
        "{open:?}"
    );
    assert!(open.unwrap_err().to_string().contains("not a regular file"));
    let raw = Segment::open_raw(&name);
    assert!(
        matches!(raw, Err(OpenError::NotRegularFile { .. })),
        "{raw:?}"
    );
    let rm = remove(&name);
    assert!(
        matches!(&rm, Err(RemoveError::NotRegularFile { .. })),
        "{rm:?}"
    );
    assert!(rm.unwrap_err().to_string().contains("not a regular file"));
    assert!(Path::new(&path).is_dir());
}

/// Opens `t` in a forked child and reports the outcome as an exit code: 0 TooSmall,
/// 1 Timeout, 10 success, 11 another error. A SIGBUS would be `Exit::Signal`.
fn open_in_child(t: &Target) -> Exit {
    let mut child = fork_child(|| {
        match t
            .options()
            .any_type()
            .open_timeout(Duration::from_millis(20))
            .open()
        {
            Err(OpenError::TooSmall { .. }) => 0,
            Err(OpenError::Timeout { .. }) => 1,
            Ok(seg) => {
                // Touch every page the opener was handed.
                let mut sum = 0u8;
                for i in (0..seg.payload_len()).step_by(4096) {
                    // SAFETY: inside the payload of our live mapping.
                    sum ^= unsafe { seg.payload_ptr().add(i).read_volatile() };
                }
                std::hint::black_box(sum);
                10
            }
            Err(_) => 11,
        }
    });
    child.wait()
}

/// The object is shrunk (`ftruncate`) below what its header claims while its creator
/// still holds it: `open` refuses it from the header and the real size, before any
/// read past the end (no SIGBUS). A 0-byte object times out cleanly.
#[test]
fn header_claiming_more_than_the_object_is_rejected_before_any_read() {
    for kind in [Kind::Posix, Kind::File] {
        let (t, _c) = Target::new(kind, "sec-shrunk");
        let payload = 64 * 1024;
        let total = (HEADER_LEN + payload) as u64;
        let seg = t.options().size(payload).create().unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path_of(&t))
            .unwrap();
        assert_eq!(open_in_child(&t), Exit::Code(10), "{kind:?}: intact opens");
        for len in [total - 1, 4096, HEADER_LEN as u64, 100] {
            file.set_len(len).unwrap();
            assert_eq!(file.metadata().unwrap().size(), len);
            assert_eq!(
                open_in_child(&t),
                Exit::Code(0),
                "{kind:?}: shrunk to {len}: TooSmall, no SIGBUS"
            );
        }
        file.set_len(0).unwrap();
        assert_eq!(
            open_in_child(&t),
            Exit::Code(1),
            "{kind:?}: 0 bytes: Timeout, no SIGBUS"
        );
        drop(seg);
    }
}

/// The documented limit (`docs/reliability.md`): once a process has opened a
/// segment, another process that shrinks the object makes the opener's next access
/// past the new end a SIGBUS. No library can check that on every access; this test
/// pins the behaviour so the documentation stays true.
#[test]
fn shrinking_after_a_successful_open_is_a_sigbus_for_mappers() {
    let (t, _c) = Target::new(Kind::Posix, "sec-sigbus");
    let seg = t.options().size(64 * 1024).create().unwrap();
    let opened = Pipe::new();
    let go = Pipe::new();
    let mut child = fork_child(|| {
        let Ok(s) = t.options().open() else { return 1 };
        opened.send(1);
        go.recv();
        let last = s.payload_len() - 1;
        // SAFETY: inside the payload as validated at open; the parent has since
        // shrunk the object, which is the point of this test.
        let _ = unsafe { s.payload_ptr().add(last).read_volatile() };
        0
    });
    opened.recv_n(1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path_of(&t))
        .unwrap()
        .set_len(0)
        .unwrap();
    go.send(1);
    assert_eq!(child.wait(), Exit::Signal(libc::SIGBUS));
    drop(seg);
}

/// Removes a path on drop (test cleanup).
struct RemoveFile(std::path::PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
