//! [`Channel<T>`]: a multi-producer multi-consumer channel of variable-size messages in
//! shared memory, `T: Serialize + DeserializeOwned` encoded with postcard, every
//! message delivered to exactly one receiver, in per-sender order; disconnection like
//! `crossbeam-channel`'s, across processes and crashes.
//!
//! # Example
//! ```
//! use serde::{Deserialize, Serialize};
//! use shmkit_typed::{Channel, RecvError};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Job { id: u64, name: String, payload: Vec<u8> }
//!
//! // Named: `Channel::<Job>::create(name, capacity_bytes)` / `open(name)`. Anonymous
//! // memory is shared with children forked after this line.
//! let tx = Channel::<Job>::anonymous(64 * 1024)?;
//! let rx = tx.clone(); // another handle: its own roles, as another process has
//! tx.send(Job { id: 1, name: "resize".into(), payload: vec![1, 2, 3] })?;
//! tx.send_bytes(&[])?; // the bytes path: here a zero-length record
//! assert_eq!(rx.recv()?.name, "resize");
//! assert_eq!(rx.recv_with(|bytes| bytes.len())?, 0); // read in place
//! drop(tx); // the only sender leaves: the receiver drains, then is told
//! assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Shape: one handle, roles taken on first use
//! A [`Channel<T>`] handle is both ends: its first send registers it as a *sender*,
//! its first receive as a *receiver* (as the [`Ring`](crate::Ring) takes its roles).
//! One type instead of a `Sender`/`Receiver` pair because every handle is made the
//! same way ([the family](crate::family): `open(name)` in an unrelated process cannot
//! know which end it is asked for) and a handle copied into a forked child must
//! register again anyway (its process is another peer). A handle is `Send`, not
//! `Sync`: its registry entries carry the position it is working on, one operation at
//! a time; [`Clone`] makes another handle on the same mapping for another thread.
//!
//! # The format
//! postcard 1.1 (`~1.1`; postcard 1.2 needs Rust 1.88, above this workspace's MSRV
//! 1.87): compact (varints, no field names), maintained, `serde`-only and documented
//! as a wire format (<https://postcard.jamesmunns.com/wire-format>), so another
//! language can produce it. bincode is unmaintained (its 3.0 is a deliberate compile
//! error). A message is encoded straight into its record (one size pass, one encode
//! pass: no intermediate buffer); the bytes paths ([`Channel::send_bytes`],
//! [`Channel::send_with`], [`Channel::recv_with`]) skip postcard.
//!
//! # Channel and `Queue<T: Pod>`
//! Two protocols, not two of the same thing: [`Queue<T: Pod>`](crate::Queue) is the
//! fixed-size queue (one slot per item, a Vyukov array: no codec, no framing, no
//! record walk, so a `put` of a small `Pod` is one slot claim), the channel the
//! variable-size one over one byte buffer (records, a codec, the bytes paths). A codec
//! type parameter on the queue would not make it a channel (its slots have one size);
//! a `Pod` codec on the channel would make a slower queue. What differs today is the
//! end of the stream: the queue has an explicit [`close`](crate::Queue::close)
//! (`put` → `Closed(item)`, `get` drains, then `Closed`) and no registry, so a
//! consumer of a queue whose producers were all *killed* waits (or times out) instead
//! of getting `Disconnected`; the channel's registry gives that without a close.
//! Giving the queue the same shape means moving this registry (entries, live counts,
//! "ever attached", reaping) into `peer.rs` for both, a queue header with room for it
//! (a layout version bump), `Disconnected` variants beside `Closed`, and the same
//! torture part; not done yet.
//!
//! # Record protocol
//! One byte buffer of `capacity` bytes (a power of two) and three free-running `u64`
//! byte positions: `head` ≤ `read` ≤ `tail`, `tail - head` ≤ `capacity`. Position
//! `p` lies at offset `p % capacity`. A record is an 8-byte *stamp* (an `AtomicU64`)
//! and its payload, padded to 8 bytes; it never wraps (a *wrap record*, length
//! [`WRAP_LEN`], fills the rest of the buffer instead), so every payload is one
//! contiguous slice.
//!
//! Stamp: bits 32..64 the *tag* `(p >> 3) as u32` of the record's position (so a stamp
//! left by an earlier lap is never taken for this one), bits 3..32 the payload length,
//! bits 0..3 the state: `FREE` 0, `WRITING` 1, `COMMITTED` 2, `READING` 3, `DONE` 4.
//!
//! Invariant: the word at `tail` is the stamp `FREE(tail)` or a claim tagged `tail`.
//!
//! **Send** (length `n`, record size `s = 8 + round8(n)`):
//! 1. load `tail` = `t` (Acquire; pairs with the Release CAS of `tail` in step 4, so
//!    the `FREE(t)` written before it is seen) and the stamp at `t` (Acquire; pairs
//!    with another sender's claim, step 3, which we may have to help along);
//! 2. load `head` (Acquire; pairs with the Release CAS of `head` by whoever reclaimed
//!    the space: the reads of the receivers that consumed it happen-before our
//!    writes) and check `t + s + 8 ≤ head + capacity` (the 8: room for the next stamp);
//! 3. store our *pending* word (our registry entry) = `t + 1` (Relaxed), re-check
//!    that `tail` is still `t`, and claim: CAS the stamp `FREE(t)` → `WRITING(t, n)`
//!    (Release: publishes `pending` to a checker that Acquires the claim);
//! 4. advance the tail (anyone who sees a claim at `tail` does this, so a sender
//!    killed here stops nobody): load the word at `t + s` (Acquire), re-check `tail`
//!    is `t` (then nobody can have claimed `t + s`: claims happen only at `tail`), CAS
//!    it to `FREE(t + s)` unless it is already (Relaxed: the tail CAS publishes it,
//!    and a helper that only *read* it gets it to later senders by coherence), then
//!    CAS `tail` `t` → `t + s` (Release: pairs with step 1);
//! 5. write the payload in place, then CAS `WRITING` → `COMMITTED` (Release: pairs
//!    with a receiver's Acquire of the stamp: the payload is visible), clear
//!    `pending`, then (after a SeqCst fence) wake one receiver (the [`Parker`]
//!    `data`: a syscall only if one sleeps) if our record is at `read`, or a wrap or
//!    lost record is there, or more receivers sleep than records lie between `read`
//!    and ours (so a burst is taken by sleepers in parallel). Receivers asleep wait
//!    for the record at `read`; one at a later position is handed on by the receiver
//!    that claims the record before it (after moving `read`, a SeqCst fence, then the
//!    stamp at the new `read`: the Dekker pair with this step). So while a woken receiver is being scheduled,
//!    later commits make no syscall (they made one each before: on this 2-vCPU VM
//!    that was most of a sender's time whenever its receiver had gone to sleep).
//!
//! A record that does not fit before the end is preceded by a wrap record, claimed
//! `FREE` → `DONE(t, WRAP_LEN)` and advanced over as in step 4.
//!
//! **Receive**: load `read` = `r` (Acquire, see below; validated by the stamp's tag), the stamp
//! at `r` (Acquire; pairs with step 5: the payload is visible) and `head` ≤ `r` (else
//! `r` is stale). A `COMMITTED` stamp tagged `r` is claimed at once: it lies below the
//! tail (a sender commits only after the tail passed its record), so the hot path
//! does not read `tail`, the senders' line. Otherwise load `tail` (Acquire; pairs with
//! step 4: the stamp at `r < tail` is a claim; `r == tail`: empty) and look again.
//! `COMMITTED`: store our pending = `r + 1`, CAS → `READING` (Release:
//! publishes pending), CAS `read` `r` → `r + s` (Release, read with Acquire: a
//! receiver that sees the new `read` also sees the tail past it; `read` only bounds
//! where `head` may go, and every stamp below it is re-checked), read the payload in place,
//! then CAS `READING` → `DONE` (Release: our reads happen-before the Acquire of
//! `DONE` in `advance_head`, hence before the space is reused) and, if our record is
//! at `head`, wake the senders asleep on `space` (a SeqCst fence, then `head`: the
//! [`Parker`]'s Dekker pair, for `head` as for its sleepers count; a sender about to
//! sleep re-checks the stamp at `head`, and only that record's `DONE` lets it
//! reclaim: the others are reclaimed with it, so a receiver draining a full channel
//! makes one wake-up syscall, not one per record). `READING` or `DONE` at `read` (another receiver's claim, a
//! lost record, a wrap record): advance `read` over it. `WRITING`: the sender is
//! filling it; wait.
//!
//! **Reclaim** (`advance_head`): run by a sender that finds the channel full (and
//! after a record is given up), never on a receive's hot path, so that a receive
//! writes no shared cursor but `read` and the reclaim of many records is one pass:
//! walk the records from `head` while they are below `read` and their stamp is `DONE`
//! (Acquire; pairs with the `DONE` CAS), then CAS `head` over all of them at once
//! (Release; pairs with step 2; the records walked stay `DONE` until `head` passes
//! them, so the CAS from the `head` the walk started at is enough).
//!
//! **Sleeping**: a side that cannot go on spins for a while (the floor's backoff),
//! then takes a snapshot of what its re-check compares (`read`, `tail` or `head`, the
//! stamp there, the other side's live count), makes *one more* attempt, and sleeps on
//! its [`Parker`] (`data` for receivers, `space` for senders) if the state still
//! equals the snapshot: a change after that attempt is either seen by the re-check or
//! wakes it (the Parker's Dekker pair). A sender wakes one receiver when its record
//! is the one at `read` (and a receiver hands on to the next, step 5); receivers wake
//! the sleeping senders after the `DONE` of the record at `head` (a syscall only when
//! one sleeps). A [`Select`](crate::Select) sleeps on the `data`
//! parkers of several channels at once (one `futex_waitv`).
//!
//! # The bound in messages
//! A channel created with [`ChannelBounds::messages`] `n` (the header's
//! `max_messages`) also refuses a record while `n` messages lie between `read` and the
//! tail. Nothing counts them in shared memory (a counter that a peer killed between
//! its update and its claim would leave wrong for good): the sender counts the
//! records themselves, in step 2, after it saw `FREE(t)` at the tail `t` and before
//! its claim. Claims happen only at the tail, so if the claim from that `FREE(t)`
//! succeeds no record was added below `t` since the count, and receivers only took
//! some away: the bound is exact with any number of senders, and a killed peer leaves
//! nothing to repair (its record is skipped as in "Crashes" below, and counts until
//! `read` passes it). A sender handle keeps the positions it counted, so it walks only
//! the records added since its last count (about one stamp per send while it is held
//! at the bound), and none while fewer than `n` records could fit between `read` and
//! the tail. A sender held at the bound sleeps as on a full channel: after
//! reclaiming, the record at `head` is the first one not taken, and its receiver wakes
//! it.
//!
//! # Crashes: what is lost
//! Every peer's pending word names the record it holds. A blocked side checks, on its
//! slow path only (after the spin phase, before each sleep), whether the process
//! holding the record in its way is alive (the registry entry with that pending
//! position, named by pid + start time; a `/proc` read):
//! - a sender killed while writing: its record is marked `DONE` and skipped. That
//!   message is lost, never torn (receivers never saw it `COMMITTED`), never blocks
//!   others; a sender killed while advancing the tail is helped by any other sender;
//! - a receiver killed while reading: its record is marked `DONE`: **at most that one
//!   message is lost, never redelivered** (redelivery would need the killed reader's
//!   progress, and a message might then be acted on twice; "at most once" for the one
//!   in flight is the Queue's rule too);
//! - a liveness misjudgement (only across pid namespaces) makes the peer whose claim
//!   was taken over fail with `ClaimLost` instead of storing over a record that moved
//!   on: every final store is a CAS from the claim.
//!
//! # Disconnection
//! A registry of [`REGISTRY_SLOTS`] sender and as many receiver entries in the header
//! (each a `PeerSlot`: vacant / attached with pid + start time / left), a live count
//! per side and an "ever attached" flag. A handle registers on its first send or
//! receive, its first look in a [`Select`](crate::Select), or when asked
//! ([`Channel::attach_sender`], [`Channel::attach_receiver`]);
//! [`SendError::RegistryFull`] / [`RecvError::RegistryFull`] when every entry is held
//! by a live process (entries of dead processes are reclaimed first). It leaves when
//! dropped. When a sender ever attached and none is live, receivers drain what is
//! left and then get [`RecvError::Disconnected`]; when a receiver ever attached and
//! none is live, a send returns [`SendError::Disconnected`] with the message. Before
//! the first peer of the other side attaches, sends just queue and receives wait; a
//! peer that attaches again clears the state. So with producers that start at
//! different times, one that is done before the next has attached ends the
//! receivers: a coordinator holds a handle attached with [`Channel::attach_sender`]
//! until every producer has started (as `examples/channel_jobs.rs` does). A peer that
//! *leaves* is seen at once (its count); one that is *killed* is found by the other
//! side's slow path: a blocked receive, or a send into a full channel, reaps the dead
//! entries after a sleep slice that ended without a wake (10 ms, doubling to 80 ms;
//! the `try_` forms never read `/proc`).
//!
//! A blocking send also reaps the receivers' entries once every 4096 sends through
//! its handle, so killed receivers are noticed before the channel fills.
//!
//! Known limits: a `try_send` into a channel that is not full does not notice
//! receivers that were *killed* (it queues); a peer killed in the few instructions between counting itself and
//! taking its registry entry leaves the count one too high for good, so that side is
//! then never reported gone (blocked calls of the other side wait or time out); a
//! sender that is alive but slow holds back the records behind its own (delivery is in
//! reservation order); dead peers are found through `/proc` reads (no death watcher
//! registration per entry yet).
//!
//! # Bad input
//! A payload that postcard cannot decode is [`RecvError::Decode`] for that message
//! (it is consumed) and the receiver continues. A stamp whose length or state cannot
//! be right, or a cursor outside the buffer, sets the header's `corrupt` word: that
//! call and every later one returns `Corrupt` (never a panic, an out-of-bounds access
//! or an endless loop: every walk is bounded).
//!
//! # Type safety
//! The segment's type tag records [`kind::CHANNEL`](crate::types::kind::CHANNEL) and
//! a name for `T`: by default `std::any::type_name::<T>()` ([`RustName`]), or a
//! name/version string of the user's ([`TypeName`]), which another language can
//! produce. The tag's fingerprint is FNV-1a 64 (offset basis `0xcbf29ce484222325`,
//! prime `0x100000001b3`) over the kind as `u32` little-endian, the size `0u64`
//! little-endian, the alignment `1u64` little-endian, then the UTF-8 name; opening
//! with another `T` is [`OpenError::TypeMismatch`](crate::OpenError::TypeMismatch).
//!
//! # Layout
//! See `docs/layout.md`: a [`CHANNEL_HEADER_SIZE`]-byte header (metadata, the three
//! cursors on their own 128-byte lines, the two parkers, the two registries), then the
//! data buffer.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;
#[cfg(not(loom))]
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use serde::de::DeserializeOwned;
#[cfg(not(loom))]
use serde::Serialize;
use shmkit_sys::backoff::PollGauge;
use shmkit_sys::owner;
use shmkit_sys::parker::{CheckPace, Parker};

