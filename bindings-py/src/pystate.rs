//! Rust face of csrc/pystate.c: the per-continuation interpreter state (opaque, owned by C).
use pyo3::ffi;
use std::os::raw::{c_int, c_void};

#[repr(C)]
pub struct TpyState {
    _opaque: [u8; 0],
}

extern "C" {
    pub fn tpy_state_new() -> *mut TpyState;
    pub fn tpy_state_free(s: *mut TpyState);
    pub fn tpy_save(s: *mut TpyState) -> c_int;
    pub fn tpy_restore(s: *mut TpyState);
    pub fn tpy_run_fresh(
        s: *mut TpyState,
        body: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
        arg: *mut c_void,
    ) -> *mut c_void;
    pub fn tpy_finish();
    pub fn tpy_top_frame(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_get_context(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_set_context(s: *mut TpyState, ctx: *mut ffi::PyObject);
    pub fn tpy_get_current_context() -> *mut ffi::PyObject;
    pub fn tpy_set_current_context(ctx: *mut ffi::PyObject);
    pub fn tpy_frames_head(s: *mut TpyState) -> *mut c_void;
    pub fn tpy_handled_exception(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_traverse(s: *mut TpyState, visit: ffi::visitproc, arg: *mut c_void) -> c_int;
}
