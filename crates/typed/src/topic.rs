//! [`Topic`]: a broadcast topic in shared memory: one writer, up to N readers, every
//! reader sees every message in order from the moment it joins.
//!
//! # Policies
//! The policy is chosen at create and is part of the type, so opening a topic with
//! the other policy (or another element type) is
//! [`OpenError::TypeMismatch`](crate::OpenError::TypeMismatch), and only the policy that allows it has zero-copy reads:
//!
//! | | [`Block`] (lossless) | [`Overwrite`] (lossy, like `tokio::sync::broadcast`) |
//! |---|---|---|
//! | writer | waits for the slowest *live* reader | never waits |
//! | slow reader | holds the writer back | gets [`ReadError::Lagged`]`(n)`, then continues from the oldest message still there |
//! | zero-copy read | [`Subscriber::read_with`] | no: a reader copies out with atomic word loads, then validates (see below) |
//! | zero-copy write | [`Topic::write_with`] | `write_with` fills a handle-owned buffer that is then stored with atomic words |
//!
//! Why no zero-copy read in `Overwrite` mode: the writer may overwrite a record while
//! a reader looks at it. A `&[u8]` into that memory would be a data race (undefined
//! behaviour, and a torn message in practice), so readers copy with `AtomicU64` loads
//! and throw the copy away if the writer reached the record in the meantime. For the
//! same reason the writer stores the payload with atomic words there.
//!
//! # Protocol
//! The data is a power-of-two byte ring with free-running `u64` byte positions. Each
//! message is a record: a 16-byte header (`u64` sequence number, `u64` whose low 32
//! bits are the length) and the payload, padded to 16 bytes; a record never wraps: a
//! *wrap marker* (length `u32::MAX`, the sequence number of the record that follows)
//! skips to the start. The marker is published on its own, before the writer waits
//! for (or makes) room for the record, and a Block reader moves its cursor past it at
//! once: a record may need the marker's bytes. The writer fills a record, stores `next_seq`, then `tail`
//! with Release; readers load `tail` with Acquire, so a record is seen only once it
//! is complete: a writer killed in the middle of a record never exposes it.
//!
//! Readers register in a bounded registry: one 128-byte line each, holding a peer
//! slot (`crates/typed/src/peer.rs`: pid + start time, so a reused pid is not
//! mistaken for the reader) and the reader's `cursor` (the byte position it has
//! finished with). Joining takes a vacant, left or dead slot (so readers killed in a
//! loop never exhaust N; all N held by live readers is [`ReadError::TooManyReaders`])
//! and starts at the current `tail`.
//!
//! **Block.** The writer may overwrite byte `p` only when every registered live
//! reader's cursor is past `p - capacity`. It caches `limit` = (lowest cursor, or its
//! own tail when lower) + capacity and scans the registry only when a record does not
//! fit below `limit`: one scan per capacity's worth of bytes while readers keep up,
//! so the cost is nearly flat in the number of readers. A reader stores its cursor
//! with Release after it has finished with a record (pairs with the writer's Acquire
//! loads in its scan). A joining reader and a scanning writer meet in a Dekker
//! handshake (SeqCst fences): the reader publishes a provisional cursor, fences,
//! reloads `tail` and starts there; the writer fences before it scans. Either the
//! writer sees the new reader, or the reader's start is at or after the tail the
//! writer scanned from, so the writer's limit never lets it lap the new reader.
//! A reader that leaves (drop) marks its slot left and wakes the writer. A writer
//! that waits checks, after each sleep slice (10 ms doubling to 80 ms), whether the
//! readers holding it back are alive, and reclaims the slots of dead ones.
//!
//! **Overwrite.** The writer keeps `head`, the position of the oldest record still
//! intact. Before it stores anything into bytes that hold older records, it moves
//! `head` past them (walking their headers), stores `head` and issues a Release
//! fence. A reader copies a record with relaxed atomic word loads, issues an Acquire
//! fence and reloads `head`: if `head` is still at or before the record, no store of
//! the writer over the record was seen by the copy (a seqlock whose sequence word is
//! `head`). If `head` passed it, the copy is discarded and the reader gets
//! [`ReadError::Lagged`]`(n)`: `n` is the sequence number of the oldest record still
//! there minus the one it expected; its next read returns that record.
//!
//! (A per-record stamp is not used as the seqlock word: once a longer record overlaps
//! an old one, the old stamp's bytes hold payload, which may equal any stamp. `head`
//! only grows and never holds anything else.)
//!
//! # Waiting
//! Readers that find nothing spin briefly (about 50 µs, as the ring), then sleep
//! on one `data` [`Parker`]; after every publish the writer checks its sleepers count
//! and, only when someone sleeps, bumps the event word and wakes *all* sleepers with
//! one `FUTEX_WAKE`. Idle readers cost no CPU beyond a liveness check of the writer
//! per slice (a pidfd `poll`, or none at all when the death watcher holds the pidfd).
//! A blocked writer sleeps on the `space` parker, which readers wake.
//!
//! # Peers that leave
//! - Writer killed: readers read every complete message, then get
//!   [`ReadError::PeerDied`]; the half-written record is never shown. A restarted
//!   writer takes the role over (the dead holder's slot is claimed) and continues the
//!   sequence numbers (one number may be skipped if the writer was killed between its
//!   two publishing stores).
//! - Writer closes or drops its handle: readers drain, then get [`ReadError::Closed`].
//!   A closed topic stays closed.
//! - Reader killed: in `Block` mode the writer reclaims its slot when it waits on it
//!   (within about 100 ms); in either mode a joining reader reuses it.
//!
//! # Example
//! ```
//! use shmkit_typed::topic::{Block, ReadError, Topic, TopicConfig};
//!
//! let name = format!("shmkit-doc-topic-{}", std::process::id());
//! let mut writer = Topic::<Block>::create(&name, TopicConfig::new(4096))?;
//! let reader_a = Topic::<Block>::open(&name)?; // as other processes would
//! let reader_b = Topic::<Block>::open(&name)?;
//! let mut a = reader_a.subscribe()?; // sees what is written from now on
//! let mut b = reader_b.subscribe()?;
//! writer.write(b"tick")?;
//! writer.write_with(4, |buf| buf.copy_from_slice(b"tock"))?; // zero-copy
//! writer.close()?;
//! let mut buf = Vec::new();
//! assert_eq!(a.read_into(&mut buf)?, 4);
//! assert_eq!(buf, b"tick");
//! assert_eq!(a.read_with(|m| m.to_vec())?, b"tock"); // zero-copy (Block only)
//! assert!(matches!(a.read_into(&mut buf), Err(ReadError::Closed)));
//! assert_eq!(b.read_with(|m| m.len())?, 4); // every reader sees every message
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A lossy topic, where a slow reader learns how much it missed:
//! ```
//! use shmkit_typed::topic::{Overwrite, ReadError, Topic, TopicConfig};
//!
//! let mut writer = Topic::<Overwrite>::anonymous(TopicConfig::new(256))?;
//! let handle = writer.reader_handle()?; // another handle to the same topic
//! let mut slow = handle.subscribe()?;
//! for i in 0..100u64 {
//!     writer.write(&i.to_le_bytes())?; // never waits
//! }
//! let mut buf = Vec::new();
//! let Err(ReadError::Lagged(missed)) = slow.read_into(&mut buf) else { panic!() };
//! slow.read_into(&mut buf)?; // the oldest message still there
//! assert_eq!(u64::from_le_bytes(buf[..8].try_into()?), missed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Typed messages: [`TypedTopic`].
//!
//! # Layout
//! See `docs/layout.md` ("Topic"): three 128-byte header lines (metadata with the
//! writer's peer slot; tail, next sequence number and head; the two parkers), one
//! 128-byte line per reader, then the data ring. [`TOPIC_VERSION`] is its version.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::peer::{
    holder_pid, in_segment, is_alive_in, HolderWatch, PeerSlot, PeerWait, PeerWaitOn,
};
use crate::shim::{fence, AtomicU32, AtomicU64, Ordering};
use crate::wait::Wait;
use shmkit_sys::backoff::PollGauge;
use shmkit_sys::owner;
use shmkit_sys::parker::{CheckPace, Parker};

#[cfg(not(loom))]
#[path = "topic_async.rs"]
mod async_impl;
#[cfg(not(loom))]
pub use async_impl::{MessageStream, ReadAsync, ReadIntoAsync, ReadValueAsync, WriteAsync};

