//! `Value` and `Array`: `SharedValue<T>` / `SharedArray<T>` chosen by a
//! `multiprocessing` typecode.

use std::ffi::{c_int, c_long, c_uint, c_ulong};
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyTuple};
use pyo3::IntoPyObjectExt;
use shmkit_segment::Segment;
use shmkit_sync::{Acquired, Mutex, RawLockError, RawMutex};
use shmkit_typed::{data_offset, Pod, SharedArray, SharedValue, Zeroable};

use crate::lock::{named, Home, Lock, LockCore};
use crate::{create_fail, ooc_fail, open_fail, Fail, Kind};

/// The typecodes accepted, in the order of the README's table.
pub(crate) const TYPECODES: &str = "bBhHiIlLqQfd";

/// A `multiprocessing`/`array` typecode and the Rust type it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    B8,
    UB8,
    H16,
    UH16,
    I32,
    UI32,
    L,
    UL,
    Q64,
    UQ64,
    F32,
    D64,
}

impl Code {
    pub(crate) fn parse(code: &str) -> PyResult<Code> {
        Ok(match code {
            "b" => Code::B8,
            "B" => Code::UB8,
            "h" => Code::H16,
            "H" => Code::UH16,
            "i" => Code::I32,
            "I" => Code::UI32,
            "l" => Code::L,
            "L" => Code::UL,
            "q" => Code::Q64,
            "Q" => Code::UQ64,
            "f" => Code::F32,
            "d" => Code::D64,
            other => {
                return Err(PyValueError::new_err(format!(
                    "bad typecode {other:?}: use one of 'b' 'B' 'h' 'H' 'i' 'I' 'l' 'L' \
                     'q' 'Q' 'f' 'd' (see shmkit.TYPECODES)"
                )));
            }
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::B8 => "b",
            Code::UB8 => "B",
            Code::H16 => "h",
            Code::UH16 => "H",
            Code::I32 => "i",
            Code::UI32 => "I",
            Code::L => "l",
            Code::UL => "L",
            Code::Q64 => "q",
            Code::UQ64 => "Q",
            Code::F32 => "f",
            Code::D64 => "d",
        }
    }
}

/// Runs `$body` with `$t` the Rust type of typecode `$code`.
macro_rules! with_type {
    ($code:expr, $t:ident => $body:expr) => {
        match $code {
            Code::B8 => {
                type $t = i8;
                $body
            }
            Code::UB8 => {
                type $t = u8;
                $body
            }
            Code::H16 => {
                type $t = i16;
                $body
            }
            Code::UH16 => {
                type $t = u16;
                $body
            }
            Code::I32 => {
                type $t = c_int;
                $body
            }
            Code::UI32 => {
                type $t = c_uint;
                $body
            }
            Code::L => {
                type $t = c_long;
                $body
            }
            Code::UL => {
                type $t = c_ulong;
                $body
            }
            Code::Q64 => {
                type $t = i64;
                $body
            }
            Code::UQ64 => {
                type $t = u64;
                $body
            }
            Code::F32 => {
                type $t = f32;
                $body
            }
            Code::D64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// The offset of the data in a `Mutex<T>` (and so in a `Mutex<[T]>`: same fields, same
/// alignment), measured on a local mutex rather than assumed.
fn data_in_mutex<T: Pod>() -> usize {
    let mut m = Mutex::new([T::zeroed(); 1]);
    let base = &m as *const Mutex<[T; 1]> as usize;
    let data = m.get_mut().as_mut_ptr() as usize;
    data - base
}

/// What a `Value` or `Array` handle keeps: the typed object (its mapping) and where its
/// mutex is.
struct Typed<O> {
    obj: O,
    raw: *const RawMutex,
}

// SAFETY: `raw` points into the mapping owned by `obj`, which is Send + Sync; the
// mutex is Sync.
unsafe impl<O: Send> Send for Typed<O> {}
// SAFETY: as above.
unsafe impl<O: Sync> Sync for Typed<O> {}

impl<O: Send + Sync + 'static> Home for Typed<O>
where
    O: HasSegment,
{
    fn segment(&self) -> &Segment {
        self.obj.seg()
    }
    fn raw(&self) -> &RawMutex {
        // SAFETY: `raw` points to the object's mutex inside the mapping `obj` keeps alive.
        unsafe { &*self.raw }
    }
}

/// The segment of a typed object.
trait HasSegment {
    fn seg(&self) -> &Segment;
}
impl<T: Pod + Send> HasSegment for SharedValue<T> {
    fn seg(&self) -> &Segment {
        self.segment()
    }
}
impl<T: Pod + Send> HasSegment for SharedArray<T> {
    fn seg(&self) -> &Segment {
        self.segment()
    }
}

/// A typed object with its typecode, as `Value` and `Array` hold it.
pub(crate) struct Shared {
    core: LockCore,
    data: *mut u8,
    len: usize,
    code: Code,
}

// SAFETY: `data` points into the mapping that `core.home` keeps alive; elements are
// only read or written with the process-shared mutex held (see `with`).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn value_home<T: Pod + Send + Sync>(v: SharedValue<T>) -> (Arc<dyn Home>, *mut u8, usize) {
    let raw = (*v).raw() as *const RawMutex;
    let data = raw
        .cast::<u8>()
        .cast_mut()
        .wrapping_add(data_in_mutex::<T>());
    let home = Typed { obj: v, raw };
    (Arc::new(home), data, 1)
}

fn array_home<T: Pod + Send + Sync>(a: SharedArray<T>) -> (Arc<dyn Home>, *mut u8, usize) {
    // docs/layout.md: the payload holds the length, then at `data_offset::<T>()` the
    // `Mutex<[T]>`, whose first field is the RawMutex.
    let cell = a.segment().payload_ptr().wrapping_add(data_offset::<T>());
    let raw = cell.cast::<RawMutex>().cast_const();
    let data = cell.wrapping_add(data_in_mutex::<T>());
    let len = a.len();
    let home = Typed { obj: a, raw };
    (Arc::new(home), data, len)
}

impl Shared {
    fn new(parts: (Arc<dyn Home>, *mut u8, usize), code: Code) -> Self {
        let (home, data, len) = parts;
        Shared {
            core: LockCore {
                home,
                raise_owner_died: false,
            },
            data,
            len,
            code,
        }
    }

    /// Runs `f` with the object's mutex held: taken here (GIL released while waiting)
    /// and released after, or already held by this thread through `get_lock()`.
    ///
    /// A holder that died does not stop the access (the lock is taken over and stays
    /// marked `owner_died` until `get_lock().make_consistent()`).
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce() -> R) -> PyResult<R> {
        match self.core.take(py, Some(None))? {
            Err(RawLockError::WouldDeadlock) => Ok(f()),
            Ok(Acquired::Consistent | Acquired::OwnerDied | Acquired::Poisoned) => {
                let r = f();
                // SAFETY: taken by this thread in `take` just above, released once.
                unsafe { self.core.home.raw().unlock() };
                Ok(r)
            }
            Err(e) => Err(Fail::new(Kind::Os, e.to_string()).into()),
        }
    }

    /// Element `i` (< len) as a Python object. Call with the mutex held.
    fn read(&self, py: Python<'_>, i: usize) -> PyResult<PyObject> {
        with_type!(self.code, T => {
            // SAFETY: `i < len` (callers check); `data` holds `len` elements of T,
            // aligned, inside the live mapping; the mutex is held, so no other process
            // or thread writes them now.
            let v: T = unsafe { self.data.cast::<T>().add(i).read() };
            v.into_py_any(py)
        })
    }

    /// The element bytes of a Python value, converted (and range-checked) before any
    /// lock is taken.
    fn convert(&self, obj: &Bound<'_, PyAny>) -> PyResult<[u8; 8]> {
        let mut out = [0u8; 8];
        with_type!(self.code, T => {
            let v: T = obj.extract().map_err(|e| {
                if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) {
                    e
                } else {
                    PyTypeError::new_err(format!(
                        "typecode {:?} holds {}, not {}",
                        self.code.as_str(),
                        std::any::type_name::<T>(),
                        obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                    ))
                }
            })?;
            out[..std::mem::size_of::<T>()].copy_from_slice(bytemuck_bytes(&v));
        });
        Ok(out)
    }

    /// Writes converted bytes to element `i` (< len). Call with the mutex held.
    fn write(&self, i: usize, bytes: &[u8; 8]) {
        let size = self.elem_size();
        // SAFETY: as in `read`: element `i` is in the live mapping, and the mutex is
        // held by this thread; `bytes` holds the element's `size` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(i * size), size);
        }
    }

