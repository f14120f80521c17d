//! The queue's plain-data records (tag [`TAG_DATA`](crate::queue)): `None`, `bool`,
//! `int` (in `i64`), `float`, `str`, `bytes`, and `list`, `tuple` and `dict` of them,
//! written by a small tree encoding instead of a pickle.
//!
//! Why by hand: a `~100-byte` dict of scalars and a short list costs `pickle.dumps` ~0.9
//! µs and `pickle.loads` ~1.9 µs on the development machine, most of a queue item's
//! cost, in its generic opcode machine (memo, marks, a stack); walking the same objects
//! through the C API and building them back takes a fraction of that, and the format is
//! simple enough for a Rust (or any) process to read and write (docs/layout.md).
//!
//! # Encoding (little-endian; `n` is an unsigned LEB128 varint)
//! One value, then nothing: a kind byte, then
//! - `0` `None`, `1` `False`, `2` `True` (nothing after);
//! - `3` an `int`: its zigzag-encoded `i64` as a varint;
//! - `4` a `float`: 8 bytes (IEEE 754 `f64`);
//! - `5` a `str`: `n`, then `n` bytes of UTF-8; `6` a `bytes`: `n`, then `n` bytes;
//! - `7` a `list`, `8` a `tuple`: `n`, then `n` values;
//! - `9` a `dict`: `n`, then `n` pairs of key and value, in the dict's order.
//!
//! # What is plain data
//! Exact types only (a subclass, such as `bool` for `int` or an `OrderedDict`, is not:
//! pickled, so that `get()` gives back the same type), an `int` in the `i64` range, a
//! `str` with UTF-8 (no lone surrogates), at most [`MAX_DEPTH`] containers deep and
//! [`MAX_CONTAINERS`] containers in all, each container reached once (a list held twice
//! in the item, or a cycle, would come back as two lists: pickled, which keeps the
//! sharing). Anything else makes the whole item a pickle, as before.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// How deep containers nest in a plain-data record (deeper: pickled; a record that
/// claims more is refused).
pub(crate) const MAX_DEPTH: usize = 32;
/// How many containers one plain-data item holds at most (more: pickled).
pub(crate) const MAX_CONTAINERS: usize = 64;

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const BYTES: u8 = 6;
const LIST: u8 = 7;
const TUPLE: u8 = 8;
const DICT: u8 = 9;

// In the limited API only from 3.10, but exported by every CPython >= 3.3 with this
// signature; the wheel is abi3-py39, so it is declared here. Without it a `str`'s
// UTF-8 would cost a new `bytes` object per string (`PyUnicode_AsUTF8String`); this
// returns CPython's own cached UTF-8 (for ASCII, the string's own bytes).
unsafe extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const u8;
}

