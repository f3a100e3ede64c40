//! Hidden methods: Python code that `sys.settrace` / `sys.setprofile` see as one C call, as a
//! method written in C would be.
//!
//! `hidden_method(cls, name, func, simple=None)` returns a method descriptor (the type of
//! `list.append`) for instances of `cls`, to be stored as `cls.<name>`: `obj.name(*args,
//! **kwargs)` calls `func(obj, *args, **kwargs)`, or `simple(obj, *args)` if given and the call
//! has no keyword arguments (a signature without `**kwargs` spares a dict per call). While it
//! runs, CPython reports no trace or profile event, as while it runs a trace function
//! (csrc/pystate.c `tpy_hidden_call`): a profiler sees one C call
//! (`c_call`, then `c_return` or `c_exception`), a tracer nothing. The level is per continuation:
//! a continuation switched to from hidden code runs with its own level, and a new one starts
//! with events on.
//!
//! `cls=object` makes a hidden function (any first argument).
//!
//! `call_visible(callable, *args, **kwargs)` calls `callable(*args, **kwargs)` with the tracing
//! level one down (not below 0): hidden code uses it to run code that is the user's (a callback).
//!
//! A method descriptor's C function gets no closure, and CPython calls it directly (3.11+
//! specialise such calls), so each hidden method gets an entry point of its own, compiled here:
//! at most `SLOTS` per process, each kept for the life of the process (meant for class
//! definitions). The same (cls, name, func, simple) again gives the same descriptor.
use crate::pystate::{tpy_hidden_call, tpy_set_tracing, tpy_tracing};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::cell::UnsafeCell;
use std::ffi::CString;
use std::ptr::null_mut;

const SLOTS: usize = 16;

struct Slot {
    def: ffi::PyMethodDef,
    func: *mut ffi::PyObject,   // owned
    simple: *mut ffi::PyObject, // owned; calls without keywords go here (func if not given)
    descr: *mut ffi::PyObject,  // owned; NULL while the slot is free
}

struct Table(UnsafeCell<[Slot; SLOTS]>);

// SAFETY: the table is only read or written with the GIL held.
unsafe impl Sync for Table {}

const FREE: Slot = Slot { def: ffi::PyMethodDef::zeroed(), func: null_mut(), simple: null_mut(), descr: null_mut() };
static TABLE: Table = Table(UnsafeCell::new([FREE; SLOTS]));

/// The C function of hidden method `I` (a tail call: a suspended continuation keeps what is
/// on the stack here).
unsafe extern "C" fn entry<const I: usize>(slf: *mut ffi::PyObject, args: *const *mut ffi::PyObject,
                                           nargs: ffi::Py_ssize_t, kwnames: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this with the GIL held and METH_FASTCALL | METH_KEYWORDS arguments,
    // only through slot I's descriptor, which exists once the slot is taken.
    unsafe {
        let slot = &(*TABLE.0.get())[I];
        let func = if kwnames.is_null() { slot.simple } else { slot.func };
        tpy_hidden_call(func, slf, args, nargs, kwnames)
    }
}

macro_rules! entries {
    ($($i:literal)*) => { [$(entry::<$i> as ffi::PyCFunctionFastWithKeywords),*] };
}
const ENTRIES: [ffi::PyCFunctionFastWithKeywords; SLOTS] = entries!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

fn check_callable(what: &str, f: &Bound<'_, PyAny>) -> PyResult<()> {
    if f.is_callable() {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!("hidden_method() argument '{what}' must be callable, not {}", f.get_type().name()?)))
}

