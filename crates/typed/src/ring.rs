//! [`Ring`]: a single-producer single-consumer ring of variable-length byte messages
//! in shared memory.
//!
//! # Protocol
//! The ring is a power-of-two byte buffer with two free-running `u32` positions:
//! `tail` (bytes ever written, advanced only by the writer) and `head` (bytes ever
//! consumed, advanced only by the reader); `tail - head` (wrapping) never exceeds the
//! capacity. Each message is a record: an 8-byte header followed by the payload, padded
//! to a multiple of 8 bytes. A record never wraps around the end of the buffer: when it
//! does not fit before the end, the writer stores a *wrap marker* and continues at
//! offset 0, so both sides see every payload as one contiguous slice (zero-copy
//! [`Ring::write_with`] / [`Ring::read_with`]).
//!
//! The header is one `u64`: the length, and a *stamp* made of the record's position
//! and length. The writer fills the record, then stores its header with Release: that
//! commits it. The reader waits on the header at `head` itself (Acquire), not on
//! `tail`: the record's own cache line tells it the record is there, so a message costs
//! the reader one line transfer, not two. Stale bytes are never mistaken for a header:
//! before committing a record the writer clears the header slot that follows it, so the
//! reader always finds `0` ("not yet") or the next commit there; any other value is
//! corruption ([`ReadError::Corrupt`]), as is a length that does not match its stamp.
//! A writer that dies in the middle of a record never exposes it: its header was never
//! stored.
//!
//! `tail` is still stored (Release) after each message, or once per batch: sleepers
//! are woken there, and a new writer starts from it, walking forward over records its
//! predecessor committed but had not published yet (a reader may have read them). The
//! reader stores `head` with Release after it has finished with a record; the writer
//! loads it with Acquire before reusing that space. The largest message is the capacity
//! minus 16 bytes (its header, and the next record's, cleared before each commit).
//!
//! # Batches
//! Each published message costs the writer a `tail` store and a wake check (a SeqCst
//! fence), and the reader a `head` store and a fence: for small messages that is most
//! of the cost. [`Ring::write_batch`] writes records and publishes many with one `tail`
//! store and one wake check (at a limit, on [`WriteBatch::flush`], on drop, and before
//! any wait for space, so a batch never wedges a full ring); [`Ring::read_batch`] reads
//! what is there and frees it with one `head` store. A batch's first record is written
//! with its header held (a length without a stamp, which readers take for "not yet")
//! and the later ones committed behind it; the reader, which reads in order, stops at
//! the held one until the batch publishes, so it does not chase the writer through the
//! lines it is still writing. A writer killed with records
//! pending loses those; a reader killed inside `read_batch` leaves that batch to be
//! read again by the next reader.
//!
//! # Waiting
//! A side that cannot proceed spins briefly, yields a few times, then sleeps on a
//! futex: the floor's [`Parker`] (`data` for the reader, `space` for the writer:
//! a sleepers count and an event word). The peer reads the count after each publish
//! (behind a SeqCst fence, the Dekker pattern) and makes the `FUTEX_WAKE` syscall only
//! when it is non-zero: while both sides are awake no syscall is made. Sleeps are cut into slices, from
//! [`SLEEP_SLICE`] (10 ms) doubling up to 80 ms; after each slice the sleeper checks that its peer is still alive
//! (pid + process start time recorded in the header), so a reader learns that its
//! writer was killed ([`ReadError::PeerDied`], after every complete message has been
//! read) and a writer that its reader was killed ([`WriteError::PeerDied`]).
//!
//! # Roles and peers that leave
//! The first write through a handle claims the writer role, the first read the
//! reader role (one handle may hold both). Each role is a peer slot (`crates/typed/src/peer.rs`) that
//! tells apart *never attached*, *attached*, *left cleanly* and *died*. A role held by
//! a live process cannot be taken ([`WriteError::RoleTaken`] /
//! [`ReadError::RoleTaken`]); a role whose holder died is taken over, so a restarted
//! writer or reader can continue. The holder is named by pid *and* start time, so a
//! new process that reuses a dead holder's pid (pid 1 in a restarted container) takes
//! the role over instead of being refused.
//!
//! Dropping the handle that holds the writer role closes the ring (the reader drains
//! it, then gets [`ReadError::Closed`]). Dropping the reader releases the reader role
//! as *left*, recording how many messages the ring's readers read, and wakes a writer
//! that sleeps on a full ring. A writer that would have to wait for space then gets
//! [`WriteError::ReaderLeft`] (or [`WriteError::PeerDied`] for a reader that was
//! killed) instead of waiting for ever; while the reader has never attached, it
//! waits. A new reader may attach at any time: it clears the *left* state, continues
//! where the last one stopped, and the writer continues. [`Ring::wait_consumed`] lets
//! a writer wait, before it exits, until its messages were read (or learn that the
//! reader left first).
//!
//! # Example
//! ```
//! use shmkit_typed::{ReadError, Ring};
//!
//! // Anonymous memory: shared with children forked after this line. Named rings are
//! // `Ring::create(name, capacity)` / `Ring::open(name)`.
//! let mut ring = Ring::anonymous(1 << 20)?;
//! ring.write(b"hello")?;
//! ring.write_with(3, |buf| buf.copy_from_slice(b"abc"))?; // zero-copy
//! ring.close()?;
//! let mut buf = Vec::new();
//! assert_eq!(ring.read_into(&mut buf)?, 5);
//! assert_eq!(ring.read_with(|msg| msg.to_vec())?, b"abc");
//! assert!(matches!(ring.read_into(&mut buf), Err(ReadError::Closed)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! See `docs/layout.md`: a 512-byte header of four 128-byte lines (metadata with the
//! two role slots, tail, head, sleep flags), then the data buffer. Version 4 (this
//! one) wakes each sleeper once however many records are committed before it runs
//! ([`Parker::wake_all_once`]: its sleepers must arm, which version 3 peers do not);
//! version 3 committed each record by its own stamped header; version 2 had a length word
//! and readers that waited for `tail`; version 1 had 8-byte role words instead of the
//! 16-byte peer slots (`crates/typed/src/peer.rs`) at 16 (writer) and 32 (reader).

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::peer::{in_segment, HolderWatch, PeerSlot, PeerWait, PeerWaitOn};

use crate::shim::Ordering;
use crate::shim::{AtomicU32, AtomicU64};
use crate::wait::Wait;
use shmkit_sys::owner;
use shmkit_sys::parker::Parker;

#[cfg(not(loom))]
#[path = "ring_async.rs"]
mod async_impl;
#[cfg(not(loom))]
pub use async_impl::{ReadAsync, WriteAsync};

/// Magic number at offset 0 of a ring ("SRNG" little-endian).
pub const RING_MAGIC: u32 = u32::from_le_bytes(*b"SRNG");
/// Layout version of the ring header.
pub const RING_VERSION: u32 = 4;
/// Bytes of the ring header before the data buffer.
pub const RING_HEADER_SIZE: usize = 512;
/// Default data capacity: 4 MiB (a ring that fits in L2 is ~3x slower for large
/// messages on the reference machine).
pub const DEFAULT_RING_CAPACITY: usize = 4 << 20;
/// Smallest capacity accepted.
pub const MIN_RING_CAPACITY: usize = 64;
/// Largest capacity accepted (positions are `u32` and wrap).
pub const MAX_RING_CAPACITY: usize = 1 << 30;
/// How long a sleeping side first sleeps before it checks that its peer is alive;
/// later slices double up to [`CHECK_CAP`](shmkit_sys::parker::CHECK_CAP) (80 ms),
/// and a live peer is then checked with one `poll` of its pidfd.
pub const SLEEP_SLICE: Duration = shmkit_sys::parker::FIRST_CHECK;

/// Length of a wrap marker.
const WRAP: u32 = u32::MAX;
/// Bytes of a record header (one `u64`: the length, and the stamp that commits it).
const REC_HDR: u32 = 8;

/// The stamp that commits a record of `len` bytes at byte position `pos`: the position
/// (8-aligned, so `| 1` makes the stamp non-zero) mixed with a hash of the length, so a
/// header is only taken for committed if both its position and its length are right
/// (a length scribbled over by a faulty process reads as corruption, not as a
/// message). The low bit stays 1.
fn stamp(pos: u32, len: u32) -> u32 {
    (pos | 1) ^ (len.wrapping_mul(0x9E37_79B1) & !1)
}

/// A committed record header: `len` in the low half, its stamp above.
fn committed(pos: u32, len: u32) -> u64 {
    (u64::from(stamp(pos, len)) << 32) | u64::from(len)
}

/// Whether header word `w` commits a record at `pos`.
fn commits(w: u64, pos: u32) -> bool {
    (w >> 32) as u32 == stamp(pos, w as u32)
}