use crate::peer::{in_segment, PeerSlot, PeerState};
use crate::shim::{fence, AtomicU32, AtomicU64, Ordering};
use crate::wait::Wait;

#[cfg(not(loom))]
#[path = "channel_async.rs"]
mod async_impl;
#[cfg(not(loom))]
pub use async_impl::{RecvAsync, RecvStream, SendAsync};

/// Magic number at offset 0 of a channel ("SCHN" little-endian).
pub const CHANNEL_MAGIC: u32 = u32::from_le_bytes(*b"SCHN");
/// Layout version of the channel header (2: the bound in messages, `max_messages`).
pub const CHANNEL_VERSION: u32 = 2;
/// Registry entries per side (senders, receivers).
#[cfg(not(loom))]
pub const REGISTRY_SLOTS: usize = 64;
/// Registry entries per side: two under loom, to keep the models small.
#[cfg(loom)]
pub const REGISTRY_SLOTS: usize = 2;
/// Bytes of the channel header before the data buffer.
pub const CHANNEL_HEADER_SIZE: usize = 640 + 2 * REGISTRY_SLOTS * 32;
/// Smallest capacity accepted.
pub const MIN_CHANNEL_CAPACITY: usize = 64;
/// Largest capacity accepted.
pub const MAX_CHANNEL_CAPACITY: usize = 1 << 30;
/// The length field of a wrap record (no message is this long).
pub const WRAP_LEN: u32 = (1 << 29) - 1;

const REC_HDR: u64 = 8;
const FREE: u64 = 0;
const WRITING: u64 = 1;
const COMMITTED: u64 = 2;
const READING: u64 = 3;
const DONE: u64 = 4;
const LEN_MASK: u64 = (1 << 29) - 1;

fn tag(pos: u64) -> u32 {
    (pos >> 3) as u32
}
fn stamp(pos: u64, len: u32, state: u64) -> u64 {
    (u64::from(tag(pos)) << 32) | ((u64::from(len) & LEN_MASK) << 3) | state
}
fn st_tag(w: u64) -> u32 {
    (w >> 32) as u32
}
fn st_len(w: u64) -> u32 {
    ((w >> 3) & LEN_MASK) as u32
}
fn st_state(w: u64) -> u64 {
    w & 7
}
fn rec_size(len: u32) -> u64 {
    REC_HDR + ((u64::from(len) + 7) & !7)
}

/// Line 0: fixed at init except `corrupt` and the registry counts.
#[repr(C, align(128))]
struct MetaLine {
    /// [`CHANNEL_MAGIC`], stored last at init with Release.
    magic: AtomicU32,
    /// [`CHANNEL_VERSION`].
    version: AtomicU32,
    /// Data capacity in bytes (power of two).
    capacity: AtomicU32,
    /// 1 once a bad stamp or cursor was found.
    corrupt: AtomicU32,
    /// The type tag's fingerprint (see the module docs).
    fingerprint: AtomicU64,
    /// Registered senders not known to be gone.
    tx_live: AtomicU32,
    /// Registered receivers not known to be gone.
    rx_live: AtomicU32,
    /// 1 once a sender registered.
    tx_ever: AtomicU32,
    /// 1 once a receiver registered.
    rx_ever: AtomicU32,
    /// The bound in messages ([`ChannelBounds::messages`]); 0 for none. Fixed at init.
    max_messages: AtomicU32,
}

/// One cursor on its own line.
#[repr(C, align(128))]
struct CursorLine {
    pos: AtomicU64,
}

/// Written only on the sleep path.
#[repr(C, align(128))]
struct WaitLine {
    /// Receivers sleep here; senders wake them.
    data: Parker,
    /// Senders sleep here; receivers wake them.
    space: Parker,
}

/// A registry entry: who (a [`PeerSlot`]) and which record it holds.
#[repr(C)]
struct Peer {
    slot: PeerSlot,
    /// Position + 1 of the record this peer is claiming or holds; 0 for none.
    pending: AtomicU64,
    _reserved: AtomicU64,
}

/// The channel header at offset 0 of the region.
#[repr(C)]
pub(crate) struct ChannelHeader {
    meta: MetaLine,
    tail: CursorLine,
    read: CursorLine,
    head: CursorLine,
    wait: WaitLine,
    senders: [Peer; REGISTRY_SLOTS],
    receivers: [Peer; REGISTRY_SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<ChannelHeader>() == CHANNEL_HEADER_SIZE);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<ChannelHeader>() == 128);
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Peer>() == 32);

/// How a message's type is named in the segment's type tag (see the module docs).
///
/// The default, [`RustName`], is `std::any::type_name::<T>()`, which can differ
/// between compiler versions and crates; name the type yourself to talk to another
/// build, program or language:
/// ```
/// use serde::{Deserialize, Serialize};
/// use shmkit_typed::{Channel, OpenError, TypeName};
///
/// #[derive(Serialize, Deserialize)]
/// struct Job { id: u64 }
/// enum JobV1 {}
/// impl TypeName for JobV1 {
///     fn name<T: ?Sized>() -> &'static str { "example.Job/1" }
/// }
///
/// let name = format!("shmkit-doc-chan-type-{}", std::process::id());
/// let _made = Channel::<Job, JobV1>::create(&name, 4096)?;
/// assert!(Channel::<Job, JobV1>::open(&name).is_ok());
/// // The same `T` under its Rust name is another type here.
/// assert!(matches!(Channel::<Job>::open(&name), Err(OpenError::TypeMismatch { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait TypeName {
    /// The name recorded for messages of type `T`.
    fn name<T: ?Sized>() -> &'static str;
}

/// The default [`TypeName`]: `std::any::type_name::<T>()`.
#[derive(Debug)]
pub enum RustName {}

impl TypeName for RustName {
    fn name<T: ?Sized>() -> &'static str {
        std::any::type_name::<T>()
    }
}

/// What creating a [`Channel`] needs: its capacity in bytes and, optionally, a bound
/// in messages. A `usize` converts to a capacity with no bound in messages, so
/// `Channel::create(name, 1 << 20)` reads as before.
///
/// With a bound of `n` messages, a send waits (or `try_send` returns
/// [`SendError::Full`]) while `n` messages are queued and not yet taken by a receiver,
/// as a `multiprocessing.Queue(maxsize=n)` does; the bound in bytes holds as well. The
/// bound is exact with any number of senders: a sender counts the records below the
/// tail it is about to claim, and only one sender claims each position (module docs,
/// "The bound in messages").
///
/// ```
/// use shmkit_typed::{Channel, ChannelBounds, SendError};
///
/// let ch = Channel::<u32>::anonymous(ChannelBounds::bytes(4096).messages(2))?;
/// ch.send(1)?;
/// ch.send(2)?;
/// assert!(matches!(ch.try_send(3), Err(SendError::Full(3)))); // 2 queued: full
/// assert_eq!(ch.recv()?, 1);
/// ch.try_send(3)?; // one was taken: room again
/// assert_eq!(ch.max_messages(), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBounds {
    /// Capacity of the data buffer in bytes (a power of two, 64 B to 1 GiB).
    pub bytes: usize,
    /// The most messages queued at once (1 to `u32::MAX`); `None`: only the bytes
    /// bound it.
    pub messages: Option<usize>,
}

impl ChannelBounds {
    /// A capacity of `bytes` bytes, with no bound in messages.
    pub fn bytes(bytes: usize) -> Self {
        ChannelBounds {
            bytes,
            messages: None,
        }
    }

    /// The same, bounded to `messages` queued messages as well.
    pub fn messages(self, messages: usize) -> Self {
        ChannelBounds {
            messages: Some(messages),
            ..self
        }
    }
}

impl From<usize> for ChannelBounds {
    fn from(bytes: usize) -> Self {
        ChannelBounds::bytes(bytes)
    }
}

/// A bound in messages in an error message.
fn bound_text(bound: Option<usize>) -> String {
    bound.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

/// The handle's form of the header's `max_messages` word: no bound (0) is `u64::MAX`.
fn bound_of(word: u32) -> u64 {
    if word == 0 {
        u64::MAX
    } else {
        u64::from(word)
    }
}

/// The records a sender handle counted for the bound in messages: the positions of
/// the messages (not wrap records) it walked, in order, from where it last started
/// (at `read`) up to `to`. Positions at or past `read` stay what was walked: space is
/// reclaimed only below `read`, which never moves back.
#[derive(Default)]
struct Counted {
    at: std::collections::VecDeque<u64>,
    to: u64,
}

/// A channel region could not be initialised or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelLayoutError {
    /// The capacity is not a power of two in the accepted range.
    #[error(
        "channel capacity {0} is not a power of two between 64 B and 1 GiB: pick one such as 1 MiB"
    )]
    BadCapacity(usize),
    /// The bound in messages is 0 or above `u32::MAX`.
    #[error(
        "a channel's bound in messages must be 1 to 4294967295, not {0} (leave it out for no bound)"
    )]
    BadMessageBound(usize),
    /// `open_or_create` found the channel with another bound in messages.
    #[error("the channel's bound in messages is {}, not {}: ask for the bounds it was created with, or open it with `open`", bound_text(*.found), bound_text(*.expected))]
    MessageBoundMismatch {
        /// The bound asked for.
        expected: Option<usize>,
        /// The bound the channel has.
        found: Option<usize>,
    },
    /// The region is smaller than the channel needs.
    #[error("region of {len} bytes is too small for this channel, which needs {needed} bytes: map a larger region")]
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The region does not start on a 128-byte boundary.
    #[error("region start {0:#x} is not 128-byte aligned: use a segment payload or a page-aligned mapping")]
    Misaligned(usize),
    /// The region does not hold an initialised channel.
    #[error("no shmkit channel here (magic {found:#x}): the region holds something else or was never initialised")]
    BadMagic {
        /// The magic word found.
        found: u32,
    },
    /// The channel was made by an incompatible version.
    #[error("channel layout version {found} is not supported (this build reads {expected}): use the same shmkit version on both sides")]
    BadVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// The channel carries another message type.
    #[error(
        "the channel carries {found}, not {expected}: open it with the type it was created with"
    )]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type recorded in the channel.
        found: String,
    },
}

/// Why a send failed; every variant that had a message hands it back
/// ([`SendError::into_inner`]). The bytes paths use `SendError<()>`.
#[non_exhaustive]
pub enum SendError<T> {
    /// `try_` forms: no room now (in bytes, or under the bound in messages).
    Full(T),
    /// No room before the deadline.
    Timeout(T),
    /// A receiver attached once and none is left (dropped or killed).
    Disconnected(T),
    /// The encoded message can never fit in this channel.
    TooLarge {
        /// The message.
        msg: T,
        /// Its encoded length.
        len: usize,
        /// The largest this channel carries ([`Channel::max_message_len`]).
        max: usize,
    },
    /// postcard could not encode the message (e.g. a map whose length it cannot know).
    Encode {
        /// The message.
        msg: T,
        /// postcard's reason.
        reason: String,
    },
    /// Every sender entry of the registry is held by a live process.
    RegistryFull(T),
    /// Another process judged this one dead and took over the record it was writing
    /// (only across pid namespaces): the message was not sent.
    ClaimLost(T),
    /// The channel's shared state is corrupt; nothing more can be sent.
    Corrupt(T),
    /// Sleeping until there is room failed in the kernel (futex).
    Os(T, shmkit_sync::OsError),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(m)
            | SendError::Timeout(m)
            | SendError::Disconnected(m)
            | SendError::TooLarge { msg: m, .. }
            | SendError::Encode { msg: m, .. }
            | SendError::RegistryFull(m)
            | SendError::ClaimLost(m)
            | SendError::Corrupt(m)
            | SendError::Os(m, _) => m,
        }
    }

    /// The same error carrying `msg` instead.
    fn with<U>(self, msg: U) -> SendError<U> {
        match self {
            SendError::Full(_) => SendError::Full(msg),
            SendError::Timeout(_) => SendError::Timeout(msg),
            SendError::Disconnected(_) => SendError::Disconnected(msg),
            SendError::TooLarge { len, max, .. } => SendError::TooLarge { msg, len, max },
            SendError::Encode { reason, .. } => SendError::Encode { msg, reason },
            SendError::RegistryFull(_) => SendError::RegistryFull(msg),
            SendError::ClaimLost(_) => SendError::ClaimLost(msg),
            SendError::Corrupt(_) => SendError::Corrupt(msg),
            SendError::Os(_, e) => SendError::Os(msg, e),
        }
    }
}

impl<T> std::fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::TooLarge { len, max, .. } => f
                .debug_struct("TooLarge")
                .field("len", len)
                .field("max", max)
                .finish_non_exhaustive(),
            SendError::Encode { reason, .. } => f
                .debug_struct("Encode")
                .field("reason", reason)
                .finish_non_exhaustive(),
            SendError::RegistryFull(_) => f.write_str("RegistryFull(..)"),
            SendError::ClaimLost(_) => f.write_str("ClaimLost(..)"),
            SendError::Corrupt(_) => f.write_str("Corrupt(..)"),
            SendError::Os(_, e) => f.debug_tuple("Os").field(&"..").field(e).finish(),
        }
    }
}

