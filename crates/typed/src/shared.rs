//! [`Shared<S>`]: one home in a segment of its own for any `shmkit-sync` object, so
//! unrelated processes open it by name without `unsafe`: [`SharedValue<T>`] (a
//! `Mutex<T>`), [`SharedRwValue<T>`] (an `RwLock<T>`), [`SharedSemaphore`],
//! [`SharedEvent`], [`SharedBarrier`], [`SharedCondvar`].
//!
//! The payload is the object itself at offset 0 (see `docs/layout.md`); the handle
//! derefs to it, so every method of the sync object is there, with its owner-death
//! recovery. The methods that judge a peer's liveness (`lock*`, `read*`, `write*`,
//! `acquire*`, barrier and condvar `wait*`) are also inherent methods of the home,
//! which run them under the segment's pid-namespace rule (see the crate docs); each
//! blocking one has its `_timeout(Duration)` and `_deadline(Instant)` forms (shown side
//! by side at [`Mutex::lock_timeout`]). The constructors are the
//! [family](crate::family)'s: what creating needs is the initial value for the values,
//! and the primitive itself for the others (`SharedSemaphore::create(&name,
//! Semaphore::bounded(2, 2))`).

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use shmkit_segment::{Segment, TypeTag};
use shmkit_sync::{
    Barrier, BarrierError, Condvar, CondvarResult, Event, LockError, Mutex, MutexGuard, RwLock,
    RwLockReadGuard, RwLockResult, RwLockWriteGuard, Semaphore, SemaphoreError, SemaphorePermit,
};

use crate::error::{AccessError, CreateError, OpenError};
use crate::family::family_forms;
use crate::types::{kind, tag_of};
use crate::value::LockResult;

mod private {
    pub trait Sealed {}
}

/// A `shmkit-sync` object that can live alone in a segment, behind [`Shared`]:
/// `Mutex<T>` and `RwLock<T>` of a [`Pod`] `T`, [`Semaphore`], [`Event`], [`Barrier`],
/// [`Condvar`].
pub trait SyncObject: Sync + Sized + private::Sealed {
    /// What creating the object needs: the value for `Mutex<T>`/`RwLock<T>`, the
    /// object itself for the others.
    type Init;
    /// The object's name, as [`Shared`] of it is called (`"SharedSemaphore"`).
    const OBJECT: &'static str;
    /// The type tag of a segment holding it.
    fn tag() -> TypeTag;
    /// The object, ready to be moved into a fresh payload.
    fn make(init: Self::Init) -> Self;
}

impl<T: Pod + Send> private::Sealed for Mutex<T> {}
impl<T: Pod + Send> SyncObject for Mutex<T> {
    type Init = T;
    const OBJECT: &'static str = "SharedValue";
    fn tag() -> TypeTag {
        tag_of::<T>(kind::SHARED_VALUE)
    }
    fn make(init: T) -> Self {
        Mutex::new(init)
    }
}

impl<T: Pod + Send + Sync> private::Sealed for RwLock<T> {}
impl<T: Pod + Send + Sync> SyncObject for RwLock<T> {
    type Init = T;
    const OBJECT: &'static str = "SharedRwValue";
    fn tag() -> TypeTag {
        tag_of::<T>(kind::SHARED_RW_VALUE)
    }
    fn make(init: T) -> Self {
        RwLock::new(init)
    }
}

/// The sync objects that are their own `Init`, tagged with a stable name (not the
/// crate-internal module path, which may move between versions).
macro_rules! plain_object {
    ($ty:ty, $kind:expr, $object:literal, $name:literal) => {
        impl private::Sealed for $ty {}
        impl SyncObject for $ty {
            type Init = $ty;
            const OBJECT: &'static str = $object;
            fn tag() -> TypeTag {
                TypeTag::new(
                    $kind,
                    $name,
                    std::mem::size_of::<$ty>() as u64,
                    std::mem::align_of::<$ty>() as u64,
                )
            }
            fn make(init: $ty) -> Self {
                init
            }
        }
    };
}
plain_object!(
    Semaphore,
    kind::SEMAPHORE,
    "SharedSemaphore",
    "shmkit::Semaphore"
);
plain_object!(Event, kind::EVENT, "SharedEvent", "shmkit::Event");
plain_object!(Barrier, kind::BARRIER, "SharedBarrier", "shmkit::Barrier");
plain_object!(Condvar, kind::CONDVAR, "SharedCondvar", "shmkit::Condvar");

