//! `Ring`: shmkit's single-producer single-consumer ring of byte messages.

use std::ffi::{c_char, c_int};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyTuple};
use shmkit_typed::{ReadError, Ring as RustRing, WriteError};

use crate::{create_fail, ooc_fail, open_fail, timeout_arg, wait_sliced, Fail, Kind};

/// The default capacity: 4 MiB (as Rust's `DEFAULT_RING_CAPACITY`).
const DEFAULT_CAPACITY: usize = shmkit_typed::ring::DEFAULT_RING_CAPACITY;

/// `PyBUF_READ`: a read-only memoryview.
const PYBUF_READ: c_int = 0x100;

fn write_fail(e: WriteError) -> Fail {
    let kind = match &e {
        WriteError::TooLarge { .. } => Kind::Value,
        WriteError::Closed => Kind::Closed,
        WriteError::PeerDied { .. } => Kind::PeerDied,
        WriteError::Timeout => Kind::Timeout,
        _ => Kind::Shmkit,
    };
    Fail::new(kind, e.to_string())
}

fn read_fail(e: ReadError) -> Fail {
    let kind = match &e {
        ReadError::Closed => Kind::Closed,
        ReadError::PeerDied { .. } => Kind::PeerDied,
        ReadError::Timeout => Kind::Timeout,
        _ => Kind::Shmkit,
    };
    Fail::new(kind, e.to_string())
}

/// A one-way stream of byte messages from one writer process to one reader process,
/// through shared memory (a Rust `shmkit_typed::Ring`: Rust and Python processes may
/// be either side).
///
/// The first `write` through a handle makes it the writer, the first read the reader.
/// A reader whose writer died gets every complete message, then `shmkit.PeerDied`; a
/// writer whose reader died while the ring is full gets `shmkit.PeerDied`. `close()`
/// ends the stream: the reader drains it, then gets `shmkit.Closed` (an `EOFError`),
/// and iteration (`for msg in ring`) stops.
///
/// >>> w = shmkit.Ring.create("ticks", 1 << 16)   # the reader: shmkit.Ring.open("ticks")
/// >>> w.write(b"hello")
/// >>> r = shmkit.Ring.open("ticks")
/// >>> r.read()
/// b'hello'
/// >>> w.write(b"abc"); r.read_into(lambda m: bytes(m[1:]))   # m: a memoryview, zero-copy
/// b'bc'
#[pyclass(module = "shmkit", frozen)]
pub struct Ring {
    inner: Mutex<Option<RustRing>>,
    name: Option<String>,
    capacity: usize,
    max_message_len: usize,
}

impl Ring {
    fn wrap(ring: RustRing) -> Self {
        let name = ring.segment().and_then(|s| s.name()).map(str::to_owned);
        Ring {
            capacity: ring.capacity(),
            max_message_len: ring.max_message_len(),
            inner: Mutex::new(Some(ring)),
            name,
        }
    }

    /// [`with`](Self::with) from a thread holding the GIL: the GIL is released while the
    /// handle's mutex is taken (another thread may hold it in a blocking call).
    fn with_released<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RustRing) -> Result<R, Fail> + Send,
    ) -> Result<R, Fail> {
        py.allow_threads(|| self.with(f))
    }

    /// Runs `f` on the ring handle (a std mutex serialises threads of this process;
    /// taken with the GIL released where `f` blocks).
    fn with<R>(&self, f: impl FnOnce(&mut RustRing) -> Result<R, Fail>) -> Result<R, Fail> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(ring) => f(ring),
            None => Err(Fail::new(
                Kind::Value,
                "this shmkit.Ring handle was detached (detach() or the end of a with block)",
            )),
        }
    }
}

#[pymethods]
impl Ring {
    /// Creates the named ring `name` of `capacity` data bytes (a power of two from 64
    /// B to 1 GiB; default 4 MiB). `shmkit.AlreadyExists` if taken.
    #[staticmethod]
    #[pyo3(signature = (name, capacity = DEFAULT_CAPACITY))]
    fn create(name: &str, capacity: usize) -> PyResult<Self> {
        Ok(Ring::wrap(
            RustRing::create(name, capacity).map_err(create_fail)?,
        ))
    }