/// Magic number at offset 0 of a topic's payload ("STPC" little-endian).
pub const TOPIC_MAGIC: u32 = u32::from_le_bytes(*b"STPC");
/// Layout version of the topic payload.
/// Version 2 wakes each sleeper once however many records are published before it
/// runs ([`Parker::wake_all_once`](shmkit_sys::parker::Parker::wake_all_once)); its
/// sleepers arm, which version 1 peers do not.
pub const TOPIC_VERSION: u32 = 2;
/// Bytes of the fixed header (before the reader lines).
pub const TOPIC_HEADER_SIZE: usize = 384;
/// Bytes of one reader's registry line.
pub const READER_LINE_SIZE: usize = 128;
/// Readers a topic has room for unless its [`TopicConfig`] says otherwise.
pub const DEFAULT_MAX_READERS: u32 = 64;
/// Most readers a topic may have room for.
pub const MAX_READERS: u32 = 256;
/// Default data capacity: 1 MiB.
pub const DEFAULT_TOPIC_CAPACITY: usize = 1 << 20;
/// Smallest capacity accepted.
pub const MIN_TOPIC_CAPACITY: usize = 64;
/// Largest capacity accepted.
pub const MAX_TOPIC_CAPACITY: usize = 1 << 30;

/// Largest byte position a topic reaches (2^62 bytes: 14 years at 10 GB/s); a larger
/// `tail` is corrupt, so position arithmetic never overflows.
const MAX_POSITION: u64 = 1 << 62;

/// Length word of a wrap marker.
const WRAP: u32 = u32::MAX;
/// Bytes of a record header (sequence number, length).
const REC_HDR: u64 = 16;

/// The policy a topic was created with (recorded in its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Lossless: the writer waits for the slowest live reader.
    Block,
    /// Lossy: the writer never waits; slow readers get [`ReadError::Lagged`].
    Overwrite,
}

impl Policy {
    fn code(self) -> u32 {
        match self {
            Policy::Block => 1,
            Policy::Overwrite => 2,
        }
    }

    fn from_code(c: u32) -> Option<Policy> {
        match c {
            1 => Some(Policy::Block),
            2 => Some(Policy::Overwrite),
            _ => None,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The policy of a [`Topic`] as a type: [`Block`] or [`Overwrite`].
pub trait TopicPolicy: sealed::Sealed + Send + Sync + 'static {
    /// The policy recorded in the header.
    const POLICY: Policy;
    /// The segment tag kind of topics with this policy.
    #[doc(hidden)]
    const KIND: u32;
    /// The policy's name in type descriptions.
    #[doc(hidden)]
    const NAME: &'static str;
}

/// Lossless policy: see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Block;
/// Lossy policy: see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Overwrite;

impl sealed::Sealed for Block {}
impl sealed::Sealed for Overwrite {}
impl TopicPolicy for Block {
    const POLICY: Policy = Policy::Block;
    const KIND: u32 = crate::types::kind::TOPIC_BLOCK;
    const NAME: &'static str = "Block";
}
impl TopicPolicy for Overwrite {
    const POLICY: Policy = Policy::Overwrite;
    const KIND: u32 = crate::types::kind::TOPIC_OVERWRITE;
    const NAME: &'static str = "Overwrite";
}

/// What creating a topic needs: the data capacity and how many readers it has room
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Data capacity in bytes (a power of two, 64 B..=1 GiB).
    pub capacity: usize,
    /// Reader slots (1..=[`MAX_READERS`]).
    pub max_readers: u32,
}

impl TopicConfig {
    /// `capacity` data bytes, room for [`DEFAULT_MAX_READERS`] readers.
    pub fn new(capacity: usize) -> Self {
        TopicConfig {
            capacity,
            max_readers: DEFAULT_MAX_READERS,
        }
    }

    /// Room for `n` readers.
    pub fn max_readers(mut self, n: u32) -> Self {
        self.max_readers = n;
        self
    }

    /// Payload bytes a topic of this configuration takes.
    pub fn region_size(&self) -> usize {
        TOPIC_HEADER_SIZE + self.max_readers as usize * READER_LINE_SIZE + self.capacity
    }

    fn check(&self, min_message: usize) -> Result<(), TopicConfigError> {
        if !self.capacity.is_power_of_two()
            || !(MIN_TOPIC_CAPACITY..=MAX_TOPIC_CAPACITY).contains(&self.capacity)
        {
            return Err(TopicConfigError::BadCapacity(self.capacity));
        }
        if !(1..=MAX_READERS).contains(&self.max_readers) {
            return Err(TopicConfigError::BadMaxReaders(self.max_readers));
        }
        if min_message > self.capacity - REC_HDR as usize {
            return Err(TopicConfigError::TooSmallForElement {
                capacity: self.capacity,
                size: min_message,
            });
        }
        Ok(())
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig::new(DEFAULT_TOPIC_CAPACITY)
    }
}

/// A topic configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicConfigError {
    /// The capacity is not a power of two in the accepted range.
    #[error(
        "topic capacity {0} is not a power of two between 64 B and 1 GiB: pick one such as 1 MiB"
    )]
    BadCapacity(usize),
    /// The reader count is 0 or above [`MAX_READERS`].
    #[error("a topic has room for 1 to 256 readers, not {0}")]
    BadMaxReaders(u32),
    /// A typed topic's element does not fit in the capacity.
    #[error("a topic of {capacity} bytes cannot carry elements of {size} bytes: make it larger")]
    TooSmallForElement {
        /// Capacity asked for.
        capacity: usize,
        /// Element size.
        size: usize,
    },
}

/// Line 0: written at init, on writer role changes and on close; read-mostly.
#[repr(C, align(128))]
struct MetaLine {
    /// [`TOPIC_MAGIC`], stored last at init with Release.
    magic: AtomicU32,
    /// [`TOPIC_VERSION`].
    version: AtomicU32,
    /// Data capacity in bytes (power of two).
    capacity: AtomicU32,
    /// Reader lines after the header.
    max_readers: AtomicU32,
    /// [`Policy`] code: 1 Block, 2 Overwrite.
    policy: AtomicU32,
    /// 1 once the writer closed the topic.
    closed: AtomicU32,
    /// Reserved (zero).
    _reserved: AtomicU64,
    /// Writer role (see `crate::peer`); its count is the number of messages written.
    writer: PeerSlot,
}

/// Line 1: written by the writer on every message.
#[repr(C, align(128))]
struct TailLine {
    /// Byte position after the last published record.
    tail: AtomicU64,
    /// Sequence number of the next record (stored before `tail`).
    next_seq: AtomicU64,
    /// Overwrite: position of the oldest intact record (only grows).
    head: AtomicU64,
}

/// Line 2: written only on the sleep paths.
#[repr(C, align(128))]
struct SleepLine {
    /// Readers sleep here for data; the writer wakes them all at once.
    data: Parker,
    /// The writer sleeps here for space (Block); readers wake it.
    space: Parker,
}

/// The fixed header at offset 0 of the payload.
#[repr(C)]
struct TopicHeader {
    meta: MetaLine,
    tail: TailLine,
    sleep: SleepLine,
}

/// One reader's registry line.
#[repr(C, align(128))]
struct ReaderLine {
    /// The reader (see `crate::peer`); its count is the messages it read when it left.
    slot: PeerSlot,
    /// Byte position the reader has finished with.
    cursor: AtomicU64,
    /// Sequence number of the next message the reader expects (for `shmkit inspect`).
    seq: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<TopicHeader>() == TOPIC_HEADER_SIZE);
    assert!(std::mem::align_of::<TopicHeader>() == 128);
    assert!(std::mem::size_of::<ReaderLine>() == READER_LINE_SIZE);
    assert!(std::mem::offset_of!(MetaLine, writer) == 32);
    assert!(std::mem::offset_of!(TopicHeader, tail) == 128);
    assert!(std::mem::offset_of!(TopicHeader, sleep) == 256);
};

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The message can never fit in this topic.
    #[error("message of {len} bytes is larger than the topic's maximum of {max} bytes: create a larger topic or split the message")]
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest message this topic carries.
        max: usize,
    },
    /// `try_` form (Block): a reader has not made room yet.
    #[error("the topic is full: its slowest reader has not read enough; retry later or use the blocking form")]
    Full,
    /// No room became free before the timeout (Block).
    #[error("timed out waiting for the slowest reader of the topic")]
    Timeout,
    /// The topic was closed by its writer.
    #[error("the topic is closed: no more messages can be written")]
    Closed,
    /// Another live process (or handle) holds the writer role.
    #[error("process {pid} is already the writer of this topic: a topic has one writer")]
    RoleTaken {
        /// The holder's pid.
        pid: u32,
    },
    /// The shared state is inconsistent.
    #[error("the topic's shared state is corrupt ({what}): recreate the topic")]
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// Sleeping until room is free failed in the kernel (futex).
    #[error("sleeping until the topic has room failed in the kernel (futex); nothing was written")]
    Os(#[source] shmkit_sync::OsError),
}