    fn elem_size(&self) -> usize {
        with_type!(self.code, T => std::mem::size_of::<T>())
    }

    fn lock(&self) -> Lock {
        Lock::new(self.core.clone())
    }

    fn name(&self) -> Option<String> {
        self.core.name()
    }

    /// Index `i` (negative from the end) checked against the length.
    fn index(&self, i: isize) -> PyResult<usize> {
        let len = self.len as isize;
        let j = if i < 0 { i + len } else { i };
        if (0..len).contains(&j) {
            Ok(j as usize)
        } else {
            Err(PyIndexError::new_err(format!(
                "index {i} is out of range for a shmkit.Array of length {}",
                self.len
            )))
        }
    }
}

/// The bytes of a Pod value (without a bytemuck dependency here: the same as
/// `bytemuck::bytes_of`).
fn bytemuck_bytes<T: Pod>(v: &T) -> &[u8] {
    shmkit_typed::bytemuck::bytes_of(v)
}

/// How an object is made: the family's forms.
enum How<'a> {
    Create(&'a str),
    Open(&'a str),
    OpenOrCreate(&'a str),
    Anonymous,
}

fn make_value(how: How<'_>, code: Code, init: Option<&Bound<'_, PyAny>>) -> PyResult<Shared> {
    let parts = with_type!(code, T => {
        let v: T = match init {
            Some(obj) => obj.extract()?,
            None => T::zeroed(),
        };
        let made = match how {
            How::Create(n) => SharedValue::<T>::create(n, v).map_err(create_fail)?,
            How::Open(n) => SharedValue::<T>::open(n).map_err(open_fail)?,
            How::OpenOrCreate(n) => SharedValue::<T>::open_or_create(n, v).map_err(ooc_fail)?,
            How::Anonymous => SharedValue::<T>::anonymous(v).map_err(create_fail)?,
        };
        value_home(made)
    });
    Ok(Shared::new(parts, code))
}

/// A number in shared memory behind a process-shared, crash-safe lock
/// (`multiprocessing.Value`), opened by name by Python and Rust processes alike.
///
/// `typecode` is one of `multiprocessing`'s ('b' 'B' 'h' 'H' 'i' 'I' 'l' 'L' 'q' 'Q'
/// 'f' 'd'); the segment is a Rust `SharedValue<T>` of the matching type (README:
/// the typecode table), e.g. `SharedValue::<i64>::open(name)` for 'q' or 'l'.
///
/// Reading or writing `.value` takes the lock for that one step; a read-modify-write
/// must hold `get_lock()`:
///
/// >>> v = shmkit.Value.create("hits", "q", 0)   # others: Value.open("hits", "q")
/// >>> with v.get_lock():
/// ...     v.value += 1                            # atomic across processes
/// >>> v.value
/// 1
#[pyclass(module = "shmkit", frozen)]
pub struct Value {
    inner: Shared,
}

#[pymethods]
impl Value {
    /// Creates the named value `name` of `typecode`, holding `value`. Raises
    /// `shmkit.AlreadyExists` if the name is taken, `ValueError` for a bad typecode.
    /// The name is removed when this object is garbage-collected in this process.
    #[staticmethod]
    #[pyo3(signature = (name, typecode, value = None))]
    fn create(name: &str, typecode: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Value {
            inner: make_value(How::Create(name), code, value)?,
        })
    }

    /// Opens the named value another process (Python or Rust) created. Raises
    /// `shmkit.NotFound` if missing and `shmkit.TypeMismatch` (a `TypeError`) if it
    /// holds another type.
    #[staticmethod]
    fn open(name: &str, typecode: &str) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Value {
            inner: make_value(How::Open(name), code, None)?,
        })
    }

    /// Opens the named value, or creates it holding `value` if missing.
    #[staticmethod]
    #[pyo3(signature = (name, typecode, value = None))]
    fn open_or_create(
        name: &str,
        typecode: &str,
        value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Value {
            inner: make_value(How::OpenOrCreate(name), code, value)?,
        })
    }

    /// A value in anonymous shared memory, shared with children made by `os.fork()`
    /// after this call.
    #[staticmethod]
    #[pyo3(signature = (typecode, value = None))]
    fn anonymous(typecode: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Value {
            inner: make_value(How::Anonymous, code, value)?,
        })
    }

    /// The value (read or written under the lock; if this thread holds `get_lock()`,
    /// without taking it again).
    #[getter]
    fn get_value(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.inner.with(py, || self.inner.read(py, 0))?
    }

    #[setter]
    fn set_value(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = self.inner.convert(value)?;
        self.inner.with(py, || self.inner.write(0, &bytes))
    }

    /// The value's own lock, as a `shmkit.Lock` (a context manager). Holding it makes a
    /// read-modify-write of `.value` atomic across processes.
    fn get_lock(&self) -> Lock {
        self.inner.lock()
    }

    /// The typecode.
    #[getter]
    fn typecode(&self) -> &'static str {
        self.inner.code.as_str()
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name()
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (String, &'static str))> {
        let name = named(slf.get().inner.name(), "Value")?;
        let code = slf.get().inner.code.as_str();
        Ok((slf.get_type().getattr("open")?, (name, code)))
    }

    /// A short description with the name.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.get_value(py)?;
        Ok(format!(
            "<shmkit.Value {} {:?} {}>",
            self.inner.name().unwrap_or_else(|| "anonymous".into()),
            self.inner.code.as_str(),
            v.bind(py).repr()?
        ))
    }
}

