//! The raw lock traits (in the manner of `lock_api`) and the one guard family that
//! [`Mutex`](crate::Mutex) and [`RwLock`](crate::RwLock) hand out.
//!
//! - [`RawLock`]: exclusive `lock` / `try_lock` / `unsafe unlock`, with
//!   [`RawLockTimed`] for deadlines and [`RawLockRepair`] for the owner-death repair
//!   (`make_consistent` / `poison`, refused with [`NotHeld`] unless the caller holds
//!   the lock). [`RawMutex`](crate::RawMutex) implements them, and so does the write
//!   side of [`RawRwLock`](crate::RawRwLock).
//! - [`RawReadLock`]: the shared (read) side of [`RawRwLock`](crate::RawRwLock).
//! - [`LockGuard`]: one guard type for all of them, told apart by how it holds the
//!   lock: [`Exclusive`] (derefs to `&mut T`, may repair) or [`Shared`] (derefs to `&T`).
//!   [`MutexGuard`](crate::MutexGuard), [`RwLockWriteGuard`](crate::RwLockWriteGuard)
//!   and [`RwLockReadGuard`](crate::RwLockReadGuard) are aliases of it.
//!
//! # Example: a guard narrowed to one field with `map`
//! ```
//! use shmkit_sync::{LockError, Mutex, MutexGuard, RwLock, RwLockReadGuard};
//!
//! struct Stats { hits: u64, misses: u64 }
//! let m = Mutex::new(Stats { hits: 0, misses: 0 });
//! // An associated function (not a method), so it never hides a method of the data.
//! let mut hits = MutexGuard::map(m.lock().map_err(LockError::without_guard)?, |s| &mut s.hits);
//! *hits += 1; // still holds the whole mutex; unlocks on drop
//! drop(hits);
//! assert_eq!(m.lock().map_err(LockError::without_guard)?.hits, 1);
//!
//! let l = RwLock::new((1u8, String::from("name")));
//! let name = RwLockReadGuard::map(l.read().map_err(LockError::without_guard)?, |v| &v.1);
//! assert_eq!(&*name, "name");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::{NotHeld, RawLockError};
use crate::futex::Deadline;
use crate::mutex::Acquired;

/// An exclusive lock word that knows its holder and reports a dead one: what
/// [`RawMutex`](crate::RawMutex) and the write side of
/// [`RawRwLock`](crate::RawRwLock) have in common.
///
/// # Safety
/// An implementation must be exclusive: between a successful `lock`/`try_lock` (any
/// [`Acquired`]) and the matching `unlock`, no other thread or process may succeed in
/// taking it (or its shared side, for a reader-writer lock). Guards rely on this to
/// hand out `&mut T`.
///
/// # Examples
/// Code written once for both kinds of raw lock:
/// ```
/// use shmkit_sync::{Acquired, RawLock, RawLockRepair, RawMutex, RawRwLock};
///
/// fn locked_twice<R: RawLock + RawLockRepair>(raw: &R) -> Result<(), Box<dyn std::error::Error>> {
///     if raw.lock()? != Acquired::Consistent {
///         raw.make_consistent()?; // after repairing the data
///     }
///     // SAFETY: this thread holds the lock (taken above) and unlocks it once.
///     unsafe { raw.unlock() };
///     assert_eq!(raw.try_lock()?, Acquired::Consistent);
///     // SAFETY: as above.
///     unsafe { raw.unlock() };
///     Ok(())
/// }
/// locked_twice(&RawMutex::new())?;
/// locked_twice(&RawRwLock::new())?; // its write side
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub unsafe trait RawLock {
    /// Locks, waiting as long as needed; a dead holder is replaced (`OwnerDied`).
    ///
    /// # Errors
    /// `WouldDeadlock` where the lock can tell the caller already holds it;
    /// `Os` if sleeping failed in the kernel.
    fn lock(&self) -> Result<Acquired, RawLockError>;

    /// Locks if that is possible without waiting.
    ///
    /// # Errors
    /// `WouldBlock` if someone (alive) holds it.
    fn try_lock(&self) -> Result<Acquired, RawLockError>;

    /// Unlocks.
    ///
    /// # Safety
    /// The calling thread must hold the lock, and unlock it once per successful lock.
    unsafe fn unlock(&self);
}

