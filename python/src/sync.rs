//! The thin wrappers: `Semaphore`, `Event`, `Barrier` (named homes of the sync
//! objects), `NamedLock` and `FileLock` (kernel-released file locks).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmkit_sync::{
    Barrier as RustBarrier, BarrierError, Event as RustEvent, FileLock as RustFileLock,
    FileLockError, LockMode, NamedLock as RustNamedLock, NamedLockError, NamedLockGuard,
    Semaphore as RustSemaphore, SemaphoreError,
};
use shmkit_typed::{Shared, SharedBarrier, SharedEvent, SharedObject, SharedSemaphore, SyncObject};

use crate::lock::named;
use crate::{block_arg, create_fail, ooc_fail, open_fail, timeout_arg, wait_sliced, Fail, Kind};

/// The family's forms for a named home `Shared<S>`.
fn make<S: SyncObject>(how: &str, name: Option<&str>, init: S::Init) -> PyResult<Shared<S>>
where
    Shared<S>: SharedObject<Init = S::Init>,
{
    Ok(match (how, name) {
        ("create", Some(n)) => <Shared<S> as SharedObject>::create(n, init).map_err(create_fail)?,
        ("open", Some(n)) => <Shared<S> as SharedObject>::open(n).map_err(open_fail)?,
        ("open_or_create", Some(n)) => {
            <Shared<S> as SharedObject>::open_or_create(n, init).map_err(ooc_fail)?
        }
        _ => <Shared<S> as SharedObject>::anonymous(init).map_err(create_fail)?,
    })
}

pub(crate) fn sem_fail(e: SemaphoreError) -> Fail {
    let kind = match &e {
        SemaphoreError::Overflow { .. } => Kind::Value,
        SemaphoreError::Timeout => Kind::Timeout,
        _ => Kind::Os,
    };
    Fail::new(kind, e.to_string())
}

fn name_of<S: SyncObject>(s: &Shared<S>) -> Option<String> {
    s.segment().name().map(str::to_owned)
}

/// A counting semaphore shared by processes (`multiprocessing.Semaphore`, or
/// `BoundedSemaphore` with `max_value`); a Rust `SharedSemaphore`.
///
/// A permit belongs to the *process* that acquired it until it releases one: if that
/// process dies (killed, crashed, or exits) holding permits, they come back to the
/// others (a waiter gives them back at once: the holder's exit wakes it), unlike
/// `multiprocessing.Semaphore`'s. A `release()` by a process that holds no permit adds
/// one, as a signal. For signals that are *consumed* (a process takes one and never
/// gives it back), pass `owned=False`: permits are then ownerless, as
/// `multiprocessing`'s, and a process that exits keeps what it took. The choice is per
/// handle; at most 16 processes at a time have their permits recorded (those past that
/// are counted, not recovered).
///
/// >>> slots = shmkit.Semaphore.create("slots", 2)   # others: Semaphore.open("slots")
/// >>> with slots:
/// ...     pass                                      # at most 2 processes in here
#[pyclass(module = "shmkit", frozen)]
pub struct Semaphore {
    pub(crate) inner: SharedSemaphore,
    /// Permits are this process's (`acquire_for_process`), or ownerless.
    pub(crate) owned: bool,
}

fn semaphore(value: u32, max_value: Option<u32>) -> PyResult<RustSemaphore> {
    match max_value {
        Some(max) if value > max => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "initial value {value} is above max_value {max}"
        ))),
        Some(max) => Ok(RustSemaphore::bounded(value, max)),
        None => Ok(RustSemaphore::new(value)),
    }
}

#[pymethods]
impl Semaphore {
    /// Creates the named semaphore `name` with `value` permits (at most `max_value` if
    /// given: releasing above it raises `ValueError`).
    #[staticmethod]
    #[pyo3(signature = (name, value = 1, max_value = None, *, owned = true))]
    fn create(name: &str, value: u32, max_value: Option<u32>, owned: bool) -> PyResult<Self> {
        let s = semaphore(value, max_value)?;
        Ok(Semaphore {
            inner: make("create", Some(name), s)?,
            owned,
        })
    }

    /// Opens the named semaphore another process created.
    #[staticmethod]
    #[pyo3(signature = (name, *, owned = true))]
    fn open(name: &str, owned: bool) -> PyResult<Self> {
        Ok(Semaphore {
            inner: make("open", Some(name), RustSemaphore::new(0))?,
            owned,
        })
    }

