//! [`SharedArray<T>`] (= `multiprocessing.Array`): a fixed-length array of `T` in a
//! segment, behind one process-shared, owner-death-aware mutex.
//!
//! Payload layout (see `docs/layout.md`): the length as a little-endian `u64` at offset
//! 0, then at [`data_offset`] a [`shmkit_sync::Mutex<[T]>`]: the 16-byte lock word,
//! padding to `T`'s alignment, then the elements.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use shmkit_segment::{Segment, SegmentOptions, TypeTag};
use shmkit_sync::{Mutex, RawMutex};

use crate::error::{AccessError, CreateError, IndexError, OpenError};
use crate::family::family_forms;
use crate::peer::in_segment;
use crate::types::{kind, tag_of};
use crate::value::LockResult;

/// Where the `Mutex<[T]>` starts in the payload: 64, or `T`'s alignment if larger.
pub const fn data_offset<T>() -> usize {
    let a = std::mem::align_of::<T>();
    if a > 64 {
        a
    } else {
        64
    }
}

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Bytes taken by a `Mutex<[T]>` of `len` elements (lock word, padding, elements,
/// trailing padding), or `None` on overflow.
pub const fn mutex_size<T>(len: usize) -> Option<usize> {
    let a = std::mem::align_of::<T>();
    let lock = std::mem::size_of::<RawMutex>();
    let struct_align = if a > std::mem::align_of::<RawMutex>() {
        a
    } else {
        std::mem::align_of::<RawMutex>()
    };
    let Some(elems) = len.checked_mul(std::mem::size_of::<T>()) else {
        return None;
    };
    let Some(end) = round_up(lock, a).checked_add(elems) else {
        return None;
    };
    if end > isize::MAX as usize - struct_align {
        return None;
    }
    Some(round_up(end, struct_align))
}

/// A fixed-length array of `T` in shared memory. Made and opened as every object is
/// ([the family](crate::family); `init` is the length); `open(name, len)` also checks
/// the length.
///
/// # Examples
/// ```
/// use shmkit_typed::{OpenError, SharedArray};
///
/// let a = SharedArray::<f64>::anonymous(10)?; // zero-filled, like Array('d', 10)
/// a.set(3, 2.5)?;
/// assert_eq!(a.get(3)?, 2.5);
/// assert!(a.get(10).is_err()); // out of range: an error, not a panic
/// assert_eq!(a.copy_to_vec()?.len(), 10);
///
/// let name = format!("shmkit-doc-array-{}", std::process::id());
/// let b = SharedArray::<i32>::create_from(&name, &[3, 1, 2])?;
/// let c = SharedArray::<i32>::open(&name, 3)?; // as another process would
/// c.update(|xs| xs.sort())?; // one locked step over the whole array
/// assert_eq!(b.copy_to_vec()?, [1, 2, 3]);
/// let wrong = SharedArray::<i32>::open(&name, 4);
/// assert!(matches!(wrong, Err(OpenError::LengthMismatch { expected: 4, found: 3 })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedArray<T: Pod> {
    seg: Segment,
    cell: NonNull<Mutex<[T]>>,
    len: usize,
    _t: PhantomData<T>,
}

// SAFETY: the elements are only reached through the process-shared mutex.
unsafe impl<T: Pod + Send> Send for SharedArray<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for SharedArray<T> {}

impl<T: Pod> crate::family::sealed::Layout for SharedArray<T> {
    type Init = usize;
    const OBJECT: &'static str = "SharedArray";

    fn tag() -> TypeTag {
        tag_of::<T>(kind::SHARED_ARRAY)
    }

    fn payload_size(&len: &usize) -> Result<usize, CreateError> {
        let () = Self::FITS;
        if len == 0 {
            return Err(CreateError::ZeroLength);
        }
        mutex_size::<T>(len)
            .and_then(|m| m.checked_add(data_offset::<T>()))
            .ok_or(CreateError::TooLarge {
                len,
                elem_size: std::mem::size_of::<T>(),
            })
    }

