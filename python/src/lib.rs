//! `shmkit` for Python: crash-safe locks, typed values, arrays, byte rings and queues in
//! shared memory, opened by name so that Python and Rust processes share the same objects.
//!
//! Every class here wraps the Rust type of the same segment layout (see README.md's
//! Python section for the table), so `shmkit.Value.create("n", "q", 0)` in Python and
//! `SharedValue::<i64>::open("n")` in Rust are the same value.
//!
//! Blocking calls release the GIL and wait in slices of `SLICE` (100 ms), checking for signals
//! between slices, so Ctrl-C interrupts them with `KeyboardInterrupt`.

use std::time::{Duration, Instant};

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError,
    PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};

mod fast;
mod lock;
mod plain_data;
mod queue;
mod ring;
mod sync;
mod value;

/// How long one GIL-released wait lasts before signals (Ctrl-C) are checked.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The Python exception classes of this module (made at import, see [`make_exceptions`]).
struct Exceptions {
    base: Py<PyType>,
    owner_died: Py<PyType>,
    peer_died: Py<PyType>,
    closed: Py<PyType>,
    not_found: Py<PyType>,
    exists: Py<PyType>,
    type_mismatch: Py<PyType>,
}

static EXCEPTIONS: GILOnceCell<Exceptions> = GILOnceCell::new();

/// Which Python exception a [`Fail`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `shmkit.ShmkitError`.
    Shmkit,
    /// `shmkit.OwnerDied`.
    OwnerDied,
    /// `shmkit.PeerDied`.
    PeerDied,
    /// `shmkit.Closed` (also an `EOFError`).
    Closed,
    /// `shmkit.NotFound` (also a `FileNotFoundError`).
    NotFound,
    /// `shmkit.AlreadyExists` (also a `FileExistsError`).
    Exists,
    /// `shmkit.TypeMismatch` (also a `TypeError`).
    TypeMismatch,
    /// `TimeoutError`.
    Timeout,
    /// `ValueError`.
    Value,
    /// `RuntimeError`.
    Runtime,
    /// `PermissionError`.
    Permission,
    /// `OSError`.
    Os,
    /// `threading.BrokenBarrierError`.
    BrokenBarrier,
}

/// An error on its way to Python: `Send`, so it can leave a GIL-released section, and
/// turned into the Python exception of its [`Kind`] by `?`.
#[derive(Debug)]
pub(crate) struct Fail {
    kind: Kind,
    msg: String,
}

impl Fail {
    pub(crate) fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Fail {
            kind,
            msg: msg.into(),
        }
    }
}

impl From<Fail> for PyErr {
    fn from(f: Fail) -> PyErr {
        Python::with_gil(|py| {
            let exc = EXCEPTIONS.get(py);
            let own = |pick: fn(&Exceptions) -> &Py<PyType>| match exc {
                Some(e) => PyErr::from_type(pick(e).bind(py).clone(), f.msg.clone()),
                None => PyRuntimeError::new_err(f.msg.clone()),
            };
            match f.kind {
                Kind::Shmkit => own(|e| &e.base),
                Kind::OwnerDied => own(|e| &e.owner_died),
                Kind::PeerDied => own(|e| &e.peer_died),
                Kind::Closed => own(|e| &e.closed),
                Kind::NotFound => own(|e| &e.not_found),
                Kind::Exists => own(|e| &e.exists),
                Kind::TypeMismatch => own(|e| &e.type_mismatch),
                Kind::Timeout => PyTimeoutError::new_err(f.msg),
                Kind::Value => PyValueError::new_err(f.msg),
                Kind::Runtime => PyRuntimeError::new_err(f.msg),
                Kind::Permission => PyPermissionError::new_err(f.msg),
                Kind::Os => PyOSError::new_err(f.msg),
                Kind::BrokenBarrier => match py
                    .import("threading")
                    .and_then(|t| t.getattr("BrokenBarrierError"))
                    .and_then(|c| Ok(c.downcast_into::<PyType>()?))
                {
                    Ok(ty) => PyErr::from_type(ty, f.msg),
                    Err(e) => e,
                },
            }
        })
    }
}

