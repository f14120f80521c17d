//! `Queue`: the `multiprocessing.Queue` API over shmkit's `Channel` (many putters, many
//! getters, every item to exactly one getter), shared with Rust processes.
//!
//! # The record format (Python and Rust share it)
//! The channel's type tag names [`QUEUE_TYPE_NAME`] (`"shmkit.Queue/3"`: a Rust
//! process opens the queue as `Channel::<Vec<u8>, N>` with a `TypeName` `N` returning
//! that string, and uses the bytes paths `send_with`/`recv_with`). Every record is one
//! tag byte, then the payload:
//! - [`TAG_BYTES`] (0): raw bytes. `put(b)` of an exact `bytes` object writes this;
//!   `get()` returns `bytes`.
//! - [`TAG_PICKLE`] (1): a pickle (protocol 5) of any other object; `get()` returns
//!   `pickle.loads(payload)`.
//! - [`TAG_INT`] (2): an exact `int` in the `i64` range, 8 bytes little-endian.
//! - [`TAG_STR`] (3): an exact `str`, UTF-8 (a `str` with lone surrogates, which
//!   UTF-8 cannot carry, is pickled instead).
//! - [`TAG_FLOAT`] (4): an exact `float`, 8 bytes little-endian (IEEE 754).
//! - [`TAG_DATA`] (5): plain data, `None`, `bool`, and `list`, `tuple`, `dict` of
//!   plain data and the scalars above, in the tree encoding of [`crate::plain_data`].
//!
//! The three scalar tags (format 2) spare the most common small items a pickle each
//! way, most of what a small item cost (a `pickle.dumps` of an int ~340 ns of a ~630 ns
//! `put`); plain data (format 3) does the same for the dicts and lists of scalars most
//! messages are. Formats 1 and 2 are refused at open by the type name.
//!
//! Any other tag, a scalar of the wrong length, or an empty record is refused by
//! `get()` (the record is consumed).
//!
//! # Handles
//! A Rust `Channel` handle carries one operation at a time (`Send`, not `Sync`) and
//! takes its sender or receiver role on first use. A `Queue` keeps an idle pool of
//! handles per side: a call takes one (or clones a new one), uses it, gives it back, so
//! threads of one process put and get at once, and a process that only puts is never
//! registered as a getter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString, PyType};
use shmkit_typed::{Channel, ChannelBounds, RecvError, SendError, TypeName};

use crate::plain_data::{self, Encoder};
use crate::{create_fail, ooc_fail, open_fail, wait_sliced, Fail, Kind};

/// The name of the queue's message type in the channel's type tag.
pub(crate) const QUEUE_TYPE_NAME: &str = "shmkit.Queue/3";
/// Record tag: the payload is raw bytes.
pub(crate) const TAG_BYTES: u8 = 0;
/// Record tag: the payload is a pickle.
pub(crate) const TAG_PICKLE: u8 = 1;
/// Record tag: an `int`, `i64` little-endian.
pub(crate) const TAG_INT: u8 = 2;
/// Record tag: a `str`, UTF-8.
pub(crate) const TAG_STR: u8 = 3;
/// Record tag: a `float`, `f64` little-endian.
pub(crate) const TAG_FLOAT: u8 = 4;
/// Record tag: plain data ([`crate::plain_data`]).
pub(crate) const TAG_DATA: u8 = 5;
/// The pickle protocol of [`TAG_PICKLE`] records (every CPython >= 3.8 reads it).
const PICKLE_PROTOCOL: u8 = 5;
/// The default capacity: 1 MiB.
const DEFAULT_CAPACITY: usize = 1 << 20;
/// The smallest record (a stamp, a tag byte padded to 8) and the next record's stamp:
/// with fewer free bytes the queue is `full()`.
const MIN_RECORD: usize = 24;

/// The [`TypeName`] of the queue's channel: [`QUEUE_TYPE_NAME`].
pub(crate) enum QueueFormat {}

impl TypeName for QueueFormat {
    fn name<T: ?Sized>() -> &'static str {
        QUEUE_TYPE_NAME
    }
}

type Chan = Channel<(), QueueFormat>;

static DUMPS: GILOnceCell<PyObject> = GILOnceCell::new();
static LOADS: GILOnceCell<PyObject> = GILOnceCell::new();
static FULL: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static EMPTY: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn pickle_fn<'py>(
    py: Python<'py>,
    cell: &'static GILOnceCell<PyObject>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    Ok(cell
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("pickle")?.getattr(name)?.unbind())
        })?
        .bind(py))
}

