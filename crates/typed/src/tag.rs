//! Which shmkit type lives in a segment: the `kind` numbers and the type tags the typed
//! objects write into the segment header, so that opening with another `T` is a
//! [`TypeMismatch`](crate::OpenError::TypeMismatch) error instead of garbage.

use shmkit_segment::TypeTag;

/// `TypeTag::kind` values of the typed crate's objects (the segment crate uses 0 for
/// untyped bytes). Written in the header; see `docs/layout.md`.
pub mod kind {
    /// [`SharedValue<T>`](crate::SharedValue): a `Mutex<T>`.
    pub const SHARED_VALUE: u32 = 0x5456_0001;
    /// [`RawValue<T>`](crate::RawValue): a bare `T`.
    pub const RAW_VALUE: u32 = 0x5456_0002;
    /// [`SharedArray<T>`](crate::SharedArray): a length, then a `Mutex<[T]>`.
    pub const SHARED_ARRAY: u32 = 0x5456_0003;
}

/// The tag for a `T` stored as `kind`: the type's name (`std::any::type_name`), size
/// and alignment, hashed into the header's fingerprint.
///
/// `type_name` is stable for a given type and compiler; two programs built by very
/// different compiler versions could in principle spell a name differently, in which
/// case opening fails with `TypeMismatch` (safe) rather than succeeding wrongly.
pub fn tag_for<T>(kind: u32) -> TypeTag {
    TypeTag::new(
        kind,
        std::any::type_name::<T>(),
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>() as u64,
    )
}
