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
use crate::peer::in_segment;
use crate::types::{kind, tag_of};

/// The result of locking a shared value or array: the guard, or why there is none (or
/// why it comes with a warning: `OwnerDied` and `Poisoned` carry it).
///
/// # Examples
/// ```
/// use shmkit_typed::{LockResult, SharedValue};
///
/// fn locked(v: &SharedValue<u32>) -> LockResult<'_, u32> {
///     v.lock()
/// }
/// let v = SharedValue::<u32>::anonymous(4)?;
/// assert_eq!(*locked(&v).map_err(|e| e.to_string())?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-create-value-{}", std::process::id());
    /// let hits = SharedValue::<u64>::create(&name, 0)?;
    /// // SAFETY: this example is single-threaded, so the child may run any code.
    /// let child = unsafe { libc::fork() };
    /// if child == 0 {
    ///     // The child opens the value by name, as an unrelated process would.
    ///     let ok = SharedValue::<u64>::open(&name).is_ok_and(|v| v.update(|n| *n += 1).is_ok());
    ///     // SAFETY: ends the child without running the parent's exit code.
    ///     unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    /// }
    /// let mut status = 0;
    /// // SAFETY: `child` is our child's pid; `status` is a valid out-pointer.
    /// assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    /// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    /// assert_eq!(hits.get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().posix(name), init)
    }

    /// Creates the value in the segment described by `options` (any backend, mode...).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::Segment;
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-value-in-{}", std::process::id());
    /// let options = Segment::options().posix(&name).mode(0o660); // group may open it
    /// let v = SharedValue::create_in(options, 1.5f64)?;
    /// let opened = SharedValue::<f64>::open_in(Segment::options().posix(&name))?;
    /// assert_eq!(opened.get()?, 1.5);
    /// assert!(v.is_creator() && !opened.is_creator());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_in(options: SegmentOptions, init: T) -> Result<Self, CreateError> {
        let seg = Self::options(options).create_with(Self::init(init))?;
        Ok(Self::from_segment(seg))
    }

    /// A value in anonymous shared memory: shared with children after `fork`.
    ///
    /// # Errors
    /// [`CreateError::Segment`] if memory runs out.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Stats { count: u64, sum: f64 }
    ///
    /// let stats = SharedValue::anonymous(Stats { count: 0, sum: 0.0 })?;
    /// stats.update(|s| { s.count += 1; s.sum += 2.5 })?; // both fields in one step
    /// assert_eq!(stats.get()?, Stats { count: 1, sum: 2.5 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().anonymous(), init)
    }

    /// Opens the POSIX segment `name`, which must hold a `SharedValue<T>`.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] if it holds another type; [`OpenError::Segment`] if it
    /// is missing, not ready in time, or not a shmkit segment.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::{OpenError, SharedValue};
    ///
    /// let name = format!("shmkit-doc-value-{}", std::process::id());
    /// let created = SharedValue::<u64>::create(&name, 7)?; // removes the name on drop
    /// let opened = SharedValue::<u64>::open(&name)?; // as another process would
    /// opened.set(8)?;
    /// assert_eq!(created.get()?, 8);
    /// let wrong = SharedValue::<f64>::open(&name);
    /// assert!(matches!(wrong, Err(OpenError::TypeMismatch { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_in(Segment::options().posix(name))
    }

    /// Opens the value in the segment described by `options`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_segment::Segment;
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-open-in-{}", std::process::id());
    /// let _v = SharedValue::create(&name, 5u16)?;
    /// // Any segment option: here a longer wait for a creator that is still initialising.
    /// let opts = Segment::options().posix(&name).open_timeout(Duration::from_secs(5));
    /// assert_eq!(SharedValue::<u16>::open_in(opts)?.get()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-ooc-value-{}", std::process::id());
    /// let first = SharedValue::<i64>::open_or_create(&name, 10)?;
    /// let second = SharedValue::<i64>::open_or_create(&name, 99)?; // opens: 99 unused
    /// assert!(first.is_creator() && !second.is_creator());
    /// assert_eq!(second.update(|v| { *v -= 1; *v })?, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::{LockError, SharedValue};
    ///
    /// let v = SharedValue::<[u32; 2]>::anonymous([1, 2])?;
    /// let mut guard = match v.lock() {
    ///     Ok(g) => g,
    ///     // A process died holding the lock: repair the value, then mark it consistent.
    ///     Err(LockError::OwnerDied(g)) | Err(LockError::Poisoned(g)) => {
    ///         g.make_consistent();
    ///         g
    ///     }
    ///     Err(e) => return Err(e.to_string().into()),
    /// };
    /// guard.swap(0, 1); // several steps, seen as one by other processes
    /// drop(guard);
    /// assert_eq!(v.get()?, [2, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> LockResult<'_, T> {
        in_segment(Some(&self.seg), || self.mutex().lock())
    }

    /// Locks if free, else [`LockError::WouldBlock`].
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus `WouldBlock`.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::{LockError, SharedValue};
    ///
    /// let v = SharedValue::<u32>::anonymous(0)?;
    /// let held = v.lock().map_err(|e| e.to_string())?;
    /// let busy = std::thread::scope(|s| {
    ///     s.spawn(|| matches!(v.try_lock(), Err(LockError::WouldBlock))).join().unwrap()
    /// });
    /// assert!(busy);
    /// drop(held);
    /// assert_eq!(*v.try_lock().map_err(|e| e.to_string())?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_lock(&self) -> LockResult<'_, T> {
        in_segment(Some(&self.seg), || self.mutex().try_lock())
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), plus [`LockError::Timeout`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmkit_typed::{LockError, SharedValue};
    ///
    /// let v = SharedValue::<u8>::anonymous(1)?;
    /// let held = v.lock().map_err(|e| e.to_string())?;
    /// let timed_out = std::thread::scope(|s| {
    ///     s.spawn(|| matches!(v.lock_timeout(Duration::from_millis(10)), Err(LockError::Timeout)))
    ///         .join()
    ///         .unwrap()
    /// });
    /// assert!(timed_out);
    /// drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, T> {
        in_segment(Some(&self.seg), || self.mutex().lock_timeout(timeout))
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// [`AccessError::OwnerDied`] / [`AccessError::Poisoned`] (nothing is read: use
    /// [`lock`](Self::lock) to repair), [`AccessError::WouldDeadlock`].
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let v = SharedValue::<u8>::anonymous(42)?;
    /// assert_eq!(v.get()?, 42); // a copy, read under the lock
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> Result<T, AccessError> {
        Ok(*self.lock()?)
    }

    /// Replaces the value, under the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get); on an error the value is not changed.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let v = SharedValue::<[f32; 3]>::anonymous([0.0; 3])?;
    /// v.set([1.0, 2.0, 3.0])?; // readers see all three or none
    /// assert_eq!(v.get()?, [1.0, 2.0, 3.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, value: T) -> Result<(), AccessError> {
        *self.lock()? = value;
        Ok(())
    }

    /// Runs `f` on the value under the lock: an atomic read-modify-write across
    /// processes. Returns what `f` returns.
    ///
    /// # Errors
    /// As [`get`](Self::get); on an error `f` is not run.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let tickets = SharedValue::<u32>::anonymous(100)?;
    /// // Read-modify-write in one locked step (Python's `v.value += 1` races; this does not).
    /// let mine = tickets.update(|next| {
    ///     let t = *next;
    ///     *next += 1;
    ///     t
    /// })?;
    /// assert_eq!((mine, tickets.get()?), (100, 101));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, AccessError> {
        let mut guard = self.lock()?;
        Ok(f(&mut guard))
    }

    /// Whether this handle created the segment.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-val-creator-{}", std::process::id());
    /// let a = SharedValue::<u8>::open_or_create(&name, 1)?;
    /// let b = SharedValue::<u8>::open_or_create(&name, 1)?;
    /// assert!(a.is_creator() && !b.is_creator());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// The segment holding the value.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let v = SharedValue::<u64>::anonymous(0)?;
    /// assert!(v.segment().payload_len() >= 16 + 8); // lock word + value
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment, mutably (e.g. to [`Segment::persist`] it).
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::SharedValue;
    ///
    /// let name = format!("shmkit-doc-keep-value-{}", std::process::id());
    /// let mut v = SharedValue::<u64>::create(&name, 3)?;
    /// v.segment_mut().persist(); // outlive this handle (e.g. a service's state)
    /// drop(v);
    /// assert_eq!(SharedValue::<u64>::open(&name)?.get()?, 3);
    /// shmkit_segment::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