/// The UTF-8 of a `str`, or `None` (lone surrogates; the error is cleared).
fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a [u8]> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` (the GIL is held, the borrow keeps it alive); the
    // buffer CPython returns lives as long as the string, which outlives `'a`.
    let p = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
    if p.is_null() {
        // SAFETY: the GIL is held; the failed call set the error this clears.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: CPython's UTF-8 buffer of `len` bytes, alive as long as `s` (above).
    Some(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// Encodes plain data; see the module docs.
pub(crate) struct Encoder {
    out: Vec<u8>,
    /// The containers met so far (each may be met once).
    seen: Vec<*mut ffi::PyObject>,
}

impl Encoder {
    /// The record payload of `obj` if it is plain data (see the module docs).
    pub(crate) fn encode(obj: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
        let mut e = Encoder {
            out: Vec::with_capacity(128),
            seen: Vec::new(),
        };
        e.value(obj, 0).then_some(e.out)
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn bytes(&mut self, kind: u8, b: &[u8]) {
        self.out.push(kind);
        self.varint(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    /// Enters a container: false if it is too deep, one too many, or met before.
    fn enter(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> bool {
        if depth >= MAX_DEPTH
            || self.seen.len() >= MAX_CONTAINERS
            || self.seen.contains(&obj.as_ptr())
        {
            return false;
        }
        self.seen.push(obj.as_ptr());
        true
    }

    /// A list or tuple `obj` of `len` `items`.
    fn sequence<'py>(
        &mut self,
        obj: &Bound<'py, PyAny>,
        kind: u8,
        len: usize,
        mut items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> bool {
        if !self.enter(obj, depth) {
            return false;
        }
        self.out.push(kind);
        self.varint(len as u64);
        items.all(|item| self.value(&item, depth + 1))
    }

    fn value(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> bool {
        if obj.is_none() {
            self.out.push(NONE);
        } else if let Ok(b) = obj.downcast_exact::<PyBool>() {
            self.out.push(if b.is_true() { TRUE } else { FALSE });
        } else if obj.downcast_exact::<PyInt>().is_ok() {
            let Ok(v) = obj.extract::<i64>() else {
                return false; // outside i64
            };
            self.out.push(INT);
            self.varint(((v << 1) ^ (v >> 63)) as u64);
        } else if let Ok(f) = obj.downcast_exact::<PyFloat>() {
            self.out.push(FLOAT);
            self.out.extend_from_slice(&f.value().to_le_bytes());
        } else if let Ok(s) = obj.downcast_exact::<PyString>() {
            let Some(b) = utf8(s) else { return false };
            self.bytes(STR, b);
        } else if let Ok(b) = obj.downcast_exact::<PyBytes>() {
            self.bytes(BYTES, b.as_bytes());
        } else if let Ok(l) = obj.downcast_exact::<PyList>() {
            // The GIL is held and no Python code runs while the list is walked (exact
            // types only), so the list cannot change under the iterator.
            return self.sequence(obj, LIST, l.len(), l.iter(), depth);
        } else if let Ok(t) = obj.downcast_exact::<PyTuple>() {
            return self.sequence(obj, TUPLE, t.len(), t.iter(), depth);
        } else if let Ok(d) = obj.downcast_exact::<PyDict>() {
            if !self.enter(obj, depth) {
                return false;
            }
            self.out.push(DICT);
            self.varint(d.len() as u64);
            for (k, v) in d.iter() {
                if !self.value(&k, depth + 1) || !self.value(&v, depth + 1) {
                    return false;
                }
            }
        } else {
            return false;
        }
        true
    }
}

/// Builds the object of a plain-data payload, or says what is wrong with it.
pub(crate) fn decode<'py>(py: Python<'py>, payload: &[u8]) -> Result<Bound<'py, PyAny>, String> {
    let mut d = Decoder {
        py,
        b: payload,
        at: 0,
    };
    let v = d.value(0)?;
    if d.at != payload.len() {
        return Err(format!(
            "{} bytes after the value's end",
            payload.len() - d.at
        ));
    }
    Ok(v)
}

struct Decoder<'py, 'b> {
    py: Python<'py>,
    b: &'b [u8],
    at: usize,
}

/// Slots in [`KEYS`].
const KEY_SLOTS: usize = 256;
/// The longest `str` dict key [`KEYS`] keeps.
const KEY_MAX: usize = 48;

/// The `str` dict keys decoded last, by a hash of their UTF-8 (direct-mapped, a new
/// key replaces the slot's old one): the items of one queue mostly repeat their keys,
/// and a key found here is a reference count, not a new string whose hash the dict
/// must compute again (CPython caches a `str`'s hash in the object).
struct KeyCache {
    slots: Vec<Option<KeyEntry>>,
}

/// A key's UTF-8 and its string.
type KeyEntry = (Box<[u8]>, Py<PyString>);

thread_local! {
    static KEYS: std::cell::RefCell<KeyCache> = const {
        std::cell::RefCell::new(KeyCache { slots: Vec::new() })
    };
}

impl KeyCache {
    fn get<'py>(&mut self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if key.len() > KEY_MAX {
            return PyString::new(py, key);
        }
        if self.slots.is_empty() {
            self.slots.resize_with(KEY_SLOTS, || None);
        }
        // FNV-1a: a few multiplies for a short key.
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let slot = &mut self.slots[(h as usize) % KEY_SLOTS];
        if let Some((k, s)) = slot {
            if **k == *key.as_bytes() {
                return s.bind(py).clone();
            }
        }
        let s = PyString::new(py, key);
        *slot = Some((key.as_bytes().into(), s.clone().unbind()));
        s
    }
}

impl<'py, 'b> Decoder<'py, 'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            if shift == 63 && byte > 1 {
                return Err(format!("a varint beyond 64 bits at byte {}", self.at - 1));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint beyond 64 bits at byte {}", self.at))
    }

    /// A count of `n` items of at least `each` bytes: no more than the bytes left hold
    /// (so a hostile count cannot make it allocate).
    fn count(&mut self, each: usize) -> Result<usize, String> {
        let n = self.varint()?;
        let left = (self.b.len() - self.at) / each;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| format!("a count of {n} with {left} bytes left"))
    }

    /// A `str`'s length and UTF-8, after its kind byte.
    fn str(&mut self) -> Result<&'b str, String> {
        let n = self.count(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("a str that is not UTF-8 ({e})"))
    }

    fn value(&mut self, depth: usize) -> Result<Bound<'py, PyAny>, String> {
        let py = self.py;
        let kind = self.take(1)?[0];
        Ok(match kind {
            NONE => py.None().into_bound(py),
            FALSE => PyBool::new(py, false).to_owned().into_any(),
            TRUE => PyBool::new(py, true).to_owned().into_any(),
            INT => {
                let z = self.varint()?;
                let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v.into_pyobject(py).map_err(|e| e.to_string())?.into_any()
            }
            FLOAT => {
                let w = <[u8; 8]>::try_from(self.take(8)?).map_err(|e| e.to_string())?;
                PyFloat::new(py, f64::from_le_bytes(w)).into_any()
            }
            STR => PyString::new(py, self.str()?).into_any(),
            BYTES => {
                let n = self.count(1)?;
                PyBytes::new(py, self.take(n)?).into_any()
            }
            LIST | TUPLE | DICT if depth >= MAX_DEPTH => {
                return Err(format!("containers nested deeper than {MAX_DEPTH}"));
            }
            LIST | TUPLE => {
                let n = self.count(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                if kind == LIST {
                    PyList::new(py, items)
                        .map_err(|e| e.to_string())?
                        .into_any()
                } else {
                    PyTuple::new(py, items)
                        .map_err(|e| e.to_string())?
                        .into_any()
                }
            }
            DICT => {
                let n = self.count(2)?;
                let d = PyDict::new(py);
                for _ in 0..n {
                    let k = if self.b.get(self.at) == Some(&STR) {
                        self.at += 1;
                        let s = self.str()?;
                        KEYS.with_borrow_mut(|c| c.get(py, s)).into_any()
                    } else {
                        self.value(depth + 1)?
                    };
                    let v = self.value(depth + 1)?;
                    d.set_item(k, v)
                        .map_err(|e| format!("a dict key that cannot be one ({e})"))?;
                }
                d.into_any()
            }
            other => {
                return Err(format!(
                    "an unknown kind byte {other} at byte {}",
                    self.at - 1
                ))
            }
        })
    }
}