    /// Opens the named semaphore, or creates it if missing.
    #[staticmethod]
    #[pyo3(signature = (name, value = 1, max_value = None, *, owned = true))]
    fn open_or_create(
        name: &str,
        value: u32,
        max_value: Option<u32>,
        owned: bool,
    ) -> PyResult<Self> {
        let s = semaphore(value, max_value)?;
        Ok(Semaphore {
            inner: make("open_or_create", Some(name), s)?,
            owned,
        })
    }

    /// A semaphore in anonymous shared memory, shared with `os.fork()` children.
    #[staticmethod]
    #[pyo3(signature = (value = 1, max_value = None, *, owned = true))]
    fn anonymous(value: u32, max_value: Option<u32>, owned: bool) -> PyResult<Self> {
        let s = semaphore(value, max_value)?;
        Ok(Semaphore {
            inner: make("anonymous", None, s)?,
            owned,
        })
    }

    /// Takes a permit, as `threading.Semaphore.acquire`: `True`, or `False` if none
    /// came in time (`blocking=False`: none now). With `owned=True` (the default) the
    /// permit is this process's until it releases one, and comes back if it dies.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let (sem, owned) = (&self.inner, self.owned);
        let Some(wait) = block_arg(blocking, timeout)? else {
            let r = if owned {
                sem.try_acquire_for_process().map(drop)
            } else {
                sem.try_acquire()
            };
            return match r {
                Ok(()) => Ok(true),
                Err(SemaphoreError::WouldBlock) => Ok(false),
                Err(e) => Err(sem_fail(e).into()),
            };
        };
        // The fast path, with the GIL held: a free permit is one CAS (and one to
        // record it) away.
        let first = if owned {
            sem.try_acquire_for_process().map(drop)
        } else {
            sem.try_acquire()
        };
        if first.is_ok() {
            return Ok(true);
        }
        let r = wait_sliced(py, wait, |slice| {
            let r = if owned {
                sem.acquire_for_process_timeout(slice).map(drop)
            } else {
                sem.acquire_timeout(slice)
            };
            match r {
                Err(SemaphoreError::Timeout) => None,
                other => Some(other),
            }
        })?;
        match r {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(sem_fail(e).into()),
        }
    }

    /// Gives back `n` permits (`ValueError` above `max_value`): with `owned=True`,
    /// this process's own first (a process holding none adds plain ones, as signals).
    #[pyo3(signature = (n = 1))]
    fn release(&self, n: u32) -> PyResult<()> {
        for _ in 0..n {
            if self.owned {
                self.inner.release_for_process().map_err(sem_fail)?;
            } else {
                self.inner.release().map_err(sem_fail)?;
            }
        }
        Ok(())
    }

    /// Whether a permit belongs to the process that acquired it (comes back if it
    /// dies), or is ownerless as `multiprocessing`'s (`owned=False`).
    #[getter]
    fn owned(&self) -> bool {
        self.owned
    }

    /// The number of free permits now (a snapshot).
    fn get_value(&self) -> u32 {
        self.inner.value()
    }

    /// The maximum (`None`: unbounded).
    #[getter]
    fn max_value(&self) -> Option<u32> {
        self.inner.max()
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        name_of(&self.inner)
    }

    /// Acquires for a `with` block, waiting without a limit (a `NamedLock` waits its
    /// `timeout`, then raises `TimeoutError`).
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    /// Releases at the end of a `with` block; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release(1)?;
        Ok(false)
    }

    /// Pickles as "open this name" with the same `owned` (an anonymous object cannot
    /// be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = named(name_of(&slf.get().inner), "Semaphore")?;
        let py = slf.py();
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("owned", slf.get().owned)?;
        let open = py
            .import("functools")?
            .getattr("partial")?
            .call((slf.get_type().getattr("open")?,), Some(&kwargs))?;
        Ok((open, (name,)))
    }
}

/// An event shared by processes (`multiprocessing.Event`); a Rust `SharedEvent`.
/// With `auto_reset=True` a successful `wait` consumes the flag (one waiter per `set`).
///
/// >>> ready = shmkit.Event.create("ready")   # others: Event.open("ready")
/// >>> ready.set()
/// >>> ready.wait(timeout=1.0)
/// True
#[pyclass(module = "shmkit", frozen)]
pub struct Event {
    inner: SharedEvent,
}