/// A header written but not committed yet (a batch's record before it publishes): the
/// length with no stamp. Readers take any header without a stamp for "not yet".
fn held(len: u32) -> u64 {
    u64::from(len)
}

/// Whether header word `w` carries a stamp (committed, or corrupt if the stamp is
/// wrong); `0` and [`held`] headers do not.
fn stamped(w: u64) -> bool {
    w >> 32 != 0
}

/// Line 0: written at init and on role changes and close; read-mostly.
#[repr(C, align(128))]
struct MetaLine {
    /// [`RING_MAGIC`], stored last at init with Release.
    magic: AtomicU32,
    /// [`RING_VERSION`].
    version: AtomicU32,
    /// Data capacity in bytes (power of two).
    capacity: AtomicU32,
    /// 1 once the writer closed the ring.
    closed: AtomicU32,
    /// Writer role (see `crate::peer`).
    writer: PeerSlot,
    /// Reader role; its count is the number of messages read.
    reader: PeerSlot,
}

/// Line 1: written by the writer on every message.
#[repr(C, align(128))]
struct TailLine {
    /// Bytes ever written (wrapping); see the module docs.
    tail: AtomicU32,
}

/// Line 2: written by the reader on every message.
#[repr(C, align(128))]
struct HeadLine {
    /// Bytes ever consumed (wrapping).
    head: AtomicU32,
}

/// Line 3: written only on the sleep path, so it stays shared in both caches.
#[repr(C, align(128))]
struct SleepLine {
    /// Where the reader sleeps for data (sleepers at 384, event at 388); the writer
    /// wakes it.
    data: Parker,
    /// Where the writer sleeps for space (sleepers at 392, event at 396); the reader
    /// wakes it.
    space: Parker,
}

/// The ring header at offset 0 of the region.
#[repr(C)]
pub(crate) struct RingHeader {
    meta: MetaLine,
    tail: TailLine,
    head: HeadLine,
    sleep: SleepLine,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RingHeader>() == RING_HEADER_SIZE);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<RingHeader>() == 128);

#[cfg(loom)]
impl RingHeader {
    /// A fresh header for loom models (loom atomics cannot live in raw memory).
    pub(crate) fn new_for_loom(capacity: u32) -> Self {
        let z32 = || AtomicU32::new(0);
        RingHeader {
            meta: MetaLine {
                magic: AtomicU32::new(RING_MAGIC),
                version: AtomicU32::new(RING_VERSION),
                capacity: AtomicU32::new(capacity),
                closed: z32(),
                writer: PeerSlot::new(),
                reader: PeerSlot::new(),
            },
            tail: TailLine { tail: z32() },
            head: HeadLine { head: z32() },
            sleep: SleepLine {
                data: Parker::new(),
                space: Parker::new(),
            },
        }
    }
}

/// A ring region could not be initialised or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingLayoutError {
    /// The capacity is not a power of two in the accepted range.
    #[error(
        "ring capacity {0} is not a power of two between 64 B and 1 GiB: pick one such as 4 MiB"
    )]
    BadCapacity(usize),
    /// The region is smaller than the ring needs.
    #[error("region of {len} bytes is too small for this ring, which needs {needed} bytes: map a larger region")]
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The region does not start on a 128-byte boundary.
    #[error("region start {0:#x} is not 128-byte aligned: use a segment payload or a page-aligned mapping")]
    Misaligned(usize),
    /// The region does not hold an initialised ring.
    #[error("no shmkit ring here (magic {found:#x}): the region holds something else or was never initialised")]
    BadMagic {
        /// The magic word found.
        found: u32,
    },
    /// The ring was made by an incompatible version.
    #[error("ring layout version {found} is not supported (this build reads {expected}): use the same shmkit version on both sides")]
    BadVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The message can never fit in this ring.
    #[error("message of {len} bytes is larger than the ring's maximum of {max} bytes: create a larger ring or split the message")]
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest message this ring carries.
        max: usize,
    },
    /// `try_` form: not enough free space right now.
    #[error("the ring is full: retry later or use the blocking form")]
    Full,
    /// No space became free before the timeout.
    #[error("timed out waiting for space in the ring: the reader is slow or stopped")]
    Timeout,
    /// The ring was closed by its writer.
    #[error("the ring is closed: no more messages can be written")]
    Closed,
    /// The reader died while the ring was full (or before it consumed what
    /// [`Ring::wait_consumed`] waited for).
    #[error("the reader (pid {pid}) died while the ring was full: start a new reader to continue")]
    PeerDied {
        /// The dead reader's pid.
        pid: u32,
    },
    /// The reader released its role cleanly (its handle was dropped: it exited or
    /// stopped reading) while the ring was full (or before it consumed what
    /// [`Ring::wait_consumed`] waited for). Nothing was written; a new reader may
    /// attach and the writer may retry.
    #[error("the reader left after reading {messages_read} messages, with the ring full: start a new reader to continue, or stop writing")]
    ReaderLeft {
        /// Messages this ring's readers had read when the reader left, counted across
        /// successive readers (a reader that was killed could not report its own).
        messages_read: u64,
    },
    /// Another live process (or handle) holds the writer role.
    #[error("process {pid} is already the writer of this ring: a ring has one writer")]
    RoleTaken {
        /// The holder's pid.
        pid: u32,
    },
    /// The shared indices are inconsistent (memory corrupted or written by a foreign program).
    #[error("the ring's shared state is corrupt ({what}): recreate the ring")]
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// Sleeping until space is free failed in the kernel (`futex(2)` returned an
    /// unexpected error); nothing was written. See [`shmkit_sync::LockError::Os`].
    #[error("sleeping until the ring has space failed in the kernel (futex); nothing was written")]
    Os(#[source] shmkit_sync::OsError),
}

/// Why a read failed.
///
/// # Examples
/// ```
/// use shmkit_typed::{ReadError, Ring};
///
/// let mut ring = Ring::anonymous(4096)?;
/// // SAFETY: this example is single-threaded, so the child may run any code.
/// let child = unsafe { libc::fork() };
/// if child == 0 {
///     let _ = ring.write(b"last words");
///     // SAFETY: dies without closing the ring, as a crashed writer would.
///     unsafe { libc::_exit(0) }
/// }
/// let mut status = 0;
/// // SAFETY: `child` is our child's pid; `status` is a valid out-pointer.
/// assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
/// assert_eq!(ring.read_with(|m| m.to_vec())?, b"last words"); // complete messages first
/// let e = ring.read_with(|_| ()).unwrap_err();
/// assert!(matches!(e, ReadError::PeerDied { pid } if pid == child as u32)); // not a hang
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// `try_` form: no message right now.
    #[error("the ring is empty: retry later or use the blocking form")]
    Empty,
    /// No message arrived before the timeout.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The writer closed the ring and every message has been read.
    #[error("the ring is closed and drained")]
    Closed,
    /// The writer died; every message it completed has been read.
    #[error("the writer (pid {pid}) died; every message it completed has been read")]
    PeerDied {
        /// The dead writer's pid.
        pid: u32,
    },
    /// Another live process (or handle) holds the reader role.
    #[error("process {pid} is already the reader of this ring: a ring has one reader")]
    RoleTaken {
        /// The holder's pid.
        pid: u32,
    },
    /// A length or index read from shared memory is impossible.
    #[error("the ring's shared state is corrupt ({what}): recreate the ring")]
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// Sleeping until a message arrives failed in the kernel (`futex(2)` returned an
    /// unexpected error); nothing was read. See [`shmkit_sync::LockError::Os`].
    #[error("sleeping until a message arrives failed in the kernel (futex); nothing was read")]
    Os(#[source] shmkit_sync::OsError),
}

/// What keeps the ring's memory mapped.
enum Backing {
    /// Memory owned by the caller of [`Ring::init`] / [`Ring::attach`].
    Raw,
    /// A segment this handle maps.
    #[cfg(not(loom))]
    Segment(shmkit_segment::Segment),
    /// Heap memory of a loom model.
    #[cfg(loom)]
    #[allow(dead_code)]
    Loom(std::sync::Arc<LoomRing>),
}