/// A sync object `S` alone in a segment; derefs to `S`, so every method of the
/// sync object is there. Made and opened with [the family](crate::family); see the
/// aliases [`SharedValue`], [`SharedRwValue`], [`SharedSemaphore`], [`SharedEvent`],
/// [`SharedBarrier`], [`SharedCondvar`].
///
/// # Examples
/// Two unrelated processes meet at a named barrier (here a forked child that opens it
/// by name, as a separate program would):
/// ```
/// use shmkit_sync::Barrier;
/// use shmkit_typed::SharedBarrier;
///
/// let name = format!("shmkit-doc-shared-{}", std::process::id());
/// let start = SharedBarrier::create(&name, Barrier::new(2))?;
/// // SAFETY: this example is single-threaded, so the child may run any code.
/// let child = unsafe { libc::fork() };
/// if child == 0 {
///     let ok = SharedBarrier::open(&name).is_ok_and(|b| b.wait().is_ok());
///     // SAFETY: ends the child without running the parent's exit code.
///     unsafe { libc::_exit(if ok { 0 } else { 1 }) }
/// }
/// start.wait()?; // returns once both have arrived
/// let mut status = 0;
/// // SAFETY: `child` is our child's pid; `status` is a valid out-pointer.
/// assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
/// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shared<S: SyncObject> {
    seg: Segment,
    ptr: NonNull<S>,
}

// SAFETY: the handle hands out only `&S`, and `S: Sync` (every sync object serialises
// access across threads as across processes); the segment mapping may move between
// threads.
unsafe impl<S: SyncObject> Send for Shared<S> {}
// SAFETY: as above.
unsafe impl<S: SyncObject> Sync for Shared<S> {}

/// One `T` behind a process-shared, owner-death-aware mutex (=
/// `multiprocessing.Value(lock=True)`): `lock()` (the mutex's, through `Deref`), and
/// `get`/`set`/`update`, each one locked step across processes.
///
/// A holder that dies is recovered as for any [`Mutex`]: `lock()` returns
/// `OwnerDied(guard)` to repair through (the scenario is worked out, with a real
/// process dying, on [`Mutex`]); `get`/`set`/`update` read or write nothing then and
/// report [`AccessError::OwnerDied`](crate::AccessError::OwnerDied), then `Poisoned`
/// until someone repairs.
///
/// # Examples
/// ```
/// use shmkit_typed::SharedValue;
///
/// let name = format!("shmkit-doc-value-{}", std::process::id());
/// let tickets = SharedValue::<u32>::create(&name, 100)?;
/// let other = SharedValue::<u32>::open(&name)?; // as another process would
/// // Read-modify-write in one locked step (Python's `v.value += 1` races; this does not).
/// let mine = other.update(|next| {
///     *next += 1;
///     *next - 1
/// })?;
/// assert_eq!((mine, tickets.get()?), (100, 101));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type SharedValue<T> = Shared<Mutex<T>>;

/// One `T` behind a process-shared reader-writer lock: many readers at once, or one
/// writer; a dead writer is `OwnerDied` to the next writer, a dead reader's read lock
/// is given back (see [`RwLock`], and the dead-holder scenario on [`Mutex`]). Made
/// and opened like every home ([the family](crate::family)).
pub type SharedRwValue<T> = Shared<RwLock<T>>;

/// A named counting semaphore (Python's `multiprocessing.Semaphore` /
/// `BoundedSemaphore`); permits taken with `acquire_permit` come back if their process
/// dies (see [`Semaphore`]).
pub type SharedSemaphore = Shared<Semaphore>;

/// A named event (Python's `multiprocessing.Event`), manual- or auto-reset (see
/// [`Event`]).
pub type SharedEvent = Shared<Event>;

/// A named barrier (Python's `multiprocessing.Barrier`); a party that dies before
/// arriving breaks it (see [`Barrier`], and the example at [`Shared`]).
pub type SharedBarrier = Shared<Barrier>;

/// A named condition variable, used with the guard of a [`SharedValue`] (Python's
/// `multiprocessing.Condition`; see [`Condvar`]).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sync::Condvar;
/// use shmkit_typed::{LockErrorKind, SharedCondvar, SharedValue};
///
/// let name = format!("shmkit-doc-condvar-{}", std::process::id());
/// let jobs = SharedValue::<u32>::create(&format!("{name}-jobs"), 0)?;
/// let more = SharedCondvar::create(&name, Condvar::new())?;
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         jobs.set(1).unwrap();
///         more.notify_all();
///     });
///     let mut guard = jobs.lock()?; // LockError -> LockErrorKind through `?`
///     while *guard == 0 {
///         guard = more.wait_timeout(guard, Duration::from_secs(5))?.0;
///     }
///     assert_eq!(*guard, 1);
///     Ok::<(), LockErrorKind>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type SharedCondvar = Shared<Condvar>;