/// `RawValue`): each [`get`](Self::get) and [`set`](Self::set) is a copy made of
/// atomic loads or stores, never a plain access to memory other processes write.
///
/// # What a reader sees
/// - A `T` of 1, 2, 4 or 8 bytes (`u8`..`u64`, `f64`, `[u16; 2]`...) is one atomic
///   word (the payload is 128-byte aligned, so it is always aligned to its size): a
///   `get` returns exactly what one `set` wrote, never a mix.
/// - A larger (or odd-sized) `T` is copied in pieces: 8-byte words, then a 4-, 2- and
///   1-byte tail, each piece atomic. While another process `set`s it, a `get` **can
///   tear**: it may return some pieces of one write and some of another (each piece
///   whole). Use [`SharedValue`] (locked) when readers must see whole updates.
/// - Ordering: a `set` is Release and a `get` Acquire (fences around the pieces): if a
///   `get` returns a piece some `set` wrote, whatever the writer did before that `set`
///   is visible after the `get`. So a `RawValue<u32>` works as a "data is ready" flag.
///   Nothing orders the pieces of one value among themselves (that is the tearing).
///
/// Every process uses the same pieces for the same `T` (the type tag pins `T`, and the
/// payload address is 128-aligned everywhere), so the atomics never overlap with
/// different sizes. Access the value through [`as_ptr`](Self::as_ptr) with atomics
/// of the same width too.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use shmkit_typed::RawValue;
///
/// let name = format!("shmkit-doc-raw-value-{}", std::process::id());
/// let flag = RawValue::<u64>::create(&name, 0)?;
/// let seen = RawValue::<u64>::open(&name)?; // as another process would
/// flag.set(5); // one atomic store: no lock, no syscall
/// assert_eq!(seen.get(), 5);
/// // For read-modify-write without a lock, use an atomic through the pointer.
/// // SAFETY: the payload is 128-byte aligned and shared only as a `u64`, accessed
/// // atomically by every user (`get`/`set` included).
/// let counter = unsafe { AtomicU64::from_ptr(seen.as_ptr()) };
/// counter.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(flag.get(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawValue<T: Pod> {
    seg: Segment,
    ptr: NonNull<T>,
}

