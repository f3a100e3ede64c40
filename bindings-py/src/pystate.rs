//! Rust face of csrc/: the per-continuation interpreter state (pystate.c, opaque, owned by C)
//! and the bytecode stack analysis (stackdepth.c).
use pyo3::ffi;
use std::os::raw::{c_int, c_void};

#[repr(C)]
pub struct TpyState {
    _opaque: [u8; 0],
}

/// One instruction as csrc/stackdepth.c describes it.
#[repr(C)]
pub struct TsdInstr {
    pub index: c_int,
    pub opcode: c_int,
    pub oparg: c_int,
    pub depth: c_int,
}

extern "C" {
    pub fn tsd_instruction(code: *mut ffi::PyObject, index: c_int, out: *mut TsdInstr) -> c_int;
    pub fn tsd_code_units(code: *mut ffi::PyObject) -> c_int;
    pub fn tpy_state_new() -> *mut TpyState;
    pub fn tpy_state_free(s: *mut TpyState);
    pub fn tpy_state_recycle(s: *mut TpyState);
    pub fn tpy_save(s: *mut TpyState, switch_args: *const c_void) -> c_int;
    pub fn tpy_restore(s: *mut TpyState, from: *mut TpyState);
    pub fn tpy_reserve(s: *mut TpyState) -> c_int;
    pub fn tpy_start(s: *mut TpyState, from: *mut TpyState);
    pub fn tpy_set_detached(s: *mut TpyState);
    pub fn tpy_type_flag(ty: *mut ffi::PyTypeObject, name: *mut ffi::PyObject, slot: c_int) -> c_int;
    pub fn tpy_call(
        callable: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    pub fn tpy_finish() -> *mut ffi::PyObject;
    pub fn tpy_hidden_call(
        func: *mut ffi::PyObject,
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    pub fn tpy_hidden_finalize(func: *mut ffi::PyObject, obj: *mut ffi::PyObject);
    pub fn tpy_tracing() -> c_int;
    pub fn tpy_finalizing() -> c_int;
    pub fn tpy_make_immutable(ty: *mut ffi::PyTypeObject);
    pub fn tpy_gc_collecting_flag() -> *const c_int;
    pub fn tpy_set_tracing(level: c_int);
    pub fn tpy_top_frame(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_get_context(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_set_context(s: *mut TpyState, ctx: *mut ffi::PyObject);
    pub fn tpy_get_current_context() -> *mut ffi::PyObject;
    pub fn tpy_set_current_context(ctx: *mut ffi::PyObject);
    pub fn tpy_trash_delete_nesting() -> c_int;
    pub fn tpy_set_switch_methods(switch: *mut ffi::PyObject, throw: *mut ffi::PyObject);
    pub fn tpy_abandon(s: *mut TpyState) -> c_int;
    pub fn tpy_frames_head(s: *mut TpyState) -> *mut c_void;
    pub fn tpy_handled_exception(s: *mut TpyState) -> *mut ffi::PyObject;
    pub fn tpy_traverse(s: *mut TpyState, visit: ffi::visitproc, arg: *mut c_void) -> c_int;
}
