//! Thin wrappers over the libc calls the backends share.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// `Err(last_os_error)` when `rc == -1`.
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `shm_open(name, flags, mode)`, close-on-exec, retried on EINTR.
pub(crate) fn shm_open(name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    loop {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let fd =
            unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::mode_t) };
        match cvt(fd) {
            // SAFETY: shm_open returned a fresh fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { File::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// `open(path, flags, mode)`, close-on-exec, retried on EINTR.
pub(crate) fn open(path: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    loop {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        let fd =
            unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
        match cvt(fd) {
            // SAFETY: open returned a fresh fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { File::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A close-on-exec memfd.
pub(crate) fn memfd() -> io::Result<File> {
    // SAFETY: the name is a valid NUL-terminated literal.
    let fd = unsafe { libc::memfd_create(c"shmkit-anonymous".as_ptr(), libc::MFD_CLOEXEC) };
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    cvt(fd).map(|fd| unsafe { File::from_raw_fd(fd) })
}

/// `fchmod(fd, mode)`: applies the exact mode, whatever the umask.
pub(crate) fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on an fd we own; no memory is passed.
    cvt(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// Reserves `len` bytes (and sets the size to `len`) so that a full filesystem is an
/// `ENOSPC` here, not a SIGBUS on first touch.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: posix_fallocate on an fd we own; no memory is passed.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => {}
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Current size of the object behind `file`.
pub(crate) fn fsize(file: &File) -> io::Result<u64> {
    file.metadata().map(|m| m.len())
}

/// This process's pid.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// Whether a process with this pid exists (EPERM means it exists but is not ours).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