/// The eight write forms of a ring writer (`write`, `write_timeout`, `write_deadline`,
/// `try_write`, and the same four of `write_with`), for a type whose
/// `$imp(len, wait, f)` does the work: [`Ring`] and [`WriteBatch`] share them. The two
/// strings document `write` and `write_with`.
macro_rules! write_forms {
    ($imp:ident, $write_doc:expr, $with_doc:expr) => {
        #[doc = $write_doc]
        pub fn write(&mut self, msg: &[u8]) -> Result<(), WriteError> {
            self.$imp(msg.len(), Wait::Until(None), |b| b.copy_from_slice(msg))
        }

        /// As [`write`](Self::write), giving up with [`WriteError::Timeout`] after
        /// `timeout`.
        ///
        /// # Errors
        /// As [`write`](Self::write), plus [`WriteError::Timeout`].
        pub fn write_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), WriteError> {
            self.$imp(msg.len(), Wait::timeout(timeout), |b| {
                b.copy_from_slice(msg)
            })
        }

        /// As [`write_timeout`](Self::write_timeout), giving up at `deadline` (see the
        /// [`Ring`] docs on `_timeout` and `_deadline`).
        ///
        /// # Errors
        /// As [`write_timeout`](Self::write_timeout).
        pub fn write_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<(), WriteError> {
            self.$imp(msg.len(), Wait::at(deadline), |b| b.copy_from_slice(msg))
        }

        /// As [`write`](Self::write), failing with [`WriteError::Full`] instead of
        /// waiting (or [`WriteError::ReaderLeft`] if the reader left).
        ///
        /// # Errors
        /// As [`write`](Self::write), plus [`WriteError::Full`].
        pub fn try_write(&mut self, msg: &[u8]) -> Result<(), WriteError> {
            self.$imp(msg.len(), Wait::No, |b| b.copy_from_slice(msg))
        }

        #[doc = $with_doc]
        pub fn write_with<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, WriteError> {
            self.$imp(len, Wait::Until(None), f)
        }

        /// As [`write_with`](Self::write_with) with a timeout.
        ///
        /// # Errors
        /// As [`write_timeout`](Self::write_timeout).
        pub fn write_with_timeout<R>(
            &mut self,
            len: usize,
            timeout: Duration,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, WriteError> {
            self.$imp(len, Wait::timeout(timeout), f)
        }

        /// As [`write_with_timeout`](Self::write_with_timeout), giving up at
        /// `deadline`.
        ///
        /// # Errors
        /// As [`write_timeout`](Self::write_timeout).
        pub fn write_with_deadline<R>(
            &mut self,
            len: usize,
            deadline: Instant,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, WriteError> {
            self.$imp(len, Wait::at(deadline), f)
        }

        /// As [`write_with`](Self::write_with) without waiting.
        ///
        /// # Errors
        /// As [`try_write`](Self::try_write).
        pub fn try_write_with<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, WriteError> {
            self.$imp(len, Wait::No, f)
        }
    };
}

/// A heap ring of a loom model: header, data bytes, record header words.
#[cfg(loom)]
type LoomRing = (RingHeader, Vec<std::cell::UnsafeCell<u64>>, Vec<AtomicU64>);

/// A handle to a single-producer single-consumer byte-message ring in shared memory.
///
/// See the [module docs](self) for the protocol, roles and crash behaviour, and
/// [the family](crate::family) for `create`, `open`, `open_or_create`, `anonymous`
/// (capacity in bytes) and their `*_in(options)` forms.
///
/// # Examples
/// A named ring with a writer handle and a reader handle:
/// ```
/// use std::time::{Duration, Instant};
/// use shmkit_typed::{ReadError, Ring, WriteError};
///
/// let name = format!("shmkit-doc-ring-{}", std::process::id());
/// let mut writer = Ring::create(&name, 4096)?; // removes the name on drop
/// let mut reader = Ring::open(&name)?; // as another process would
/// writer.write(b"tick")?;
/// assert_eq!(reader.read_with(|msg| msg == b"tick")?, true);
/// assert!(matches!(reader.try_read_with(|_| ()), Err(ReadError::Empty)));
/// // The reader role is taken by `reader`: a second reader is refused.
/// assert!(matches!(writer.try_read_with(|_| ()), Err(ReadError::RoleTaken { .. })));
/// // Every blocking call has a `_timeout(Duration)` and a `_deadline(Instant)` form;
/// // one deadline bounds several steps, however long each takes.
/// let deadline = Instant::now() + Duration::from_millis(10);
/// writer.write_deadline(b"tock", deadline)?;
/// assert_eq!(reader.read_with_deadline(deadline, |msg| msg.len())?, 4);
/// let r = reader.read_with_deadline(deadline, |msg| msg.len()); // nothing more comes
/// assert!(matches!(r, Err(ReadError::Timeout)));
/// // The largest message is the capacity minus 16 bytes (its header and the next).
/// let mut fresh = Ring::anonymous(1024)?;
/// let max = fresh.max_message_len();
/// fresh.write(&vec![1; max])?; // fits in an empty ring...
/// let r = fresh.try_write(&vec![1; max + 1]); // ...one byte more never will
/// assert!(matches!(r, Err(WriteError::TooLarge { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring {
    hdr: NonNull<RingHeader>,
    data: *mut u8,
    cap: u32,
    /// Pid under which this handle holds the writer role (0: not held).
    writer_pid: u32,
    /// Pid under which this handle holds the reader role (0: not held).
    reader_pid: u32,
    /// Writer: its own tail (it is the only one writing it).
    tail: u32,
    /// Writer: last head seen.
    cached_head: u32,
    /// Writer: records written since `tail` was last published (a [`WriteBatch`]
    /// leaves them unpublished until it flushes).
    unpublished: u32,
    /// Writer: the position of the record a [`WriteBatch`] wrote without committing
    /// it (its header [`held`]; the batch's first), committed when the batch publishes.
    held_from: Option<u32>,
    /// Reader: its own head.
    head: u32,
    /// Writer: messages written by this ring's writers (stored in the role slot on leaving).
    written: u64,
    /// Reader: messages read by this ring's readers (stored in the role slot on leaving).
    read: u64,
    /// Writer: its judgement of the reader, kept across waits for space (declared
    /// before `_backing`, so dropped while the parker it may register is mapped).
    space_watch: HolderWatch,
    /// Reader: its judgement of the writer, kept across waits for data (as above).
    data_watch: HolderWatch,
    /// Under loom, the record header words live apart from the data bytes (loom's
    /// atomics are objects, not memory): one per 8 bytes of data.
    #[cfg(loom)]
    loom_headers: NonNull<AtomicU64>,
    _backing: Backing,
}

// SAFETY: the handle only points into shared memory that every process and thread may
// access through atomics; the per-handle caches move with it. It is not `Sync`: the
// `&mut self` methods keep one thread per handle.
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.cap)
            .field("writer", &(self.writer_pid != 0))
            .field("reader", &(self.reader_pid != 0))
            .finish_non_exhaustive()
    }
}

fn round8(n: u32) -> u32 {
    (n + 7) & !7
}

impl Ring {
    /// Bytes a region must have to hold a ring of `capacity` data bytes.
    pub fn region_size(capacity: usize) -> usize {
        RING_HEADER_SIZE + capacity
    }

