//! `Lock` and `RLock`: a shmkit mutex in a segment, taken in `acquire` and kept held
//! after the call returns (the raw lock, not a guard), released in `release`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmkit_segment::Segment;
use shmkit_sync::{Acquired, RawLockError, RawMutex};
use shmkit_typed::SharedValue;

use crate::{block_arg, create_fail, ooc_fail, open_fail, wait_sliced, Fail, Kind};

/// Something in a segment that holds a [`RawMutex`]: a `SharedValue<T>` (its mutex), a
/// `SharedArray<T>` (its mutex). Keeps the mapping alive while a handle uses it.
pub(crate) trait Home: Send + Sync + 'static {
    /// The segment (for the pid-namespace probe, the name, `is_creator`).
    fn segment(&self) -> &Segment;
    /// The mutex.
    fn raw(&self) -> &RawMutex;
}

impl<T: shmkit_typed::Pod + Send> Home for SharedValue<T> {
    fn segment(&self) -> &Segment {
        SharedValue::segment(self)
    }
    fn raw(&self) -> &RawMutex {
        (**self).raw()
    }
}

/// How a lock handle was acquired, as Python sees it.
pub(crate) enum Took {
    /// The lock is now held.
    Held,
    /// Not acquired: the timeout passed, or `block=False` found it busy.
    Busy,
}

/// The lock protocol shared by `Lock`, `RLock` and `get_lock()` of values and arrays.
#[derive(Clone)]
pub(crate) struct LockCore {
    pub(crate) home: Arc<dyn Home>,
    /// Raise `OwnerDied` (the lock held) instead of recording it on the lock.
    pub(crate) raise_owner_died: bool,
}

impl LockCore {
    /// Runs `f` with peers' liveness judged as the segment allows (a segment shared
    /// across pid namespaces declares nobody dead).
    pub(crate) fn probed<R>(&self, f: impl FnOnce() -> R) -> R {
        let seg = self.home.segment();
        shmkit_sync::with_pid_namespace_probe(&|| seg.shared_across_pid_namespaces(), f)
    }

    /// Takes the lock (see `Lock.acquire`). `wait`: `None` = try once, `Some(None)` =
    /// forever, `Some(Some(t))` = at most `t`. `WouldDeadlock` is returned as is (the
    /// callers decide: recursion, or an error).
    pub(crate) fn take(
        &self,
        py: Python<'_>,
        wait: Option<Option<Duration>>,
    ) -> PyResult<Result<Acquired, RawLockError>> {
        // A zero timeout is a single try, as `threading.Lock.acquire(timeout=0)`.
        let wait = wait.filter(|t| *t != Some(Duration::ZERO));
        let raw = self.home.raw();
        // The fast path, with the GIL held: one load and one CAS when the lock is free,
        // no liveness check (so no pid-namespace probe to set up).
        if let Some(taken) = raw.try_lock_if_free() {
            return Ok(Ok(taken));
        }
        // The word names a holder: this thread, a live one, or a dead one.
        if raw.is_held_by_current_thread() {
            return Ok(Err(RawLockError::WouldDeadlock));
        }
        // A held lock, when we may wait, goes straight to the waiting path (which spins
        // first, then sleeps): `try_lock` on a held lock asks `/proc` whether the holder
        // lives (microseconds; the waiting path does that only once its spin is over),
        // and releasing the GIL costs less than that. A single try does ask.
        let Some(timeout) = wait else {
            return Ok(self.probed(|| raw.try_lock()));
        };
        let core = self.clone();
        let r = wait_sliced(py, timeout, move |slice| {
            match core.probed(|| core.home.raw().lock_timeout(slice)) {
                Err(RawLockError::Timeout) => None,
                other => Some(other),
            }
        })?;
        Ok(r.unwrap_or(Err(RawLockError::Timeout)))
    }

