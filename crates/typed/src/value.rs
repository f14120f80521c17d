//! [`SharedValue<T>`] (Python's `multiprocessing.Value(lock=True)`) and
//! [`RawValue<T>`] (`lock=False`): one `T` in a segment.
//!
//! Layout (see `crates/typed/LAYOUT.md`): a `SharedValue<T>` payload is a
//! [`shmkit_sync::Mutex<T>`]: the 16-byte [`RawMutex`](shmkit_sync::RawMutex) at offset
//! 0, the value at offset `max(16, align_of::<T>())`. A `RawValue<T>` payload is the
//! value alone at offset 0.
//!
//! Every access to a `SharedValue` goes through the lock, so `update(|v| *v += 1)` is
//! an atomic read-modify-write across processes (unlike Python's `v.value += 1`). If
//! a process dies while holding the lock, the next caller gets
//! [`LockError::OwnerDied`] carrying the guard, exactly as with the sync crate's
//! mutex: repair the value if needed and call `make_consistent()` on the guard.

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_segment::{Segment, SegmentOptions, TypeTag};
use shmkit_sync::{LockError, Mutex, MutexGuard};

use crate::types::{kind, tag_of};
use crate::{CreateError, OpenError, OpenOrCreateError};

/// The result of a lock call on a value: the guard, or why not (with the guard when
/// the lock is held anyway).
pub type LockResult<'a, T, R> = Result<R, LockError<MutexGuard<'a, T>>>;

fn check_align<T>() -> Result<(), CreateError> {
    if std::mem::align_of::<T>() > 128 {
        return Err(CreateError::Unsupported {
            what: "element types aligned to more than 128 bytes",
        });
    }
    Ok(())
}

/// Checks the payload of an opened segment is large enough for `needed` bytes.
pub(crate) fn check_payload(seg: &Segment, needed: usize) -> Result<(), OpenError> {
    if seg.payload_len() < needed {
        return Err(OpenError::TooSmall {
            needed,
            found: seg.payload_len(),
        });
    }
    Ok(())
}

/// A `T` behind a process-shared, owner-death-aware mutex in shared memory.
pub struct SharedValue<T: bytemuck::Pod> {
    seg: Segment,
    mutex: NonNull<Mutex<T>>,
}

// SAFETY: the value is reached only through the process-shared mutex; the segment
// handle is Send + Sync.
unsafe impl<T: bytemuck::Pod + Send> Send for SharedValue<T> {}
// SAFETY: as above.
unsafe impl<T: bytemuck::Pod + Send> Sync for SharedValue<T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for SharedValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedValue")
            .field("type", &std::any::type_name::<T>())
            .field("name", &self.seg.name())
            .finish_non_exhaustive()
    }
}

impl<T: bytemuck::Pod> SharedValue<T> {
    /// The type tag recorded in the segment header.
    pub fn type_tag() -> TypeTag {
        tag_of::<T>(kind::VALUE)
    }

    fn options() -> SegmentOptions {
        Segment::options()
            .size(std::mem::size_of::<Mutex<T>>())
            .type_tag(Self::type_tag())
    }

    fn init(init: T) -> impl FnOnce(*mut u8, usize) {
        move |ptr, _len| {
            // SAFETY: the segment layer hands us its fresh payload (128-byte aligned,
            // `size_of::<Mutex<T>>()` bytes), ours alone until READY.
            unsafe { ptr.cast::<Mutex<T>>().write(Mutex::new(init)) }
        }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        check_payload(&seg, std::mem::size_of::<Mutex<T>>())?;
        let mutex =
            NonNull::new(seg.payload_ptr().cast::<Mutex<T>>()).expect("mapped payload is non-null");
        Ok(SharedValue { seg, mutex })
    }

