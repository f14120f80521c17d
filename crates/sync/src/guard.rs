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
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use shmkit_sync::{RawLock, RawLockError, RawLockTimed, RawMutex};
///
/// let raw = RawMutex::new();
/// RawLockTimed::lock_deadline(&raw, Instant::now() + Duration::from_secs(1))?;
/// let r = std::thread::scope(|s| {
///     s.spawn(|| raw.lock_deadline(Instant::now() + Duration::from_millis(10))).join().unwrap()
/// });
/// assert_eq!(r, Err(RawLockError::Timeout));
/// // SAFETY: this thread holds the lock.
/// unsafe { RawLock::unlock(&raw) };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// # Examples
/// ```
/// use shmkit_sync::{Acquired, NotHeld, RawLock, RawLockRepair, RawRwLock};
///
/// let raw = RawRwLock::new();
/// assert_eq!(RawLockRepair::poison(&raw), Err(NotHeld)); // not held: refused
/// raw.lock()?; // the write side
/// RawLockRepair::poison(&raw)?; // e.g. an update failed half-way
/// // SAFETY: this thread holds the write lock.
/// unsafe { RawLock::unlock(&raw) };
/// assert_eq!(raw.lock()?, Acquired::Poisoned);
/// RawLockRepair::make_consistent(&raw)?;
/// // SAFETY: as above.
/// unsafe { RawLock::unlock(&raw) };
/// assert!(!RawLockRepair::is_poisoned(&raw));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
/// # Examples
/// ```
/// use shmkit_sync::{RawLockError, RawReadLock, RawRwLock};
///
/// let raw = RawRwLock::new();
/// let (_, a) = raw.try_lock_shared()?;
/// let (_, b) = raw.lock_shared_until(None)?; // readers share
/// assert_eq!(raw.try_write(), Err(RawLockError::WouldBlock));
/// // SAFETY: this thread took both read locks above; each is given back once.
/// unsafe { raw.unlock_shared(a); raw.unlock_shared(b) };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// # Examples
/// ```
/// use shmkit_sync::{LockError, Mutex};
///
/// let m = Mutex::new([0u8; 4]);
/// {
///     let mut g = m.lock().map_err(LockError::without_guard)?; // derefs to the data
///     g[0] = 1;
///     g[3] = 4;
/// } // dropping the guard unlocks
/// assert_eq!(*m.try_lock().map_err(LockError::without_guard)?, [1, 0, 0, 4]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::{LockError, Mutex};
    ///
    /// let m = Mutex::new(10u32);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let mut g = m.lock().unwrap();
    ///         *g = 999; // a half-done update...
    ///         std::mem::forget(g); // ...and the holder dies
    ///     });
    /// });
    /// if let Err(LockError::OwnerDied(mut g)) = m.lock() {
    ///     *g = 10; // repair from what we know
    ///     g.make_consistent(); // later lockers get plain guards again
    /// }
    /// assert_eq!(*m.lock().map_err(LockError::without_guard)?, 10);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
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