    fn check_capacity(capacity: usize) -> Result<u32, RingLayoutError> {
        if !capacity.is_power_of_two()
            || !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&capacity)
        {
            return Err(RingLayoutError::BadCapacity(capacity));
        }
        Ok(capacity as u32)
    }

    fn check_region(ptr: *mut u8, len: usize, capacity: usize) -> Result<(), RingLayoutError> {
        if (ptr as usize) & 127 != 0 || ptr.is_null() {
            return Err(RingLayoutError::Misaligned(ptr as usize));
        }
        let needed = Self::region_size(capacity);
        if len < needed {
            return Err(RingLayoutError::TooSmall { len, needed });
        }
        Ok(())
    }

    /// Initialises a new, empty ring of `capacity` data bytes at `ptr` and returns a
    /// handle to it.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid, writable memory (typically shared), not accessed
    /// by anyone else during this call, that stays mapped for as long as this handle
    /// and every handle [attached](Ring::attach) to it live.
    ///
    /// # Errors
    /// [`RingLayoutError`] if `capacity` is not a power of two in
    /// [`MIN_RING_CAPACITY`]..=[`MAX_RING_CAPACITY`], or the region is misaligned or
    /// too small.
    ///
    /// # Examples
    /// A ring in a segment the caller manages itself:
    #[cfg(not(loom))]
    pub unsafe fn init(ptr: *mut u8, len: usize, capacity: usize) -> Result<Ring, RingLayoutError> {
        let cap = Self::check_capacity(capacity)?;
        Self::check_region(ptr, len, capacity)?;
        // SAFETY: the caller gives us exclusive, writable access to `len >=
        // RING_HEADER_SIZE` bytes at `ptr`, 128-byte aligned (checked); zeroed, they
        // form a valid RingHeader (only atomics, for which zero is valid).
        let hdr = unsafe {
            std::ptr::write_bytes(ptr, 0, RING_HEADER_SIZE);
            &*(ptr as *const RingHeader)
        };
        hdr.meta.version.store(RING_VERSION, Ordering::Relaxed);
        hdr.meta.capacity.store(cap, Ordering::Relaxed);
        // Release: publishes the fields above to an `attach` that Acquires the magic.
        hdr.meta.magic.store(RING_MAGIC, Ordering::Release);
        // SAFETY: the region was just initialised; the caller's guarantees carry over.
        unsafe { Self::attach(ptr, len) }
    }

    /// Attaches to a ring that [`Ring::init`] initialised at `ptr` (possibly in another
    /// process). Every value read from the region is validated.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid memory that stays mapped while the handle lives,
    /// and be accessed by others only through shmkit ring handles.
    ///
    /// # Errors
    /// [`RingLayoutError`] if the region does not hold a valid ring.
    #[cfg(not(loom))]
    pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Ring, RingLayoutError> {
        Self::check_region(ptr, len, 0)?;
        if len < RING_HEADER_SIZE {
            return Err(RingLayoutError::TooSmall {
                len,
                needed: RING_HEADER_SIZE,
            });
        }
        // Non-null and aligned (checked by `check_region`).
        let hdr = NonNull::new(ptr.cast::<RingHeader>()).ok_or(RingLayoutError::Misaligned(0))?;
        // In bounds: RING_HEADER_SIZE <= len (checked).
        let data = ptr.wrapping_add(RING_HEADER_SIZE);
        // SAFETY: `hdr` is aligned with at least RING_HEADER_SIZE valid bytes (checked,
        // and the caller's promise) and RingHeader holds only atomics, valid for any
        // bytes; `data..data+len-RING_HEADER_SIZE` is the rest of the caller's region.
        unsafe { Self::from_parts(hdr, data, len - RING_HEADER_SIZE, Backing::Raw) }
    }

    /// Validates the header and builds a handle.
    ///
    /// # Safety
    /// `hdr` valid for the handle's life; `data` valid for `data_len` bytes.
    unsafe fn from_parts(
        hdr: NonNull<RingHeader>,
        data: *mut u8,
        data_len: usize,
        backing: Backing,
    ) -> Result<Ring, RingLayoutError> {
        // SAFETY: the caller guarantees `hdr` is valid.
        let h = unsafe { hdr.as_ref() };
        // Acquire: pairs with the Release store of the magic in `init`.
        let magic = h.meta.magic.load(Ordering::Acquire);
        if magic != RING_MAGIC {
            return Err(RingLayoutError::BadMagic { found: magic });
        }
        let version = h.meta.version.load(Ordering::Relaxed);
        if version != RING_VERSION {
            return Err(RingLayoutError::BadVersion {
                found: version,
                expected: RING_VERSION,
            });
        }
        let cap = h.meta.capacity.load(Ordering::Relaxed) as usize;
        let cap = Self::check_capacity(cap)?;
        if data_len < cap as usize {
            return Err(RingLayoutError::TooSmall {
                len: data_len + RING_HEADER_SIZE,
                needed: Self::region_size(cap as usize),
            });
        }
        Ok(Ring {
            hdr,
            data,
            cap,
            writer_pid: 0,
            reader_pid: 0,
            tail: 0,
            cached_head: 0,
            unpublished: 0,
            held_from: None,
            space_watch: HolderWatch::new(),
            data_watch: HolderWatch::new(),
            head: 0,
            written: 0,
            read: 0,
            #[cfg(loom)]
            loom_headers: match &backing {
                Backing::Loom(l) => NonNull::from(&l.2[0]),
                _ => unreachable!("loom rings are heap rings"),
            },
            _backing: backing,
        })
    }

    /// The type tag of rings in segment headers.
    #[cfg(not(loom))]
    pub fn type_tag() -> shmkit_segment::TypeTag {
        shmkit_segment::TypeTag::new(crate::types::kind::RING, "shmkit_typed::Ring", 1, 1)
    }

    #[cfg(not(loom))]
    fn from_segment(seg: shmkit_segment::Segment) -> Result<Ring, RingLayoutError> {
        let (ptr, len) = (seg.payload_ptr(), seg.payload_len());
        // SAFETY: the segment maps `len` bytes at `ptr` (128-byte aligned) for as long
        // as it lives, and it moves into the handle's backing.
        let mut ring = unsafe { Ring::attach(ptr, len) }?;
        ring._backing = Backing::Segment(seg);
        Ok(ring)
    }

    #[cfg(not(loom))]
    crate::family::family_forms!(capacity: usize);

    /// The segment behind this ring, if it was made by `create`/`open`/`anonymous`.
    pub fn segment(&self) -> Option<&shmkit_segment::Segment> {
        match &self._backing {
            #[cfg(not(loom))]
            Backing::Segment(s) => Some(s),
            _ => None,
        }
    }

    /// A handle on a heap ring for loom models.
    #[cfg(loom)]
    pub(crate) fn new_for_loom(capacity: u32) -> (Ring, Ring) {
        let words = (capacity as usize) / 8;
        let cells = (0..words)
            .map(|_| std::cell::UnsafeCell::new(0u64))
            .collect();
        let headers = (0..words).map(|_| AtomicU64::new(0)).collect();
        let shared = std::sync::Arc::new((RingHeader::new_for_loom(capacity), cells, headers));
        let make = |s: &std::sync::Arc<LoomRing>| {
            let hdr = NonNull::from(&s.0);
            let data = s.1.as_ptr() as *mut u8;
            // SAFETY: the Arc in the backing keeps header and buffer alive.
            unsafe { Ring::from_parts(hdr, data, capacity as usize, Backing::Loom(s.clone())) }
                .expect("valid loom ring")
        };
        (make(&shared), make(&shared))
    }

    fn hdr(&self) -> &RingHeader {
        // SAFETY: `hdr` stays valid while the handle lives (constructor contracts).
        unsafe { self.hdr.as_ref() }
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message this ring carries: the capacity minus 16 bytes (its record
    /// header, and the next record's header, which the writer clears before it commits
    /// this one).
    pub fn max_message_len(&self) -> usize {
        (self.cap - 2 * REC_HDR) as usize
    }

    /// Whether the writer has closed the ring (messages may still be unread).
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.hdr().meta.closed.load(Ordering::Acquire) != 0
    }

    /// Maps the whole ring into this process once, when it takes a role, so the hot
    /// path takes no page faults (a fresh 4 MiB ring otherwise faults 1024 times in
    /// each process on its first pass). Best effort: on failure pages fault in lazily.
    fn prefault(&self) {
        #[cfg(not(loom))]
        if let Backing::Segment(seg) = &self._backing {
            let _ = seg.prefault();
        }
    }

    /// Claims a role slot for this process and maps the ring in: what the previous
    /// holder counted, or `Err(pid)` naming the live holder. Liveness is judged as the
    /// segment allows (never "dead" across pid namespaces).
    fn take_role(&self, role: fn(&MetaLine) -> &PeerSlot) -> Result<u64, u32> {
        let counted = in_segment(self.segment(), || role(&self.hdr().meta).claim())?;
        self.prefault();
        Ok(counted)
    }

    /// Whether this process already holds the role recorded as `pid` (a forked child
    /// does not: its pid differs).
    fn holds(pid: u32) -> bool {
        pid != 0 && pid == owner::current_pid()
    }

    fn ensure_writer(&mut self) -> Result<(), WriteError> {
        if Self::holds(self.writer_pid) {
            return Ok(());
        }
        self.written = self
            .take_role(|m| &m.writer)
            .map_err(|pid| WriteError::RoleTaken { pid })?;
        self.writer_pid = owner::current_pid();
        // Acquire: a new writer continues after the last record its predecessor
        // published... and after any it committed without publishing `tail` (a batch,
        // or a death between the two stores): readers may have read those already.
        let published = self.hdr().tail.tail.load(Ordering::Acquire);
        if !published.is_multiple_of(REC_HDR) {
            // Give the role back: every call reports the corruption again.
            self.hdr().meta.writer.release(self.written);
            self.writer_pid = 0;
            return Err(WriteError::Corrupt {
                what: "tail is not a record boundary",
            });
        }
        self.tail = self.committed_end(published);
        // No space known until `head` is read and found sound (a corrupt one is
        // reported by the first write that needs space).
        self.cached_head = self.tail.wrapping_sub(self.cap);
        let _ = self.refresh_head();
        if self.tail != published {
            self.publish_tail();
        }
        // Readers waiting while the ring had no writer learn of this one (a pending
        // future arms its doorbell interest naming the writer it sees, so without this
        // wake the death of a writer that never publishes would go unnoticed). `wake`'s
        // SeqCst fence pairs with the one behind a waiter's announcement (Dekker): either
        // it sees our claim of the slot, or we see it announced. Once per attach.
        self.hdr().sleep.data.wake(u32::MAX);
        Ok(())
    }

    fn ensure_reader(&mut self) -> Result<(), ReadError> {
        if Self::holds(self.reader_pid) {
            return Ok(());
        }
        self.read = self
            .take_role(|m| &m.reader)
            .map_err(|pid| ReadError::RoleTaken { pid })?;
        self.reader_pid = owner::current_pid();
        // Acquire: pairs with the previous reader's Release of `head`, so the header
        // at `head` reads as cleared or committed, never stale.
        self.head = self.hdr().head.head.load(Ordering::Acquire);
        if !self.head.is_multiple_of(REC_HDR) {
            // Give the role back: every call reports the corruption again.
            self.hdr().meta.reader.release(self.read);
            self.reader_pid = 0;
            return Err(ReadError::Corrupt {
                what: "head is not a record boundary",
            });
        }
        // Writers waiting for space learn of this reader (as readers of a new writer,
        // in `ensure_writer`).
        self.hdr().sleep.space.wake(u32::MAX);
        Ok(())
    }

    // ----- writer -----

    write_forms!(
        write_impl,
        "Writes `msg` as one message, blocking while the ring is full.\n\n\
         # Errors\n\
         [`WriteError::TooLarge`], [`WriteError::Closed`], [`WriteError::PeerDied`] (the \
         reader died while the ring was full), [`WriteError::ReaderLeft`] (it left), \
         [`WriteError::RoleTaken`], [`WriteError::Corrupt`].",
        "Reserves `len` bytes in the ring, lets `f` fill them in place (zero-copy), then \
         publishes them as one message. Blocks while the ring is full. If `f` panics, \
         nothing is published.\n\n\
         # Errors\n\
         As [`Ring::write`]."
    );

    /// Blocks until the reader has consumed every message written so far (the ring is
    /// empty), so that a writer can report truthfully what was delivered before it
    /// exits. Takes the writer role if this handle does not hold it yet.
    ///
    /// Returns at once if nothing is unread. Waits while the reader has never attached
    /// or is attached and alive.
    ///
    /// # Errors
    /// [`WriteError::ReaderLeft`] / [`WriteError::PeerDied`] if the reader left or died
    /// with messages unread, [`WriteError::RoleTaken`] if another live process is the
    /// writer, [`WriteError::Corrupt`].
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::{Ring, WriteError};
    ///
    /// let name = format!("shmkit-doc-ring-consumed-{}", std::process::id());
    /// let mut writer = Ring::create(&name, 4096)?;
    /// let mut reader = Ring::open(&name)?; // another process, usually
    /// writer.write(b"one")?;
    /// writer.write(b"two")?;
    /// let t = std::thread::spawn(move || {
    ///     for _ in 0..2 {
    ///         reader.read_with(|_| ()).unwrap();
    ///     }
    /// }); // the reader's handle drops here: it leaves cleanly
    /// writer.wait_consumed()?; // both messages were read
    /// t.join().unwrap();
    /// writer.write(b"three")?; // fits, but nobody will read it:
    /// let e = writer.wait_consumed().unwrap_err();
    /// assert!(matches!(e, WriteError::ReaderLeft { messages_read: 2 }), "{e}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_consumed(&mut self) -> Result<(), WriteError> {
        self.wait_consumed_impl(Wait::Until(None))
    }

    /// As [`Ring::wait_consumed`], giving up with [`WriteError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As [`Ring::wait_consumed`], plus [`WriteError::Timeout`].
    pub fn wait_consumed_timeout(&mut self, timeout: Duration) -> Result<(), WriteError> {
        self.wait_consumed_impl(Wait::timeout(timeout))
    }

    /// As [`Ring::wait_consumed_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Ring::wait_consumed_timeout`].
    pub fn wait_consumed_deadline(&mut self, deadline: Instant) -> Result<(), WriteError> {
        self.wait_consumed_impl(Wait::at(deadline))
    }

    fn wait_consumed_impl(&mut self, wait: Wait) -> Result<(), WriteError> {
        self.ensure_writer()?;
        // The ring is empty exactly when all of it is free.
        self.wait_for_space(self.cap, wait)
    }

    /// Closes the ring: the reader reads what is left, then gets [`ReadError::Closed`].
    /// Takes the writer role if this handle does not hold it yet.
    ///
    /// # Errors
    /// [`WriteError::RoleTaken`] if another live process is the writer.
    pub fn close(&mut self) -> Result<(), WriteError> {
        self.ensure_writer()?;
        self.flush_tail();
        let h = self.hdr();
        // Release: pairs with the reader's Acquire of `closed`, after which it reloads
        // `tail` and sees every record published before the close.
        h.meta.closed.store(1, Ordering::Release);
        h.sleep.data.wake(1);
        Ok(())
    }

    /// Starts a batch of writes that are published together: one `tail` store and one
    /// wake check for up to `limit` messages instead of one per message, which is what
    /// small messages cost most (see `docs/benchmarks.md`). Takes the writer role if
    /// this handle does not hold it yet.
    ///
    /// Records written through the batch stay invisible to the reader (their headers
    /// are written but not committed) until the batch publishes them: when `limit` of
    /// them are pending, on [`WriteBatch::flush`], when the batch is dropped, and
    /// before any wait for space (the reader can only free what it sees), so a batch
    /// never wedges a full ring. Publishing commits them in order and stores `tail`
    /// once. Held back, they keep the reader from chasing the writer through lines it
    /// is still writing. A writer killed with records pending loses those records and
    /// no others: the reader never sees a torn or uncommitted record.
    ///
    /// `limit` is clamped to at least 1 (1: every message is published at once, as
    /// [`Ring::write`] does).
    ///
    /// # Errors
    /// [`WriteError::RoleTaken`] if another live process is the writer.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::Ring;
    ///
    /// let mut ring = Ring::anonymous(1 << 16)?;
    /// {
    ///     let mut batch = ring.write_batch(64)?;
    ///     for i in 0u64..100 {
    ///         batch.write(&i.to_le_bytes())?; // published at the 64th and on drop
    ///     }
    /// }
    /// let mut sum = 0;
    /// // Reads up to 1000 messages with one `head` store.
    /// let n = ring.read_batch(1000, |msg| sum += u64::from_le_bytes(msg.try_into().unwrap()))?;
    /// assert_eq!((n, sum), (100, 4950));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_batch(&mut self, limit: usize) -> Result<WriteBatch<'_>, WriteError> {
        self.ensure_writer()?;
        Ok(WriteBatch {
            ring: self,
            limit: limit.clamp(1, u32::MAX as usize) as u32,
        })
    }

    fn write_impl<R>(
        &mut self,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        self.ensure_writer()?;
        let r = self.write_record(len, wait, false, f)?;
        self.publish_tail();
        Ok(r)
    }

    /// Writes one record (and a wrap marker before it if needed) and commits it, or
    /// with `hold` (a batch) leaves the first record not yet published uncommitted (its
    /// header [`held`]) until the next [`Ring::publish_tail`] commits it. The caller holds the writer role. A
    /// wait for space publishes what is pending first, so the reader can free it.
    fn write_record<R>(
        &mut self,
        len: usize,
        wait: Wait,
        hold: bool,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        // Relaxed: only this writer sets `closed`; another handle's close in this
        // process would have required the writer role.
        if self.hdr().meta.closed.load(Ordering::Relaxed) != 0 {
            return Err(WriteError::Closed);
        }
        if len > self.max_message_len() {
            return Err(WriteError::TooLarge {
                len,
                max: self.max_message_len(),
            });
        }
        let rec = REC_HDR + round8(len as u32);
        let mask = self.cap - 1;
        let mut off = self.tail & mask;
        let contiguous = self.cap - off;
        if rec > contiguous {
            // Skip to the start with a wrap marker: the skipped bytes and the header at
            // offset 0 (cleared before the marker commits) must be free first.
            self.reserve(contiguous + REC_HDR, wait)?;
            self.clear_header(0);
            self.store_header(off, WRAP, hold);
            self.tail = self.tail.wrapping_add(contiguous);
            off = 0;
        }
        // The record and the next record's header must be free.
        self.reserve(rec + REC_HDR, wait)?;
        // The next header reads "not yet" before this record commits, so a reader that
        // moves on from this record never takes stale bytes there for a header.
        self.clear_header((off + rec) & mask);
        // SAFETY: `off + 8 + len <= cap` (the record fits before the end, ensured
        // above) and the bytes lie in free space that the reader does not touch until
        // the record's header commits them; `self` is borrowed mutably, so no other
        // slice into the ring exists in this process.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(self.data.add((off + REC_HDR) as usize), len) };
        let r = f(buf);
        self.store_header(off, len as u32, hold);
        self.tail = self.tail.wrapping_add(rec);
        self.unpublished += 1;
        self.written = self.written.wrapping_add(1);
        Ok(r)
    }

    /// Where the records committed from byte position `from` on end: `from` itself if
    /// its header is not committed. Walks committed headers (a new writer's start; slow
    /// path), stopping at anything that is not a well-formed record of its position.
    fn committed_end(&self, from: u32) -> u32 {
        let mask = self.cap - 1;
        let mut pos = from;
        // At most one lap: a full ring holds at most `cap / 8` records.
        for _ in 0..self.cap / REC_HDR {
            // Relaxed: the caller's Acquire of `tail` ordered the headers it covers;
            // beyond it, the predecessor (dead or gone) writes nothing more.
            let w = self.header(pos & mask).load(Ordering::Relaxed);
            if !commits(w, pos) {
                break;
            }
            let off = pos & mask;
            let len = w as u32;
            let size = if len == WRAP {
                self.cap - off
            } else if len <= self.cap - 2 * REC_HDR && REC_HDR + round8(len) <= self.cap - off {
                REC_HDR + round8(len)
            } else {
                break;
            };
            pos = pos.wrapping_add(size);
        }
        pos
    }

    /// The header word of the record at `off` (8-aligned, `off + 8 <= cap`).
    fn header(&self, off: u32) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + REC_HDR <= self.cap);
        #[cfg(not(loom))]
        // SAFETY: `off` is 8-aligned and `off + 8 <= cap` inside the data buffer (which
        // starts 128-byte aligned), which the handle's constructor contract keeps
        // valid; the word is accessed only atomically, by both sides.
        return unsafe { AtomicU64::from_ptr(self.data.add(off as usize).cast()) };
        #[cfg(loom)]
        // SAFETY: one word per 8 data bytes, kept alive by the loom backing.
        unsafe {
            &*self.loom_headers.as_ptr().add(off as usize / 8)
        }
    }

    /// Stores the header of the record of `len` bytes at `off` (position `self.tail`):
    /// committed, or, for the first record of a batch not yet published, [`held`] for
    /// the batch's publish to commit. Only that first record is held: the reader reads
    /// headers in order and cannot pass it, so the batch's later records are committed
    /// as they are written (the same stores as one-by-one writes) and become readable
    /// together when the publish commits the first (one store, not a walk).
    fn store_header(&mut self, off: u32, len: u32, hold: bool) {
        if hold && self.held_from.is_none() {
            self.held_from = Some(self.tail);
            // Relaxed: nobody takes it for a record; the commit (Release) follows.
            self.header(off).store(held(len), Ordering::Relaxed);
        } else {
            // Release: the payload (and the cleared next header) happen-before the
            // reader's Acquire of this header: the record is committed.
            self.header(off)
                .store(committed(self.tail, len), Ordering::Release);
        }
    }

    /// Commits the record a batch held back (its first; the later ones are committed
    /// and wait behind it).
    fn commit_held(&mut self) {
        let Some(pos) = self.held_from.take() else {
            return;
        };
        let off = pos & (self.cap - 1);
        // Relaxed: our own store, in `store_header`.
        let len = self.header(off).load(Ordering::Relaxed) as u32;
        // Release: as for a record committed as it is written; the reader's Acquire of
        // this header is what lets it reach the records behind it, each committed by
        // its own Release store.
        self.header(off)
            .store(committed(pos, len), Ordering::Release);
    }

    /// Clears the header at `off` ("nothing committed here yet").
    fn clear_header(&self, off: u32) {
        // Relaxed: ordered before the reader's view by the Release commit that follows.
        self.header(off).store(0, Ordering::Relaxed);
    }

    /// Publishes every record written so far (one store and one wake check however
    /// many records that is).
    fn publish_tail(&mut self) {
        self.unpublished = 0;
        self.commit_held();
        let h = self.hdr();
        // Release: the records' bytes happen-before the reader's Acquire of `tail`.
        h.tail.tail.store(self.tail, Ordering::Release);
        // Once per sleep of the reader, not once per publish until it runs.
        h.sleep.data.wake_all_once();
    }

    /// Publishes pending records of a [`WriteBatch`], if any.
    fn flush_tail(&mut self) {
        // A held wrap marker alone counts too: the reader must pass it to free space.
        if self.unpublished != 0 || self.held_from.is_some() {
            self.publish_tail();
        }
    }

    /// Whether `need` bytes (at most the capacity) are free as far as the last `head`
    /// read says: the fast path of every write, one subtraction. `cached_head` only
    /// ever holds a `head` that [`Ring::refresh_head`] found sound (8-aligned, at most
    /// one lap behind `tail`), and `tail` only advances into free space, so the
    /// difference needs no check here.
    #[inline]
    fn has_space(&self, need: u32) -> bool {
        self.tail.wrapping_sub(self.cached_head) <= self.cap - need
    }

    /// Reads `head` anew: the free bytes, or `Corrupt` if it is not a sound position
    /// (then `cached_head` keeps its last sound value).
    fn refresh_head(&mut self) -> Result<u32, WriteError> {
        // Acquire: pairs with the reader's Release of `head`, so its reads of the
        // freed bytes happen-before our overwrite.
        let head = self.hdr().head.head.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        if used > self.cap || used & 7 != 0 {
            return Err(WriteError::Corrupt {
                what: "head is outside the written range",
            });
        }
        self.cached_head = head;
        Ok(self.cap - used)
    }

    /// Makes sure `need` bytes are free: at once if the last `head` read says so
    /// (inlined, the common case), else [`Ring::wait_for_space`].
    #[inline]
    fn reserve(&mut self, need: u32, wait: Wait) -> Result<(), WriteError> {
        if self.has_space(need) {
            return Ok(());
        }
        self.wait_for_space(need, wait)
    }

    /// Waits until `need` bytes are free. When they are not and cannot become free
    /// (the reader left or died), returns that instead of waiting: this is where the
    /// writer learns how its reader went (see `crate::peer`).
    fn wait_for_space(&mut self, need: u32, wait: Wait) -> Result<(), WriteError> {
        if self.refresh_head()? >= need {
            return Ok(());
        }
        // The reader can only free what it can see: publish a batch's pending records
        // (and a wrap marker) before waiting or giving up.
        self.flush_tail();
        let deadline = match wait {
            Wait::No => {
                // One atomic load, no `/proc` read: a try_ form reports a reader that
                // left, not one that died.
                return Err(match self.hdr().meta.reader.left_count() {
                    Some(messages_read) => WriteError::ReaderLeft { messages_read },
                    None => WriteError::Full,
                });
            }
            Wait::Until(d) => d,
        };
        loop {
            let (tail, cap) = (self.tail, self.cap);
            let mut watch = std::mem::take(&mut self.space_watch);
            let h = self.hdr();
            let on = PeerWaitOn {
                segment: self.segment(),
                parker: &h.sleep.space,
                peer: &h.meta.reader,
                closed: None,
            };
            // SAFETY: `watch` goes back into this handle, which keeps the mapping of
            // `h.sleep.space` and drops `space_watch` before it.
            let end = unsafe {
                on.wait(&mut watch, deadline, || {
                    // Acquire: as in `refresh_head`.
                    let head = h.head.head.load(Ordering::Acquire);
                    cap.wrapping_sub(tail.wrapping_sub(head)) >= need
                })
            };
            self.space_watch = watch;
            let end = end.map_err(WriteError::Os)?;
            match end {
                // Read again through the checks (a head that moved back is corrupt).
                PeerWait::Ready => {
                    if self.refresh_head()? >= need {
                        return Ok(());
                    }
                }
                // Its last head was seen (Acquire of LEFT) and did not free enough.
                PeerWait::Left { count } => {
                    return Err(WriteError::ReaderLeft {
                        messages_read: count,
                    });
                }
                PeerWait::Died { pid } => return Err(WriteError::PeerDied { pid }),
                PeerWait::TimedOut => return Err(WriteError::Timeout),
                PeerWait::Closed => unreachable!("no closed flag in the writer's wait"),
            }
        }
    }

    // ----- reader -----

    /// Reads the next message in place: `f` sees it as one contiguous slice, and the
    /// space is released when `f` returns. Blocks while the ring is empty.
    ///
    /// # Errors
    /// [`ReadError::Closed`] once the ring is closed and drained,
    /// [`ReadError::PeerDied`] when the writer died (after every complete message was
    /// read), [`ReadError::RoleTaken`], [`ReadError::Corrupt`].
    pub fn read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        self.read_impl(Wait::Until(None), f)
    }

    /// As [`Ring::read_with`], giving up with [`ReadError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As [`Ring::read_with`], plus [`ReadError::Timeout`].
    pub fn read_with_timeout<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        self.read_impl(Wait::timeout(timeout), f)
    }

    /// As [`Ring::read_with_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Ring::read_with_timeout`].
    pub fn read_with_deadline<R>(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        self.read_impl(Wait::at(deadline), f)
    }

    /// As [`Ring::read_with`], failing with [`ReadError::Empty`] instead of waiting
    /// (it does not check the writer's liveness).
    ///
    /// # Errors
    /// As [`Ring::read_with`] (except `PeerDied`), plus [`ReadError::Empty`].
    pub fn try_read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        self.read_impl(Wait::No, f)
    }

    /// Reads the next message into `buf` (replacing its contents); returns its length.
    ///
    /// # Errors
    /// As [`Ring::read_with`].
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
        self.read_impl(Wait::Until(None), |m| copy_into(buf, m))
    }

    /// As [`Ring::read_into`] with a timeout.
    ///
    /// # Errors
    /// As [`Ring::read_with_timeout`].
    pub fn read_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, ReadError> {
        self.read_impl(Wait::timeout(timeout), |m| copy_into(buf, m))
    }

    /// As [`Ring::read_into_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Ring::read_with_timeout`].
    pub fn read_into_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, ReadError> {
        self.read_impl(Wait::at(deadline), |m| copy_into(buf, m))
    }

    /// As [`Ring::read_into`] without waiting.
    ///
    /// # Errors
    /// As [`Ring::try_read_with`].
    pub fn try_read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
        self.read_impl(Wait::No, |m| copy_into(buf, m))
    }

    /// Reads every message available, up to `max`, calling `f` on each in place, and
    /// releases their space with one `head` store (one per message with
    /// [`Ring::read_with`]). Blocks while the ring is empty; returns how many messages
    /// were read (at least 1 unless `max` is 0). See [`Ring::write_batch`] for an
    /// example.
    ///
    /// If `f` panics, the messages it finished with count as read; the one it
    /// panicked on is read again. A reader killed in the middle of a batch leaves that
    /// batch's messages to the next reader (they are read again).
    ///
    /// # Errors
    /// As [`Ring::read_with`]; an error after some messages were read ends the batch
    /// early and is returned by the next call instead.
    pub fn read_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, ReadError> {
        self.read_batch_impl(Wait::Until(None), max, f)
    }

    /// As [`Ring::read_batch`], giving up with [`ReadError::Timeout`] after `timeout`
    /// if no message arrives.
    ///
    /// # Errors
    /// As [`Ring::read_with_timeout`].
    pub fn read_batch_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, ReadError> {
        self.read_batch_impl(Wait::timeout(timeout), max, f)
    }

    /// As [`Ring::read_batch_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Ring::read_with_timeout`].
    pub fn read_batch_deadline(
        &mut self,
        max: usize,
        deadline: Instant,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, ReadError> {
        self.read_batch_impl(Wait::at(deadline), max, f)
    }

    /// As [`Ring::read_batch`] without waiting: [`ReadError::Empty`] if nothing is
    /// there.
    ///
    /// # Errors
    /// As [`Ring::try_read_with`].
    pub fn try_read_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, ReadError> {
        self.read_batch_impl(Wait::No, max, f)
    }

    fn read_batch_impl(
        &mut self,
        wait: Wait,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, ReadError> {
        self.ensure_reader()?;
        if max == 0 {
            return Ok(0);
        }
        // Publishes the head once when the batch ends, also if `f` panics.
        struct Release<'a>(&'a mut Ring, u32);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if self.0.head != self.1 {
                    self.0.publish_head();
                }
            }
        }
        let start = self.head;
        let batch = Release(self, start);
        let (off, len) = batch.0.next_record(wait)?;
        f(batch.0.record(off, len));
        batch.0.consume(len);
        let mut n = 1;
        while n < max {
            match batch.0.next_record(Wait::No) {
                Ok((off, len)) => {
                    f(batch.0.record(off, len));
                    batch.0.consume(len);
                    n += 1;
                }
                // What stopped the batch is found again by the next call.
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// The header word at `head` if it commits a record there, `None` if nothing is
    /// committed there yet.
    fn header_at_head(&self) -> Result<Option<u64>, ReadError> {
        // Acquire: pairs with the writer's Release commit: the record's bytes (and the
        // next header, cleared) are visible once its header is.
        let w = self
            .header(self.head & (self.cap - 1))
            .load(Ordering::Acquire);
        if !stamped(w) {
            return Ok(None);
        }
        if !commits(w, self.head) {
            // Only the writer stores headers, and it clears each one before a reader
            // can reach it (see the module docs): anything else is corruption.
            return Err(ReadError::Corrupt {
                what: "a record header that is not this position's",
            });
        }
        Ok(Some(w))
    }

    fn read_impl<R>(&mut self, wait: Wait, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        self.ensure_reader()?;
        let (off, len) = self.next_record(wait)?;
        let r = f(self.record(off, len));
        self.consume(len);
        self.publish_head();
        Ok(r)
    }

    /// Finds the next committed record (skipping wrap markers), waiting as `wait` says:
    /// its offset and payload length, validated to lie inside the buffer.
    fn next_record(&mut self, wait: Wait) -> Result<(u32, u32), ReadError> {
        let mask = self.cap - 1;
        loop {
            let Some(w) = self.header_at_head()? else {
                self.wait_for_data(wait)?;
                continue;
            };
            let off = self.head & mask;
            let len = w as u32;
            if len == WRAP {
                self.head = self.head.wrapping_add(self.cap - off);
                // Published now, not with the record: the reader may sleep next, and
                // the writer may be waiting for exactly this space.
                self.publish_head();
                continue;
            }
            if len > self.cap - 2 * REC_HDR {
                return Err(ReadError::Corrupt {
                    what: "message length larger than the ring",
                });
            }
            if REC_HDR + round8(len) > self.cap - off {
                return Err(ReadError::Corrupt {
                    what: "message extends beyond the end of the buffer",
                });
            }
            return Ok((off, len));
        }
    }

    /// The payload of the record at `off`, as found by [`Ring::next_record`].
    fn record(&self, off: u32, len: u32) -> &[u8] {
        // SAFETY: `next_record` checked `off + 8 + len <= cap`, inside the data buffer;
        // the writer committed these bytes (Acquire of the record's header) and does
        // not touch them again until `head` is published past them, which needs
        // `&mut self`, so not while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.data.add((off + REC_HDR) as usize), len as usize) }
    }

    /// Moves the local head past the record just read (published by the caller).
    fn consume(&mut self, len: u32) {
        self.head = self.head.wrapping_add(REC_HDR + round8(len));
        self.read = self.read.wrapping_add(1);
    }

    fn publish_head(&mut self) {
        let h = self.hdr();
        // Release: our reads of the record happen-before the writer's Acquire of
        // `head` and its overwrite.
        h.head.head.store(self.head, Ordering::Release);
        // Once per sleep of the writer, not once per message until it runs.
        h.sleep.space.wake_all_once();
    }

    /// Waits until a record (or wrap marker) is committed at `head`.
    fn wait_for_data(&mut self, wait: Wait) -> Result<(), ReadError> {
        let ready = |r: &Ring| r.header_at_head().map(|w| w.is_some());
        let deadline = match wait {
            Wait::No => {
                if ready(self)? {
                    return Ok(());
                }
                // `closed` is stored after the last commit: look once more after it.
                return if self.is_closed() && !ready(self)? {
                    Err(ReadError::Closed)
                } else if ready(self)? {
                    Ok(())
                } else {
                    Err(ReadError::Empty)
                };
            }
            Wait::Until(d) => d,
        };
        let mut watch = std::mem::take(&mut self.data_watch);
        let h = self.hdr();
        let at_head = self.header(self.head & (self.cap - 1));
        let on = PeerWaitOn {
            segment: self.segment(),
            parker: &h.sleep.data,
            peer: &h.meta.writer,
            closed: Some(&h.meta.closed),
        };
        // SAFETY: `watch` goes back into this handle, which keeps the mapping of
        // `h.sleep.data` and drops `data_watch` before it.
        // Acquire: as in `header_at_head` (which the caller's next look validates).
        let end = unsafe {
            on.wait(&mut watch, deadline, || {
                stamped(at_head.load(Ordering::Acquire))
            })
        };
        self.data_watch = watch;
        let end = end.map_err(ReadError::Os)?;
        match end {
            PeerWait::Ready => Ok(()),
            // A writer leaves only through `Drop`, which closes first; a writer slot
            // left without `closed` (another program's doing) reads the same.
            PeerWait::Closed | PeerWait::Left { .. } => Err(ReadError::Closed),
            // A dead writer commits nothing more; what it committed was looked at.
            PeerWait::Died { pid } => Err(ReadError::PeerDied { pid }),
            PeerWait::TimedOut => Err(ReadError::Timeout),
        }
    }
}

/// Writes that are published together: see [`Ring::write_batch`]. Publishes what is
/// pending when dropped.
#[must_use = "records are published when the batch is full, flushed or dropped"]
pub struct WriteBatch<'a> {
    ring: &'a mut Ring,
    limit: u32,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("limit", &self.limit)
            .field("pending", &self.ring.unpublished)
            .finish()
    }
}

