//! # shmkit-sync
//!
//! Lock primitives that live inside shared memory and survive a crashed holder:
//! mutex, rwlock, semaphore, condvar, event, barrier; plus file locks and named locks.
//!
//! Every in-memory type is `#[repr(C)]`, fixed-size (pinned by a `const` assertion),
//! pointer-free, valid when zeroed (or initialised in place) and `Sync`, so it can sit
//! at a known offset of a segment mapped by several processes. All waiting is on
//! *shared* futexes with absolute `CLOCK_MONOTONIC` deadlines; no fast path makes a
//! syscall, and a wake-up syscall is made only when someone sleeps.
//!
//! | type | recovers from a dead holder |
//! |---|---|
//! | [`Mutex`] / [`RawMutex`] | yes: `OwnerDied(guard)`, then `make_consistent()` or `Poisoned` |
//! | [`FileLock`], [`NamedLock`] | yes: the kernel releases them |
//! | [`RwLock`], [`Semaphore`], [`Barrier`], [`Event`], [`Condvar`] | no: they have no owner identity (as Python's) |

mod atomic;
mod error;
pub mod futex;
mod mutex;
mod owner;
mod wait;

pub use error::{
    BarrierError, FileLockError, LockError, NamedLockError, RawLockError, SemaphoreError,
};
pub use mutex::{Acquired, Mutex, MutexGuard, RawMutex, OWNER_CHECK_INTERVAL};