    /// Turns how the raw lock answered into `Held`/`Busy` or an error.
    pub(crate) fn judge(&self, r: Result<Acquired, RawLockError>) -> PyResult<Took> {
        match r {
            Ok(Acquired::Consistent) => Ok(Took::Held),
            Ok(Acquired::OwnerDied | Acquired::Poisoned) => {
                if self.raise_owner_died {
                    Err(Fail::new(
                        Kind::OwnerDied,
                        "the previous holder of this lock died while holding it; the lock is \
                         now held by this thread: repair the data it protects, call \
                         make_consistent(), then release()",
                    )
                    .into())
                } else {
                    Ok(Took::Held)
                }
            }
            Err(RawLockError::Timeout | RawLockError::WouldBlock) => Ok(Took::Busy),
            Err(RawLockError::WouldDeadlock) => Err(Fail::new(
                Kind::Runtime,
                "this thread already holds the lock: acquiring it again would deadlock \
                 (use shmkit.RLock for a recursive lock)",
            )
            .into()),
            Err(e) => Err(Fail::new(Kind::Os, e.to_string()).into()),
        }
    }

    /// Whether the calling thread holds the lock.
    pub(crate) fn held_by_me(&self) -> bool {
        self.home.raw().is_held_by_current_thread()
    }

    /// Releases a lock this thread holds; `RuntimeError` otherwise (as
    /// `threading.Lock.release` on an unlocked lock).
    pub(crate) fn release(&self) -> PyResult<()> {
        if self.home.raw().unlock_if_held() {
            return Ok(());
        }
        Err(Fail::new(
            Kind::Runtime,
            "release of a lock this thread does not hold (a shmkit lock belongs to the \
             thread that acquired it)",
        )
        .into())
    }

    /// `make_consistent`: only by the holder.
    pub(crate) fn make_consistent(&self) -> PyResult<()> {
        self.home
            .raw()
            .make_consistent()
            .map_err(|e| Fail::new(Kind::Runtime, e.to_string()).into())
    }

    pub(crate) fn name(&self) -> Option<String> {
        self.home.segment().name().map(str::to_owned)
    }
}

/// Turns a home-making result into a `LockCore`.
fn core<H: Home>(home: H, raise_owner_died: bool) -> LockCore {
    LockCore {
        home: Arc::new(home),
        raise_owner_died,
    }
}

fn make_lock(how: &str, name: Option<&str>, raise_owner_died: bool) -> PyResult<LockCore> {
    type V = SharedValue<()>;
    let home = match (how, name) {
        ("create", Some(n)) => V::create(n, ()).map_err(create_fail)?,
        ("open", Some(n)) => V::open(n).map_err(open_fail)?,
        ("open_or_create", Some(n)) => V::open_or_create(n, ()).map_err(ooc_fail)?,
        _ => V::anonymous(()).map_err(create_fail)?,
    };
    Ok(core(home, raise_owner_died))
}

/// A lock shared by processes, whose holder may die without locking everyone out.
///
/// Backed by a shmkit mutex alone in a segment, the same one a Rust process opens as
/// `SharedValue::<()>::open(name)` and locks with `.lock()`.
///
/// Unlike `multiprocessing.Lock`, the lock belongs to the *thread* that acquired it:
/// only that thread may `release()` it, and acquiring it again from the same thread
/// raises `RuntimeError` instead of deadlocking (see `RLock` for a recursive lock).
///
/// When a holder dies (killed, crashed, or its thread exited) the next `acquire`
/// succeeds within about 100 ms and the lock reports `owner_died = True` until a
/// holder calls `make_consistent()`. With `raise_owner_died=True`, `acquire` raises
/// `shmkit.OwnerDied` instead, with the lock held; `with lock:` then releases it before
/// the exception leaves the `with` line, so a `with` block never leaks a held lock.
///
/// >>> lock = shmkit.Lock.create("jobs-lock")     # others: shmkit.Lock.open("jobs-lock")
/// >>> with lock:
/// ...     pass                                   # one process at a time
/// >>> lock.acquire(timeout=0.5)
/// True
/// >>> lock.release()
#[pyclass(module = "shmkit", frozen)]
pub struct Lock {
    pub(crate) core: LockCore,
}

impl Lock {
    pub(crate) fn new(core: LockCore) -> Self {
        Lock { core }
    }

    fn take(&self, py: Python<'_>, wait: Option<Option<Duration>>) -> PyResult<bool> {
        let r = self.core.take(py, wait)?;
        Ok(matches!(self.core.judge(r)?, Took::Held))
    }