// SAFETY: RawValue hands out copies only (atomic loads/stores of a Pod `T`, valid for
// any bytes), never references into the shared value; concurrent `get`/`set` from
// several threads are atomic accesses, not data races.
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::RawValue;
    ///
    /// let name = format!("shmkit-doc-raw-create-{}", std::process::id());
    /// let v = RawValue::<i32>::create(&name, -1)?; // removes the name on drop
    /// assert_eq!(v.get(), -1);
    /// assert_eq!(v.segment().name(), Some(name.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str, init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().posix(name), init)
    }

    /// Creates the value in the segment described by `options`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    ///
    /// # Examples
    /// ```
    /// use shmkit_segment::Segment;
    /// use shmkit_typed::RawValue;
    ///
    /// let path = std::env::temp_dir().join(format!("shmkit-doc-raw-file-{}", std::process::id()));
    /// // File-backed: the value survives restarts (opt in to removal here).
    /// let opts = Segment::options().file(&path).unlink_on_drop(true);
    /// let v = RawValue::create_in(opts, 3.25f32)?;
    /// assert_eq!(v.get(), 3.25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::RawValue;
    ///
    /// let flag = RawValue::<u32>::anonymous(0)?; // inherited by children forked later
    /// flag.set(1);
    /// assert_eq!(flag.get(), 1);
    /// assert!(flag.segment().name().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous(init: T) -> Result<Self, CreateError> {
        Self::create_in(Segment::options().anonymous(), init)
    }

    /// Opens the POSIX segment `name`, which must hold a `RawValue<T>`.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] if it holds another type; [`OpenError::Segment`]
    /// otherwise.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::{OpenError, RawValue, SharedValue};
    ///
    /// let name = format!("shmkit-doc-raw-open-{}", std::process::id());
    /// let _v = RawValue::<u64>::create(&name, 9)?;
    /// assert_eq!(RawValue::<u64>::open(&name)?.get(), 9);
    /// // A raw value is not a locked value, even of the same type.
    /// let locked = SharedValue::<u64>::open(&name);
    /// assert!(matches!(locked, Err(OpenError::TypeMismatch { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// A copy of the value: one atomic load for a 1/2/4/8-byte `T`, else a load per
    /// piece, which may be torn while another process `set`s it (see the type's docs).
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::RawValue;
    ///
    /// let v = RawValue::<f64>::anonymous(0.5)?;
    /// assert_eq!(v.get(), 0.5); // one atomic load, no lock
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> T {
        let mut out = T::zeroed();
        // SAFETY: `ptr` points to size_of::<T>() bytes inside the live mapping (checked
        // at open), 128-byte aligned; every process accesses them only atomically with
        // the same pieces (see `pieces`).
        unsafe {
            atomic_load(
                self.ptr.as_ptr().cast::<u8>(),
                bytemuck::bytes_of_mut(&mut out),
            )
        };
        out
    }

    /// Overwrites the value: one atomic store for a 1/2/4/8-byte `T`, else a store
    /// per piece (readers may see it torn; see the type's docs).
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::RawValue;
    ///
    /// let v = RawValue::<[u16; 2]>::anonymous([0, 0])?;
    /// v.set([1, 2]); // 4 bytes: one atomic store, readers see [0, 0] or [1, 2]
    /// assert_eq!(v.get(), [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; any bytes are a valid `T` (Pod).
        unsafe { atomic_store(self.ptr.as_ptr().cast::<u8>(), bytemuck::bytes_of(&value)) }
    }

    /// The raw pointer to the value, for atomics or `ctypes`-style access.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use shmkit_typed::RawValue;
    ///
    /// let v = RawValue::<u32>::anonymous(0)?;
    /// // SAFETY: the value is 4-aligned (the payload is 128-aligned), lives as long as `v`,
    /// // and is only ever accessed atomically from here on.
    /// let a = unsafe { AtomicU32::from_ptr(v.as_ptr()) };
    /// a.fetch_add(2, Ordering::AcqRel);
    /// assert_eq!(a.load(Ordering::Acquire), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The segment holding the value.
    ///
    /// # Examples
    /// ```
    /// use shmkit_typed::RawValue;
    ///
    /// let v = RawValue::<u8>::anonymous(0)?;
    /// assert_eq!(v.segment().payload_len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