impl<T> std::fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("the channel is full: retry later or use the blocking send"),
            SendError::Timeout(_) => f.write_str("timed out waiting for room in the channel: receivers are slow or stopped"),
            SendError::Disconnected(_) => f.write_str("every receiver of the channel is gone (dropped or killed): the message was not sent"),
            SendError::TooLarge { len, max, .. } => write!(f, "message of {len} bytes (encoded) is larger than the channel's maximum of {max} bytes: create a larger channel or split the message"),
            SendError::Encode { reason, .. } => write!(f, "the message could not be encoded with postcard: {reason}"),
            SendError::RegistryFull(_) => write!(f, "all {REGISTRY_SLOTS} sender entries of the channel are held by live handles: drop some"),
            SendError::ClaimLost(_) => f.write_str("another process judged this one dead and took over the record it was writing, so the message was not sent: make every process of the channel share one pid namespace"),
            SendError::Corrupt(_) => f.write_str("the channel's shared state is corrupt: recreate the channel"),
            SendError::Os(..) => f.write_str("sleeping until the channel has room failed in the kernel (futex); the message was not sent"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Os(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why a receive failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_` forms: no message now.
    #[error("the channel is empty: retry later or use the blocking recv")]
    Empty,
    /// No message before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// A sender attached once, none is left (dropped or killed), and every message
    /// was received.
    #[error("every sender of the channel is gone and the channel is drained")]
    Disconnected,
    /// The message's bytes are not a postcard `T`. It was consumed; receive the next.
    #[error("a message of {len} bytes could not be decoded: {reason} (it was consumed; the channel goes on)")]
    Decode {
        /// The payload's length.
        len: usize,
        /// postcard's reason.
        reason: String,
    },
    /// Every receiver entry of the registry is held by a live process.
    #[error(
        "all {REGISTRY_SLOTS} receiver entries of the channel are held by live handles: drop some"
    )]
    RegistryFull,
    /// Another process judged this one dead and took over the record it was reading
    /// (only across pid namespaces); that message is given up as lost.
    #[error("another process judged this one dead and took over the record it was reading, so that message is lost: make every process of the channel share one pid namespace")]
    ClaimLost,
    /// The channel's shared state is corrupt (a stamp or cursor that cannot be right).
    #[error("the channel's shared state is corrupt ({what}): recreate the channel")]
    Corrupt {
        /// What was found wrong (the first call that found it says; later calls say
        /// "marked corrupt").
        what: &'static str,
    },
    /// Sleeping until a message arrives failed in the kernel (futex).
    #[error("sleeping until a message arrives failed in the kernel (futex); nothing was received")]
    Os(#[source] shmkit_sync::OsError),
}

/// Sends through one handle between two looks for killed receivers (see `send_core`).
const REAP_EVERY: u32 = 4096;

/// Whether a send may read `/proc` on its fast path: not a `try_` form (documented
/// never to), and never under loom (which does not model it).
fn wait_allows_reap(wait: Wait) -> bool {
    !cfg!(loom) && matches!(wait, Wait::Until(_))
}

/// Which side of the registry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Tx,
    Rx,
}

/// A handle's registry entry: the pid it was taken under (a forked child's differs)
/// and its index.
#[derive(Clone, Copy, Default)]
struct Role {
    pid: u32,
    idx: u32,
}

/// What one reservation attempt found.
enum Reserve {
    Got(u64),
    Full,
    Corrupt,
}

/// What one claim attempt found.
enum Claim {
    Got {
        pos: u64,
        len: u32,
    },
    Empty,
    /// A sender is still writing the record at `pos` (stamp `w`).
    Blocked {
        pos: u64,
        w: u64,
    },
    Corrupt(&'static str),
}

/// What keeps the channel's memory mapped.
#[derive(Clone)]
enum Backing {
    #[cfg(not(loom))]
    Raw,
    #[cfg(not(loom))]
    Segment(std::sync::Arc<shmkit_segment::Segment>),
    #[cfg(loom)]
    Loom(std::sync::Arc<LoomMem>),
}

/// Heap memory standing in for the mapping in loom models: the header, and the buffer
/// as one atomic per 8-byte word (stamps) beside one cell per word (payloads).
#[cfg(loom)]
pub(crate) struct LoomMem {
    hdr: ChannelHeader,
    words: Vec<AtomicU64>,
    cells: Vec<loom::cell::UnsafeCell<u64>>,
}

// SAFETY (loom only): shared exactly as the mapping is; payload cells are guarded by
// the stamps, which is what the model checks.
#[cfg(loom)]
unsafe impl Send for LoomMem {}
// SAFETY: as above.
#[cfg(loom)]
unsafe impl Sync for LoomMem {}

/// A handle to a multi-producer multi-consumer channel of `T` in shared memory.
///
/// See the [module docs](self) for the protocol, roles, crash behaviour and an
/// example, and [the family](crate::family) for `create`, `open`, `open_or_create`,
/// `anonymous` (capacity in bytes) and their `*_in(options)` forms. `N` names `T` in
/// the segment's type tag ([`TypeName`]).
pub struct Channel<T, N: TypeName = RustName> {
    hdr: NonNull<ChannelHeader>,
    #[cfg(not(loom))]
    data: *mut u8,
    cap: u64,
    tx: Cell<Role>,
    /// Sends through this handle since it last reaped dead receivers.
    sends: Cell<u32>,
    /// The bound in messages (`u64::MAX` for none), fixed at init.
    max_messages: u64,
    /// The records this handle counted for the bound in messages (see `under_bound`).
    counted: RefCell<Counted>,
    rx: Cell<Role>,
    /// How this handle's waits to send and to receive poll (see `shim::poll_backoff`).
    send_poll: PollGauge,
    recv_poll: PollGauge,
    backing: Backing,
    _t: PhantomData<fn(T) -> T>,
    _n: PhantomData<fn() -> N>,
}

// SAFETY: the handle points into shared memory that every process and thread reaches
// through atomics (and payload bytes guarded by the stamps); its role cells move with
// it. Not `Sync`: a handle's registry entries carry one operation at a time.
unsafe impl<T, N: TypeName> Send for Channel<T, N> {}

impl<T, N: TypeName> Clone for Channel<T, N> {
    /// Another handle on the same channel, with no roles yet (it registers on its
    /// first send or receive): for another thread.
    fn clone(&self) -> Self {
        Channel {
            hdr: self.hdr,
            #[cfg(not(loom))]
            data: self.data,
            cap: self.cap,
            tx: Cell::new(Role::default()),
            sends: Cell::new(0),
            max_messages: self.max_messages,
            counted: RefCell::default(),
            send_poll: PollGauge::new(),
            recv_poll: PollGauge::new(),
            rx: Cell::new(Role::default()),
            backing: self.backing.clone(),
            _t: PhantomData,
            _n: PhantomData,
        }
    }
}

impl<T, N: TypeName> std::fmt::Debug for Channel<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("type", &N::name::<T>())
            .field("capacity", &self.cap)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T, N: TypeName> Channel<T, N> {
    /// Bytes a region must have for a channel of `capacity` data bytes.
    pub fn region_size(capacity: usize) -> usize {
        CHANNEL_HEADER_SIZE + capacity
    }

    /// The type tag of this channel type in segment headers (see the module docs).
    pub fn type_tag() -> shmkit_segment::TypeTag {
        shmkit_segment::TypeTag::new(crate::types::kind::CHANNEL, N::name::<T>(), 0, 1)
    }

    fn check_capacity(capacity: usize) -> Result<u64, ChannelLayoutError> {
        if !capacity.is_power_of_two()
            || !(MIN_CHANNEL_CAPACITY..=MAX_CHANNEL_CAPACITY).contains(&capacity)
        {
            return Err(ChannelLayoutError::BadCapacity(capacity));
        }
        Ok(capacity as u64)
    }

    /// The header's `max_messages` word for a bound in messages (0: none).
    fn check_messages(messages: Option<usize>) -> Result<u32, ChannelLayoutError> {
        match messages {
            None => Ok(0),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or(ChannelLayoutError::BadMessageBound(n)),
        }
    }

    /// Initialises a new, empty channel at `ptr`: `bounds` its capacity in bytes (a
    /// `usize`) and, if given, in messages ([`ChannelBounds`]).
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid, writable memory, not accessed by anyone else
    /// during this call, that stays mapped while this and every attached handle live.
    ///
    /// # Errors
    /// [`ChannelLayoutError`] for a bad capacity, a misaligned or too small region.
    #[cfg(not(loom))]
    pub unsafe fn init(
        ptr: *mut u8,
        len: usize,
        bounds: impl Into<ChannelBounds>,
    ) -> Result<Self, ChannelLayoutError> {
        let ChannelBounds {
            bytes: capacity,
            messages,
        } = bounds.into();
        let cap = Self::check_capacity(capacity)?;
        let messages = Self::check_messages(messages)?;
        if ptr.is_null() || (ptr as usize) & 127 != 0 {
            return Err(ChannelLayoutError::Misaligned(ptr as usize));
        }
        let needed = Self::region_size(capacity);
        if len < needed {
            return Err(ChannelLayoutError::TooSmall { len, needed });
        }
        // SAFETY: exclusive, writable access to `len >= needed` bytes (caller),
        // 128-byte aligned (checked); zeroed they form a valid header (atomics only)
        // and a buffer whose every stamp is FREE of its lap-0 position (0 at 0).
        let hdr = unsafe {
            std::ptr::write_bytes(ptr, 0, needed);
            &*(ptr as *const ChannelHeader)
        };
        hdr.meta.version.store(CHANNEL_VERSION, Ordering::Relaxed);
        hdr.meta.capacity.store(cap as u32, Ordering::Relaxed);
        hdr.meta.max_messages.store(messages, Ordering::Relaxed);
        hdr.meta
            .fingerprint
            .store(Self::type_tag().fingerprint(), Ordering::Relaxed);
        // Release: publishes everything above to `attach`'s Acquire of the magic.
        hdr.meta.magic.store(CHANNEL_MAGIC, Ordering::Release);
        // SAFETY: just initialised; the caller's guarantees carry over.
        unsafe { Self::attach(ptr, len) }
    }

    /// Attaches to a channel initialised at `ptr` (possibly by another process),
    /// validating every field.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid memory that stays mapped while the handle lives,
    /// accessed by others only through shmkit channel handles.
    ///
    /// # Errors
    /// [`ChannelLayoutError`] if the region does not hold a channel of `T`.
    #[cfg(not(loom))]
    pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, ChannelLayoutError> {
        // SAFETY: the caller's contract.
        unsafe { Self::attach_checked(ptr, len, true) }
    }

    /// [`Channel::attach`], checking the type fingerprint only if `check_type`
    /// (`inspect` reads a channel of any message type, without sending or receiving).
    ///
    /// # Safety
    /// As [`Channel::attach`].
    #[cfg(not(loom))]
    unsafe fn attach_checked(
        ptr: *mut u8,
        len: usize,
        check_type: bool,
    ) -> Result<Self, ChannelLayoutError> {
        if ptr.is_null() || (ptr as usize) & 127 != 0 {
            return Err(ChannelLayoutError::Misaligned(ptr as usize));
        }
        if len < CHANNEL_HEADER_SIZE {
            return Err(ChannelLayoutError::TooSmall {
                len,
                needed: CHANNEL_HEADER_SIZE,
            });
        }
        // SAFETY: aligned and large enough (checked); the header holds only atomics.
        let hdr = unsafe { &*(ptr as *const ChannelHeader) };
        // Acquire: pairs with the Release of the magic in `init`.
        let magic = hdr.meta.magic.load(Ordering::Acquire);
        if magic != CHANNEL_MAGIC {
            return Err(ChannelLayoutError::BadMagic { found: magic });
        }
        let version = hdr.meta.version.load(Ordering::Relaxed);
        if version != CHANNEL_VERSION {
            return Err(ChannelLayoutError::BadVersion {
                found: version,
                expected: CHANNEL_VERSION,
            });
        }
        let fp = hdr.meta.fingerprint.load(Ordering::Relaxed);
        if check_type && fp != Self::type_tag().fingerprint() {
            return Err(ChannelLayoutError::TypeMismatch {
                expected: N::name::<T>().to_owned(),
                found: format!("a type of fingerprint {fp:#018x}"),
            });
        }
        let capacity = hdr.meta.capacity.load(Ordering::Relaxed) as usize;
        let cap = Self::check_capacity(capacity)?;
        let needed = Self::region_size(capacity);
        if len < needed {
            return Err(ChannelLayoutError::TooSmall { len, needed });
        }
        Ok(Channel {
            hdr: NonNull::from(hdr),
            // Inside the region (len >= needed > CHANNEL_HEADER_SIZE).
            data: ptr.wrapping_add(CHANNEL_HEADER_SIZE),
            cap,
            tx: Cell::new(Role::default()),
            sends: Cell::new(0),
            max_messages: bound_of(hdr.meta.max_messages.load(Ordering::Relaxed)),
            counted: RefCell::default(),
            send_poll: PollGauge::new(),
            recv_poll: PollGauge::new(),
            rx: Cell::new(Role::default()),
            backing: Backing::Raw,
            _t: PhantomData,
            _n: PhantomData,
        })
    }

    #[cfg(not(loom))]
    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, ChannelLayoutError> {
        let (ptr, len) = (seg.payload_ptr(), seg.payload_len());
        // SAFETY: the segment maps `len` bytes at `ptr` (128-byte aligned) while it
        // lives, and it moves into the handle's backing (shared by its clones).
        let mut ch = unsafe { Self::attach(ptr, len) }?;
        ch.backing = Backing::Segment(std::sync::Arc::new(seg));
        Ok(ch)
    }

    /// The segment behind this channel, if it was made by `create`/`open`/`anonymous`.
    pub fn segment(&self) -> Option<&shmkit_segment::Segment> {
        match &self.backing {
            #[cfg(not(loom))]
            Backing::Segment(s) => Some(s),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// A heap channel for loom models (two handles); `max_messages` 0 for no bound in
    /// messages.
    #[cfg(loom)]
    pub(crate) fn new_for_loom(capacity: u32, max_messages: u32) -> (Self, Self) {
        let z32 = || AtomicU32::new(0);
        let peers = || {
            std::array::from_fn(|_| Peer {
                slot: PeerSlot::new(),
                pending: AtomicU64::new(0),
                _reserved: AtomicU64::new(0),
            })
        };
        let hdr = ChannelHeader {
            meta: MetaLine {
                magic: AtomicU32::new(CHANNEL_MAGIC),
                version: AtomicU32::new(CHANNEL_VERSION),
                capacity: AtomicU32::new(capacity),
                corrupt: z32(),
                fingerprint: AtomicU64::new(0),
                tx_live: z32(),
                rx_live: z32(),
                tx_ever: z32(),
                rx_ever: z32(),
                max_messages: AtomicU32::new(max_messages),
            },
            tail: CursorLine {
                pos: AtomicU64::new(0),
            },
            read: CursorLine {
                pos: AtomicU64::new(0),
            },
            head: CursorLine {
                pos: AtomicU64::new(0),
            },
            wait: WaitLine {
                data: Parker::new(),
                space: Parker::new(),
            },
            senders: peers(),
            receivers: peers(),
        };
        let n = capacity as usize / 8;
        let mem = std::sync::Arc::new(LoomMem {
            hdr,
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..n).map(|_| loom::cell::UnsafeCell::new(0)).collect(),
        });
        let make = || Channel {
            hdr: NonNull::from(&mem.hdr),
            cap: u64::from(capacity),
            tx: Cell::new(Role::default()),
            sends: Cell::new(0),
            max_messages: bound_of(max_messages),
            counted: RefCell::default(),
            send_poll: PollGauge::new(),
            recv_poll: PollGauge::new(),
            rx: Cell::new(Role::default()),
            backing: Backing::Loom(mem.clone()),
            _t: PhantomData,
            _n: PhantomData,
        };
        (make(), make())
    }

    fn hdr(&self) -> &ChannelHeader {
        // SAFETY: valid while the handle lives (constructor contracts; the backing
        // keeps the mapping).
        unsafe { self.hdr.as_ref() }
    }

    /// The stamp word of position `pos` (any position: reduced to the buffer).
    fn word(&self, pos: u64) -> &AtomicU64 {
        let off = (pos & (self.cap - 1)) as usize;
        #[cfg(not(loom))]
        {
            // SAFETY: `off` is 8-aligned (positions are multiples of 8 and the buffer
            // starts 128-aligned) and `off + 8 <= cap`, inside the data buffer the
            // constructor contract keeps mapped; stamps are only accessed atomically.
            unsafe { AtomicU64::from_ptr(self.data.add(off).cast()) }
        }
        #[cfg(loom)]
        {
            let Backing::Loom(m) = &self.backing;
            &m.words[off / 8]
        }
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The bound in messages it was created with ([`ChannelBounds::messages`]).
    pub fn max_messages(&self) -> Option<usize> {
        (self.max_messages != u64::MAX).then_some(self.max_messages as usize)
    }

    /// The largest message (encoded) this channel carries: the capacity minus a
    /// record header and the next record's stamp.
    pub fn max_message_len(&self) -> usize {
        ((self.cap - 2 * REC_HDR) as usize).min(WRAP_LEN as usize - 1)
    }

    /// Whether a bad stamp or cursor was found: every call then fails with `Corrupt`.
    pub fn is_corrupt(&self) -> bool {
        // Relaxed: a flag; nothing is read on its account.
        self.hdr().meta.corrupt.load(Ordering::Relaxed) != 0
    }

    fn mark_corrupt(&self) {
        // Relaxed: see `is_corrupt`.
        self.hdr().meta.corrupt.store(1, Ordering::Relaxed);
        self.hdr().wait.data.bump_and_wake(u32::MAX);
        self.hdr().wait.space.bump_and_wake(u32::MAX);
    }

    /// The size of the record at `pos` with stamp `w`, if its length and state can be
    /// right.
    fn record_size(&self, pos: u64, w: u64) -> Option<u64> {
        let off = pos & (self.cap - 1);
        if st_state(w) > DONE {
            return None;
        }
        let size = if st_len(w) == WRAP_LEN {
            (off != 0).then_some(self.cap - off)?
        } else {
            rec_size(st_len(w))
        };
        (off + size <= self.cap).then_some(size)
    }

    /// Messages in the channel not yet taken by a receiver (a snapshot: counts the
    /// records between the read cursor and the tail that are written or being
    /// written).
    pub fn len(&self) -> usize {
        let h = self.hdr();
        // Relaxed: a snapshot; every stamp is validated by its tag.
        let mut r = h.read.pos.load(Ordering::Relaxed);
        let t = h.tail.pos.load(Ordering::Acquire);
        let mut n = 0;
        for _ in 0..self.cap / REC_HDR {
            if r >= t {
                break;
            }
            // Acquire: as in `try_claim`.
            let w = self.word(r).load(Ordering::Acquire);
            let Some(size) = self.record_size(r, w).filter(|_| st_tag(w) == tag(r)) else {
                break;
            };
            if matches!(st_state(w), WRITING | COMMITTED) && st_len(w) != WRAP_LEN {
                n += 1;
            }
            r += size;
        }
        n
    }

    /// Bytes of the records not yet taken by a receiver (headers and padding
    /// included, from the read cursor to the tail; 0 when nothing is queued): a
    /// constant-time snapshot, where [`len`](Channel::len) walks the records.
    pub fn unread_bytes(&self) -> usize {
        let h = self.hdr();
        // Relaxed: a snapshot; `read` is loaded first and never passes `tail`, so the
        // later load of `tail` is not below it.
        let r = h.read.pos.load(Ordering::Relaxed);
        let t = h.tail.pos.load(Ordering::Relaxed);
        t.saturating_sub(r).min(self.cap) as usize
    }

    /// Whether [`len`](Channel::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn retry_bound(&self) -> u64 {
        self.cap / REC_HDR + 1024
    }

    fn side(&self, side: Side) -> (&[Peer; REGISTRY_SLOTS], &AtomicU32, &AtomicU32) {
        let h = self.hdr();
        match side {
            Side::Tx => (&h.senders, &h.meta.tx_live, &h.meta.tx_ever),
            Side::Rx => (&h.receivers, &h.meta.rx_live, &h.meta.rx_ever),
        }
    }

    fn role(&self, side: Side) -> &Cell<Role> {
        match side {
            Side::Tx => &self.tx,
            Side::Rx => &self.rx,
        }
    }

    /// This handle's registry entry on `side`, registering it on first use (and again
    /// in a forked child). `None`: the registry is full of live peers.
    fn register(&self, side: Side) -> Option<&Peer> {
        let (peers, live, ever) = self.side(side);
        let me = owner::current_pid();
        let role = self.role(side).get();
        if role.pid == me {
            return peers.get(role.idx as usize);
        }
        // Counted before the entry is taken, so the other side never sees "none
        // live" while this one is attaching. Relaxed: a count; the messages carry
        // their own synchronisation.
        live.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `gone`: whoever sees the flag set
        // by this first registration also sees the count above (else, on a weakly
        // ordered CPU, the other side could see "attached once, none live" while this
        // one attaches; loom found it once a `Select` registered inside a model).
        ever.store(1, Ordering::Release);
        for pass in 0..2 {
            for (i, p) in peers.iter().enumerate() {
                if in_segment(self.segment(), || p.slot.claim_free()) {
                    // Relaxed: our own word until we claim a record.
                    p.pending.store(0, Ordering::Relaxed);
                    self.role(side).set(Role {
                        pid: me,
                        idx: i as u32,
                    });
                    #[cfg(not(loom))]
                    if let Some(seg) = self.segment() {
                        let _ = seg.prefault();
                    }
                    // The other side's waiters learn of this peer: a pending future
                    // watches the peers it saw when it armed, so without this wake the
                    // death of one that registered later and never sent (or received)
                    // would go unnoticed. `wake`'s SeqCst fence pairs with a waiter's
                    // announcement (Dekker). Once per registration.
                    let other = match side {
                        Side::Tx => &self.hdr().wait.data,
                        Side::Rx => &self.hdr().wait.space,
                    };
                    other.wake(u32::MAX);
                    return Some(p);
                }
            }
            if pass == 0 {
                self.reap(side);
            }
        }
        live.fetch_sub(1, Ordering::Relaxed);
        None
    }

    /// Reclaims the entries of dead peers on `side` (a `/proc` read per entry with a
    /// holder: slow paths only), decrementing the live count once per entry.
    fn reap(&self, side: Side) {
        let (peers, live, _) = self.side(side);
        for p in peers {
            let w = p.slot.word();
            if crate::peer::holder_pid(w) == 0 {
                continue;
            }
            let state = in_segment(self.segment(), || p.slot.state_of(w));
            if matches!(state, PeerState::Died { .. }) && p.slot.reclaim_dead(w) {
                // Release: as a peer leaving (see Drop).
                live.fetch_sub(1, Ordering::Release);
            }
        }
    }

    /// Whether `side` is gone: a peer of it attached once and none is live. `deep`
    /// reaps dead entries first (slow path).
    fn gone(&self, side: Side, deep: bool) -> bool {
        let (_, live, ever) = self.side(side);
        // Acquire: pairs with the Release store in `register` (the count below is
        // then at least the registering peer's increment).
        if ever.load(Ordering::Acquire) == 0 {
            return false;
        }
        if deep {
            self.reap(side);
        }
        // Acquire: pairs with the Release decrement of a leaving (or reaped) peer:
        // every record it committed is visible to the look that follows.
        live.load(Ordering::Acquire) == 0
    }

    /// Whether a live peer of `side` holds the record at `pos` (a `/proc` read per
    /// entry naming it: slow paths only).
    fn claimer_alive(&self, side: Side, pos: u64) -> bool {
        let (peers, _, _) = self.side(side);
        peers.iter().any(|p| {
            // Relaxed: we saw the claim with Acquire, which the claimer made after
            // storing `pending` (Release CAS): the value is there or newer.
            p.pending.load(Ordering::Relaxed) == pos + 1 && {
                let w = p.slot.word();
                crate::peer::holder_pid(w) != 0
                    && matches!(
                        in_segment(self.segment(), || p.slot.state_of(w)),
                        PeerState::Attached { .. }
                    )
            }
        })
    }

    /// If the record at `pos` (stamp `w`, WRITING or READING) is held by a dead peer,
    /// marks it DONE (that message is lost) and returns `true`; also `true` if the
    /// stamp changed meanwhile (look again).
    fn unstick(&self, pos: u64, w: u64) -> bool {
        let side = match st_state(w) {
            WRITING => Side::Tx,
            READING => Side::Rx,
            _ => return false,
        };
        if self.claimer_alive(side, pos) {
            return false;
        }
        // Relaxed: nothing of the dead peer's is published (the record is skipped, its
        // bytes never read); fails harmlessly if the claimer finished meanwhile.
        let _ = self.word(pos).compare_exchange(
            w,
            stamp(pos, st_len(w), DONE),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.advance_head();
        self.hdr().wait.data.wake(u32::MAX);
        self.hdr().wait.space.wake(u32::MAX);
        true
    }

    /// Moves `head` over consecutive DONE records below `read`; wakes senders if it
    /// moved. Returns whether it did. Run by senders that find the channel full (and
    /// after a record is given up): receivers only mark their records DONE.
    fn advance_head(&self) -> bool {
        let h = self.hdr();
        let mut moved = false;
        // A few rounds: another advancer may move `head` while we walk.
        for _ in 0..4 {
            // Acquire: a helper continuing where another moved it.
            let from = h.head.pos.load(Ordering::Acquire);
            // Relaxed: `head` never passes `read`; the stamps below are re-checked.
            let r = h.read.pos.load(Ordering::Relaxed);
            // Walk the DONE records from `from` (at most a buffer's worth), then move
            // `head` over all of them with one CAS: the records walked stay DONE until
            // `head` passes them (only then may a sender reuse their bytes), so the CAS
            // from `from` succeeds only while they are what we saw.
            let mut to = from;
            let mut steps = 0;
            while r.wrapping_sub(to) as i64 > 0 && steps < self.cap / REC_HDR {
                // Acquire: pairs with the DONE CAS: the receiver's reads happen-before
                // our Release of `head` below, hence before a sender's overwrite.
                let w = self.word(to).load(Ordering::Acquire);
                if st_tag(w) != tag(to) || st_state(w) != DONE {
                    break;
                }
                let Some(size) = self.record_size(to, w) else {
                    self.mark_corrupt();
                    break;
                };
                to += size;
                steps += 1;
            }
            if to == from {
                break;
            }
            // Release: pairs with the sender's Acquire of `head` (step 2).
            if h.head
                .pos
                .compare_exchange(from, to, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                moved = true;
                break;
            }
        }
        if moved {
            h.wait.space.wake(u32::MAX);
        }
        moved
    }

    /// Step 4 of the protocol: the record at `t` (stamp `w`, claimed) is complete in
    /// size; write `FREE` at its end and move `tail` there, unless someone did.
    fn advance_tail(&self, t: u64, w: u64) -> Result<(), &'static str> {
        let h = self.hdr();
        let size = self
            .record_size(t, w)
            .ok_or("impossible record length at the tail")?;
        let nt = t + size;
        let next = self.word(nt);
        // Acquire: if a sender already claimed `nt`, the tail move it saw is seen by
        // the re-check below (coherence), so we do not touch its claim.
        let x = next.load(Ordering::Acquire);
        // Acquire: the re-check (see above and the module docs, step 4).
        if h.tail.pos.load(Ordering::Acquire) != t {
            return Ok(());
        }
        let free = stamp(nt, 0, FREE);
        if x != free {
            // Relaxed: published by the Release CAS of `tail` below, or read by the
            // helper that moves it, which publishes what it read (coherence). Fails
            // harmlessly if the word changed (another helper wrote the same FREE, or
            // the tail moved and a sender claimed it).
            let _ = next.compare_exchange(x, free, Ordering::Relaxed, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire of `tail` in `try_reserve`/`try_claim`.
        let _ = h
            .tail
            .pos
            .compare_exchange(t, nt, Ordering::Release, Ordering::Relaxed);
        Ok(())
    }

    /// Whether fewer than the bound in messages are queued below the tail `t` (whose
    /// stamp the caller saw `FREE(t)`): the messages between `read` and `t`, counted
    /// by walking their stamps; `None` if what was read is stale (retry).
    ///
    /// Exact with any number of senders: the records below `t` are fixed once the
    /// stamp at `t` is `FREE(t)` (a claim happens only at the tail, and the caller's
    /// claim CAS from that very stamp fails if another sender claimed `t` first), and
    /// receivers only take them away, so the count can only fall before the claim.
    /// Messages at or past `read` that a receiver is taking (`READING`, before it
    /// moves `read`) or that a dead sender left (`DONE`) still count until `read`
    /// passes them: the bound may hold a sender back a moment, never let one through.
    ///
    /// Cost: nothing while fewer than the bound *could* fit between `read` and `t`
    /// (every record takes at least 8 bytes); beyond that, the handle's `counted`
    /// cache drops what `read` passed and walks only the records added since its last
    /// count, so a sender kept at the bound walks about one stamp per send.
    fn under_bound(&self, t: u64) -> Option<bool> {
        let max = self.max_messages;
        // Acquire: pairs with the Release CAS of `read` (as in `try_claim`); every
        // stamp walked below is validated by its tag.
        let r = self.hdr().read.pos.load(Ordering::Acquire);
        if r > t {
            return None; // `t` is stale
        }
        if (t - r) / REC_HDR < max {
            return Some(true);
        }
        let mut c = self.counted.borrow_mut();
        while c.at.front().is_some_and(|&p| p < r) {
            c.at.pop_front();
        }
        if c.to < r || c.to > t {
            c.at.clear();
            c.to = r;
        }
        // Bounded: each step moves `to` by a record (at least 8 bytes) towards `t`,
        // and `t - to` is at most the capacity (else a stamp's tag stops the walk).
        while c.to < t && (c.at.len() as u64) < max {
            let p = c.to;
            // Acquire: pairs with the claim CAS (Release) of the record at `p`, which
            // lies below the tail (the Acquire of `tail` in `try_reserve`).
            let w = self.word(p).load(Ordering::Acquire);
            let size = self
                .record_size(p, w)
                .filter(|_| st_tag(w) == tag(p) && st_state(w) != FREE);
            let Some(size) = size else {
                // Not the record walked to: `read` or `t` moved on under us.
                c.at.clear();
                c.to = 0;
                return None;
            };
            if st_len(w) != WRAP_LEN {
                c.at.push_back(p);
            }
            c.to = p + size;
        }
        Some((c.at.len() as u64) < max)
    }

    /// One reservation attempt of a record of `len` payload bytes for the sender
    /// entry `me` (steps 1-4): the position claimed WRITING, or why not.
    fn try_reserve(&self, len: u32, me: &Peer) -> Reserve {
        let h = self.hdr();
        for _ in 0..self.retry_bound() {
            // Acquire: pairs with the Release CAS of `tail` (step 4).
            let t = h.tail.pos.load(Ordering::Acquire);
            // Acquire: pairs with another sender's claim, which we may help along.
            let w = self.word(t).load(Ordering::Acquire);
            if st_tag(w) != tag(t) {
                // Relaxed: only "did the tail move": then `t` was stale.
                if h.tail.pos.load(Ordering::Relaxed) == t {
                    return Reserve::Corrupt; // no record stamp at the tail
                }
                continue;
            }
            if st_state(w) != FREE {
                if self.advance_tail(t, w).is_err() {
                    return Reserve::Corrupt;
                }
                continue;
            }
            let off = t & (self.cap - 1);
            let (l, size, state) = if off + rec_size(len) > self.cap {
                (WRAP_LEN, self.cap - off, DONE)
            } else {
                (len, rec_size(len), WRITING)
            };
            // Acquire: pairs with the Release CAS of `head` (step 2).
            let head = h.head.pos.load(Ordering::Acquire);
            if head > t {
                continue; // `t` is stale
            }
            if t - head > self.cap {
                return Reserve::Corrupt; // tail and head more than the capacity apart
            }
            if t + size + REC_HDR > head + self.cap {
                return Reserve::Full;
            }
            if self.max_messages != u64::MAX {
                match self.under_bound(t) {
                    Some(true) => {}
                    Some(false) => return Reserve::Full,
                    None => continue,
                }
            }
            if state == WRITING {
                // Relaxed: published by the Release claim below.
                me.pending.store(t + 1, Ordering::Relaxed);
            }
            // Relaxed: only excludes a stale `t` whose old bytes happen to look like
            // FREE(t); a tail that moves after this check has a claim at `t`, so the
            // CAS below fails.
            if h.tail.pos.load(Ordering::Relaxed) != t {
                continue;
            }
            let claim = stamp(t, l, state);
            // Release: publishes `pending` (step 3); Relaxed on failure: retry.
            if self
                .word(t)
                .compare_exchange(w, claim, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.advance_tail(t, claim).is_err() {
                return Reserve::Corrupt;
            }
            if state == WRITING {
                return Reserve::Got(t);
            }
            // A wrap record: claim again at offset 0.
        }
        Reserve::Full
    }

    /// Claims the COMMITTED record at `r` (stamp `w`, `size` bytes) for the receiver
    /// entry `me`, moving `read` past it; `None` if the stamp changed meanwhile.
    fn claim_committed(&self, me: &Peer, r: u64, w: u64, size: u64) -> Option<Claim> {
        // Relaxed: published by the Release claim below.
        me.pending.store(r + 1, Ordering::Relaxed);
        // Release: publishes `pending`; the payload was acquired with the stamp.
        self.word(r)
            .compare_exchange(
                w,
                stamp(r, st_len(w), READING),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .ok()?;
        // Release: pairs with the Acquire of `read` in `try_claim` (what we saw of the
        // tail goes with it); `read` only bounds where `head` may go, and every stamp
        // below it is re-checked.
        let _ =
            self.hdr()
                .read
                .pos
                .compare_exchange(r, r + size, Ordering::Release, Ordering::Relaxed);
        // Hand on: the sender of the next record may have seen `read` at ours and
        // woken nobody (see the end of `send_core`); if it is there, wake one
        // receiver.
        // SeqCst fence: pairs with that sender's (Dekker: its commit, fence, look at
        // `read` / our move of `read`, fence, look at its stamp).
        fence(Ordering::SeqCst);
        self.wake_receiver_for(r + size);
        Some(Claim::Got {
            pos: r,
            len: st_len(w),
        })
    }

    /// Whether the record at `r` is DONE (a wrap or lost record, which receivers pass
    /// over). Relaxed: looked at after the caller's SeqCst fence; whoever is woken
    /// re-reads the stamp with Acquire.
    fn passed_over(&self, r: u64) -> bool {
        let w = self.word(r).load(Ordering::Relaxed);
        st_tag(w) == tag(r) && st_state(w) == DONE
    }

    /// Whether more receivers sleep than there are records between `rd` (`read`) and
    /// ours at `pos`: then one of them is left for our record, and waking it now
    /// (instead of through the hand-on, one receiver after another) lets a burst be
    /// taken by the sleepers in parallel. With one sleeper and a record ahead of ours
    /// (the receiver being woken) this is false: no syscall per commit. A walk of at
    /// most `sleepers` stamps, only when some receiver sleeps.
    fn sleeper_left_for(&self, rd: u64, pos: u64) -> bool {
        let sleepers = u64::from(self.hdr().wait.data.sleepers());
        let mut r = rd;
        for _ in 0..sleepers {
            if r == pos {
                return true;
            }
            if pos.wrapping_sub(r) > self.cap {
                return false; // `read` moved past us meanwhile: nothing to do
            }
            // Relaxed: a hint (see `passed_over`); a stamp that does not fit stops it.
            let w = self.word(r).load(Ordering::Relaxed);
            match self.record_size(r, w).filter(|_| st_tag(w) == tag(r)) {
                Some(size) => r += size,
                None => return false,
            }
        }
        false
    }

    /// Wakes one receiver if the record at `r` (the new `read`) is committed or passed
    /// over. Receivers asleep wait for the record at `read`: a commit wakes one only
    /// when its record is there (or behind a record passed over), and the receiver
    /// that claims a record hands on to the next here, so while a receiver is being
    /// woken later commits make no syscall (one per commit before).
    fn wake_receiver_for(&self, r: u64) {
        // Relaxed: as in `passed_over`.
        let w = self.word(r).load(Ordering::Relaxed);
        if st_tag(w) == tag(r) && matches!(st_state(w), COMMITTED | DONE) {
            self.hdr().wait.data.wake(1);
        }
    }

    /// One claim attempt for the receiver entry `me`.
    fn try_claim(&self, me: &Peer) -> Claim {
        let h = self.hdr();
        for _ in 0..self.retry_bound() {
            // Acquire: pairs with the Release CAS of `read` by the receiver that moved
            // it (below, and in `claim_committed`), which had seen the tail past the
            // record it passed: so `tail` as we read it is not below `r` (otherwise a
            // stale tail would look like a read cursor outside the written range).
            // The stamp's tag and `head` validate the rest.
            let r = h.read.pos.load(Ordering::Acquire);
            // Fast path: a COMMITTED stamp of this position at `read`, not reclaimed,
            // is a record below the tail (read <= tail, and a sender commits only
            // after the tail moved past its claim), so `tail`, the senders' line, is
            // not read. Acquire (stamp): pairs with the sender's Release CAS to
            // COMMITTED (step 5); Acquire (head): as below, `head <= r` means the
            // stamp was not read from reclaimed bytes.
            let w = self.word(r).load(Ordering::Acquire);
            if st_state(w) == COMMITTED
                && st_tag(w) == tag(r)
                && h.head.pos.load(Ordering::Acquire) <= r
            {
                if let Some(size) = self.record_size(r, w) {
                    match self.claim_committed(me, r, w, size) {
                        Some(got) => return got,
                        None => continue,
                    }
                }
            }
            // Acquire: pairs with the Release CAS of `tail`: stamps below it are claims.
            let t = h.tail.pos.load(Ordering::Acquire);
            if r == t {
                return Claim::Empty;
            }
            let stale = || h.read.pos.load(Ordering::Relaxed) != r;
            if t.wrapping_sub(r) > self.cap {
                if stale() {
                    continue;
                }
                return Claim::Corrupt("read cursor outside the written range");
            }
            // Acquire: pairs with the sender's Release CAS to COMMITTED (step 5).
            let w = self.word(r).load(Ordering::Acquire);
            // Acquire: pairs with the Release CAS of `head`; `head <= r` means the
            // record at `r` was not reclaimed when `w` was read (a stale `r` might
            // point into reused bytes).
            let head = h.head.pos.load(Ordering::Acquire);
            if head > r {
                continue;
            }
            if st_tag(w) != tag(r) {
                if stale() {
                    continue;
                }
                return Claim::Corrupt("record stamp does not match its position");
            }
            let Some(size) = self.record_size(r, w) else {
                if stale() {
                    continue;
                }
                return Claim::Corrupt("impossible record length or state");
            };
            match st_state(w) {
                COMMITTED => match self.claim_committed(me, r, w, size) {
                    Some(got) => return got,
                    None => continue,
                },
                READING | DONE => {
                    // Release: as in `claim_committed`.
                    let passed = h
                        .read
                        .pos
                        .compare_exchange(r, r + size, Ordering::Release, Ordering::Relaxed)
                        .is_ok();
                    if passed && st_state(w) == DONE {
                        // A wrap or lost record is now below `read`: reclaimable. A
                        // sender asleep on a full channel may need exactly its room
                        // (no DONE of ours follows if the channel is now empty).
                        h.wait.space.wake(u32::MAX);
                    }
                }
                WRITING => return Claim::Blocked { pos: r, w },
                _ => {
                    if stale() {
                        continue;
                    }
                    return Claim::Corrupt("free record below the tail");
                }
            }
        }
        Claim::Empty
    }

    /// Sends a record of `len` bytes whose payload `fill` writes at the position it is
    /// given (`Err` from `fill`: the record is abandoned, DONE, never delivered).
    fn send_core<R, E>(
        &self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(u64) -> Result<R, E>,
    ) -> Result<Result<R, E>, SendError<()>> {
        if self.is_corrupt() {
            return Err(SendError::Corrupt(()));
        }
        let max = self.max_message_len();
        if len > max {
            return Err(SendError::TooLarge { msg: (), len, max });
        }
        let me = self.register(Side::Tx).ok_or(SendError::RegistryFull(()))?;
        // Every REAP_EVERY sends (and on the slow path) the receivers' entries are
        // judged in `/proc`, so receivers that were killed are noticed before the
        // channel fills: a few microseconds per REAP_EVERY sends.
        let n = self.sends.get().wrapping_add(1);
        self.sends.set(n % REAP_EVERY);
        if self.gone(Side::Rx, n == REAP_EVERY && wait_allows_reap(wait)) {
            return Err(SendError::Disconnected(()));
        }
        let h = self.hdr();
        let mut backoff = crate::shim::poll_backoff(&self.send_poll);
        let mut pace = CheckPace::new();
        // What the sleep's re-check compares (read, head, the stamp at head, the live
        // receivers), taken *before* one more reserve and reclaim attempt, so that a
        // change after that attempt is seen by the re-check.
        let mut snapshot: Option<(u64, u64, u64, u32)> = None;
        let mut check_peers = false;
        let pos = loop {
            match self.try_reserve(len as u32, me) {
                Reserve::Got(p) => break p,
                Reserve::Corrupt => {
                    self.mark_corrupt();
                    return Err(SendError::Corrupt(()));
                }
                Reserve::Full => {}
            }
            if self.advance_head() {
                continue;
            }
            let deadline = match wait {
                Wait::No => return Err(SendError::Full(())),
                Wait::Until(d) => d,
            };
            if self.is_corrupt() {
                return Err(SendError::Corrupt(()));
            }
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(SendError::Timeout(()));
            }
            // Under loom the models go straight to the sleep protocol: the backoff's
            // yields would let the peer finish first in every explored schedule, so
            // the sleep and its wake-up would never be checked.
            if !cfg!(loom) && backoff.snooze() {
                continue;
            }
            // Slow path.
            let Some((rd, hd, w, live)) = snapshot.take() else {
                // Relaxed (read, live): compared only; Acquire (head, stamp): as in
                // `advance_head`.
                let rd = h.read.pos.load(Ordering::Relaxed);
                let hd = h.head.pos.load(Ordering::Acquire);
                let w = self.word(hd).load(Ordering::Acquire);
                let live = h.meta.rx_live.load(Ordering::Relaxed);
                // A dead receiver (or sender) holding the record at `head`?
                if st_tag(w) == tag(hd) && self.unstick(hd, w) {
                    continue;
                }
                // Reaps dead receivers (a `/proc` read each) only after a sleep slice
                // that ended without a wake, as the Parker's `wait_until` does.
                if std::mem::take(&mut check_peers) && self.gone(Side::Rx, true) {
                    return Err(SendError::Disconnected(()));
                }
                snapshot = Some((rd, hd, w, live));
                continue;
            };
            let slice = pace.next_slice(deadline);
            let ready = h
                .wait
                .space
                .park(Some(&slice), || {
                    // Relaxed/Acquire: as for the snapshot.
                    h.read.pos.load(Ordering::Relaxed) != rd
                        || h.head.pos.load(Ordering::Acquire) != hd
                        || self.word(hd).load(Ordering::Acquire) != w
                        || h.meta.rx_live.load(Ordering::Relaxed) != live
                        || self.is_corrupt()
                })
                .map_err(|e| SendError::Os((), e))?;
            // Never under loom: a slice that ends by the clock would make the model
            // nondeterministic (and the reap reads `/proc`, which loom does not model).
            check_peers = !cfg!(loom) && !ready && slice.has_passed();
        };
        // A `fill` that panics leaves no record WRITING for ever under a live
        // process (receivers would wait for it): the guard abandons it (DONE).
        let guard = Abandon {
            ch: self,
            me,
            pos,
            claim: stamp(pos, len as u32, WRITING),
        };
        let r = fill(pos);
        std::mem::forget(guard);
        let state = if r.is_ok() { COMMITTED } else { DONE };
        // Release: the payload happens-before a receiver's Acquire of COMMITTED
        // (step 5); for DONE (an abandoned record) nothing is read, but the order is
        // the same.
        let done = self.word(pos).compare_exchange(
            stamp(pos, len as u32, WRITING),
            stamp(pos, len as u32, state),
            Ordering::Release,
            Ordering::Relaxed,
        );
        // Relaxed: our own entry; a checker that finds it cleared sees the stamp moved.
        me.pending.store(0, Ordering::Relaxed);
        if done.is_err() {
            return Err(SendError::ClaimLost(()));
        }
        // SeqCst fence: pairs with a receiver's after it moved `read` (see
        // `claim_committed`), and with a sleeper's in `Parker::park`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence.
        let rd = h.read.pos.load(Ordering::Relaxed);
        if rd == pos || self.passed_over(rd) || self.sleeper_left_for(rd, pos) {
            h.wait.data.wake(1);
        }
        Ok(r)
    }

    /// Receives one record: `read` gets its position and length.
    fn recv_core<R>(&self, wait: Wait, read: impl FnOnce(u64, u32) -> R) -> Result<R, RecvError> {
        let me = self.register(Side::Rx).ok_or(RecvError::RegistryFull)?;
        let h = self.hdr();
        let mut backoff = crate::shim::poll_backoff(&self.recv_poll);
        let mut pace = CheckPace::new();
        let mut snapshot: Option<(u64, u64, u64, u32)> = None;
        let mut check_peers = false;
        loop {
            if self.is_corrupt() {
                return Err(RecvError::Corrupt {
                    what: "marked corrupt",
                });
            }
            let mut claim = self.try_claim(me);
            if matches!(claim, Claim::Empty) && self.gone(Side::Tx, false) {
                // Every sender's last commit is visible now (Acquire in `gone`): look
                // once more before saying so.
                claim = self.try_claim(me);
                if matches!(claim, Claim::Empty) {
                    return Err(RecvError::Disconnected);
                }
            }
            let blocked = match claim {
                Claim::Got { pos, len } => {
                    // A `read` that panics still releases the record (DONE: that
                    // message is consumed), so senders are not blocked by it.
                    let guard = Abandon {
                        ch: self,
                        me,
                        pos,
                        claim: stamp(pos, len, READING),
                    };
                    let r = read(pos, len);
                    std::mem::forget(guard);
                    // Release: our reads happen-before the Acquire of DONE by whoever
                    // reclaims the space (`advance_head`), hence before its reuse.
                    // Reclaiming is left to senders (they advance `head` when they
                    // find the channel full, over every DONE record at once): the hot
                    // path of a receive writes no shared cursor but `read`.
                    let done = self.word(pos).compare_exchange(
                        stamp(pos, len, READING),
                        stamp(pos, len, DONE),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    // Relaxed: our own entry.
                    me.pending.store(0, Ordering::Relaxed);
                    // A sender asleep on a full channel waits for the record at
                    // `head` (its re-check compares the stamp there): only the
                    // receiver whose record is at `head` wakes it, so a receiver
                    // draining a full channel makes one wake-up syscall, not one per
                    // record while the sender is being scheduled. A record below ours
                    // wakes it when it is DONE; `head` past ours was moved by a sender
                    // that woke the others (`advance_head`). SeqCst fence: pairs with
                    // the sender's fence in `Parker::park` (Dekker, for `head` as for
                    // `sleepers`): either its re-check sees our DONE, or we see the
                    // `head` it slept on (and `wake` sees it announced).
                    fence(Ordering::SeqCst);
                    // Relaxed: ordered by the fence above.
                    if h.head.pos.load(Ordering::Relaxed) == pos {
                        h.wait.space.wake(u32::MAX);
                    }
                    return match done {
                        Ok(_) => Ok(r),
                        Err(_) => Err(RecvError::ClaimLost),
                    };
                }
                Claim::Corrupt(what) => {
                    self.mark_corrupt();
                    return Err(RecvError::Corrupt { what });
                }
                Claim::Empty => None,
                Claim::Blocked { pos, w } => Some((pos, w)),
            };
            let deadline = match wait {
                Wait::No => return Err(RecvError::Empty),
                Wait::Until(d) => d,
            };
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(RecvError::Timeout);
            }
            // Under loom the models go straight to the sleep protocol: the backoff's
            // yields would let the peer finish first in every explored schedule, so
            // the sleep and its wake-up would never be checked.
            if !cfg!(loom) && backoff.snooze() {
                continue;
            }
            // Slow path: what the sleep's re-check compares is taken *before* one more
            // claim attempt, so that a change after that attempt is seen by it.
            let Some((r, t, w, live)) = snapshot.take() else {
                if let Some((pos, w)) = blocked {
                    if self.unstick(pos, w) {
                        continue;
                    }
                }
                // Relaxed (live, read): compared only; Acquire (tail, stamp): as in
                // `try_claim`.
                let live = h.meta.tx_live.load(Ordering::Relaxed);
                let r = h.read.pos.load(Ordering::Relaxed);
                let t = h.tail.pos.load(Ordering::Acquire);
                let w = self.word(r).load(Ordering::Acquire);
                // Reaps dead senders (a `/proc` read each) only after a sleep slice
                // that ended without a wake; the next attempt reports Disconnected if
                // none is left.
                if std::mem::take(&mut check_peers) {
                    let _ = self.gone(Side::Tx, true);
                }
                snapshot = Some((r, t, w, live));
                continue;
            };
            let slice = pace.next_slice(deadline);
            let ready = h
                .wait
                .data
                .park(Some(&slice), || {
                    // Acquire/Relaxed: as for the snapshot.
                    h.tail.pos.load(Ordering::Acquire) != t
                        || h.read.pos.load(Ordering::Relaxed) != r
                        || self.word(r).load(Ordering::Acquire) != w
                        || h.meta.tx_live.load(Ordering::Relaxed) != live
                        || self.is_corrupt()
                })
                .map_err(RecvError::Os)?;
            // Never under loom: a slice that ends by the clock would make the model
            // nondeterministic (and the reap reads `/proc`, which loom does not model).
            check_peers = !cfg!(loom) && !ready && slice.has_passed();
        }
    }

    /// Registers this handle as a receiver now, rather than at its first receive (a
    /// [`Select`](crate::Select) does so on its first look). Until the handle is
    /// dropped, senders are not told that no receiver is left.
    ///
    /// # Errors
    /// [`RecvError::RegistryFull`] if every receiver entry is held by a live process.
    pub fn attach_receiver(&self) -> Result<(), RecvError> {
        self.register(Side::Rx)
            .map(drop)
            .ok_or(RecvError::RegistryFull)
    }

    /// Registers this handle as a sender now, rather than at its first send. Until the
    /// handle is dropped, receivers are not told that every sender is gone: a
    /// coordinator that starts several producers holds one, so that a producer
    /// finishing before another has started does not end the receivers (see
    /// "Disconnection" in the [module docs](self)).
    ///
    /// # Example
    /// ```
    /// use shmkit_typed::{Channel, RecvError};
    ///
    /// let ch = Channel::<u32>::anonymous(4096)?;
    /// let hold = ch.clone();
    /// hold.attach_sender()?; // counted as a sender from here on
    /// let first = ch.clone();
    /// first.send(1)?;
    /// drop(first); // the first producer is done: one sender (`hold`) is left
    /// assert_eq!(ch.recv(), Ok(1));
    /// assert_eq!(ch.try_recv(), Err(RecvError::Empty)); // not Disconnected
    /// drop(hold);
    /// assert_eq!(ch.try_recv(), Err(RecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`SendError::RegistryFull`] if every sender entry is held by a live process.
    pub fn attach_sender(&self) -> Result<(), SendError<()>> {
        self.register(Side::Tx)
            .map(drop)
            .ok_or(SendError::RegistryFull(()))
    }

    /// The parker receivers sleep on (a [`Select`](crate::Select) sleeps on it too).
    pub(crate) fn data_parker(&self) -> &Parker {
        &self.hdr().wait.data
    }

    /// Whether a receive would not wait now (for [`Select`](crate::Select), which
    /// claims nothing): a record at `read` that is not being written (a message, or one
    /// a receive passes over), the senders gone, or the channel corrupt. `deep` (slow
    /// path only) reaps dead senders first and gives up a record whose writer died.
    pub(crate) fn recv_ready(&self, deep: bool) -> bool {
        if self.is_corrupt() {
            return true;
        }
        let h = self.hdr();
        // Acquire: as in `try_claim`.
        let r = h.read.pos.load(Ordering::Acquire);
        let t = h.tail.pos.load(Ordering::Acquire);
        if r != t {
            let w = self.word(r).load(Ordering::Acquire);
            // WRITING: its sender's commit wakes the `data` parker. Anything else at
            // `read` ends the wait: the receive that follows says what it is.
            if st_tag(w) != tag(r) || st_state(w) != WRITING || (deep && self.unstick(r, w)) {
                return true;
            }
        }
        self.gone(Side::Tx, deep)
    }

    /// Under loom: registers this handle as a sender and/or a receiver now (before the
    /// model's threads start, so registry walks stay out of the explored schedules).
    #[cfg(loom)]
    pub(crate) fn loom_register(&self, tx: bool, rx: bool) {
        if tx {
            assert!(self.register(Side::Tx).is_some());
        }
        if rx {
            assert!(self.register(Side::Rx).is_some());
        }
    }

    /// Under loom: the cursors and the first stamps, for a failing model's message.
    #[cfg(loom)]
    pub(crate) fn loom_state(&self) -> String {
        let h = self.hdr();
        let words: Vec<String> = (0..self.cap / 8)
            .map(|i| format!("{:#x}", self.word(i * 8).load(Ordering::SeqCst)))
            .collect();
        format!(
            "tail {} read {} head {} tx_live {} words {:?}",
            h.tail.pos.load(Ordering::SeqCst),
            h.read.pos.load(Ordering::SeqCst),
            h.head.pos.load(Ordering::SeqCst),
            h.meta.tx_live.load(Ordering::SeqCst),
            words
        )
    }

    /// Under loom: sends the 8-byte message `v` (its payload is a loom cell).
    #[cfg(loom)]
    pub(crate) fn loom_send(&self, v: u64, block: bool) -> Result<(), SendError<()>> {
        let wait = if block { Wait::Until(None) } else { Wait::No };
        self.send_core(8, wait, |pos| {
            let Backing::Loom(m) = &self.backing;
            let i = ((pos & (self.cap - 1)) / 8 + 1) as usize;
            // SAFETY: we hold the WRITING claim on this record.
            m.cells[i].with_mut(|p| unsafe { *p = v });
            Ok::<(), ()>(())
        })
        .map(drop)
    }

    /// Under loom: receives an 8-byte message.
    #[cfg(loom)]
    pub(crate) fn loom_recv(&self, block: bool) -> Result<u64, RecvError> {
        let wait = if block { Wait::Until(None) } else { Wait::No };
        self.recv_core(wait, |pos, len| {
            assert_eq!(len, 8);
            let Backing::Loom(m) = &self.backing;
            let i = ((pos & (self.cap - 1)) / 8 + 1) as usize;
            // SAFETY: we hold the READING claim; the write happened-before (Acquire).
            m.cells[i].with(|p| unsafe { *p })
        })
    }
}

/// What `shmkit inspect` shows of a channel: [`Channel::stats`], [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStats {
    /// Data capacity in bytes.
    pub capacity: usize,
    /// The bound in messages, if any ([`ChannelBounds::messages`]).
    pub max_messages: Option<usize>,
    /// Bytes between the reclaim cursor and the tail (records not yet reclaimed).
    pub used_bytes: usize,
    /// Messages written or being written and not yet taken ([`Channel::len`]).
    pub messages: usize,
    /// Whether the channel was marked corrupt.
    pub corrupt: bool,
    /// Sender registry entries that were ever used.
    pub senders: Vec<PeerEntry>,
    /// Receiver registry entries that were ever used.
    pub receivers: Vec<PeerEntry>,
}

