//! Error types, one per operation family.

use std::fmt;
use std::io;

use shmkit_sys::OsError;

/// Why a [`Mutex`](crate::Mutex) lock call did not return a plain guard.
///
/// `OwnerDied` and `Poisoned` still carry the guard: the lock *is* held, and the caller
/// decides whether the protected data can be trusted. Written by hand rather than with
/// `thiserror` so that `Display`, `Debug` and `Error` do not require `G: Debug`. A guard
/// borrows its lock, so the error is not `'static`: for `?` into
/// `Box<dyn Error + Send + Sync>`, use [`without_guard`](Self::without_guard) (or `?`
/// into a [`LockErrorKind`]).
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous holder died while holding the lock (the process was killed, or the
    /// thread exited without unlocking). The lock is now held by the caller; repair
    /// the data and call `make_consistent()` on the guard, or drop the guard to leave
    /// the lock poisoned.
    OwnerDied(G),
    /// An earlier holder died (or panicked) and nobody marked the data consistent. The
    /// lock is held by the caller; call `make_consistent()` once the data is repaired.
    Poisoned(G),
    /// The timeout passed before the lock became free.
    Timeout,
    /// `try_lock`: the lock is held by someone else.
    WouldBlock,
    /// The calling thread already holds this lock; waiting would never end.
    WouldDeadlock,
    /// Sleeping on the lock failed in the kernel (`futex(2)` returned an unexpected
    /// error such as `EFAULT`, `EINVAL` or `ENOSYS`). The lock was *not* taken. Retrying
    /// is unlikely to help: the lock's memory is not usable as a futex word (unmapped,
    /// misaligned) or the system lacks futexes. The [`OsError`] (an `io::Error`) is the source.
    Os(OsError),
}

impl<G> LockError<G> {
    /// The guard, for `OwnerDied` and `Poisoned`.
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) | LockError::Poisoned(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is `OwnerDied`.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Whether this is `Poisoned`.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, LockError::Poisoned(_))
    }

    /// Applies `f` to the carried guard, if any.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Poisoned(g) => LockError::Poisoned(f(g)),
            LockError::Timeout => LockError::Timeout,
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::WouldDeadlock => LockError::WouldDeadlock,
            LockError::Os(e) => LockError::Os(e),
        }
    }

    /// The error without its guard: a `'static + Send + Sync` [`LockErrorKind`] that
    /// goes through `?` into `Box<dyn Error + Send + Sync>`.
    ///
    /// For `OwnerDied` and `Poisoned` this **drops the guard, which unlocks**: after
    /// `OwnerDied` the lock is then left poisoned (nobody called `make_consistent()`), so
    /// the next holder is told `Poisoned`. Use it where the caller gives up on such a
    /// lock anyway; match the error first where it should repair the data.
    ///
    /// # Examples
    /// ```
    /// use shmkit_sync::{LockError, LockErrorKind, Mutex};
    ///
    /// fn bump(m: &Mutex<u32>) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    ///     let mut g = m.lock().map_err(LockError::without_guard)?;
    ///     *g += 1;
    ///     Ok(*g)
    /// }
    /// let m = Mutex::new(0);
    /// assert_eq!(bump(&m)?, 1);
    /// let held = m.lock().map_err(LockError::without_guard)?;
    /// let e = m.try_lock().map_err(LockErrorKind::from).unwrap_err(); // `From` too
    /// assert_eq!(e, LockErrorKind::WouldDeadlock);
    /// drop(held);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn without_guard(self) -> LockErrorKind {
        match self {
            LockError::OwnerDied(_) => LockErrorKind::OwnerDied,
            LockError::Poisoned(_) => LockErrorKind::Poisoned,
            LockError::Timeout => LockErrorKind::Timeout,
            LockError::WouldBlock => LockErrorKind::WouldBlock,
            LockError::WouldDeadlock => LockErrorKind::WouldDeadlock,
            LockError::Os(e) => LockErrorKind::Os(e),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            LockError::OwnerDied(_) => "OwnerDied",
            LockError::Poisoned(_) => "Poisoned",
            LockError::Timeout => "Timeout",
            LockError::WouldBlock => "WouldBlock",
            LockError::WouldDeadlock => "WouldDeadlock",
            LockError::Os(_) => "Os",
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) | LockError::Poisoned(_) => {
                write!(f, "{}(..)", self.name())
            }
            LockError::Os(e) => f.debug_tuple("Os").field(e).finish(),
            _ => f.write_str(self.name()),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockError::OwnerDied(_) => {
                "the previous lock holder died while holding the lock; the lock is now held: \
                 repair the protected data and call make_consistent() on the guard"
            }
            LockError::Poisoned(_) => {
                "the lock is poisoned: an earlier holder died or panicked and nobody marked \
                 the data consistent; the lock is held: repair the data and call make_consistent()"
            }
            LockError::Timeout => {
                "timed out waiting for the lock; retry or give up (in memory shared across pid \
                 namespaces a holder that died is never detected, so it also looks like this)"
            }
            LockError::WouldBlock => "the lock is held by someone else (try_lock did not wait)",
            LockError::WouldDeadlock => {
                "the calling thread already holds this lock; drop the first guard before locking again"
            }
            LockError::Os(_) => OS_WAIT_FAILED,
        })
    }
}

