//! Errors of creating and opening typed containers in named or anonymous segments,
//! and of element access on values and arrays. (Errors of the ring's and queue's own
//! operations live beside them.)

use shmkit_sync::LockError;

use crate::channel::ChannelLayoutError;
use crate::queue::QueueLayoutError;
use crate::ring::RingLayoutError;

/// Why a container could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment could not be created (name taken, no space, permission...).
    #[error(transparent)]
    Segment(#[from] shmkit_segment::CreateError),
    /// The ring's parameters are invalid.
    #[error(transparent)]
    Ring(#[from] RingLayoutError),
    /// The queue's parameters are invalid.
    #[error(transparent)]
    Queue(#[from] QueueLayoutError),
    /// The topic's configuration is invalid.
    #[error(transparent)]
    Topic(#[from] crate::topic::TopicConfigError),
    /// The channel's parameters are invalid.
    #[error(transparent)]
    Channel(#[from] ChannelLayoutError),
    /// The object was created, but reading it back failed: a bug in shmkit (or memory
    /// changed under it); please report it.
    #[error(
        "the new object failed its own checks right after creation (please report this bug): {0}"
    )]
    Reopen(#[source] Box<OpenError>),
    /// An array of length zero was asked for.
    #[error("a shared array needs at least one element: pass a length of 1 or more")]
    ZeroLength,
    /// An array of this length does not fit in memory.
    #[error("an array of {len} elements of {elem_size} bytes is too large to map")]
    TooLarge {
        /// Elements asked for.
        len: usize,
        /// Bytes per element.
        elem_size: usize,
    },
}

/// Why an object could not be opened.
///
/// One vocabulary with the segment layer: what went wrong with the segment itself (not
/// found, permission, not ready, not shmkit...) is the segment's own
/// [`SegmentOpenError`](crate::SegmentOpenError) inside [`OpenError::Segment`]; the
/// other variants are about the object in it. Both names come from this crate.
///
/// # Examples
/// ```
/// use shmkit_typed::{OpenError, Queue, SegmentOpenError, SharedValue};
///
/// let name = format!("shmkit-doc-typed-err-{}", std::process::id());
/// // Not there yet: one pattern, one import.
/// match SharedValue::<u64>::open(&name) {
///     Err(OpenError::Segment(SegmentOpenError::NotFound { .. })) => {}
///     other => panic!("expected NotFound, got {:?}", other.err()),
/// }
/// let _q = Queue::<u64>::create(&name, 4)?;
/// // The same name opened as another object (or element type) is refused by name.
/// match SharedValue::<u64>::open(&name) {
///     Err(OpenError::TypeMismatch { expected, found }) => assert_ne!(expected, found),
///     _ => panic!("expected a type mismatch"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment holds another type (or another kind of container).
    #[error(
        "the segment holds {found}, not {expected}: open it with the type it was created with"
    )]
    TypeMismatch {
        /// What the caller asked for.
        expected: String,
        /// What the segment's header records.
        found: String,
    },
    /// The array has another length than the one asked for.
    #[error("the array has {found} elements, not {expected}: open it with its length, or with `open` to take it from the segment")]
    LengthMismatch {
        /// Length asked for.
        expected: usize,
        /// Length in the segment.
        found: usize,
    },
    /// The segment's payload is inconsistent with its header (corrupted or hostile).
    #[error("segment '{name}' is corrupt: {reason}; remove it with `shmkit rm {name}` and create it again")]
    Corrupt {
        /// The segment's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The object was made with another layout version (by an older or newer shmkit):
    /// its bytes cannot be read by this build.
    #[error("the {object} was made with layout version {found}, but this build reads version {expected}: use the same shmkit version in every process, or remove and recreate it")]
    Version {
        /// The object (`"SharedValue"`, `"Ring"`...).
        object: &'static str,
        /// The version recorded in the segment.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The segment could not be opened (not found, permission, not ready...).
    #[error(transparent)]
    Segment(shmkit_segment::OpenError),
    /// The segment does not hold a valid ring.
    #[error(transparent)]
    Ring(RingLayoutError),
    /// The segment does not hold a valid queue.
    #[error(transparent)]
    Queue(QueueLayoutError),
    /// The segment does not hold a valid channel.
    #[error(transparent)]
    Channel(ChannelLayoutError),
}

impl From<shmkit_segment::OpenError> for OpenError {
    fn from(e: shmkit_segment::OpenError) -> Self {
        match e {
            shmkit_segment::OpenError::TypeMismatch { expected, found } => {
                OpenError::TypeMismatch { expected, found }
            }
            e => OpenError::Segment(e),
        }
    }
}

impl From<QueueLayoutError> for OpenError {
    fn from(e: QueueLayoutError) -> Self {
        match e {
            QueueLayoutError::TypeMismatch { expected, found } => {
                OpenError::TypeMismatch { expected, found }
            }
            QueueLayoutError::BadVersion { found, expected } => OpenError::Version {
                object: "Queue",
                found,
                expected,
            },
            e => OpenError::Queue(e),
        }
    }
}

impl From<ChannelLayoutError> for OpenError {
    fn from(e: ChannelLayoutError) -> Self {
        match e {
            ChannelLayoutError::TypeMismatch { expected, found } => {
                OpenError::TypeMismatch { expected, found }
            }
            ChannelLayoutError::BadVersion { found, expected } => OpenError::Version {
                object: "Channel",
                found,
                expected,
            },
            e => OpenError::Channel(e),
        }
    }
}

impl From<RingLayoutError> for OpenError {
    fn from(e: RingLayoutError) -> Self {
        match e {
            RingLayoutError::BadVersion { found, expected } => OpenError::Version {
                object: "Ring",
                found,
                expected,
            },
            e => OpenError::Ring(e),
        }
    }
}

/// Why `open_or_create` failed: the error of the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenOrCreateError {
    /// Creating failed.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The container existed and opening it failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Another failure of the segment layer.
    #[error(transparent)]
    Segment(shmkit_segment::OpenOrCreateError),
}

impl From<shmkit_segment::OpenOrCreateError> for OpenOrCreateError {
    fn from(e: shmkit_segment::OpenOrCreateError) -> Self {
        match e {
            shmkit_segment::OpenOrCreateError::Create(c) => OpenOrCreateError::Create(c.into()),
            shmkit_segment::OpenOrCreateError::Open(o) => OpenOrCreateError::Open(o.into()),
            other => OpenOrCreateError::Segment(other),
        }
    }
}

/// An index past the end of a [`SharedArray`](crate::SharedArray).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("index {index} is out of range for a shared array of length {len}")]
pub struct IndexError {
    /// The index asked for.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// Why `get`, `set`, `update` or a copy on a [`SharedValue`](crate::SharedValue) or
/// [`SharedArray`](crate::SharedArray) failed.
///
/// These convenience methods do not hand out the lock guard, so the error can travel
/// with `?` anywhere. When the previous holder died (`OwnerDied`), the lock is released
/// again *without* being marked consistent, so it stays poisoned: later calls get
/// `Poisoned` until someone calls `lock()`, repairs the data through the guard the
/// error carries there, and calls `make_consistent()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The index is past the end.
    #[error(transparent)]
    OutOfRange(#[from] IndexError),
    /// A slice of the wrong length was given.
    #[error("a slice of {found} elements was given for a shared array of {expected}: pass exactly {expected}")]
    WrongLength {
        /// The array's length.
        expected: usize,
        /// The slice's length.
        found: usize,
    },
    /// The previous lock holder died mid-update; nothing was read or written. The data
    /// may be half-updated: call `lock()`, repair it, then `make_consistent()`.
    #[error("a process died while holding the lock, so the data may be half-updated: call lock(), repair it, then make_consistent()")]
    OwnerDied,
    /// An earlier holder died and nobody marked the data consistent since.
    #[error("the lock is poisoned (an earlier holder died mid-update): call lock(), repair the data, then make_consistent()")]
    Poisoned,
    /// The timeout passed before the lock was free.
    #[error("timed out waiting for the lock (in a segment shared across pid namespaces a holder that died is never detected, so it also looks like this)")]
    Timeout,
    /// The lock was busy (`try_` forms).
    #[error("the lock is held by another process or thread")]
    WouldBlock,
    /// This thread already holds the lock (a guard is still alive).
    #[error("this thread already holds the lock: drop the guard first")]
    WouldDeadlock,
    /// Sleeping on the lock failed in the kernel (`futex(2)` returned an unexpected
    /// error); nothing was read or written. See [`LockError::Os`].
    #[error("sleeping on the lock failed in the kernel (futex); nothing was read or written")]
    Os(#[source] shmkit_sync::OsError),
}

impl<G> From<LockError<G>> for AccessError {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => AccessError::OwnerDied,
            LockError::Poisoned(_) => AccessError::Poisoned,
            LockError::Timeout => AccessError::Timeout,
            LockError::WouldBlock => AccessError::WouldBlock,
            LockError::Os(e) => AccessError::Os(e),
            _ => AccessError::WouldDeadlock,
        }
    }
}