impl WriteBatch<'_> {
    write_forms!(
        add,
        "Writes `msg` as one message of the batch, blocking while the ring is full (after \
         publishing what is pending).\n\n\
         # Errors\n\
         As [`Ring::write`].",
        "Reserves `len` bytes, lets `f` fill them in place, and adds them to the batch as \
         one message.\n\n\
         # Errors\n\
         As [`Ring::write`]."
    );

    /// Publishes every pending message now.
    pub fn flush(&mut self) {
        self.ring.flush_tail();
    }

    /// Messages written through this batch and not yet published.
    pub fn pending(&self) -> usize {
        self.ring.unpublished as usize
    }

    fn add<R>(
        &mut self,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        let r = self.ring.write_record(len, wait, true, f)?;
        if self.ring.unpublished >= self.limit {
            self.ring.publish_tail();
        }
        Ok(r)
    }
}

impl Drop for WriteBatch<'_> {
    fn drop(&mut self) {
        self.ring.flush_tail();
    }
}

fn copy_into(buf: &mut Vec<u8>, msg: &[u8]) -> usize {
    buf.clear();
    buf.extend_from_slice(msg);
    msg.len()
}

#[cfg(not(loom))]
impl crate::family::sealed::Layout for Ring {
    type Init = usize;
    const OBJECT: &'static str = "Ring";

