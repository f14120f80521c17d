//! One constructor family for every object in shared memory.
//!
//! Every typed object ([`SharedValue`](crate::SharedValue),
//! [`SharedRwValue`](crate::SharedRwValue), [`SharedArray`](crate::SharedArray),
//! [`RawValue`](crate::RawValue), [`Ring`](crate::Ring), [`Queue`](crate::Queue),
//! [`Topic`](crate::Topic), [`TypedTopic`](crate::TypedTopic),
//! [`SharedSemaphore`](crate::SharedSemaphore), [`SharedEvent`](crate::SharedEvent),
//! [`SharedBarrier`](crate::SharedBarrier), [`SharedCondvar`](crate::SharedCondvar))
//! lives in the payload of one segment and is made and found the same way, through
//! [`SharedObject`]:
//!
//! | form | what it does |
//! |---|---|
//! | `create(name, init)` | creates the POSIX segment `name` (`/dev/shm/<name>`); the name is removed when this handle drops |
//! | `open(name)` | opens the object another process created under `name` |
//! | `open_or_create(name, init)` | opens it, or creates it if missing: of several racing processes exactly one creates (`is_creator`), `init` is used only by it |
//! | `anonymous(init)` | anonymous shared memory, shared with children forked afterwards |
//! | `create_in(options, init)` / `open_in(options)` / `open_or_create_in(options, init)` | any [`SegmentOptions`]: System V, file-backed, mode, open timeout... |
//!
//! `init` is what creating needs (the type `O::Init` in generic code): the initial
//! value of a value, the length of an array, the capacity of a ring or queue, the
//! primitive itself (`Semaphore::bounded(2, 2)`, `Event::new()`...) for a sync object.
//!
//! Each type also has these forms as inherent functions, so `Ring::create(&name, cap)`
//! needs no trait import; the trait is there for code generic over objects.
//!
//! Opening checks the header's type tag: another object or element type is
//! [`OpenError::TypeMismatch`], the same object of another layout version (made by
//! another shmkit) is [`OpenError::Version`], and what went wrong with the segment
//! itself is [`OpenError::Segment`] (see [`OpenError`] for matching "not found").
//!
//! # Example
//! ```
//! use shmkit_segment::Segment;
//! use shmkit_typed::{Queue, SharedObject, SharedValue};
//!
//! let name = format!("shmkit-doc-family-{}", std::process::id());
//! let made = SharedValue::<u64>::create(&name, 7)?; // removes the name on drop
//! let found = SharedValue::<u64>::open(&name)?; // as another process would
//! found.set(8)?;
//! assert_eq!(made.get()?, 8);
//!
//! // The same forms for every object, also from generic code.
//! fn make<O: SharedObject>(name: &str, init: O::Init) -> Result<(O, O), Box<dyn std::error::Error>> {
//!     let first = O::open_or_create(name, init)?;
//!     let second = O::open(name)?;
//!     Ok((first, second))
//! }
//! let (tx, rx) = make::<Queue<u32>>(&format!("{name}-q"), 8)?;
//! tx.put(1)?;
//! assert_eq!(rx.get()?, 1);
//!
//! // Any backend or option: here a System V segment.
//! let key = 0x5346_0000 ^ std::process::id() as i32;
//! let sysv = SharedValue::create_in(Segment::options().sysv(key), 1.5f64)?;
//! assert_eq!(SharedValue::<f64>::open_in(Segment::options().sysv(key))?.get()?, 1.5);
//! drop(sysv);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use shmkit_segment::{Segment, SegmentOptions, TypeTag};

use crate::error::{CreateError, OpenError, OpenOrCreateError};
use crate::types::{describe, layout_version};

pub(crate) mod sealed {
    use super::*;

    /// How an object is laid out in its payload (the part of the family each object
    /// writes itself).
    pub trait Layout: Sized {
        /// What creating needs.
        type Init;
        /// The object's name in errors (`"SharedValue"`).
        const OBJECT: &'static str;

        /// The header tag recording what the payload holds (kind with the layout
        /// version, element type).
        fn tag() -> TypeTag;

        /// Payload bytes for `init`, or why `init` is refused.
        fn payload_size(init: &Self::Init) -> Result<usize, CreateError>;

        /// Lays out the object in a fresh payload.
        ///
        /// # Safety
        /// `ptr..ptr + len` is a fresh, zeroed, writable payload that no other process
        /// can see yet (before READY), of at least `payload_size(&init)` bytes,
        /// 128-byte aligned.
        unsafe fn init_payload(ptr: *mut u8, len: usize, init: Self::Init);