fn event(auto_reset: bool) -> RustEvent {
    if auto_reset {
        RustEvent::new_auto_reset()
    } else {
        RustEvent::new()
    }
}

#[pymethods]
impl Event {
    /// Creates the named event `name`, clear.
    #[staticmethod]
    #[pyo3(signature = (name, *, auto_reset = false))]
    fn create(name: &str, auto_reset: bool) -> PyResult<Self> {
        Ok(Event {
            inner: make("create", Some(name), event(auto_reset))?,
        })
    }

    /// Opens the named event another process created.
    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(Event {
            inner: make("open", Some(name), RustEvent::new())?,
        })
    }

    /// Opens the named event, or creates it (clear) if missing.
    #[staticmethod]
    #[pyo3(signature = (name, *, auto_reset = false))]
    fn open_or_create(name: &str, auto_reset: bool) -> PyResult<Self> {
        Ok(Event {
            inner: make("open_or_create", Some(name), event(auto_reset))?,
        })
    }

    /// An event in anonymous shared memory, shared with `os.fork()` children.
    #[staticmethod]
    #[pyo3(signature = (*, auto_reset = false))]
    fn anonymous(auto_reset: bool) -> PyResult<Self> {
        Ok(Event {
            inner: make("anonymous", None, event(auto_reset))?,
        })
    }

    /// Sets the flag, waking the waiters.
    fn set(&self) {
        self.inner.set()
    }

    /// Clears the flag.
    fn clear(&self) {
        self.inner.clear()
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    /// Waits (GIL released) until the flag is set, at most `timeout` seconds if given;
    /// returns whether it was set (as `threading.Event.wait`).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let ev = &self.inner;
        let r = wait_sliced(py, timeout, |slice| match ev.wait_timeout(slice) {
            Ok(false) => None,
            other => Some(other),
        })?;
        match r {
            None => Ok(false),
            Some(Ok(set)) => Ok(set),
            Some(Err(e)) => Err(Fail::new(Kind::Os, e.to_string()).into()),
        }
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        name_of(&self.inner)
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = named(name_of(&slf.get().inner), "Event")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }
}

/// A barrier for `parties` processes (`multiprocessing.Barrier`); a Rust
/// `SharedBarrier`. A party that times out breaks it (`threading.BrokenBarrierError`
/// for everyone, as in Python); a party process that dies before arriving breaks it
/// with `shmkit.PeerDied`. `reset()` makes it usable again.
///
/// >>> start = shmkit.Barrier.create("start", 2)   # the other party: Barrier.open("start")
#[pyclass(module = "shmkit", frozen)]
pub struct Barrier {
    inner: SharedBarrier,
}

fn barrier_fail(e: BarrierError) -> Fail {
    let kind = match &e {
        BarrierError::Broken => Kind::BrokenBarrier,
        BarrierError::PartyDied { .. } => Kind::PeerDied,
        _ => Kind::Os,
    };
    Fail::new(kind, e.to_string())
}

#[pymethods]
impl Barrier {
    /// Creates the named barrier `name` for `parties` processes.
    #[staticmethod]
    fn create(name: &str, parties: u32) -> PyResult<Self> {
        Ok(Barrier {
            inner: make("create", Some(name), RustBarrier::new(parties))?,
        })
    }