#[pyfunction]
#[pyo3(signature = (cls, name, func, simple = None))]
fn hidden_method(py: Python<'_>, cls: &Bound<'_, PyType>, name: &Bound<'_, PyString>, func: &Bound<'_, PyAny>,
                 simple: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    check_callable("func", func)?;
    let simple = match simple {
        Some(s) if !s.is_none() => s,
        _ => func,
    };
    check_callable("simple", simple)?;
    let c_name = CString::new(name.to_str()?)
        .map_err(|_| PyTypeError::new_err("hidden_method() argument 'name' must not contain NUL"))?;
    let doc = func.getattr("__doc__")?;
    let c_doc = match doc.cast::<PyString>() {
        Ok(d) => Some(CString::new(d.to_str()?).unwrap_or_default()),
        Err(_) => None,
    };
    // Only short-lived references into the table: the GC may read it (tpy_hidden_funcs) while
    // the descriptor is allocated.
    let table = TABLE.0.get();
    // SAFETY: the GIL is held (py) and nothing below calls back into Python while the
    // reference lives; a taken slot's name is a leaked CString and its descriptor a live method
    // descriptor, both kept for the life of the process.
    let found = unsafe {
        (*table).iter().find(|slot| {
            !slot.descr.is_null()
                && slot.func == func.as_ptr()
                && slot.simple == simple.as_ptr()
                && std::ffi::CStr::from_ptr(slot.def.ml_name) == c_name.as_c_str()
                && (*slot.descr.cast::<ffi::PyDescrObject>()).d_type == cls.as_type_ptr()
        }).map(|slot| slot.descr)
    };
    if let Some(descr) = found {
        // SAFETY: the slot owns a reference to its descriptor, so it is alive.
        return Ok(unsafe { Bound::from_borrowed_ptr(py, descr) }.unbind());
    }
    // SAFETY: as above.
    let index = unsafe { (*table).iter().position(|slot| slot.descr.is_null()) }
        .ok_or_else(|| PyRuntimeError::new_err(format!("hidden_method(): all {SLOTS} hidden methods are taken")))?;
    // SAFETY: as above; the slot is free (no descriptor, so no call reaches it) until its
    // descriptor is stored, and its def lives in a static for the life of the process, as a
    // method descriptor requires.
    unsafe {
        let slot = &raw mut (*table)[index];
        (*slot).def = ffi::PyMethodDef {
            ml_name: c_name.into_raw(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: ENTRIES[index] },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: c_doc.map_or(std::ptr::null(), |d| d.into_raw()),
        };
        (*slot).func = func.clone().into_ptr();
        (*slot).simple = simple.clone().into_ptr();
        let descr = ffi::PyDescr_NewMethod(cls.as_type_ptr(), &raw mut (*slot).def);
        if descr.is_null() {
            // the slot goes back to free
            ffi::Py_DECREF((*slot).func);
            ffi::Py_DECREF((*slot).simple);
            drop(CString::from_raw((*slot).def.ml_name.cast_mut()));
            if !(*slot).def.ml_doc.is_null() {
                drop(CString::from_raw((*slot).def.ml_doc.cast_mut()));
            }
            *slot = FREE;
            return Err(PyErr::fetch(py));
        }
        (*slot).descr = descr;
        // the slot keeps its own reference
        Ok(Bound::from_borrowed_ptr(py, descr).unbind())
    }
}

#[pyfunction]
#[pyo3(signature = (callable, /, *args, **kwargs))]
fn call_visible(callable: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
    // SAFETY: the GIL is held; the level is this continuation's and is put back before returning.
    let level = unsafe { tpy_tracing() };
    if level > 0 {
        // SAFETY: as above.
        unsafe { tpy_set_tracing(level - 1) };
    }
    let result = callable.call(args, kwargs);
    // SAFETY: as above (the call returns in the continuation that made it).
    unsafe { tpy_set_tracing(level) };
    result.map(Bound::unbind)
}

/// For csrc/pystate.c's GC traversal: stores in `funcs[0..2]` the functions hidden method `ml`
/// calls (borrowed; kept for the life of the process) and returns how many: 0 if `ml` is not a
/// hidden method's.
///
/// # Safety
/// GIL held; `funcs` points to room for two pointers.
#[no_mangle]
pub unsafe extern "C" fn tpy_hidden_funcs(ml: *const ffi::PyMethodDef, funcs: *mut *mut ffi::PyObject) -> std::os::raw::c_int {
    // SAFETY: called with the GIL held (GC traversal); only addresses and taken slots are read,
    // and funcs has room for two (see above).
    unsafe {
        let table = &*TABLE.0.get();
        match table.iter().find(|s| !s.descr.is_null() && std::ptr::eq(&s.def, ml)) {
            Some(s) => {
                *funcs = s.func;
                *funcs.add(1) = s.simple;
                2
            }
            None => 0,
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hidden_method, m)?)?;
    m.add_function(wrap_pyfunction!(call_visible, m)?)?;
    Ok(())
}
