//! A full tmpfs is an error at creation (`NoSpace`), never a SIGBUS on first touch.
//!
//! The child process unshares its mount namespace and mounts a 1 MiB tmpfs (needs
//! root; skipped otherwise), so nothing is visible to or left on the host. The file
//! backend on that tmpfs goes through the same `fallocate` path as `/dev/shm`.

use shmkit_segment::{CreateError, Segment};
use shmkit_testkit::{fork_child, Exit};

const SKIP: i32 = 77;

#[test]
fn full_tmpfs_is_no_space_not_sigbus() {
    let dir = std::env::temp_dir().join(shmkit_testkit::unique_name("nospace"));
    std::fs::create_dir(&dir).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let dir_ref = &dir;
    let mut child = fork_child(|| {
        let cdir = std::ffi::CString::new(dir_ref.to_str().unwrap()).unwrap();
        // SAFETY: plain mount-namespace syscalls with valid C strings; this forked child
        // is single-threaded, and its namespace dies with it.
        let mounted = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"tmpfs".as_ptr(),
                    cdir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"size=1m".as_ptr().cast(),
                ) == 0
        };
        if !mounted {
            return SKIP;
        }
        // Fits: every byte can be written (reserved up front).
        let Ok(a) = Segment::options()
            .file(dir_ref.join("a"))
            .size(600 * 1024)
            .create()
        else {
            return 1;
        };
        // SAFETY: the payload is ours alone.
        unsafe { std::ptr::write_bytes(a.payload_ptr(), 0xab, a.payload_len()) };
        // Does not fit in what is left: an error now, and nothing left behind.
        match Segment::options()
            .file(dir_ref.join("b"))
            .size(600 * 1024)
            .create()
        {
            Err(CreateError::NoSpace { .. }) => {}
            _ => return 2,
        }
        if dir_ref.join("b").exists() {
            return 3;
        }
        0
    });
    match child.wait() {
        Exit::Code(SKIP) => {
            shmkit_testkit::skip_or_fail(false, "cannot unshare/mount a tmpfs here (not root?)");
        }
        other => assert_eq!(other, Exit::Code(0)),
    }
}
