//! Mode is applied exactly (fchmod, whatever the umask), and an opener whose uid the
//! mode excludes gets `PermissionDenied`. The opener is a forked child that drops to
//! `nobody`; this needs root, and is skipped otherwise.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Kind, Target};
use shmkit_segment::OpenError;
use shmkit_testkit::{fork_child, Exit};

const NOBODY: libc::uid_t = 65534;

/// In a forked child: become `nobody` (raw syscalls: this thread only, which in a
/// fork child is the whole process), open `t`, and exit 0 if the open was refused with
/// PermissionDenied, 10 if it succeeded, 11 on another error, 12 if we could not drop
/// privileges.
fn open_as_nobody(t: &Target) -> Exit {
    let mut child = fork_child(|| {
        // SAFETY: plain credential syscalls with no pointers (setgroups gets size 0).
        let dropped = unsafe {
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0
                && libc::syscall(libc::SYS_setgid, NOBODY) == 0
                && libc::syscall(libc::SYS_setuid, NOBODY) == 0
        };
        if !dropped {
            return 12;
        }
        match t.options().open() {
            Err(OpenError::PermissionDenied { .. }) => 0,
            Ok(_) => 10,
            Err(_) => 11,
        }
    });
    child.wait()
}

fn mode_of(t: &Target) -> u32 {
    match t {
        Target::Posix(n) => {
            std::fs::metadata(format!("/dev/shm/{n}"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        }
        Target::File(p) => std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
        Target::SysV(_) => {
            let info = shmkit_segment::list().unwrap();
            let name = format!(
                "{:#010x}",
                match t {
                    Target::SysV(k) => *k,
                    _ => unreachable!(),
                }
            );
            info.iter().find(|i| i.name == name).expect("listed").mode
        }
        Target::Anonymous => unreachable!(),
    }
}

#[test]
fn mode_is_exact_and_enforced_for_other_users() {
    if !shmkit_testkit::skip_or_fail(
        shmkit_testkit::is_root(),
        "not root: cannot switch to uid nobody",
    ) {
        return;
    }
    // A strict umask: the modes below must survive it (fchmod).
    // SAFETY: umask has no preconditions; this test binary has no other test.
    let old = unsafe { libc::umask(0o077) };
    for kind in [Kind::Posix, Kind::SysV, Kind::File] {
        // Default 0600: nobody may not open it.
        let (t, _c) = Target::new(kind, "perm-600");
        let _seg = t.options().size(64).create().unwrap();
        assert_eq!(mode_of(&t), 0o600, "{kind:?}: default mode");
        assert_eq!(open_as_nobody(&t), Exit::Code(0), "{kind:?}: 0600 refused");

        // 0644: readable, but read-write open is refused.
        let (t, _c) = Target::new(kind, "perm-644");
        let _seg = t.options().size(64).mode(0o644).create().unwrap();
        assert_eq!(mode_of(&t), 0o644, "{kind:?}");
        assert_eq!(
            open_as_nobody(&t),
            Exit::Code(0),
            "{kind:?}: 0644 refused rw"
        );

        // 0666 despite umask 077: nobody opens it.
        let (t, _c) = Target::new(kind, "perm-666");
        let _seg = t.options().size(64).mode(0o666).create().unwrap();
        assert_eq!(mode_of(&t), 0o666, "{kind:?}: umask did not apply");
        assert_eq!(open_as_nobody(&t), Exit::Code(10), "{kind:?}: 0666 opens");
    }
    // SAFETY: as above.
    unsafe { libc::umask(old) };
}
