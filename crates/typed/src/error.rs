//! Errors of the typed values and arrays.

use shmkit_segment as segment;
use shmkit_sync::LockError;

/// Why a shared value or array could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment could not be created (name taken, invalid name, no space...).
    #[error(transparent)]
    Segment(#[from] segment::CreateError),
    /// An array of length zero was asked for.
    #[error("a shared array needs at least one element: pass a length of 1 or more")]
    ZeroLength,
    /// The array would not fit in the address space.
    #[error("a shared array of {len} elements is too large to map: use fewer elements")]
    TooLarge {
        /// The length asked for.
        len: usize,
    },
}

/// Why a shared value or array could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment holds another type than the one asked for.
    #[error("segment holds {found}, but {expected} was asked for: open it with the type it was created with")]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type recorded in the segment.
        found: String,
    },
    /// The array has another length than the one asked for.
    #[error("shared array has {found} elements, but {expected} were asked for: open it with its length, or use `open_any_len`")]
    LengthMismatch {
        /// The length asked for.
        expected: usize,
        /// The length recorded in the segment.
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
    /// Opening the segment failed (missing, timeout, permissions, bad header...).
    #[error(transparent)]
    Segment(segment::OpenError),
    /// `open_or_create` had to create the segment, and that failed.
    #[error(transparent)]
    Create(#[from] segment::CreateError),
}

impl From<segment::OpenError> for OpenError {
    fn from(e: segment::OpenError) -> Self {
        match e {
            segment::OpenError::TypeMismatch { expected, found } => {
                OpenError::TypeMismatch { expected, found }
            }
            other => OpenError::Segment(other),
        }
    }
}

impl From<segment::OpenOrCreateError> for OpenError {
    fn from(e: segment::OpenOrCreateError) -> Self {
        match e {
            segment::OpenOrCreateError::Open(e) => e.into(),
            segment::OpenOrCreateError::Create(e) => OpenError::Create(e),
            other => OpenError::Corrupt {
                name: String::new(),
                reason: other.to_string(),
            },
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
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The lock was busy (`try_` forms).
    #[error("the lock is held by another process or thread")]
    WouldBlock,
    /// This thread already holds the lock (a guard is still alive).
    #[error("this thread already holds the lock: drop the guard first")]
    WouldDeadlock,
}

impl<G> From<LockError<G>> for AccessError {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => AccessError::OwnerDied,
            LockError::Poisoned(_) => AccessError::Poisoned,
            LockError::Timeout => AccessError::Timeout,
            LockError::WouldBlock => AccessError::WouldBlock,
            _ => AccessError::WouldDeadlock,
        }
    }
}
