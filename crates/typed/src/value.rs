//! [`SharedValue<T>`] (= `multiprocessing.Value(lock=True)`) and [`RawValue<T>`]
//! (= `Value(lock=False)`): one `T` in a segment.
//!
//! `SharedValue<T>`'s payload is a [`shmkit_sync::Mutex<T>`]: a 16-byte robust lock word
//! followed by the value (see `docs/layout.md`). Every access goes through the lock, so
//! `update(|v| *v += 1)` is one atomic read-modify-write across processes (unlike
//! Python's `v.value += 1`, which races). If a process dies while holding the lock, the
//! next locker gets [`LockError::OwnerDied`] with the guard, as in the sync crate.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;
use shmkit_segment::{Segment, SegmentOptions};
use shmkit_sync::{LockError, Mutex, MutexGuard};

use crate::error::{AccessError, CreateError, OpenError, OpenOrCreateError};
use crate::types::{kind, tag_of};

/// The result of locking a shared value or array: the guard, or why there is none (or
/// why it comes with a warning: `OwnerDied` and `Poisoned` carry it).
pub type LockResult<'a, T> = Result<MutexGuard<'a, T>, LockError<MutexGuard<'a, T>>>;

/// One `T` in shared memory behind a process-shared, owner-death-aware mutex.
///
/// # Examples
/// ```
/// use shmkit_typed::SharedValue;
/// let counter = SharedValue::<u64>::anonymous(0)?; // inherited by forked children
/// counter.update(|v| *v += 1)?;
/// assert_eq!(counter.get()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedValue<T: Pod> {
    seg: Segment,
    cell: NonNull<Mutex<T>>,
    _t: PhantomData<T>,
}

// SAFETY: the value is only reached through the process-shared mutex, which serialises
// access across threads as across processes; `T: Send` because a value set by one
// thread is read by another.
unsafe impl<T: Pod + Send> Send for SharedValue<T> {}
// SAFETY: as above: `&SharedValue` only hands out `T` through the mutex.
unsafe impl<T: Pod + Send> Sync for SharedValue<T> {}

impl<T: Pod> SharedValue<T> {
    const FITS: () = assert!(
        std::mem::align_of::<Mutex<T>>() <= 128,
        "a shared value's type must have an alignment of at most 128 (the payload's)"
    );

    fn options(options: SegmentOptions) -> SegmentOptions {
        let () = Self::FITS;
        options
            .size(std::mem::size_of::<Mutex<T>>())
            .type_tag(tag_of::<T>(kind::SHARED_VALUE))
    }

    fn init(init: T) -> impl FnOnce(*mut u8, usize) {
        move |p, len| {
            assert!(len >= std::mem::size_of::<Mutex<T>>());
            // SAFETY: `p` is the fresh, 128-byte aligned payload of at least
            // size_of::<Mutex<T>>() bytes (asserted), not yet visible to other
            // processes (READY is published after this closure returns).
            unsafe { p.cast::<Mutex<T>>().write(Mutex::new(init)) }
        }
    }

