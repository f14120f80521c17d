//! [`Queue<T>`]: a bounded multi-producer multi-consumer queue in shared memory,
//! every item delivered exactly once, that survives a producer or consumer killed in
//! the middle of an operation.
//!
//! # Protocol
//! A Vyukov-style array of `capacity` (a power of two) slots, each with a 64-bit
//! *stamp* and the item. Positions `enqueue_pos` and `dequeue_pos` count items ever
//! claimed; position `p` uses slot `p % capacity` in lap `p / capacity`.
//!
//! Stamp encoding: high 32 bits = *ticket* (the position, mod 2^32, the slot serves
//! next); low 32 bits = state:
//!
//! | low bits | state | meaning |
//! |---|---|---|
//! | `0` | FREE | empty, waiting for the producer of `ticket` |
//! | `1` | FULL | holds the item of `ticket`, waiting for a consumer |
//! | `pid << 2 \| 2` | WRITING | producer `pid` claimed it for `ticket` and is writing |
//! | `pid << 2 \| 3` | READING | consumer `pid` claimed it for `ticket` and is reading |
//!
//! A producer at position `p` claims the slot by a CAS of its stamp from
//! `(p, FREE)` to `(p, WRITING|pid)`, then advances `enqueue_pos` (a hint that any
//! thread that sees a claimed slot helps to advance), writes the item and stores
//! `(p, FULL)` with Release. A consumer claims `(p, FULL)` → `(p, READING|pid)`,
//! advances `dequeue_pos`, reads the item and stores `(p + capacity, FREE)` with
//! Release, freeing the slot for the next lap. The claim CAS is what makes delivery
//! exactly-once; the stamp carries the claimer's pid so a claim left by a dead process
//! can be recognised.
//!
//! # Crash recovery and what can be lost
//! A process killed between its claim and its final store leaves a slot WRITING or
//! READING forever. A blocking [`put`](Queue::put) / [`get`](Queue::get) that is held
//! up by such a slot for longer than its spin phase checks whether the claimer is
//! alive (a `/proc` read) and, if it is dead, *skips* the slot: it stores
//! `(ticket + capacity, FREE)`, so consumers pass over that position and producers
//! reuse the slot. Consequences, exactly:
//! - a producer killed while putting loses the item it was putting (its `put` never
//!   returned, so it never counted as sent);
//! - a consumer killed while getting loses the item it was getting (it was removed
//!   from the queue but never returned to the caller);
//! - nothing else: every other item is delivered exactly once, and the queue keeps
//!   working. At most one item per killed process is lost, and only if it was killed
//!   inside `put`/`get` (the window is a few hundred nanoseconds per operation).
//!
//! The `try_` forms never block and never run liveness checks: a slot left by a dead
//! process looks busy to them (`Empty`/`Full`) until a blocking call recovers it.
//! Liveness is judged by pid alone (the stamp has no room for a start time): a pid
//! reused by a new process within the recovery window would delay recovery, never
//! corrupt the queue.
//!
//! A claimer's final store is a compare-exchange from its claim (`(p, WRITING|pid)`
//! → `(p, FULL)`, `(p, READING|pid)` → `(p + capacity, FREE)`). So if a liveness
//! check ever misfires (a live claimer "recovered", e.g. across pid namespaces), the
//! claimer fails loudly ([`PutError::ClaimLost`] with the item, [`GetError::ClaimLost`])
//! instead of storing an old ticket over a slot that moved on, which would rewind the
//! slot and lose or repeat items for good.
//!
//! # Waiting and closing
//! Blocked callers spin, yield, then sleep on the floor's [`Parker`] (`get` /
//! `put`: a sleepers count and an event word); the other side makes the `FUTEX_WAKE`
//! syscall only if the count is non-zero. Sleeps are cut into slices from
//! [`QUEUE_SLEEP_SLICE`] (10 ms) doubling up to 80 ms, after each of which a slot
//! blocked by a dead process is recovered. [`close`](Queue::close) replaces Python's `None` sentinel:
//! `put` then fails with `Closed(item)`, and consumers drain the queue, then get
//! [`GetError::Closed`]. A producer that claimed a slot before the close completes
//! its item (consumers wait for it); one that claims after it skips the slot and gets
//! its item back.
//!
//! # Example
//! ```
//! use shmkit_typed::{GetError, PutError, Queue};
//!
//! // Named queues: `Queue::<T>::create(name, capacity)` / `open(name)`.
//! let q = Queue::<u64>::anonymous(2)?;
//! q.put(1)?;
//! q.put(2)?;
//! assert!(matches!(q.try_put(3), Err(PutError::Full(3)))); // the item comes back
//! q.close();
//! assert_eq!(q.get()?, 1);
//! assert_eq!(q.get()?, 2);
//! assert_eq!(q.get(), Err(GetError::Closed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::peer::is_alive_in;
use crate::shim::{fence, AtomicU32, AtomicU64};
use crate::shim::{DataCell, Deadline, Ordering};
use crate::types::{kind, tag_of};
use shmkit_sys::backoff::PollGauge;
use shmkit_sys::owner;
use shmkit_sys::parker::{CheckPace, Parker};

#[cfg(not(loom))]
#[path = "queue_async.rs"]
mod async_impl;
#[cfg(not(loom))]
pub use async_impl::{GetAsync, PutAsync};
use shmkit_sys::watcher;

/// Magic number at offset 0 of a queue ("SQUE" little-endian).
pub const QUEUE_MAGIC: u32 = u32::from_le_bytes(*b"SQUE");
/// Layout version of the queue header.
pub const QUEUE_VERSION: u32 = 1;
/// Bytes of the queue header before the slots.
pub const QUEUE_HEADER_SIZE: usize = 512;
/// Largest capacity accepted.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 28;
/// How long a sleeping caller first sleeps before it re-checks (and recovers slots of
/// dead processes); later slices double up to
/// [`CHECK_CAP`](shmkit_sys::parker::CHECK_CAP) (80 ms).
pub const QUEUE_SLEEP_SLICE: Duration = shmkit_sys::parker::FIRST_CHECK;

