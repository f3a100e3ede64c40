//! Frame capture and resume (csrc/frames.c): a suspended continulet's Python frames as plain,
//! picklable data, and a continulet callable that resumes such data in any process running
//! the same CPython minor version and the same code. CPython 3.11-3.13; 3.9/3.10 raise
//! NotImplementedError naming the version.
//!
//! `capture_frames(cont, top, bottom)` -> `(records, handled)`: `cont` must be suspended in a
//! switch called from a frame running code object `top`; that frame is not captured (whoever
//! resumes supplies its result). Records follow innermost first down to, not including, the
//! first frame running code object `bottom` (or to the continulet's first frame). A record is
//! `(kind, code, function, offset, items, nulls, selfs)` (see csrc/frames.c); kinds "frame"
//! and "init" (3.13's hidden frame of an inlined `Cls(...)`) can be resumed. `handled` is the
//! exception being handled at the switch, or None.
//!
//! `resume_frames(cont, records, first, handled=None)`: use as a continulet callable (or call
//! it from one, passing its continulet). Calls `first()`, then resumes the records innermost
//! first with that result (or exception) and returns what the outermost returns.
//!
//! `check_frames(records)`: raises ValueError (naming the code object) unless every record is
//! one that `resume_frames` accepts: a resume point of its code, as many stack entries as the
//! bytecode has there, slot indices in range, cells in the cell slots. The values themselves
//! are trusted, as everywhere in pickle. `resume_frames` makes the same check first.
use crate::pystate::{tpy_frames_head, tpy_handled_exception};
use crate::{error, suspended_state, Continulet};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::c_void;

extern "C" {
    fn tpy_frames_capture(head: *mut c_void, top: *mut ffi::PyObject, bottom: *mut ffi::PyObject, cont: *mut ffi::PyObject) -> *mut ffi::PyObject;
    fn tpy_frames_resume(cont: *mut ffi::PyObject, records: *mut ffi::PyObject, first: *mut ffi::PyObject, handled: *mut ffi::PyObject) -> *mut ffi::PyObject;
    fn tpy_frames_check(records: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

#[pyfunction]
fn capture_frames(py: Python<'_>, cont: &Bound<'_, Continulet>, top: &Bound<'_, PyAny>, bottom: &Bound<'_, PyAny>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let state = suspended_state(cont.get()).ok_or_else(|| error::new_err("continulet is not suspended in this thread"))?;
    // SAFETY: state belongs to a suspended continuation of this thread, so its frames are intact
    // and not running; the capture only reads them and takes new references.
    unsafe {
        let records = Bound::from_owned_ptr_or_err(py, tpy_frames_capture(tpy_frames_head(state), top.as_ptr(), bottom.as_ptr(), cont.as_ptr()))?;
        let handled = Bound::from_borrowed_ptr_or_opt(py, tpy_handled_exception(state)).map_or_else(|| py.None(), |h| h.unbind());
        Ok((records.unbind(), handled))
    }
}

#[pyfunction]
#[pyo3(signature = (cont, records, first, handled = None))]
fn resume_frames(py: Python<'_>, cont: &Bound<'_, Continulet>, records: &Bound<'_, PyAny>, first: &Bound<'_, PyAny>, handled: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    let handled = handled.map_or_else(|| py.None().into_bound(py), |h| h.clone());
    if !handled.is_none() && !handled.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        return Err(pyo3::exceptions::PyTypeError::new_err("handled must be an exception or None"));
    }
    // SAFETY: all arguments are live objects; the C driver validates the records.
    unsafe { Ok(Bound::from_owned_ptr_or_err(py, tpy_frames_resume(cont.as_ptr(), records.as_ptr(), first.as_ptr(), handled.as_ptr()))?.unbind()) }
}

#[pyfunction]
fn check_frames(py: Python<'_>, records: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: records is a live object held by the caller for the duration of the call.
    unsafe { Bound::from_owned_ptr_or_err(py, tpy_frames_check(records.as_ptr())) }.map(drop)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(capture_frames, m)?)?;
    m.add_function(wrap_pyfunction!(resume_frames, m)?)?;
    m.add_function(wrap_pyfunction!(check_frames, m)?)?;
    Ok(())
}