    /// Creates the named value `name` holding `init`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] (name taken, no space, permission...).
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        check_align::<T>()?;
        let seg = Self::options().posix(name).create_with(Self::init(init))?;
        Ok(Self::from_segment(seg).expect("a segment we created has the right size"))
    }

    /// Opens the named value.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] naming both types if it holds another type;
    /// segment errors otherwise.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        // No size: the type tag is checked first, then the payload size.
        let seg = Segment::options()
            .type_tag(Self::type_tag())
            .posix(name)
            .open()?;
        Self::from_segment(seg)
    }

    /// Opens the named value, or creates it holding `init`.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str, init: T) -> Result<Self, OpenOrCreateError> {
        check_align::<T>()?;
        let seg = Self::options()
            .posix(name)
            .open_or_create_with(Self::init(init))?;
        Ok(Self::from_segment(seg)?)
    }

    /// A value in anonymous shared memory, shared with children forked afterwards.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if the memory cannot be mapped.
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        check_align::<T>()?;
        let seg = Self::options().anonymous().create_with(Self::init(init))?;
        Ok(Self::from_segment(seg).expect("a segment we created has the right size"))
    }

    fn mutex(&self) -> &Mutex<T> {
        // SAFETY: the segment keeps the payload mapped while `self` lives; the payload
        // holds a Mutex<T> (initialised by the creator, checked by tag and size), and
        // both RawMutex and T: Pod are valid for any bytes.
        unsafe { self.mutex.as_ref() }
    }

    /// Locks the value; the guard derefs to `T`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] / [`LockError::Poisoned`] (carrying the guard) if a
    /// holder died; [`LockError::WouldDeadlock`] if this thread holds it already.
    pub fn lock(&self) -> LockResult<'_, T, MutexGuard<'_, T>> {
        self.mutex().lock()
    }

    /// As [`lock`](Self::lock), giving up after `timeout` ([`LockError::Timeout`]).
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::Timeout`].
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, T, MutexGuard<'_, T>> {
        self.mutex().lock_timeout(timeout)
    }

    /// Locks only if free now ([`LockError::WouldBlock`] otherwise).
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::WouldBlock`].
    pub fn try_lock(&self) -> LockResult<'_, T, MutexGuard<'_, T>> {
        self.mutex().try_lock()
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn get(&self) -> LockResult<'_, T, T> {
        self.lock().map(|g| *g)
    }

    /// Replaces the value under the lock.
    ///
    /// # Errors
    /// As [`lock`](Self::lock) (the value is not written then).
    pub fn set(&self, v: T) -> LockResult<'_, T, ()> {
        self.lock().map(|mut g| *g = v)
    }

    /// Runs `f` on the value under the lock: an atomic read-modify-write across
    /// processes. Returns what `f` returns.
    ///
    /// # Errors
    /// As [`lock`](Self::lock) (`f` is not run then).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> LockResult<'_, T, R> {
        self.lock().map(|mut g| f(&mut g))
    }

    /// The segment behind the value.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

/// A `T` in shared memory without a lock (Python's `Value(lock=False)` /
/// `RawValue`).
///
/// [`get`](RawValue::get) and [`set`](RawValue::set) copy the value with relaxed
/// atomic loads and stores of its words (8, 4 or 1 bytes each, by size and alignment),
/// so concurrent access is never undefined behaviour; but a value wider than one word
/// may be *torn* (mixing two writes) when read while another process writes it. Use
/// [`SharedValue`] when that matters. A `T` of exactly 8 (or 4) bytes, aligned as
/// such, is read and written atomically.
pub struct RawValue<T: bytemuck::Pod> {
    seg: Segment,
    ptr: NonNull<T>,
}

// SAFETY: access goes through atomic word copies; the segment handle is Send + Sync.
unsafe impl<T: bytemuck::Pod> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: bytemuck::Pod> Sync for RawValue<T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawValue")
            .field("type", &std::any::type_name::<T>())
            .field("name", &self.seg.name())
            .finish_non_exhaustive()
    }
}

