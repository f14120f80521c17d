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
mod barrier;
mod condvar;
mod error;
mod event;
mod file_lock;
pub mod futex;
mod mutex;
mod named_lock;
mod owner;
mod rwlock;
mod semaphore;
mod wait;

pub use barrier::Barrier;
pub use condvar::{Condvar, CondvarResult};
pub use error::{
    BarrierError, FileLockError, LockError, NamedLockError, RawLockError, SemaphoreError,
};
pub use event::Event;
pub use file_lock::{FileLock, FileLockGuard, LockMode, RangeGuard};
pub use futex::Deadline;
pub use mutex::{Acquired, Mutex, MutexGuard, RawMutex, OWNER_CHECK_INTERVAL};
pub use named_lock::{NamedLock, NamedLockGuard};
pub use rwlock::{RawRwLock, RwLock, RwLockReadGuard, RwLockResult, RwLockWriteGuard};
pub use semaphore::Semaphore;