/// `queue.Full` (the timeout passed, or `block=False` and no room).
fn full(py: Python<'_>, msg: String) -> PyErr {
    match FULL.import(py, "queue", "Full") {
        Ok(ty) => PyErr::from_type(ty.clone(), msg),
        Err(e) => e,
    }
}

/// `queue.Empty` (the timeout passed, or `block=False` and nothing queued).
fn empty(py: Python<'_>, msg: String) -> PyErr {
    match EMPTY.import(py, "queue", "Empty") {
        Ok(ty) => PyErr::from_type(ty.clone(), msg),
        Err(e) => e,
    }
}

fn send_fail(py: Python<'_>, e: SendError<()>) -> PyErr {
    let msg = e.to_string();
    match e {
        SendError::Full(()) | SendError::Timeout(()) => full(py, msg),
        SendError::Disconnected(()) => Fail::new(
            Kind::Closed,
            "every getter of the queue has left (closed it, exited or was killed): the item \
             was not put",
        )
        .into(),
        SendError::TooLarge { .. } => Fail::new(Kind::Value, msg).into(),
        SendError::Os(..) => Fail::new(Kind::Os, msg).into(),
        _ => Fail::new(Kind::Shmkit, msg).into(),
    }
}

fn recv_fail(py: Python<'_>, e: RecvError) -> PyErr {
    let msg = e.to_string();
    match e {
        RecvError::Empty | RecvError::Timeout => empty(py, msg),
        RecvError::Disconnected => Fail::new(
            Kind::Closed,
            "every putter of the queue has left (closed it, exited or was killed) and every \
             item was taken",
        )
        .into(),
        RecvError::Os(_) => Fail::new(Kind::Os, msg).into(),
        _ => Fail::new(Kind::Shmkit, msg).into(),
    }
}

/// A record as read: its tag, and its payload copied out (the record is released).
enum Got<B> {
    Item(u8, B),
    Bad(String),
}

/// What `put` writes after the tag byte.
enum Payload {
    /// A `bytes` object's own buffer, or a pickle.
    Bytes(PyBackedBytes),
    /// A `str`'s UTF-8 (CPython's cached copy).
    Text(PyBackedStr),
    /// An `int` or a `float`.
    Word([u8; 8]),
    /// Plain data, encoded.
    Owned(Vec<u8>),
}

impl Payload {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(b) => b,
            Payload::Text(t) => t.as_bytes(),
            Payload::Word(w) => w,
            Payload::Owned(v) => v,
        }
    }
}

fn split(b: &[u8]) -> Result<(u8, &[u8]), String> {
    match b.split_first() {
        Some((&tag @ (TAG_BYTES | TAG_PICKLE | TAG_STR | TAG_DATA), rest)) => Ok((tag, rest)),
        Some((&tag @ (TAG_INT | TAG_FLOAT), rest)) if rest.len() == 8 => Ok((tag, rest)),
        Some((&tag @ (TAG_INT | TAG_FLOAT), rest)) => Err(format!(
            "a queue record of tag {tag} (an 8-byte number) with {} payload bytes: it \
             was put by something else; it was consumed",
            rest.len()
        )),
        Some((&tag, _)) => Err(format!(
            "a queue record of tag {tag} (shmkit.Queue writes 0 for bytes, 1 for a pickle, \
             2 for an int, 3 for a str, 4 for a float, 5 for plain data): it was put by \
             something else; it was consumed"
        )),
        None => Err(
            "an empty queue record (shmkit.Queue records start with a tag byte): it \
                     was put by something else; it was consumed"
                .to_owned(),
        ),
    }
}

/// Waits for `block`/`timeout` as `queue.Queue` takes them: `None` = do not wait,
/// `Some(None)` = forever, `Some(Some(t))` = at most `t` (the timeout is ignored when
/// `block` is false, as `queue.Queue` and `multiprocessing.Queue` do).
fn queue_wait(block: bool, timeout: Option<f64>) -> PyResult<Option<Option<Duration>>> {
    if !block {
        return Ok(None);
    }
    match timeout {
        None => Ok(Some(None)),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        )),
        Some(t) if t.is_infinite() || t > 1e9 => Ok(Some(None)),
        Some(t) => Ok(Some(Some(Duration::from_secs_f64(t)))),
    }
}