/// One used registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerEntry {
    /// Its index in the registry.
    pub index: usize,
    /// The holder's pid (0 once it left).
    pub pid: u32,
    /// `"attached"`, `"dead"` or `"left"`.
    pub state: &'static str,
    /// The position of the record it holds, if any.
    pub holds: Option<u64>,
}

impl<T, N: TypeName> Channel<T, N> {
    /// The fill level and the registries (a `/proc` read per entry with a holder).
    pub fn stats(&self) -> ChannelStats {
        let h = self.hdr();
        let entries = |side: Side| {
            let (peers, _, _) = self.side(side);
            peers
                .iter()
                .enumerate()
                .filter_map(|(index, p)| {
                    let w = p.slot.word();
                    let (pid, state) = match in_segment(self.segment(), || p.slot.state_of(w)) {
                        PeerState::Vacant => return None,
                        PeerState::Attached { pid } => (pid, "attached"),
                        PeerState::Died { pid } => (pid, "dead"),
                        PeerState::Left { .. } => (0, "left"),
                    };
                    // Relaxed: a snapshot for display.
                    let pending = p.pending.load(Ordering::Relaxed);
                    Some(PeerEntry {
                        index,
                        pid,
                        state,
                        holds: pending.checked_sub(1),
                    })
                })
                .collect()
        };
        // Relaxed: a snapshot for display.
        let tail = h.tail.pos.load(Ordering::Relaxed);
        let head = h.head.pos.load(Ordering::Relaxed);
        ChannelStats {
            capacity: self.capacity(),
            max_messages: self.max_messages(),
            used_bytes: tail.wrapping_sub(head).min(self.cap) as usize,
            messages: self.len(),
            corrupt: self.is_corrupt(),
            senders: entries(Side::Tx),
            receivers: entries(Side::Rx),
        }
    }
}

