//! [`list`] the shmkit segments on this machine (and [`list_dir`] the file-backed ones
//! in a directory), look one up with [`info`], [`info_sysv`] or [`info_file`], and
//! [`remove`] them by name.
//!
//! Every header is judged by the same validation `open` runs (one pure function over a
//! copy of the 128 bytes): a header that fails it is reported as
//! [`SegmentState::Corrupt`] with `open`'s reason, and nothing else in it (its pid in
//! particular) is trusted.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{ListError, OpenError, RemoveError};
use crate::header::{
    Header, HeaderInfo, HEADER_LEN, MAGIC, STATE_CREATING, STATE_FAILED, STATE_READY,
};
use crate::segment::Backend;
use crate::validate::{validate, Expect};
use crate::{name, sys};

/// Where POSIX shared memory objects live on Linux.
pub const POSIX_SHM_DIR: &str = "/dev/shm";
const SYSV_PROC: &str = "/proc/sysvipc/shm";
/// `SHM_DEST` in `/proc/sysvipc/shm`'s perms: marked for removal (`IPC_RMID`).
const SHM_DEST: u32 = 0o1000;

/// One shmkit segment found by [`list`], [`list_dir`] or [`info`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// POSIX name (no leading `/`); the System V key as `0x%08x`, or `shmid:N` for a
    /// System V segment without a key (marked for removal, or `IPC_PRIVATE`); the path
    /// of a file-backed segment.
    pub name: String,
    /// [`Backend::Posix`], [`Backend::SysV`] or [`Backend::File`].
    pub backend: Backend,
    /// Size of the object in bytes (header included).
    pub size: u64,
    /// Owner's uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The System V id (`shmid`), for `ipcrm -m`; `None` for POSIX and files.
    pub shmid: Option<i32>,
    /// The header, as found. Only the magic is meaningful if [`corrupt`](Self::corrupt)
    /// is set.
    pub header: HeaderInfo,
    /// Whether the creator's pid (from the header) is a live process. A creator in
    /// another pid namespace cannot be checked and counts as alive. Always `false` for
    /// a corrupt header (its pid means nothing).
    pub creator_alive: bool,
    /// Why the header fails the checks `open` makes (the message `open` gives), if it
    /// does.
    pub corrupt: Option<String>,
    /// System V: marked for removal (`IPC_RMID`, e.g. by `ipcrm`): the key is gone, and
    /// the memory is freed when the last attached process detaches.
    pub removed: bool,
    /// System V: how many processes have it attached (`nattch`); `None` otherwise.
    pub attached: Option<u64>,
    /// The header's raw init state word (to tell FAILED apart).
    state_word: u32,
}

/// What state a listed segment is in, from its header, its creator and the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentState {
    /// READY, and its creator lives (or is in another pid namespace, unknowable).
    Alive,
    /// READY, and its creator is gone: stale, unless others still use it.
    Dead,
    /// Its creator is still initialising it.
    Initialising,
    /// Its creator died before publishing READY.
    Abandoned,
    /// Its creator's `init` failed (state FAILED).
    InitFailed,
    /// The header fails the checks `open` makes (see [`SegmentInfo::corrupt`]).
    Corrupt,
    /// System V, marked for removal and still attached somewhere.
    Removed,
}

impl SegmentState {
    /// Whether nothing can be using it through shmkit: its creator is gone (dead,
    /// abandoned, or failed). What `shmkit rm` removes without `--force`.
    pub fn is_stale(self) -> bool {
        matches!(
            self,
            SegmentState::Dead | SegmentState::Abandoned | SegmentState::InitFailed
        )
    }

    /// A short lower-case word: `alive`, `dead`, `initialising`, `abandoned`,
    /// `init failed`, `corrupt` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentState::Alive => "alive",
            SegmentState::Dead => "dead",
            SegmentState::Initialising => "initialising",
            SegmentState::Abandoned => "abandoned",
            SegmentState::InitFailed => "init failed",
            SegmentState::Corrupt => "corrupt",
            SegmentState::Removed => "removed",
        }
    }
}

impl fmt::Display for SegmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

    /// The segment's state (see [`SegmentState`]).
    pub fn state(&self) -> SegmentState {
        if self.removed {
            SegmentState::Removed
        } else if self.corrupt.is_some() {
            SegmentState::Corrupt
        } else if self.init_failed() {
            SegmentState::InitFailed
        } else {
            match (self.ready(), self.creator_alive) {
                (true, true) => SegmentState::Alive,
                (true, false) => SegmentState::Dead,
                (false, true) => SegmentState::Initialising,
                (false, false) => SegmentState::Abandoned,
            }
        }
    }

    fn init_failed(&self) -> bool {
        self.state_word == STATE_FAILED
    }
}

