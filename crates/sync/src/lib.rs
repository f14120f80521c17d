//! # shmkit-sync
//!
//! Lock primitives that live inside shared memory and survive a crashed holder:
//! mutex, rwlock, semaphore, condvar, event, barrier; plus file locks and named locks.

pub mod futex;