/// Why a read (or joining) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// `try_` form: no message right now.
    #[error("no new message on the topic: retry later or use the blocking form")]
    Empty,
    /// No message arrived before the timeout.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The writer closed the topic and this reader has read every message.
    #[error("the topic is closed and drained")]
    Closed,
    /// The writer died; every message it completed has been read.
    #[error("the writer (pid {pid}) died; every message it completed has been read")]
    PeerDied {
        /// The dead writer's pid.
        pid: u32,
    },
    /// Overwrite: the writer overwrote messages this reader had not read yet. The
    /// next read returns the oldest message still there.
    #[error("the reader fell behind and missed {0} messages; it continues from the oldest one still there")]
    Lagged(u64),
    /// Every reader slot is held by a live reader.
    #[error("the topic has room for {max} readers and all are taken by live readers: create it with more, or stop a reader")]
    TooManyReaders {
        /// The topic's reader slots.
        max: u32,
    },
    /// A length or position read from shared memory is impossible.
    #[error("the topic's shared state is corrupt ({what}): recreate the topic")]
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// Sleeping until a message arrives failed in the kernel (futex).
    #[error("sleeping until a message arrives failed in the kernel (futex); nothing was read")]
    Os(#[source] shmkit_sync::OsError),
}

/// What keeps the topic's memory mapped.
enum Backing {
    #[cfg(not(loom))]
    Segment(shmkit_segment::Segment),
    /// Heap memory of a loom model.
    #[cfg(loom)]
    #[allow(dead_code)]
    Loom(std::sync::Arc<LoomMem>),
}

#[cfg(loom)]
pub(crate) struct LoomMem {
    hdr: TopicHeader,
    readers: Vec<ReaderLine>,
    words: Vec<AtomicU64>,
}

/// A handle to a broadcast topic: see the [module docs](self) and
/// [the family](crate::family) for `create`, `open`, `open_or_create`, `anonymous`
/// (with a [`TopicConfig`]) and their `*_in(options)` forms.
///
/// The first write through a handle claims the writer role; readers join with
/// [`Topic::subscribe`]. Dropping the handle that holds the writer role closes the
/// topic.
pub struct Topic<P: TopicPolicy = Block> {
    hdr: NonNull<TopicHeader>,
    readers: NonNull<ReaderLine>,
    /// The data ring as 8-byte words (8-aligned: the data starts on a 128-byte line).
    words: NonNull<AtomicU64>,
    cap: u64,
    max_readers: u32,
    /// Pid under which this handle holds the writer role (0: not held).
    writer_pid: u32,
    /// Writer: its own tail.
    tail: u64,
    /// Writer: its own next sequence number.
    next_seq: u64,
    /// Writer (Overwrite): its own head.
    head: u64,
    /// Writer (Block): bytes below this position may be written (cached scan).
    limit: u64,
    /// Writer: messages written (stored in the role slot on leaving).
    written: u64,
    /// Writer (Overwrite, loom): where `write_with` fills a message.
    scratch: Vec<u8>,
    /// How the writer's waits for room poll (see `shim::poll_backoff`).
    write_poll: PollGauge,
    backing: Backing,
    _policy: PhantomData<P>,
}

// SAFETY: the handle points into shared memory accessed through atomics only (and
// zero-copy slices lent under the protocol's rules); its caches move with it. `Sync`:
// `&self` methods (subscribing, reading through a `Subscriber`) touch only atomics and
// the subscriber's own state; writing needs `&mut self`.
unsafe impl<P: TopicPolicy> Send for Topic<P> {}
// SAFETY: as above.
unsafe impl<P: TopicPolicy> Sync for Topic<P> {}

impl<P: TopicPolicy> std::fmt::Debug for Topic<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("policy", &P::POLICY)
            .field("capacity", &self.cap)
            .field("max_readers", &self.max_readers)
            .field("writer", &(self.writer_pid != 0))
            .finish_non_exhaustive()
    }
}

fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Bytes of the record of a `len`-byte message: the header, then the payload padded
/// to 16 bytes, so that records start 16-aligned and a wrap marker (16 bytes) always
/// fits before the end.
fn rec_size(len: u64) -> u64 {
    REC_HDR + ((len + 15) & !15)
}

/// One reader as `shmkit inspect` shows it ([`Topic::readers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Registry slot.
    pub slot: u32,
    /// The reader's pid.
    pub pid: u32,
    /// Whether it still runs (a `/proc` read).
    pub alive: bool,
    /// Byte position it has finished with.
    pub position: u64,
    /// Messages published that it has not read yet.
    pub lag: u64,
}

impl<P: TopicPolicy> Topic<P> {
    /// The type tag of byte topics of this policy in segment headers.
    #[cfg(not(loom))]
    pub fn type_tag() -> shmkit_segment::TypeTag {
        shmkit_segment::TypeTag::new(P::KIND, "[u8]", 1, 1)
    }

    /// Lays out a fresh topic.
    ///
    /// # Safety
    /// `ptr..ptr + len` is fresh, zeroed, writable, 128-byte aligned memory of at
    /// least `config.region_size()` bytes, private to the caller.
    #[cfg(not(loom))]
    unsafe fn init_at(ptr: *mut u8, config: TopicConfig) {
        // SAFETY: per the contract, `ptr` is aligned and large enough for the header,
        // whose fields are atomics, valid when zeroed.
        let h = unsafe { &*ptr.cast::<TopicHeader>() };
        // Relaxed: published by the Release store of the magic below.
        h.meta.version.store(TOPIC_VERSION, Ordering::Relaxed);
        h.meta
            .capacity
            .store(config.capacity as u32, Ordering::Relaxed);
        h.meta
            .max_readers
            .store(config.max_readers, Ordering::Relaxed);
        h.meta.policy.store(P::POLICY.code(), Ordering::Relaxed);
        // Release: pairs with the Acquire load of the magic in `from_parts`.
        h.meta.magic.store(TOPIC_MAGIC, Ordering::Release);
    }

    /// Validates the header of a mapped topic and builds a handle.
    ///
    /// # Safety
    /// `ptr..ptr + len` stays mapped while the handle lives; `ptr` is 128-aligned.
    #[cfg(not(loom))]
    unsafe fn from_raw(ptr: *mut u8, len: usize, backing: Backing) -> Result<Self, String> {
        if len < TOPIC_HEADER_SIZE || (ptr as usize) & 127 != 0 {
            return Err(format!("payload of {len} bytes cannot hold a topic header"));
        }
        let hdr = NonNull::new(ptr.cast::<TopicHeader>()).ok_or("null payload")?;
        // SAFETY: aligned, at least TOPIC_HEADER_SIZE bytes (checked), atomics only.
        let h = unsafe { hdr.as_ref() };
        // Acquire: pairs with the Release store of the magic in `init_at`.
        let magic = h.meta.magic.load(Ordering::Acquire);
        if magic != TOPIC_MAGIC {
            return Err(format!("magic {magic:#x} is not a topic's"));
        }
        // Relaxed (here and below): the fields were stored before the magic, which
        // we Acquired.
        let version = h.meta.version.load(Ordering::Relaxed);
        if version != TOPIC_VERSION {
            return Err(format!(
                "layout version {version} (this build reads {TOPIC_VERSION})"
            ));
        }
        let policy = h.meta.policy.load(Ordering::Relaxed);
        if Policy::from_code(policy) != Some(P::POLICY) {
            return Err(format!(
                "policy code {policy} where the tag says {:?}",
                P::POLICY
            ));
        }
        let config = TopicConfig {
            capacity: h.meta.capacity.load(Ordering::Relaxed) as usize,
            max_readers: h.meta.max_readers.load(Ordering::Relaxed),
        };
        config.check(0).map_err(|e| e.to_string())?;
        if len < config.region_size() {
            return Err(format!(
                "payload of {len} bytes is smaller than the {} its header needs",
                config.region_size()
            ));
        }
        // In bounds: region_size <= len (checked).
        let readers = ptr.wrapping_add(TOPIC_HEADER_SIZE).cast::<ReaderLine>();
        let words = ptr
            .wrapping_add(TOPIC_HEADER_SIZE + config.max_readers as usize * READER_LINE_SIZE)
            .cast::<AtomicU64>();
        let (Some(readers), Some(words)) = (NonNull::new(readers), NonNull::new(words)) else {
            return Err("null payload".into());
        };
        Ok(Self::from_parts(hdr, readers, words, config, backing))
    }

    fn from_parts(
        hdr: NonNull<TopicHeader>,
        readers: NonNull<ReaderLine>,
        words: NonNull<AtomicU64>,
        config: TopicConfig,
        backing: Backing,
    ) -> Self {
        Topic {
            hdr,
            readers,
            words,
            cap: config.capacity as u64,
            max_readers: config.max_readers,
            writer_pid: 0,
            tail: 0,
            next_seq: 0,
            head: 0,
            limit: 0,
            written: 0,
            scratch: Vec::new(),
            write_poll: PollGauge::new(),
            backing,
            _policy: PhantomData,
        }
    }

