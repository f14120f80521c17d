//! [`Segment`]: one mapped region, whatever the backend.

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;

use crate::error::OpenError;
use crate::header::{HeaderInfo, HeaderRef, HEADER_LEN};
use crate::options::SegmentOptions;
use crate::{name, sys};

/// Where a segment's memory comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// `shm_open` names in `/dev/shm`.
    Posix,
    /// System V `shmget`/`shmat`, by key.
    SysV,
    /// A regular file mapped shared (persists across restarts).
    File,
    /// Anonymous shared memory (a memfd), inherited by `fork` children.
    Anonymous,
}

impl Backend {
    /// Lower-case name, as in messages and `shmkit ls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Posix => "posix",
            Backend::SysV => "sysv",
            Backend::File => "file",
            Backend::Anonymous => "anonymous",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the memory is mapped, i.e. how to unmap it.
pub(crate) enum Mapping {
    /// An fd-backed shared mapping (POSIX, file, memfd); unmapped by `MmapRaw`'s drop.
    Mmap {
        /// Held for its drop, which unmaps.
        _map: memmap2::MmapRaw,
    },
    /// A System V attachment; detached (`shmdt`) by its own drop.
    SysV {
        /// Held for its drop, which detaches.
        _attach: sys::SysvAttach,
    },
}

/// How to remove the segment's name, if this handle should.
pub(crate) enum Unlinker {
    /// POSIX name and the identity of the object we mapped.
    Posix(CString, Option<sys::FileId>),
    /// System V id (ids, unlike keys, name one segment).
    SysV(libc::c_int),
    /// File path and the identity of the file we mapped.
    File(PathBuf, Option<sys::FileId>),
    None,
}

/// One mapped shared-memory region, any backend.
///
/// It hands out raw pointers only: memory another process may write must not sit
/// behind `&[u8]` (see [`Segment::as_slice`] for the exception and its contract).
/// Dropping it unmaps; it also removes the name if this handle owns it (by default the
/// creator of a POSIX or System V segment; a file-backed segment persists unless
/// `unlink_on_drop(true)`) and only in the process that made the handle: a forked
/// child never removes its parent's segment.
///
/// The [crate-level example](crate) creates, initialises and opens one; this one shows
/// who removes the name.
///
/// ```
/// use shmkit_segment::{OpenError, Segment};
///
/// let name = format!("shmkit-doc-seg-{}", std::process::id());
/// let mut seg = Segment::options().posix(&name).size(64).create()?;
/// let reader = Segment::options().posix(&name).open()?; // maps the same memory
/// assert!(seg.unlinks_on_drop() && !reader.unlinks_on_drop());
/// seg.persist(); // keep the name when `seg` drops
/// drop(seg);
/// let owner = Segment::options().posix(&name).unlink_on_drop(true).open()?;
/// drop(owner); // this handle owned the name: it is gone, `reader` stays mapped
/// let gone = Segment::options().posix(&name).open();
/// assert!(matches!(gone, Err(OpenError::NotFound { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Segment {
    /// Held for its drop (unmap or detach).
    pub(crate) _map: Mapping,
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
    pub(crate) payload_offset: usize,
    pub(crate) payload_len: usize,
    pub(crate) backend: Backend,
    pub(crate) name: Option<String>,
    pub(crate) creator: bool,
    pub(crate) raw: bool,
    pub(crate) unlink_on_drop: bool,
    pub(crate) owner_pid: u32,
    pub(crate) unlinker: Unlinker,
    /// The memfd of an anonymous segment (to pass on); `None` for other backends.
    pub(crate) fd: Option<std::fs::File>,
}

// SAFETY: a Segment is a mapping plus bookkeeping; it hands out raw pointers only, and
// all access to the shared bytes is synchronised by the caller (as it must be anyway
// against other processes). Nothing in it is tied to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: every `&self` method only reads immutable bookkeeping or the header through
// atomics/volatile reads.
unsafe impl Sync for Segment {}

impl Segment {
    /// A builder: choose a backend, then create, open or open-or-create.
    pub fn options() -> SegmentOptions {
        SegmentOptions::default()
    }

