//! A value of the process, not of its memory: [`PerProcess`] gives each process its
//! own copy, created on first use, so a forked child never takes (or waits on) the lock
//! of the copy it inherited from its parent.
//!
//! `fork` copies memory but only the calling thread. A `static Mutex` that another
//! thread of the parent held at that moment stays held in the child, by a thread the
//! child does not have: the child's first `lock()` waits forever. The floor's helper
//! threads (the death [`watcher`](crate::watcher), the async
//! [`doorbell`](crate::doorbell)) keep their state in statics that any thread may be
//! locking when another forks, so their state is a `PerProcess`: each process finds
//! its own by pid and the child installs a fresh one without touching the parent's
//! (which it leaks: its lock may be held, and its fds and maps describe the parent's
//! threads).
//!
//! Written here rather than taken from a crate: it is a pointer swap keyed by pid
//! around `std::sync::Mutex`; the fork-aware crates found (e.g. `fork_union`) do
//! something else.
//!
//! # Examples
//! ```
//! use shmkit_sys::per_process::PerProcess;
//!
//! static COUNT: PerProcess<u32> = PerProcess::new();
//! *COUNT.lock() += 1;
//! assert_eq!(*COUNT.lock(), 1); // a child forked now would start again from 0
//! ```

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One process's value and the pid it belongs to.
struct Slot<T> {
    pid: u32,
    value: Mutex<T>,
}

/// A `Mutex<T>` per process: see the [module docs](self).
pub struct PerProcess<T> {
    /// This process's slot (or an ancestor's, before this process's first use);
    /// slots are leaked, never freed, so a pointer once stored stays valid.
    current: AtomicPtr<Slot<T>>,
}

impl<T: Default> PerProcess<T> {
    /// No slot yet: the first `lock` of each process makes one with `T::default()`.
    pub const fn new() -> Self {
        PerProcess {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// This process's value, locked (a poisoned lock is taken over: keep the value
    /// consistent at every unwind point).
    pub fn lock(&'static self) -> MutexGuard<'static, T> {
        let me = crate::owner::current_pid();
        // Acquire: pairs with the Release of the compare-exchange below, so the slot's
        // contents are seen initialised.
        let mut slot = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from `Box::into_raw` below and is never
        // freed (leaked on purpose), so it stays valid for 'static.
        if slot.is_null() || unsafe { (*slot).pid } != me {
            let fresh = Box::into_raw(Box::new(Slot {
                pid: me,
                value: Mutex::new(T::default()),
            }));
            // Release: publishes the fresh slot; Acquire on failure: as above.
            match self
                .current
                .compare_exchange(slot, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The ancestor's slot (if any) is left behind, leaked.
                Ok(_) => slot = fresh,
                Err(now) => {
                    // Another thread of this process installed its slot first (only
                    // this process's threads run here): use that one.
                    // SAFETY: `fresh` came from `Box::into_raw` above and was never
                    // shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    slot = now;
                }
            }
        }
        // SAFETY: as above: a leaked slot, valid for 'static.
        let slot: &'static Slot<T> = unsafe { &*slot };
        slot.value.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Default> Default for PerProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}