    #[cfg(not(loom))]
    fn open_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        let (ptr, len) = (seg.payload_ptr(), seg.payload_len());
        let name = seg.name().unwrap_or("(anonymous)").to_owned();
        // SAFETY: the segment maps `len` bytes at `ptr` (128-byte aligned) while it
        // lives, and it moves into the handle.
        unsafe { Self::from_raw(ptr, len, Backing::Segment(seg)) }
            .map_err(|reason| crate::OpenError::Corrupt { name, reason })
    }

    #[cfg(not(loom))]
    crate::family::family_forms!(config: TopicConfig);

    /// Two handles (writer, reader) over one topic in heap memory, for loom models.
    #[cfg(loom)]
    pub(crate) fn new_for_loom(capacity: u32, max_readers: u32) -> (Self, Self) {
        let z64 = || AtomicU64::new(0);
        let z32 = || AtomicU32::new(0);
        let mem = std::sync::Arc::new(LoomMem {
            hdr: TopicHeader {
                meta: MetaLine {
                    magic: AtomicU32::new(TOPIC_MAGIC),
                    version: AtomicU32::new(TOPIC_VERSION),
                    capacity: AtomicU32::new(capacity),
                    max_readers: AtomicU32::new(max_readers),
                    policy: AtomicU32::new(P::POLICY.code()),
                    closed: z32(),
                    _reserved: z64(),
                    writer: PeerSlot::new(),
                },
                tail: TailLine {
                    tail: z64(),
                    next_seq: z64(),
                    head: z64(),
                },
                sleep: SleepLine {
                    data: Parker::new(),
                    space: Parker::new(),
                },
            },
            readers: (0..max_readers)
                .map(|_| ReaderLine {
                    slot: PeerSlot::new(),
                    cursor: z64(),
                    seq: z64(),
                })
                .collect(),
            words: (0..capacity / 8).map(|_| z64()).collect(),
        });
        let config = TopicConfig {
            capacity: capacity as usize,
            max_readers,
        };
        let make = |m: &std::sync::Arc<LoomMem>| {
            Self::from_parts(
                NonNull::from(&m.hdr),
                NonNull::from(&m.readers[0]),
                NonNull::from(&m.words[0]),
                config,
                Backing::Loom(m.clone()),
            )
        };
        (make(&mem), make(&mem))
    }

    /// The segment this handle maps.
    pub fn segment(&self) -> Option<&shmkit_segment::Segment> {
        match &self.backing {
            #[cfg(not(loom))]
            Backing::Segment(s) => Some(s),
            #[cfg(loom)]
            _ => None,
        }
    }

    /// Maps the whole topic into this process, once per role taken (writer or
    /// subscriber), so the hot path takes no page faults: a fresh buffer otherwise
    /// faults once per 4 KiB page in each process on its first pass, which is most of
    /// the cost of a large message (as the ring does). Best effort: on failure pages
    /// fault in lazily.
    fn prefault(&self) {
        if let Some(seg) = self.segment() {
            let _ = seg.prefault();
        }
    }

    /// Another handle to the same topic (maps its segment again), e.g. for a reader
    /// in the writer's process.
    ///
    /// # Errors
    /// As [`Topic::open`].
    #[cfg(not(loom))]
    pub fn reader_handle(&self) -> Result<Self, crate::OpenError> {
        <Self as crate::SharedObject>::open_in(reopen_options(self.segment())?)
    }

    fn hdr(&self) -> &TopicHeader {
        // SAFETY: valid while the handle lives (constructor contracts).
        unsafe { self.hdr.as_ref() }
    }

    fn reader(&self, i: u32) -> &ReaderLine {
        debug_assert!(i < self.max_readers);
        // SAFETY: `i < max_readers` and the region holds `max_readers` lines
        // (checked at open), valid while the handle lives.
        unsafe { &*self.readers.as_ptr().add(i as usize) }
    }

    /// The data word at byte offset `off` (8-aligned, `< cap`).
    fn word(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off < self.cap);
        // SAFETY: `off < cap` and the data ring has `cap` bytes (checked at open);
        // every access to it is atomic except the zero-copy slices of Block mode,
        // which never overlap a word accessed atomically at the same time (module docs).
        unsafe { &*self.words.as_ptr().add((off / 8) as usize) }
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Reader slots.
    pub fn max_readers(&self) -> u32 {
        self.max_readers
    }

    /// The policy (also the type parameter).
    pub fn policy(&self) -> Policy {
        P::POLICY
    }

    /// Largest message: the capacity minus the 16-byte record header.
    pub fn max_message_len(&self) -> usize {
        (self.cap - REC_HDR) as usize
    }

    /// Whether the writer closed the topic.
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.hdr().meta.closed.load(Ordering::Acquire) != 0
    }

    /// Messages published so far (the next sequence number).
    /// (A message being published at this moment may already be counted.)
    pub fn published(&self) -> u64 {
        // Relaxed: a count for display and tests; nothing is read through it.
        self.hdr().tail.next_seq.load(Ordering::Relaxed)
    }

    /// The registered readers (slow: a `/proc` read each), for `shmkit inspect`.
    pub fn readers(&self) -> Vec<ReaderInfo> {
        let published = self.published();
        (0..self.max_readers)
            .filter_map(|i| {
                let line = self.reader(i);
                let w = line.slot.word();
                let pid = holder_pid(w);
                (pid != 0).then(|| ReaderInfo {
                    slot: i,
                    pid,
                    alive: is_alive_in(self.segment(), pid, w >> 32),
                    // Relaxed: a snapshot for display.
                    position: line.cursor.load(Ordering::Relaxed),
                    lag: published.saturating_sub(line.seq.load(Ordering::Relaxed)),
                })
            })
            .collect()
    }

    fn holds(pid: u32) -> bool {
        pid != 0 && pid == owner::current_pid()
    }

    // ----- writer -----

    fn ensure_writer(&mut self) -> Result<(), WriteError> {
        if Self::holds(self.writer_pid) {
            return Ok(());
        }
        let seg = self.segment();
        self.written = in_segment(seg, || self.hdr().meta.writer.claim())
            .map_err(|pid| WriteError::RoleTaken { pid })?;
        self.writer_pid = owner::current_pid();
        self.prefault();
        // Subscribers waiting while the topic had no writer learn of this one (as the
        // ring's readers do, see `Ring::ensure_writer`); SeqCst fence inside (Dekker
        // with a waiter's announcement).
        self.hdr().sleep.data.wake(u32::MAX);
        let t = &self.hdr().tail;
        // Acquire: a new writer continues after the last record its predecessor
        // published (pairs with its Release of `tail`).
        let tail = t.tail.load(Ordering::Acquire);
        // Relaxed: stored before that `tail`; one number ahead if the predecessor died
        // between its two stores (a skipped number, documented).
        let next_seq = t.next_seq.load(Ordering::Relaxed);
        // Relaxed: only writers store `head`, ordered by the role claim (Acquire).
        let head = t.head.load(Ordering::Relaxed);
        (self.tail, self.next_seq, self.head) = (tail, next_seq, head);
        if !tail.is_multiple_of(16) || tail > MAX_POSITION {
            self.writer_pid = 0;
            let _ = self.hdr().meta.writer.release(self.written);
            return Err(WriteError::Corrupt {
                what: "tail is not on a record boundary, or impossibly far",
            });
        }
        if self.head > self.tail
            || self.tail - self.head > self.cap
            || !self.head.is_multiple_of(16)
        {
            // A head outside the written range (a foreign program's doing): forget
            // every old record rather than walk garbage.
            self.head = self.tail;
        }
        self.limit = 0;
        Ok(())
    }

    /// Writes `msg` as one message. Block: waits while the slowest live reader has
    /// not made room; Overwrite: never waits.
    ///
    /// # Errors
    /// [`WriteError::TooLarge`], [`WriteError::Closed`], [`WriteError::RoleTaken`],
    /// [`WriteError::Corrupt`], [`WriteError::Os`].
    pub fn write(&mut self, msg: &[u8]) -> Result<(), WriteError> {
        self.write_impl(msg.len(), Wait::Until(None), Fill::Bytes(msg), |_| ())
    }

    /// As [`Topic::write`], giving up with [`WriteError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As [`Topic::write`], plus [`WriteError::Timeout`].
    pub fn write_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), WriteError> {
        self.write_impl(msg.len(), Wait::timeout(timeout), Fill::Bytes(msg), |_| ())
    }

    /// As [`Topic::write_timeout`], giving up at `deadline`.
    ///
    /// # Errors
    /// As [`Topic::write_timeout`].
    pub fn write_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<(), WriteError> {
        self.write_impl(msg.len(), Wait::at(deadline), Fill::Bytes(msg), |_| ())
    }

    /// As [`Topic::write`], failing with [`WriteError::Full`] instead of waiting.
    ///
    /// # Errors
    /// As [`Topic::write`], plus [`WriteError::Full`].
    pub fn try_write(&mut self, msg: &[u8]) -> Result<(), WriteError> {
        self.write_impl(msg.len(), Wait::No, Fill::Bytes(msg), |_| ())
    }

    /// Writes a message of `len` bytes that `f` fills in place (Block: in the shared
    /// ring, zero-copy; Overwrite: in a buffer of the handle, then stored with atomic
    /// words, see the module docs). Waits as [`Topic::write`].
    ///
    /// # Errors
    /// As [`Topic::write`].
    pub fn write_with<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        self.write_impl(len, Wait::Until(None), Fill::With, f)
    }

    /// As [`Topic::write_with`] with a timeout.
    ///
    /// # Errors
    /// As [`Topic::write_timeout`].
    pub fn write_with_timeout<R>(
        &mut self,
        len: usize,
        timeout: Duration,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        self.write_impl(len, Wait::timeout(timeout), Fill::With, f)
    }

    /// As [`Topic::write_with`] without waiting.
    ///
    /// # Errors
    /// As [`Topic::try_write`].
    pub fn try_write_with<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        self.write_impl(len, Wait::No, Fill::With, f)
    }

    /// Closes the topic: readers read what is left, then get [`ReadError::Closed`].
    /// Takes the writer role if no live process holds it.
    ///
    /// # Errors
    /// [`WriteError::RoleTaken`].
    pub fn close(&mut self) -> Result<(), WriteError> {
        self.ensure_writer()?;
        let h = self.hdr();
        // Release: pairs with a reader's Acquire of `closed`, after which it reloads
        // `tail` and sees every record published before.
        h.meta.closed.store(1, Ordering::Release);
        h.sleep.data.bump_and_wake(u32::MAX);
        Ok(())
    }

    fn write_impl<R>(
        &mut self,
        len: usize,
        wait: Wait,
        fill: Fill<'_>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        self.ensure_writer()?;
        // Relaxed: only the writer sets `closed`, and we hold the role.
        if self.hdr().meta.closed.load(Ordering::Relaxed) != 0 {
            return Err(WriteError::Closed);
        }
        if len > self.max_message_len() {
            return Err(WriteError::TooLarge {
                len,
                max: self.max_message_len(),
            });
        }
        let rec = rec_size(len as u64);
        let seq = self.next_seq;
        let mut off = self.tail & (self.cap - 1);
        if rec > self.cap - off {
            // Skip to the start with a wrap marker, published on its own: the record
            // may need the marker's bytes to be freed (Block: readers move their
            // cursors past it) or forgotten (Overwrite: `head` moves past it) first;
            // waiting for both at once could wait for more than the capacity.
            let skip = self.cap - off;
            self.room(skip, wait)?;
            // Relaxed: published by the Release store of `tail` in `publish`.
            self.word(off).store(seq, Ordering::Relaxed);
            self.word(off + 8).store(u64::from(WRAP), Ordering::Relaxed);
            self.tail += skip;
            self.publish();
            off = 0;
        }
        self.room(rec, wait)?;
        // Relaxed: as above.
        self.word(off).store(seq, Ordering::Relaxed);
        self.word(off + 8).store(len as u64, Ordering::Relaxed);
        let r = self.fill_payload(off + REC_HDR, len, fill, f)?;
        self.tail += rec;
        self.next_seq = seq + 1;
        self.written = self.written.wrapping_add(1);
        self.publish();
        Ok(r)
    }

    /// Waits (Block) or makes (Overwrite) room for `need` bytes at `tail`.
    fn room(&mut self, need: u64, wait: Wait) -> Result<(), WriteError> {
        match P::POLICY {
            Policy::Block => self.wait_for_room(need, wait),
            Policy::Overwrite => {
                self.make_room(need);
                Ok(())
            }
        }
    }

    /// Publishes what was written up to `tail` and wakes sleeping readers.
    fn publish(&self) {
        let t = &self.hdr().tail;
        // Relaxed: published with `tail` (Release) just after.
        t.next_seq.store(self.next_seq, Ordering::Relaxed);
        // Release: the record's words and bytes happen-before a reader's Acquire of
        // `tail` (pairs with `Subscriber::refresh_tail`).
        t.tail.store(self.tail, Ordering::Release);
        // One futex wake for every sleeping reader, and no syscall when none sleeps or
        // every sleeper has been woken since it slept.
        self.hdr().sleep.data.wake_all_once();
    }

    /// Stores the payload at data offset `at` (the record fits before the end).
    fn fill_payload<R>(
        &mut self,
        at: u64,
        len: usize,
        fill: Fill<'_>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, WriteError> {
        if P::POLICY == Policy::Block && cfg!(not(loom)) {
            // SAFETY: `at + len <= cap` (the record fits before the end), inside the
            // data ring; in Block mode no reader reads these bytes until `tail` is
            // published past them, and the bytes are free (every live reader's cursor
            // is past them minus the capacity: `wait_for_room`); `&mut self` keeps
            // other slices of this handle away.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(
                    self.words.as_ptr().cast::<u8>().add(at as usize),
                    len,
                )
            };
            return Ok(match fill {
                Fill::Bytes(msg) => {
                    buf.copy_from_slice(msg);
                    f(buf)
                }
                Fill::With => f(buf),
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = match fill {
            Fill::Bytes(msg) => {
                self.store_words(at, msg);
                f(&mut [])
            }
            Fill::With => {
                scratch.clear();
                scratch.resize(len, 0);
                let r = f(&mut scratch);
                self.store_words(at, &scratch);
                r
            }
        };
        self.scratch = scratch;
        Ok(r)
    }

    /// Stores `bytes` at data offset `at` with atomic word stores (the last word
    /// zero-padded).
    fn store_words(&self, at: u64, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            // Relaxed: ordered for readers by the Release fence of `make_room` (seqlock)
            // and published by the Release store of `tail`.
            self.word(at + 8 * i as u64)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// Overwrite: moves `head` past every record that the next `need` bytes will
    /// overwrite, then fences so that readers that see any of the new stores see the
    /// new `head`.
    fn make_room(&mut self, need: u64) {
        if self.tail + need - self.head <= self.cap {
            return;
        }
        let mask = self.cap - 1;
        while self.tail + need - self.head > self.cap {
            let off = self.head & mask;
            // Relaxed: our own (or a dead predecessor's completed) record headers.
            let len = self.word(off + 8).load(Ordering::Relaxed);
            let step = if len == u64::from(WRAP) {
                self.cap - off
            } else {
                rec_size(len.min(self.cap))
            };
            let bad = if len == u64::from(WRAP) {
                off == 0
            } else {
                len > self.cap - REC_HDR || step > self.cap - off
            };
            if bad || self.head + step > self.tail {
                // A header no writer wrote: forget every old record.
                self.head = self.tail;
                break;
            }
            self.head += step;
        }
        // Relaxed + Release fence: the seqlock write side. The fence orders this store
        // before every store of the new record; a reader whose copy saw one of those
        // stores sees this `head` after its Acquire fence (pairs with
        // `Subscriber::still_there`).
        self.hdr().tail.head.store(self.head, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Block: scans the registry; returns the new limit (see the module docs) and
    /// stores it.
    fn scan(&mut self) -> u64 {
        self.limit = scan_limit(self.lines(), self.tail, self.cap);
        self.limit
    }

    fn lines(&self) -> &[ReaderLine] {
        // SAFETY: `max_readers` lines follow the header (checked at open), valid while
        // the handle lives; they are atomics only.
        unsafe { std::slice::from_raw_parts(self.readers.as_ptr(), self.max_readers as usize) }
    }

    /// Block: waits until `need` bytes at `tail` are free for every live reader.
    /// Readers found dead while we wait lose their slot.
    fn wait_for_room(&mut self, need: u64, wait: Wait) -> Result<(), WriteError> {
        if self.tail + need <= self.limit || self.tail + need <= self.scan() {
            return Ok(());
        }
        let deadline = match wait {
            Wait::No => return Err(WriteError::Full),
            Wait::Until(d) => d,
        };
        // Taken out for the poll (`scan` needs `&mut self`), put back after it.
        let gauge = std::mem::take(&mut self.write_poll);
        let mut backoff = crate::shim::poll_backoff(&gauge);
        let mut room = false;
        while !room && backoff.snooze() {
            room = self.tail + need <= self.scan();
        }
        drop(backoff);
        self.write_poll = gauge;
        if room {
            return Ok(());
        }
        let mut pace = CheckPace::new();
        // The next liveness check of the readers holding us back: on a clock of its
        // own, so that wakes by other (live) readers do not postpone it.
        let mut check_at = pace.next_slice(deadline);
        loop {
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(WriteError::Timeout);
            }
            let (h, lines, tail, cap) = (self.hdr(), self.lines(), self.tail, self.cap);
            h.sleep
                .space
                .park(Some(&check_at), || {
                    tail + need <= scan_limit(lines, tail, cap)
                })
                .map_err(WriteError::Os)?;
            if self.tail + need <= self.scan() {
                return Ok(());
            }
            if check_at.has_passed() {
                self.reap_dead_readers(need);
                if self.tail + need <= self.scan() {
                    return Ok(());
                }
                check_at = pace.next_slice(deadline);
            }
        }
    }

    /// Block, slow path: marks left the slots of readers that hold the writer back
    /// and are dead (a `/proc` read each), waking nobody (the writer is the waiter).
    fn reap_dead_readers(&self, need: u64) {
        for line in self.lines() {
            let w = line.slot.word();
            let pid = holder_pid(w);
            if pid == 0 {
                continue;
            }
            // Acquire: as in `scan_limit`.
            let cursor = line.cursor.load(Ordering::Acquire);
            if self.tail + need <= cursor.saturating_add(self.cap) {
                continue;
            }
            if !is_alive_in(self.segment(), pid, w >> 32) {
                line.slot.reap(w);
            }
        }
    }
}

/// The Block writer's limit: (lowest cursor of a registered reader, or `tail` if
/// lower) + capacity.
fn scan_limit(lines: &[ReaderLine], tail: u64, cap: u64) -> u64 {
    // SeqCst fence: pairs with the one a joining reader issues after its provisional
    // cursor (Dekker): either we see that reader (slot and cursor), or its reload of
    // `tail` sees our tail, at or after the position we scan from.
    fence(Ordering::SeqCst);
    let mut low = tail;
    for line in lines {
        // Acquire (in `word`): pairs with the Release of a leaving reader's slot.
        if holder_pid(line.slot.word()) == 0 {
            continue;
        }
        // Acquire: pairs with the reader's Release of `cursor`: its reads of the
        // records below happen-before our overwrite of them.
        let c = line.cursor.load(Ordering::Acquire);
        // A cursor past the tail is impossible; it is taken as the tail.
        low = low.min(c);
    }
    low + cap
}

enum Fill<'a> {
    Bytes(&'a [u8]),
    With,
}

impl<P: TopicPolicy> Drop for Topic<P> {
    fn drop(&mut self) {
        if Self::holds(self.writer_pid) {
            let _ = self.close();
            // After the close: a reader that sees the writer gone sees `closed`.
            self.hdr().meta.writer.release(self.written);
        }
    }
}

impl<P: TopicPolicy> Topic<P> {
    /// Joins as a reader: takes a registry slot and starts at the current end (the
    /// next message written is the first this reader sees).
    ///
    /// # Errors
    /// [`ReadError::TooManyReaders`] when every slot is held by a live reader.
    pub fn subscribe(&self) -> Result<Subscriber<'_, P>, ReadError> {
        let seg = self.segment();
        // Vacant or left slots first (one CAS, no `/proc` read), then the others (a
        // dead holder's slot is taken over: a crash loop never exhausts the slots).
        let mut slot = None;
        for pass in 0..2 {
            for i in 0..self.max_readers {
                let line = self.reader(i);
                let free = holder_pid(line.slot.word()) == 0;
                if free == (pass == 0) && in_segment(seg, || line.slot.claim()).is_ok() {
                    slot = Some(i);
                    break;
                }
            }
            if slot.is_some() {
                break;
            }
        }
        let Some(slot) = slot else {
            return Err(ReadError::TooManyReaders {
                max: self.max_readers,
            });
        };
        self.prefault();
        let line = self.reader(slot);
        let t = &self.hdr().tail;
        // Acquire: pairs with the writer's Release of `tail`.
        let provisional = t.tail.load(Ordering::Acquire);
        // Relaxed: ordered by the fence below.
        line.cursor.store(provisional, Ordering::Relaxed);
        // SeqCst fence: pairs with the one in `scan_limit` (see there).
        fence(Ordering::SeqCst);
        // Acquire: as above; at or after `provisional` (one location, one thread).
        let start = t.tail.load(Ordering::Acquire);
        // Relaxed: stored before that `tail` (at most one ahead, see `published`).
        let seq = t.next_seq.load(Ordering::Relaxed);
        // Release: as every cursor store (only moves forward).
        line.cursor.store(start, Ordering::Release);
        // Relaxed: informational.
        line.seq.store(seq, Ordering::Relaxed);
        // A writer waiting on this slot's stale cursor rescans now.
        self.hdr().sleep.space.wake_all_once();
        Ok(Subscriber {
            topic: self,
            slot,
            pos: start,
            seq,
            read: 0,
            watch: HolderWatch::new(),
            #[cfg(loom)]
            unchecked: false,
        })
    }
}

/// A reader of a [`Topic`]: holds a registry slot until dropped. See
/// [`Topic::subscribe`].
pub struct Subscriber<'a, P: TopicPolicy = Block> {
    topic: &'a Topic<P>,
    slot: u32,
    /// Byte position of the next record.
    pos: u64,
    /// Sequence number of the next record.
    seq: u64,
    /// Messages read.
    read: u64,
    /// Its judgement of the writer, kept across waits (the topic's mapping outlives
    /// the subscriber, which borrows it).
    watch: HolderWatch,
    /// Loom only: skip the seqlock validation (shows the model finds torn copies).
    #[cfg(loom)]
    unchecked: bool,
}