/// Copies `n` bytes between shared memory and a local, word by word with relaxed
/// atomics. `shared` is the side in shared memory.
///
/// # Safety
/// Both pointers valid for `n` bytes and aligned to `word`; `n` a multiple of `word`.
unsafe fn atomic_copy(src: *const u8, dst: *mut u8, n: usize, word: usize) {
    use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
    let mut i = 0;
    while i < n {
        // SAFETY: `i + word <= n`, both sides valid and `word`-aligned (caller); the
        // shared side is accessed only atomically, the local side is ours.
        unsafe {
            match word {
                8 => AtomicU64::from_ptr(dst.add(i).cast()).store(
                    AtomicU64::from_ptr(src.add(i) as *mut u64).load(Relaxed),
                    Relaxed,
                ),
                4 => AtomicU32::from_ptr(dst.add(i).cast()).store(
                    AtomicU32::from_ptr(src.add(i) as *mut u32).load(Relaxed),
                    Relaxed,
                ),
                _ => AtomicU8::from_ptr(dst.add(i)).store(
                    AtomicU8::from_ptr(src.add(i) as *mut u8).load(Relaxed),
                    Relaxed,
                ),
            }
        }
        i += word;
    }
}

fn word_of<T>() -> usize {
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    if align >= 8 && size % 8 == 0 {
        8
    } else if align >= 4 && size % 4 == 0 {
        4
    } else {
        1
    }
}

impl<T: bytemuck::Pod> RawValue<T> {
    /// The type tag recorded in the segment header.
    pub fn type_tag() -> TypeTag {
        tag_of::<T>(kind::RAW_VALUE)
    }

    fn options() -> SegmentOptions {
        Segment::options()
            .size(std::mem::size_of::<T>().max(1))
            .type_tag(Self::type_tag())
    }

    fn init(init: T) -> impl FnOnce(*mut u8, usize) {
        move |ptr, _len| {
            // SAFETY: the fresh payload (128-byte aligned, size_of::<T>() bytes) is
            // ours alone until READY.
            unsafe { ptr.cast::<T>().write(init) }
        }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        check_payload(&seg, std::mem::size_of::<T>())?;
        let ptr = NonNull::new(seg.payload_ptr().cast::<T>()).expect("mapped payload is non-null");
        Ok(RawValue { seg, ptr })
    }

    /// Creates the named raw value `name` holding `init`.
    ///
    /// # Errors
    /// [`CreateError::Segment`].
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        check_align::<T>()?;
        let seg = Self::options().posix(name).create_with(Self::init(init))?;
        Ok(Self::from_segment(seg).expect("a segment we created has the right size"))
    }

    /// Opens the named raw value.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] for another type; segment errors otherwise.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::from_segment(
            Segment::options()
                .type_tag(Self::type_tag())
                .posix(name)
                .open()?,
        )
    }

    /// A raw value in anonymous shared memory, shared with children forked afterwards.
    ///
    /// # Errors
    /// [`CreateError::Segment`].
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        check_align::<T>()?;
        let seg = Self::options().anonymous().create_with(Self::init(init))?;
        Ok(Self::from_segment(seg).expect("a segment we created has the right size"))
    }

    /// A copy of the value (may be torn if wider than a word and written concurrently).
    pub fn get(&self) -> T {
        let mut out = <T as bytemuck::Zeroable>::zeroed();
        // SAFETY: the payload holds size_of::<T>() bytes aligned for T (>= word);
        // `out` is a local T; n is a multiple of the word by construction.
        unsafe {
            atomic_copy(
                self.ptr.as_ptr() as *const u8,
                (&mut out as *mut T).cast(),
                std::mem::size_of::<T>(),
                word_of::<T>(),
            )
        };
        out
    }

    /// Stores `v` (word by word).
    pub fn set(&self, v: T) {
        // SAFETY: as in `get`, the other way round.
        unsafe {
            atomic_copy(
                (&v as *const T).cast(),
                self.ptr.as_ptr().cast(),
                std::mem::size_of::<T>(),
                word_of::<T>(),
            )
        };
    }

    /// Pointer to the value in shared memory, for atomics or foreign code.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The segment behind the value.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}
