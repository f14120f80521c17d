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
//! | [`RwLock`] / [`RawRwLock`] | a dead *writer*: yes (`OwnerDied` to a waiting writer, else `Poisoned`); a dead *reader*: its read lock is given back (up to 16 read holders at once are recorded) |
//! | [`Semaphore`] | permits taken with [`acquire_permit`](Semaphore::acquire_permit) or [`acquire_for_process`](Semaphore::acquire_for_process) come back when their process dies; plain `acquire` permits are ownerless (as Python's) |
//! | [`Barrier`] | a party process that dies before arriving breaks it with [`BarrierError::PartyDied`] |
//! | [`Event`], [`Condvar`] | no: they have no owner identity (as Python's) |
//!
//! # Pid namespaces: types placed by hand are not protected
//! A dead holder is recognised by its thread id and start time in `/proc`, and thread
//! ids only mean something in one pid namespace: a live holder in another namespace (a
//! container sharing `/dev/shm`, `--ipc=host`) looks dead from here, and its lock would
//! be taken while it holds it. shmkit's typed objects are protected by their segment
//! header: opening a segment from another pid namespace is refused unless allowed, and
//! in a segment shared across pid namespaces their liveness checks never declare anyone
//! dead. The types of this crate carry no header: placed by hand in memory (a segment's
//! payload, your own `MAP_SHARED` mapping), nothing refuses a user from another pid
//! namespace and holders are judged as if everyone shared one. If such memory is shared
//! across pid namespaces, make every lock call inside
//! [`with_pid_namespace_probe`] (with a probe that says so, e.g. from
//! `Segment::shared_across_pid_namespaces`): a dead holder is then never recovered, and
//! waiters wait or time out; otherwise keep all users in one pid namespace.
//!
//! # Examples
//! One runnable example per idea, on the type that carries it:
//! - a holder that dies and the repair ([`OwnerDied`](LockError::OwnerDied),
//!   `make_consistent`): [`Mutex`], the canonical scenario;
//! - readers and writers, timeouts and deadlines: [`RwLock`], [`Mutex::lock_timeout`];
//! - lock errors through `?`: [`LockError::without_guard`];
//! - one guard family and `map`: [`guard`]; code generic over raw locks: [`RawLock`];
//! - [`Semaphore`] (and its owned permits), [`Event`], [`Barrier`], [`Condvar`],
//!   [`FileLock`], [`NamedLock`]: on each type.

mod atomic;
mod barrier;
mod condvar;
mod error;
mod event;
mod file_lock;
#[cfg(not(loom))]
pub mod future;
pub mod guard;
mod mutex;
mod named_lock;
mod rwlock;
mod semaphore;
mod wait;

// The floor: futex wait/wake and owner identity/liveness live in `shmkit_sys`, shared
// with the segment and typed crates (imported here so the algorithms say `futex::` and
// `owner::`).
use shmkit_sys::{futex, owner};

pub use barrier::Barrier;
pub use condvar::{Condvar, CondvarResult};
pub use error::{
    BarrierError, EventError, FileLockError, LockError, LockErrorKind, NamedLockError, NotHeld,
    RawLockError, SemaphoreError,
};
pub use event::Event;
pub use file_lock::{FileLock, FileLockGuard, LockMode, RangeGuard};
#[cfg(not(loom))]
pub use file_lock::{FileLockAcquire, RangeLockAcquire};
pub use guard::{LockGuard, RawLock, RawLockRepair, RawLockTimed, RawReadLock};
pub use mutex::{Acquired, Mutex, MutexGuard, RawMutex, OWNER_CHECK_INTERVAL};
#[cfg(not(loom))]
pub use named_lock::NamedLockAcquire;
pub use named_lock::{NamedLock, NamedLockGuard};
pub use rwlock::{RawRwLock, ReaderSlot, RwLock, RwLockReadGuard, RwLockResult, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use shmkit_sys::owner::with_pid_namespace_probe;
pub use shmkit_sys::{Deadline, OsError};