impl<P: TopicPolicy> std::fmt::Debug for Subscriber<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("slot", &self.slot)
            .field("next_seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<P: TopicPolicy> Drop for Subscriber<'_, P> {
    fn drop(&mut self) {
        let line = self.topic.reader(self.slot);
        // Release (in `release`): a writer that sees LEFT sees our last cursor.
        if line.slot.release(self.read) {
            // A writer asleep on this reader learns at once.
            self.topic.hdr().sleep.space.wake_all_once();
        }
    }
}

impl<P: TopicPolicy> Subscriber<'_, P> {
    /// Loom only: this subscriber without the seqlock validation.
    #[cfg(loom)]
    pub(crate) fn unchecked(mut self) -> Self {
        self.unchecked = true;
        self
    }

    /// The registry slot this reader holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Sequence number of the next message this reader expects.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Reads the next message into `buf` (replacing its contents); returns its length.
    /// Waits while there is none.
    ///
    /// # Errors
    /// [`ReadError::Closed`] once the topic is closed and drained,
    /// [`ReadError::PeerDied`] when the writer died (after every complete message),
    /// [`ReadError::Lagged`] (Overwrite), [`ReadError::Corrupt`], [`ReadError::Os`].
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
        self.read_into_impl(buf, Wait::Until(None))
    }

    /// As [`Subscriber::read_into`], giving up with [`ReadError::Timeout`].
    ///
    /// # Errors
    /// As [`Subscriber::read_into`], plus [`ReadError::Timeout`].
    pub fn read_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, ReadError> {
        self.read_into_impl(buf, Wait::timeout(timeout))
    }

    /// As [`Subscriber::read_into`], failing with [`ReadError::Empty`] instead of
    /// waiting (it does not check the writer's liveness).
    ///
    /// # Errors
    /// As [`Subscriber::read_into`] (except `PeerDied`), plus [`ReadError::Empty`].
    pub fn try_read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
        self.read_into_impl(buf, Wait::No)
    }

    fn read_into_impl(&mut self, buf: &mut Vec<u8>, wait: Wait) -> Result<usize, ReadError> {
        let (off, len, seq) = self.next_record(wait)?;
        buf.clear();
        buf.reserve(len as usize);
        for i in 0..round8(len) / 8 {
            // Relaxed: Block: ordered after the Acquire of `tail`; Overwrite: the
            // seqlock read side, validated by `still_there` below.
            let w = self
                .topic
                .word(off + REC_HDR + 8 * i)
                .load(Ordering::Relaxed);
            let take = (len - 8 * i).min(8) as usize;
            buf.extend_from_slice(&w.to_ne_bytes()[..take]);
        }
        if P::POLICY == Policy::Overwrite && !self.still_there() {
            buf.clear();
            return match self.recover()? {
                0 => self.read_into_impl(buf, wait),
                n => Err(ReadError::Lagged(n)),
            };
        }
        self.consume(len, seq);
        Ok(len as usize)
    }

    /// Overwrite, seqlock read side: whether the record at `pos` was not reached by
    /// the writer while we read it.
    fn still_there(&self) -> bool {
        #[cfg(loom)]
        if self.unchecked {
            return true;
        }
        // Acquire fence: pairs with the Release fence in `make_room`: if any of our
        // relaxed loads saw a store of a newer record, this load of `head` sees the
        // `head` stored before it.
        fence(Ordering::Acquire);
        self.topic.hdr().tail.head.load(Ordering::Relaxed) <= self.pos
    }

    /// Overwrite: moves to the oldest record still there; returns how many messages
    /// were missed.
    fn recover(&mut self) -> Result<u64, ReadError> {
        let t = &self.topic.hdr().tail;
        let mask = self.topic.cap - 1;
        loop {
            // Acquire: pairs with the writer's head store (fenced) and Release of tail.
            let head = t.head.load(Ordering::Acquire);
            let tail = t.tail.load(Ordering::Acquire);
            if !head.is_multiple_of(16) || head > tail.saturating_add(self.topic.cap) {
                return Err(ReadError::Corrupt {
                    what: "head is not on a record boundary",
                });
            }
            let seq = if head >= tail {
                // Relaxed: stored before that tail.
                t.next_seq.load(Ordering::Relaxed)
            } else {
                // Relaxed: validated by the head reload below.
                self.topic.word(head & mask).load(Ordering::Relaxed)
            };
            fence(Ordering::Acquire);
            // Relaxed: the seqlock check, as in `still_there`.
            if t.head.load(Ordering::Relaxed) == head {
                let missed = seq.saturating_sub(self.seq);
                self.pos = head.min(tail);
                self.seq = seq;
                return Ok(missed);
            }
        }
    }

    fn consume(&mut self, len: u64, seq: u64) {
        self.pos += rec_size(len);
        // Wrapping: a sequence number from a corrupt record must not panic.
        self.seq = seq.wrapping_add(1);
        self.read = self.read.wrapping_add(1);
        self.store_cursor();
    }

    /// Publishes `pos` (and `seq`) in this reader's line; Block: wakes the writer.
    fn store_cursor(&self) {
        let line = self.topic.reader(self.slot);
        // Relaxed: informational.
        line.seq.store(self.seq, Ordering::Relaxed);
        // Release: our reads of the record happen-before the writer's overwrite
        // (pairs with the Acquire load in `scan_limit`).
        line.cursor.store(self.pos, Ordering::Release);
        if P::POLICY == Policy::Block {
            self.topic.hdr().sleep.space.wake_all_once();
        }
    }

    /// The next complete record (skipping wrap markers), validated to lie in the
    /// published range: (data offset, payload length, sequence number).
    fn next_record(&mut self, wait: Wait) -> Result<(u64, u64, u64), ReadError> {
        let cap = self.topic.cap;
        let mask = cap - 1;
        let mut tail = self.refresh_tail()?;
        loop {
            if tail == self.pos {
                self.wait_for_data(wait)?;
                tail = self.refresh_tail()?;
                continue;
            }
            let over = P::POLICY == Policy::Overwrite;
            if over && !self.still_there() {
                match self.recover()? {
                    0 => continue,
                    n => return Err(ReadError::Lagged(n)),
                }
            }
            let off = self.pos & mask;
            // Relaxed: after the Acquire of `tail` (Overwrite: validated below).
            let seq = self.topic.word(off).load(Ordering::Relaxed);
            let len = self.topic.word(off + 8).load(Ordering::Relaxed);
            let step = if len == u64::from(WRAP) {
                cap - off
            } else {
                rec_size(len.min(cap))
            };
            // A wrap marker at offset 0 is never written (a record always fits there);
            // refusing it bounds the skips to one per record on a corrupt ring.
            let bad = if len == u64::from(WRAP) {
                off == 0
            } else {
                len > cap - REC_HDR || step > cap - off
            } || self.pos + step > tail;
            if over && !self.still_there() {
                continue; // the next turn recovers
            }
            if bad {
                return Err(ReadError::Corrupt {
                    what: "record beyond the written range",
                });
            }
            if len == u64::from(WRAP) {
                self.pos += step;
                if !over {
                    // Published now, not with the next record: the writer may be
                    // waiting for exactly these bytes (see `Topic::write_impl`).
                    self.store_cursor();
                }
                continue;
            }
            return Ok((off, len, seq));
        }
    }

    fn refresh_tail(&self) -> Result<u64, ReadError> {
        // Acquire: pairs with the writer's Release of `tail`: records below it are
        // completely written.
        let tail = self.topic.hdr().tail.tail.load(Ordering::Acquire);
        if tail < self.pos
            || tail > MAX_POSITION
            || !tail.is_multiple_of(16)
            || !self.pos.is_multiple_of(16)
        {
            return Err(ReadError::Corrupt {
                what: "tail behind a reader or off a record boundary",
            });
        }
        Ok(tail)
    }

    /// Waits until `tail` moves past `pos`.
    fn wait_for_data(&mut self, wait: Wait) -> Result<(), ReadError> {
        let deadline = match wait {
            Wait::No => {
                return if self.topic.is_closed() && self.refresh_tail()? == self.pos {
                    Err(ReadError::Closed)
                } else if self.refresh_tail()? != self.pos {
                    Ok(())
                } else {
                    Err(ReadError::Empty)
                };
            }
            Wait::Until(d) => d,
        };
        loop {
            let (h, pos) = (self.topic.hdr(), self.pos);
            let on = PeerWaitOn {
                segment: self.topic.segment(),
                parker: &h.sleep.data,
                peer: &h.meta.writer,
                closed: Some(&h.meta.closed),
            };
            // SAFETY: the subscriber borrows the topic, whose mapping holds the parker,
            // for as long as it (and so `watch`) lives.
            // Acquire: as in `refresh_tail` (which checks what this found).
            let end = unsafe {
                on.wait(&mut self.watch, deadline, || {
                    h.tail.tail.load(Ordering::Acquire) != pos
                })
            }
            .map_err(ReadError::Os)?;
            return match end {
                PeerWait::Ready => {
                    if self.refresh_tail()? == self.pos {
                        continue;
                    }
                    Ok(())
                }
                // A writer that leaves closes first; a slot left without `closed`
                // (another program's doing) reads the same.
                PeerWait::Closed | PeerWait::Left { .. } => Err(ReadError::Closed),
                // A dead writer publishes nothing more; what it published was seen.
                PeerWait::Died { pid } => Err(ReadError::PeerDied { pid }),
                PeerWait::TimedOut => Err(ReadError::Timeout),
            };
        }
    }
}