    /// Opens the named barrier another process created.
    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(Barrier {
            inner: make("open", Some(name), RustBarrier::new(1))?,
        })
    }

    /// Opens the named barrier, or creates it for `parties` if missing.
    #[staticmethod]
    fn open_or_create(name: &str, parties: u32) -> PyResult<Self> {
        Ok(Barrier {
            inner: make("open_or_create", Some(name), RustBarrier::new(parties))?,
        })
    }

    /// A barrier in anonymous shared memory, shared with `os.fork()` children.
    #[staticmethod]
    fn anonymous(parties: u32) -> PyResult<Self> {
        Ok(Barrier {
            inner: make("anonymous", None, RustBarrier::new(parties))?,
        })
    }

    /// Waits (GIL released) until every party has arrived; returns this party's
    /// arrival index (0 .. parties-1), as `threading.Barrier.wait`. A `timeout` that
    /// passes breaks the barrier (`threading.BrokenBarrierError`). This wait is not cut
    /// into slices (that would break the barrier), so Ctrl-C is seen when it ends.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let timeout = timeout_arg(timeout)?;
        let b = &self.inner;
        let r = py.allow_threads(|| match timeout {
            Some(t) => b.wait_timeout(t),
            None => b.wait(),
        });
        Ok(r.map_err(barrier_fail)?)
    }

    /// Breaks the barrier: waiters and later callers get `BrokenBarrierError`.
    fn abort(&self) {
        self.inner.abort()
    }

    /// Makes a broken barrier usable again (call it while nobody waits).
    fn reset(&self) {
        self.inner.reset()
    }

    /// The number of parties.
    #[getter]
    fn parties(&self) -> u32 {
        self.inner.parties()
    }

    /// Whether the barrier is broken.
    #[getter]
    fn broken(&self) -> bool {
        self.inner.is_broken()
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        name_of(&self.inner)
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = named(name_of(&slf.get().inner), "Barrier")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }
}

fn named_fail(e: NamedLockError) -> Fail {
    let kind = match &e {
        NamedLockError::InvalidName(_) => Kind::Value,
        NamedLockError::Timeout(_) => Kind::Timeout,
        NamedLockError::UnsafeDir { .. } => Kind::Permission,
        _ => Kind::Os,
    };
    Fail::new(kind, e.to_string())
}

/// A lock that unrelated processes take by name with no setup (MySQL's
/// `GET_LOCK(name, timeout)`), released by the kernel when its holder dies; the same
/// lock as Rust's `shmkit_sync::NamedLock::acquire(name, timeout)`.
///
/// `timeout` (seconds, `None`: forever) is what `with` waits; past it `with` raises
/// `TimeoutError`.
///
/// >>> with shmkit.NamedLock("nightly-report", timeout=10):
/// ...     pass                                   # one process in here
#[pyclass(module = "shmkit", frozen)]
pub struct NamedLock {
    name: String,
    timeout: Option<Duration>,
    guard: Mutex<Option<NamedLockGuard>>,
}

impl NamedLock {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<NamedLockGuard>> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl NamedLock {
    /// A handle on the named lock `name` (1..200 of `A-Za-z0-9._-`, not starting with
    /// '.'); nothing is taken until `acquire` or `with`.
    #[new]
    #[pyo3(signature = (name, timeout = None))]
    fn new(name: String, timeout: Option<f64>) -> PyResult<Self> {
        Ok(NamedLock {
            name,
            timeout: timeout_arg(timeout)?,
            guard: Mutex::new(None),
        })
    }

    /// Takes the lock: `True`, or `False` if another holder kept it past `timeout`
    /// (`blocking=False`: held now). `RuntimeError` if this handle holds it already.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = block_arg(blocking, timeout)?;
        if self.slot().is_some() {
            return Err(Fail::new(
                Kind::Runtime,
                format!("this NamedLock handle already holds {:?}", self.name),
            )
            .into());
        }
        let name = self.name.as_str();
        let got = match wait {
            None => match RustNamedLock::try_acquire(name) {
                Ok(g) => Some(g),
                Err(NamedLockError::WouldBlock(_)) => None,
                Err(e) => return Err(named_fail(e).into()),
            },
            Some(timeout) => {
                let r = wait_sliced(py, timeout, |slice| {
                    match RustNamedLock::acquire(name, slice) {
                        Err(NamedLockError::Timeout(_)) => None,
                        other => Some(other),
                    }
                })?;
                match r {
                    None => None,
                    Some(r) => Some(r.map_err(named_fail)?),
                }
            }
        };
        let held = got.is_some();
        *self.slot() = got;
        Ok(held)
    }

    /// Releases the lock. `RuntimeError` if this handle does not hold it.
    fn release(&self) -> PyResult<()> {
        match self.slot().take() {
            Some(g) => {
                drop(g);
                Ok(())
            }
            None => Err(Fail::new(
                Kind::Runtime,
                format!(
                    "release of the named lock {:?}, which this handle does not hold",
                    self.name
                ),
            )
            .into()),
        }
    }