const FREE: u32 = 0;
const FULL: u32 = 1;
const WRITING: u32 = 2;
const READING: u32 = 3;

fn stamp(ticket: u32, state: u32) -> u64 {
    (u64::from(ticket) << 32) | u64::from(state)
}
fn ticket(s: u64) -> u32 {
    (s >> 32) as u32
}
fn state(s: u64) -> u32 {
    s as u32 & 3
}
fn claimer(s: u64) -> u32 {
    s as u32 >> 2
}

/// Line 0: fixed at init except `closed`.
#[repr(C, align(128))]
struct MetaLine {
    /// [`QUEUE_MAGIC`], stored last at init with Release.
    magic: AtomicU32,
    /// [`QUEUE_VERSION`].
    version: AtomicU32,
    /// Number of slots (power of two).
    capacity: AtomicU32,
    /// Bytes per slot (`size_of::<Slot<T>>()`).
    slot_size: AtomicU32,
    /// `size_of::<T>()`.
    elem_size: AtomicU32,
    /// `align_of::<T>()`.
    elem_align: AtomicU32,
    /// 1 once closed.
    closed: AtomicU32,
    _reserved: AtomicU32,
    /// Fingerprint of the element type (see [`crate::types`]).
    fingerprint: AtomicU64,
}

/// Line 1.
#[repr(C, align(128))]
struct EnqLine {
    /// Hint: positions below it are claimed by producers.
    pos: AtomicU64,
}

/// Line 2.
#[repr(C, align(128))]
struct DeqLine {
    /// Hint: positions below it are claimed by consumers.
    pos: AtomicU64,
}

/// Line 3: written only on the sleep path.
#[repr(C, align(128))]
struct WaitLine {
    /// Where consumers sleep (sleepers at 384, event at 388); producers wake them.
    get: Parker,
    /// Where producers sleep (sleepers at 392, event at 396); consumers wake them.
    put: Parker,
}

/// The queue header at offset 0 of the region.
#[repr(C)]
pub(crate) struct QueueHeader {
    meta: MetaLine,
    enq: EnqLine,
    deq: DeqLine,
    wait: WaitLine,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<QueueHeader>() == QUEUE_HEADER_SIZE);

/// One slot: the stamp, then the item.
#[repr(C)]
pub(crate) struct Slot<T> {
    stamp: AtomicU64,
    data: DataCell<T>,
}

/// A queue region could not be initialised or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueLayoutError {
    /// The capacity is not a power of two in 1..=2^28.
    #[error("queue capacity {0} is not a power of two between 1 and 2^28: pick one such as 1024")]
    BadCapacity(usize),
    /// The region is smaller than the queue needs.
    #[error("region of {len} bytes is too small for this queue, which needs {needed} bytes: map a larger region")]
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The region does not start on a 128-byte boundary.
    #[error("region start {0:#x} is not 128-byte aligned: use a segment payload or a page-aligned mapping")]
    Misaligned(usize),
    /// The region does not hold an initialised queue.
    #[error("no shmkit queue here (magic {found:#x}): the region holds something else or was never initialised")]
    BadMagic {
        /// The magic word found.
        found: u32,
    },
    /// The queue was made by an incompatible version.
    #[error("queue layout version {found} is not supported (this build reads {expected}): use the same shmkit version on both sides")]
    BadVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// The queue holds another element type.
    #[error("the queue holds {found}, not {expected}: open it with the type it was created with")]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type recorded in the queue.
        found: String,
    },
}