impl Subscriber<'_, Block> {
    /// Reads the next message in place (zero-copy): `f` sees it as one slice, and the
    /// writer may reuse its bytes once `f` returns. Waits while there is none.
    ///
    /// Trust model: the slice points into shared memory that the writer does not
    /// write while this reader's cursor is before it (Block mode's rule); a writer
    /// process that breaks the protocol (not shmkit's code) could change it under `f`.
    ///
    /// # Errors
    /// As [`Subscriber::read_into`] (never `Lagged`).
    pub fn read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        self.read_with_impl(Wait::Until(None), f)
    }

    /// As [`Subscriber::read_with`], giving up with [`ReadError::Timeout`].
    ///
    /// # Errors
    /// As [`Subscriber::read_into_timeout`].
    pub fn read_with_timeout<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        self.read_with_impl(Wait::timeout(timeout), f)
    }

    /// As [`Subscriber::read_with`] without waiting.
    ///
    /// # Errors
    /// As [`Subscriber::try_read_into`].
    pub fn try_read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        self.read_with_impl(Wait::No, f)
    }

    fn read_with_impl<R>(
        &mut self,
        wait: Wait,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        #[cfg(loom)]
        {
            let mut buf = Vec::new();
            self.read_into_impl(&mut buf, wait)?;
            Ok(f(&buf))
        }
        #[cfg(not(loom))]
        {
            let (off, len, seq) = self.next_record(wait)?;
            // SAFETY: `next_record` checked `off + 16 + len <= cap`, inside the data
            // ring; the writer published these bytes (Acquire of `tail`) and does not
            // overwrite them before our cursor moves past them, which happens in
            // `consume`, after `f` returns.
            let msg = unsafe {
                std::slice::from_raw_parts(
                    self.topic
                        .words
                        .as_ptr()
                        .cast::<u8>()
                        .add((off + REC_HDR) as usize),
                    len as usize,
                )
            };
            let r = f(msg);
            self.consume(len, seq);
            Ok(r)
        }
    }
}