    unsafe fn init_payload(ptr: *mut u8, _plen: usize, len: usize) {
        // SAFETY: the trait's contract: the fresh, zeroed, 128-aligned payload laid out
        // for `len` elements, private to us until READY. The zeroed Mutex<[T]> at
        // data_offset is a valid unlocked mutex over zeroed Pod elements; the length
        // goes at offset 0.
        unsafe { ptr.cast::<u64>().write((len as u64).to_le()) }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        // The length is written before READY and never changes; still, it comes from
        // shared memory, so check it against the real payload before trusting it.
        let name = seg.name().unwrap_or("").to_owned();
        if seg.payload_len() < 8 {
            return Err(OpenError::Corrupt {
                name,
                reason: "payload too small for an array length".into(),
            });
        }
        // SAFETY: the payload is at least 8 bytes (checked) and 128-aligned; a volatile
        // read copies the length without forming a reference.
        let raw_len = u64::from_le(unsafe { seg.payload_ptr().cast::<u64>().read_volatile() });
        let len = usize::try_from(raw_len).ok();
        let fits = len
            .and_then(|l| Self::payload_size(&l).ok())
            .is_some_and(|need| need <= seg.payload_len());
        match len {
            Some(len) if fits => {
                // The payload holds `len` elements (checked just above).
                let cell = Self::cell_at(seg.payload_ptr(), len);
                Ok(SharedArray {
                    seg,
                    cell,
                    len,
                    _t: PhantomData,
                })
            }
            _ => Err(OpenError::Corrupt {
                name,
                reason: format!(
                    "length {raw_len} does not fit its {}-byte payload",
                    seg.payload_len()
                ),
            }),
        }
    }

    fn check_init(&self, &len: &usize) -> Result<(), OpenError> {
        if self.len != len {
            return Err(OpenError::LengthMismatch {
                expected: len,
                found: self.len,
            });
        }
        Ok(())
    }
}

impl<T: Pod> SharedArray<T> {
    const FITS: () = assert!(
        std::mem::align_of::<T>() <= 128,
        "a shared array's element type must have an alignment of at most 128"
    );

    family_forms!(@create len: usize);