/// Why a put failed; every variant hands the item back.
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put`: the queue is full.
    Full(T),
    /// The queue is closed.
    Closed(T),
    /// No room became free before the timeout.
    Timeout(T),
    /// The slot this put had claimed was taken over by another process that judged
    /// this one dead (its liveness check misfired: e.g. processes in different pid
    /// namespaces). The item was not put; the queue stays consistent (nothing was
    /// rewound), but the put may have overwritten an item in flight of another
    /// producer. Make every process of the queue share one pid namespace.
    ClaimLost(T),
    /// Sleeping until room is free failed in the kernel (`futex(2)` returned an
    /// unexpected error); the item was not put. The [`OsError`](shmkit_sync::OsError) is the source; see
    /// [`shmkit_sync::LockError::Os`].
    Os(T, shmkit_sync::OsError),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v)
            | PutError::Closed(v)
            | PutError::Timeout(v)
            | PutError::ClaimLost(v) => v,
            PutError::Os(v, _) => v,
        }
    }
}

impl<T> std::fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::ClaimLost(_) => f.write_str("ClaimLost(..)"),
            PutError::Os(_, e) => f.debug_tuple("Os").field(&"..").field(e).finish(),
        }
    }
}

impl<T> std::fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "the queue is full: retry later or use the blocking put",
            PutError::Closed(_) => "the queue is closed: no more items can be put",
            PutError::Timeout(_) => {
                "timed out waiting for room in the queue: consumers are slow or stopped"
            }
            PutError::ClaimLost(_) => {
                "another process judged this one dead and took over the queue slot it was \
                 filling, so the item was not put: make every process of the queue share \
                 one pid namespace"
            }
            PutError::Os(..) => {
                "sleeping until the queue has room failed in the kernel (futex); the item was not put"
            }
        })
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Os(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why a get failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: the queue is empty.
    #[error("the queue is empty: retry later or use the blocking get")]
    Empty,
    /// The queue is closed and drained.
    #[error("the queue is closed and drained")]
    Closed,
    /// No item arrived before the timeout.
    #[error("timed out waiting for an item")]
    Timeout,
    /// The slot this get had claimed was taken over by another process that judged
    /// this one dead (its liveness check misfired: e.g. processes in different pid
    /// namespaces). The item of that slot was given up as lost by the process that
    /// took it over, so none is returned; the queue stays consistent (nothing was
    /// rewound). Make every process of the queue share one pid namespace.
    #[error("another process judged this one dead and took over the queue slot it was reading, so its item was given up as lost: make every process of the queue share one pid namespace")]
    ClaimLost,
    /// Sleeping until an item arrives failed in the kernel (`futex(2)` returned an
    /// unexpected error); nothing was taken. See [`shmkit_sync::LockError::Os`].
    #[error("sleeping until an item arrives failed in the kernel (futex); nothing was taken")]
    Os(#[source] shmkit_sync::OsError),
}

/// What one side of the queue makes of a slot (see `Queue::claim_slot`).
enum Look {
    /// The slot is this side's next: claim it.
    Take,
    /// Another process has it or it is already past: go on to the next position.
    Pass,
    /// This side must wait; the stamp of the process holding the slot, if one does.
    Blocked(Option<u64>),
}

/// What one non-blocking attempt found.
enum Attempt<T> {
    Done(T),
    /// Our claim was taken over by another process that judged us dead.
    Lost,
    /// Nothing to do now; `Some(stamp)` if a slot claimed by another process is in the way.
    Blocked(Option<u64>),
    Closed,
}

/// What keeps the queue's memory mapped.
enum Backing {
    Raw,
    #[cfg(not(loom))]
    Segment(shmkit_segment::Segment),
    #[cfg(loom)]
    #[allow(dead_code)]
    Loom(std::sync::Arc<dyn std::any::Any + Send + Sync>),
}

/// A handle to a bounded MPMC queue of `T` in shared memory. `Send + Sync`: threads
/// may share one handle.
///
/// See the [module docs](self) for the protocol and crash behaviour, and
/// [the family](crate::family) for `create`, `open`, `open_or_create`, `anonymous`
/// (capacity in items) and their `*_in(options)` forms.
///
/// # Examples
/// A named queue of `#[repr(C)]` jobs, with a producer and a consumer handle:
/// ```
/// use std::time::{Duration, Instant};
/// use shmkit_typed::{GetError, Queue};
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Job { id: u32, cost: f32 }
///
/// let name = format!("shmkit-doc-queue-{}", std::process::id());
/// let producer = Queue::<Job>::create(&name, 64)?; // removes the name on drop
/// let consumer = Queue::<Job>::open(&name)?; // as another process would
/// producer.put(Job { id: 1, cost: 0.5 })?;
/// assert_eq!(consumer.len(), 1);
/// assert_eq!(consumer.get()?, Job { id: 1, cost: 0.5 });
/// // Every blocking call has a `_timeout(Duration)` and a `_deadline(Instant)` form;
/// // one deadline bounds several steps, however long each takes.
/// let deadline = Instant::now() + Duration::from_millis(10);
/// producer.put_deadline(Job { id: 2, cost: 1.0 }, deadline)?;
/// assert_eq!(consumer.get_deadline(deadline)?.id, 2);
/// assert_eq!(consumer.get_deadline(deadline), Err(GetError::Timeout)); // nothing more
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T: bytemuck::Pod> {
    hdr: NonNull<QueueHeader>,
    slots: NonNull<Slot<T>>,
    cap: u32,
    /// How this handle's waits for room and for items poll (see `shim::poll_backoff`).
    put_poll: PollGauge,
    get_poll: PollGauge,
    _backing: Backing,
    _t: PhantomData<T>,
}

// SAFETY: all shared state is reached through atomics and through slot data guarded
// by the stamp protocol; `T: Pod` is plain data that may move between threads.
unsafe impl<T: bytemuck::Pod> Send for Queue<T> {}
// SAFETY: as above; every method takes `&self` and synchronises through the stamps.
unsafe impl<T: bytemuck::Pod> Sync for Queue<T> {}

#[cfg(not(loom))]
impl<T: bytemuck::Pod> crate::family::sealed::Layout for Queue<T> {
    type Init = usize;
    const OBJECT: &'static str = "Queue";

    fn tag() -> shmkit_segment::TypeTag {
        Self::type_tag()
    }

    fn payload_size(capacity: &usize) -> Result<usize, crate::CreateError> {
        Self::check_capacity(*capacity)?;
        Ok(Self::region_size(*capacity).ok_or(QueueLayoutError::BadCapacity(*capacity))?)
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, capacity: usize) {
        // SAFETY: the trait's contract: a fresh, private, large enough payload; the
        // capacity was validated by `payload_size`.
        let _ = unsafe { Self::init(ptr, len, capacity) };
    }

    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, crate::OpenError> {
        Ok(Self::from_segment(seg)?)
    }