    /// Attaches a foreign POSIX segment that has no shmkit header, such as one made by
    /// Python's `multiprocessing.shared_memory.SharedMemory`.
    ///
    /// `name` is without the leading `/`, as Python spells it; the size is taken from
    /// `fstat`. The payload is the whole mapping. Never removes the name on drop.
    ///
    /// # Errors
    /// [`OpenError::InvalidName`], [`OpenError::NotFound`],
    /// [`OpenError::PermissionDenied`], [`OpenError::TooSmall`] for a 0-byte object,
    /// [`OpenError::NotRegularFile`] for a directory, FIFO or device under the name,
    /// [`OpenError::Io`] otherwise.
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::Segment;
    ///
    /// // A foreign object, as `SharedMemory(name, create=True, size=4096)` makes one.
    /// let name = format!("shmkit-doc-raw-{}", std::process::id());
    /// std::fs::File::create(format!("/dev/shm/{name}"))?.set_len(4096)?;
    /// let seg = Segment::open_raw(&name)?;
    /// assert_eq!(seg.len(), 4096);
    /// assert_eq!(seg.payload_ptr(), seg.as_ptr()); // no header
    /// assert!(seg.header().is_none());
    /// drop(seg); // never removes the name: the creator (or we) must
    /// shmkit_segment::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_raw(name: &str) -> Result<Segment, OpenError> {
        name::check_posix(name).map_err(|reason| OpenError::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        let cname = name::posix_cstring(name);
        // O_NONBLOCK: opening a FIFO planted under the name must not block.
        let file = sys::shm_open(&cname, sys::OFlags::RDWR | sys::OFlags::NONBLOCK, 0)
            .map_err(|e| crate::options::shm_open_error(name, e))?;
        let meta = file.metadata().map_err(|source| OpenError::Io {
            op: "fstat",
            name: name.to_owned(),
            source,
        })?;
        if !meta.file_type().is_file() {
            return Err(OpenError::NotRegularFile {
                name: name.to_owned(),
            });
        }
        let len = meta.len();
        if len == 0 {
            return Err(OpenError::TooSmall {
                name: name.to_owned(),
                len: 0,
                needed: 1,
            });
        }
        let len = usize::try_from(len).map_err(|_| OpenError::Corrupt {
            name: name.to_owned(),
            reason: "size does not fit in the address space",
        })?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|e| crate::options::open_io_error(name, "mmap", e))?;
        let ptr = map.as_mut_ptr();
        Ok(Segment {
            _map: Mapping::Mmap { _map: map },
            ptr,
            len,
            payload_offset: 0,
            payload_len: len,
            backend: Backend::Posix,
            name: Some(name.to_owned()),
            creator: false,
            raw: true,
            unlink_on_drop: false,
            owner_pid: sys::getpid(),
            unlinker: Unlinker::None,
            fd: None,
        })
    }

    /// Start of the mapping (the header, unless attached with [`Segment::open_raw`]).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length of the mapping in bytes (header included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a segment that opened).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// First payload byte: 128-byte aligned; equal to [`Segment::as_ptr`] for a raw
    /// segment.
    pub fn payload_ptr(&self) -> *mut u8 {
        // In bounds: payload_offset <= len, checked when the segment was opened.
        self.ptr.wrapping_add(self.payload_offset)
    }

    /// Usable payload bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The whole mapping as a byte slice.
    ///
    /// # Safety
    /// No process (this one included) may write the segment while the slice lives.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is our live mapping; the caller guarantees nobody
        // writes it while the slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The whole mapping as a mutable byte slice.
    ///
    /// # Safety
    /// The caller must have exclusive access: no other reference into the segment, and
    /// no other process reading or writing it, while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: `ptr..ptr+len` is our live, writable mapping; the caller guarantees
        // exclusive access while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The name: POSIX name (no leading `/`), SysV key as `0x%08x`, or file path;
    /// `None` for anonymous segments.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Which backend holds the memory.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether this handle created the segment (e.g. won `open_or_create`).
    pub fn is_creator(&self) -> bool {
        self.creator
    }

    /// A fresh copy of the header's fields; `None` for a raw segment.
    ///
    /// Informational: a peer with write access may have rewritten the header since the
    /// segment was opened. For bounds use [`Segment::payload_len`], which is the value
    /// validated against the mapping at open and never re-read.
    pub fn header(&self) -> Option<HeaderInfo> {
        // Its header was validated (READY Acquired) when it was created or opened.
        self.header_ref().map(HeaderRef::snapshot)
    }

    /// The live header in place; `None` for a raw segment (which has none).
    pub(crate) fn header_ref(&self) -> Option<HeaderRef<'_>> {
        if self.raw || self.len < HEADER_LEN {
            return None;
        }
        // SAFETY: a non-raw segment starts with its header: `ptr..ptr+len` (at least
        // HEADER_LEN bytes, checked) is our page-aligned, writable mapping, which stays
        // mapped while `self` lives.
        Some(unsafe { HeaderRef::new(self.ptr) })
    }

    /// Whether the segment is shared across pid namespaces (see
    /// [`SegmentOptions::allow_foreign_pid_namespace`]): then no process id in it can be
    /// checked for liveness. Read fresh each call (another process may set it at any
    /// time, never clear it), after a SeqCst fence: call it *after* reading the owner
    /// word you are about to judge, so an owner from another namespace is never judged
    /// without the flag it set before taking anything. `false` for a raw segment.
    pub fn shared_across_pid_namespaces(&self) -> bool {
        self.header_ref()
            .is_some_and(HeaderRef::shared_pid_namespaces)
    }

    /// The memfd behind an anonymous segment, to hand to an unrelated process (over a
    /// Unix socket with `SCM_RIGHTS`, or inherited across `exec`), which opens it with
    /// [`SegmentOptions::fd`]. `None` for named backends: open those by name.
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Maps every page of the segment into this process now, writable, instead of one
    /// page fault at a time on first touch (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14+;
    /// on older kernels each page is touched once instead). Costs about 1 ms per 4 MiB
    /// once; afterwards a hot loop over the memory (a ring buffer) takes no page faults.
    /// The pages are already allocated (creation reserves them), so this allocates
    /// nothing new.
    ///
    /// # Errors
    /// The `madvise` error, other than "not supported" (which falls back to touching).
    pub fn prefault(&self) -> std::io::Result<()> {
        // SAFETY: `as_ptr()..as_ptr()+len()` is exactly this handle's live mapping,
        // page-aligned at its start; MADV_POPULATE_WRITE only faults pages in.
        let advised = unsafe {
            rustix::mm::madvise(
                self.as_ptr().cast(),
                self.len(),
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
        match advised {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL) => {}
            Err(err) => return Err(err.into()),
        }
        // An older kernel: read one byte per page (a read fault maps a shared page).
        let page = 4096;
        for off in (0..self.len()).step_by(page) {
            // SAFETY: `off < len()`, inside the live mapping; a volatile read of one
            // byte forms no reference to memory another process may write.
            unsafe { self.as_ptr().add(off).read_volatile() };
        }
        Ok(())
    }

    /// Keep the name when this handle is dropped.
    pub fn persist(&mut self) {
        self.unlink_on_drop = false;
    }

    /// Whether dropping this handle (in this process) removes the name.
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop && !matches!(self.unlinker, Unlinker::None)
    }

    pub(crate) fn set_unlink_on_drop(&mut self, yes: bool) {
        self.unlink_on_drop = yes;
    }

    fn unlink_now(&self) {
        match &self.unlinker {
            Unlinker::Posix(c, id) => sys::shm_unlink_if_same(c, *id),
            Unlinker::SysV(id) => {
                let _ = sys::sysv_remove(*id);
            }
            Unlinker::File(p, id) => sys::remove_file_if_same(p, *id),
            Unlinker::None => {}
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop && sys::getpid() == self.owner_pid {
            self.unlink_now();
        }
        // Then the fields drop: Mapping::Mmap unmaps in MmapRaw's drop, Mapping::SysV
        // detaches in SysvAttach's.
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("backend", &self.backend)
            .field("name", &self.name)
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("payload_len", &self.payload_len)
            .field("creator", &self.creator)
            .field("raw", &self.raw)
            .field("unlink_on_drop", &self.unlink_on_drop)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Segment>();
    }

    #[test]
    fn backend_names() {
        assert_eq!(Backend::Posix.to_string(), "posix");
        assert_eq!(Backend::SysV.as_str(), "sysv");
        assert_eq!(Backend::File.as_str(), "file");
        assert_eq!(Backend::Anonymous.as_str(), "anonymous");
    }

    /// What the per-method doc examples checked before they were folded into the
    /// type-level ones: sizes, alignment, the byte views, the header, `prefault`.
    #[test]
    fn accessors_describe_the_mapping() {
        use crate::{TypeTag, HEADER_LEN, LAYOUT_VERSION, MAGIC};
        let seg = Segment::options().anonymous().size(100).create().unwrap();
        assert_eq!((seg.backend(), seg.name()), (Backend::Anonymous, None));
        assert_eq!((seg.len(), seg.payload_len()), (HEADER_LEN + 100, 100));
        assert!(!seg.is_empty() && seg.is_creator());
        assert_eq!(seg.payload_ptr() as usize % 128, 0);
        assert!(!seg.shared_across_pid_namespaces());
        let h = seg.header().expect("a shmkit segment has a header");
        assert!(h.ready);
        assert_eq!((h.magic, h.version), (MAGIC, LAYOUT_VERSION));
        assert_eq!((h.payload_offset, h.payload_size), (HEADER_LEN as u64, 100));
        assert_eq!(h.type_tag, TypeTag::BYTES);
        // SAFETY: the header's first 8 bytes are in bounds, aligned, no longer written.
        let magic = unsafe { seg.as_ptr().cast::<u64>().read_volatile() };
        assert_eq!(u64::from_le(magic), MAGIC);
        // SAFETY: no other process maps this segment; no other reference into it lives.
        let bytes = unsafe { seg.as_mut_slice() };
        bytes[bytes.len() - 1] = 0xFF;
        // SAFETY: in bounds (the last payload byte); nobody writes it meanwhile.
        assert_eq!(unsafe { seg.payload_ptr().add(99).read() }, 0xFF);
        // SAFETY: the mutable slice is gone; nobody writes the segment meanwhile.
        let bytes = unsafe { seg.as_slice() };
        assert_eq!((&bytes[..8], bytes.len()), (&b"SHMKITSG"[..], seg.len()));
        seg.prefault().unwrap();
    }

    #[test]
    fn named_segment_reports_its_name_and_fd_only_for_anonymous() {
        let name = format!("shmkit-unit-seg-{}", std::process::id());
        let seg = Segment::options().posix(&name).size(8).create().unwrap();
        assert_eq!(seg.name(), Some(name.as_str()));
        assert!(seg.fd().is_none());
        let anon = Segment::options().anonymous().size(8).create().unwrap();
        assert!(anon.fd().is_some());
    }
}