    fn give_back(&self) -> PyResult<()> {
        self.core.release()
    }
}

#[pymethods]
impl Lock {
    /// Creates the named lock `name` (unlocked). Raises `shmkit.AlreadyExists` if the
    /// name is taken. The name is removed when this object is garbage-collected in the
    /// creating process.
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn create(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(Lock::new(make_lock(
            "create",
            Some(name),
            raise_owner_died,
        )?))
    }

    /// Opens the named lock another process created. Raises `shmkit.NotFound` if
    /// missing, `shmkit.TypeMismatch` if the name holds something else.
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn open(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(Lock::new(make_lock("open", Some(name), raise_owner_died)?))
    }

    /// Opens the named lock, or creates it if missing (of racing processes exactly one
    /// creates).
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn open_or_create(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(Lock::new(make_lock(
            "open_or_create",
            Some(name),
            raise_owner_died,
        )?))
    }

    /// A lock in anonymous shared memory, shared with children made by `os.fork()`
    /// after this call.
    #[staticmethod]
    #[pyo3(signature = (*, raise_owner_died = false))]
    fn anonymous(raise_owner_died: bool) -> PyResult<Self> {
        Ok(Lock::new(make_lock("anonymous", None, raise_owner_died)?))
    }

    /// Acquires the lock, as `threading.Lock.acquire`: waits (GIL released) until it
    /// is free, at most `timeout` seconds if given; returns `True` if acquired, `False`
    /// if not (`blocking=False` and busy, or the timeout passed).
    ///
    /// A holder that died is replaced: `True`, and `owner_died` becomes `True` (or
    /// `OwnerDied` is raised, the lock held, with `raise_owner_died=True`). Raises
    /// `RuntimeError` if this thread holds the lock already.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = block_arg(blocking, timeout)?;
        self.take(py, wait)
    }

    /// Releases the lock. Raises `RuntimeError` if the calling thread does not hold it.
    fn release(&self) -> PyResult<()> {
        self.give_back()
    }

    /// Whether anyone (any process) holds the lock right now (a snapshot).
    fn locked(&self) -> bool {
        self.core.home.raw().is_locked()
    }

    /// `True` from the moment a holder died holding the lock until a later holder calls
    /// `make_consistent()` (the data it protects may be half-updated). Shared by every
    /// process using the lock.
    #[getter]
    fn owner_died(&self) -> bool {
        self.core.home.raw().is_poisoned()
    }

    /// Marks the data protected by the lock repaired after a holder died: clears
    /// `owner_died`. Only the holder may call it (`RuntimeError` otherwise).
    fn make_consistent(&self) -> PyResult<()> {
        self.core.make_consistent()
    }

    /// The segment's name (`None` for an anonymous lock).
    #[getter]
    fn name(&self) -> Option<String> {
        self.core.name()
    }

    /// Acquires for a `with` block, waiting without a limit (a `NamedLock` waits its
    /// `timeout`, then raises `TimeoutError`).
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.take(py, Some(None)) {
            Ok(_) => Ok(true),
            Err(e) => {
                if self.core.raise_owner_died && self.core.held_by_me() {
                    // OwnerDied with the lock held: `with` would not call __exit__.
                    self.give_back()?;
                }
                Err(e)
            }
        }
    }

    /// Releases at the end of a `with` block; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.give_back()?;
        Ok(false)
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = named(slf.get().core.name(), "Lock")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }

    /// A short description with the name.
    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Lock {} locked={}>",
            self.core.name().unwrap_or_else(|| "anonymous".into()),
            self.locked()
        )
    }
}

/// The name for pickling, or the error for an anonymous object.
pub(crate) fn named(name: Option<String>, what: &str) -> PyResult<String> {
    name.ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "an anonymous shmkit.{what} cannot be pickled: it is shared with os.fork() \
             children only; create it by name to hand it to another process"
        ))
    })
}