impl<S: SyncObject> crate::family::sealed::Layout for Shared<S> {
    type Init = S::Init;
    const OBJECT: &'static str = S::OBJECT;

    fn tag() -> TypeTag {
        S::tag()
    }

    fn payload_size(_init: &S::Init) -> Result<usize, CreateError> {
        let () = Self::FITS;
        Ok(std::mem::size_of::<S>())
    }

    unsafe fn init_payload(ptr: *mut u8, len: usize, init: S::Init) {
        debug_assert!(len >= std::mem::size_of::<S>());
        // SAFETY: the trait's contract: a fresh, private payload of at least
        // size_of::<S>() bytes, 128-byte aligned (enough for S: FITS).
        unsafe { ptr.cast::<S>().write(S::make(init)) }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        // The tag (checked) says the payload holds an S, but the header comes from
        // shared memory: check the size before building a reference into it.
        let need = std::mem::size_of::<S>();
        if seg.payload_len() < need {
            return Err(OpenError::Corrupt {
                name: seg.name().unwrap_or("").to_owned(),
                reason: format!(
                    "payload of {} bytes is smaller than the {need} bytes of its {}",
                    seg.payload_len(),
                    S::OBJECT
                ),
            });
        }
        let ptr = NonNull::new(seg.payload_ptr().cast::<S>()).expect("a mapped payload");
        Ok(Shared { seg, ptr })
    }
}

impl<S: SyncObject> Shared<S> {
    const FITS: () = assert!(
        std::mem::align_of::<S>() <= 128,
        "an object in a segment must have an alignment of at most 128 (the payload's)"
    );

    family_forms!(init: S::Init);

    /// Whether this handle created the segment (see
    /// [`open_or_create`](crate::SharedObject::open_or_create)).
    pub fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    /// The segment holding the object.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment, mutably (e.g. to [`Segment::persist`] it).
    pub fn segment_mut(&mut self) -> &mut Segment {
        &mut self.seg
    }
}

impl<S: SyncObject> Deref for Shared<S> {
    type Target = S;

    fn deref(&self) -> &S {
        // SAFETY: `ptr` points into the mapping owned by `self.seg`, which lives as
        // long as `self`; it is 128-byte aligned (FITS), at least size_of::<S>() bytes
        // (checked in from_segment) and holds an S initialised before READY. S is
        // Sync and lets other processes change it only through its atomics and locks.
        unsafe { self.ptr.as_ref() }
    }
}

impl<S: SyncObject> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(S::OBJECT)
            .field("segment", &self.seg.name())
            .finish_non_exhaustive()
    }
}

/// The methods of a sync object that judge whether a peer is alive, as inherent
/// methods of its home (they take precedence over the ones reached through `Deref`):
/// each runs under the segment's pid-namespace probe, so in a segment shared across pid
/// namespaces nobody is declared dead (see the crate docs). Calling the object's own
/// method on `&*home` skips the probe.
macro_rules! probed {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[doc = concat!(
            "The object's `", stringify!($name), "`, with peers' liveness judged as this ",
            "segment allows."
        )]
        ///
        /// # Errors
        /// As the object's method of that name.
        pub fn $name(&self $(, $arg: $ty)*) -> $ret {
            crate::peer::in_segment(Some(&self.seg), || (**self).$name($($arg),*))
        }
    )*};
}

impl<T: Pod + Send> Shared<Mutex<T>> {
    probed! {
        lock() -> LockResult<'_, T>;
        try_lock() -> LockResult<'_, T>;
        lock_timeout(timeout: Duration) -> LockResult<'_, T>;
        lock_deadline(deadline: Instant) -> LockResult<'_, T>;
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// [`AccessError::OwnerDied`] / [`AccessError::Poisoned`] (nothing is read: call
    /// `lock()` to repair the value, see [`AccessError`]), [`AccessError::WouldDeadlock`].
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
}

impl<T: Pod + Send + Sync> Shared<RwLock<T>> {
    probed! {
        read() -> RwLockResult<RwLockReadGuard<'_, T>>;
        try_read() -> RwLockResult<RwLockReadGuard<'_, T>>;
        read_timeout(timeout: Duration) -> RwLockResult<RwLockReadGuard<'_, T>>;
        read_deadline(deadline: Instant) -> RwLockResult<RwLockReadGuard<'_, T>>;
        write() -> RwLockResult<RwLockWriteGuard<'_, T>>;
        try_write() -> RwLockResult<RwLockWriteGuard<'_, T>>;
        write_timeout(timeout: Duration) -> RwLockResult<RwLockWriteGuard<'_, T>>;
        write_deadline(deadline: Instant) -> RwLockResult<RwLockWriteGuard<'_, T>>;
    }