    fn check_init(&self, capacity: &usize) -> Result<(), crate::OpenError> {
        let size = Self::region_size(*capacity).unwrap_or(usize::MAX);
        crate::family::check_payload(self.segment(), size)
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.cap)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T: bytemuck::Pod> Queue<T> {
    /// Bytes a region must have for a queue of `capacity` items (`None` on overflow).
    pub fn region_size(capacity: usize) -> Option<usize> {
        capacity
            .checked_mul(std::mem::size_of::<Slot<T>>())?
            .checked_add(QUEUE_HEADER_SIZE)
    }

    fn fingerprint() -> u64 {
        tag_of::<T>(kind::QUEUE).fingerprint()
    }

    fn check_capacity(capacity: usize) -> Result<u32, QueueLayoutError> {
        if !capacity.is_power_of_two() || capacity > MAX_QUEUE_CAPACITY {
            return Err(QueueLayoutError::BadCapacity(capacity));
        }
        Ok(capacity as u32)
    }

    /// Initialises a new, empty queue of `capacity` items at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid, writable memory, not accessed by anyone else
    /// during this call, that stays mapped while this and every attached handle live.
    ///
    /// # Errors
    /// [`QueueLayoutError`] for a bad capacity, a misaligned or too small region.
    ///
    /// # Examples
    /// A queue at the start of a segment the caller manages itself:
    #[cfg(not(loom))]
    pub unsafe fn init(
        ptr: *mut u8,
        len: usize,
        capacity: usize,
    ) -> Result<Self, QueueLayoutError> {
        let cap = Self::check_capacity(capacity)?;
        let needed = Self::region_size(capacity).ok_or(QueueLayoutError::BadCapacity(capacity))?;
        if ptr.is_null() || (ptr as usize) & 127 != 0 {
            return Err(QueueLayoutError::Misaligned(ptr as usize));
        }
        if len < needed {
            return Err(QueueLayoutError::TooSmall { len, needed });
        }
        // SAFETY: exclusive, writable access to `len >= QUEUE_HEADER_SIZE` bytes
        // (caller), 128-byte aligned (checked); zeroed, they form a valid QueueHeader
        // (only atomics, for which zero is valid).
        let hdr = unsafe {
            std::ptr::write_bytes(ptr, 0, QUEUE_HEADER_SIZE);
            &*(ptr as *const QueueHeader)
        };
        // The slots start at QUEUE_HEADER_SIZE (a multiple of 128, hence of
        // align_of::<Slot<T>>() for any T up to 128-byte alignment) inside the region.
        let slots = ptr.wrapping_add(QUEUE_HEADER_SIZE).cast::<Slot<T>>();
        for i in 0..cap {
            // SAFETY: slot `i < cap` lies inside the region (len >= needed); writing
            // its stamp word in place.
            unsafe {
                std::ptr::addr_of_mut!((*slots.add(i as usize)).stamp)
                    .write(AtomicU64::new(stamp(i, FREE)))
            };
        }
        hdr.meta.version.store(QUEUE_VERSION, Ordering::Relaxed);
        hdr.meta.capacity.store(cap, Ordering::Relaxed);
        hdr.meta
            .slot_size
            .store(std::mem::size_of::<Slot<T>>() as u32, Ordering::Relaxed);
        hdr.meta
            .elem_size
            .store(std::mem::size_of::<T>() as u32, Ordering::Relaxed);
        hdr.meta
            .elem_align
            .store(std::mem::align_of::<T>() as u32, Ordering::Relaxed);
        hdr.meta
            .fingerprint
            .store(Self::fingerprint(), Ordering::Relaxed);
        // Release: publishes everything above to `attach`'s Acquire of the magic.
        hdr.meta.magic.store(QUEUE_MAGIC, Ordering::Release);
        // SAFETY: just initialised; the caller's guarantees carry over.
        unsafe { Self::attach(ptr, len) }
    }

    /// Attaches to a queue initialised at `ptr` (possibly by another process),
    /// validating every field.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid memory that stays mapped while the handle lives,
    /// accessed by others only through shmkit queue handles.
    ///
    /// # Errors
    /// [`QueueLayoutError`] if the region does not hold a queue of `T`.
    #[cfg(not(loom))]
    pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, QueueLayoutError> {
        if ptr.is_null() || (ptr as usize) & 127 != 0 {
            return Err(QueueLayoutError::Misaligned(ptr as usize));
        }
        if len < QUEUE_HEADER_SIZE {
            return Err(QueueLayoutError::TooSmall {
                len,
                needed: QUEUE_HEADER_SIZE,
            });
        }
        if std::mem::align_of::<Slot<T>>() > 128 {
            return Err(QueueLayoutError::Misaligned(ptr as usize));
        }
        // SAFETY: aligned and large enough (checked); the header holds only atomics.
        let hdr = unsafe { &*(ptr as *const QueueHeader) };
        // Acquire: pairs with the Release of the magic in `init`.
        let magic = hdr.meta.magic.load(Ordering::Acquire);
        if magic != QUEUE_MAGIC {
            return Err(QueueLayoutError::BadMagic { found: magic });
        }
        let version = hdr.meta.version.load(Ordering::Relaxed);
        if version != QUEUE_VERSION {
            return Err(QueueLayoutError::BadVersion {
                found: version,
                expected: QUEUE_VERSION,
            });
        }
        let size = hdr.meta.elem_size.load(Ordering::Relaxed);
        let align = hdr.meta.elem_align.load(Ordering::Relaxed);
        let slot_size = hdr.meta.slot_size.load(Ordering::Relaxed);
        let fp = hdr.meta.fingerprint.load(Ordering::Relaxed);
        if size as usize != std::mem::size_of::<T>()
            || align as usize != std::mem::align_of::<T>()
            || slot_size as usize != std::mem::size_of::<Slot<T>>()
            || fp != Self::fingerprint()
        {
            return Err(QueueLayoutError::TypeMismatch {
                expected: crate::types::describe(&tag_of::<T>(kind::QUEUE)),
                found: format!("a type of size {size}, align {align}, fingerprint {fp:#018x}"),
            });
        }
        let capacity = hdr.meta.capacity.load(Ordering::Relaxed) as usize;
        let cap = Self::check_capacity(capacity)?;
        let needed = Self::region_size(capacity).ok_or(QueueLayoutError::BadCapacity(capacity))?;
        if len < needed {
            return Err(QueueLayoutError::TooSmall { len, needed });
        }
        // QUEUE_HEADER_SIZE < len: inside the region.
        let slots = NonNull::new(ptr.wrapping_add(QUEUE_HEADER_SIZE).cast::<Slot<T>>())
            .ok_or(QueueLayoutError::Misaligned(ptr as usize))?;
        Ok(Queue {
            hdr: NonNull::from(hdr),
            slots,
            cap,
            put_poll: PollGauge::new(),
            get_poll: PollGauge::new(),
            _backing: Backing::Raw,
            _t: PhantomData,
        })
    }

    /// The type tag of a `Queue<T>` in segment headers.
    pub fn type_tag() -> shmkit_segment::TypeTag {
        tag_of::<T>(kind::QUEUE)
    }

    #[cfg(not(loom))]
    fn from_segment(seg: shmkit_segment::Segment) -> Result<Self, QueueLayoutError> {
        let (ptr, len) = (seg.payload_ptr(), seg.payload_len());
        // SAFETY: the segment maps `len` bytes at `ptr` (128-byte aligned) while it
        // lives, and it moves into the handle's backing.
        let mut q = unsafe { Self::attach(ptr, len) }?;
        // Best effort: map every slot now so puts and gets take no page faults.
        let _ = seg.prefault();
        q._backing = Backing::Segment(seg);
        Ok(q)
    }

    #[cfg(not(loom))]
    crate::family::family_forms!(capacity: usize);

    /// The segment behind this queue, if it was made by `create`/`open`/`anonymous`.
    pub fn segment(&self) -> Option<&shmkit_segment::Segment> {
        match &self._backing {
            #[cfg(not(loom))]
            Backing::Segment(s) => Some(s),
            _ => None,
        }
    }

    /// Two handles on one heap queue, for loom models.
    #[cfg(loom)]
    pub(crate) fn new_for_loom(capacity: u32) -> (Self, Self)
    where
        T: Send + Sync,
    {
        struct Heap<T> {
            hdr: QueueHeader,
            slots: Vec<Slot<T>>,
        }
        // SAFETY (loom only): the heap queue is shared exactly as shared memory is.
        unsafe impl<T> Send for Heap<T> {}
        // SAFETY: as above.
        unsafe impl<T> Sync for Heap<T> {}
        let z = || AtomicU32::new(0);
        let hdr = QueueHeader {
            meta: MetaLine {
                magic: AtomicU32::new(QUEUE_MAGIC),
                version: AtomicU32::new(QUEUE_VERSION),
                capacity: AtomicU32::new(capacity),
                slot_size: z(),
                elem_size: z(),
                elem_align: z(),
                closed: z(),
                _reserved: z(),
                fingerprint: AtomicU64::new(0),
            },
            enq: EnqLine {
                pos: AtomicU64::new(0),
            },
            deq: DeqLine {
                pos: AtomicU64::new(0),
            },
            wait: WaitLine {
                get: Parker::new(),
                put: Parker::new(),
            },
        };
        let slots = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicU64::new(stamp(i, FREE)),
                data: DataCell::new(),
            })
            .collect();
        let heap = std::sync::Arc::new(Heap { hdr, slots });
        let make = |h: &std::sync::Arc<Heap<T>>| Queue {
            hdr: NonNull::from(&h.hdr),
            slots: NonNull::new(h.slots.as_ptr() as *mut Slot<T>).unwrap(),
            cap: capacity,
            put_poll: PollGauge::new(),
            get_poll: PollGauge::new(),
            _backing: Backing::Loom(h.clone()),
            _t: PhantomData,
        };
        (make(&heap), make(&heap))
    }

    fn hdr(&self) -> &QueueHeader {
        // SAFETY: valid while the handle lives (constructor contracts).
        unsafe { self.hdr.as_ref() }
    }

    fn slot(&self, pos: u64) -> &Slot<T> {
        let i = (pos & u64::from(self.cap - 1)) as usize;
        // SAFETY: `i < cap` and the region holds `cap` slots (validated at attach).
        unsafe { &*self.slots.as_ptr().add(i) }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Items in the queue (a snapshot; includes items being put or got right now).
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot of two hints; clamped because they are read apart.
        let deq = self.hdr().deq.pos.load(Ordering::Relaxed);
        let enq = self.hdr().enq.pos.load(Ordering::Relaxed);
        (enq.wrapping_sub(deq) as i64).clamp(0, i64::from(self.cap)) as usize
    }

    /// Whether [`len`](Queue::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`len`](Queue::len) equals the capacity.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the store in `close`.
        self.hdr().meta.closed.load(Ordering::Acquire) != 0
    }

    /// Closes the queue: further puts fail with `Closed(item)`; consumers drain what
    /// is left, then get [`GetError::Closed`]. Wakes every sleeper.
    ///
    /// # Examples
    /// Instead of Python's `None` sentinel:
    pub fn close(&self) {
        let h = self.hdr();
        // SeqCst: ordered against producers' SeqCst claim CAS + load of `closed` and
        // consumers' SeqCst load + fence (see `get_inner`).
        h.meta.closed.store(1, Ordering::SeqCst);
        // Sleepers that see the new event values also see `closed` (Release bump).
        h.wait.get.bump_and_wake(u32::MAX);
        h.wait.put.bump_and_wake(u32::MAX);
    }

    /// One non-blocking put attempt; on failure the item comes back.
    fn try_put_inner(&self, v: T) -> Result<(), (T, Attempt<()>)> {
        let h = self.hdr();
        // Relaxed: an early exit only; the authoritative check follows the claim.
        if h.meta.closed.load(Ordering::Relaxed) != 0 {
            return Err((v, Attempt::Closed));
        }
        // SeqCst claim: the claim and the following load of `closed` (in finish_put)
        // are ordered against `close` (a claim before the close is seen by draining
        // consumers; one after it sees `closed`).
        let found = self.claim_slot(&h.enq.pos, WRITING, Ordering::SeqCst, |d, s| {
            if d == 0 && state(s) == FREE {
                Look::Take
            } else if d >= 0 {
                // Claimed by another producer (d == 0) or already past (d > 0).
                Look::Pass
            } else {
                // The slot still serves the previous lap: full.
                Look::Blocked((state(s) == READING).then_some(s))
            }
        });
        match found {
            Ok((pos, claim)) => self.finish_put(pos, claim, v),
            Err(blocker) => Err((v, Attempt::Blocked(blocker))),
        }
    }

    /// The claim loop both sides share: walks from the side's position hint `cursor`,
    /// asks `look` (given the ticket distance and the stamp) what each slot is to this
    /// side, and claims the first it may `Take` with the state `mine` (WRITING or
    /// READING) by a compare-exchange of ordering `cas`. Returns the claimed position
    /// and claim stamp, or the stamp of the slot's blocking holder (if any) when the
    /// side must wait.
    ///
    /// Each pass means another process made progress; a corrupted region (stamps far
    /// ahead of the positions) could make it walk for billions of positions, so one
    /// attempt gives up after `retry_bound()` and reports "blocked".
    #[inline(always)]
    fn claim_slot(
        &self,
        cursor: &AtomicU64,
        mine: u32,
        cas: Ordering,
        look: impl Fn(i32, u64) -> Look,
    ) -> Result<(u64, u64), Option<u64>> {
        let me = owner::current_pid();
        // Relaxed: the position is a hint validated by the slot's stamp.
        let mut pos = cursor.load(Ordering::Relaxed);
        for _ in 0..self.retry_bound() {
            let slot = self.slot(pos);
            // Acquire: pairs with the other side's Release of the slot's stamp (the
            // consumer's (p + cap, FREE): its read of the old item happens-before our
            // overwrite; the producer's FULL: its write happens-before our read).
            let s = slot.stamp.load(Ordering::Acquire);
            let d = ticket(s).wrapping_sub(pos as u32) as i32;
            match look(d, s) {
                Look::Take => {
                    let claim = stamp(ticket(s), (me << 2) | mine);
                    // `cas` on success (see the callers); Relaxed on failure: we retry.
                    if slot
                        .stamp
                        .compare_exchange(s, claim, cas, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    // Relaxed: a hint; failure means someone helped already.
                    let _ =
                        cursor.compare_exchange(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed);
                    return Ok((pos, claim));
                }
                Look::Pass => {
                    // Help the hint along and retry at the next position.
                    // Relaxed: a hint.
                    let _ =
                        cursor.compare_exchange(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed);
                    pos = cursor.load(Ordering::Relaxed);
                }
                Look::Blocked(blocker) => return Err(blocker),
            }
        }
        Err(None)
    }

    /// Completes a put whose claim `claim` on position `pos` succeeded.
    ///
    /// Every store to the stamp here is a compare-exchange from `claim`: if another
    /// process took the claim over (it judged us dead and skipped the slot, see
    /// `recover`), the slot may already serve a later lap, and a plain store would
    /// rewind it. Then the put fails with `Attempt::Lost` instead.
    fn finish_put(&self, pos: u64, claim: u64, v: T) -> Result<(), (T, Attempt<()>)> {
        let h = self.hdr();
        let slot = self.slot(pos);
        if h.meta.closed.load(Ordering::SeqCst) != 0 {
            // Skip the slot: consumers pass over this position. If the claim was taken
            // over, the slot was skipped already: the item comes back as `Closed` alike.
            // Release: as for a consumed slot.
            let _ = slot.stamp.compare_exchange(
                claim,
                stamp(ticket(claim).wrapping_add(self.cap), FREE),
                Ordering::Release,
                Ordering::Relaxed,
            );
            h.wait.put.wake(1);
            return Err((v, Attempt::Closed));
        }
        // Relaxed: only narrows the window in which a claim that was taken over would
        // write into a slot another producer now fills; the CAS below decides.
        if slot.stamp.load(Ordering::Relaxed) != claim {
            return Err((v, Attempt::Lost));
        }
        // SAFETY: we hold the WRITING claim (checked just above; only a process that
        // wrongly judged us dead can take it, see `PutError::ClaimLost`).
        unsafe { slot.data.write(v) };
        // Release: the item happens-before a consumer's Acquire of FULL.
        if slot
            .stamp
            .compare_exchange(
                claim,
                stamp(ticket(claim), FULL),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err((v, Attempt::Lost));
        }
        h.wait.get.wake(1);
        Ok(())
    }

    /// How many slot inspections one non-blocking attempt may make.
    fn retry_bound(&self) -> u64 {
        2 * u64::from(self.cap) + 1024
    }

    /// One non-blocking get attempt.
    fn try_get_inner(&self) -> Attempt<T> {
        // Acquire claim: as the load in claim_slot (the CAS may read a newer FULL).
        let found = self.claim_slot(&self.hdr().deq.pos, READING, Ordering::Acquire, |d, s| {
            match (d, state(s)) {
                (0, FULL) => Look::Take,
                // Another consumer has it, or it is already consumed or skipped.
                (0, READING) => Look::Pass,
                (d, _) if d > 0 => Look::Pass,
                // Its producer is still writing it.
                (0, WRITING) => Look::Blocked(Some(s)),
                // A consumer of the previous lap still holds the slot: empty for us.
                (_, READING) => Look::Blocked(Some(s)),
                _ => Look::Blocked(None),
            }
        });
        match found {
            Ok((pos, claim)) => self.finish_get(pos, claim),
            Err(blocker) => Attempt::Blocked(blocker),
        }
    }

    /// Completes a get whose claim `claim` on position `pos` succeeded. As in
    /// `finish_put`, the freeing store is a compare-exchange from `claim`: a claim
    /// that was taken over returns `Attempt::Lost` (the value read may be a later
    /// lap's item, which its own consumer gets) instead of freeing a slot it no longer
    /// holds.
    fn finish_get(&self, pos: u64, claim: u64) -> Attempt<T> {
        let h = self.hdr();
        let slot = self.slot(pos);
        // SAFETY: we hold the READING claim and the producer's write
        // happens-before it (Acquire on FULL); a read races only when the claim was
        // taken over, and that value is then discarded (`T: Pod`: any bytes are valid).
        let v = unsafe { slot.data.read() };
        // Release: our read happens-before the next producer's overwrite.
        if slot
            .stamp
            .compare_exchange(
                claim,
                stamp(ticket(claim).wrapping_add(self.cap), FREE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Attempt::Lost;
        }
        h.wait.put.wake(1);
        Attempt::Done(v)
    }

    /// Frees a slot held by a dead process. Returns whether it did.
    fn recover(&self, blocker: u64) -> bool {
        let pid = claimer(blocker);
        if is_alive_in(self.segment(), pid, 0) {
            return false;
        }
        self.skip(blocker)
    }

    /// Frees the slot claimed by `blocker` for the next lap (consumers pass over its
    /// position), if it still holds that claim. Returns whether it did.
    fn skip(&self, blocker: u64) -> bool {
        let pos_ticket = ticket(blocker);
        let slot = self.slot(u64::from(pos_ticket));
        // Release: like any freeing store. The CAS fails harmlessly if the slot moved on.
        let freed = slot
            .stamp
            .compare_exchange(
                blocker,
                stamp(pos_ticket.wrapping_add(self.cap), FREE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok();
        if freed {
            let h = self.hdr();
            h.wait.put.wake(1);
            h.wait.get.wake(1);
        }
        freed
    }

    /// Puts `v`, blocking while the queue is full.
    ///
    /// # Errors
    /// [`PutError::Closed`] (with the item) if the queue is closed.
    pub fn put(&self, v: T) -> Result<(), PutError<T>> {
        self.put_inner(v, Some(None))
    }

    /// Puts `v`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutError::Timeout`] or [`PutError::Closed`], with the item.
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_inner(v, Some(Some(Deadline::after(timeout))))
    }

    /// Puts `v`, waiting for room until `deadline` at most (an `Instant` too far ahead
    /// to reach means no deadline; see the [type docs](Queue)).
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_deadline(&self, v: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_inner(v, Some(Some(Deadline::at(deadline))))
    }

    /// Puts `v` if there is room now.
    ///
    /// # Errors
    /// [`PutError::Full`] or [`PutError::Closed`], with the item.
    pub fn try_put(&self, v: T) -> Result<(), PutError<T>> {
        self.put_inner(v, None)
    }

    /// Takes the oldest item, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_inner(Some(None))
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`] or [`GetError::Closed`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_inner(Some(Some(Deadline::after(timeout))))
    }

    /// Takes the oldest item, waiting until `deadline` at most (an `Instant` too far
    /// ahead to reach means no deadline; see the [type docs](Queue)).
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError> {
        self.get_inner(Some(Some(Deadline::at(deadline))))
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// [`GetError::Empty`] or [`GetError::Closed`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_inner(None)
    }

    /// `wait`: `None` = try once; `Some(None)` = forever; `Some(Some(d))` = until `d`.
    fn put_inner(&self, mut v: T, wait: Option<Option<Deadline>>) -> Result<(), PutError<T>> {
        let mut backoff = crate::shim::poll_backoff(&self.put_poll);
        let mut pace = CheckPace::new();
        loop {
            let blocker = match self.try_put_inner(v) {
                Ok(()) => return Ok(()),
                Err((back, Attempt::Closed)) => return Err(PutError::Closed(back)),
                Err((back, Attempt::Lost)) => return Err(PutError::ClaimLost(back)),
                Err((back, Attempt::Blocked(b))) => {
                    v = back;
                    b
                }
                Err((back, Attempt::Done(()))) => {
                    v = back;
                    None
                }
            };
            let deadline = match wait {
                None => return Err(PutError::Full(v)),
                Some(d) => d,
            };
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(PutError::Timeout(v));
            }
            if backoff.snooze() {
                continue;
            }
            if let Some(b) = blocker {
                if self.recover(b) {
                    continue;
                }
            }
            let h = self.hdr();
            let slice = idle_slice(blocker, &mut pace, deadline);
            let slept = h.wait.put.park(Some(&slice), || {
                // The re-check: is the slot at the enqueue position free for it?
                let pos = h.enq.pos.load(Ordering::Relaxed);
                let s = self.slot(pos).stamp.load(Ordering::Acquire);
                ticket(s).wrapping_sub(pos as u32) as i32 >= 0
                    || h.meta.closed.load(Ordering::Relaxed) != 0
            });
            if let Err(e) = slept {
                return Err(PutError::Os(v, e));
            }
        }
    }

    fn get_inner(&self, wait: Option<Option<Deadline>>) -> Result<T, GetError> {
        let mut backoff = crate::shim::poll_backoff(&self.get_poll);
        let mut pace = CheckPace::new();
        loop {
            let blocker = match self.try_get_inner() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Closed => return Err(GetError::Closed),
                Attempt::Lost => return Err(GetError::ClaimLost),
                Attempt::Blocked(b) => b,
            };
            let h = self.hdr();
            // Drained and closed? Only when no producer is in the middle of a put
            // (WRITING blocks `Closed`: that item will still arrive).
            if !matches!(blocker, Some(b) if state(b) == WRITING)
                && h.meta.closed.load(Ordering::SeqCst) != 0
            {
                // SeqCst fence: a claim made before the close is visible now.
                fence(Ordering::SeqCst);
                match self.try_get_inner() {
                    Attempt::Done(v) => return Ok(v),
                    Attempt::Blocked(Some(b)) if state(b) == WRITING => {}
                    _ => return Err(GetError::Closed),
                }
            }
            let deadline = match wait {
                None => return Err(GetError::Empty),
                Some(d) => d,
            };
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(GetError::Timeout);
            }
            if backoff.snooze() {
                continue;
            }
            if let Some(b) = blocker {
                if self.recover(b) {
                    continue;
                }
            }
            let slice = idle_slice(blocker, &mut pace, deadline);
            h.wait
                .get
                .park(Some(&slice), || {
                    let pos = h.deq.pos.load(Ordering::Relaxed);
                    let s = self.slot(pos).stamp.load(Ordering::Acquire);
                    let d = ticket(s).wrapping_sub(pos as u32) as i32;
                    d > 0
                        || (d == 0 && state(s) != FREE)
                        || h.meta.closed.load(Ordering::Relaxed) != 0
                })
                .map_err(GetError::Os)?;
        }
    }
}

/// The end of a sleep of a blocked put or get. With a `blocker` (a slot claimed by a
/// producer or consumer in the middle of its copy) the claimer's liveness is checked
/// at the paced slices of `pace`. Without one the queue is plainly full or empty: only
/// a live peer's put or get can change that, and it wakes us, so the sleep is a long
/// safety slice ([`watcher::SAFETY_SLICE`]) and an idle waiter does not wake on a timer.
/// A peer that claims a slot and dies before publishing it while we sleep is found
/// at the end of that slice (up to a second later).
fn idle_slice(blocker: Option<u64>, pace: &mut CheckPace, deadline: Option<Deadline>) -> Deadline {
    match blocker {
        Some(_) => pace.next_slice(deadline),
        None => Deadline::after(watcher::SAFETY_SLICE).min_with(deadline),
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
            // SAFETY: non-zero size.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            assert!(!ptr.is_null());
            Region { ptr, layout }
        }
    }
    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: allocated with this layout.
            unsafe { std::alloc::dealloc(self.ptr, self.layout) }
        }
    }

    fn queue<T: bytemuck::Pod>(cap: usize) -> (Region, Queue<T>) {
        let r = Region::new(Queue::<T>::region_size(cap).unwrap());
        // SAFETY: fresh heap region outliving the queue.
        let q = unsafe { Queue::init(r.ptr, r.layout.size(), cap) }.unwrap();
        (r, q)
    }

    #[test]
    fn fifo_full_empty_and_laps() {
        let (_r, q) = queue::<u64>(4);
        assert!(q.is_empty());
        for lap in 0..10u64 {
            for i in 0..4 {
                q.try_put(lap * 10 + i).unwrap();
            }
            assert!(q.is_full());
            assert_eq!(q.try_put(99).unwrap_err().into_inner(), 99);
            assert!(matches!(
                q.put_timeout(98, Duration::from_millis(20)),
                Err(PutError::Timeout(98))
            ));
            for i in 0..4 {
                assert_eq!(q.try_get().unwrap(), lap * 10 + i);
            }
            assert_eq!(q.try_get(), Err(GetError::Empty));
            assert_eq!(
                q.get_timeout(Duration::from_millis(20)),
                Err(GetError::Timeout)
            );
        }
    }

    #[test]
    fn close_drains_then_reports_closed() {
        let (_r, q) = queue::<u32>(8);
        q.put(1).unwrap();
        q.put(2).unwrap();
        q.close();
        assert!(matches!(q.put(3), Err(PutError::Closed(3))));
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.get(), Ok(2));
        assert_eq!(q.get(), Err(GetError::Closed));
        assert_eq!(q.try_get(), Err(GetError::Closed));
    }

    #[test]
    fn slot_abandoned_by_a_dead_process_is_skipped() {
        let (_r, q) = queue::<u32>(4);
        q.put(1).unwrap();
        // Simulate a producer that died after claiming position 1.
        let dead = 4_194_305 + 11; // above pid_max: never alive
        let s = q.slot(1);
        s.stamp
            .store(stamp(1, (dead << 2) | WRITING), Ordering::Relaxed);
        q.hdr().enq.pos.store(2, Ordering::Relaxed);
        q.put(3).unwrap();
        assert_eq!(q.get(), Ok(1));
        // try_get does not recover: the dead claim looks like an item in flight.
        assert_eq!(q.try_get(), Err(GetError::Empty));
        assert_eq!(q.get(), Ok(3));
    }

    /// Claims position `pos` for this process as a producer (WRITING) or consumer
    /// (READING) the way `try_put_inner`/`try_get_inner` do, and advances the hint.
    fn forge_claim<T: bytemuck::Pod>(q: &Queue<T>, pos: u64, role: u32) -> u64 {
        let s = q.slot(pos).stamp.load(Ordering::Relaxed);
        assert_eq!(ticket(s), pos as u32);
        let claim = stamp(pos as u32, (owner::current_pid() << 2) | role);
        q.slot(pos).stamp.store(claim, Ordering::Relaxed);
        let p = if role == WRITING {
            &q.hdr().enq.pos
        } else {
            &q.hdr().deq.pos
        };
        p.store(pos + 1, Ordering::Relaxed);
        claim
    }

    #[test]
    fn a_producer_whose_claim_was_taken_over_fails_loudly_and_rewinds_nothing() {
        let (_r, q) = queue::<u32>(2);
        // A producer claims position 0, then another process wrongly judges it dead
        // and skips the slot (what `recover` does), and the queue moves on: position 1
        // and then position 2 (the same slot, next lap) are put.
        let claim = forge_claim(&q, 0, WRITING);
        assert!(q.skip(claim));
        q.put(10).unwrap();
        q.put(20).unwrap();
        // The "dead" producer finishes its put.
        let r = q.finish_put(0, claim, 99);
        assert_eq!((q.get(), q.get()), (Ok(10), Ok(20)), "item lost or mixed");
        assert_eq!(q.try_get(), Err(GetError::Empty));
        assert!(matches!(r, Err((99, Attempt::Lost))), "the put must fail");
        // And the queue keeps working.
        q.put(30).unwrap();
        assert_eq!(q.get(), Ok(30));
    }

    #[test]
    fn a_consumer_whose_claim_was_taken_over_fails_loudly_and_rewinds_nothing() {
        let (_r, q) = queue::<u32>(2);
        q.put(1).unwrap();
        q.put(2).unwrap();
        let claim = forge_claim(&q, 0, READING);
        assert!(q.skip(claim)); // item 1 is given up as lost with its "dead" consumer
        assert_eq!(q.get(), Ok(2));
        q.put(3).unwrap(); // position 2: the same slot, next lap
                           // The "dead" consumer finishes its get: it must not take item 3 nor free
                           // the slot under it.
        let r = q.finish_get(0, claim);
        assert!(matches!(r, Attempt::Lost), "the get must fail");
        assert_eq!(q.get(), Ok(3));
        assert_eq!(q.try_get(), Err(GetError::Empty));
    }

    #[test]
    fn corrupted_stamps_do_not_make_an_attempt_spin_forever() {
        let (_r, q) = queue::<u64>(8);
        for i in 0..8u64 {
            // Tickets far ahead of every position: each looks "already consumed".
            q.slot(i)
                .stamp
                .store(stamp((1 << 30) + i as u32, FREE), Ordering::Relaxed);
        }
        assert!(matches!(q.try_put(1), Err(PutError::Full(1))));
        assert_eq!(q.try_get(), Err(GetError::Empty));
        assert!(matches!(
            q.put_timeout(2, Duration::from_millis(30)),
            Err(PutError::Timeout(2))
        ));
    }

    #[test]
    fn wrong_type_is_refused() {
        let (r, _q) = queue::<u64>(4);
        // SAFETY: the region outlives the attempt.
        let err = unsafe { Queue::<f64>::attach(r.ptr, r.layout.size()) }.unwrap_err();
        assert!(
            matches!(err, QueueLayoutError::TypeMismatch { .. }),
            "{err}"
        );
        // SAFETY: as above.
        let err = unsafe { Queue::<u32>::attach(r.ptr, r.layout.size()) }.unwrap_err();
        assert!(
            matches!(err, QueueLayoutError::TypeMismatch { .. }),
            "{err}"
        );
        // SAFETY: a region too short for the recorded capacity.
        let err = unsafe { Queue::<u64>::attach(r.ptr, QUEUE_HEADER_SIZE + 8) }.unwrap_err();
        assert!(matches!(err, QueueLayoutError::TooSmall { .. }), "{err}");
    }
}