fn make_array(how: How<'_>, code: Code, init: Option<&Bound<'_, PyAny>>) -> PyResult<Shared> {
    // A length (int) or the initial elements (any iterable).
    let (len, items): (Option<usize>, Option<Vec<Bound<'_, PyAny>>>) = match init {
        None => (None, None),
        Some(obj) => match obj.extract::<isize>() {
            Ok(n) if n <= 0 => {
                return Err(PyValueError::new_err(
                    "a shmkit.Array needs a length of 1 or more",
                ));
            }
            Ok(n) => (Some(n as usize), None),
            Err(_) => {
                let items: Vec<_> = obj.try_iter()?.collect::<PyResult<_>>()?;
                (Some(items.len()), Some(items))
            }
        },
    };
    let parts = with_type!(code, T => {
        let made = match (how, len) {
            (How::Open(n), None) => SharedArray::<T>::open_any_len(n).map_err(open_fail)?,
            (How::Open(n), Some(len)) => SharedArray::<T>::open(n, len).map_err(open_fail)?,
            (_, None) => {
                return Err(PyTypeError::new_err(
                    "give the array's length or its initial elements",
                ));
            }
            (how, Some(len)) => {
                let data: Vec<T> = match &items {
                    Some(items) => items.iter().map(|o| o.extract()).collect::<PyResult<_>>()?,
                    None => vec![T::zeroed(); len],
                };
                match how {
                    How::Create(n) => SharedArray::<T>::create_from(n, &data).map_err(create_fail)?,
                    How::OpenOrCreate(n) => {
                        let a = SharedArray::<T>::open_or_create(n, len).map_err(ooc_fail)?;
                        if a.is_creator() && items.is_some() {
                            a.copy_from_slice(&data)
                                .map_err(|e| Fail::new(Kind::Shmkit, e.to_string()))?;
                        }
                        a
                    }
                    _ => SharedArray::<T>::create_from_in(Segment::options().anonymous(), &data)
                        .map_err(create_fail)?,
                }
            }
        };
        array_home(made)
    });
    Ok(Shared::new(parts, code))
}