    fn tag() -> shmkit_segment::TypeTag {
        Ring::type_tag()
    }

    fn payload_size(capacity: &usize) -> Result<usize, crate::CreateError> {
        Ring::check_capacity(*capacity)?;
        Ok(Ring::region_size(*capacity))
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, capacity: usize) {
        // SAFETY: the trait's contract: a fresh, private, large enough payload; the
        // capacity was validated by `payload_size`.
        let _ = unsafe { Ring::init(ptr, len, capacity) };
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Ring, crate::OpenError> {
        Ok(Ring::from_segment(seg)?)
    }

    fn check_init(&self, capacity: &usize) -> Result<(), crate::OpenError> {
        crate::family::check_payload(self.segment(), Ring::region_size(*capacity))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if Self::holds(self.writer_pid) {
            let _ = self.close();
            // After the close: a reader that sees the writer gone sees `closed`.
            self.hdr().meta.writer.release(self.written);
        }
        if Self::holds(self.reader_pid) {
            let h = self.hdr();
            // Release (in `release`): the writer that sees LEFT sees the head we
            // published, and the next reader continues from it.
            if h.meta.reader.release(self.read) {
                // A writer asleep on a full ring learns at once, not after a slice.
                h.sleep.space.wake(1);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Region {
        ptr: *mut u8,
        layout: std::alloc::Layout,
    }
    impl Region {
        fn new(len: usize) -> Self {
            let layout = std::alloc::Layout::from_size_align(len, 128).unwrap();
            // SAFETY: non-zero size layout.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            assert!(!ptr.is_null());
            Region { ptr, layout }
        }
    }
    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: allocated with this layout in `new`.
            unsafe { std::alloc::dealloc(self.ptr, self.layout) }
        }
    }

    fn ring(cap: usize) -> (Region, Ring) {
        let r = Region::new(Ring::region_size(cap));
        // SAFETY: fresh exclusive heap region that outlives the ring in each test.
        let ring = unsafe { Ring::init(r.ptr, r.layout.size(), cap) }.unwrap();
        (r, ring)
    }

    #[test]
    fn messages_round_trip_in_order_across_wraps() {
        let (_r, mut ring) = ring(256);
        let mut buf = Vec::new();
        for i in 0..1000u32 {
            let len = (i as usize * 7) % 100;
            let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            ring.try_write(&msg).unwrap();
            assert_eq!(ring.try_read_into(&mut buf).unwrap(), len);
            assert_eq!(buf, msg);
        }
        assert!(matches!(
            ring.try_read_into(&mut buf),
            Err(ReadError::Empty)
        ));
    }

    #[test]
    fn full_ring_refuses_and_too_large_is_an_error() {
        let (_r, mut ring) = ring(64);
        // 64 bytes less a record header and the next one, cleared before each commit.
        assert_eq!(ring.max_message_len(), 48);
        assert!(matches!(
            ring.try_write(&[0; 49]),
            Err(WriteError::TooLarge { len: 49, max: 48 })
        ));
        ring.try_write(&[1; 24]).unwrap(); // 32 bytes (+ 8 for the next header)
        ring.try_write(&[2; 16]).unwrap(); // 24 more: 56, plus the next header: full
        assert!(matches!(ring.try_write(&[3; 1]), Err(WriteError::Full)));
        assert!(matches!(
            ring.write_timeout(&[3; 1], Duration::from_millis(30)),
            Err(WriteError::Timeout)
        ));
        // Reading frees the space; a record that does not fit before the end wraps.
        let mut buf = Vec::new();
        ring.try_read_into(&mut buf).unwrap();
        ring.try_read_into(&mut buf).unwrap();
        ring.try_write(&[3; 1]).unwrap(); // 8 bytes left before the end: wraps
        assert_eq!(ring.try_read_into(&mut buf).unwrap(), 1);
        // The largest message fits in an empty ring whose next record starts at 0.
        let (_r, mut ring) = super::tests::ring(64);
        ring.try_write(&[9; 48]).unwrap();
        assert_eq!(ring.try_read_into(&mut buf).unwrap(), 48);
        assert_eq!(buf, [9; 48]);
    }

    #[test]
    fn close_then_drain_then_closed() {
        let (_r, mut ring) = ring(1024);
        ring.write(b"a").unwrap();
        ring.write(b"bc").unwrap();
        ring.close().unwrap();
        assert!(matches!(ring.write(b"x"), Err(WriteError::Closed)));
        let mut buf = Vec::new();
        assert_eq!(ring.read_into(&mut buf).unwrap(), 1);
        assert_eq!(ring.read_into(&mut buf).unwrap(), 2);
        assert!(matches!(ring.read_into(&mut buf), Err(ReadError::Closed)));
    }

    #[test]
    fn read_times_out_when_empty() {
        let (_r, mut ring) = ring(1024);
        let mut buf = Vec::new();
        let start = std::time::Instant::now();
        assert!(matches!(
            ring.read_into_timeout(&mut buf, Duration::from_millis(50)),
            Err(ReadError::Timeout)
        ));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn layout_errors() {
        let r = Region::new(4096);
        // SAFETY: the region is valid for 4096 bytes.
        unsafe {
            assert!(matches!(
                Ring::attach(r.ptr, 4096),
                Err(RingLayoutError::BadMagic { found: 0 })
            ));
            assert!(matches!(
                Ring::init(r.ptr, 4096, 1000),
                Err(RingLayoutError::BadCapacity(1000))
            ));
            assert!(matches!(
                Ring::init(r.ptr, 4096, 4096),
                Err(RingLayoutError::TooSmall { .. })
            ));
            assert!(matches!(
                Ring::init(r.ptr.add(8), 4000, 1024),
                Err(RingLayoutError::Misaligned(_))
            ));
            Ring::init(r.ptr, 4096, 2048).unwrap();
            // A capacity corrupted to something larger than the region is refused.
            (r.ptr.add(8) as *mut u32).write(1 << 20);
            assert!(matches!(
                Ring::attach(r.ptr, 4096),
                Err(RingLayoutError::TooSmall { .. })
            ));
        }
    }

    #[test]
    fn corrupt_length_is_an_error_not_ub() {
        let (r, mut ring) = ring(256);
        ring.try_write(b"hello").unwrap();
        // SAFETY: the first record's length word is at the start of the data buffer.
        unsafe { (r.ptr.add(RING_HEADER_SIZE) as *mut u32).write(200) };
        let mut buf = Vec::new();
        assert!(matches!(
            ring.try_read_into(&mut buf),
            Err(ReadError::Corrupt { .. })
        ));
        // SAFETY: as above; a length larger than the ring.
        unsafe { (r.ptr.add(RING_HEADER_SIZE) as *mut u32).write(100_000) };
        assert!(matches!(
            ring.try_read_into(&mut buf),
            Err(ReadError::Corrupt { .. })
        ));
    }

    #[test]
    fn second_handle_in_same_process_cannot_take_a_held_role() {
        let (r, mut ring) = ring(256);
        ring.try_write(b"x").unwrap();
        // SAFETY: the region outlives both handles.
        let mut other = unsafe { Ring::attach(r.ptr, r.layout.size()) }.unwrap();
        assert!(matches!(
            other.try_write(b"y"),
            Err(WriteError::RoleTaken { .. })
        ));
        let mut buf = Vec::new();
        assert_eq!(other.try_read_into(&mut buf).unwrap(), 1);
        assert!(matches!(
            ring.try_read_into(&mut buf),
            Err(ReadError::RoleTaken { .. })
        ));
    }
}