    /// Opens the named ring another process (Python or Rust) created.
    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(Ring::wrap(RustRing::open(name).map_err(open_fail)?))
    }

    /// Opens the named ring, or creates it with `capacity` if missing.
    #[staticmethod]
    #[pyo3(signature = (name, capacity = DEFAULT_CAPACITY))]
    fn open_or_create(name: &str, capacity: usize) -> PyResult<Self> {
        Ok(Ring::wrap(
            RustRing::open_or_create(name, capacity).map_err(ooc_fail)?,
        ))
    }

    /// A ring in anonymous shared memory, shared with `os.fork()` children (one side
    /// writes, the other reads).
    #[staticmethod]
    #[pyo3(signature = (capacity = DEFAULT_CAPACITY))]
    fn anonymous(capacity: usize) -> PyResult<Self> {
        Ok(Ring::wrap(
            RustRing::anonymous(capacity).map_err(create_fail)?,
        ))
    }

    /// Writes one message (bytes or bytearray), waiting (GIL released) for space, at
    /// most `timeout` seconds if given (`TimeoutError`). `ValueError` if it can never
    /// fit; `shmkit.PeerDied` if the reader died; `shmkit.Closed` after `close()`.
    #[pyo3(signature = (data, timeout = None))]
    fn write(&self, py: Python<'_>, data: PyBackedBytes, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        let r = wait_sliced(py, timeout, |slice| {
            match self.with(|ring| ring.write_timeout(&data, slice).map_err(write_fail)) {
                Err(f) if f.kind == Kind::Timeout => None,
                other => Some(other),
            }
        })?;
        match r {
            Some(r) => Ok(r?),
            None => Err(write_fail(WriteError::Timeout).into()),
        }
    }

    /// Writes one message if there is space now: `True`, or `False` if the ring is full.
    fn try_write(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<bool> {
        match self.with_released(py, |ring| Ok(ring.try_write(&data))) {
            Ok(Ok(())) => Ok(true),
            Ok(Err(WriteError::Full)) => Ok(false),
            Ok(Err(e)) => Err(write_fail(e).into()),
            Err(f) => Err(f.into()),
        }
    }

    /// Reads the next message as `bytes`, waiting (GIL released) at most `timeout`
    /// seconds if given (`TimeoutError`). `shmkit.Closed` once closed and drained,
    /// `shmkit.PeerDied` once the writer died and every complete message was read.
    #[pyo3(signature = (timeout = None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        let timeout = timeout_arg(timeout)?;
        let r = wait_sliced(py, timeout, |slice| {
            let mut buf = Vec::new();
            match self.with(|ring| ring.read_into_timeout(&mut buf, slice).map_err(read_fail)) {
                Err(f) if f.kind == Kind::Timeout => None,
                other => Some(other.map(|_| buf)),
            }
        })?;
        match r {
            Some(buf) => Ok(PyBytes::new(py, &buf?).unbind()),
            None => Err(read_fail(ReadError::Timeout).into()),
        }
    }

    /// Reads the next message if there is one now: `bytes`, or `None` if the ring is
    /// empty. Errors as `read`.
    fn try_read(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let mut buf = Vec::new();
        match self.with_released(py, |ring| Ok(ring.try_read_into(&mut buf))) {
            Ok(Ok(_)) => Ok(Some(PyBytes::new(py, &buf).unbind())),
            Ok(Err(ReadError::Empty)) => Ok(None),
            Ok(Err(e)) => Err(read_fail(e).into()),
            Err(f) => Err(f.into()),
        }
    }

    /// Reads the next message in place: calls `callback(view)` with a read-only
    /// `memoryview` of the message in shared memory (no copy) and returns what it
    /// returns. The view is released when the callback returns (`BufferError` if the
    /// callback kept exports of it alive); copy what you keep (`bytes(view)`). The
    /// message is consumed even if the callback raises (its exception is re-raised).
    /// Waits as `read`.
    #[pyo3(signature = (callback, timeout = None))]
    fn read_into(
        &self,
        py: Python<'_>,
        callback: PyObject,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        let timeout = timeout_arg(timeout)?;
        let r = wait_sliced(py, timeout, |slice| {
            let read = self.with(|ring| {
                ring.read_with_timeout(slice, |msg| {
                    Python::with_gil(|py| call_with_view(py, &callback, msg))
                })
                .map_err(read_fail)
            });
            match read {
                Err(f) if f.kind == Kind::Timeout => None,
                other => Some(other),
            }
        })?;
        match r {
            Some(r) => r?,
            None => Err(read_fail(ReadError::Timeout).into()),
        }
    }

    /// Closes the stream for everyone: the reader reads what is left, then gets
    /// `shmkit.Closed`. Makes this handle the writer if it is not yet.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        Ok(self.with_released(py, |ring| ring.close().map_err(write_fail))?)
    }

    /// Lets go of this handle: its roles are released (a writer's release closes the
    /// ring), the mapping is dropped. Later calls on it raise `ValueError`.
    fn detach(&self, py: Python<'_>) {
        let ring = py.allow_threads(|| self.inner.lock().unwrap_or_else(|p| p.into_inner()).take());
        drop(ring);
    }

    /// Whether the writer has closed the ring (messages may still be unread).
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.with_released(py, |ring| Ok(ring.is_closed()))?)
    }

    /// Data capacity in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest message this ring carries (capacity minus 16: its header and the next).
    #[getter]
    fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    /// Iterates (see the class docs).
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next message; the iteration stops at `Closed`.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        match self.read(py, None) {
            Ok(b) => Ok(Some(b)),
            Err(e) if is_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Returns the ring itself; `with` detaches the handle at the end (see `detach`).
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Detaches the handle (see `detach`).
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.detach(py);
        false
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = crate::lock::named(slf.get().name.clone(), "Ring")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }

    /// A short description with the name.
    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Ring {}>",
            self.name.clone().unwrap_or_else(|| "anonymous".into())
        )
    }
}

fn is_closed(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<pyo3::exceptions::PyEOFError>(py)
}

/// Calls `callback` with a read-only memoryview of `msg`, released after the call.
fn call_with_view(py: Python<'_>, callback: &PyObject, msg: &[u8]) -> PyResult<PyObject> {
    // SAFETY: `msg` stays valid for the whole call (the ring hands it to us until our
    // closure returns); the view is read-only (PyBUF_READ) and is released below before
    // we return, so it never outlives the message. The result is a new reference or
    // NULL with an exception set, which `from_owned_ptr_or_err` handles.
    let view = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyMemoryView_FromMemory(
                msg.as_ptr().cast::<c_char>().cast_mut(),
                msg.len() as pyo3::ffi::Py_ssize_t,
                PYBUF_READ,
            ),
        )?
    };
    let result = callback.call1(py, (&view,));
    let released = view.call_method0("release");
    let result = result?;
    released?;
    Ok(result)
}