/// [`RawLock`]s that wait with a deadline: `lock_until` is the one implementation,
/// `lock_timeout` and `lock_deadline` are provided on top of it.
///
/// # Safety
/// As [`RawLock`]: a successful `lock_until` holds the lock exclusively.
pub unsafe trait RawLockTimed: RawLock {
    /// Locks, waiting until `deadline` at most (`None`: forever).
    ///
    /// # Errors
    /// `Timeout` once the deadline passed; otherwise as [`RawLock::lock`].
    fn lock_until(&self, deadline: Option<&Deadline>) -> Result<Acquired, RawLockError>;

    /// Locks, waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    /// As [`lock_until`](Self::lock_until).
    #[inline]
    fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, RawLockError> {
        self.lock_until(Some(&Deadline::after(timeout)))
    }

    /// Locks, waiting until `deadline` at most (an `Instant` too far ahead to reach
    /// means no deadline).
    ///
    /// # Errors
    /// As [`lock_until`](Self::lock_until).
    #[inline]
    fn lock_deadline(&self, deadline: Instant) -> Result<Acquired, RawLockError> {
        self.lock_until(Some(&Deadline::at(deadline)))
    }
}

/// The owner-death repair of a [`RawLock`]: only the calling thread that holds the
/// (exclusive) lock may mark the data consistent or poisoned; anyone else gets
/// [`NotHeld`] and changes nothing. Guards call these for you
/// ([`LockGuard::make_consistent`]).
pub trait RawLockRepair: RawLock {
    /// Marks the data consistent after `OwnerDied` or `Poisoned`.
    ///
    /// # Errors
    /// [`NotHeld`] if the calling thread does not hold the (exclusive) lock.
    fn make_consistent(&self) -> Result<(), NotHeld>;

    /// Marks the data inconsistent: later holders are told `Poisoned` until one calls
    /// `make_consistent`.
    ///
    /// # Errors
    /// [`NotHeld`] if the calling thread does not hold the (exclusive) lock.
    fn poison(&self) -> Result<(), NotHeld>;

    /// Whether the lock is poisoned (a snapshot).
    fn is_poisoned(&self) -> bool;
}

/// The shared (read) side of a reader-writer lock. A read lock is given back with
/// the [`Ticket`](Self::Ticket) its acquisition returned.
///
/// # Safety
/// While a read lock is held, the exclusive side must not be taken by anyone.
pub unsafe trait RawReadLock {
    /// What a read lock is given back with (for [`RawRwLock`](crate::RawRwLock): the
    /// reader slot it was recorded in).
    type Ticket;

    /// Takes a read lock, waiting until `deadline` at most (`None`: forever).
    ///
    /// # Errors
    /// `Timeout` once the deadline passed; `Os` if sleeping failed in the kernel.
    fn lock_shared_until(
        &self,
        deadline: Option<&Deadline>,
    ) -> Result<(Acquired, Self::Ticket), RawLockError>;

    /// Takes a read lock if that is possible without waiting.
    ///
    /// # Errors
    /// `WouldBlock` if a writer holds or waits for it.
    fn try_lock_shared(&self) -> Result<(Acquired, Self::Ticket), RawLockError>;

    /// Gives a read lock back.
    ///
    /// # Safety
    /// The calling thread must hold the read lock `ticket` came with, and give it back
    /// once.
    unsafe fn unlock_shared(&self, ticket: Self::Ticket);
}

mod sealed {
    pub trait Sealed {}
}

/// How a [`LockGuard`] holds its lock, and what it gives back on drop:
/// [`Exclusive`] or [`Shared`]. Sealed.
pub trait Hold: sealed::Sealed {
    /// Gives the lock back (called once, by the guard's drop).
    #[doc(hidden)]
    fn release(&mut self);
}

/// An exclusive hold of a [`RawLock`] (a [`MutexGuard`](crate::MutexGuard) or
/// [`RwLockWriteGuard`](crate::RwLockWriteGuard)). A holder that panics poisons the
/// lock (as in std), unless it was already panicking when it took the lock.
pub struct Exclusive<'a, R: RawLockRepair> {
    raw: &'a R,
    /// Whether a panic was already in progress when the guard was made.
    panicking: bool,
}