    /// A copy of the value, read under a read lock (other readers may read at once).
    ///
    /// # Errors
    /// As [`SharedValue::get`](Shared::get).
    pub fn get(&self) -> Result<T, AccessError> {
        Ok(*self.read()?)
    }

    /// Replaces the value, under the write lock.
    ///
    /// # Errors
    /// As [`SharedValue::get`](Shared::get); on an error the value is not changed.
    pub fn set(&self, value: T) -> Result<(), AccessError> {
        *self.write()? = value;
        Ok(())
    }

    /// Runs `f` on the value under the write lock. Returns what `f` returns.
    ///
    /// # Errors
    /// As [`SharedValue::get`](Shared::get); on an error `f` is not run.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, AccessError> {
        let mut guard = self.write()?;
        Ok(f(&mut guard))
    }
}

impl Shared<Semaphore> {
    probed! {
        acquire() -> Result<(), SemaphoreError>;
        try_acquire() -> Result<(), SemaphoreError>;
        acquire_timeout(timeout: Duration) -> Result<(), SemaphoreError>;
        acquire_deadline(deadline: Instant) -> Result<(), SemaphoreError>;
        acquire_permit() -> Result<SemaphorePermit<'_>, SemaphoreError>;
        try_acquire_permit() -> Result<SemaphorePermit<'_>, SemaphoreError>;
        acquire_permit_timeout(timeout: Duration) -> Result<SemaphorePermit<'_>, SemaphoreError>;
        acquire_permit_deadline(deadline: Instant) -> Result<SemaphorePermit<'_>, SemaphoreError>;
        acquire_for_process() -> Result<bool, SemaphoreError>;
        try_acquire_for_process() -> Result<bool, SemaphoreError>;
        acquire_for_process_timeout(timeout: Duration) -> Result<bool, SemaphoreError>;
        acquire_for_process_deadline(deadline: Instant) -> Result<bool, SemaphoreError>;
    }
}

impl Shared<Barrier> {
    probed! {
        wait() -> Result<usize, BarrierError>;
        wait_timeout(timeout: Duration) -> Result<usize, BarrierError>;
        wait_deadline(deadline: Instant) -> Result<usize, BarrierError>;
    }
}

impl Shared<Condvar> {
    // The condvar re-locks the guard's mutex (which may live in another segment, e.g. a
    // `SharedValue`'s): that lock's liveness checks run under this segment's probe.

    /// The condvar's `wait`, with the mutex's liveness judged as this segment allows.
    ///
    /// # Errors
    /// As [`Condvar::wait`].
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> CondvarResult<'a, T> {
        crate::peer::in_segment(Some(&self.seg), || (**self).wait(guard))
    }

    /// The condvar's `wait_timeout`, with the mutex's liveness judged as this segment
    /// allows.
    ///
    /// # Errors
    /// As [`Condvar::wait_timeout`].
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        crate::peer::in_segment(Some(&self.seg), || (**self).wait_timeout(guard, timeout))
    }

    /// The condvar's `wait_deadline`, with the mutex's liveness judged as this segment
    /// allows.
    ///
    /// # Errors
    /// As [`Condvar::wait_deadline`].
    pub fn wait_deadline<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        crate::peer::in_segment(Some(&self.seg), || (**self).wait_deadline(guard, deadline))
    }

    /// The condvar's `wait_while`, with the mutex's liveness judged as this segment
    /// allows.
    ///
    /// # Errors
    /// As [`Condvar::wait_while`].
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        condition: impl FnMut(&mut T) -> bool,
    ) -> CondvarResult<'a, T> {
        crate::peer::in_segment(Some(&self.seg), || (**self).wait_while(guard, condition))
    }

    /// The condvar's `wait_timeout_while`, with the mutex's liveness judged as this
    /// segment allows.
    ///
    /// # Errors
    /// As [`Condvar::wait_timeout_while`].
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        crate::peer::in_segment(Some(&self.seg), || {
            (**self).wait_timeout_while(guard, timeout, condition)
        })
    }

    /// The condvar's `wait_deadline_while`, with the mutex's liveness judged as this
    /// segment allows.
    ///
    /// # Errors
    /// As [`Condvar::wait_deadline_while`].
    pub fn wait_deadline_while<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
        condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(MutexGuard<'a, T>, bool), LockError<MutexGuard<'a, T>>> {
        crate::peer::in_segment(Some(&self.seg), || {
            (**self).wait_deadline_while(guard, deadline, condition)
        })
    }
}