/// The channel bounds for `maxsize_bytes` and a `multiprocessing`-style `maxsize`
/// (0 or less: no bound in items).
fn bounds(maxsize_bytes: usize, maxsize: i64) -> PyResult<ChannelBounds> {
    let b = ChannelBounds::bytes(maxsize_bytes);
    if maxsize <= 0 {
        return Ok(b);
    }
    match u32::try_from(maxsize) {
        Ok(n) => Ok(b.messages(n as usize)),
        Err(_) => Err(PyValueError::new_err(format!(
            "'maxsize' must be at most 4294967295 items, not {maxsize} (0 for no bound)"
        ))),
    }
}

/// A FIFO queue of Python objects and bytes between processes, through shared memory:
/// the `multiprocessing.Queue` API over a shmkit `Channel`, bounded by bytes and, if asked, by items.
///
/// Any number of processes (Python or Rust) put and get; every item goes to exactly
/// one getter, in the order each putter put them. `put` and `get` take `block` and
/// `timeout` and raise `queue.Full` / `queue.Empty`; blocking waits release the GIL and
/// Ctrl-C interrupts them.
///
/// Items: an exact `bytes` object travels raw (a Rust process reads it as is); exact
/// `int` (in the `i64` range), `str` and `float` travel as themselves; plain data
/// (`None`, `bool`, and `list`, `tuple`, `dict` of plain data and those scalars, each
/// container met once, at most 32 deep and 64 in all) in a small tree encoding; any
/// other object is pickled (protocol 5). A record is one tag byte (0 bytes, 1 pickle,
/// 2 int, 3 str, 4 float, 5 plain data), then the payload (docs/layout.md, `Channel`).
/// `maxsize_bytes` (a power of two, 64 B to 1 GiB) bounds the bytes queued, each item
/// taking 8 bytes plus its tag and payload rounded up to 8; `maxsize` (keyword, as
/// `multiprocessing.Queue(maxsize)`) bounds the items, exactly, with any number of
/// putters, and nothing is left to repair when one is killed (the count is of the
/// items themselves).
///
/// Differences from `multiprocessing.Queue`: `close()` lets go of this object's part
/// (as "this process puts no more"), and once *every* putter has left (closed, exited
/// or was killed) a `get` on the drained queue raises `shmkit.Closed` (an `EOFError`)
/// instead of waiting forever; a `put` once every getter has left raises it too. A
/// putter that comes later starts the stream again. `put` returns once the item is in
/// shared memory (no feeder thread: `join_thread`/`cancel_join_thread` do nothing).
/// An item whose getter is killed while taking it is lost (never delivered twice).
///
/// >>> q = shmkit.Queue.create("jobs")            # others: shmkit.Queue.open("jobs")
/// >>> q.put({"id": 1}); q.put(b"raw")
/// >>> q.get(), q.get()
/// ({'id': 1}, b'raw')
/// >>> q.get(timeout=0.1)
/// Traceback (most recent call last):
/// _queue.Empty: ...
#[pyclass(module = "shmkit", frozen)]
pub struct Queue {
    /// Never used to send or receive (it takes no role): what spare handles are cloned
    /// from, and what keeps the mapping (and a creator's name) until the object goes.
    proto: Mutex<Chan>,
    /// The handles that put.
    tx: Side,
    /// The handles that get.
    rx: Side,
    /// `close()` was called.
    closed: AtomicBool,
    name: Option<String>,
    capacity: usize,
    max_message_len: usize,
}

/// One side's handles: the primary, used by every call that finds it free (one
/// uncontended `try_lock`), and spares for calls made while another thread of this
/// process holds it (each spare takes its own registry entry once used).
struct Side {
    /// `None` once closed.
    primary: Mutex<Option<Chan>>,
    spares: Mutex<Vec<Chan>>,
}