impl<G> std::error::Error for LockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// A [`LockError`] without its guard (see [`LockError::without_guard`], which drops
/// the guard and so unlocks): `'static + Send + Sync`, so it goes through `?` into
/// `Box<dyn Error + Send + Sync>`. `From<LockError<G>>` makes plain `?` work in
/// functions returning it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockErrorKind {
    /// The previous holder died holding the lock. The guard that came with the error
    /// was dropped, which unlocked the lock and left it poisoned.
    #[error(
        "the previous lock holder died while holding the lock; the guard was dropped, so the \
         lock is free again but poisoned: lock it again, repair the data and call \
         make_consistent() on the guard"
    )]
    OwnerDied,
    /// The lock is poisoned; the guard that came with the error was dropped (unlocked).
    #[error(
        "the lock is poisoned (an earlier holder died or panicked and nobody marked the data \
         consistent); the guard was dropped: lock it again, repair the data and call \
         make_consistent() on the guard"
    )]
    Poisoned,
    /// The timeout passed before the lock became free.
    #[error("timed out waiting for the lock; retry or give up")]
    Timeout,
    /// A `try_` call: the lock is held by someone else.
    #[error("the lock is held by someone else (try_lock did not wait)")]
    WouldBlock,
    /// The calling thread already holds this lock.
    #[error(
        "the calling thread already holds this lock; drop the first guard before locking again"
    )]
    WouldDeadlock,
    /// Sleeping on the lock failed in the kernel; see [`LockError::Os`].
    #[error("{OS_WAIT_FAILED}")]
    Os(#[source] OsError),
}

impl<G> From<LockError<G>> for LockErrorKind {
    fn from(e: LockError<G>) -> Self {
        e.without_guard()
    }
}

/// The message of every `Os` variant: what failed, what it means, what to do.
const OS_WAIT_FAILED: &str = "sleeping on the shared-memory word failed in the kernel \
     (futex); the wait was abandoned and nothing was acquired: the memory is not usable \
     as a futex word (unmapped, misaligned?) or the system lacks futexes";

/// Errors of [`RawMutex`](crate::RawMutex) and [`RawRwLock`](crate::RawRwLock) lock calls
/// (no guard to carry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawLockError {
    /// The timeout passed before the lock became free.
    #[error("timed out waiting for the lock; retry or give up (in memory shared across pid namespaces a holder that died is never detected, so it also looks like this)")]
    Timeout,
    /// `try_lock`: the lock is held by someone else.
    #[error("the lock is held by someone else (try_lock did not wait)")]
    WouldBlock,
    /// The calling thread already holds this lock.
    #[error("the calling thread already holds this lock; unlock it before locking again")]
    WouldDeadlock,
    /// Sleeping on the lock failed in the kernel; the lock was not taken. See
    /// [`LockError::Os`].
    #[error("{OS_WAIT_FAILED}")]
    Os(#[source] OsError),
}

impl<G> From<RawLockError> for LockError<G> {
    fn from(e: RawLockError) -> Self {
        match e {
            RawLockError::Timeout => LockError::Timeout,
            RawLockError::WouldBlock => LockError::WouldBlock,
            RawLockError::WouldDeadlock => LockError::WouldDeadlock,
            RawLockError::Os(e) => LockError::Os(e),
        }
    }
}

/// Turns how a raw lock was acquired into the guard-level result. `guard` builds the
/// guard and is called only when the lock is held. Shared by [`Mutex`](crate::Mutex)
/// and [`RwLock`](crate::RwLock)'s write side.
pub(crate) fn acquired<G>(
    r: Result<crate::Acquired, RawLockError>,
    guard: impl FnOnce() -> G,
) -> Result<G, LockError<G>> {
    match r? {
        crate::Acquired::Consistent => Ok(guard()),
        crate::Acquired::OwnerDied => Err(LockError::OwnerDied(guard())),
        crate::Acquired::Poisoned => Err(LockError::Poisoned(guard())),
    }
}