    /// Creates the POSIX segment `name` holding `init`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if the name is taken or invalid, or memory runs out.
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().posix(name), init)
    }

    /// Creates the value in the segment described by `options` (any backend, mode...).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_in(options: SegmentOptions, init: T) -> Result<Self, CreateError> {
        let seg = Self::options(options).create_with(Self::init(init))?;
        Ok(Self::from_segment(seg))
    }

    /// A value in anonymous shared memory: shared with children after `fork`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if memory runs out.
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().anonymous(), init)
    }

    /// Opens the POSIX segment `name`, which must hold a `SharedValue<T>`.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] if it holds another type; [`OpenError::Segment`] if it
    /// is missing, not ready in time, or not a shmkit segment.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_in(Segment::options().posix(name))
    }

    /// Opens the value in the segment described by `options`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_in(options: SegmentOptions) -> Result<Self, OpenError> {
        // No `.size()` here: the type tag is checked first (a clearer error than a size
        // mismatch), and the payload size after.
        let seg = options.type_tag(tag_of::<T>(kind::SHARED_VALUE)).open()?;
        check_fits(&seg, std::mem::size_of::<Mutex<T>>())?;
        Ok(Self::from_segment(seg))
    }

    /// Opens `name`, or creates it holding `init` if it does not exist. Of several
    /// processes racing, exactly one creates; see [`is_creator`](Self::is_creator).
    ///
    /// # Errors
    /// [`OpenOrCreateError::Create`] or [`OpenOrCreateError::Open`] (as
    /// [`create`](Self::create) and [`open`](Self::open)).
    pub fn open_or_create(name: &str, init: T) -> Result<Self, OpenOrCreateError> {
        let seg =
            Self::options(Segment::options().posix(name)).open_or_create_with(Self::init(init))?;
        Ok(Self::from_segment(seg))
    }

    fn from_segment(seg: Segment) -> Self {
        // The segment layer validated the type tag and payload size against the header
        // and the mapping, so the payload holds an initialised Mutex<T>.
        let cell = NonNull::new(seg.payload_ptr().cast::<Mutex<T>>())
            .expect("a mapped payload is never null");
        SharedValue {
            seg,
            cell,
            _t: PhantomData,
        }
    }

    fn mutex(&self) -> &Mutex<T> {
        // SAFETY: `cell` points into `self.seg`'s mapping, which lives as long as `self`,
        // is aligned for Mutex<T> (payload is 128-aligned, FITS) and was initialised by
        // the creator before READY. Mutex<T> is Sync and only hands out T under its lock.
        unsafe { self.cell.as_ref() }
    }

    /// Locks the value; the guard derefs to `T`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] / [`LockError::Poisoned`] carry the guard (the lock is
    /// held; the value may need repair; see the sync crate).
    pub fn lock(&self) -> LockResult<'_, T> {
        self.mutex().lock()
    }

    /// Locks if free, else [`LockError::WouldBlock`].
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus `WouldBlock`.
    pub fn try_lock(&self) -> LockResult<'_, T> {
        self.mutex().try_lock()
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::Timeout`].
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, T> {
        self.mutex().lock_timeout(timeout)
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// [`AccessError::OwnerDied`] / [`AccessError::Poisoned`] (nothing is read: use
    /// [`lock`](Self::lock) to repair), [`AccessError::WouldDeadlock`].
    pub fn get(&self) -> Result<T, AccessError> {
        Ok(*self.lock()?)
    }

    /// Replaces the value, under the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get); on an error the value is not changed.
    pub fn set(&self, value: T) -> Result<(), AccessError> {
        *self.lock()? = value;
        Ok(())
    }

    /// Runs `f` on the value under the lock: an atomic read-modify-write across
    /// processes. Returns what `f` returns.
    ///
    /// # Errors
    /// As [`get`](Self::get); on an error `f` is not run.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, AccessError> {
        let mut guard = self.lock()?;
        Ok(f(&mut guard))
    }

    /// Whether this handle created the segment.
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// The segment holding the value.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment, mutably (e.g. to [`Segment::persist`] it).
    pub fn segment_mut(&mut self) -> &mut Segment {
        &mut self.seg
    }
}

/// An opened payload must hold `need` bytes; the header said so, but it comes from
/// shared memory, so check before building a reference into it.
fn check_fits(seg: &Segment, need: usize) -> Result<(), OpenError> {
    if seg.payload_len() >= need {
        Ok(())
    } else {
        Err(OpenError::Corrupt {
            name: seg.name().unwrap_or("").to_owned(),
            reason: format!(
                "payload of {} bytes is smaller than the {need} bytes its type needs",
                seg.payload_len()
            ),
        })
    }
}

/// One `T` in shared memory without a lock (= `multiprocessing.Value(lock=False)` /
/// `RawValue`): each [`get`](Self::get) and [`set`](Self::set) is one volatile copy.
///
/// A value wider than the machine's atomic width may be read torn while another process
/// writes it; use [`SharedValue`] when readers must see whole updates.
pub struct RawValue<T: Pod> {
    seg: Segment,
    ptr: NonNull<T>,
}

// SAFETY: RawValue hands out copies only (volatile reads/writes of a Pod `T`, valid
// for any bytes), never references into the shared value.
unsafe impl<T: Pod + Send> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for RawValue<T> {}

impl<T: Pod> RawValue<T> {
    const FITS: () = assert!(
        std::mem::align_of::<T>() <= 128,
        "a raw value's type must have an alignment of at most 128 (the payload's)"
    );

    fn options(options: SegmentOptions) -> SegmentOptions {
        let () = Self::FITS;
        options
            .size(std::mem::size_of::<T>().max(1))
            .type_tag(tag_of::<T>(kind::RAW_VALUE))
    }

    /// Creates the POSIX segment `name` holding `init`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if the name is taken or invalid, or memory runs out.
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().posix(name), init)
    }

    /// Creates the value in the segment described by `options`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_in(options: SegmentOptions, init: T) -> Result<Self, CreateError> {
        let seg = Self::options(options).create_with(|p, len| {
            assert!(len >= std::mem::size_of::<T>());
            // SAFETY: the fresh payload is 128-aligned (FITS) and at least size_of::<T>()
            // bytes (asserted), not yet visible to other processes.
            unsafe { p.cast::<T>().write(init) }
        })?;
        Ok(Self::from_segment(seg))
    }

    /// A value in anonymous shared memory: shared with children after `fork`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if memory runs out.
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().anonymous(), init)
    }

    /// Opens the POSIX segment `name`, which must hold a `RawValue<T>`.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] if it holds another type; [`OpenError::Segment`]
    /// otherwise.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        let seg = Segment::options()
            .posix(name)
            .type_tag(tag_of::<T>(kind::RAW_VALUE))
            .open()?;
        check_fits(&seg, std::mem::size_of::<T>())?;
        Ok(Self::from_segment(seg))
    }

    fn from_segment(seg: Segment) -> Self {
        let ptr =
            NonNull::new(seg.payload_ptr().cast::<T>()).expect("a mapped payload is never null");
        RawValue { seg, ptr }
    }

    /// A copy of the value (one volatile read; may be torn if another process writes
    /// concurrently and `T` is wider than an atomic word).
    pub fn get(&self) -> T {
        // SAFETY: `ptr` is aligned, inside the live mapping, and any bytes are a valid
        // `T` (Pod); a volatile read forms no reference to memory others write.
        unsafe { self.ptr.as_ptr().read_volatile() }
    }

    /// Overwrites the value (one volatile write).
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; writing a Pod value cannot break any invariant.
        unsafe { self.ptr.as_ptr().write_volatile(value) }
    }

    /// The raw pointer to the value, for atomics or `ctypes`-style access.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The segment holding the value.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}
