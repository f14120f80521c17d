//! Thin wrappers over the syscalls the backends share: `rustix` where it has them
//! (memfd, fchmod, fallocate); `libc` for POSIX `shm_open`/`shm_unlink` (libc
//! functions over `/dev/shm`, not syscalls) and System V `shmat`/`shmctl`, which rustix
//! does not wrap.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

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
    let fd = rustix::fs::memfd_create(c"shmkit-anonymous", rustix::fs::MemfdFlags::CLOEXEC)?;
    Ok(File::from(fd))
}

/// `fchmod(fd, mode)`: applies the exact mode, whatever the umask.
pub(crate) fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(
        file,
        rustix::fs::Mode::from_raw_mode(mode),
    )?)
}

/// Reserves `len` bytes (and sets the size to `len`) so that a full filesystem is an
/// `ENOSPC` here, not a SIGBUS on first touch.
///
/// Uses `fallocate(2)` directly, not `posix_fallocate`: glibc's fallback for file
/// systems without `fallocate` writes every block, which for a huge size takes
/// forever. Where `fallocate` is unsupported we fall back to `ftruncate` (sparse; the
/// SIGBUS risk then remains, as with every peer).
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    if i64::try_from(len).is_err() {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    }
    loop {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => return Ok(rustix::fs::ftruncate(file, len)?),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Refuses (`ENOMEM`) a memory-backed allocation larger than the memory the kernel
/// says is available (`MemAvailable + SwapFree` in `/proc/meminfo`): reserving shared
/// memory (tmpfs, memfd) past that would summon the OOM killer instead of failing.
/// If `/proc/meminfo` cannot be read, there is no check.
pub(crate) fn check_memory(len: u64) -> io::Result<()> {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return Ok(());
    };
    let field = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    let Some(avail) = field("MemAvailable:") else {
        return Ok(());
    };
    let limit = avail.saturating_add(field("SwapFree:").unwrap_or(0));
    if len > limit {
        Err(io::Error::from_raw_os_error(libc::ENOMEM))
    } else {
        Ok(())
    }
}

/// Identity of the object behind an fd: (device, inode).
pub(crate) type FileId = (u64, u64);

/// (device, inode) of `file`, if `fstat` works.
pub(crate) fn file_id(file: &File) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// Removes the POSIX name only if it still names the object we made (`id`): after a
/// `shmkit rm` and a re-create by someone else, the name is theirs. If we cannot check
/// (no read permission on our own object), remove it anyway.
pub(crate) fn shm_unlink_if_same(name: &CStr, id: Option<FileId>) {
    let Some(id) = id else {
        let _ = shm_unlink(name);
        return;
    };
    // O_NONBLOCK: if a FIFO replaced our object, opening it must not block.
    match shm_open(name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
        Ok(f) => {
            if file_id(&f) == Some(id) {
                let _ = shm_unlink(name);
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(_) => {
            let _ = shm_unlink(name);
        }
    }
}

/// Removes `path` only if it is still the file we made (`id`).
pub(crate) fn remove_file_if_same(path: &std::path::Path, id: Option<FileId>) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if id.is_none() || id == Some((m.dev(), m.ino())) => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

/// Current size of the object behind `file`.
pub(crate) fn fsize(file: &File) -> io::Result<u64> {
    file.metadata().map(|m| m.len())
}

/// This process's pid (cached by the floor; correct in a forked child).
pub(crate) fn getpid() -> u32 {
    shmkit_sys::owner::current_pid()
}

pub(crate) use shmkit_sys::owner::pid_namespace;

/// Whether the creator recorded as (`pid`, `pidns`) may still be running, judged as
/// every shmkit layer judges a peer ([`shmkit_sys::owner::is_alive`]: a zombie counts
/// as dead). The header keeps no start time of the creator, so a reused pid still
/// counts as alive (the opener then times out instead of reporting `CreatorDied`). A
/// pid from another pid namespace (a container sharing `/dev/shm`) cannot be checked
/// from here: we then say "alive", so nothing live is ever reported dead or removed as
/// stale.
pub(crate) fn creator_alive(pid: u32, pidns: u64) -> bool {
    if pidns != 0 {
        let ours = pid_namespace();
        if ours != 0 && ours != pidns {
            return true;
        }
    }
    pid != 0 && shmkit_sys::owner::is_alive(pid, None)
}

/// `shmat(id)` read-write at a kernel-chosen address.
pub(crate) fn sysv_attach(id: libc::c_int) -> io::Result<*mut u8> {
    // SAFETY: a null address lets the kernel choose where to attach; touches no
    // existing memory.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Size of the System V segment `id` (`shm_segsz`).
pub(crate) fn sysv_size(id: libc::c_int) -> io::Result<usize> {
    // SAFETY: shmid_ds is plain data; all-zero is a valid value for IPC_STAT to fill.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    cvt(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(ds.shm_segsz as usize)
}