/// The [`ChannelStats`] of the channel in `seg`, whatever its message type, if `seg`
/// holds a channel of this build's layout (`shmkit inspect`). Only reads.
#[cfg(not(loom))]
pub fn inspect(seg: &shmkit_segment::Segment) -> Option<ChannelStats> {
    let tag = seg.header()?.type_tag;
    if tag.kind() != crate::types::kind::CHANNEL {
        return None;
    }
    // SAFETY: the segment maps `payload_len` bytes at `payload_ptr` (128-byte aligned)
    // for as long as `seg` lives, which outlives the handle (dropped below); the handle
    // only reads (it never registers: no send or receive is made).
    let ch = unsafe {
        Channel::<(), RustName>::attach_checked(seg.payload_ptr(), seg.payload_len(), false)
    }
    .ok()?;
    Some(ch.stats())
}

/// Marks a claimed record DONE if dropped: armed around user code (`fill`, `read`)
/// that may panic; forgotten on the normal path.
struct Abandon<'a, T, N: TypeName> {
    ch: &'a Channel<T, N>,
    me: &'a Peer,
    pos: u64,
    claim: u64,
}

impl<T, N: TypeName> Drop for Abandon<'_, T, N> {
    fn drop(&mut self) {
        let ch = self.ch;
        // Release: as every DONE (a receiver's reads happen-before the reuse).
        let _ = ch.word(self.pos).compare_exchange(
            self.claim,
            stamp(self.pos, st_len(self.claim), DONE),
            Ordering::Release,
            Ordering::Relaxed,
        );
        // Relaxed: our own entry.
        self.me.pending.store(0, Ordering::Relaxed);
        ch.advance_head();
        ch.hdr().wait.data.wake(u32::MAX);
        ch.hdr().wait.space.wake(u32::MAX);
    }
}

