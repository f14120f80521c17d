//! [`SegmentOptions`]: the builder, and the create / open / open-or-create protocols.
//!
//! Create: `O_CREAT|O_EXCL` (or `IPC_CREAT|IPC_EXCL`), `fchmod(mode)`,
//! `fallocate(total)` (a full `/dev/shm` is `ENOSPC` now, not SIGBUS later), map,
//! write the header with state CREATING and publish the creator pid (Release), run the
//! caller's init on the zeroed payload, publish READY (Release).
//!
//! Open: map; wait (spin, yield, then short sleeps, bounded by the open timeout) until
//! the object is at least a header long and READY (Acquire); a dead creator pid before
//! READY is `CreatorDied`. Then validate magic, version, sizes (the header's claims must
//! fit in the real mapping) and the type tag.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError, OpenOrCreateError};
use crate::header::{
    HeaderRef, TypeTag, HEADER_LEN, STATE_FAILED, STATE_READY, STATE_SHARED_PID_NAMESPACES,
};
use crate::segment::{Backend, Mapping, Segment, Unlinker};
use crate::validate::{open_header, Expect};
use crate::wait::wait_for_size;
use crate::{name, sys};

/// Default time `open` waits for the creator to publish READY.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
enum Target {
    None,
    Posix(String),
    SysV(i32),
    SysVFtok(PathBuf, u8),
    File(PathBuf),
    Anonymous,
    Fd(Arc<OwnedFd>),
}

/// Builder for [`Segment`]: pick a backend, set options, then `create`, `open` or
/// `open_or_create`.
///
/// The one example of the builder: a typed segment created once, opened by a peer,
/// refused when opened as the wrong type, and inspected by a tool. The backends are in
/// the [crate-level table](crate); handing an anonymous segment to another process is
/// shown on [`anonymous`](Self::anonymous), sharing across containers on
/// [`allow_foreign_pid_namespace`](Self::allow_foreign_pid_namespace).
///
/// ```
/// use shmkit_segment::{CreateError, OpenError, Segment, TypeTag};
///
/// const POINT: TypeTag = TypeTag::new(1, "myapp::Point", 8, 4);
/// let name = format!("shmkit-doc-opts-{}", std::process::id());
/// let opts = Segment::options().posix(&name).size(8).type_tag(POINT);
/// // Whoever comes first creates and initialises it; `init` runs before READY, and
/// // only in the creator.
/// // SAFETY: the fresh payload is ours alone until READY.
/// let a = opts.clone().open_or_create_with(|p, _| unsafe { p.write(1) })?;
/// let b = opts.clone().open_or_create_with(|_, _| unreachable!("only the creator runs init"))?;
/// assert!(a.is_creator() && !b.is_creator());
/// // SAFETY: in bounds; nobody writes it any more.
/// assert_eq!(unsafe { b.payload_ptr().read() }, 1);
/// assert!(matches!(opts.create(), Err(CreateError::AlreadyExists { .. })));
/// // Opening it as something else is an error, not garbage...
/// let wrong = Segment::options().posix(&name).type_tag(TypeTag::BYTES).open();
/// assert!(matches!(wrong, Err(OpenError::TypeMismatch { .. })));
/// // ...while a tool (`shmkit inspect`) opens any type and reads the header.
/// let h = Segment::options().posix(&name).any_type().open()?.header().expect("shmkit");
/// assert_eq!((h.type_tag, h.payload_size, h.creator_pid), (POINT, 8, std::process::id()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "options do nothing until .create(), .open() or .open_or_create()"]
pub struct SegmentOptions {
    target: Target,
    size: Option<usize>,
    mode: u32,
    type_tag: Option<TypeTag>,
    open_timeout: Duration,
    unlink_on_drop: Option<bool>,
    allow_foreign_pid_namespace: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            target: Target::None,
            size: None,
            mode: 0o600,
            type_tag: Some(TypeTag::BYTES),
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            unlink_on_drop: None,
            allow_foreign_pid_namespace: false,
        }
    }
}