    /// Creates the POSIX segment `name` holding a copy of `data`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_from(name: &str, data: &[T]) -> Result<Self, CreateError> {
        Self::create_from_in(Segment::options().posix(name), data)
    }

    /// Creates a copy of `data` in the segment described by `options`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_from_in(options: SegmentOptions, data: &[T]) -> Result<Self, CreateError> {
        use crate::family::sealed::Layout;
        let len = data.len();
        let size = Self::payload_size(&len)?;
        crate::family::create_raw(options, size, |p, plen| {
            // SAFETY: `create_raw` passes the fresh payload of `size` bytes, private to
            // us until READY: laid out as the module describes for `len` elements.
            unsafe {
                Self::init_payload(p, plen, len);
                let m = Self::cell_at(p, len);
                (*m.as_ptr()).get_mut().copy_from_slice(data);
            }
        })
    }

    /// Opens the POSIX segment `name`, which must hold a `SharedArray<T>` of `len`
    /// elements.
    ///
    /// # Errors
    /// [`OpenError::LengthMismatch`], or as [`SharedObject::open`](crate::SharedObject::open).
    pub fn open(name: &str, len: usize) -> Result<Self, OpenError> {
        use crate::family::sealed::Layout;
        let a = Self::open_any_len(name)?;
        a.check_init(&len)?;
        Ok(a)
    }

    /// Opens the POSIX segment `name` holding a `SharedArray<T>` of whatever length
    /// (the family's [`open`](crate::SharedObject::open)).
    ///
    /// # Errors
    /// As [`open`](Self::open), without the length check.
    pub fn open_any_len(name: &str) -> Result<Self, OpenError> {
        <Self as crate::SharedObject>::open(name)
    }

    /// The array's cell in `payload`, laid out as this module describes for `len`
    /// elements (only computes the pointer: dereferencing it is the caller's business).
    fn cell_at(payload: *mut u8, len: usize) -> NonNull<Mutex<[T]>> {
        let start = payload.wrapping_add(data_offset::<T>());
        // A slice-tailed pointer: the cast keeps `len` as the metadata of the
        // unsized Mutex<[T]>.
        let fat = std::ptr::slice_from_raw_parts_mut(start, len) as *mut Mutex<[T]>;
        NonNull::new(fat).expect("a mapped payload is never null")
    }

    fn mutex(&self) -> &Mutex<[T]> {
        // SAFETY: `cell` points into the live mapping owned by `self.seg`, aligned
        // (data_offset is a multiple of T's and the lock's alignment) and initialised
        // before READY; Mutex<[T]> is Sync and hands out the slice only under its lock.
        unsafe { self.cell.as_ref() }
    }

    /// Number of elements (fixed at creation).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: arrays have at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Locks the array; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`](shmkit_sync::LockError::OwnerDied) / [`LockError::Poisoned`](shmkit_sync::LockError::Poisoned) carry the guard.
    pub fn lock(&self) -> LockResult<'_, [T]> {
        in_segment(Some(&self.seg), || self.mutex().lock())
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::Timeout`](shmkit_sync::LockError::Timeout).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, [T]> {
        in_segment(Some(&self.seg), || self.mutex().lock_timeout(timeout))
    }

    /// Locks, waiting until `deadline` at most (an `Instant` too far ahead to reach
    /// means no deadline). See [`Mutex::lock_timeout`](shmkit_sync::Mutex::lock_timeout)
    /// for `_timeout` and `_deadline` side by side.
    ///
    /// # Errors
    /// As [`lock_timeout`](Self::lock_timeout).
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<'_, [T]> {
        in_segment(Some(&self.seg), || self.mutex().lock_deadline(deadline))
    }

    fn check(&self, index: usize) -> Result<(), IndexError> {
        if index < self.len {
            Ok(())
        } else {
            Err(IndexError {
                index,
                len: self.len,
            })
        }
    }

    /// Element `index`, read under the lock.
    ///
    /// # Errors
    /// [`AccessError::OutOfRange`] past the end; [`AccessError::OwnerDied`] /
    /// [`AccessError::Poisoned`] (use [`lock`](Self::lock) to repair).
    pub fn get(&self, index: usize) -> Result<T, AccessError> {
        self.check(index)?;
        Ok(self.lock()?[index])
    }

    /// Sets element `index`, under the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, index: usize, value: T) -> Result<(), AccessError> {
        self.check(index)?;
        self.lock()?[index] = value;
        Ok(())
    }

    /// A copy of every element, taken under the lock (a consistent snapshot).
    ///
    /// # Errors
    /// As [`get`](Self::get), without `OutOfRange`.
    pub fn copy_to_vec(&self) -> Result<Vec<T>, AccessError> {
        Ok(self.lock()?.to_vec())
    }

    /// Overwrites every element from `data`, under the lock.
    ///
    /// # Errors
    /// [`AccessError::WrongLength`] if `data.len() != len()`; lock errors as
    /// [`get`](Self::get).
    pub fn copy_from_slice(&self, data: &[T]) -> Result<(), AccessError> {
        if data.len() != self.len {
            return Err(AccessError::WrongLength {
                expected: self.len,
                found: data.len(),
            });
        }
        self.lock()?.copy_from_slice(data);
        Ok(())
    }

    /// Runs `f` on the whole array under the lock.
    ///
    /// # Errors
    /// As [`copy_to_vec`](Self::copy_to_vec); on an error `f` is not run.
    pub fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, AccessError> {
        let mut guard = self.lock()?;
        Ok(f(&mut guard))
    }

    /// Whether this handle created the segment.
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// The segment holding the array.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment, mutably (e.g. to [`Segment::persist`] it).
    pub fn segment_mut(&mut self) -> &mut Segment {
        &mut self.seg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_helpers_for_c_readers() {
        // What `data_offset`/`mutex_size`'s doc example checked (see docs/layout.md).
        assert_eq!(data_offset::<u32>(), 64);
        assert_eq!(mutex_size::<u32>(10), Some(16 + 40)); // lock word + elements
        assert_eq!(mutex_size::<u64>(usize::MAX), None);
    }

    #[test]
    fn mutex_size_matches_the_compilers_layout() {
        assert_eq!(
            mutex_size::<u8>(5),
            Some(std::mem::size_of::<Mutex<[u8; 5]>>())
        );
        assert_eq!(
            mutex_size::<u64>(3),
            Some(std::mem::size_of::<Mutex<[u64; 3]>>())
        );
        assert_eq!(
            mutex_size::<u16>(1),
            Some(std::mem::size_of::<Mutex<[u16; 1]>>())
        );
        #[derive(Clone, Copy)]
        #[repr(C, align(32))]
        struct Wide([u8; 32]);
        assert_eq!(
            mutex_size::<Wide>(2),
            Some(std::mem::size_of::<Mutex<[Wide; 2]>>())
        );
        assert_eq!(mutex_size::<u64>(usize::MAX), None);
    }

    #[test]
    fn data_offset_respects_alignment() {
        assert_eq!(data_offset::<u8>(), 64);
        #[repr(C, align(128))]
        struct Big(u8);
        assert_eq!(data_offset::<Big>(), 128);
    }
}