#[cfg(not(loom))]
impl<T, N: TypeName> Channel<T, N> {
    crate::family::family_forms!(bounds: impl Into<ChannelBounds>);

    /// The payload bytes of the record at `pos` (length `len`).
    ///
    /// # Safety
    /// The caller holds the record's claim (WRITING or READING): by the protocol no
    /// other correct peer touches these bytes until the claim ends, and the slice must
    /// not outlive it. A process that does not follow the protocol (a foreign writer
    /// of the mapping) could still write them: the bytes are plain `u8`, so that
    /// yields wrong bytes, never an invalid value.
    #[allow(clippy::mut_from_ref)]
    unsafe fn payload(&self, pos: u64, len: u32) -> &mut [u8] {
        let off = (pos & (self.cap - 1)) + REC_HDR;
        debug_assert!(off + u64::from(len) <= self.cap);
        // SAFETY: `record_size` checked `off + len <= cap` for the stamp this claim
        // was made on, so the slice lies inside the data buffer; exclusivity per the
        // caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data.add(off as usize), len as usize) }
    }

    fn wait_for(timeout: Duration) -> Wait {
        Wait::timeout(timeout)
    }

    fn wait_at(when: Instant) -> Wait {
        Wait::at(when)
    }

    /// Sends `bytes` as one record (the bytes path: no encoding; a typed receiver
    /// decodes them as postcard `T`). Blocks while the channel is full.
    ///
    /// # Errors
    /// As [`Channel::send`], with `()` for the message.
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        self.send_with(bytes.len(), |buf| buf.copy_from_slice(bytes))
    }

    /// As [`Channel::send_bytes`], failing with [`SendError::Full`] instead of waiting.
    ///
    /// # Errors
    /// As [`Channel::try_send`].
    pub fn try_send_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        self.send_with_wait(bytes.len(), Wait::No, |buf| buf.copy_from_slice(bytes))
    }

    /// Reserves a record of `len` bytes and lets `fill` write it in place (zero-copy),
    /// then delivers it. Blocks while the channel is full. `fill` sees the record's
    /// bytes (old contents: write all of them).
    ///
    /// # Errors
    /// As [`Channel::send`], with `()` for the message.
    pub fn send_with<R>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, SendError<()>> {
        self.send_with_wait(len, Wait::Until(None), fill)
    }

    /// As [`Channel::send_with`], failing with [`SendError::Full`] instead of waiting
    /// (`fill` is not called then).
    ///
    /// # Errors
    /// As [`Channel::try_send`], with `()` for the message.
    pub fn try_send_with<R>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, SendError<()>> {
        self.send_with_wait(len, Wait::No, fill)
    }

    /// As [`Channel::send_with`], waiting at most `timeout` for room (`fill` is not
    /// called if none came).
    ///
    /// # Errors
    /// As [`Channel::send_timeout`], with `()` for the message.
    pub fn send_with_timeout<R>(
        &self,
        len: usize,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, SendError<()>> {
        self.send_with_wait(len, Self::wait_for(timeout), fill)
    }

    fn send_with_wait<R>(
        &self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, SendError<()>> {
        self.send_core(len, wait, |pos| {
            // SAFETY: `send_core` gives the position it holds the WRITING claim on,
            // for `len` bytes; the slice ends with `fill`.
            Ok::<R, ()>(fill(unsafe { self.payload(pos, len as u32) }))
        })
        .map(|r| r.unwrap_or_else(|()| unreachable!("fill cannot fail")))
    }

    /// Receives the next record in place: `f` sees its bytes as one slice, and the
    /// space is released when `f` returns. Blocks while the channel is empty.
    ///
    /// Trust model: the slice is the shared mapping itself. Every process that follows
    /// the protocol leaves these bytes alone while this receiver holds the record; a
    /// process that does not (a foreign writer of the mapping) can change them under
    /// `f`, which then sees wrong bytes (plain `u8`: never an invalid value). Copy
    /// what must stay consistent, or use the typed [`recv`](Channel::recv).
    ///
    /// # Errors
    /// As [`Channel::recv`] (no `Decode`).
    pub fn recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_with_wait(Wait::Until(None), f)
    }

    /// As [`Channel::recv_with`], failing with [`RecvError::Empty`] instead of waiting.
    ///
    /// # Errors
    /// As [`Channel::try_recv`] (no `Decode`).
    pub fn try_recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_with_wait(Wait::No, f)
    }

    /// As [`Channel::recv_with`], waiting at most `timeout` ([`RecvError::Timeout`]).
    ///
    /// # Errors
    /// As [`Channel::recv_timeout`] (no `Decode`).
    pub fn recv_with_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        self.recv_with_wait(Self::wait_for(timeout), f)
    }

    fn recv_with_wait<R>(&self, wait: Wait, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_core(wait, |pos, len| {
            // SAFETY: `recv_core` gives the position it holds the READING claim on;
            // the slice ends with `f`, before the record is marked DONE.
            f(unsafe { self.payload(pos, len) })
        })
    }
}