impl Side {
    fn new(ch: Chan) -> Self {
        Side {
            primary: Mutex::new(Some(ch)),
            spares: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    fn wrap(ch: Chan) -> Self {
        let name = ch.segment().and_then(|s| s.name()).map(str::to_owned);
        Queue {
            capacity: ch.capacity(),
            max_message_len: ch.max_message_len().saturating_sub(1),
            tx: Side::new(ch.clone()),
            rx: Side::new(ch.clone()),
            proto: Mutex::new(ch),
            closed: AtomicBool::new(false),
            name,
        }
    }

    fn closed_err(&self) -> PyErr {
        PyValueError::new_err(format!(
            "{} is closed (close() was called on this object)",
            self.__repr__()
        ))
    }

    /// Runs `f` on a handle of `side`: the primary if no other thread of this process
    /// is using it, else a spare (cloned when none is idle). Callable with or without
    /// the GIL. `ValueError` after `close()`.
    fn with_handle<R>(&self, side: &Side, f: impl FnOnce(&Chan) -> R) -> PyResult<R> {
        let primary = match side.primary.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(g) = primary {
            return g.as_ref().map(f).ok_or_else(|| self.closed_err());
        }
        // Relaxed: a flag; the spares' mutex orders it with `close`.
        if self.closed.load(Ordering::Relaxed) {
            return Err(self.closed_err());
        }
        let spare = lock(&side.spares).pop();
        let ch = spare.unwrap_or_else(|| lock(&self.proto).clone());
        let r = f(&ch);
        let mut idle = lock(&side.spares);
        // Relaxed: `close` sets the flag before it takes this mutex to empty the spares
        // (after `close`, `ch` is dropped here: its role is released).
        if !self.closed.load(Ordering::Relaxed) {
            idle.push(ch);
        }
        Ok(r)
    }

    /// The record of `obj`: exact `bytes`, `int` (in `i64`), `str` and `float` by their
    /// own tags, plain data by its encoding, anything else pickled.
    fn encode<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<(u8, Payload)> {
        if let Ok(b) = obj.downcast_exact::<PyBytes>() {
            return Ok((TAG_BYTES, Payload::Bytes(PyBackedBytes::from(b.clone()))));
        }
        // Exact types only: `bool` (an `int` subclass) and other subclasses are pickled,
        // so that `get()` gives back the same type.
        if obj.downcast_exact::<PyInt>().is_ok() {
            // An int outside i64 fails the extraction and is pickled.
            if let Ok(v) = obj.extract::<i64>() {
                return Ok((TAG_INT, Payload::Word(v.to_le_bytes())));
            }
        } else if let Ok(f) = obj.downcast_exact::<PyFloat>() {
            return Ok((TAG_FLOAT, Payload::Word(f.value().to_le_bytes())));
        } else if let Ok(t) = obj.downcast_exact::<PyString>() {
            // A str with lone surrogates has no UTF-8: pickled.
            if let Ok(t) = PyBackedStr::try_from(t.clone()) {
                return Ok((TAG_STR, Payload::Text(t)));
            }
        }
        if let Some(data) = Encoder::encode(obj) {
            return Ok((TAG_DATA, Payload::Owned(data)));
        }
        let dumped = pickle_fn(py, &DUMPS, "dumps")?.call1((obj, PICKLE_PROTOCOL))?;
        Ok((
            TAG_PICKLE,
            Payload::Bytes(PyBackedBytes::from(dumped.downcast_into::<PyBytes>()?)),
        ))
    }

    /// The object of a record `split` accepted; a pickle comes back as its `bytes`, for
    /// [`Queue::decode`] to load once the record is released.
    fn object<'py>(py: Python<'py>, tag: u8, payload: &[u8]) -> Got<Bound<'py, PyAny>> {
        let word = || <[u8; 8]>::try_from(payload).unwrap_or_default();
        let obj = match tag {
            TAG_INT => i64::from_le_bytes(word())
                .into_pyobject(py)
                .map(Bound::into_any),
            TAG_FLOAT => Ok(PyFloat::new(py, f64::from_le_bytes(word())).into_any()),
            TAG_STR => match std::str::from_utf8(payload) {
                Ok(t) => Ok(PyString::new(py, t).into_any()),
                Err(e) => {
                    return Got::Bad(format!(
                        "a queue record of tag 3 (a str) that is not UTF-8 ({e}): it was put \
                         by something else; it was consumed"
                    ));
                }
            },
            TAG_DATA => match plain_data::decode(py, payload) {
                Ok(o) => Ok(o),
                Err(e) => {
                    return Got::Bad(format!(
                        "a queue record of tag 5 (plain data) that does not decode: {e}; it \
                         was put by something else; it was consumed"
                    ));
                }
            },
            _ => Ok(PyBytes::new(py, payload).into_any()),
        };
        match obj {
            Ok(o) => Got::Item(tag, o),
            Err(e) => Got::Bad(e.to_string()),
        }
    }