/// The pieces a value at `addr` of `len` bytes is copied in: the widest of 8, 4, 2, 1
/// bytes that `addr` is aligned to and that fits in what is left. For the same address
/// alignment and length every process gets the same pieces.
fn pieces(addr: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off == len {
            return None;
        }
        let left = len - off;
        let at = addr + off;
        let width = [8, 4, 2, 1]
            .into_iter()
            .find(|&w| w <= left && at.is_multiple_of(w))
            .expect("width 1 always fits");
        let piece = (off, width);
        off += width;
        Some(piece)
    })
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`, piece by piece
/// (see [`pieces`]), each piece one Relaxed atomic load, then an Acquire fence.
///
/// # Safety
/// `src..src + dst.len()` is readable for the whole call, and other processes and
/// threads access it only atomically, with the same pieces.
unsafe fn atomic_load(src: *const u8, dst: &mut [u8]) {
    use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
    for (off, width) in pieces(src as usize, dst.len()) {
        // SAFETY: `src + off` is inside the readable range (pieces stay within
        // `dst.len()`) and aligned to `width` (pieces chose it so); every access to
        // these bytes is atomic with this width, per the caller's contract. Relaxed:
        // the ordering comes from the fence after the loop.
        unsafe {
            let p = src.add(off).cast_mut();
            let out = &mut dst[off..off + width];
            match width {
                8 => out.copy_from_slice(
                    &AtomicU64::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                4 => out.copy_from_slice(
                    &AtomicU32::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                2 => out.copy_from_slice(
                    &AtomicU16::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                _ => out[0] = AtomicU8::from_ptr(p).load(Ordering::Relaxed),
            }
        }
    }
    // Acquire: pairs with the Release fence in `atomic_store`. If any piece came from a
    // `set`, whatever its writer did before that `set` is visible from here on.
    fence(Ordering::Acquire);
}

/// Copies `src` into shared memory at `dst`: a Release fence, then each piece (see
/// [`pieces`]) one Relaxed atomic store.
///
/// # Safety
/// `dst..dst + src.len()` is writable for the whole call, and other processes and
/// threads access it only atomically, with the same pieces.
unsafe fn atomic_store(dst: *mut u8, src: &[u8]) {
    use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
    // Release: pairs with the Acquire fence in `atomic_load` (see there).
    fence(Ordering::Release);
    for (off, width) in pieces(dst as usize, src.len()) {
        let bytes = &src[off..off + width];
        // SAFETY: as in `atomic_load`: in range, aligned to `width`, only ever accessed
        // atomically with this width. Relaxed: ordered by the fence above.
        unsafe {
            let p = dst.add(off);
            match width {
                8 => AtomicU64::from_ptr(p.cast()).store(
                    u64::from_ne_bytes(bytes.try_into().expect("8 bytes")),
                    Ordering::Relaxed,
                ),
                4 => AtomicU32::from_ptr(p.cast()).store(
                    u32::from_ne_bytes(bytes.try_into().expect("4 bytes")),
                    Ordering::Relaxed,
                ),
                2 => AtomicU16::from_ptr(p.cast()).store(
                    u16::from_ne_bytes(bytes.try_into().expect("2 bytes")),
                    Ordering::Relaxed,
                ),
                _ => AtomicU8::from_ptr(p).store(bytes[0], Ordering::Relaxed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_are_the_widest_aligned_words_that_fit() {
        let p = |addr, len| pieces(addr, len).collect::<Vec<_>>();
        assert_eq!(p(128, 8), [(0, 8)]);
        assert_eq!(p(128, 4), [(0, 4)]);
        assert_eq!(p(128, 2), [(0, 2)]);
        assert_eq!(p(128, 1), [(0, 1)]);
        assert_eq!(p(128, 0), []);
        assert_eq!(p(128, 24), [(0, 8), (8, 8), (16, 8)]);
        assert_eq!(p(128, 13), [(0, 8), (8, 4), (12, 1)]);
        assert_eq!(p(128, 7), [(0, 4), (4, 2), (6, 1)]);
        // An unaligned start (not used by RawValue, whose payload is 128-aligned).
        assert_eq!(p(129, 9), [(0, 1), (1, 2), (3, 4), (7, 2)]);
    }
}
