//! Errors, one enum per operation family. Each keeps the OS error as its `#[source]`
//! and says what to do next.

use std::io;
use std::time::Duration;

/// Why a segment could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// No backend was chosen on the options.
    #[error("no backend chosen: call .posix(name), .sysv(key), .sysv_ftok(path, id), .file(path) or .anonymous() before .create()")]
    NoBackend,
    /// The name (or key, or path) is not acceptable; nothing was created.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The requested payload size is zero.
    #[error("segment size must be at least 1 byte: set .size(n) with n > 0")]
    ZeroSize,
    /// The requested size is more than this backend can hold.
    #[error("segment size {requested} bytes is too large for the {backend} backend: {reason}")]
    TooLarge {
        /// Payload bytes asked for.
        requested: u64,
        /// Backend name.
        backend: &'static str,
        /// Which limit was hit.
        reason: String,
        /// The OS error, if the kernel refused.
        #[source]
        source: Option<io::Error>,
    },
    /// A segment with this name already exists.
    #[error("segment '{name}' already exists: open it, or remove it with `shmkit rm {name}`")]
    AlreadyExists {
        /// The name, key or path.
        name: String,
    },
    /// There is no room for the segment (e.g. `/dev/shm` is full): reported at creation,
    /// never as a SIGBUS later.
    #[error("no space for segment '{name}' of {size} bytes (is /dev/shm full? `df -h /dev/shm`; remove stale segments with `shmkit ls` / `shmkit rm`)")]
    NoSpace {
        /// The name, key or path.
        name: String,
        /// Total bytes (header + payload) asked for.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The OS refused for lack of permission.
    #[error("permission denied creating segment '{name}': check the directory's permissions or run as a user allowed to create it")]
    PermissionDenied {
        /// The name, key or path.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another system call failed.
    #[error("creating segment '{name}' failed in {op}: {source}")]
    Io {
        /// The failing operation (e.g. `"mmap"`).
        op: &'static str,
        /// The name, key or path.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why a segment could not be opened.
///
/// # Examples
/// ```
/// use shmkit_segment::{OpenError, Segment};
///
/// let name = format!("shmkit-doc-err-{}", std::process::id());
/// match Segment::options().posix(&name).open() {
///     Ok(_) => unreachable!("nobody created it"),
///     // Not there (yet): create it, or wait for its creator.
///     Err(OpenError::NotFound { name: missing }) => assert_eq!(missing, name),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No backend was chosen on the options.
    #[error("no backend chosen: call .posix(name), .sysv(key), .sysv_ftok(path, id) or .file(path) before .open()")]
    NoBackend,
    /// Anonymous segments have no name to open them by.
    #[error(
        "an anonymous segment cannot be opened by name: share it with child processes through fork"
    )]
    Anonymous,
    /// The name (or key, or path) is not acceptable; no system call was made.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No segment has this name.
    #[error("segment '{name}' does not exist: create it first, or check the name (`shmkit ls`)")]
    NotFound {
        /// The name, key or path.
        name: String,
    },
    /// Something other than a regular file (a directory, FIFO, socket or device) has
    /// this name: it is no shared memory segment, whoever planted it.
    #[error("'{name}' is not a regular file (a directory, FIFO or device under this name?), so it is not a segment: pick another name, or remove the stray object by hand")]
    NotRegularFile {
        /// The name or path.
        name: String,
    },
    /// The segment's mode forbids read-write access for this user.
    #[error("permission denied opening segment '{name}' read-write: its mode or owner forbids it for this user (create it with a wider .mode(), or run as its owner)")]
    PermissionDenied {
        /// The name, key or path.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The creator did not publish READY within the open timeout.
    #[error("segment '{name}' was not ready after {waited:?}: its creator may still be initialising it (raise .open_timeout()) or died before writing the header (remove it with `shmkit rm {name}`)")]
    Timeout {
        /// The name, key or path.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The process that was creating the segment died before publishing READY.
    #[error("the creator of this segment (pid {pid}) died before it finished initialising it: remove the segment (`shmkit rm`) and create it again")]
    CreatorDied {
        /// The dead creator's pid, from the header.
        pid: u32,
    },
    /// The creator's `init` closure panicked; the creator removed the segment.
    #[error("the creator of this segment (pid {pid}) failed while initialising it and removed it: create it again")]
    InitFailed {
        /// The creator's pid, from the header.
        pid: u32,
    },
    /// The segment does not start with shmkit's magic: it was not made by shmkit.
    #[error("segment '{name}' is not a shmkit segment (magic {found:#018x}): attach it with Segment::open_raw, or pick another name")]
    NotShmkit {
        /// The name, key or path.
        name: String,
        /// The first 8 bytes, little-endian.
        found: u64,
    },
    /// The header's layout version is not the one this build understands.
    #[error("segment layout version {found} is not supported (this build reads version {supported}): open it with a matching shmkit version")]
    Version {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The mapping is smaller than the header says (or than a header).
    #[error("segment '{name}' is {len} bytes but needs {needed}: it was truncated or is corrupt; remove and recreate it")]
    TooSmall {
        /// The name, key or path.
        name: String,
        /// Actual size of the object.
        len: u64,
        /// Size the header (or a bare header) requires.
        needed: u64,
    },
    /// The header's fields are inconsistent.
    #[error("segment '{name}' has a corrupt header: {reason}; remove and recreate it")]
    Corrupt {
        /// The name, key or path.
        name: String,
        /// Which field is wrong.
        reason: &'static str,
    },
    /// `.size(n)` was given and the segment's payload size differs.
    #[error("segment '{name}' holds {found} payload bytes, but {expected} were asked for: open without .size() or with the right size")]
    SizeMismatch {
        /// The name, key or path.
        name: String,
        /// Payload size asked for.
        expected: u64,
        /// Payload size in the header.
        found: u64,
    },
    /// The segment holds another type than the one asked for.
    #[error("segment holds type {found}, but {expected} was asked for: open it with the type it was created with")]
    TypeMismatch {
        /// The type tag asked for.
        expected: String,
        /// The type tag in the header.
        found: String,
    },
    /// The segment was created in another pid namespace than this process's (a
    /// container sharing `/dev/shm` or IPC with the host or another container). Process
    /// ids do not cross pid namespaces, so the liveness checks that recover a lock or a
    /// ring role from a dead holder could take it from a live one: refused by default.
    #[error("segment '{name}' was created in pid namespace {creator}, but this process runs in pid namespace {ours}: process ids do not cross pid namespaces, so a live lock holder over there would look dead from here. Run both sides in one pid namespace (e.g. docker --pid=host or --pid=container:NAME), or open with .allow_foreign_pid_namespace(true) to accept that a holder that dies is then never recovered (waiters wait or time out)")]
    ForeignPidNamespace {
        /// The name, key or path.
        name: String,
        /// Inode of the creator's pid namespace (from the header).
        creator: u64,
        /// Inode of this process's pid namespace (`/proc/self/ns/pid`).
        ours: u64,
    },
    /// Another system call failed.
    #[error("opening segment '{name}' failed in {op}: {source}")]
    Io {
        /// The failing operation (e.g. `"mmap"`).
        op: &'static str,
        /// The name, key or path.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why `open_or_create` failed: the error of the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenOrCreateError {
    /// Creating failed (for a reason other than "already exists").
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The segment existed and opening it failed.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Why a segment could not be removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// The name is not acceptable; no system call was made.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No segment has this name.
    #[error("segment '{name}' does not exist (already removed?); see `shmkit ls`")]
    NotFound {
        /// The name or key.
        name: String,
    },
    /// Something other than a regular file (e.g. a directory) has this name; nothing
    /// was removed.
    #[error("'{name}' is not a regular file (a directory under this name?), so it is not a segment; nothing was removed")]
    NotRegularFile {
        /// The name.
        name: String,
    },
    /// Not allowed to remove it.
    #[error("permission denied removing segment '{name}': run as its owner or as root")]
    PermissionDenied {
        /// The name or key.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another system call failed.
    #[error("removing segment '{name}' failed: {source}")]
    Io {
        /// The name or key.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why segments could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Reading a directory or `/proc` file failed.
    #[error("listing segments failed reading {path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