    fn decode(py: Python<'_>, got: Got<Bound<'_, PyAny>>) -> PyResult<PyObject> {
        match got {
            Got::Item(TAG_PICKLE, b) => Ok(pickle_fn(py, &LOADS, "loads")?.call1((b,))?.unbind()),
            Got::Item(_, o) => Ok(o.unbind()),
            Got::Bad(msg) => Err(Fail::new(Kind::Value, msg).into()),
        }
    }

    fn put_record(
        &self,
        py: Python<'_>,
        tag: u8,
        data: Payload,
        wait: Option<Option<Duration>>,
    ) -> PyResult<()> {
        let data = &data;
        let len = data.as_bytes().len() + 1;
        let fill = |buf: &mut [u8]| {
            buf[0] = tag;
            buf[1..].copy_from_slice(data.as_bytes());
        };
        // The fast path keeps the GIL: no wait, so nothing to release it for.
        let r = match self.with_handle(&self.tx, |ch| ch.try_send_with(len, fill))? {
            Err(SendError::Full(())) if wait.is_some() => {
                let r = wait_sliced(py, wait.flatten(), |slice| {
                    match self.with_handle(&self.tx, |ch| ch.send_with_timeout(len, slice, fill)) {
                        Ok(Err(SendError::Timeout(()))) => None,
                        other => Some(other),
                    }
                })?;
                match r {
                    Some(r) => r?,
                    None => Err(SendError::Timeout(())),
                }
            }
            other => other,
        };
        r.map_err(|e| send_fail(py, e))
    }

    fn get_record(&self, py: Python<'_>, wait: Option<Option<Duration>>) -> PyResult<PyObject> {
        // The fast path keeps the GIL and copies the payload straight into `bytes`.
        let fast = self.with_handle(&self.rx, |ch| {
            ch.try_recv_with(|b| match split(b) {
                Ok((tag, payload)) => Self::object(py, tag, payload),
                Err(msg) => Got::Bad(msg),
            })
        })?;
        let r = match fast {
            Err(RecvError::Empty) if wait.is_some() => {
                let r = wait_sliced(py, wait.flatten(), |slice| {
                    let got = self.with_handle(&self.rx, |ch| {
                        ch.recv_with_timeout(slice, |b| match split(b) {
                            Ok((tag, payload)) => Got::Item(tag, payload.to_vec()),
                            Err(msg) => Got::Bad(msg),
                        })
                    });
                    match got {
                        Ok(Err(RecvError::Timeout)) => None,
                        other => Some(other),
                    }
                })?;
                match r {
                    Some(got) => match got? {
                        Ok(Got::Item(tag, v)) => Ok(Self::object(py, tag, &v)),
                        Ok(Got::Bad(msg)) => Ok(Got::Bad(msg)),
                        Err(e) => Err(e),
                    },
                    None => Err(RecvError::Timeout),
                }
            }
            other => other,
        };
        Self::decode(py, r.map_err(|e| recv_fail(py, e))?)
    }
}

#[pymethods]
impl Queue {
    /// Creates the named queue `name` holding up to `maxsize_bytes` bytes (a power of
    /// two from 64 B to 1 GiB; default 1 MiB) and, if `maxsize` > 0, up to `maxsize`
    /// items (as `multiprocessing.Queue(maxsize)`; 0 or less: no bound in items).
    /// `shmkit.AlreadyExists` if taken. The name is removed when this object is
    /// garbage-collected in the creating process.
    #[staticmethod]
    #[pyo3(signature = (name, maxsize_bytes = DEFAULT_CAPACITY, *, maxsize = 0))]
    fn create(name: &str, maxsize_bytes: usize, maxsize: i64) -> PyResult<Self> {
        let bounds = bounds(maxsize_bytes, maxsize)?;
        Ok(Queue::wrap(
            Chan::create(name, bounds).map_err(create_fail)?,
        ))
    }

