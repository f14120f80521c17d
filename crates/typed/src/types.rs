//! What may live in shared memory, and how its type is recorded.
//!
//! Element types are bounded by [`Pod`](crate::Pod) (bytemuck's, re-exported here and
//! as `shmkit::Pod`): `Copy`, `'static`, no padding, no pointers or references, valid
//! for any bit pattern (so a value another process wrote, or a zeroed segment, is never
//! undefined behaviour to read). Derive it with `#[derive(Clone, Copy, Pod, Zeroable)]`
//! on a `#[repr(C)]` struct; a crate without a bytemuck dependency of its own points the
//! derive at the re-export with `#[bytemuck(crate = "shmkit::bytemuck")]` (or
//! `"shmkit_typed::bytemuck"`), as the example of `shmkit::Pod` shows. A file
//! descriptor is a plain integer to `Pod` but means nothing in another process: do not
//! share one this way.
//!
//! Each container records a [`shmkit_segment::TypeTag`] of its element type:
//! kind (which container), `std::any::type_name`, size and alignment; opening with
//! another type is a `TypeMismatch` error naming both types.

use shmkit_segment::TypeTag;

/// Tag kinds of the typed containers (the segment header's `type_tag.kind`).
///
/// # Examples
/// ```
/// use shmkit_typed::types::kind;
/// use shmkit_typed::SharedValue;
///
/// let v = SharedValue::<u8>::anonymous(0)?;
/// let tag = v.segment().header().expect("header").type_tag;
/// assert_eq!(tag.kind(), kind::SHARED_VALUE);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod kind {
    /// `SharedValue<T>`: a `Mutex<T>`.
    pub const SHARED_VALUE: u32 = 0x5459_0001;
    /// `SharedArray<T>`: a length, then a `Mutex<[T]>`.
    pub const SHARED_ARRAY: u32 = 0x5459_0002;
    /// `Ring`.
    pub const RING: u32 = 0x5459_0003;
    /// `Queue<T>`.
    pub const QUEUE: u32 = 0x5459_0004;
    /// `RawValue<T>`: a bare `T` (no lock).
    pub const RAW_VALUE: u32 = 0x5459_0005;
}

/// The tag of element type `T` in a container of `kind`.
///
/// `type_name` is stable for a given type and compiler; two programs built by very
/// different compiler versions could in principle spell a name differently, in which
/// case opening fails with `TypeMismatch` (safe) rather than succeeding wrongly.
///
/// # Examples
/// ```
/// use shmkit_typed::types::{kind, tag_of};
/// use shmkit_typed::Queue;
///
/// let tag = tag_of::<u64>(kind::QUEUE);
/// assert_eq!((tag.name(), tag.size(), tag.align()), ("u64", 8, 8));
/// assert_eq!(tag, Queue::<u64>::type_tag()); // what a queue of u64 records
/// assert_ne!(tag, tag_of::<i64>(kind::QUEUE)); // same layout, another type
/// assert_ne!(tag, tag_of::<u64>(kind::SHARED_VALUE)); // same type, another container
/// ```
pub fn tag_of<T>(kind: u32) -> TypeTag {
    TypeTag::new(
        kind,
        std::any::type_name::<T>(),
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>() as u64,
    )
}

/// A readable description of a tag for error messages.
pub(crate) fn describe(tag: &TypeTag) -> String {
    format!(
        "{} (size {}, align {}, kind {:#x})",
        tag.name(),
        tag.size(),
        tag.align(),
        tag.kind()
    )
}
