//! Thin wrappers over the syscalls the backends share: `rustix` where it has them
//! (`shm_open`/`shm_unlink`, open, memfd, fchmod, fallocate, madvise); `libc` only for
//! System V `shmget`/`shmat`/`shmdt`/`shmctl` and `ftok`, which rustix does not wrap.
//! Each System V call is behind one small safe function or type here, so the rest of
//! the crate holds no `unsafe` for them.

use std::ffi::CStr;
use std::fs::File;
use std::io;

pub(crate) use rustix::fs::OFlags;

/// `Err(last_os_error)` when `rc == -1`.
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Retries `f` on EINTR and turns its fd into a `File`.
fn retry_open(mut f: impl FnMut() -> rustix::io::Result<std::os::fd::OwnedFd>) -> io::Result<File> {
    loop {
        match f() {
            Ok(fd) => return Ok(File::from(fd)),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `name` without its leading `/`: rustix's `shm` functions count the name's length
/// against `NAME_MAX` as given, so a 255-byte name plus the slash would be refused
/// where glibc's `shm_open` accepts it.
fn bare(name: &CStr) -> &CStr {
    let bytes = name.to_bytes_with_nul();
    let slashes = bytes.iter().take_while(|&&b| b == b'/').count();
    CStr::from_bytes_with_nul(&bytes[slashes..]).expect("a suffix of a C string is one")
}

/// `shm_open(name, flags, mode)`, close-on-exec and `O_NOFOLLOW` (as glibc's
/// `shm_open` adds them), retried on EINTR.
pub(crate) fn shm_open(name: &CStr, flags: OFlags, mode: u32) -> io::Result<File> {
    // rustix's shm flags are a subset of open's; it passes unknown bits (NONBLOCK,
    // NOFOLLOW) through to the open of `/dev/shm/<name>` and adds CLOEXEC itself.
    let flags = rustix::shm::OFlags::from_bits_retain((flags | OFlags::NOFOLLOW).bits());
    let mode = rustix::fs::Mode::from_raw_mode(mode);
    retry_open(|| rustix::shm::open(bare(name), flags, mode))
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    Ok(rustix::shm::unlink(bare(name))?)
}

/// `open(path, flags, mode)`, close-on-exec, retried on EINTR.
pub(crate) fn open(path: &CStr, flags: OFlags, mode: u32) -> io::Result<File> {
    let mode = rustix::fs::Mode::from_raw_mode(mode);
    retry_open(|| rustix::fs::open(path, flags | OFlags::CLOEXEC, mode))
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
    match shm_open(name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
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

/// `ftok(path, id)`: the System V key for an existing path.
pub(crate) fn ftok(path: &CStr, id: u8) -> io::Result<libc::key_t> {
    // libc: rustix has no System V IPC.
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::ftok(path.as_ptr(), libc::c_int::from(id)) })
}

/// `shmget(key, size, flags)`: the id of a System V segment.
pub(crate) fn sysv_get(
    key: libc::key_t,
    size: usize,
    flags: libc::c_int,
) -> io::Result<libc::c_int> {
    // libc: rustix has no System V IPC.
    // SAFETY: shmget takes no pointers.
    cvt(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(id, IPC_RMID)`: the key is free at once, the memory goes with the last
/// attachment.
pub(crate) fn sysv_remove(id: libc::c_int) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer (null is what it expects).
    cvt(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// Size of the System V segment `id` (`shm_segsz`).
pub(crate) fn sysv_size(id: libc::c_int) -> io::Result<usize> {
    // SAFETY: shmid_ds is plain data for which all-zero is a valid value, and `ds` is
    // a valid, writable shmid_ds for IPC_STAT to fill.
    let ds = unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        cvt(libc::shmctl(id, libc::IPC_STAT, &mut ds))?;
        ds
    };
    Ok(ds.shm_segsz as usize)
}

/// One `shmat` attachment of a System V segment, detached (`shmdt`) on drop.
///
/// Invariant: `ptr` is the address `shmat` returned for this attachment, which stays
/// mapped until `drop`, and at least `len` bytes are attached there.
#[derive(Debug)]
pub(crate) struct SysvAttach {
    ptr: *mut u8,
    len: usize,
}

impl SysvAttach {
    /// `shmat(id)` at a kernel-chosen address (read-only or read-write) of a segment of
    /// `len` bytes (its `shm_segsz`, or less).
    pub(crate) fn new(id: libc::c_int, len: usize, read_only: bool) -> io::Result<Self> {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // libc: rustix has no System V IPC.
        // SAFETY: a null address lets the kernel choose where to attach; touches no
        // existing memory.
        let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if p as isize == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(SysvAttach { ptr: p.cast(), len })
        }
    }

    /// Start of the attachment.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Copies the first `buf.len()` bytes (at most `len`) with volatile byte reads.
    pub(crate) fn read_into(&self, buf: &mut [u8]) {
        assert!(buf.len() <= self.len, "read past the attachment");
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `i < len`, inside the live attachment (type invariant); a volatile
            // byte read forms no reference to memory other processes write.
            *b = unsafe { self.ptr.add(i).read_volatile() };
        }
    }
}

impl Drop for SysvAttach {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the address shmat returned (type invariant), detached once;
        // whoever holds this attachment holds no pointer into it past its drop.
        unsafe { libc::shmdt(self.ptr.cast()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rustix counts the name against NAME_MAX as given: the leading slash must not
    /// make a valid 255-byte name too long.
    #[test]
    fn a_255_byte_posix_name_is_accepted() {
        let prefix = shmkit_testkit::unique_name("max");
        let name = format!("{prefix}{}", "x".repeat(255 - prefix.len()));
        assert_eq!(name.len(), 255);
        let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
        let cname = crate::name::posix_cstring(&name);
        let file = shm_open(&cname, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, 0o600)
            .expect("a 255-byte name is valid");
        assert_eq!(fsize(&file).unwrap(), 0);
        assert!(std::path::Path::new("/dev/shm").join(&name).exists());
        shm_unlink(&cname).expect("unlink the 255-byte name");
        assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
    }
}