/// The segment layer's open errors, by kind.
fn segment_open_kind(e: &shmkit_segment::OpenError) -> Kind {
    use shmkit_segment::OpenError as E;
    match e {
        E::NotFound { .. } => Kind::NotFound,
        E::InvalidName { .. } | E::SizeMismatch { .. } => Kind::Value,
        E::PermissionDenied { .. } => Kind::Permission,
        E::TypeMismatch { .. } => Kind::TypeMismatch,
        E::Timeout { .. } => Kind::Timeout,
        _ => Kind::Shmkit,
    }
}

/// An open error of a typed object.
pub(crate) fn open_fail(e: shmkit_typed::OpenError) -> Fail {
    use shmkit_typed::OpenError as E;
    let kind = match &e {
        E::TypeMismatch { .. } => Kind::TypeMismatch,
        E::LengthMismatch { .. }
        | E::Channel(shmkit_typed::ChannelLayoutError::MessageBoundMismatch { .. }) => Kind::Value,
        E::Segment(s) => segment_open_kind(s),
        _ => Kind::Shmkit,
    };
    Fail::new(kind, e.to_string())
}

/// A create error of a typed object.
pub(crate) fn create_fail(e: shmkit_typed::CreateError) -> Fail {
    use shmkit_segment::CreateError as S;
    use shmkit_typed::CreateError as E;
    let kind = match &e {
        E::Segment(S::AlreadyExists { .. }) => Kind::Exists,
        E::Segment(S::InvalidName { .. } | S::ZeroSize | S::TooLarge { .. }) => Kind::Value,
        E::Segment(S::PermissionDenied { .. }) => Kind::Permission,
        E::Segment(S::NoSpace { .. }) => Kind::Os,
        E::Ring(_) | E::Queue(_) | E::Channel(_) | E::ZeroLength | E::TooLarge { .. } => {
            Kind::Value
        }
        _ => Kind::Shmkit,
    };
    Fail::new(kind, e.to_string())
}

/// An `open_or_create` error of a typed object.
pub(crate) fn ooc_fail(e: shmkit_typed::OpenOrCreateError) -> Fail {
    use shmkit_typed::OpenOrCreateError as E;
    match e {
        E::Create(c) => create_fail(c),
        E::Open(o) => open_fail(o),
        other => Fail::new(Kind::Shmkit, other.to_string()),
    }
}

/// A Python timeout (seconds; `None` or a negative number: no limit) as a `Duration`.
///
/// `-1` is `threading.Lock.acquire`'s "forever"; any other negative number is refused
/// as the stdlib refuses it.
pub(crate) fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(-1.0) => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(
            "timeout must be a non-negative number of seconds (or None / -1 for no limit)",
        )),
        Some(t) if t.is_infinite() || t > 1e9 => Ok(None),
        Some(t) => Ok(Some(Duration::from_secs_f64(t))),
    }
}