/// A topic of `T: Pod` messages: a [`Topic`] whose segment tag records `T`, so
/// opening it as another type is [`crate::OpenError::TypeMismatch`].
///
/// # Example
/// ```
/// use shmkit_typed::topic::{Overwrite, TopicConfig, TypedTopic};
///
/// let mut w = TypedTopic::<u64, Overwrite>::anonymous(TopicConfig::new(1024))?;
/// let r = w.reader_handle()?;
/// let mut sub = r.subscribe()?;
/// w.write_value(&42)?;
/// assert_eq!(sub.read_value()?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedTopic<T: bytemuck::Pod, P: TopicPolicy = Block> {
    inner: Topic<P>,
    _t: PhantomData<fn() -> T>,
}

impl<T: bytemuck::Pod, P: TopicPolicy> std::fmt::Debug for TypedTopic<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedTopic").field(&self.inner).finish()
    }
}

impl<T: bytemuck::Pod, P: TopicPolicy> TypedTopic<T, P> {
    /// The type tag of topics of `T` with this policy.
    #[cfg(not(loom))]
    pub fn type_tag() -> shmkit_segment::TypeTag {
        crate::types::tag_of::<T>(P::KIND)
    }

    #[cfg(not(loom))]
    crate::family::family_forms!(config: TopicConfig);

