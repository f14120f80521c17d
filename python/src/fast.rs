//! The uncontended `Lock.acquire()` / `Lock.release()` as plain CPython methods.
//!
//! Under `abi3-py39` a PyO3 method pays its trampoline on every call (the GIL-count
//! thread-local in and out, the lazy type object's check of `self`, the argument
//! parser): measured ~45 ns for a method that only reads a word, against ~20 ns for a
//! C builtin, so ~100 ns for an `acquire(); release()` pair whose lock work is two
//! atomic instructions. At module initialisation those PyO3 methods of `Lock` are
//! replaced by method descriptors of the functions below (and so are `__enter__` and
//! `__exit__`, for `with lock:`), which take the common case themselves: `acquire()`
//! without arguments on a free lock (one CAS), `release()` by the holding thread. Everything else (arguments, a held or dead holder's lock,
//! `raise_owner_died`, errors) is handed to the original PyO3 method, unchanged.
//!
//! Only stable-ABI calls are used (`PyDescr_NewMethod`, `METH_VARARGS | METH_KEYWORDS`,
//! `METH_NOARGS`): the wheel stays abi3-py39.

use std::ffi::{c_int, CString};
use std::ops::Deref;
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::Borrowed;

use crate::lock::Lock;
use crate::sync::{sem_fail, Semaphore};

/// The original PyO3 method descriptors, for everything but the fast case.
static ACQUIRE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static RELEASE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static ENTER: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static EXIT: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static SEM_ACQUIRE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static SEM_RELEASE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// The `T` (`Lock`, `Semaphore`) behind `slf`.
///
/// # Safety
/// `slf` is a live `shmkit.T` (a method descriptor of the type checks that before
/// calling us; neither class is subclassable), and the GIL is held.
unsafe fn obj_of<'a, T: pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
    slf: *mut ffi::PyObject,
) -> &'a T {
    // SAFETY: the GIL is held (our caller is CPython calling a method).
    let py = unsafe { Python::assume_gil_acquired() };
    // SAFETY: `slf` is a live object (borrowed for the call: no reference taken).
    let any = unsafe { Borrowed::from_ptr(py, slf) };
    // SAFETY: of type `T`, as the caller guarantees.
    let obj = unsafe { any.downcast_unchecked::<T>() };
    // SAFETY: the object outlives the call (CPython holds a reference to `self` for
    // it); `get` of a frozen class hands out a shared reference into it.
    unsafe { &*ptr::from_ref(obj.get()) }
}

/// A new reference to `obj` (`Py_True`, `Py_None`).
///
/// # Safety
/// `obj` is a live object and the GIL is held.
unsafe fn new_ref(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller guarantees.
    unsafe { ffi::Py_IncRef(obj) };
    obj
}

/// Calls the original method `orig` as `orig(slf, *args, **kwargs)`.
///
/// # Safety
/// `slf` and `args` (a tuple, or null) are live objects, `kwargs` a dict or null; the
/// GIL is held.
unsafe fn call_original(
    orig: &GILOnceCell<Py<PyAny>>,
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // `with_gil` on a thread that holds the GIL (a nested `PyGILState_Ensure` when
    // PyO3 has not counted it yet) sets PyO3's GIL count, so PyO3 code runs as in its
    // own methods.
    Python::with_gil(|py| {
        let r = (|| -> PyResult<Py<PyAny>> {
            // SAFETY: `slf` is live and borrowed for the call.
            let mut all = vec![unsafe { Bound::<PyAny>::from_borrowed_ptr(py, slf) }];
            if !args.is_null() {
                // SAFETY: CPython passes the positional arguments as a tuple.
                let args = unsafe { Bound::<PyAny>::from_borrowed_ptr(py, args) };
                all.extend(args.downcast::<PyTuple>()?.iter());
            }
            let kwargs = (!kwargs.is_null())
                // SAFETY: CPython passes the keyword arguments as a dict.
                .then(|| unsafe { Bound::<PyAny>::from_borrowed_ptr(py, kwargs) });
            let kwargs = kwargs
                .as_ref()
                .map(|k| k.downcast::<PyDict>())
                .transpose()?;
            let orig = orig.get(py).expect("installed at module initialisation");
            Ok(orig.bind(py).call(PyTuple::new(py, all)?, kwargs)?.unbind())
        })();
        match r {
            Ok(obj) => obj.into_ptr(),
            Err(e) => {
                e.restore(py);
                ptr::null_mut()
            }
        }
    })
}

/// `Lock.acquire(blocking=True, timeout=None)`.
unsafe extern "C" fn acquire(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_VARARGS | METH_KEYWORDS method with the GIL held, a
    // tuple `args` and a dict or null `kwargs`; the descriptor checked `slf`'s type.
    unsafe {
        if kwargs.is_null() && ffi::PyTuple_Size(args) == 0 {
            let lock = obj_of::<Lock>(slf);
            // Without `raise_owner_died` every way of taking the lock is `True`
            // (`judge`): a lock that was free is taken, consistent or not.
            if !lock.core.raise_owner_died && lock.core.home.raw().try_lock_if_free().is_some() {
                return new_ref(ffi::Py_True());
            }
        }
        call_original(&ACQUIRE, slf, args, kwargs)
    }
}