/// A shared hold of a [`RawReadLock`] (a [`RwLockReadGuard`](crate::RwLockReadGuard)).
pub struct Shared<'a, R: RawReadLock> {
    raw: &'a R,
    ticket: ManuallyDrop<R::Ticket>,
}

impl<R: RawLockRepair> sealed::Sealed for Exclusive<'_, R> {}
impl<R: RawReadLock> sealed::Sealed for Shared<'_, R> {}

impl<R: RawLockRepair> Hold for Exclusive<'_, R> {
    #[inline]
    fn release(&mut self) {
        if !self.panicking && std::thread::panicking() {
            // Refused only if this thread does not hold the lock (a guard inherited
            // across fork), and then unlock does nothing either.
            let _ = self.raw.poison();
        }
        // SAFETY: an `Exclusive` exists only while this thread holds the lock (made by
        // `LockGuard::exclusive`'s caller), and `release` is called once, by the drop.
        unsafe { self.raw.unlock() }
    }
}

impl<R: RawReadLock> Hold for Shared<'_, R> {
    #[inline]
    fn release(&mut self) {
        // SAFETY: the ticket is taken exactly once: `release` is called once, by the
        // guard's drop, and nothing else reads it.
        let ticket = unsafe { ManuallyDrop::take(&mut self.ticket) };
        // SAFETY: a `Shared` exists only while this thread holds the read lock that
        // `ticket` came with (see `LockGuard::shared`); given back once, here.
        unsafe { self.raw.unlock_shared(ticket) }
    }
}

/// Access to a locked value; gives the lock back on drop. One type for every guard:
/// `H` is [`Exclusive`] (derefs to `&mut T`; [`make_consistent`](Self::make_consistent))
/// or [`Shared`] (derefs to `&T`). Use it through its aliases
/// [`MutexGuard`](crate::MutexGuard), [`RwLockWriteGuard`](crate::RwLockWriteGuard) and
/// [`RwLockReadGuard`](crate::RwLockReadGuard); see the [module docs](self) for `map`.
///
/// Not `Send`: a lock is owned by the thread that took it.
#[must_use = "the lock is given back as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct LockGuard<'a, H: Hold, T: ?Sized + 'a> {
    hold: H,
    /// The locked data (or, after `map`, a part of it).
    data: NonNull<T>,
    /// Borrows the data mutably for `'a`; not `Send` (the lock belongs to this thread).
    _marker: PhantomData<(&'a mut T, *const ())>,
}

// SAFETY: a shared `&LockGuard` gives only `&T` (and repair calls, which check the
// calling thread), so sharing it needs `T: Sync`; the hold only refers to a `Sync`
// raw lock.
unsafe impl<H: Hold + Sync, T: ?Sized + Sync> Sync for LockGuard<'_, H, T> {}

impl<'a, R: RawLockRepair, T: ?Sized> LockGuard<'a, Exclusive<'a, R>, T> {
    /// A guard for an exclusive lock the caller took.
    ///
    /// # Safety
    /// The calling thread holds `raw` exclusively (a successful `lock`, not yet
    /// unlocked), `raw` protects `data`, and nothing else unlocks it: the guard does.
    #[inline]
    pub(crate) unsafe fn exclusive(raw: &'a R, data: NonNull<T>) -> Self {
        LockGuard {
            hold: Exclusive {
                raw,
                panicking: std::thread::panicking(),
            },
            data,
            _marker: PhantomData,
        }
    }

    /// Marks the data consistent after `OwnerDied` or `Poisoned`: later lockers get
    /// plain guards again. (A guard inherited across `fork` does not hold its
    /// parent's lock: then this does nothing, as its drop does.)
    pub fn make_consistent(&self) {
        // Cannot fail while this thread holds the guard.
        let _ = self.hold.raw.make_consistent();
    }

    /// A guard for a part of the data (a field, an element), still holding the whole
    /// lock. An associated function, `MutexGuard::map(guard, f)`, so that it cannot
    /// hide a method of `T`. If `f` panics, the lock is given back (and poisoned).
    pub fn map<U: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut T) -> &mut U,
    ) -> LockGuard<'a, Exclusive<'a, R>, U> {
        let part = NonNull::from(f(&mut *this));
        let (hold, _) = Self::into_parts(this);
        LockGuard {
            hold,
            data: part,
            _marker: PhantomData,
        }
    }

    /// The raw lock and the data pointer (to lock again after the guard is dropped,
    /// as a condition variable does).
    pub(crate) fn parts(this: &Self) -> (&'a R, NonNull<T>) {
        (this.hold.raw, this.data)
    }
}