/// What a finished create/open step hands to the common code.
struct Mapped {
    map: Mapping,
    ptr: *mut u8,
    len: usize,
    unlinker: Unlinker,
}

pub(crate) fn open_io_error(name: &str, op: &'static str, e: io::Error) -> OpenError {
    match e.raw_os_error() {
        // EIDRM: a System V segment removed between shmget and shmat.
        Some(libc::ENOENT) | Some(libc::EIDRM) => OpenError::NotFound {
            name: name.to_owned(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => OpenError::PermissionDenied {
            name: name.to_owned(),
            source: e,
        },
        Some(libc::ENAMETOOLONG) => OpenError::InvalidName {
            name: name.to_owned(),
            reason: "the name is too long for this system",
        },
        // `open(O_RDWR)` of a directory (a file-backed segment's path).
        Some(libc::EISDIR) => OpenError::NotRegularFile {
            name: name.to_owned(),
        },
        _ => OpenError::Io {
            op,
            name: name.to_owned(),
            source: e,
        },
    }
}

/// A `shm_open` error for the POSIX name `name`. rustix's `shm::open` (ours) reports a
/// directory planted under the name as `EISDIR`; glibc's `shm_open` turns it into a bare
/// `EINVAL` (the name was validated before, so that is the only `EINVAL` left), which
/// is told apart with `lstat`, for a rustix built on libc.
pub(crate) fn shm_open_error(name: &str, e: io::Error) -> OpenError {
    if e.raw_os_error() == Some(libc::EINVAL) {
        let path = std::path::Path::new(crate::list::POSIX_SHM_DIR).join(name);
        if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
            return OpenError::NotRegularFile {
                name: name.to_owned(),
            };
        }
    }
    open_io_error(name, "shm_open", e)
}

fn create_io_error(name: &str, op: &'static str, size: u64, e: io::Error) -> CreateError {
    match e.raw_os_error() {
        Some(libc::EEXIST) => CreateError::AlreadyExists {
            name: name.to_owned(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => CreateError::PermissionDenied {
            name: name.to_owned(),
            source: e,
        },
        Some(libc::ENOSPC) | Some(libc::ENOMEM) => CreateError::NoSpace {
            name: name.to_owned(),
            size,
            source: e,
        },
        Some(libc::ENAMETOOLONG) => CreateError::InvalidName {
            name: name.to_owned(),
            reason: "the name is too long for this system",
        },
        _ => CreateError::Io {
            op,
            name: name.to_owned(),
            source: e,
        },
    }
}

impl SegmentOptions {
    /// A POSIX named segment (`/dev/shm/<name>`); `name` without the leading `/`.
    pub fn posix(mut self, name: &str) -> Self {
        self.target = Target::Posix(name.to_owned());
        self
    }

    /// A System V segment with an explicit key (not 0, which is `IPC_PRIVATE`).
    pub fn sysv(mut self, key: i32) -> Self {
        self.target = Target::SysV(key);
        self
    }

    /// A System V segment whose key is `ftok(path, id)`.
    pub fn sysv_ftok(mut self, path: impl AsRef<Path>, id: u8) -> Self {
        self.target = Target::SysVFtok(path.as_ref().to_owned(), id);
        self
    }

    /// A file-backed segment at `path`, meant to persist across restarts: unlike the
    /// other backends, the creator does **not** remove the file on drop (opt in with
    /// `unlink_on_drop(true)`). A creation that fails half-way (including a panicking
    /// `init`) still removes the file it made.
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.target = Target::File(path.as_ref().to_owned());
        self
    }

    /// Anonymous shared memory (a memfd mapped `MAP_SHARED`): no name, shared with
    /// children forked after creation.
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::{Backend, Segment};
    ///
    /// let seg = Segment::options().anonymous().size(4096).create()?;
    /// assert_eq!((seg.backend(), seg.name()), (Backend::Anonymous, None));
    /// // Another handle on the same memory, from its memfd (as a process that received
    /// // the fd over a Unix socket would open it).
    /// let fd = seg.fd().expect("anonymous segments have a memfd").try_clone_to_owned()?;
    /// let other = Segment::options().fd(fd).open()?;
    /// // SAFETY: both pointers are in their live mappings; nobody else writes them.
    /// unsafe { seg.payload_ptr().write(42) };
    /// // SAFETY: as above.
    /// assert_eq!(unsafe { other.payload_ptr().read() }, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous(mut self) -> Self {
        self.target = Target::Anonymous;
        self
    }

    /// An anonymous segment received as a file descriptor (from [`Segment::fd`], passed
    /// over a Unix socket or inherited across `exec`): [`open`](Self::open) maps and
    /// validates it like a named segment. Creating from an fd is not supported.
    pub fn fd(mut self, fd: OwnedFd) -> Self {
        self.target = Target::Fd(Arc::new(fd));
        self
    }

    /// Payload size in bytes (the 128-byte header is added on top). Required to create;
    /// when opening, if set, the segment's payload size must equal it.
    pub fn size(mut self, payload_bytes: usize) -> Self {
        self.size = Some(payload_bytes);
        self
    }

    /// Permission bits for a new segment (default `0o600`), applied with `fchmod` so the
    /// umask does not change them (System V: given to `shmget`, which ignores the umask).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// The payload's type (default [`TypeTag::BYTES`]): stored on create, compared on
    /// open.
    pub fn type_tag(mut self, tag: TypeTag) -> Self {
        self.type_tag = Some(tag);
        self
    }

    /// Open whatever type the segment holds (for tools like `shmkit inspect`); create
    /// still stores [`TypeTag::BYTES`].
    pub fn any_type(mut self) -> Self {
        self.type_tag = None;
        self
    }

    /// How long `open` waits for the creator to publish READY (default 1 s).
    pub fn open_timeout(mut self, d: Duration) -> Self {
        self.open_timeout = d;
        self
    }

    /// Whether dropping the handle removes the name. Default: an opener never does; the
    /// creator does for POSIX and System V segments, but not for a file-backed one
    /// (files are meant to persist). Only ever in the process that made the handle.
    pub fn unlink_on_drop(mut self, yes: bool) -> Self {
        self.unlink_on_drop = Some(yes);
        self
    }

    /// Whether processes in different pid namespaces may share this segment (default
    /// `false`).
    ///
    /// Process ids mean nothing across pid namespaces (containers sharing `/dev/shm`,
    /// `--ipc=host`): a lock holder over there has no `/proc` entry here, or the entry of
    /// an unrelated process, so the dead-holder recovery of shmkit's locks, ring roles
    /// and queue slots would take what a live process holds. So by default `open`
    /// refuses a segment created in another pid namespace
    /// ([`OpenError::ForeignPidNamespace`]).
    ///
    /// With `true`, such an open succeeds and marks the segment "shared across pid
    /// namespaces" in its header ([`HeaderInfo::shared_pid_namespaces`](crate::HeaderInfo::shared_pid_namespaces));
    /// a creator that sets it marks the segment at creation. From then on, in *every*
    /// process, liveness checks on the shmkit objects in the segment (the mutex of a
    /// `SharedValue`/`SharedArray`, ring roles, queue slots) never declare an owner
    /// dead: a holder that dies is not recovered, waiters wait or time out. Locks you
    /// place in the payload yourself are only covered if you lock them inside
    /// `shmkit_sys::owner::with_pid_namespace_probe`. If either side's pid namespace
    /// is unknown (no `/proc`), nothing is checked or refused.
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::Segment;
    ///
    /// let name = format!("shmkit-doc-pidns-{}", std::process::id());
    /// // A creator that expects peers from another container says so up front.
    /// let seg = Segment::options()
    ///     .posix(&name)
    ///     .size(64)
    ///     .allow_foreign_pid_namespace(true)
    ///     .create()?;
    /// assert!(seg.shared_across_pid_namespaces());
    /// // The opener in the other container must opt in too (here: same namespace).
    /// let peer = Segment::options().posix(&name).allow_foreign_pid_namespace(true).open()?;
    /// assert!(peer.header().is_some_and(|h| h.shared_pid_namespaces));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_foreign_pid_namespace(mut self, yes: bool) -> Self {
        self.allow_foreign_pid_namespace = yes;
        self
    }

    /// Creates a new segment with a zeroed payload; fails if the name exists.
    ///
    /// # Errors
    /// See [`CreateError`]: bad name or size, name exists, no space, permission.
    pub fn create(self) -> Result<Segment, CreateError> {
        self.create_with(|_, _| {})
    }

    /// Like [`create`](Self::create), and runs `init(payload_ptr, payload_len)` on the
    /// zeroed payload before READY is published, so no opener sees it half-made. If
    /// `init` panics the segment is removed.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with(self, init: impl FnOnce(*mut u8, usize)) -> Result<Segment, CreateError> {
        let mut init = Some(init);
        self.create_inner(&mut init)
    }

    /// Opens an existing segment, waits for READY, and validates its header.
    ///
    /// # Errors
    /// See [`OpenError`]: not found, permission, timeout, creator died, not shmkit,
    /// version, too small, size or type mismatch.
    pub fn open(self) -> Result<Segment, OpenError> {
        self.open_inner()
    }

    /// Opens the segment, or creates it if it does not exist: of many processes racing,
    /// exactly one creates (see [`Segment::is_creator`]) and the others open it once
    /// READY.
    ///
    /// # Errors
    /// The error of the step that failed.
    pub fn open_or_create(self) -> Result<Segment, OpenOrCreateError> {
        self.open_or_create_with(|_, _| {})
    }

    /// [`open_or_create`](Self::open_or_create) whose creator runs `init` as
    /// [`create_with`](Self::create_with) does.
    ///
    /// # Errors
    /// The error of the step that failed.
    pub fn open_or_create_with(
        self,
        init: impl FnOnce(*mut u8, usize),
    ) -> Result<Segment, OpenOrCreateError> {
        let mut init = Some(init);
        match self.target {
            Target::Anonymous => return Ok(self.create_inner(&mut init)?),
            Target::Fd(_) => return Ok(self.open_inner()?),
            _ => {}
        }
        // A segment can vanish between our failed create and our open (its creator
        // dropped it); then try again, a bounded number of times.
        let mut last = None;
        for _ in 0..16 {
            match self.create_inner(&mut init) {
                Ok(seg) => return Ok(seg),
                Err(CreateError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            match self.open_inner() {
                Ok(seg) => return Ok(seg),
                Err(e @ OpenError::NotFound { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.expect("loop ran").into())
    }

    fn display_name(&self) -> String {
        match &self.target {
            Target::None => String::new(),
            Target::Posix(n) => n.clone(),
            Target::SysV(k) => format!("{k:#010x}"),
            Target::SysVFtok(p, id) => format!("ftok({}, {id})", p.display()),
            Target::File(p) => p.display().to_string(),
            Target::Anonymous => "<anonymous>".to_owned(),
            Target::Fd(fd) => format!("<fd {}>", fd.as_raw_fd()),
        }
    }

    fn resolve_key(&self) -> Result<i32, (String, io::Error)> {
        match &self.target {
            Target::SysV(k) => Ok(*k),
            Target::SysVFtok(p, id) => {
                let c = name::check_path(p).map_err(|r| {
                    (
                        p.display().to_string(),
                        io::Error::new(io::ErrorKind::InvalidInput, r),
                    )
                })?;
                sys::ftok(&c, *id).map_err(|e| (self.display_name(), e))
            }
            _ => unreachable!("resolve_key on a non-SysV target"),
        }
    }

    fn create_inner<F: FnOnce(*mut u8, usize)>(
        &self,
        init: &mut Option<F>,
    ) -> Result<Segment, CreateError> {
        let invalid = |name: String, reason| CreateError::InvalidName { name, reason };
        // Validate everything before any system call.
        match &self.target {
            Target::None => return Err(CreateError::NoBackend),
            Target::Fd(_) => {
                return Err(invalid(
                    self.display_name(),
                    "a received fd can only be opened: create with .anonymous() and share its fd()",
                ))
            }
            Target::Posix(n) => name::check_posix(n).map_err(|r| invalid(n.clone(), r))?,
            Target::SysV(0) => {
                return Err(invalid(
                    "0x00000000".into(),
                    "key 0 is IPC_PRIVATE, not a shared key",
                ))
            }
            Target::File(p) | Target::SysVFtok(p, _) => {
                name::check_path(p).map_err(|r| invalid(p.display().to_string(), r))?;
            }
            _ => {}
        }
        let payload = match self.size {
            None | Some(0) => return Err(CreateError::ZeroSize),
            Some(n) => n,
        };
        let backend = self.backend();
        let total = payload
            .checked_add(HEADER_LEN)
            .filter(|t| *t <= isize::MAX as usize && (*t as u64) <= i64::MAX as u64)
            .ok_or_else(|| CreateError::TooLarge {
                requested: payload as u64,
                backend: backend.as_str(),
                reason: "header + payload exceeds the address space".to_owned(),
                source: None,
            })?;
        let ctx = CreateCtx {
            name: self.display_name(),
            payload,
            total,
            backend,
        };
        let (mapped, kept_fd) = match &self.target {
            Target::Posix(n) => (self.create_posix(n, &ctx)?, None),
            Target::File(p) => (self.create_file(p, &ctx)?, None),
            Target::Anonymous => {
                let (mapped, memfd) = create_anonymous(&ctx)?;
                // Kept so the segment can be passed on (`Segment::fd`).
                (mapped, Some(memfd))
            }
            Target::SysV(_) | Target::SysVFtok(..) => (self.create_sysv(&ctx)?, None),
            Target::None | Target::Fd(_) => unreachable!("checked above"),
        };
        let pid = sys::getpid();
        let mut seg = Segment {
            _map: mapped.map,
            ptr: mapped.ptr,
            len: mapped.len,
            payload_offset: HEADER_LEN,
            payload_len: payload,
            backend,
            name: self.public_name(),
            creator: true,
            raw: false,
            // Until READY, a failure (a panicking init) removes the half-made segment.
            unlink_on_drop: true,
            owner_pid: pid,
            unlinker: mapped.unlinker,
            fd: kept_fd,
        };
        let h = seg.header_ref().expect("a created segment has a header");
        let tag = self.type_tag.unwrap_or(TypeTag::BYTES);
        // SAFETY: the mapping is fresh and zeroed; no other process reads or writes a
        // segment's header before its creator pid is published.
        unsafe {
            h.write_creating(
                total as u64,
                payload as u64,
                &tag,
                pid,
                sys::pid_namespace(),
            )
        };
        if let Some(f) = init.take() {
            // If `init` panics, tell openers that already mapped the segment (they would
            // otherwise wait out their timeout); `seg`'s drop then removes the name.
            let failed = MarkFailedOnUnwind(h);
            f(seg.payload_ptr(), payload);
            std::mem::forget(failed);
        }
        // A creator that allows peers from other pid namespaces flags the segment in
        // the same store, so no opener ever sees it unflagged.
        let ready = if self.allow_foreign_pid_namespace {
            STATE_READY | STATE_SHARED_PID_NAMESPACES
        } else {
            STATE_READY
        };
        // Release: pairs with the Acquire in `wait_ready`; publishes the payload written
        // by `init`.
        h.state().store(ready, Ordering::Release);
        // The creator owns the name, except for files, which are meant to outlive it.
        let default = backend != Backend::File;
        seg.set_unlink_on_drop(self.unlink_on_drop.unwrap_or(default));
        Ok(seg)
    }

    /// What every named fd-backed create does once the object exists: the exact mode
    /// (`fchmod`, so the umask cannot change it), the pages reserved (`fallocate`), the
    /// mapping. On any failure `undo` removes the half-made object.
    fn mode_size_map(
        &self,
        file: &File,
        ctx: &CreateCtx,
        undo: Undo,
    ) -> Result<Mapped, CreateError> {
        let guard = RemoveOnError(Some(undo));
        sys::fchmod(file, self.mode).map_err(|e| ctx.err("fchmod", e))?;
        sys::allocate(file, ctx.total as u64).map_err(|e| ctx.size_err(e))?;
        let map = map_fd(file, ctx.total).map_err(|e| ctx.err("mmap", e))?;
        guard.defuse();
        Ok(map)
    }

    /// POSIX: `shm_open(O_CREAT|O_EXCL)`, `fchmod`, `fallocate`, map.
    fn create_posix(&self, n: &str, ctx: &CreateCtx) -> Result<Mapped, CreateError> {
        // /dev/shm is memory: refuse what cannot fit before making anything.
        sys::check_memory(ctx.total as u64).map_err(|e| ctx.err("fallocate", e))?;
        let cname = name::posix_cstring(n);
        let file = sys::shm_open(
            &cname,
            sys::OFlags::RDWR | sys::OFlags::CREATE | sys::OFlags::EXCL,
            self.mode,
        )
        .map_err(|e| ctx.err("shm_open", e))?;
        let map = self.mode_size_map(&file, ctx, Undo::Posix(cname.clone()))?;
        Ok(map.with_unlinker(Unlinker::Posix(cname, sys::file_id(&file))))
    }

    /// File: `open(O_CREAT|O_EXCL)`, `fchmod`, `fallocate`, map.
    fn create_file(&self, p: &Path, ctx: &CreateCtx) -> Result<Mapped, CreateError> {
        let cpath = name::check_path(p).expect("checked by create_inner");
        let file = sys::open(
            &cpath,
            sys::OFlags::RDWR | sys::OFlags::CREATE | sys::OFlags::EXCL,
            self.mode,
        )
        .map_err(|e| ctx.err("open", e))?;
        let map = self.mode_size_map(&file, ctx, Undo::File(p.to_owned()))?;
        Ok(map.with_unlinker(Unlinker::File(p.to_owned(), sys::file_id(&file))))
    }

    /// System V: `shmget(IPC_CREAT|IPC_EXCL, mode)`, `shmat`.
    fn create_sysv(&self, ctx: &CreateCtx) -> Result<Mapped, CreateError> {
        let key = self
            .resolve_key()
            .map_err(|(name, source)| CreateError::Io {
                op: "ftok",
                name,
                source,
            })?;
        if key == libc::IPC_PRIVATE {
            return Err(CreateError::InvalidName {
                name: ctx.name.clone(),
                reason: "key 0 is IPC_PRIVATE, not a shared key",
            });
        }
        // System V memory is allocated on first touch: refuse what cannot fit.
        sys::check_memory(ctx.total as u64).map_err(|e| ctx.err("shmget", e))?;
        // The mode goes in shmflg; System V ignores the umask.
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (self.mode & 0o777) as libc::c_int;
        let id = sys::sysv_get(key, ctx.total, flags).map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => ctx.too_large("over the System V limit (kernel.shmmax)", e),
            _ => ctx.err("shmget", e),
        })?;
        let guard = RemoveOnError(Some(Undo::SysV(id)));
        let attach = sys::SysvAttach::new(id, ctx.total, false).map_err(|e| ctx.err("shmat", e))?;
        guard.defuse();
        let ptr = attach.ptr();
        Ok(Mapped {
            map: Mapping::SysV { _attach: attach },
            ptr,
            len: ctx.total,
            unlinker: Unlinker::SysV(id),
        })
    }

    fn backend(&self) -> Backend {
        match self.target {
            Target::Posix(_) | Target::None => Backend::Posix,
            Target::SysV(_) | Target::SysVFtok(..) => Backend::SysV,
            Target::File(_) => Backend::File,
            Target::Anonymous | Target::Fd(_) => Backend::Anonymous,
        }
    }

    fn public_name(&self) -> Option<String> {
        match &self.target {
            Target::Anonymous | Target::Fd(_) | Target::None => None,
            Target::SysVFtok(..) => self.resolve_key().ok().map(|k| format!("{k:#010x}")),
            _ => Some(self.display_name()),
        }
    }

    fn open_inner(&self) -> Result<Segment, OpenError> {
        let invalid = |name: String, reason| OpenError::InvalidName { name, reason };
        match &self.target {
            Target::None => return Err(OpenError::NoBackend),
            Target::Anonymous => return Err(OpenError::Anonymous),
            Target::Posix(n) => name::check_posix(n).map_err(|r| invalid(n.clone(), r))?,
            Target::SysV(0) => {
                return Err(invalid(
                    "0x00000000".into(),
                    "key 0 is IPC_PRIVATE, not a shared key",
                ))
            }
            Target::File(p) | Target::SysVFtok(p, _) => {
                name::check_path(p).map_err(|r| invalid(p.display().to_string(), r))?;
            }
            Target::SysV(_) | Target::Fd(_) => {}
        }
        let name = self.display_name();
        let start = Instant::now();
        let deadline = start.checked_add(self.open_timeout);
        let mut kept_fd = None;
        let mapped = match &self.target {
            Target::Posix(n) => {
                let cname = name::posix_cstring(n);
                let file = sys::shm_open(&cname, sys::OFlags::RDWR, 0)
                    .map_err(|e| shm_open_error(&name, e))?;
                let len = wait_for_size(&file, &name, start, deadline)?;
                map_fd(&file, len)
                    .map_err(|e| open_io_error(&name, "mmap", e))?
                    .with_unlinker(Unlinker::Posix(cname, sys::file_id(&file)))
            }
            Target::File(p) => {
                let cpath = name::check_path(p).expect("checked above");
                let file = sys::open(&cpath, sys::OFlags::RDWR, 0)
                    .map_err(|e| open_io_error(&name, "open", e))?;
                let len = wait_for_size(&file, &name, start, deadline)?;
                map_fd(&file, len)
                    .map_err(|e| open_io_error(&name, "mmap", e))?
                    .with_unlinker(Unlinker::File(p.clone(), sys::file_id(&file)))
            }
            Target::SysV(_) | Target::SysVFtok(..) => {
                let key = self
                    .resolve_key()
                    .map_err(|(name, e)| open_io_error(&name, "ftok", e))?;
                // Ask for read-write permission up front (0o600 in shmflg).
                let id =
                    sys::sysv_get(key, 0, 0o600).map_err(|e| open_io_error(&name, "shmget", e))?;
                let len = sys::sysv_size(id).map_err(|e| open_io_error(&name, "shmctl", e))?;
                if len < HEADER_LEN {
                    return Err(OpenError::TooSmall {
                        name,
                        len: len as u64,
                        needed: HEADER_LEN as u64,
                    });
                }
                let attach = sys::SysvAttach::new(id, len, false)
                    .map_err(|e| open_io_error(&name, "shmat", e))?;
                Mapped {
                    ptr: attach.ptr(),
                    map: Mapping::SysV { _attach: attach },
                    len,
                    unlinker: Unlinker::SysV(id),
                }
            }
            Target::Fd(fd) => {
                let file = File::from(fd.try_clone().map_err(|e| open_io_error(&name, "dup", e))?);
                let len = wait_for_size(&file, &name, start, deadline)?;
                let mapped = map_fd(&file, len).map_err(|e| open_io_error(&name, "mmap", e))?;
                kept_fd = Some(file);
                mapped
            }
            Target::None | Target::Anonymous => unreachable!("rejected above"),
        };
        let seg = Segment {
            _map: mapped.map,
            ptr: mapped.ptr,
            len: mapped.len,
            payload_offset: HEADER_LEN,
            payload_len: 0,
            backend: self.backend(),
            name: self.public_name(),
            creator: false,
            raw: false,
            unlink_on_drop: false,
            owner_pid: sys::getpid(),
            unlinker: mapped.unlinker,
            fd: kept_fd,
        };
        let expect = Expect {
            payload_size: self.size.map(|n| n as u64),
            type_tag: self.type_tag,
            pid_namespace: sys::pid_namespace(),
            allow_foreign_pid_namespace: self.allow_foreign_pid_namespace,
        };
        // The size waits above ensure `seg.len >= HEADER_LEN`.
        let h = seg.header_ref().expect("an opened mapping holds a header");
        let info = open_header(h, seg.len as u64, &expect, &name, start, deadline)?;
        if expect.is_foreign(info.creator_pidns) {
            // Allowed (validate refuses otherwise): tell every process, before we use
            // any object in the segment, that its process ids cannot be checked.
            h.mark_shared_pid_namespaces();
        }
        let mut seg = seg;
        // Fits: validate checked 128 + payload_size <= seg.len, a usize.
        seg.payload_len = info.payload_size as usize;
        seg.set_unlink_on_drop(self.unlink_on_drop.unwrap_or(false));
        Ok(seg)
    }
}

/// What the per-backend create steps share: names and sizes for errors.
struct CreateCtx {
    name: String,
    payload: usize,
    total: usize,
    backend: Backend,
}

impl CreateCtx {
    fn err(&self, op: &'static str, e: io::Error) -> CreateError {
        create_io_error(&self.name, op, self.total as u64, e)
    }

    fn too_large(&self, reason: &str, e: io::Error) -> CreateError {
        CreateError::TooLarge {
            requested: self.payload as u64,
            backend: self.backend.as_str(),
            reason: reason.to_owned(),
            source: Some(e),
        }
    }

    /// Errors of `fallocate`: a size the file system refuses is `TooLarge`.
    fn size_err(&self, e: io::Error) -> CreateError {
        match e.raw_os_error() {
            Some(libc::EFBIG) | Some(libc::EINVAL) => {
                self.too_large("the file system refused the size", e)
            }
            _ => self.err("fallocate", e),
        }
    }
}

/// Anonymous: a memfd (memory checked first: memfds have no size limit of their own),
/// `fallocate`, map. Returns the memfd too.
fn create_anonymous(ctx: &CreateCtx) -> Result<(Mapped, File), CreateError> {
    sys::check_memory(ctx.total as u64).map_err(|e| ctx.err("fallocate", e))?;
    let file = sys::memfd().map_err(|e| ctx.err("memfd_create", e))?;
    sys::allocate(&file, ctx.total as u64).map_err(|e| ctx.size_err(e))?;
    let mapped = map_fd(&file, ctx.total).map_err(|e| ctx.err("mmap", e))?;
    Ok((mapped, file))
}

impl Mapped {
    fn with_unlinker(mut self, u: Unlinker) -> Mapped {
        self.unlinker = u;
        self
    }
}

/// Stores `STATE_FAILED` in the header when dropped (only reached by unwinding out of
/// the creator's `init`; the normal path forgets it).
struct MarkFailedOnUnwind<'a>(HeaderRef<'a>);

impl Drop for MarkFailedOnUnwind<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `wait_ready`, like READY.
        self.0.state().store(STATE_FAILED, Ordering::Release);
    }
}

/// What to remove if creation fails half-way.
enum Undo {
    Posix(CString),
    File(PathBuf),
    SysV(libc::c_int),
}

/// Removes a half-created object when dropped, unless defused.
struct RemoveOnError(Option<Undo>);

impl RemoveOnError {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        match &self.0 {
            Some(Undo::Posix(c)) => {
                let _ = sys::shm_unlink(c);
            }
            Some(Undo::File(p)) => {
                let _ = std::fs::remove_file(p);
            }
            Some(Undo::SysV(id)) => {
                let _ = sys::sysv_remove(*id);
            }
            None => {}
        }
    }
}

fn map_fd(file: &File, len: usize) -> io::Result<Mapped> {
    let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
    let ptr = map.as_mut_ptr();
    Ok(Mapped {
        map: Mapping::Mmap { _map: map },
        ptr,
        len,
        unlinker: Unlinker::None,
    })
}