/// A recursive lock shared by processes (`threading.RLock` / `multiprocessing.RLock`):
/// the holding thread may acquire it again; it is free once released as many times.
///
/// The same segment as `Lock` (Rust: `SharedValue::<()>`); the recursion count is kept
/// by this handle, in this process. Owner death as for `Lock`.
///
/// >>> r = shmkit.RLock.anonymous()
/// >>> with r:
/// ...     with r:
/// ...         pass
#[pyclass(module = "shmkit", frozen)]
pub struct RLock {
    core: LockCore,
    count: AtomicU32,
}

impl RLock {
    fn new(core: LockCore) -> Self {
        RLock {
            core,
            count: AtomicU32::new(0),
        }
    }

    fn take(&self, py: Python<'_>, wait: Option<Option<Duration>>) -> PyResult<bool> {
        let r = self.core.take(py, wait)?;
        if let Err(RawLockError::WouldDeadlock) = r {
            // Relaxed: only the holding thread changes the count.
            if self.count.load(Ordering::Relaxed) == 0 {
                return Err(Fail::new(
                    Kind::Runtime,
                    "this thread holds the lock through another handle; recursion is counted \
                     per handle: acquire it through the same RLock object",
                )
                .into());
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        if r.is_ok() {
            // Taken now (also with OwnerDied, which may raise below with the lock held).
            self.count.store(1, Ordering::Relaxed);
        }
        Ok(matches!(self.core.judge(r)?, Took::Held))
    }
}

#[pymethods]
impl RLock {
    /// Creates the named recursive lock `name`.
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn create(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(RLock::new(make_lock(
            "create",
            Some(name),
            raise_owner_died,
        )?))
    }

    /// Opens the named recursive lock (a `Lock`'s segment works too).
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn open(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(RLock::new(make_lock("open", Some(name), raise_owner_died)?))
    }

    /// Opens the named recursive lock, or creates it if missing.
    #[staticmethod]
    #[pyo3(signature = (name, *, raise_owner_died = false))]
    fn open_or_create(name: &str, raise_owner_died: bool) -> PyResult<Self> {
        Ok(RLock::new(make_lock(
            "open_or_create",
            Some(name),
            raise_owner_died,
        )?))
    }

    /// A recursive lock in anonymous shared memory, shared with `os.fork()` children.
    #[staticmethod]
    #[pyo3(signature = (*, raise_owner_died = false))]
    fn anonymous(raise_owner_died: bool) -> PyResult<Self> {
        Ok(RLock::new(make_lock("anonymous", None, raise_owner_died)?))
    }

    /// Acquires the lock, or one more level of it if this thread holds it: `True`, or
    /// `False` if not acquired in time (see `Lock.acquire`).
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = block_arg(blocking, timeout)?;
        self.take(py, wait)
    }

    /// Releases one level; the lock is free after as many releases as acquires.
    /// `RuntimeError` if this thread does not hold it.
    fn release(&self) -> PyResult<()> {
        if !self.core.held_by_me() {
            return self.core.release();
        }
        // Relaxed: only the holding thread changes the count.
        let n = self.count.load(Ordering::Relaxed);
        if n <= 1 {
            self.count.store(0, Ordering::Relaxed);
            self.core.release()
        } else {
            self.count.store(n - 1, Ordering::Relaxed);
            Ok(())
        }
    }

    /// Whether anyone holds the lock right now (a snapshot).
    fn locked(&self) -> bool {
        self.core.home.raw().is_locked()
    }

    /// As `Lock.owner_died`.
    #[getter]
    fn owner_died(&self) -> bool {
        self.core.home.raw().is_poisoned()
    }

    /// As `Lock.make_consistent`.
    fn make_consistent(&self) -> PyResult<()> {
        self.core.make_consistent()
    }

    /// The segment's name (`None` for an anonymous lock).
    #[getter]
    fn name(&self) -> Option<String> {
        self.core.name()
    }

    /// Acquires for a `with` block, waiting without a limit (a `NamedLock` waits its
    /// `timeout`, then raises `TimeoutError`).
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.take(py, Some(None)) {
            Ok(_) => Ok(true),
            Err(e) => {
                if self.core.raise_owner_died && self.core.held_by_me() {
                    self.release()?;
                }
                Err(e)
            }
        }
    }

    /// Releases at the end of a `with` block; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = named(slf.get().core.name(), "RLock")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }
}