#[cfg(not(loom))]
impl<T: Serialize + DeserializeOwned, N: TypeName> Channel<T, N> {
    fn send_wait(&self, msg: T, wait: Wait) -> Result<(), SendError<T>> {
        let len = match postcard::serialize_with_flavor::<T, _, usize>(
            &msg,
            postcard::ser_flavors::Size::default(),
        ) {
            Ok(n) => n,
            Err(e) => {
                return Err(SendError::Encode {
                    msg,
                    reason: e.to_string(),
                })
            }
        };
        let sent = self.send_core(len, wait, |pos| {
            // SAFETY: as in `send_with_wait`.
            let buf = unsafe { self.payload(pos, len as u32) };
            postcard::to_slice(&msg, buf).map(drop)
        });
        match sent {
            Ok(Ok(())) => Ok(()),
            // The size pass and the encode disagreed (a `Serialize` impl that is not
            // deterministic): the record was abandoned.
            Ok(Err(e)) => Err(SendError::Encode {
                msg,
                reason: e.to_string(),
            }),
            Err(e) => Err(e.with(msg)),
        }
    }

    /// Sends `msg`, blocking while the channel is full.
    ///
    /// # Errors
    /// [`SendError::Disconnected`] (every receiver gone), [`SendError::TooLarge`],
    /// [`SendError::Encode`], [`SendError::RegistryFull`], [`SendError::Corrupt`],
    /// [`SendError::ClaimLost`], [`SendError::Os`]; each hands the message back.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_wait(msg, Wait::Until(None))
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    /// As [`Channel::send`], plus [`SendError::Full`].
    pub fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_wait(msg, Wait::No)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Channel::send`], plus [`SendError::Timeout`].
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_wait(msg, Self::wait_for(timeout))
    }

    /// Sends `msg`, waiting for room until `deadline` at most.
    ///
    /// # Errors
    /// As [`Channel::send_timeout`].
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendError<T>> {
        self.send_wait(msg, Self::wait_at(deadline))
    }

    fn recv_wait(&self, wait: Wait) -> Result<T, RecvError> {
        self.recv_with_wait(wait, |bytes| {
            postcard::from_bytes::<T>(bytes).map_err(|e| RecvError::Decode {
                len: bytes.len(),
                reason: e.to_string(),
            })
        })?
    }

    /// Receives the next message, blocking while the channel is empty.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once every sender is gone and the channel is
    /// drained; [`RecvError::Decode`] for a message that is not a `T` (consumed: call
    /// again); [`RecvError::RegistryFull`], [`RecvError::Corrupt`],
    /// [`RecvError::ClaimLost`], [`RecvError::Os`].
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_wait(Wait::Until(None))
    }

    /// Receives a message if there is one now (never reads `/proc`: a killed sender
    /// is seen by the blocking forms).
    ///
    /// # Errors
    /// As [`Channel::recv`], plus [`RecvError::Empty`].
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.recv_wait(Wait::No)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Channel::recv`], plus [`RecvError::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_wait(Self::wait_for(timeout))
    }

    /// Receives a message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Channel::recv_timeout`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvError> {
        self.recv_wait(Self::wait_at(deadline))
    }

    /// A blocking iterator: [`recv`](Channel::recv) until it fails (disconnected,
    /// or any other error: call `recv` to learn which).
    pub fn iter(&self) -> Iter<'_, T, N> {
        Iter {
            ch: self,
            wait: true,
        }
    }

    /// A non-blocking iterator over the messages there are now.
    pub fn try_iter(&self) -> Iter<'_, T, N> {
        Iter {
            ch: self,
            wait: false,
        }
    }
}

/// Iterator of [`Channel::iter`] / [`Channel::try_iter`].
#[derive(Debug)]
pub struct Iter<'a, T, N: TypeName = RustName> {
    ch: &'a Channel<T, N>,
    wait: bool,
}

#[cfg(not(loom))]
impl<T: Serialize + DeserializeOwned, N: TypeName> Iterator for Iter<'_, T, N> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.wait {
            self.ch.recv().ok()
        } else {
            self.ch.try_recv().ok()
        }
    }
}

#[cfg(not(loom))]
impl<T, N: TypeName> crate::family::sealed::Layout for Channel<T, N> {
    type Init = ChannelBounds;
    const OBJECT: &'static str = "Channel";

    fn tag() -> shmkit_segment::TypeTag {
        Self::type_tag()
    }

    fn payload_size(bounds: &ChannelBounds) -> Result<usize, crate::CreateError> {
        Self::check_capacity(bounds.bytes)?;
        Self::check_messages(bounds.messages)?;
        Ok(Self::region_size(bounds.bytes))
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, bounds: ChannelBounds) {
        // SAFETY: the trait's contract: a fresh, private, large enough payload; the
        // bounds were validated by `payload_size`.
        let _ = unsafe { Self::init(ptr, len, bounds) };
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        Ok(Self::from_segment(seg)?)
    }

    fn check_init(&self, bounds: &ChannelBounds) -> Result<(), crate::OpenError> {
        crate::family::check_payload(self.segment(), Self::region_size(bounds.bytes))?;
        if bounds.messages != self.max_messages() {
            return Err(ChannelLayoutError::MessageBoundMismatch {
                expected: bounds.messages,
                found: self.max_messages(),
            }
            .into());
        }
        Ok(())
    }
}

