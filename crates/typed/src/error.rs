//! Errors of creating and opening typed containers in named or anonymous segments.
//! (Errors of the operations themselves live beside each container.)

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
    /// The element type cannot be placed in a segment.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
    /// An array of this length does not fit in memory.
    #[error("an array of {len} elements of {elem_size} bytes is too large to map")]
    TooLarge {
        /// Elements asked for.
        len: usize,
        /// Bytes per element.
        elem_size: usize,
    },
}

/// Why a container could not be opened.
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
    /// The segment's payload is smaller than the container needs.
    #[error("the segment's payload has {found} bytes but the container needs {needed}: it was not made by this container type")]
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes found.
        found: usize,
    },
    /// The segment could not be opened (not found, permission, not ready...).
    #[error(transparent)]
    Segment(shmkit_segment::OpenError),
    /// The segment does not hold a valid ring.
    #[error(transparent)]
    Ring(#[from] RingLayoutError),
    /// The segment does not hold a valid queue.
    #[error(transparent)]
    Queue(QueueLayoutError),
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
            e => OpenError::Queue(e),
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
