//! The C ABI (`include/tealet.h`). Every function checks its arguments and returns an error
//! code rather than crashing on bad input it can detect.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

use crate::tealet::{self as t, Tealet};

pub type tealet_t = Tealet;

pub const TEALET_OK: c_int = t::OK;
pub const TEALET_ERR_INVALID: c_int = t::ERR_INVALID;
pub const TEALET_ERR_NOMEM: c_int = t::ERR_NOMEM;
pub const TEALET_ERR_FINISHED: c_int = t::ERR_FINISHED;
pub const TEALET_ERR_THREAD: c_int = t::ERR_THREAD;
pub const TEALET_ERR_STACK: c_int = t::ERR_STACK;

pub const TEALET_STATUS_NEW: c_int = t::NEW;
pub const TEALET_STATUS_RUNNING: c_int = t::RUNNING;
pub const TEALET_STATUS_SUSPENDED: c_int = t::SUSPENDED;
pub const TEALET_STATUS_FINISHED: c_int = t::FINISHED;

pub const TEALET_STACK_DEDICATED: c_int = t::POLICY_DEDICATED;
pub const TEALET_STACK_SHARED: c_int = t::POLICY_SHARED;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tealet_config_t {
    /// Usable stack bytes; 0 = default (256 KiB dedicated, 8 MiB shared region).
    pub stack_size: usize,
    pub policy: c_int,
}

pub type tealet_run_t = Option<unsafe extern "C" fn(*mut tealet_t, *mut c_void, *mut *mut c_void) -> *mut tealet_t>;

/// The calling thread's main tealet, created on first use; NULL on OOM or during thread exit.
///
/// # Safety
/// Not async-signal-safe: the first call on a thread allocates its state.
#[no_mangle]
pub unsafe extern "C" fn tealet_main() -> *mut tealet_t {
    let ts = t::thread_state();
    if ts.is_null() {
        return null_mut();
    }
    // SAFETY: `ts` is the calling thread's live state.
    unsafe { (*ts).main }
}

/// The running tealet of the calling thread.
///
/// # Safety
/// Not async-signal-safe: the first call on a thread allocates its state.
#[no_mangle]
pub unsafe extern "C" fn tealet_current() -> *mut tealet_t {
    let ts = t::thread_state();
    if ts.is_null() {
        return null_mut();
    }
    // SAFETY: `ts` is the calling thread's live state.
    unsafe { (*ts).current }
}

/// The tealet that last switched to the current one (NULL if none or freed).
///
/// # Safety
/// Not async-signal-safe: the first call on a thread allocates its state.
#[no_mangle]
pub unsafe extern "C" fn tealet_previous() -> *mut tealet_t {
    let ts = t::thread_state();
    if ts.is_null() {
        return null_mut();
    }
    // SAFETY: `ts` is the calling thread's live state.
    unsafe { (*ts).previous }
}

/// Create a tealet; `run` is called on the first switch into it.
///
/// # Safety
/// `cfg` must be NULL or point to a readable config, `out` must be NULL or writable; `run`
/// must not unwind.
#[no_mangle]
pub unsafe extern "C" fn tealet_create(
    run: tealet_run_t,
    arg: *mut c_void,
    cfg: *const tealet_config_t,
    out: *mut *mut tealet_t,
) -> c_int {
    let Some(run) = run else { return TEALET_ERR_INVALID };
    if out.is_null() {
        return TEALET_ERR_INVALID;
    }
    // SAFETY: a non-null cfg points to a config (the caller's promise).
    let cfg = if cfg.is_null() { tealet_config_t::default() } else { unsafe { *cfg } };
    match t::create(run, arg, cfg.stack_size, cfg.policy) {
        Ok(p) => {
            // SAFETY: `out` is non-null and writable (the caller's promise).
            unsafe { *out = p };
            TEALET_OK
        }
        Err(e) => e,
    }
}

/// Switch to `target`. `*value` in: passed to it; out: the value we are resumed with.
/// `value` may be NULL (passes NULL, drops the received value).
///
/// # Safety
/// `target` must be NULL or a tealet pointer from this library that has not been freed;
/// `value` must be NULL or readable and writable. Frames on the suspended stack must not be
/// borrowed from elsewhere while it is suspended (it may be copied to the heap and back).
#[no_mangle]
pub unsafe extern "C" fn tealet_switch(target: *mut tealet_t, value: *mut *mut c_void) -> c_int {
    // SAFETY: the caller's promise, as above.
    unsafe { t::switch_fast(target, value) }
}

/// Finish the current tealet and continue in `target` with `value`; returns only on error.
///
/// # Safety
/// As for `tealet_switch`; the current tealet's frames are abandoned without unwinding, so
/// nothing on them may still be in use.
#[no_mangle]
pub unsafe extern "C" fn tealet_exit(target: *mut tealet_t, value: *mut c_void) -> c_int {
    let ts = match t::target_state(target) {
        Ok(ts) => ts,
        Err(e) => return e,
    };
    // SAFETY: `ts` is live (checked by target_state).
    let cur = unsafe { (*ts).current };
    // SAFETY: the current tealet is alive while it runs.
    if target == cur || unsafe { t::is_main(cur) } {
        return TEALET_ERR_INVALID;
    }
    match t::switch_to(ts, target, value, true) {
        Ok(_) => crate::trap::fatal(b"tealet: internal error: finished tealet resumed\n"),
        Err(e) => e,
    }
}

