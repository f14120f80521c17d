//! The constructors that [`Ring`](crate::Ring) and [`Queue`](crate::Queue) share: each
//! lives in the payload of one segment, is laid out for a capacity, initialised before
//! READY and validated when opened. One implementation serves both (and every segment
//! backend, through [`SegmentOptions`]).

use shmkit_segment::{Segment, SegmentOptions, TypeTag};

use crate::error::{CreateError, OpenError, OpenOrCreateError};

/// A container that lives in the payload of one segment.
pub(crate) trait InSegment: Sized {
    /// Why a capacity or an existing payload is not acceptable.
    type LayoutError: Into<CreateError> + Into<OpenError>;

    /// The header tag recording what the payload holds.
    fn tag() -> TypeTag;

    /// Payload bytes for `capacity`, or why that capacity is refused.
    fn payload_size(capacity: usize) -> Result<usize, Self::LayoutError>;

    /// Lays out an empty container of `capacity` in the payload.
    ///
    /// # Safety
    /// `ptr..ptr + len` is a fresh, writable payload that no other process can see yet
    /// (before READY), of at least `payload_size(capacity)` bytes, 128-byte aligned.
    unsafe fn init_payload(ptr: *mut u8, len: usize, capacity: usize);

    /// A handle over the (validated) payload of `seg`, owning the segment.
    fn from_segment(seg: Segment) -> Result<Self, Self::LayoutError>;
}

fn init<C: InSegment>(capacity: usize) -> impl FnOnce(*mut u8, usize) {
    move |ptr, len| {
        // SAFETY: the segment layer hands its fresh payload of the size we asked for
        // (payload_size succeeded), ours alone until READY.
        unsafe { C::init_payload(ptr, len, capacity) }
    }
}

/// Creates the container in the segment described by `options`.
pub(crate) fn create<C: InSegment>(
    options: SegmentOptions,
    capacity: usize,
) -> Result<C, CreateError> {
    let size = C::payload_size(capacity).map_err(Into::<CreateError>::into)?;
    let seg = options
        .size(size)
        .type_tag(C::tag())
        .create_with(init::<C>(capacity))?;
    C::from_segment(seg).map_err(Into::<CreateError>::into)
}

/// Opens the container in the segment described by `options`.
pub(crate) fn open<C: InSegment>(options: SegmentOptions) -> Result<C, OpenError> {
    let seg = options.type_tag(C::tag()).open()?;
    C::from_segment(seg).map_err(Into::<OpenError>::into)
}

/// Opens the container, or creates it with `capacity` if it does not exist.
pub(crate) fn open_or_create<C: InSegment>(
    options: SegmentOptions,
    capacity: usize,
) -> Result<C, OpenOrCreateError> {
    let size = C::payload_size(capacity).map_err(|e| OpenOrCreateError::Create(e.into()))?;
    let seg = options
        .size(size)
        .type_tag(C::tag())
        .open_or_create_with(init::<C>(capacity))?;
    C::from_segment(seg).map_err(|e| OpenOrCreateError::Open(e.into()))
}