/// A fixed-length array of numbers in shared memory behind one process-shared,
/// crash-safe lock (`multiprocessing.Array`); a Rust `SharedArray<T>` of the typecode's
/// type (README: the typecode table).
///
/// `size_or_initializer`: a length (zero-filled) or the initial elements. Indexing and
/// slicing take the lock for that one step; hold `get_lock()` for several.
///
/// >>> a = shmkit.Array.create("squares", "d", [0, 1, 4])  # others: Array.open("squares", "d")
/// >>> a[1] = 2.5
/// >>> a[:]
/// [0.0, 2.5, 4.0]
#[pyclass(module = "shmkit", frozen, sequence)]
pub struct Array {
    inner: Shared,
}

#[pymethods]
impl Array {
    /// Creates the named array `name` of `typecode`: `size_or_initializer` is its
    /// length (zero-filled) or its elements. `shmkit.AlreadyExists` if taken,
    /// `ValueError` for a bad typecode or length 0.
    #[staticmethod]
    fn create(
        name: &str,
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Array {
            inner: make_array(How::Create(name), code, Some(size_or_initializer))?,
        })
    }

    /// Opens the named array another process created; with `size`, checks its length
    /// (`ValueError` if it differs). `shmkit.NotFound`, `shmkit.TypeMismatch` as for
    /// `Value.open`.
    #[staticmethod]
    #[pyo3(signature = (name, typecode, size = None))]
    fn open(name: &str, typecode: &str, size: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Array {
            inner: make_array(How::Open(name), code, size)?,
        })
    }

    /// Opens the named array, or creates it from `size_or_initializer` if missing (an
    /// existing array must have that length).
    #[staticmethod]
    fn open_or_create(
        name: &str,
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Array {
            inner: make_array(How::OpenOrCreate(name), code, Some(size_or_initializer))?,
        })
    }

    /// An array in anonymous shared memory, shared with `os.fork()` children.
    #[staticmethod]
    fn anonymous(typecode: &str, size_or_initializer: &Bound<'_, PyAny>) -> PyResult<Self> {
        let code = Code::parse(typecode)?;
        Ok(Array {
            inner: make_array(How::Anonymous, code, Some(size_or_initializer))?,
        })
    }

    /// The number of elements.
    fn __len__(&self) -> usize {
        self.inner.len
    }

    /// Element `key` (negative from the end), or a list for a slice, read under the
    /// lock.
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        if let Ok(slice) = key.downcast::<PySlice>() {
            let idx = slice.indices(self.inner.len as isize)?;
            let picks: Vec<usize> = (0..idx.slicelength)
                .map(|k| (idx.start + k as isize * idx.step) as usize)
                .collect();
            let items = self.inner.with(py, || {
                picks
                    .iter()
                    .map(|&i| self.inner.read(py, i))
                    .collect::<PyResult<Vec<_>>>()
            })??;
            return Ok(PyList::new(py, items)?.into_any().unbind());
        }
        let i = self.inner.index(key.extract()?)?;
        self.inner.with(py, || self.inner.read(py, i))?
    }

    /// Sets element `key`, or a slice from a sequence of its length, under the lock.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(slice) = key.downcast::<PySlice>() {
            let idx = slice.indices(self.inner.len as isize)?;
            let values: Vec<[u8; 8]> = value
                .try_iter()?
                .map(|o| self.inner.convert(&o?))
                .collect::<PyResult<_>>()?;
            if values.len() != idx.slicelength {
                return Err(PyValueError::new_err(format!(
                    "can only assign a sequence of the same size: the slice has {} elements, \
                     the value {}",
                    idx.slicelength,
                    values.len()
                )));
            }
            return self.inner.with(py, || {
                for (k, bytes) in values.iter().enumerate() {
                    let i = (idx.start + k as isize * idx.step) as usize;
                    self.inner.write(i, bytes);
                }
            });
        }
        let i = self.inner.index(key.extract()?)?;
        let bytes = self.inner.convert(value)?;
        self.inner.with(py, || self.inner.write(i, &bytes))
    }

    /// Iterates (see the class docs).
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.tolist(py)?.into_bound(py).try_iter()?.into_any())
    }

    /// A copy of every element, taken under the lock (a consistent snapshot).
    fn tolist(&self, py: Python<'_>) -> PyResult<PyObject> {
        let all = PySlice::full(py);
        self.__getitem__(py, all.as_any())
    }

    /// The array's own lock, as a `shmkit.Lock` (a context manager).
    fn get_lock(&self) -> Lock {
        self.inner.lock()
    }

    /// A writable `memoryview` of the elements in shared memory, cast to the typecode
    /// (zero-copy: `numpy.frombuffer(a.memoryview(), dtype=...)` works where numpy is
    /// installed). It **bypasses the lock**: hold `get_lock()` around accesses that must
    /// be consistent with other processes. The view has a mapping of its own (an
    /// `mmap` of the same segment), so it stays valid after the array is gone.
    fn memoryview<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use std::os::fd::AsRawFd;
        let seg = self.inner.core.home.segment();
        let os = py.import("os")?;
        let fd: i32 = match (seg.fd(), seg.name()) {
            (Some(fd), _) => os.call_method1("dup", (fd.as_raw_fd(),))?.extract()?,
            (None, Some(name)) if seg.backend() == shmkit_segment::Backend::Posix => {
                let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
                let flags = os.getattr("O_RDWR")?;
                os.call_method1("open", (path, flags))?.extract()?
            }
            _ => {
                return Err(Fail::new(
                    Kind::Shmkit,
                    "memoryview() needs a POSIX-named or anonymous array",
                )
                .into());
            }
        };
        let mapped = py.import("mmap")?.getattr("mmap")?.call1((fd, seg.len()));
        os.call_method1("close", (fd,))?;
        let mapped = mapped?;
        // The same segment, not another one made under the name since: the header's
        // identity fields (magic, version, creator, sizes, type tag) match ours.
        let theirs: Vec<u8> = mapped.get_item(PySlice::new(py, 0, 128, 1))?.extract()?;
        for (i, b) in theirs.iter().enumerate() {
            if (12..16).contains(&i) {
                continue; // the state word (a flag in it may be set at any time)
            }
            // SAFETY: the header's 128 bytes are inside our live mapping (a shmkit
            // segment is at least that long); a volatile byte read forms no reference
            // to memory other processes may write.
            let ours = unsafe { seg.as_ptr().add(i).read_volatile() };
            if ours != *b {
                let _ = mapped.call_method0("close");
                return Err(Fail::new(
                    Kind::Shmkit,
                    "the name now holds another segment than this array's: memoryview() \
                     cannot map it",
                )
                .into());
            }
        }
        let off = self.inner.data as usize - seg.as_ptr() as usize;
        let end = off + self.inner.len * self.inner.elem_size();
        let view = py
            .get_type::<pyo3::types::PyMemoryView>()
            .call1((mapped,))?
            .get_item(PySlice::new(py, off as isize, end as isize, 1))?;
        view.call_method1("cast", (self.inner.code.as_str(),))
    }

    /// The typecode.
    #[getter]
    fn typecode(&self) -> &'static str {
        self.inner.code.as_str()
    }

    /// The segment's name (`None` if anonymous).
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name()
    }

    /// Pickles as "open this name" (an anonymous object cannot be pickled).
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let inner = &slf.get().inner;
        let name = named(inner.name(), "Array")?;
        let args = PyTuple::new(
            py,
            [
                name.into_py_any(py)?,
                inner.code.as_str().into_py_any(py)?,
                inner.len.into_py_any(py)?,
            ],
        )?;
        Ok((slf.get_type().getattr("open")?, args))
    }

    /// A short description with the name.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let items = self.tolist(py)?;
        Ok(format!(
            "<shmkit.Array {} {:?} {}>",
            self.inner.name().unwrap_or_else(|| "anonymous".into()),
            self.inner.code.as_str(),
            items.bind(py).repr()?
        ))
    }
}
