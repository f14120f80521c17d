//! # shmkit-segment
//!
//! Shared memory created and opened safely: POSIX named, System V, file-backed and
//! anonymous (fork-shared) segments behind one [`Segment`] type.
//!
//! Every segment shmkit creates starts with a 128-byte [`header`] (magic, layout
//! version, sizes, a [`TypeTag`], the creator's pid and an init state); the payload
//! follows at byte 128. The creator zeroes and initialises the payload and then
//! publishes READY; openers wait for READY (bounded by `open_timeout`), then validate
//! everything and fail with a typed error on any mismatch. Foreign segments without a
//! header (Python's `SharedMemory`) attach with [`Segment::open_raw`]. The byte layout
//! for Python and C readers is in `docs/layout.md`.
//!
//! | backend | options | name | created with |
//! |---|---|---|---|
//! | [`Backend::Posix`] | `.posix("name")` | `/dev/shm/name` | `shm_open(O_CREAT\|O_EXCL)`, `fchmod`, `fallocate` |
//! | [`Backend::SysV`] | `.sysv(key)`, `.sysv_ftok(path, id)` | key (`0x%08x`) | `shmget(IPC_CREAT\|IPC_EXCL)` |
//! | [`Backend::File`] | `.file(path)` | the path | `open(O_CREAT\|O_EXCL)`, `fchmod`, `fallocate` |
//! | [`Backend::Anonymous`] | `.anonymous()`; `.fd(fd)` to open | none | `memfd_create`, `fallocate`; shared with `fork` children, or pass [`Segment::fd`] |
//!
//! Ownership: for POSIX and System V segments the creator removes the name when its
//! handle drops (unless [`Segment::persist`] or `unlink_on_drop(false)`); a file-backed
//! segment is meant to persist across restarts, so its creator keeps the file unless
//! it opts in with `unlink_on_drop(true)`. An opener never removes the name (unless
//! `unlink_on_drop(true)`). Removal happens only in the process that made the handle,
//! so a forked child never removes its parent's segment, and only if the name still
//! names the object this handle made.
//!
//! Sizes are reserved at creation: a full `/dev/shm`, or a memory-backed request larger
//! than the memory available, is a [`CreateError::NoSpace`], not a SIGBUS or the OOM
//! killer later. (System V memory is still allocated on first touch; only the size is
//! checked against available memory.)
//!
//! ```
//! use shmkit_segment::Segment;
//! let name = format!("shmkit-doc-lib-{}", std::process::id());
//! let seg = Segment::options()
//!     .posix(&name)
//!     .size(64)
//!     .create_with(|p, len| {
//!         // SAFETY: `p..p+len` is the fresh payload, ours alone until READY.
//!         unsafe { std::ptr::copy_nonoverlapping(b"hello".as_ptr(), p, 5.min(len)) }
//!     })?;
//! let reader = Segment::options().posix(&name).size(64).open()?;
//! // SAFETY: nobody writes the segment while we read it.
//! let bytes = unsafe { std::slice::from_raw_parts(reader.payload_ptr(), 5) };
//! assert_eq!(bytes, b"hello");
//! drop(seg); // the creator removes the name
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod header;
mod list;
mod name;
mod options;
mod segment;
mod sys;
mod validate;
mod wait;

pub use error::{CreateError, ListError, OpenError, OpenOrCreateError, RemoveError};
pub use header::{HeaderInfo, TypeTag, HEADER_LEN, LAYOUT_VERSION, MAGIC};
pub use list::{
    info, info_file, info_sysv, list, list_dir, remove, remove_sysv, SegmentInfo, SegmentState,
    POSIX_SHM_DIR,
};
pub use name::MAX_NAME_LEN;
pub use options::{SegmentOptions, DEFAULT_OPEN_TIMEOUT};
pub use segment::{Backend, Segment};
