//! Safe Rust API over the C ABI: closures, `Result`s, values are `usize`.
//!
//! Drop policy: dropping a [`Tealet`] that never ran drops its closure; dropping one that is
//! suspended unwinds its stack first (its `switch_back` or `switch` call panics with a private
//! payload that the tealet's entry catches), so destructors there run, as with corosensei. A
//! stack that cannot be unwound (a panic=abort build, a drop during a panic, a tealet that
//! switches away while unwinding) is leaked, never reused: a scoped thread may still borrow
//! it. A panic inside a tealet ends it and goes on in the tealet it returns to (the one that
//! last switched to it), as a panic out of that one's `switch`.
use std::any::Any;
use std::cell::Cell;
use std::ffi::{c_void, CStr};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
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

/// The payload of the unwind that dropping a suspended tealet starts inside it.
struct ForcedUnwind;

thread_local! {
    /// The tealet `Drop` resumes to unwind it (else null).
    static UNWIND: Cell<*mut tealet_t> = const { Cell::new(null_mut()) };
    /// A panic that ended a tealet, for the tealet it returned to.
    static PANIC: Cell<Option<Box<dyn Any + Send>>> = const { Cell::new(None) };
}

/// What a switch of ours that returned `v` gives its caller, on the tealet it resumed.
fn resumed(v: *mut c_void) -> usize {
    let unwind = UNWIND.with(Cell::get);
    // SAFETY: tealet_current has no preconditions (asked only while a drop unwinds a tealet).
    if !unwind.is_null() && unwind == unsafe { tealet_current() } {
        UNWIND.with(|u| u.set(null_mut()));
        panic::resume_unwind(Box::new(ForcedUnwind));
    }
    if let Some(payload) = PANIC.with(Cell::take) {
        panic::resume_unwind(payload);
    }
    v as usize
}

unsafe extern "C" fn run_body(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `arg` is the boxed body from `Tealet::new`, taken exactly once (status NEW -> RUNNING);
    // `value` is valid during run.
    unsafe {
        let body = Box::from_raw(arg as *mut Body);
        let first = *value as usize;
        // The unwind stops here: nothing unwinds across a switch.
        *value = match panic::catch_unwind(AssertUnwindSafe(move || body(first))) {
            Ok(result) => result as *mut c_void,
            Err(payload) => {
                if !payload.is::<ForcedUnwind>() {
                    PANIC.with(|p| p.set(Some(payload)));
                }
                null_mut()
            }
        };
        tealet_previous()
    }
}

impl Tealet {
    /// A tealet on a stack of its own that runs `f(first value)` on the first switch and, when
    /// `f` returns, continues in the tealet that last switched to it with `f`'s result.
    pub fn new(f: impl FnOnce(usize) -> usize + 'static, stack_size: usize) -> Result<Self, Error> {
        Self::create(Box::new(f), TEALET_STACK_DEDICATED, stack_size)
    }

    /// Like [`Tealet::new`], on the dense policy's shared stack regions.
    ///
    /// # Safety
    /// While this tealet is suspended its stack may be copied to the heap and its region used by
    /// another tealet, so nothing outside it may use a reference into its stack then (for
    /// example a thread of a `std::thread::scope` it opened and switched away from).
    pub unsafe fn new_shared(f: impl FnOnce(usize) -> usize + 'static, stack_size: usize) -> Result<Self, Error> {
        Self::create(Box::new(f), TEALET_STACK_SHARED, stack_size)
    }

    fn create(f: Body, policy: i32, stack_size: usize) -> Result<Self, Error> {
        let body: *mut Body = Box::into_raw(Box::new(f));
        let cfg = tealet_config_t { stack_size, policy };
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
        Ok(resumed(v))
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
    Ok(resumed(v))
}

impl Drop for Tealet {
    fn drop(&mut self) {
        let mut status = self.status();
        if status == Status::Suspended && cfg!(panic = "unwind") && !std::thread::panicking() {
            UNWIND.with(|u| u.set(self.raw));
            // SAFETY: `raw` is a suspended tealet of this thread (the handle is !Send); it
            // comes back here once unwound, or sooner if it switches away while unwinding.
            let rc = unsafe { tealet_switch(self.raw, null_mut()) };
            UNWIND.with(|u| u.set(null_mut()));
            if rc == TEALET_OK {
                if let Some(payload) = PANIC.with(Cell::take) {
                    panic::resume_unwind(payload); // a destructor on its stack panicked
                }
            }
            status = self.status();
        }
        // SAFETY: `raw` is ours; the body box is still ours only while NEW.
        unsafe {
            match status {
                Status::New => drop(Box::from_raw(self.body)),
                Status::Finished => {}
                // Running (dropped from inside itself) or not unwound: leaked, as documented.
                Status::Running | Status::Suspended => return,
            }
            let _ = tealet_free(self.raw);
        }
    }
}