/// `Lock.release()`.
unsafe extern "C" fn release(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_NOARGS method with the GIL held; the descriptor
    // checked `slf`'s type.
    unsafe {
        if obj_of::<Lock>(slf).core.home.raw().unlock_if_held() {
            return new_ref(ffi::Py_None());
        }
        // Not held by this thread: the original raises the RuntimeError.
        call_original(&RELEASE, slf, ptr::null_mut(), ptr::null_mut())
    }
}

/// `Lock.__enter__()`: as `acquire()`.
unsafe extern "C" fn enter(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_NOARGS method with the GIL held; the descriptor
    // checked `slf`'s type.
    unsafe {
        let lock = obj_of::<Lock>(slf);
        // As in `acquire`.
        if !lock.core.raise_owner_died && lock.core.home.raw().try_lock_if_free().is_some() {
            return new_ref(ffi::Py_True());
        }
        call_original(&ENTER, slf, ptr::null_mut(), ptr::null_mut())
    }
}

/// `Lock.__exit__(*args)`: as `release()`, then `False` (exceptions propagate).
unsafe extern "C" fn exit(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_VARARGS | METH_KEYWORDS method with the GIL held;
    // the descriptor checked `slf`'s type.
    unsafe {
        if kwargs.is_null() && obj_of::<Lock>(slf).core.home.raw().unlock_if_held() {
            return new_ref(ffi::Py_False());
        }
        call_original(&EXIT, slf, args, kwargs)
    }
}

/// `Semaphore.acquire(blocking=True, timeout=None)`: without arguments, a free permit
/// is taken here (one CAS, and one to record an owned permit: neither checks a
/// holder's liveness, so no pid-namespace probe is needed).
unsafe extern "C" fn sem_acquire(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as in `acquire`.
    unsafe {
        if kwargs.is_null() && ffi::PyTuple_Size(args) == 0 {
            let sem = obj_of::<Semaphore>(slf);
            let taken = if sem.owned {
                sem.inner.deref().try_acquire_for_process().is_ok()
            } else {
                sem.inner.deref().try_acquire().is_ok()
            };
            if taken {
                return new_ref(ffi::Py_True());
            }
        }
        call_original(&SEM_ACQUIRE, slf, args, kwargs)
    }
}

/// `Semaphore.release(n=1)`: without arguments, one permit given back here (or the
/// error of a bounded semaphore at its maximum raised).
unsafe extern "C" fn sem_release(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as in `acquire`.
    unsafe {
        if kwargs.is_null() && ffi::PyTuple_Size(args) == 0 {
            let sem = obj_of::<Semaphore>(slf);
            let given = if sem.owned {
                sem.inner.deref().release_for_process()
            } else {
                sem.inner.deref().release()
            };
            return match given {
                Ok(()) => new_ref(ffi::Py_None()),
                // Raised here: a second try by the original would un-record a second
                // permit of ours.
                Err(e) => Python::with_gil(|py| {
                    PyErr::from(sem_fail(e)).restore(py);
                    ptr::null_mut()
                }),
            };
        }
        call_original(&SEM_RELEASE, slf, args, kwargs)
    }
}

/// Replaces `ty.name` by a method descriptor of `meth` (flags `flags`), keeping the
/// original (and its docstring and text signature) for the slow cases.
fn install(
    py: Python<'_>,
    ty: &Bound<'_, PyType>,
    name: &str,
    meth: ffi::PyMethodDefPointer,
    flags: c_int,
    orig: &GILOnceCell<Py<PyAny>>,
) -> PyResult<()> {
    let old = ty.getattr(name)?;
    // `name(sig)\n--\n\ndoc`: CPython's form for a builtin's signature and docstring.
    let sig: String = old.getattr("__text_signature__")?.extract()?;
    let doc: String = old.getattr("__doc__")?.extract()?;
    let doc = CString::new(format!("{name}{sig}\n--\n\n{doc}"))?;
    orig.set(py, old.unbind())
        .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("installed twice"))?;
    // Leaked once per process (a PyO3 module is initialised once): CPython keeps
    // pointers to the definition and its strings for the type's lifetime.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: CString::new(name)?.into_raw(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: doc.into_raw(),
    }));
    // SAFETY: `ty` is a live type object and `def` lives for ever; the GIL is held.
    let descr = unsafe { ffi::PyDescr_NewMethod(ty.as_type_ptr(), def) };
    // SAFETY: a new reference or null with an exception set.
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, descr)? };
    ty.setattr(name, descr)
}

/// Installs the fast `Lock.acquire`, `release`, `__enter__` and `__exit__`, and
/// `Semaphore.acquire` and `release`.
pub(crate) fn install_fast_methods(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<Lock>();
    install(
        py,
        &ty,
        "acquire",
        ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: acquire,
        },
        ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        &ACQUIRE,
    )?;
    install(
        py,
        &ty,
        "release",
        ffi::PyMethodDefPointer {
            PyCFunction: release,
        },
        ffi::METH_NOARGS,
        &RELEASE,
    )?;
    install(
        py,
        &ty,
        "__enter__",
        ffi::PyMethodDefPointer { PyCFunction: enter },
        ffi::METH_NOARGS,
        &ENTER,
    )?;
    install(
        py,
        &ty,
        "__exit__",
        ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: exit,
        },
        ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        &EXIT,
    )?;
    let ty = py.get_type::<Semaphore>();
    install(
        py,
        &ty,
        "acquire",
        ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: sem_acquire,
        },
        ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        &SEM_ACQUIRE,
    )?;
    install(
        py,
        &ty,
        "release",
        ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: sem_release,
        },
        ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        &SEM_RELEASE,
    )
}
