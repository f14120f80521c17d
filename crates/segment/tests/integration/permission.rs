//! Mode is applied exactly (fchmod, whatever the umask), and an opener whose uid the
//! mode excludes gets `PermissionDenied`. The opener is a forked child that drops to
//! `nobody`; this needs root, and is skipped otherwise.

use crate::common;

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
    // The segments are created under a strict umask, which the modes must survive
    // (fchmod). umask is process-wide and the other tests of this binary run beside
    // this one, so only a forked child changes it: it creates the segments and leaves
    // them (the guards here remove them); this process checks them.
    let cases: Vec<(Kind, Option<u32>, u32, Exit)> = [Kind::Posix, Kind::SysV, Kind::File]
        .into_iter()
        .flat_map(|kind| {
            [
                // Default 0600: nobody may not open it.
                (kind, None, 0o600, Exit::Code(0)),
                // 0644: readable, but read-write open is refused.
                (kind, Some(0o644), 0o644, Exit::Code(0)),
                // 0666 despite umask 077: nobody opens it.
                (kind, Some(0o666), 0o666, Exit::Code(10)),
            ]
        })
        .collect();
    let targets: Vec<(Target, common::Cleanup)> = cases
        .iter()
        .map(|&(kind, ..)| Target::new(kind, "perm"))
        .collect();
    let mut creator = fork_child(|| {
        // SAFETY: umask has no preconditions; it changes only this forked child.
        unsafe { libc::umask(0o077) };
        for ((t, _), &(_, mode, ..)) in targets.iter().zip(&cases) {
            let mut options = t.options().size(64);
            if let Some(mode) = mode {
                options = options.mode(mode);
            }
            match options.create() {
                // Left for the parent to check; its guard removes the name.
                Ok(seg) => std::mem::forget(seg),
                Err(_) => return 1,
            }
        }
        0
    });
    assert_eq!(
        creator.wait(),
        Exit::Code(0),
        "creating the segments failed"
    );
    for ((t, _), &(kind, _, mode, nobody)) in targets.iter().zip(&cases) {
        assert_eq!(
            mode_of(t),
            mode,
            "{kind:?}: mode {mode:o} (umask 077 must not apply)"
        );
        assert_eq!(
            open_as_nobody(t),
            nobody,
            "{kind:?}: mode {mode:o}: open as nobody"
        );
    }
}
