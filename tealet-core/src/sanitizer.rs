//! AddressSanitizer fiber annotations (cargo feature `asan`). The entry points are looked up
//! at run time, so a library built with the feature works in processes without ASan (the calls
//! are skipped) and tells ASan about every stack change when the process has it.
use std::ffi::{c_void, CStr};
use std::ptr::null_mut;
use std::sync::OnceLock;

type StartFn = unsafe extern "C" fn(*mut *mut c_void, *const c_void, usize);
type FinishFn = unsafe extern "C" fn(*mut c_void, *mut *const c_void, *mut usize);
type UnpoisonFn = unsafe extern "C" fn(*const c_void, usize);

struct Hooks {
    start: Option<StartFn>,
    finish: Option<FinishFn>,
    unpoison: Option<UnpoisonFn>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name only reads the loaded objects' symbol tables.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

fn hooks() -> &'static Hooks {
    HOOKS.get_or_init(|| {
        let (s, f, u) = (
            lookup(c"__sanitizer_start_switch_fiber"),
            lookup(c"__sanitizer_finish_switch_fiber"),
            lookup(c"__asan_unpoison_memory_region"),
        );
        // SAFETY: non-null results are ASan's functions with exactly these signatures.
        unsafe {
            Hooks {
                start: (!s.is_null()).then(|| std::mem::transmute::<*mut c_void, StartFn>(s)),
                finish: (!f.is_null()).then(|| std::mem::transmute::<*mut c_void, FinishFn>(f)),
                unpoison: (!u.is_null()).then(|| std::mem::transmute::<*mut c_void, UnpoisonFn>(u)),
            }
        }
    })
}

/// Right before leaving the current stack for `[bottom, bottom + size)`. `save` keeps the
/// leaving context's fake stack until it resumes; null when it never resumes.
pub(crate) fn start(save: *mut *mut c_void, bottom: usize, size: usize) {
    if let Some(f) = hooks().start {
        // SAFETY: ASan's documented protocol; `save` is null or writable.
        unsafe { f(save, bottom as *const c_void, size) };
    }
}

/// First thing after arriving on a stack, with what `start` saved (null on a fresh stack).
pub(crate) fn finish(saved: *mut c_void) {
    if let Some(f) = hooks().finish {
        // SAFETY: ASan's documented protocol; null out-parameters are allowed.
        unsafe { f(saved, null_mut(), null_mut()) };
    }
}

/// Clear stale redzones: a stack range whose bytes were copied in from the heap, or whose
/// frames were abandoned without returning.
pub(crate) fn unpoison(addr: usize, len: usize) {
    if let Some(f) = hooks().unpoison {
        // SAFETY: only clears shadow state for a stack range we own.
        unsafe { f(addr as *const c_void, len) };
    }
}
