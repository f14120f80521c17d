//! [`SharedArray<T>`] (Python's `multiprocessing.Array`): a fixed-length `[T]` behind
//! one process-shared mutex.
//!
//! Layout (see `crates/typed/LAYOUT.md`): the payload is a
//! [`shmkit_sync::Mutex<[T]>`]: the 16-byte `RawMutex` at offset 0, the elements from
//! offset `max(16, align_of::<T>())`. The length is not stored separately: it follows
//! from the payload size recorded in the segment header.

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_segment::{Segment, SegmentOptions, TypeTag};
use shmkit_sync::{LockError, Mutex, MutexGuard};

use crate::types::{kind, tag_of};
use crate::value::check_payload;
use crate::{CreateError, OpenError, OpenOrCreateError};

/// Why an element access failed.
#[non_exhaustive]
pub enum ArrayError<'a, T> {
    /// The index is not below the length.
    OutOfRange {
        /// Index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// Locking failed (`OwnerDied`/`Poisoned` carry the guard, as in the sync crate).
    Lock(LockError<MutexGuard<'a, [T]>>),
}

impl<T> std::fmt::Debug for ArrayError<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArrayError::OutOfRange { index, len } => f
                .debug_struct("OutOfRange")
                .field("index", index)
                .field("len", len)
                .finish(),
            ArrayError::Lock(e) => f.debug_tuple("Lock").field(e).finish(),
        }
    }
}

impl<T> std::fmt::Display for ArrayError<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArrayError::OutOfRange { index, len } => {
                write!(
                    f,
                    "index {index} is out of range for a shared array of length {len}"
                )
            }
            ArrayError::Lock(e) => write!(f, "{e}"),
        }
    }
}

impl<T> std::error::Error for ArrayError<'_, T> {}

impl<'a, T> From<LockError<MutexGuard<'a, [T]>>> for ArrayError<'a, T> {
    fn from(e: LockError<MutexGuard<'a, [T]>>) -> Self {
        ArrayError::Lock(e)
    }
}

/// A fixed-length array of `T` behind a process-shared mutex in shared memory.
pub struct SharedArray<T: bytemuck::Pod> {
    seg: Segment,
    mutex: NonNull<Mutex<[T]>>,
    len: usize,
}

// SAFETY: the elements are reached only through the process-shared mutex; the segment
// handle is Send + Sync.
unsafe impl<T: bytemuck::Pod + Send> Send for SharedArray<T> {}
// SAFETY: as above.
unsafe impl<T: bytemuck::Pod + Send> Sync for SharedArray<T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArray")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("name", &self.seg.name())
            .finish_non_exhaustive()
    }
}

impl<T: bytemuck::Pod> SharedArray<T> {
    /// The type tag recorded in the segment header.
    pub fn type_tag() -> TypeTag {
        tag_of::<T>(kind::ARRAY)
    }

    /// Offset of element 0 in the payload.
    pub fn data_offset() -> usize {
        std::mem::size_of::<shmkit_sync::RawMutex>().next_multiple_of(std::mem::align_of::<T>())
    }