/// Waits with the GIL released, one slice at a time: `attempt(slice)` waits at most
/// `slice` and returns `Some` when done (success or an error other than a timeout),
/// `None` when the slice ran out. Between slices pending signals are handled (Ctrl-C
/// raises `KeyboardInterrupt` here). Returns `Ok(None)` when `timeout` passed.
pub(crate) fn wait_sliced<R: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut attempt: impl FnMut(Duration) -> Option<R> + Send,
) -> PyResult<Option<R>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        if let Some(r) = py.allow_threads(|| attempt(slice)) {
            return Ok(Some(r));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// `blocking`/`timeout` as `threading.Lock.acquire` takes them: `None` = try once,
/// `Some(None)` = wait forever, `Some(Some(t))` = wait at most `t`.
pub(crate) fn block_arg(block: bool, timeout: Option<f64>) -> PyResult<Option<Option<Duration>>> {
    if !block {
        if timeout.is_some_and(|t| t != -1.0) {
            return Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        return Ok(None);
    }
    Ok(Some(timeout_arg(timeout)?))
}

/// Makes exception class `name` with `bases`, adds it to the module.
fn make_exception(
    py: Python<'_>,
    m: &Bound<'_, PyModule>,
    name: &str,
    bases: Vec<Bound<'_, PyType>>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__doc__", doc)?;
    dict.set_item("__module__", "shmkit")?;
    let ty = py
        .get_type::<PyType>()
        .call1((name, PyTuple::new(py, bases)?, dict))?
        .downcast_into::<PyType>()?;
    m.add(name, &ty)?;
    Ok(ty.unbind())
}

fn make_exceptions(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    use pyo3::exceptions::{PyEOFError, PyException};
    let base = make_exception(
        py,
        m,
        "ShmkitError",
        vec![py.get_type::<PyException>()],
        "Base class of every shmkit error.",
    )?;
    let b = || base.bind(py).clone();
    let owner_died = make_exception(
        py,
        m,
        "OwnerDied",
        vec![b()],
        "A lock's previous holder died while holding it. Raised only by locks made with \
         raise_owner_died=True; the lock is then held by the caller (repair the data, call \
         make_consistent(), release()).",
    )?;
    let peer_died = make_exception(
        py,
        m,
        "PeerDied",
        vec![b()],
        "The process on the other side (a ring's writer or reader, a barrier party) died.",
    )?;
    let closed = make_exception(
        py,
        m,
        "Closed",
        vec![b(), py.get_type::<PyEOFError>()],
        "The ring was closed by its writer and every message has been read.",
    )?;
    let not_found = make_exception(
        py,
        m,
        "NotFound",
        vec![b(), py.get_type::<PyFileNotFoundError>()],
        "No shared-memory object of that name exists.",
    )?;
    let exists = make_exception(
        py,
        m,
        "AlreadyExists",
        vec![b(), py.get_type::<PyFileExistsError>()],
        "create(): an object of that name exists already (use open or open_or_create).",
    )?;
    let type_mismatch = make_exception(
        py,
        m,
        "TypeMismatch",
        vec![b(), py.get_type::<PyTypeError>()],
        "The named segment holds another object or element type than the one asked for.",
    )?;
    let _ = EXCEPTIONS.set(
        py,
        Exceptions {
            base,
            owner_died,
            peer_died,
            closed,
            not_found,
            exists,
            type_mismatch,
        },
    );
    Ok(())
}

/// Removes the named shared-memory segment `name` (as `shmkit rm NAME`), whoever
/// created it. Processes that have it open keep using it; the name is free again.
///
/// Raises `shmkit.NotFound` if there is no such segment.
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    shmkit_segment::remove(name).map_err(|e| {
        let kind = match &e {
            shmkit_segment::RemoveError::NotFound { .. } => Kind::NotFound,
            shmkit_segment::RemoveError::InvalidName { .. } => Kind::Value,
            shmkit_segment::RemoveError::PermissionDenied { .. } => Kind::Permission,
            _ => Kind::Os,
        };
        Fail::new(kind, e.to_string()).into()
    })
}

/// Crash-safe inter-process primitives in shared memory, shared with Rust processes.
///
/// Every object is made and found by name, as in Rust: `X.create(name, ...)`,
/// `X.open(name, ...)`, `X.open_or_create(name, ...)`, and `X.anonymous(...)` for
/// memory shared with children made by `os.fork()` afterwards.
///
/// Example (one process; another would use `open`):
///
/// >>> import shmkit
/// >>> counter = shmkit.Value.create("doc-counter", "q", 0)
/// >>> with counter.get_lock():
/// ...     counter.value += 1
/// >>> shmkit.Value.open("doc-counter", "q").value
/// 1
#[pymodule]
fn shmkit(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    make_exceptions(py, m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_class::<lock::Lock>()?;
    m.add_class::<lock::RLock>()?;
    m.add_class::<value::Value>()?;
    m.add_class::<value::Array>()?;
    m.add_class::<ring::Ring>()?;
    m.add_class::<queue::Queue>()?;
    m.add_class::<sync::Semaphore>()?;
    m.add_class::<sync::Event>()?;
    m.add_class::<sync::Barrier>()?;
    m.add_class::<sync::NamedLock>()?;
    m.add_class::<sync::FileLock>()?;
    fast::install_fast_methods(py)?;
    m.add("TYPECODES", value::TYPECODES)?;
    Ok(())
}
