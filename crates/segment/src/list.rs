//! [`list`] the shmkit segments on this machine and [`remove`] them by name.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use crate::error::{ListError, RemoveError};
use crate::header::{Header, HeaderInfo, HEADER_LEN, MAGIC};
use crate::segment::Backend;
use crate::{name, sys};

/// Where POSIX shared memory objects live on Linux.
pub const POSIX_SHM_DIR: &str = "/dev/shm";
const SYSV_PROC: &str = "/proc/sysvipc/shm";

/// One shmkit segment found by [`list`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// POSIX name (no leading `/`), or the System V key as `0x%08x`.
    pub name: String,
    /// [`Backend::Posix`] or [`Backend::SysV`].
    pub backend: Backend,
    /// Size of the object in bytes (header included).
    pub size: u64,
    /// Owner's uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The System V id (`shmid`), for `ipcrm -m`; `None` for POSIX.
    pub shmid: Option<i32>,
    /// The header, as found.
    pub header: HeaderInfo,
    /// Whether the creator's pid (from the header) is a live process. A creator in
    /// another pid namespace cannot be checked and counts as alive.
    pub creator_alive: bool,
}

impl SegmentInfo {
    /// Pid of the process that created the segment.
    pub fn creator_pid(&self) -> u32 {
        self.header.creator_pid
    }

    /// Whether the creator published READY.
    pub fn ready(&self) -> bool {
        self.header.ready
    }
}

/// The shmkit segments on this machine (those starting with shmkit's magic): POSIX
/// from `/dev/shm`, System V from `/proc/sysvipc/shm`. Objects this user cannot read
/// are skipped.
///
/// # Errors
/// [`ListError::Io`] if `/dev/shm` cannot be read. A missing `/proc/sysvipc/shm` just
/// means no System V segments.
pub fn list() -> Result<Vec<SegmentInfo>, ListError> {
    let mut out = Vec::new();
    let dir = std::fs::read_dir(POSIX_SHM_DIR).map_err(|source| ListError::Io {
        path: POSIX_SHM_DIR.to_owned(),
        source,
    })?;
    for entry in dir.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(info) = posix_info(&name) {
            out.push(info);
        }
    }
    match std::fs::read_to_string(SYSV_PROC) {
        Ok(text) => out.extend(text.lines().skip(1).filter_map(sysv_info)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ListError::Io {
                path: SYSV_PROC.to_owned(),
                source,
            })
        }
    }
    out.sort_by(|a, b| (a.backend as u8, &a.name).cmp(&(b.backend as u8, &b.name)));
    Ok(out)
}

fn posix_info(name: &str) -> Option<SegmentInfo> {
    let path = format!("{POSIX_SHM_DIR}/{name}");
    // Read with pread, not a mapping: pread never faults, even on an object another
    // process shrinks. /dev/shm is world-writable: never follow a planted symlink, and
    // never block opening a planted FIFO (O_NONBLOCK); only regular files are read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < HEADER_LEN as u64 {
        return None;
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, 0).ok()?;
    let header = Header::from_bytes(&buf);
    if header.magic != MAGIC {
        return None;
    }
    Some(SegmentInfo {
        name: name.to_owned(),
        backend: Backend::Posix,
        size: meta.len(),
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        shmid: None,
        creator_alive: header.creator_pid != 0
            && sys::creator_alive(header.creator_pid, header.creator_pidns),
        header,
    })
}

/// One line of `/proc/sysvipc/shm`:
/// `key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap`.
fn sysv_info(line: &str) -> Option<SegmentInfo> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let key: i32 = f[0].parse().ok()?;
    let shmid: i32 = f[1].parse().ok()?;
    let mode: u32 = u32::from_str_radix(f[2], 8).ok()?;
    let size: u64 = f[3].parse().ok()?;
    let uid: u32 = f[7].parse().ok()?;
    if size < HEADER_LEN as u64 {
        return None;
    }
    // SAFETY: attaching read-only at a kernel-chosen address touches no existing memory.
    let p = unsafe { libc::shmat(shmid, std::ptr::null(), libc::SHM_RDONLY) };
    if p as isize == -1 {
        return None;
    }
    let mut buf = [0u8; HEADER_LEN];
    // SAFETY: the attachment is at least HEADER_LEN bytes (checked `size`) and readable;
    // a volatile byte copy forms no reference to memory others write.
    unsafe {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = p.cast::<u8>().add(i).read_volatile();
        }
        libc::shmdt(p);
    }
    let header = Header::from_bytes(&buf);
    if header.magic != MAGIC {
        return None;
    }
    Some(SegmentInfo {
        name: format!("{key:#010x}"),
        backend: Backend::SysV,
        size,
        uid,
        mode: mode & 0o777,
        shmid: Some(shmid),
        creator_alive: header.creator_pid != 0
            && sys::creator_alive(header.creator_pid, header.creator_pidns),
        header,
    })
}

/// Removes the POSIX segment `name` (no leading `/`). Processes that have it mapped
/// keep their mapping; the name is gone at once.
///
/// # Errors
/// [`RemoveError::InvalidName`], [`RemoveError::NotFound`],
/// [`RemoveError::PermissionDenied`], [`RemoveError::Io`].
pub fn remove(name: &str) -> Result<(), RemoveError> {
    name::check_posix(name).map_err(|reason| RemoveError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    sys::shm_unlink(&name::posix_cstring(name)).map_err(|e| remove_error(name, e))
}

/// Marks the System V segment with this key for removal (`shmctl(IPC_RMID)`): the key
/// is free at once, the memory goes when the last process detaches.
///
/// # Errors
/// As [`remove`].
pub fn remove_sysv(key: i32) -> Result<(), RemoveError> {
    let name = format!("{key:#010x}");
    if key == libc::IPC_PRIVATE {
        return Err(RemoveError::InvalidName {
            name,
            reason: "key 0 is IPC_PRIVATE, not a shared key",
        });
    }
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id == -1 {
        return Err(remove_error(&name, io::Error::last_os_error()));
    }
    // SAFETY: IPC_RMID takes no buffer.
    sys::cvt(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })
        .map(drop)
        .map_err(|e| remove_error(&name, e))
}

fn remove_error(name: &str, e: io::Error) -> RemoveError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EIDRM) => RemoveError::NotFound {
            name: name.to_owned(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => RemoveError::PermissionDenied {
            name: name.to_owned(),
            source: e,
        },
        _ => RemoveError::Io {
            name: name.to_owned(),
            source: e,
        },
    }
}