    /// Opens the named queue another process (Python or Rust) created.
    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(Queue::wrap(Chan::open(name).map_err(open_fail)?))
    }

    /// Opens the named queue, or creates it with `maxsize_bytes` and `maxsize` if
    /// missing; an existing queue with other bounds raises `ValueError`.
    #[staticmethod]
    #[pyo3(signature = (name, maxsize_bytes = DEFAULT_CAPACITY, *, maxsize = 0))]
    fn open_or_create(name: &str, maxsize_bytes: usize, maxsize: i64) -> PyResult<Self> {
        let bounds = bounds(maxsize_bytes, maxsize)?;
        Ok(Queue::wrap(
            Chan::open_or_create(name, bounds).map_err(ooc_fail)?,
        ))
    }

    /// A queue in anonymous shared memory, shared with children made by `os.fork()`
    /// after this call (a `multiprocessing` "fork" context passes it as is).
    #[staticmethod]
    #[pyo3(signature = (maxsize_bytes = DEFAULT_CAPACITY, *, maxsize = 0))]
    fn anonymous(maxsize_bytes: usize, maxsize: i64) -> PyResult<Self> {
        let bounds = bounds(maxsize_bytes, maxsize)?;
        Ok(Queue::wrap(Chan::anonymous(bounds).map_err(create_fail)?))
    }

    /// Puts `obj` (bytes raw, anything else pickled). Waits (GIL released) for room
    /// while `block`, at most `timeout` seconds if given, then raises `queue.Full`;
    /// without `block`, raises `queue.Full` at once if there is no room. `ValueError`
    /// if the item can never fit (see `max_message_len`); `shmkit.Closed` if every
    /// getter has left.
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let wait = queue_wait(block, timeout)?;
        let (tag, data) = Self::encode(py, obj)?;
        self.put_record(py, tag, data, wait)
    }

    /// `put(obj, block=False)`.
    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let (tag, data) = Self::encode(py, obj)?;
        self.put_record(py, tag, data, None)
    }

    /// Removes and returns the next item. Waits (GIL released) while the queue is
    /// empty and `block`, at most `timeout` seconds if given, then raises
    /// `queue.Empty`; without `block`, raises `queue.Empty` at once. `shmkit.Closed`
    /// once every putter has left and the queue is drained; `ValueError` for a record
    /// not in the queue's format (consumed).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        let wait = queue_wait(block, timeout)?;
        self.get_record(py, wait)
    }

    /// `get(block=False)`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.get_record(py, None)
    }

    /// The number of items queued and not yet taken (a snapshot; it walks them).
    fn qsize(&self) -> usize {
        lock(&self.proto).len()
    }

    /// Whether no item is queued (a snapshot, in constant time).
    fn empty(&self) -> bool {
        lock(&self.proto).unread_bytes() == 0
    }

    /// Whether the queue holds `maxsize` items or has no room left for even the
    /// smallest item (a snapshot).
    fn full(&self) -> bool {
        let ch = lock(&self.proto);
        ch.unread_bytes() + MIN_RECORD > self.capacity
            || ch.max_messages().is_some_and(|max| ch.len() >= max)
    }

    /// Lets go of this object's part of the queue, as "this process puts (and gets) no
    /// more through this object": its putter and getter roles are released, and later
    /// calls on it raise `ValueError`. The queue goes on for the other processes; once
    /// every putter has left, getters drain it and then get `shmkit.Closed`. Unlike
    /// `Ring.close()`, it does not end the queue for the others while a putter stays.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        // The GIL is released while the primaries are taken: a thread blocked in
        // put/get holds one for a slice of its wait.
        py.allow_threads(|| {
            for side in [&self.tx, &self.rx] {
                drop(lock(&side.primary).take());
                drop(std::mem::take(&mut *lock(&side.spares)));
            }
        });
    }

    /// Does nothing: `put` has no feeder thread to wait for (multiprocessing API).
    fn join_thread(&self) {}

    /// Does nothing: `put` has no feeder thread (multiprocessing API).
    fn cancel_join_thread(&self) {}

    /// Capacity in bytes (every queued item takes 8 bytes plus 1 + its length,
    /// rounded up to 8).
    #[getter]
    fn maxsize_bytes(&self) -> usize {
        self.capacity
    }

    /// The bound in items it was created with (0: none; the bytes bound it).
    #[getter]
    fn maxsize(&self) -> usize {
        lock(&self.proto).max_messages().unwrap_or(0)
    }

    /// The longest encoded item (bytes, or a pickle) one `put` carries.
    #[getter]
    fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    /// Pickles as "open this name" (an anonymous queue cannot be pickled; with the
    /// "fork" start method `multiprocessing` passes it without pickling).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let name = crate::lock::named(slf.get().name.clone(), "Queue")?;
        Ok((slf.get_type().getattr("open")?, (name,)))
    }

    /// A short description with the name.
    fn __repr__(&self) -> String {
        format!(
            "<shmkit.Queue {}>",
            self.name.clone().unwrap_or_else(|| "anonymous".into())
        )
    }
}