impl<T, N: TypeName> Drop for Channel<T, N> {
    fn drop(&mut self) {
        let me = owner::current_pid();
        let mut left = false;
        for side in [Side::Tx, Side::Rx] {
            let role = self.role(side).get();
            if role.pid != me {
                continue;
            }
            let (peers, live, _) = self.side(side);
            if let Some(p) = peers.get(role.idx as usize) {
                if p.slot.release(0) {
                    // Release: pairs with the Acquire in `gone`: every record this
                    // peer committed is visible to the other side that sees the count.
                    live.fetch_sub(1, Ordering::Release);
                    left = true;
                }
            }
        }
        if left {
            // The other side may sleep waiting for us: it re-checks at once.
            self.hdr().wait.data.bump_and_wake(u32::MAX);
            self.hdr().wait.space.bump_and_wake(u32::MAX);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn chan(cap: usize) -> Channel<Vec<u8>> {
        Channel::anonymous(cap).unwrap()
    }

    #[test]
    fn messages_round_trip_in_order_across_wraps() {
        let tx = chan(256);
        let rx = tx.clone();
        for i in 0..200u32 {
            let msg = vec![i as u8; (i as usize * 7) % 90];
            tx.send(msg.clone()).unwrap();
            assert_eq!(tx.len(), 1);
            assert_eq!(rx.recv().unwrap(), msg, "message {i}");
        }
        assert!(rx.is_empty());
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    }

    /// Three senders race `try_send` until the channel is full, with no receiver
    /// taking: exactly the bound gets in, round after round (a receiver then takes a
    /// few), with messages of several sizes so the records wrap.
    #[test]
    fn the_bound_in_messages_is_exact_between_racing_senders() {
        const MAX: usize = 5;
        let ch: Channel<Vec<u8>> =
            Channel::anonymous(ChannelBounds::bytes(4096).messages(MAX)).unwrap();
        assert_eq!(ch.max_messages(), Some(MAX));
        let start = std::sync::Barrier::new(3);
        let (mut sent, mut taken) = (0usize, 0usize);
        for round in 0..200usize {
            let got: usize = std::thread::scope(|s| {
                let tries: Vec<_> = (0..3usize)
                    .map(|k| {
                        let (tx, start) = (ch.clone(), &start);
                        s.spawn(move || {
                            start.wait();
                            let mut n = 0;
                            while tx
                                .try_send(vec![k as u8; (round * 13 + k * 5) % 200])
                                .is_ok()
                            {
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                tries.into_iter().map(|t| t.join().unwrap()).sum()
            });
            sent += got;
            assert_eq!(sent - taken, MAX, "round {round}: {got} got in");
            assert_eq!(ch.len(), MAX);
            for _ in 0..=round % MAX {
                ch.try_recv().unwrap();
                taken += 1;
            }
        }
    }

    #[test]
    fn a_send_at_the_bound_in_messages_waits_for_a_receive_or_times_out() {
        let tx: Channel<u32> = Channel::anonymous(ChannelBounds::bytes(1024).messages(1)).unwrap();
        let rx = tx.clone();
        tx.send(1).unwrap();
        assert!(matches!(
            tx.send_timeout(2, Duration::from_millis(20)),
            Err(SendError::Timeout(2))
        ));
        let blocked = std::thread::spawn(move || tx.send(2));
        assert_eq!(rx.recv().unwrap(), 1);
        blocked.join().unwrap().unwrap();
        assert_eq!(rx.recv().unwrap(), 2);
        // The only sender left with its thread: drained, so disconnected.
        assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));
    }

    #[test]
    fn the_bound_in_messages_is_checked_kept_and_shown() {
        for bad in [0, u32::MAX as usize + 1] {
            let e =
                Channel::<u32>::anonymous(ChannelBounds::bytes(1024).messages(bad)).unwrap_err();
            assert!(
                e.to_string()
                    .contains("bound in messages must be 1 to 4294967295"),
                "{e}"
            );
        }
        let name = format!("shmkit-test-chan-bound-{}", std::process::id());
        let made = Channel::<u32>::create(&name, ChannelBounds::bytes(1024).messages(3)).unwrap();
        let found = Channel::<u32>::open(&name).unwrap();
        assert_eq!(found.max_messages(), Some(3));
        assert_eq!(found.stats().max_messages, Some(3));
        assert_eq!(made.max_messages(), Some(3));
        let e = Channel::<u32>::open_or_create(&name, ChannelBounds::bytes(1024).messages(4))
            .unwrap_err();
        assert!(
            e.to_string().contains("bound in messages is 3, not 4"),
            "{e}"
        );
        assert!(Channel::<u32>::open_or_create(&name, 1024).is_err());
        assert!(
            Channel::<u32>::open_or_create(&name, ChannelBounds::bytes(1024).messages(3)).is_ok()
        );
        assert_eq!(chan(1024).max_messages(), None);
    }

    #[test]
    fn full_then_room_again_and_too_large_is_typed() {
        let tx = chan(128);
        let rx = tx.clone();
        let max = tx.max_message_len();
        assert_eq!(max, 112);
        let mut n = 0;
        while tx.try_send_bytes(&[7; 24]).is_ok() {
            n += 1;
        }
        assert!(n >= 3, "{n} records of 32 B in 128 B");
        assert!(matches!(
            tx.try_send_bytes(&[1; 24]),
            Err(SendError::Full(()))
        ));
        assert!(matches!(
            tx.send_bytes(&vec![0; max + 1]),
            Err(SendError::TooLarge { len, max: m, .. }) if len == max + 1 && m == max
        ));
        assert_eq!(rx.recv_with(|b| b.to_vec()).unwrap(), vec![7; 24]);
        tx.try_send_bytes(&[1; 24]).unwrap();
        for _ in 0..n {
            rx.recv_with(|_| ()).unwrap();
        }
        // The largest message fits once the channel is empty.
        tx.send_bytes(&vec![3; max]).unwrap();
        assert_eq!(rx.recv_with(|b| b.len()).unwrap(), max);
    }

    #[test]
    fn iterators_timeouts_and_deadlines() {
        let tx: Channel<u16> = Channel::anonymous(128).unwrap();
        let rx = tx.clone();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(rx.try_iter().next(), None, "empty: the try iterator ends");
        let mut n = 0;
        while tx.try_send(n).is_ok() {
            n += 1;
        }
        match tx.send_timeout(99, Duration::from_millis(2)) {
            Err(SendError::Timeout(99)) => {}
            other => panic!("{other:?}"),
        }
        let soon = Instant::now() + Duration::from_millis(2);
        assert!(matches!(
            tx.send_deadline(98, soon),
            Err(SendError::Timeout(98))
        ));
        drop(tx);
        // The blocking iterator drains, then ends at Disconnected.
        assert_eq!(rx.iter().count(), n as usize);
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Err(RecvError::Disconnected)
        );
    }

    #[test]
    fn bytes_paths_try_and_timeout_forms() {
        let tx = chan(128);
        let rx = tx.clone();
        assert_eq!(
            rx.recv_with_timeout(Duration::from_millis(2), |b| b.len()),
            Err(RecvError::Timeout)
        );
        assert_eq!(rx.unread_bytes(), 0);
        tx.try_send_with(5, |buf| buf.fill(9)).unwrap();
        assert_eq!(rx.unread_bytes(), 16, "a stamp and 5 bytes padded to 8");
        assert_eq!(rx.try_recv_with(|b| b.to_vec()), Ok(vec![9; 5]));
        assert_eq!(rx.unread_bytes(), 0);
        let mut n = 0u8;
        while tx
            .try_send_with(24, |buf| buf.fill(n))
            .map(|()| n += 1)
            .is_ok()
        {}
        assert!(n >= 3, "{n} records of 32 B in 128 B");
        let mut called = false;
        assert!(matches!(
            tx.try_send_with(24, |_| called = true),
            Err(SendError::Full(()))
        ));
        assert!(matches!(
            tx.send_with_timeout(24, Duration::from_millis(2), |_| called = true),
            Err(SendError::Timeout(()))
        ));
        assert!(!called, "fill runs only once a record is reserved");
        for i in 0..n {
            let got = rx.recv_with_timeout(Duration::from_secs(10), |b| b.to_vec());
            assert_eq!(got, Ok(vec![i; 24]));
        }
        tx.send_with_timeout(3, Duration::from_secs(10), |buf| {
            buf.copy_from_slice(b"abc")
        })
        .unwrap();
        assert_eq!(rx.try_recv_with(|b| b.to_vec()), Ok(b"abc".to_vec()));
    }

    #[test]
    fn open_or_create_checks_the_capacity_it_was_given() {
        let name = format!("shmkit-t-chan-ooc-{}", std::process::id());
        let made = Channel::<u8>::open_or_create(&name, 1024).unwrap();
        assert!(Channel::<u8>::open_or_create(&name, 1024).is_ok());
        assert!(Channel::<u8>::open_or_create(&name, 2048).is_err());
        assert!(matches!(
            Channel::<u8>::create("shmkit-t-chan-bad-cap", 1000),
            Err(crate::CreateError::Channel(
                ChannelLayoutError::BadCapacity(1000)
            ))
        ));
        drop(made);
    }

    #[test]
    fn handles_cloned_into_threads_deliver_exactly_once_in_per_sender_order() {
        let ch: Channel<(u8, u32)> = Channel::anonymous(512).unwrap();
        let per = 20_000u32;
        let senders: Vec<_> = (0..2u8)
            .map(|s| {
                let tx = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        tx.send((s, i)).unwrap();
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let rx = ch.clone();
                std::thread::spawn(move || {
                    let mut last = [None::<u32>; 2];
                    let mut got = Vec::new();
                    while let Ok((s, i)) = rx.recv() {
                        assert!(last[s as usize] < Some(i), "out of order");
                        last[s as usize] = Some(i);
                        got.push((s, i));
                    }
                    got
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let mut all: Vec<_> = receivers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        all.sort_unstable();
        let want: Vec<_> = (0..2u8)
            .flat_map(|s| (0..per).map(move |i| (s, i)))
            .collect();
        assert_eq!(all, want, "every message exactly once");
    }

    #[test]
    fn zero_length_and_in_place_paths() {
        let tx: Channel<()> = Channel::anonymous(64).unwrap();
        let rx = tx.clone();
        tx.send(()).unwrap(); // postcard encodes () in 0 bytes
        tx.send_bytes(&[]).unwrap();
        let r = tx.send_with(5, |buf| {
            buf.copy_from_slice(b"hello");
            42
        });
        assert_eq!(r.unwrap(), 42);
        assert_eq!(rx.recv(), Ok(()));
        assert_eq!(rx.recv_with(|b| b.len()), Ok(0));
        assert_eq!(rx.recv_with(|b| b.to_vec()).unwrap(), b"hello");
    }

    #[test]
    fn a_bad_payload_is_a_typed_error_and_the_next_message_arrives() {
        let tx: Channel<String> = Channel::anonymous(256).unwrap();
        let rx = tx.clone();
        tx.send_bytes(&[5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]).unwrap(); // not UTF-8
        tx.send_bytes(&[200]).unwrap(); // a length beyond the bytes
        tx.send("ok".to_owned()).unwrap();
        assert!(matches!(rx.recv(), Err(RecvError::Decode { len: 6, .. })));
        assert!(matches!(rx.recv(), Err(RecvError::Decode { len: 1, .. })));
        assert_eq!(rx.recv().unwrap(), "ok");
    }

    #[test]
    fn disconnection_both_ways_like_crossbeam() {
        let a: Channel<u32> = Channel::anonymous(256).unwrap();
        // Never "disconnected" before the first sender: a receive just waits.
        assert_eq!(
            a.recv_timeout(Duration::from_millis(5)),
            Err(RecvError::Timeout)
        );
        let tx = a.clone();
        // Sending before any receiver attached just queues (a only received so far,
        // so it is a receiver: use a fresh channel for that case).
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(a.recv(), Ok(1));
        assert_eq!(a.recv(), Ok(2));
        assert_eq!(a.recv(), Err(RecvError::Disconnected));
        assert_eq!(a.try_recv(), Err(RecvError::Disconnected));
        // A sender attaching again clears it.
        let tx = a.clone();
        tx.send(3).unwrap();
        assert_eq!(a.recv(), Ok(3));
        // Every receiver gone: the message comes back.
        drop(a);
        match tx.send(4) {
            Err(SendError::Disconnected(4)) => {}
            other => panic!("{other:?}"),
        }
        let fresh: Channel<u32> = Channel::anonymous(256).unwrap();
        fresh.send(9).unwrap(); // no receiver ever: queues
        assert_eq!(fresh.len(), 1);
    }

    #[test]
    fn dead_peers_records_are_skipped_and_counted_gone() {
        let tx: Channel<u32> = Channel::anonymous(256).unwrap();
        let rx = tx.clone();
        tx.send(1).unwrap();
        // Forge a sender that died while writing the next record: claim it as it
        // would, with a pending word naming it in its registry entry.
        let dead: u32 = 4_194_305 + 21; // above pid_max: never alive
        let h = tx.hdr();
        let t = h.tail.pos.load(Ordering::Relaxed);
        let p = &h.senders[5];
        p.slot.word_store_for_test(u64::from(dead));
        p.pending.store(t + 1, Ordering::Relaxed);
        h.meta.tx_live.fetch_add(1, Ordering::Relaxed);
        tx.word(t).store(stamp(t, 4, WRITING), Ordering::Relaxed);
        tx.advance_tail(t, stamp(t, 4, WRITING)).unwrap();
        tx.send(2).unwrap();
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(RecvError::Empty), "a try does not judge");
        assert_eq!(rx.recv(), Ok(2), "the dead sender's record is skipped");
        drop(tx);
        // The forged dead sender still counts until a blocking receive reaps it.
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    }

    #[test]
    fn corrupt_framing_marks_the_channel_and_every_call_says_so() {
        let tx: Channel<u32> = Channel::anonymous(256).unwrap();
        let rx = tx.clone();
        tx.send(1).unwrap();
        // An impossible length in a committed stamp.
        tx.word(0)
            .store(stamp(0, 100_000, COMMITTED), Ordering::Relaxed);
        assert!(matches!(rx.recv(), Err(RecvError::Corrupt { .. })));
        assert!(matches!(rx.recv(), Err(RecvError::Corrupt { .. })));
        assert!(matches!(tx.send(2), Err(SendError::Corrupt(2))));
        assert!(tx.is_corrupt());
        // Garbage tags, cursors far apart: errors, not loops or panics.
        for garbage in [u64::MAX, 0x1234_5678_9abc_def0, stamp(8, 3, 7)] {
            let c: Channel<u32> = Channel::anonymous(128).unwrap();
            let r = c.clone();
            c.send(5).unwrap();
            c.word(0).store(garbage, Ordering::Relaxed);
            assert!(r.try_recv().is_err());
            let c: Channel<u32> = Channel::anonymous(128).unwrap();
            c.hdr().tail.pos.store(garbage & !7, Ordering::Relaxed);
            assert!(c.try_send(1).is_err());
            assert!(c.clone().try_recv().is_err());
        }
    }

    #[test]
    fn opening_with_another_type_is_refused() {
        let name = format!("shmkit-t-chan-type-{}", std::process::id());
        let _made = Channel::<u64>::create(&name, 1024).unwrap();
        assert!(matches!(
            Channel::<String>::open(&name),
            Err(crate::OpenError::TypeMismatch { .. })
        ));
        assert!(matches!(
            crate::Queue::<u64>::open(&name),
            Err(crate::OpenError::TypeMismatch { .. })
        ));
        assert!(Channel::<u64>::open(&name).is_ok());
        assert_eq!(
            crate::types::describe_object(&Channel::<u64>::type_tag()),
            "Channel<u64>"
        );
    }

    #[test]
    fn the_fingerprint_is_fnv1a_of_the_documented_bytes() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        };
        eat(&crate::types::kind::CHANNEL.to_le_bytes());
        eat(&0u64.to_le_bytes());
        eat(&1u64.to_le_bytes());
        eat(b"alloc::string::String");
        assert_eq!(Channel::<String>::type_tag().fingerprint(), h);
    }

    #[test]
    fn a_closure_that_panics_abandons_its_record_and_blocks_nobody() {
        let tx: Channel<u8> = Channel::anonymous(64).unwrap();
        let rx = tx.clone();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tx.send_with(8, |_| panic!("fill fails"))
        }));
        assert!(panicked.is_err());
        tx.send(1).unwrap();
        assert_eq!(rx.recv(), Ok(1), "the abandoned record is skipped");
        for i in 0..10 {
            tx.send(i).unwrap();
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rx.recv_with(|_| panic!("read fails"))
            }));
            assert!(panicked.is_err());
        }
        // Every record was released: the 64-byte channel still takes messages.
        tx.try_send(2).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
    }

    #[test]
    fn stats_show_the_fill_level_and_the_registries() {
        let tx: Channel<u32> = Channel::anonymous(1024).unwrap();
        let rx = tx.clone();
        assert_eq!(inspect(tx.segment().unwrap()).unwrap().senders, vec![]);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(rx.recv(), Ok(1));
        let s = inspect(tx.segment().unwrap()).unwrap();
        assert_eq!((s.capacity, s.messages, s.corrupt), (1024, 1, false));
        // Both records (8 + 8 bytes each): the one received is reclaimed by the next
        // sender that needs its room.
        assert_eq!(s.used_bytes, 32);
        let me = owner::current_pid();
        assert_eq!(s.senders.len(), 1);
        assert_eq!((s.senders[0].pid, s.senders[0].state), (me, "attached"));
        assert_eq!(s.receivers[0].holds, None);
        drop(rx);
        assert_eq!(tx.stats().receivers[0].state, "left");
        let other: Channel<u8> = Channel::anonymous(64).unwrap();
        assert!(
            inspect(other.segment().unwrap()).is_some(),
            "any message type"
        );
        let q = crate::Queue::<u64>::anonymous(2).unwrap();
        assert!(inspect(q.segment().unwrap()).is_none());
    }

    #[test]
    fn a_full_registry_is_a_typed_error_and_leaving_frees_an_entry() {
        let base: Channel<u8> = Channel::anonymous(4096).unwrap();
        let handles: Vec<_> = (0..REGISTRY_SLOTS).map(|_| base.clone()).collect();
        for h in &handles {
            h.try_send(1).unwrap();
        }
        assert!(matches!(base.try_send(2), Err(SendError::RegistryFull(2))));
        drop(handles);
        base.try_send(3).unwrap();
    }
}