/// The shmkit segments on this machine (those starting with shmkit's magic): POSIX
/// from `/dev/shm`, System V from `/proc/sysvipc/shm`. Objects this user cannot read
/// are skipped, and so are objects that are not regular files. File-backed segments
/// live anywhere: list a directory of them with [`list_dir`].
///
/// # Errors
/// [`ListError::Io`] if `/dev/shm` cannot be read. A missing `/proc/sysvipc/shm` just
/// means no System V segments.
///
/// # Examples
/// ```
/// use shmkit_segment::{list, Backend, Segment};
///
/// let name = format!("shmkit-doc-list-{}", std::process::id());
/// let _seg = Segment::options().posix(&name).size(64).create()?;
/// let info = list()?.into_iter().find(|s| s.name == name).expect("listed");
/// assert_eq!(info.backend, Backend::Posix);
/// assert_eq!(info.size, 128 + 64);
/// assert_eq!(info.creator_pid(), std::process::id());
/// assert!(info.creator_alive && info.ready());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
        if let Ok(info) = info(&name) {
            out.push(info);
        }
    }
    match std::fs::read_to_string(SYSV_PROC) {
        Ok(text) => out.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| sysv_info(l, |_, _| true)?.ok()),
        ),
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

/// The file-backed shmkit segments directly in `dir` (not in its subdirectories),
/// named by their path (`dir` joined with the file name). Symlinks are not followed;
/// files that are not segments are skipped.
///
/// # Errors
/// [`ListError::Io`] if `dir` cannot be read.
pub fn list_dir(dir: impl AsRef<Path>) -> Result<Vec<SegmentInfo>, ListError> {
    let dir = dir.as_ref();
    let io_err = |source| ListError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)?.flatten() {
        let path = entry.path();
        let shown = path.display().to_string();
        let Ok(file) = open_nofollow(&path) else {
            continue;
        };
        if let Ok(info) = file_info(&file, shown, Backend::File) {
            out.push(info);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The POSIX object `name` (no leading `/`) as a shmkit segment: its header judged by
/// `open`'s validation (a bad header is `Ok` with [`SegmentState::Corrupt`]). Reads
/// with `pread`, never maps; never follows a symlink and never blocks on a FIFO.
///
/// # Errors
/// [`OpenError::NotFound`]; [`OpenError::NotRegularFile`] for a directory, FIFO,
/// symlink or device under the name; [`OpenError::NotShmkit`] for an object without
/// shmkit's magic (e.g. Python's `SharedMemory`), and [`OpenError::TooSmall`] for one
/// shorter than a header (an empty one may be a creator that died before sizing it);
/// [`OpenError::InvalidName`], [`OpenError::PermissionDenied`], [`OpenError::Io`].
pub fn info(name: &str) -> Result<SegmentInfo, OpenError> {
    name::check_posix(name).map_err(|reason| OpenError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let path = Path::new(POSIX_SHM_DIR).join(name);
    let file = open_nofollow(&path).map_err(|e| open_error(name, e))?;
    file_info(&file, name.to_owned(), Backend::Posix)
}

/// The file-backed segment at `path`, judged like [`info`]. Follows symlinks, as
/// opening a file-backed segment does.
///
/// # Errors
/// As [`info`].
pub fn info_file(path: impl AsRef<Path>) -> Result<SegmentInfo, OpenError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| open_error(&shown, e))?;
    file_info(&file, shown, Backend::File)
}

/// The System V segment with this key, judged like [`info`] (found through
/// `/proc/sysvipc/shm`, attached read-only for a moment to copy the header).
///
/// # Errors
/// As [`info`]; [`OpenError::InvalidName`] for key 0 (`IPC_PRIVATE`).
pub fn info_sysv(key: i32) -> Result<SegmentInfo, OpenError> {
    let name = format!("{key:#010x}");
    if key == libc::IPC_PRIVATE {
        return Err(OpenError::InvalidName {
            name,
            reason: "key 0 is IPC_PRIVATE, not a shared key",
        });
    }
    let text = std::fs::read_to_string(SYSV_PROC).map_err(|e| open_error(&name, e))?;
    text.lines()
        .skip(1)
        .find_map(|l| sysv_info(l, |k, _| k == key))
        .unwrap_or(Err(OpenError::NotFound { name }))
}

/// Opens `path` read-only for `pread`: never follows a symlink (`/dev/shm` is
/// world-writable) and never blocks on a planted FIFO.
fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn open_error(name: &str, e: io::Error) -> OpenError {
    match e.raw_os_error() {
        // O_NOFOLLOW on a symlink: whatever it points to, the name is not a segment.
        Some(libc::ELOOP) => OpenError::NotRegularFile {
            name: name.to_owned(),
        },
        _ => crate::options::open_io_error(name, "open", e),
    }
}

/// Reads and judges the header of a regular file (POSIX object or file segment).
fn file_info(file: &File, name: String, backend: Backend) -> Result<SegmentInfo, OpenError> {
    let meta = file
        .metadata()
        .map_err(|e| crate::options::open_io_error(&name, "fstat", e))?;
    if !meta.is_file() {
        return Err(OpenError::NotRegularFile { name });
    }
    // Read with pread, not a mapping: pread never faults, even on an object another
    // process shrinks.
    let mut buf = [0u8; HEADER_LEN];
    let n =
        read_up_to(file, &mut buf).map_err(|e| crate::options::open_io_error(&name, "pread", e))?;
    let raw = Raw {
        name,
        backend,
        size: meta.len(),
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        shmid: None,
        removed: false,
        attached: None,
    };
    judge(raw, &buf, n)
}

/// `pread`s as much of the header as there is; returns how many bytes were read.
fn read_up_to(file: &File, buf: &mut [u8; HEADER_LEN]) -> io::Result<usize> {
    let mut done = 0;
    while done < HEADER_LEN {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What the OS says of an object, before its header is judged.
struct Raw {
    name: String,
    backend: Backend,
    size: u64,
    uid: u32,
    mode: u32,
    shmid: Option<i32>,
    removed: bool,
    attached: Option<u64>,
}

/// Judges a copy of the first `len` bytes (at most a header) of an object of
/// `raw.size` bytes with the very validation `open` runs.
fn judge(raw: Raw, bytes: &[u8; HEADER_LEN], len: usize) -> Result<SegmentInfo, OpenError> {
    let magic = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if len < 8 || magic != MAGIC {
        if len == 0 {
            return Err(OpenError::TooSmall {
                name: raw.name,
                len: raw.size,
                needed: HEADER_LEN as u64,
            });
        }
        return Err(OpenError::NotShmkit {
            name: raw.name,
            found: magic,
        });
    }
    if len < HEADER_LEN {
        return Err(OpenError::TooSmall {
            name: raw.name,
            len: raw.size,
            needed: HEADER_LEN as u64,
        });
    }
    let header = Header::from_bytes(bytes);
    let state = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    // `open` waits for READY before validating. A creator that is still initialising
    // (or died doing so) has written every field but `state` once its pid is set, so
    // judge those fields as if READY.
    let mut probe = *bytes;
    let mut corrupt = None;
    if state == STATE_CREATING {
        if header.creator_pid == 0 {
            corrupt = Some(format!(
                "segment '{}' has a corrupt header: its creator pid is 0 (the header was never finished); remove and recreate it",
                raw.name
            ));
        }
        probe[12..16].copy_from_slice(&STATE_READY.to_le_bytes());
    }
    if corrupt.is_none() {
        match validate(&probe, raw.size, &Expect::default(), &raw.name) {
            Ok(_) | Err(OpenError::InitFailed { .. }) => {}
            Err(e) => corrupt = Some(e.to_string()),
        }
    }
    let creator_alive = corrupt.is_none()
        && header.creator_pid != 0
        && sys::creator_alive(header.creator_pid, header.creator_pidns);
    Ok(SegmentInfo {
        name: raw.name,
        backend: raw.backend,
        size: raw.size,
        uid: raw.uid,
        mode: raw.mode,
        shmid: raw.shmid,
        header,
        creator_alive,
        corrupt,
        removed: raw.removed,
        attached: raw.attached,
        state_word: state,
    })
}

/// One line of `/proc/sysvipc/shm`:
/// `key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap`.
/// `None` for a line that is not wanted (by `(key, shmid)`) or cannot be parsed.
fn sysv_info(
    line: &str,
    wanted: impl Fn(i32, i32) -> bool,
) -> Option<Result<SegmentInfo, OpenError>> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let key: i32 = f[0].parse().ok()?;
    let shmid: i32 = f[1].parse().ok()?;
    if !wanted(key, shmid) {
        return None;
    }
    let perms: u32 = u32::from_str_radix(f[2], 8).ok()?;
    let size: u64 = f[3].parse().ok()?;
    let attached: u64 = f[6].parse().ok()?;
    let uid: u32 = f[7].parse().ok()?;
    // A segment marked for removal has key 0 (IPC_PRIVATE) from then on; so has one
    // made private: name those by their id.
    let name = if key == libc::IPC_PRIVATE {
        format!("shmid:{shmid}")
    } else {
        format!("{key:#010x}")
    };
    let mut buf = [0u8; HEADER_LEN];
    let len = (size.min(HEADER_LEN as u64)) as usize;
    if len > 0 {
        // The attachment is at least `len` bytes (`size`); detached when it drops.
        match sys::SysvAttach::new(shmid, len, true) {
            Ok(attach) => attach.read_into(&mut buf[..len]),
            Err(e) => return Some(Err(crate::options::open_io_error(&name, "shmat", e))),
        }
    }
    let raw = Raw {
        name,
        backend: Backend::SysV,
        size,
        uid,
        mode: perms & 0o777,
        shmid: Some(shmid),
        removed: perms & SHM_DEST != 0,
        attached: Some(attached),
    };
    Some(judge(raw, &buf, len))
}

/// Removes the POSIX segment `name` (no leading `/`). Processes that have it mapped
/// keep their mapping; the name is gone at once.
///
/// # Errors
/// [`RemoveError::InvalidName`], [`RemoveError::NotFound`],
/// [`RemoveError::NotRegularFile`] (a directory under the name),
/// [`RemoveError::PermissionDenied`], [`RemoveError::Io`].
///
/// # Examples
/// ```
/// use shmkit_segment::{remove, RemoveError, Segment};
///
/// let name = format!("shmkit-doc-rm-{}", std::process::id());
/// let seg = Segment::options().posix(&name).size(64).create()?;
/// remove(&name)?; // the name is gone; `seg` stays mapped and usable
/// assert!(matches!(remove(&name), Err(RemoveError::NotFound { .. })));
/// assert!(matches!(remove("a/b"), Err(RemoveError::InvalidName { .. })));
/// drop(seg); // finds nothing to remove, and removes nothing else
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    let id = sys::sysv_get(key, 0, 0).map_err(|e| remove_error(&name, e))?;
    sys::sysv_remove(id).map_err(|e| remove_error(&name, e))
}

fn remove_error(name: &str, e: io::Error) -> RemoveError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EIDRM) => RemoveError::NotFound {
            name: name.to_owned(),
        },
        // glibc's `shm_unlink` is `unlink`: a directory under the name.
        Some(libc::EISDIR) => RemoveError::NotRegularFile {
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

#[cfg(test)]
mod tests {
    // What the per-function doc examples checked before they were folded into the
    // one on `list`.
    use super::*;
    use crate::Segment;

    #[test]
    fn info_judges_posix_sysv_file_and_foreign_objects() {
        let pid = std::process::id();
        let name = format!("shmkit-unit-info-{pid}");
        let _seg = Segment::options().posix(&name).size(8).create().unwrap();
        let state = info(&name).unwrap().state();
        assert_eq!(
            (state, state.to_string().as_str()),
            (SegmentState::Alive, "alive")
        );
        assert!(!state.is_stale());

        let foreign = format!("shmkit-unit-foreign-{pid}");
        std::fs::write(format!("/dev/shm/{foreign}"), [1u8; 4096]).unwrap();
        let r = info(&foreign);
        remove(&foreign).unwrap();
        assert!(matches!(r, Err(OpenError::NotShmkit { .. })), "{r:?}");

        let key = 0x5349_0000 ^ (pid as i32 & 0xffff);
        let _sysv = Segment::options().sysv(key).size(64).create().unwrap();
        let i = info_sysv(key).unwrap();
        assert_eq!((i.state(), i.attached), (SegmentState::Alive, Some(1)));

        let dir = std::env::temp_dir().join(format!("shmkit-unit-list-dir-{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.seg");
        let file = Segment::options()
            .file(&path)
            .size(32)
            .unlink_on_drop(true)
            .create()
            .unwrap();
        let found = list_dir(&dir).unwrap();
        let by_path = info_file(&path).unwrap();
        drop(file);
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, path.to_str().unwrap());
        assert_eq!(
            (by_path.backend, by_path.header.payload_size),
            (Backend::File, 32)
        );
    }
}