/// [`RawMutex::make_consistent`](crate::RawMutex::make_consistent),
/// [`RawMutex::poison`](crate::RawMutex::poison) or
/// [`RawRwLock::make_consistent`](crate::RawRwLock::make_consistent) was called by a
/// thread that does not hold the lock; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the calling thread does not hold this lock: only the holder may mark its data consistent or poisoned (lock it first); nothing was changed")]
pub struct NotHeld;

/// Errors of [`Semaphore`](crate::Semaphore) operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// The timeout passed before a permit became available.
    #[error("timed out waiting for a semaphore permit; retry or give up")]
    Timeout,
    /// `try_acquire`: no permit is available right now.
    #[error("no semaphore permit is available (try_acquire did not wait)")]
    WouldBlock,
    /// `release` would raise the value above the bounded semaphore's maximum (Python's
    /// `BoundedSemaphore` raises `ValueError` here): a permit was released twice. An
    /// unbounded semaphore reports this at `u32::MAX`.
    #[error("semaphore released too many times: value would exceed its maximum of {max}")]
    Overflow {
        /// The semaphore's maximum value.
        max: u32,
    },
    /// Sleeping for a permit failed in the kernel; no permit was taken. See
    /// [`LockError::Os`].
    #[error("{OS_WAIT_FAILED}")]
    Os(#[source] OsError),
}

/// Errors of [`Barrier`](crate::Barrier) waits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a waiter timed out (or `abort` was called) before every
    /// party arrived, like Python's `BrokenBarrierError`. Call `reset()` to reuse it.
    #[error("the barrier is broken (a party timed out or aborted); reset() it before reuse")]
    Broken,
    /// Sleeping at the barrier failed in the kernel. The caller broke the round (as a
    /// timeout does), so the other parties get `Broken` instead of waiting for it. See
    /// [`LockError::Os`].
    #[error("{OS_WAIT_FAILED}")]
    Os(#[source] OsError),
    /// A party process (recorded when it first waited) died, exited or was replaced
    /// by another process under its pid before arriving, so the round can never
    /// complete. The barrier is broken (later waits report this too) until `reset()`.
    #[error(
        "a barrier party (pid {pid}) died before arriving; the barrier is broken: reset() it \
         (while nobody waits) before reuse"
    )]
    PartyDied {
        /// The pid of the dead party.
        pid: u32,
    },
}

/// Errors of [`Event`](crate::Event) waits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Sleeping on the event failed in the kernel; the flag was not consumed. See
    /// [`LockError::Os`].
    #[error("{OS_WAIT_FAILED}")]
    Os(#[source] OsError),
}

/// Errors of [`FileLock`](crate::FileLock) operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileLockError {
    /// The timeout passed before the lock became free.
    #[error("timed out waiting for the file lock; retry or give up")]
    Timeout,
    /// A `try_` call found the lock held by another open file description.
    #[error("the file lock is held elsewhere (try_ call did not wait)")]
    WouldBlock,
    /// A system call failed.
    #[error("{op} failed on the lock file: {source}")]
    Io {
        /// What was being done (`flock`, `fcntl(F_OFD_SETLK)`, `open`...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Errors of [`NamedLock::acquire`](crate::NamedLock::acquire).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamedLockError {
    /// The name is not 1..=200 characters of `[A-Za-z0-9._-]` not starting with `.`.
    #[error(
        "invalid lock name {0:?}: use 1 to 200 characters from A-Z a-z 0-9 . _ - not starting with '.'"
    )]
    InvalidName(String),
    /// The timeout passed while another process held the lock.
    #[error("timed out waiting for the named lock {0:?}; another process holds it")]
    Timeout(String),
    /// `try_acquire`: another holder has the lock right now.
    #[error("the named lock {0:?} is held by another holder (try_acquire did not wait); retry later or use acquire with a timeout")]
    WouldBlock(String),
    /// The lock directory is unsafe to use (not a directory we own, a symlink, or
    /// accessible by others).
    #[error("the lock directory {path} is unsafe: {why}; remove it or set SHMKIT_LOCK_DIR")]
    UnsafeDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A system call failed.
    #[error("{op} failed for {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