    /// The byte topic underneath.
    pub fn as_bytes(&mut self) -> &mut Topic<P> {
        &mut self.inner
    }

    /// Another handle to the same topic.
    ///
    /// # Errors
    /// As [`Topic::reader_handle`].
    #[cfg(not(loom))]
    pub fn reader_handle(&self) -> Result<Self, crate::OpenError> {
        <Self as crate::SharedObject>::open_in(reopen_options(self.inner.segment())?)
    }

    /// Publishes `v`, as [`Topic::write`].
    ///
    /// # Errors
    /// As [`Topic::write`].
    pub fn write_value(&mut self, v: &T) -> Result<(), WriteError> {
        self.inner.write(bytemuck::bytes_of(v))
    }

    /// Closes the topic, as [`Topic::close`].
    ///
    /// # Errors
    /// As [`Topic::close`].
    pub fn close(&mut self) -> Result<(), WriteError> {
        self.inner.close()
    }

    /// Joins as a reader, as [`Topic::subscribe`].
    ///
    /// # Errors
    /// As [`Topic::subscribe`].
    pub fn subscribe(&self) -> Result<TypedSubscriber<'_, T, P>, ReadError> {
        Ok(TypedSubscriber {
            inner: self.inner.subscribe()?,
            buf: Vec::with_capacity(std::mem::size_of::<T>()),
            _t: PhantomData,
        })
    }
}

/// A reader of a [`TypedTopic`].
pub struct TypedSubscriber<'a, T: bytemuck::Pod, P: TopicPolicy = Block> {
    inner: Subscriber<'a, P>,
    buf: Vec<u8>,
    _t: PhantomData<fn() -> T>,
}

impl<T: bytemuck::Pod, P: TopicPolicy> std::fmt::Debug for TypedSubscriber<'_, T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedSubscriber").field(&self.inner).finish()
    }
}

impl<T: bytemuck::Pod, P: TopicPolicy> TypedSubscriber<'_, T, P> {
    /// The next value, as [`Subscriber::read_into`].
    ///
    /// # Errors
    /// As [`Subscriber::read_into`]; [`ReadError::Corrupt`] for a message of another
    /// size than `T`.
    pub fn read_value(&mut self) -> Result<T, ReadError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.inner.read_into(&mut buf).and_then(|_| value_of(&buf));
        self.buf = buf;
        r
    }

    /// As [`TypedSubscriber::read_value`] with a timeout.
    ///
    /// # Errors
    /// As [`Subscriber::read_into_timeout`].
    pub fn read_value_timeout(&mut self, timeout: Duration) -> Result<T, ReadError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self
            .inner
            .read_into_timeout(&mut buf, timeout)
            .and_then(|_| value_of(&buf));
        self.buf = buf;
        r
    }

    /// As [`TypedSubscriber::read_value`] without waiting.
    ///
    /// # Errors
    /// As [`Subscriber::try_read_into`].
    pub fn try_read_value(&mut self) -> Result<T, ReadError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self
            .inner
            .try_read_into(&mut buf)
            .and_then(|_| value_of(&buf));
        self.buf = buf;
        r
    }
}

/// Options that open `seg` again: its memfd (anonymous), else its name.
#[cfg(not(loom))]
fn reopen_options(
    seg: Option<&shmkit_segment::Segment>,
) -> Result<shmkit_segment::SegmentOptions, crate::OpenError> {
    use shmkit_segment::{Backend, Segment};
    let seg = seg.expect("a topic handle outside loom maps a segment");
    let again = match (seg.backend(), seg.fd(), seg.name()) {
        (_, Some(fd), _) => fd
            .try_clone_to_owned()
            .ok()
            .map(|fd| Segment::options().fd(fd)),
        (Backend::Posix, _, Some(name)) => Some(Segment::options().posix(name)),
        (Backend::File, _, Some(path)) => Some(Segment::options().file(path)),
        _ => None,
    };
    again.ok_or_else(|| crate::OpenError::Corrupt {
        name: seg.name().unwrap_or("(anonymous)").to_owned(),
        reason: "this segment cannot be opened again from its handle: open it by name or key"
            .into(),
    })
}

fn value_of<T: bytemuck::Pod>(bytes: &[u8]) -> Result<T, ReadError> {
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(ReadError::Corrupt {
            what: "a message of another size than the topic's type",
        });
    }
    Ok(bytemuck::pod_read_unaligned(bytes))
}

#[cfg(not(loom))]
impl<P: TopicPolicy> crate::family::sealed::Layout for Topic<P> {
    type Init = TopicConfig;
    const OBJECT: &'static str = "Topic";

    fn tag() -> shmkit_segment::TypeTag {
        Self::type_tag()
    }

    fn payload_size(config: &TopicConfig) -> Result<usize, crate::CreateError> {
        config.check(0)?;
        Ok(config.region_size())
    }

    unsafe fn init_payload(ptr: *mut u8, _len: usize, config: TopicConfig) {
        // SAFETY: the trait's contract (fresh, private, zeroed, aligned, large enough).
        unsafe { Self::init_at(ptr, config) }
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        Self::open_segment(seg)
    }

    fn check_init(&self, config: &TopicConfig) -> Result<(), crate::OpenError> {
        crate::family::check_payload(self.segment(), config.region_size())
    }
}

#[cfg(not(loom))]
impl<T: bytemuck::Pod, P: TopicPolicy> crate::family::sealed::Layout for TypedTopic<T, P> {
    type Init = TopicConfig;
    const OBJECT: &'static str = "TypedTopic";

    fn tag() -> shmkit_segment::TypeTag {
        Self::type_tag()
    }

    fn payload_size(config: &TopicConfig) -> Result<usize, crate::CreateError> {
        config.check(std::mem::size_of::<T>())?;
        Ok(config.region_size())
    }

    unsafe fn init_payload(ptr: *mut u8, _len: usize, config: TopicConfig) {
        // SAFETY: the trait's contract, as for `Topic`.
        unsafe { Topic::<P>::init_at(ptr, config) }
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        Ok(TypedTopic {
            inner: Topic::open_segment(seg)?,
            _t: PhantomData,
        })
    }

    fn check_init(&self, config: &TopicConfig) -> Result<(), crate::OpenError> {
        crate::family::check_payload(self.inner.segment(), config.region_size())
    }
}

/// What `shmkit inspect` shows of a topic: see [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    /// The policy.
    pub policy: Policy,
    /// Data capacity in bytes.
    pub capacity: usize,
    /// Reader slots.
    pub max_readers: u32,
    /// Messages published so far.
    pub published: u64,
    /// Whether the writer closed it.
    pub closed: bool,
    /// The writer's pid and whether it runs, if one holds the role.
    pub writer: Option<(u32, bool)>,
    /// The registered readers.
    pub readers: Vec<ReaderInfo>,
}

/// Opens the topic in the segment of `options` whatever its element type, read-only
/// in effect (no role is taken), and describes it with its readers (pid, alive,
/// position, lag). For `shmkit inspect`.
///
/// # Errors
/// As [`Topic::open`]; [`OpenError::TypeMismatch`](crate::OpenError::TypeMismatch)
/// when the segment holds no topic.
#[cfg(not(loom))]
pub fn inspect(options: shmkit_segment::SegmentOptions) -> Result<TopicView, crate::OpenError> {
    let seg = options.any_type().open()?;
    let kind = seg.header().map(|h| h.type_tag.kind());
    if kind == Some(Block::KIND) {
        Ok(Topic::<Block>::open_segment(seg)?.view())
    } else if kind == Some(Overwrite::KIND) {
        Ok(Topic::<Overwrite>::open_segment(seg)?.view())
    } else {
        Err(crate::OpenError::TypeMismatch {
            expected: "a Topic".into(),
            found: seg.header().map_or_else(
                || "no header".into(),
                |h| crate::types::describe_object(&h.type_tag),
            ),
        })
    }
}

impl<P: TopicPolicy> Topic<P> {
    /// This topic as [`inspect`] describes it.
    pub fn view(&self) -> TopicView {
        let w = self.hdr().meta.writer.word();
        let pid = holder_pid(w);
        TopicView {
            policy: P::POLICY,
            capacity: self.capacity(),
            max_readers: self.max_readers,
            published: self.published(),
            closed: self.is_closed(),
            writer: (pid != 0).then(|| (pid, is_alive_in(self.segment(), pid, w >> 32))),
            readers: self.readers(),
        }
    }
}