    /// Whether this handle holds the lock.
    fn locked(&self) -> bool {
        self.slot().is_some()
    }

    /// The lock's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Acquires for a `with` block, waiting without a limit (a `NamedLock` waits its
    /// `timeout`, then raises `TimeoutError`).
    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'_>) -> PyResult<PyRef<'a, Self>> {
        let timeout = slf.timeout.map(|t| t.as_secs_f64());
        if slf.acquire(py, true, timeout)? {
            Ok(slf)
        } else {
            Err(named_fail(NamedLockError::Timeout(slf.name.clone())).into())
        }
    }

    /// Releases at the end of a `with` block; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }
}

fn file_fail(e: FileLockError) -> Fail {
    let kind = match &e {
        FileLockError::Timeout => Kind::Timeout,
        _ => Kind::Os,
    };
    Fail::new(kind, e.to_string())
}

/// A whole-file `flock(2)` lock (Python's `fcntl.flock`, which it excludes), released
/// by the kernel when the holder dies; Rust's `shmkit_sync::FileLock`. Exclusive by
/// default, `shared=True` for a read lock. Each `FileLock` object is one open file
/// description: two objects on one path conflict, also within a process.
///
/// >>> with shmkit.FileLock("/tmp/app.lock"):
/// ...     pass
#[pyclass(module = "shmkit", frozen)]
pub struct FileLock {
    lock: RustFileLock,
    path: String,
    held: AtomicBool,
}

#[pymethods]
impl FileLock {
    /// Opens (creating with mode 0600 if missing) `path` as a lock file.
    #[new]
    fn new(path: String) -> PyResult<Self> {
        Ok(FileLock {
            lock: RustFileLock::open(&path).map_err(file_fail)?,
            path,
            held: AtomicBool::new(false),
        })
    }

    /// Locks the file (exclusive, or shared with `shared=True`): `True`, or `False` if
    /// not acquired in time (`blocking=False`: held elsewhere now).
    #[pyo3(signature = (blocking = true, timeout = None, shared = false))]
    fn acquire(
        &self,
        py: Python<'_>,
        blocking: bool,
        timeout: Option<f64>,
        shared: bool,
    ) -> PyResult<bool> {
        let mode = if shared {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        let wait = block_arg(blocking, timeout)?;
        let lock = &self.lock;
        let got = match wait {
            None => match lock.try_lock(mode) {
                Ok(g) => {
                    std::mem::forget(g);
                    true
                }
                Err(FileLockError::WouldBlock) => false,
                Err(e) => return Err(file_fail(e).into()),
            },
            Some(timeout) => {
                let r = wait_sliced(py, timeout, |slice| match lock.lock_timeout(mode, slice) {
                    Ok(g) => {
                        // Held until `release` (which unlocks the file description).
                        std::mem::forget(g);
                        Some(Ok(()))
                    }
                    Err(FileLockError::Timeout) => None,
                    Err(e) => Some(Err(e)),
                })?;
                match r {
                    None => false,
                    Some(r) => {
                        r.map_err(file_fail)?;
                        true
                    }
                }
            }
        };
        if got {
            self.held.store(true, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Unlocks. `RuntimeError` if this object does not hold the lock.
    fn release(&self) -> PyResult<()> {
        if !self.held.swap(false, Ordering::Relaxed) {
            return Err(Fail::new(
                Kind::Runtime,
                format!(
                    "release of the file lock {:?}, which this object does not hold",
                    self.path
                ),
            )
            .into());
        }
        // SAFETY: flock(2) on a file descriptor this object owns (kept open by `lock`).
        let rc = unsafe { libc::flock(self.lock.file().as_raw_fd(), libc::LOCK_UN) };
        if rc != 0 {
            return Err(Fail::new(
                Kind::Os,
                format!("flock(LOCK_UN) failed: {}", std::io::Error::last_os_error()),
            )
            .into());
        }
        Ok(())
    }

    /// Whether this object holds the lock.
    fn locked(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// The lock file's path.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// Acquires for a `with` block, waiting without a limit (a `NamedLock` waits its
    /// `timeout`, then raises `TimeoutError`).
    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'_>) -> PyResult<PyRef<'a, Self>> {
        slf.acquire(py, true, None, false)?;
        Ok(slf)
    }

    /// Releases at the end of a `with` block; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }
}