/// The status (`TEALET_STATUS_*`), or `TEALET_ERR_INVALID` for NULL.
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_status(t: *const tealet_t) -> c_int {
    if t.is_null() {
        return TEALET_ERR_INVALID;
    }
    // SAFETY: a live tealet pointer (the caller's promise).
    unsafe { t::status(t) }
}

/// Unique (per process) id; 0 for NULL.
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_id(t: *const tealet_t) -> u64 {
    if t.is_null() {
        return 0;
    }
    // SAFETY: a live tealet pointer (the caller's promise).
    unsafe { t::id(t) }
}

/// The user pointer set with `tealet_set_data` (NULL until then, and for NULL).
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_get_data(t: *const tealet_t) -> *mut c_void {
    if t.is_null() {
        return null_mut();
    }
    // SAFETY: a live tealet pointer (the caller's promise).
    unsafe { t::data(t) }
}

/// Set the user pointer (ignored for NULL).
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed; no
/// other thread may read or set `t`'s data at the same time.
#[no_mangle]
pub unsafe extern "C" fn tealet_set_data(t: *mut tealet_t, data: *mut c_void) {
    if !t.is_null() {
        // SAFETY: a live tealet pointer (the caller's promise).
        unsafe { t::set_data(t, data) };
    }
}

/// Bytes of the tealet's stack currently copied to the heap (shared policy).
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_stack_saved(t: *const tealet_t) -> usize {
    if t.is_null() {
        return 0;
    }
    // SAFETY: a live tealet pointer (the caller's promise).
    unsafe { t::saved_len(t) }
}

/// Bytes of suspended tealet `t`'s live stack (what its resumption needs), in place or copied
/// to the heap; 0 if `t` is NULL, not suspended, or its thread exited (it cannot resume).
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_stack_used(t: *const tealet_t) -> usize {
    if t.is_null() {
        return 0;
    }
    // SAFETY: a live tealet pointer (the caller's promise); a live thread keeps its stack bounds.
    unsafe {
        if !t::thread_alive(t) {
            return 0;
        }
        t::live_len(t)
    }
}

/// Where the byte at stack address `addr` of suspended tealet `t` lives now: `addr` itself
/// while its stack is in place, inside the heap copy while it is copied out. NULL if `addr` is
/// not in its live stack `[sp, top)` or `t` is not suspended on a live thread.
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed. The
/// result is valid until `t`'s thread next switches (a switch may copy the stack in or out).
#[no_mangle]
pub unsafe extern "C" fn tealet_translate(t: *const tealet_t, addr: *const c_void) -> *mut c_void {
    if t.is_null() {
        return null_mut();
    }
    // SAFETY: a live tealet pointer (the caller's promise); a live thread keeps its stack bounds.
    unsafe {
        if !t::thread_alive(t) {
            return null_mut();
        }
        t::translate(t, addr as usize)
    }
}

/// Free a tealet that is NEW, SUSPENDED or FINISHED (not the current or a main tealet). A
/// suspended tealet's stack is dropped without unwinding.
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed, and
/// must not be used after this returns OK. Nothing on a suspended tealet's stack (no drop,
/// no borrowed frame) may still be needed.
#[no_mangle]
pub unsafe extern "C" fn tealet_free(t: *mut tealet_t) -> c_int {
    t::free(t)
}

/// Install the stack-overflow reporter (see header).
///
/// # Safety
/// Replaces the process's SIGSEGV/SIGBUS dispositions (the previous ones are chained to):
/// call it while no other thread is changing them.
#[no_mangle]
pub unsafe extern "C" fn tealet_install_overflow_handler() -> c_int {
    crate::trap::install()
}

/// Usable stack size of a tealet (shared: its region's), 0 for main tealets or NULL.
///
/// # Safety
/// `t` must be NULL or a tealet pointer from this library that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn tealet_stack_size(t: *const tealet_t) -> usize {
    if t.is_null() {
        return 0;
    }
    // SAFETY: a live tealet pointer (the caller's promise).
    unsafe { t::stack_size(t) }
}

/// A static message for an error code.
///
/// # Safety
/// None: any code is accepted and the result is a static NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tealet_strerror(code: c_int) -> *const c_char {
    let s: &'static [u8] = match code {
        TEALET_OK => b"ok\0",
        TEALET_ERR_INVALID => b"invalid argument\0",
        TEALET_ERR_NOMEM => b"out of memory\0",
        TEALET_ERR_FINISHED => b"tealet has finished\0",
        TEALET_ERR_THREAD => b"tealet belongs to another thread (or its thread exited)\0",
        TEALET_ERR_STACK => b"no stack available (arena or guard budget exhausted; see vm.max_map_count)\0",
        _ => b"unknown error\0",
    };
    s.as_ptr() as *const c_char
}
