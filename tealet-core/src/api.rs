//! Safe Rust API over the C ABI: closures, `Result`s, values are `usize`.
//!
//! Drop policy: dropping a [`Tealet`] that never ran drops its closure; dropping one that is
//! suspended frees its stack **without unwinding it** (like `std::mem::forget` of everything
//! on that stack: destructors there never run, their heap memory leaks). Finish a tealet
//! (switch to it until it returns) to release its resources cleanly. A panic inside a tealet
//! aborts the process: nothing unwinds across a switch.
use std::ffi::{c_void, CStr};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::null_mut;

use crate::ffi::*;

/// An error code of the C ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub i32);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: tealet_strerror returns a static NUL-terminated string for any code.
        let s = unsafe { CStr::from_ptr(tealet_strerror(self.0)) };
        write!(f, "{} ({})", s.to_string_lossy(), self.0)
    }
}

impl std::error::Error for Error {}

fn check(rc: i32) -> Result<(), Error> {
    if rc == TEALET_OK { Ok(()) } else { Err(Error(rc)) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Dedicated,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Running,
    Suspended,
    Finished,
}

type Body = Box<dyn FnOnce(usize) -> usize>;

/// A tealet owned by Rust code; bound to the thread that created it.
pub struct Tealet {
    raw: *mut tealet_t,
    body: *mut Body,
    _thread_bound: PhantomData<*mut ()>,
}

unsafe extern "C" fn run_body(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `arg` is the boxed body from `Tealet::new`, taken exactly once (status NEW -> RUNNING);
    // `value` is valid during run.
    unsafe {
        let body = Box::from_raw(arg as *mut Body);
        let result = body(*value as usize);
        *value = result as *mut c_void;
        tealet_previous()
    }
}

impl Tealet {
    /// A tealet that runs `f(first value)` on the first switch and, when `f` returns, continues
    /// in the tealet that last switched to it with `f`'s result.
    pub fn new(f: impl FnOnce(usize) -> usize + 'static, policy: Policy, stack_size: usize) -> Result<Self, Error> {
        let body: *mut Body = Box::into_raw(Box::new(Box::new(f)));
        let cfg = tealet_config_t {
            stack_size,
            policy: match policy {
                Policy::Dedicated => TEALET_STACK_DEDICATED,
                Policy::Shared => TEALET_STACK_SHARED,
            },
        };
        let mut raw = null_mut();
        // SAFETY: valid run function, config and out pointer.
        let rc = unsafe { tealet_create(Some(run_body), body as *mut c_void, &cfg, &mut raw) };
        if let Err(e) = check(rc) {
            // SAFETY: creation failed, so the body was never handed over.
            drop(unsafe { Box::from_raw(body) });
            return Err(e);
        }
        Ok(Tealet { raw, body, _thread_bound: PhantomData })
    }

    /// Switch to this tealet with `value`; returns the value we are resumed with.
    pub fn switch(&self, value: usize) -> Result<usize, Error> {
        let mut v = value as *mut c_void;
        // SAFETY: `raw` is live until drop; the C side checks thread and status.
        check(unsafe { tealet_switch(self.raw, &mut v) })?;
        Ok(v as usize)
    }

    pub fn status(&self) -> Status {
        // SAFETY: `raw` is live until drop.
        match unsafe { tealet_status(self.raw) } {
            TEALET_STATUS_NEW => Status::New,
            TEALET_STATUS_RUNNING => Status::Running,
            TEALET_STATUS_SUSPENDED => Status::Suspended,
            _ => Status::Finished,
        }
    }

    pub fn id(&self) -> u64 {
        // SAFETY: `raw` is live until drop.
        unsafe { tealet_id(self.raw) }
    }

    /// Bytes of its stack currently on the heap (shared policy).
    pub fn stack_saved(&self) -> usize {
        // SAFETY: `raw` is live until drop.
        unsafe { tealet_stack_saved(self.raw) }
    }
}

/// From inside a tealet: switch back to the tealet that last switched to this one.
pub fn switch_back(value: usize) -> Result<usize, Error> {
    let mut v = value as *mut c_void;
    // SAFETY: `tealet_previous` is a live tealet of this thread or NULL (rejected by switch).
    check(unsafe { tealet_switch(tealet_previous(), &mut v) })?;
    Ok(v as usize)
}

impl Drop for Tealet {
    fn drop(&mut self) {
        let status = self.status();
        // SAFETY: `raw` is ours; the body box is still ours only while NEW.
        unsafe {
            if status == Status::New {
                drop(Box::from_raw(self.body));
            }
            // Running (dropped from inside itself) or foreign-thread tealets cannot be freed: leak.
            let _ = tealet_free(self.raw);
        }
    }
}