    fn payload_size(len: usize) -> Result<usize, CreateError> {
        if std::mem::size_of::<T>() == 0 {
            return Err(CreateError::Unsupported {
                what: "zero-sized element types",
            });
        }
        if std::mem::align_of::<T>() > 128 {
            return Err(CreateError::Unsupported {
                what: "element types aligned to more than 128 bytes",
            });
        }
        len.checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(Self::data_offset()))
            .filter(|&b| b <= isize::MAX as usize / 2)
            .ok_or(CreateError::TooLarge {
                len,
                elem_size: std::mem::size_of::<T>(),
            })
    }

    fn options(size: Option<usize>) -> SegmentOptions {
        let o = Segment::options().type_tag(Self::type_tag());
        match size {
            Some(s) => o.size(s),
            None => o,
        }
    }

    fn init(init: &[T]) -> impl FnOnce(*mut u8, usize) + '_ {
        move |ptr, _len| {
            // SAFETY: the fresh, zeroed payload (zero = unlocked mutex and zero
            // elements) holds the elements from `data_offset()`, room for init.len()
            // of them, ours alone until READY.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    init.as_ptr(),
                    ptr.add(Self::data_offset()).cast::<T>(),
                    init.len(),
                )
            }
        }
    }

    fn from_segment(seg: Segment, want_len: Option<usize>) -> Result<Self, OpenError> {
        let off = Self::data_offset();
        check_payload(&seg, off)?;
        let len = (seg.payload_len() - off) / std::mem::size_of::<T>().max(1);
        if let Some(want) = want_len {
            if want != len {
                return Err(OpenError::LengthMismatch {
                    expected: want,
                    found: len,
                });
            }
        }
        let raw = std::ptr::slice_from_raw_parts_mut(seg.payload_ptr().cast::<T>(), len)
            as *mut Mutex<[T]>;
        let mutex = NonNull::new(raw).expect("mapped payload is non-null");
        Ok(SharedArray { seg, mutex, len })
    }

    /// Creates the named array `name` of `len` zeroed elements.
    ///
    /// # Errors
    /// [`CreateError::Segment`], [`CreateError::TooLarge`], [`CreateError::Unsupported`].
    pub fn create(name: &str, len: usize) -> Result<Self, CreateError> {
        let size = Self::payload_size(len)?;
        let seg = Self::options(Some(size)).posix(name).create()?;
        Ok(Self::from_segment(seg, Some(len)).expect("a segment we created has the right size"))
    }

    /// Creates the named array `name` holding a copy of `init`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_from_slice(name: &str, init: &[T]) -> Result<Self, CreateError> {
        let size = Self::payload_size(init.len())?;
        let seg = Self::options(Some(size))
            .posix(name)
            .create_with(Self::init(init))?;
        Ok(Self::from_segment(seg, Some(init.len()))
            .expect("a segment we created has the right size"))
    }

    /// Opens the named array, taking its length from the segment.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] for another element type; segment errors otherwise.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::from_segment(Self::options(None).posix(name).open()?, None)
    }

    /// Opens the named array and checks that it has `len` elements.
    ///
    /// # Errors
    /// [`OpenError::LengthMismatch`] for another length; as [`open`](Self::open).
    pub fn open_with_len(name: &str, len: usize) -> Result<Self, OpenError> {
        Self::from_segment(Self::options(None).posix(name).open()?, Some(len))
    }

    /// Opens the named array (which must have `len` elements) or creates it zeroed.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open_with_len`](Self::open_with_len).
    pub fn open_or_create(name: &str, len: usize) -> Result<Self, OpenOrCreateError> {
        let size = Self::payload_size(len)?;
        let seg = Self::options(Some(size)).posix(name).open_or_create()?;
        Ok(Self::from_segment(seg, Some(len))?)
    }

    /// An array of `len` zeroed elements in anonymous shared memory, shared with
    /// children forked afterwards.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn anonymous(len: usize) -> Result<Self, CreateError> {
        let size = Self::payload_size(len)?;
        let seg = Self::options(Some(size)).anonymous().create()?;
        Ok(Self::from_segment(seg, Some(len)).expect("a segment we created has the right size"))
    }

    fn mutex(&self) -> &Mutex<[T]> {
        // SAFETY: the segment keeps `data_offset() + len * size_of::<T>()` payload
        // bytes mapped while `self` lives (checked in `from_segment`); a zeroed or
        // initialised Mutex<[T]> is valid (RawMutex and T: Pod accept any bytes).
        unsafe { self.mutex.as_ref() }
    }

    /// Number of elements (fixed at creation).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Locks the whole array; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// As [`SharedValue::lock`](crate::SharedValue::lock).
    pub fn lock(&self) -> Result<MutexGuard<'_, [T]>, LockError<MutexGuard<'_, [T]>>> {
        self.mutex().lock()
    }

    /// As [`lock`](Self::lock) with a timeout.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::Timeout`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, [T]>, LockError<MutexGuard<'_, [T]>>> {
        self.mutex().lock_timeout(timeout)
    }

    /// Element `index`, read under the lock.
    ///
    /// # Errors
    /// [`ArrayError::OutOfRange`] (checked before locking), or [`ArrayError::Lock`].
    pub fn get(&self, index: usize) -> Result<T, ArrayError<'_, T>> {
        self.check(index)?;
        Ok(self.lock()?[index])
    }

    /// Sets element `index` under the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, index: usize, v: T) -> Result<(), ArrayError<'_, T>> {
        self.check(index)?;
        self.lock()?[index] = v;
        Ok(())
    }

    /// Runs `f` on element `index` under the lock (an atomic read-modify-write).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn update<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, ArrayError<'_, T>> {
        self.check(index)?;
        Ok(f(&mut self.lock()?[index]))
    }

    /// A copy of all elements, taken under the lock.
    ///
    /// # Errors
    /// [`ArrayError::Lock`].
    pub fn copy_to_vec(&self) -> Result<Vec<T>, ArrayError<'_, T>> {
        Ok(self.lock()?.to_vec())
    }

    /// Overwrites all elements from `src` under the lock.
    ///
    /// # Errors
    /// [`ArrayError::OutOfRange`] if `src.len() != len()` (index = `src.len()`), or
    /// [`ArrayError::Lock`].
    pub fn copy_from_slice(&self, src: &[T]) -> Result<(), ArrayError<'_, T>> {
        if src.len() != self.len {
            return Err(ArrayError::OutOfRange {
                index: src.len(),
                len: self.len,
            });
        }
        self.lock()?.copy_from_slice(src);
        Ok(())
    }

    fn check(&self, index: usize) -> Result<(), ArrayError<'_, T>> {
        if index >= self.len {
            return Err(ArrayError::OutOfRange {
                index,
                len: self.len,
            });
        }
        Ok(())
    }

    /// The segment behind the array.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}