impl<'a, R: RawReadLock, T: ?Sized> LockGuard<'a, Shared<'a, R>, T> {
    /// A guard for a read lock the caller took.
    ///
    /// # Safety
    /// The calling thread holds the read lock `ticket` came with, `raw` protects
    /// `data`, and nothing else gives it back: the guard does.
    #[inline]
    pub(crate) unsafe fn shared(raw: &'a R, ticket: R::Ticket, data: NonNull<T>) -> Self {
        LockGuard {
            hold: Shared {
                raw,
                ticket: ManuallyDrop::new(ticket),
            },
            data,
            _marker: PhantomData,
        }
    }

    /// A guard for a part of the data, still holding the read lock. An associated
    /// function, `RwLockReadGuard::map(guard, f)`, so that it cannot hide a method of
    /// `T`.
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&T) -> &U) -> LockGuard<'a, Shared<'a, R>, U> {
        let part = NonNull::from(f(&*this));
        let (hold, _) = Self::into_parts(this);
        LockGuard {
            hold,
            data: part,
            _marker: PhantomData,
        }
    }
}

impl<'a, H: Hold, T: ?Sized> LockGuard<'a, H, T> {
    /// Takes the guard apart without giving the lock back.
    #[inline]
    fn into_parts(this: Self) -> (H, NonNull<T>) {
        let this = ManuallyDrop::new(this);
        // SAFETY: `this` is never dropped or used again, so `hold` is moved out once.
        let hold = unsafe { std::ptr::read(&this.hold) };
        (hold, this.data)
    }
}

impl<H: Hold, T: ?Sized> Deref for LockGuard<'_, H, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock protecting
        // `data` (exclusively, or shared with readers only), so nobody writes it now.
        unsafe { self.data.as_ref() }
    }
}

impl<'a, R: RawLockRepair, T: ?Sized> DerefMut for LockGuard<'a, Exclusive<'a, R>, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held exclusively, so nobody else accesses `data`; `&mut
        // self` makes this the only access through the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<H: Hold, T: ?Sized> Drop for LockGuard<'_, H, T> {
    #[inline]
    fn drop(&mut self) {
        self.hold.release();
    }
}

