//! `pending_finalizer(cls, slot, func)`: a `__del__` for `cls` that CPython calls as the type's C
//! finalizer (`tp_finalize`, inherited by subclasses). It calls `func(obj)` only while `obj`'s
//! `slot` holds a pending continulet, as a hidden call (no trace or profile events, see
//! hidden.rs); any other object dies without a Python call. A Python `__del__` would cost every
//! object a method lookup and a frame (~800 instructions on 3.12), though only those whose
//! continulet is suspended have something to finalize (greenlet-py's kill of a garbage greenlet).
//!
//! The descriptor is a slot wrapper (the type of `object.__init__`) around one of `SLOTS`
//! compiled entry points (a finalizer gets no closure), built on CPython's own `__del__` slot
//! definition, taken from the generator type's `__del__`: assigned as `cls.__del__`, it makes
//! CPython store the entry point itself in `tp_finalize`, as for a C type's finalizer.
use crate::pystate::tpy_hidden_finalize;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr::null_mut;

const SLOTS: usize = 4;

struct Slot {
    func: *mut ffi::PyObject,   // owned
    member: *mut ffi::PyObject, // owned member descriptor: the slot read at each call
    offset: ffi::Py_ssize_t,    // that slot's offset in the object
    descr: *mut ffi::PyObject,  // owned slot wrapper; NULL while the slot is free
}

struct Table(UnsafeCell<[Slot; SLOTS]>);

// SAFETY: the table is only read or written with the GIL held.
unsafe impl Sync for Table {}

const FREE: Slot = Slot { func: null_mut(), member: null_mut(), offset: 0, descr: null_mut() };
static TABLE: Table = Table(UnsafeCell::new([FREE; SLOTS]));

extern "C" {
    // Not in pyo3-ffi; CPython's non-limited API since 2.2.
    fn PyDescr_NewWrapper(ty: *mut ffi::PyTypeObject, base: *mut ffi::wrapperbase, wrapped: *mut c_void) -> *mut ffi::PyObject;
}

/// The `tp_finalize` of finalizer `I`.
unsafe extern "C" fn finalize<const I: usize>(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls a finalizer with the GIL held, on a live object of a type whose
    // tp_finalize this is: the slot's class or a subclass (CPython's slot update checks that),
    // which has the object slot at `offset`; the slot is taken (its descriptor installed us).
    unsafe {
        let slot = &(*TABLE.0.get())[I];
        let value = *obj.cast::<u8>().offset(slot.offset).cast::<*mut ffi::PyObject>();
        if !value.is_null() && crate::is_pending(Python::assume_attached(), value) {
            tpy_hidden_finalize(slot.func, obj);
        }
    }
}

macro_rules! entries {
    ($($i:literal)*) => { [$(finalize::<$i> as unsafe extern "C" fn(*mut ffi::PyObject)),*] };
}
const ENTRIES: [unsafe extern "C" fn(*mut ffi::PyObject); SLOTS] = entries!(0 1 2 3);

/// The offset of `slot` if it is an object slot (member descriptor) of `cls` or of one of its
/// bases.
fn slot_offset(cls: &Bound<'_, PyType>, slot: &Bound<'_, PyAny>) -> PyResult<ffi::Py_ssize_t> {
    // SAFETY: the GIL is held; a member descriptor is a PyMemberDescrObject, whose d_member
    // points to its PyMemberDef (pyo3-ffi types that pointer wrongly before 3.11).
    let found = unsafe {
        if ffi::PyObject_TypeCheck(slot.as_ptr(), &raw mut ffi::PyMemberDescr_Type) == 0 {
            None
        } else {
            let descr = slot.as_ptr().cast::<ffi::PyMemberDescrObject>();
            let def = (*descr).d_member.cast::<ffi::PyMemberDef>();
            let owner = (*descr).d_common.d_type;
            let owned = ffi::PyType_IsSubtype(cls.as_type_ptr(), owner) != 0;
            (owned && (*def).type_code == ffi::Py_T_OBJECT_EX).then_some((*def).offset)
        }
    };
    found.ok_or_else(|| match cls.name().and_then(|n| Ok((n, slot.repr()?))) {
        Ok((name, repr)) => PyTypeError::new_err(format!(
            "pending_finalizer() argument 'slot' must be a slot of {name}, not {repr}")),
        Err(e) => e,
    })
}

/// CPython's `__del__` slot definition, from the generator type's `__del__`.
fn del_slotdef(py: Python<'_>) -> PyResult<*mut ffi::wrapperbase> {
    // SAFETY: the GIL is held; PyGen_Type is a static type with a finalizer, so its `__del__`
    // is a slot wrapper, whose d_base points into CPython's static slot definitions.
    unsafe {
        let gen = Bound::from_borrowed_ptr(py, (&raw mut ffi::PyGen_Type).cast::<ffi::PyObject>());
        let del = gen.getattr("__del__")?;
        if ffi::Py_TYPE(del.as_ptr()) != &raw mut ffi::PyWrapperDescr_Type {
            return Err(PyRuntimeError::new_err("pending_finalizer(): generator.__del__ is not a slot wrapper"));
        }
        Ok((*del.as_ptr().cast::<ffi::PyWrapperDescrObject>()).d_base)
    }
}

#[pyfunction]
fn pending_finalizer(py: Python<'_>, cls: &Bound<'_, PyType>, slot: &Bound<'_, PyAny>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "pending_finalizer() argument 'func' must be callable, not {}", func.get_type().name()?)));
    }
    let offset = slot_offset(cls, slot)?;
    let base = del_slotdef(py)?;
    let table = TABLE.0.get();
    // SAFETY: the GIL is held and nothing below calls back into Python while the references
    // into the table live; a taken slot's descriptor is a live slot wrapper, kept for the life
    // of the process.
    unsafe {
        let found = (*table).iter().find(|s| {
            !s.descr.is_null() && s.func == func.as_ptr() && s.member == slot.as_ptr()
                && (*s.descr.cast::<ffi::PyDescrObject>()).d_type == cls.as_type_ptr()
        });
        if let Some(s) = found {
            return Ok(Bound::from_borrowed_ptr(py, s.descr).unbind());
        }
        let index = (*table).iter().position(|s| s.descr.is_null()).ok_or_else(|| {
            PyRuntimeError::new_err(format!("pending_finalizer(): all {SLOTS} finalizers are taken"))
        })?;
        let descr = PyDescr_NewWrapper(cls.as_type_ptr(), base, ENTRIES[index] as *mut c_void);
        if descr.is_null() {
            return Err(PyErr::fetch(py));
        }
        (*table)[index] = Slot {
            func: func.clone().into_ptr(),
            member: slot.clone().into_ptr(),
            offset,
            descr,
        };
        // the slot keeps its own reference
        Ok(Bound::from_borrowed_ptr(py, descr).unbind())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pending_finalizer, m)?)?;
    Ok(())
}