        /// A handle over the payload of `seg` (its tag already checked), owning the
        /// segment, after checking what the payload itself records.
        fn from_segment(seg: Segment) -> Result<Self, OpenError>;

        /// Whether an object `open_or_create` found fits the `init` it was given
        /// (e.g. an array's length). Most objects ignore `init` when they open.
        fn check_init(&self, _init: &Self::Init) -> Result<(), OpenError> {
            Ok(())
        }
    }
}

/// The constructors every object in shared memory has: see the [module docs](self).
///
/// Implemented by this crate's objects only (the layout half is private).
pub trait SharedObject: sealed::Layout {
    /// Creates the POSIX segment `name` holding a new object made from `init`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if the name is taken or invalid or memory runs out;
    /// another [`CreateError`] if `init` is refused (a zero length, a capacity that is
    /// not a power of two...).
    fn create(name: &str, init: Self::Init) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().posix(name), init)
    }

    /// Creates the object in the segment described by `options`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    fn create_in(options: SegmentOptions, init: Self::Init) -> Result<Self, CreateError> {
        let size = Self::payload_size(&init)?;
        let mut slot = Some(init);
        create_with(options, size, &mut slot)
    }

    /// An object in anonymous shared memory, shared with children forked after this
    /// call.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    fn anonymous(init: Self::Init) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().anonymous(), init)
    }

    /// Opens the object another process created as POSIX segment `name`.
    ///
    /// # Errors
    /// [`OpenError::Segment`] if it is missing, not ready in time or not shmkit's;
    /// [`OpenError::TypeMismatch`] if it holds another object or type;
    /// [`OpenError::Version`] if it was made with another layout version.
    fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_in(Segment::options().posix(name))
    }

    /// Opens the object in the segment described by `options`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    fn open_in(options: SegmentOptions) -> Result<Self, OpenError> {
        Self::from_segment(open_tagged(options, Self::tag(), Self::OBJECT)?)
    }

    /// Opens the POSIX segment `name`, or creates it from `init` if it does not exist.
    ///
    /// # Errors
    /// [`OpenOrCreateError::Create`] or [`OpenOrCreateError::Open`], as
    /// [`create`](Self::create) and [`open`](Self::open).
    fn open_or_create(name: &str, init: Self::Init) -> Result<Self, OpenOrCreateError> {
        Self::open_or_create_in(Segment::options().posix(name), init)
    }

    /// Opens the object in the segment described by `options`, or creates it from
    /// `init`.
    ///
    /// # Errors
    /// As [`open_or_create`](Self::open_or_create).
    fn open_or_create_in(
        options: SegmentOptions,
        init: Self::Init,
    ) -> Result<Self, OpenOrCreateError> {
        let size = Self::payload_size(&init)?;
        let mut slot = Some(init);
        // A segment can vanish between our failed create and our open (its creator
        // dropped it); then try again, a bounded number of times.
        let mut last = None;
        for _ in 0..16 {
            match create_with::<Self>(options.clone(), size, &mut slot) {
                Err(CreateError::Segment(shmkit_segment::CreateError::AlreadyExists {
                    ..
                })) => {}
                other => return Ok(other?),
            }
            match Self::open_in(options.clone()) {
                Ok(found) => {
                    let init = slot.as_ref().expect("init is only taken by a creator");
                    found.check_init(init)?;
                    return Ok(found);
                }
                Err(e @ OpenError::Segment(shmkit_segment::OpenError::NotFound { .. })) => {
                    last = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.expect("the loop ran").into())
    }
}

impl<O: sealed::Layout> SharedObject for O {}

/// Creates `O` of `size` payload bytes from the `init` in `slot` (taken only if the
/// segment is created, so a caller can retry after `AlreadyExists`).
fn create_with<O: sealed::Layout>(
    options: SegmentOptions,
    size: usize,
    slot: &mut Option<O::Init>,
) -> Result<O, CreateError> {
    create_raw(options, size, |ptr, len| {
        let init = slot.take().expect("a segment is initialised once");
        // SAFETY: `create_raw` passes the fresh, zeroed, 128-byte aligned payload of at
        // least `size` bytes, ours alone until READY; `payload_size(&init)` gave `size`.
        unsafe { O::init_payload(ptr, len, init) }
    })
}

/// Creates `O` in a segment of `size` payload bytes (tagged `O::tag()`) that `init`
/// lays out: `init` gets the fresh, zeroed, 128-byte aligned payload of at least
/// `size` bytes, private to it until READY.
pub(crate) fn create_raw<O: sealed::Layout>(
    options: SegmentOptions,
    size: usize,
    init: impl FnOnce(*mut u8, usize),
) -> Result<O, CreateError> {
    let seg = options
        .size(size)
        .type_tag(O::tag())
        .create_with(|ptr, len| {
            assert!(len >= size, "the segment layer gives the payload asked for");
            init(ptr, len)
        })?;
    O::from_segment(seg).map_err(|e| CreateError::Reopen(Box::new(e)))
}

/// `open_or_create`'s check that an object it opened has the payload size its `init`
/// would have given (the error a sized segment open gives).
pub(crate) fn check_payload(seg: Option<&Segment>, size: usize) -> Result<(), OpenError> {
    match seg {
        Some(seg) if seg.payload_len() != size => Err(OpenError::Segment(
            shmkit_segment::OpenError::SizeMismatch {
                name: seg.name().unwrap_or("").to_owned(),
                expected: size as u64,
                found: seg.payload_len() as u64,
            },
        )),
        _ => Ok(()),
    }
}

/// Opens the segment of `options` if its tag is `want`. A wrong tag is told apart:
/// the same object of another layout version, or another object or type.
pub(crate) fn open_tagged(
    options: SegmentOptions,
    want: TypeTag,
    object: &'static str,
) -> Result<Segment, OpenError> {
    match options.clone().type_tag(want).open() {
        Err(shmkit_segment::OpenError::TypeMismatch { expected, found }) => {
            // Look again, accepting any tag, to say what the segment holds. (A segment
            // replaced in between only changes which error is reported.)
            let tag = options
                .any_type()
                .open()
                .ok()
                .and_then(|s| s.header())
                .map(|h| h.type_tag);
            Err(match tag {
                Some(found) => mismatch(&want, &found, object),
                None => OpenError::TypeMismatch { expected, found },
            })
        }
        other => Ok(other?),
    }
}

/// The error for a segment tagged `found` where `want` was asked for.
fn mismatch(want: &TypeTag, found: &TypeTag, object: &'static str) -> OpenError {
    let same_object =
        layout_version(found.kind()).is_some() && found.kind() & 0xff == want.kind() & 0xff;
    match (
        same_object,
        layout_version(found.kind()),
        layout_version(want.kind()),
    ) {
        (true, Some(found), Some(expected)) if found != expected => OpenError::Version {
            object,
            found,
            expected,
        },
        _ => OpenError::TypeMismatch {
            expected: describe(want),
            found: describe(found),
        },
    }
}

/// Forwards the family's forms as inherent functions of the type this is invoked in
/// (so callers need no trait import), each documented by a link to the family.
macro_rules! family_forms {
    ($init:ident: $ty:ty) => {
        $crate::family::family_forms!(@create $init: $ty);
        /// Opens the object another process created under `name`: see
        /// [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::open`](crate::SharedObject::open).
        pub fn open(name: &str) -> Result<Self, $crate::OpenError> {
            <Self as $crate::SharedObject>::open(name)
        }
    };
    (@create $init:ident: $ty:ty) => {
        /// Creates the POSIX segment `name` holding a new object: see
        /// [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::create`](crate::SharedObject::create).
        pub fn create(name: &str, $init: $ty) -> Result<Self, $crate::CreateError> {
            <Self as $crate::SharedObject>::create(name, $init.into())
        }

        /// Creates the object in the segment described by `options`: see
        /// [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::create`](crate::SharedObject::create).
        pub fn create_in(
            options: shmkit_segment::SegmentOptions,
            $init: $ty,
        ) -> Result<Self, $crate::CreateError> {
            <Self as $crate::SharedObject>::create_in(options, $init.into())
        }

        /// An object in anonymous shared memory, shared with children forked after
        /// this call: see [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::create`](crate::SharedObject::create).
        pub fn anonymous($init: $ty) -> Result<Self, $crate::CreateError> {
            <Self as $crate::SharedObject>::anonymous($init.into())
        }

        /// Opens the object in the segment described by `options`: see
        /// [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::open`](crate::SharedObject::open).
        pub fn open_in(
            options: shmkit_segment::SegmentOptions,
        ) -> Result<Self, $crate::OpenError> {
            <Self as $crate::SharedObject>::open_in(options)
        }

        /// Opens `name`, or creates it if it does not exist: see
        /// [the family](crate::family).
        ///
        /// # Errors
        /// See [`SharedObject::open_or_create`](crate::SharedObject::open_or_create).
        pub fn open_or_create(
            name: &str,
            $init: $ty,
        ) -> Result<Self, $crate::OpenOrCreateError> {
            <Self as $crate::SharedObject>::open_or_create(name, $init.into())
        }
    };
}
pub(crate) use family_forms;