impl<H: Hold, T: ?Sized + fmt::Debug> fmt::Debug for LockGuard<'_, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<H: Hold, T: ?Sized + fmt::Display> fmt::Display for LockGuard<'_, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::error::Error;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::{
        Acquired, Barrier, BarrierError, Condvar, Event, FileLock, FileLockError, LockError,
        LockErrorKind, LockMode, Mutex, MutexGuard, NamedLock, NamedLockError, NotHeld, RawLock,
        RawLockError, RawLockRepair, RawLockTimed, RawMutex, RawReadLock, RawRwLock, RwLock,
        RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphoreError,
    };

    /// A `Mutex` whose holder thread exited holding it.
    fn mutex_with_dead_holder<T: Send>(m: &Mutex<T>) {
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
    }

    /// Far enough ahead that no wait reaches it (but `Instant` arithmetic still works).
    fn far_future() -> Instant {
        Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
    }

    /// A unique path in the temp directory, removed (file or directory) on drop.
    struct TempPath(std::path::PathBuf);
    impl TempPath {
        fn new(what: &str) -> Self {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            TempPath(std::env::temp_dir().join(format!(
                "shmkit-guard-test-{what}-{}-{n}",
                std::process::id()
            )))
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn map_narrows_a_mutex_guard_which_keeps_the_lock_until_dropped() {
        let m = Mutex::new((1u32, 2u32));
        let mut second = MutexGuard::map(m.lock().unwrap(), |v| &mut v.1);
        *second += 40;
        assert!(m.raw().is_locked());
        assert!(matches!(m.try_lock(), Err(LockError::WouldDeadlock)));
        assert_eq!(format!("{second:?}"), "42");
        drop(second);
        assert!(!m.raw().is_locked());
        assert_eq!(*m.lock().unwrap(), (1, 42));
    }

    #[test]
    fn map_narrows_rwlock_guards() {
        let l = RwLock::new([1u8, 2, 3]);
        let last = RwLockReadGuard::map(l.read().unwrap(), |v| &v[2]);
        assert_eq!(*last, 3);
        assert!(matches!(l.try_write(), Err(LockError::WouldBlock)));
        assert!(l.try_read().is_ok()); // still only a read lock
        drop(last);
        let mut first = RwLockWriteGuard::map(l.write().unwrap(), |v| &mut v[0]);
        *first = 9;
        assert!(matches!(l.try_read(), Err(LockError::WouldBlock)));
        drop(first);
        assert_eq!(*l.read().unwrap(), [9, 2, 3]);
    }

    #[test]
    fn a_mapped_guard_can_repair_after_owner_death() {
        let m = Mutex::new((0u8, 7u8));
        mutex_with_dead_holder(&m);
        let Err(LockError::OwnerDied(g)) = m.lock() else {
            panic!("expected OwnerDied");
        };
        let part = MutexGuard::map(g, |v| &mut v.1);
        part.make_consistent();
        drop(part);
        assert!(!m.is_poisoned());
        assert!(m.lock().is_ok());
    }

    #[test]
    fn a_panic_inside_map_unlocks_and_poisons() {
        let m = Mutex::new(0u8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            MutexGuard::map(m.lock().unwrap(), |_| -> &mut u8 { panic!("in map") })
        }));
        assert!(r.is_err());
        assert!(!m.raw().is_locked());
        assert!(m.lock().is_err_and(|e| e.is_poisoned()));
    }

    #[test]
    fn a_panicking_writer_poisons_the_rwlock_as_a_mutex_holder_does() {
        let l = RwLock::new(0u8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _w = l.write().unwrap();
            panic!("mid-update");
        }));
        assert!(r.is_err());
        assert!(l.is_poisoned());
        let g = l
            .write()
            .unwrap_err()
            .into_guard()
            .expect("Poisoned holds it");
        g.make_consistent();
        drop(g);
        assert!(l.read().is_ok());
    }

    fn locked_via_question_mark(m: &Mutex<u32>) -> Result<u32, Box<dyn Error + Send + Sync>> {
        let g = m.lock().map_err(LockError::without_guard)?;
        Ok(*g)
    }

    fn locked_via_from(m: &Mutex<u32>) -> Result<u32, LockErrorKind> {
        Ok(*m.lock()?)
    }

    #[test]
    fn without_guard_goes_through_question_mark_into_a_boxed_send_sync_error() {
        fn is_static_send_sync_error<E: Error + Send + Sync + 'static>() {}
        is_static_send_sync_error::<LockErrorKind>();

        let m = Mutex::new(5u32);
        assert_eq!(locked_via_question_mark(&m).unwrap(), 5);
        mutex_with_dead_holder(&m);
        let e = locked_via_question_mark(&m).unwrap_err();
        let kind = e.downcast_ref::<LockErrorKind>().expect("a LockErrorKind");
        assert_eq!(*kind, LockErrorKind::OwnerDied);
        assert!(e.to_string().contains("make_consistent"), "{e}");
        // The guard was dropped: unlocked, and (no make_consistent) poisoned.
        assert!(!m.raw().is_locked());
        assert_eq!(locked_via_from(&m), Err(LockErrorKind::Poisoned));
        let held = m.lock().unwrap_err().into_guard().unwrap();
        held.make_consistent();
        assert_eq!(
            m.try_lock().map_err(LockError::without_guard).unwrap_err(),
            LockErrorKind::WouldDeadlock
        );
        drop(held);
        assert_eq!(locked_via_from(&m), Ok(5));
    }

    #[test]
    fn deadline_forms_of_mutex_and_rwlock() {
        let m = Mutex::new(0u8);
        let l = RwLock::new(0u8);
        assert!(m.lock_deadline(far_future()).is_ok()); // far ahead: no deadline
        let held = m.lock().unwrap();
        let w = l.write().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let soon = Instant::now() + Duration::from_millis(10);
                assert!(matches!(m.lock_deadline(soon), Err(LockError::Timeout)));
                assert!(matches!(l.read_deadline(soon), Err(LockError::Timeout)));
                assert!(matches!(l.write_deadline(soon), Err(LockError::Timeout)));
                let past = Instant::now() - Duration::from_millis(1);
                assert!(matches!(m.lock_deadline(past), Err(LockError::Timeout)));
            });
        });
        drop((held, w));
        assert!(l.read_deadline(Instant::now()).is_ok()); // free: no waiting needed
        assert!(l.write_deadline(far_future()).is_ok());
    }

    #[test]
    fn a_far_future_deadline_waits_until_the_lock_is_free() {
        let m = Mutex::new(0u8);
        let waiting = AtomicBool::new(false);
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                waiting.store(true, Ordering::Release);
                m.lock_deadline(far_future()).map(|mut g| *g += 1).is_ok()
            });
            while !waiting.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            drop(g);
            assert!(t.join().unwrap());
        });
        assert_eq!(*m.lock().unwrap(), 1);
    }

    #[test]
    fn raw_traits_for_both_raw_locks() {
        fn exercise<R: RawLockTimed + RawLockRepair>(raw: &R) {
            assert_eq!(raw.poison(), Err(NotHeld));
            assert_eq!(raw.lock_deadline(far_future()), Ok(Acquired::Consistent));
            assert!(raw.try_lock().is_err()); // held: not taken twice
            raw.poison().unwrap();
            // SAFETY: this thread holds the lock.
            unsafe { raw.unlock() };
            assert!(raw.is_poisoned());
            assert_eq!(raw.lock_timeout(Duration::ZERO), Ok(Acquired::Poisoned));
            raw.make_consistent().unwrap();
            // SAFETY: as above.
            unsafe { raw.unlock() };
            assert!(!raw.is_poisoned());
        }
        exercise(&RawMutex::new());
        let rw = RawRwLock::new();
        exercise(&rw);
        let (a, ticket) = rw.try_lock_shared().unwrap();
        assert_eq!(a, Acquired::Consistent);
        assert_eq!(RawLock::try_lock(&rw), Err(RawLockError::WouldBlock));
        // SAFETY: this thread took the read lock just above.
        unsafe { rw.unlock_shared(ticket) };
        assert_eq!(RawLock::try_lock(&rw), Ok(Acquired::Consistent));
        // SAFETY: this thread holds the write lock.
        unsafe { RawLock::unlock(&rw) };
    }

    #[test]
    fn deadline_forms_of_condvar_semaphore_event_barrier() {
        let (m, cv) = (Mutex::new(0u8), Condvar::new());
        let soon = || Instant::now() + Duration::from_millis(10);
        let (g, timed_out) = cv.wait_deadline(m.lock().unwrap(), soon()).unwrap();
        assert!(timed_out);
        let (g, timed_out) = cv.wait_deadline_while(g, soon(), |v| *v == 0).unwrap();
        assert!(timed_out && *g == 0);
        drop(g);

        let sem = Semaphore::new(1);
        let permit = sem.acquire_permit_deadline(far_future()).unwrap();
        assert_eq!(sem.acquire_deadline(soon()), Err(SemaphoreError::Timeout));
        assert_eq!(
            sem.acquire_permit_deadline(soon()).err(),
            Some(SemaphoreError::Timeout)
        );
        drop(permit);
        sem.acquire_deadline(soon()).unwrap();

        let ev = Event::new();
        assert_eq!(ev.wait_deadline(soon()), Ok(false));
        ev.set();
        assert_eq!(ev.wait_deadline(far_future()), Ok(true));

        let b = Barrier::new(2);
        assert_eq!(b.wait_deadline(soon()), Err(BarrierError::Broken));
        b.reset();
        let r = std::thread::scope(|s| {
            let other = s.spawn(|| b.wait_deadline(far_future()));
            (b.wait_deadline(far_future()), other.join().unwrap())
        });
        assert!(r.0.is_ok() && r.1.is_ok());
    }

    #[test]
    fn deadline_forms_of_file_and_named_locks() {
        let path = TempPath::new("file");
        let (a, b) = (
            FileLock::open(&path.0).unwrap(),
            FileLock::open(&path.0).unwrap(),
        );
        let soon = || Instant::now() + Duration::from_millis(10);
        let held = a.lock_deadline(LockMode::Exclusive, far_future()).unwrap();
        assert!(matches!(
            b.lock_deadline(LockMode::Shared, soon()),
            Err(FileLockError::Timeout)
        ));
        drop(held);
        let range = a
            .lock_range_deadline(0, 4, LockMode::Exclusive, soon())
            .unwrap();
        assert!(matches!(
            b.lock_range_deadline(2, 1, LockMode::Shared, soon()),
            Err(FileLockError::Timeout)
        ));
        drop(range);

        let dir = TempPath::new("named");
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir.0)
                .unwrap();
        }
        let first = NamedLock::acquire_in_deadline(&dir.0, "job", far_future()).unwrap();
        let second = std::thread::scope(|s| {
            s.spawn(|| NamedLock::acquire_in_deadline(&dir.0, "job", soon()))
                .join()
                .unwrap()
        });
        assert!(matches!(second, Err(NamedLockError::Timeout(_))));
        drop(first);
        assert!(NamedLock::acquire_in_deadline(&dir.0, "job", soon()).is_ok());
    }

    /// What per-method doc examples checked before they were folded into one example
    /// per type (the rest is covered by the crate's integration tests).
    #[test]
    fn checks_from_the_folded_doc_examples() {
        // Statics: a 'static guard's errors go through `?` as they are.
        static COUNTER: Mutex<u64> = Mutex::new(0);
        static TABLE: RwLock<[u32; 4]> = RwLock::new([0; 4]);
        fn bump() -> Result<(u64, u32), Box<dyn Error>> {
            *COUNTER.lock()? += 1;
            TABLE.write()?[1] = 9;
            let (c, t) = (*COUNTER.lock()?, TABLE.read()?[1]);
            Ok((c, t))
        }
        assert_eq!(bump().unwrap(), (1, 9));

        // `map` and `into_guard` on errors without a guard.
        let m = Mutex::new(0u8);
        let held = m.lock().map_err(LockError::without_guard).unwrap();
        let e: LockError<()> = m.try_lock().map_err(|e| e.map(drop)).unwrap_err();
        assert!(matches!(e, LockError::WouldDeadlock));
        assert!(!e.is_owner_died() && !e.is_poisoned() && e.into_guard().is_none());
        drop(held);

        // A live holder elsewhere: `try_lock` does not wait.
        let raw = RawMutex::new();
        assert_eq!(raw.try_lock(), Ok(Acquired::Consistent));
        let other = std::thread::scope(|s| s.spawn(|| raw.try_lock()).join().unwrap());
        assert_eq!(other, Err(RawLockError::WouldBlock));
        // SAFETY: this thread holds the lock.
        unsafe { raw.unlock() };

        // The rwlock's repair is the writer's alone.
        let rw = RawRwLock::new();
        assert_eq!(rw.make_consistent(), Err(NotHeld));
        rw.write_until(None).unwrap();
        assert_eq!(rw.make_consistent(), Ok(()));
        // SAFETY: this thread holds the write lock.
        unsafe { rw.write_unlock() };

        // Messages say what happened and what to do.
        assert!(NotHeld.to_string().contains("does not hold"));
        let sem = Semaphore::bounded(1, 1);
        let e = sem.release().unwrap_err();
        assert_eq!(e, SemaphoreError::Overflow { max: 1 });
        assert!(e.to_string().contains("released too many times"));
        let e = NamedLock::acquire("no/slashes", Duration::ZERO).unwrap_err();
        assert!(matches!(e, NamedLockError::InvalidName(_)));
        assert!(e.to_string().contains("A-Z a-z 0-9"));
        let e = FileLock::open("/nonexistent-dir/x.lock").unwrap_err();
        assert!(matches!(e, FileLockError::Io { op: "open", .. }));
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));

        // Barrier: `abort` breaks it for everyone until `reset`; `register` is idempotent.
        let b = Barrier::new(3);
        assert!(b.register() && b.register());
        b.abort();
        assert_eq!(b.wait(), Err(BarrierError::Broken));
        b.reset();
        assert!(!b.is_broken());

        // A named lock in a directory of the caller's choosing removes its file on drop.
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("shmkit-unit-locks-{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let guard = NamedLock::acquire_in(&dir, "job-42", Duration::from_secs(1)).unwrap();
        assert_eq!(guard.path(), dir.join("job-42.lock"));
        drop(guard);
        std::fs::remove_dir(&dir).unwrap(); // fails unless the lock file is gone
    }
}
