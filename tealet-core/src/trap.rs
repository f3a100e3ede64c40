//! Optional stack-overflow reporter: a SIGSEGV/SIGBUS handler on a per-thread alternate signal
//! stack. A fault in the running tealet's guard prints which tealet overflowed and aborts;
//! every other fault goes to the handler that was installed before ours.
use std::mem::MaybeUninit;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::tealet::thread_state_if_any;

const ALTSTACK_SIZE: usize = 64 * 1024;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL_LOCK: Mutex<()> = Mutex::new(());
static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

/// Write `msg` to stderr and abort (async-signal-safe).
pub(crate) fn fatal(msg: &[u8]) -> ! {
    // SAFETY: write(2) and abort(3) are async-signal-safe; `msg` is a valid buffer.
    unsafe {
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::abort()
    }
}

fn fmt_u64(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[i..];
        }
    }
}

/// An alternate signal stack for the calling thread if the handler is installed.
pub(crate) fn thread_altstack() -> *mut u8 {
    if !INSTALLED.load(Ordering::Acquire) {
        return null_mut();
    }
    new_altstack()
}

fn new_altstack() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping, then sigaltstack on it for this thread.
    unsafe {
        let p = libc::mmap(
            null_mut(),
            ALTSTACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return null_mut();
        }
        let ss = libc::stack_t { ss_sp: p, ss_flags: 0, ss_size: ALTSTACK_SIZE };
        if libc::sigaltstack(&ss, null_mut()) != 0 {
            libc::munmap(p, ALTSTACK_SIZE);
            return null_mut();
        }
        p as *mut u8
    }
}

pub(crate) fn drop_altstack(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: disable the alternate stack of this thread before unmapping the stack we mapped.
    unsafe {
        let ss = libc::stack_t { ss_sp: null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        libc::sigaltstack(&ss, null_mut());
        libc::munmap(p as *mut _, ALTSTACK_SIZE);
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; the thread state and running tealet are only
    // read, and they are not freed while that tealet runs.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let ts = thread_state_if_any();
        if !ts.is_null() && !(*ts).current.is_null() {
            let t = (*ts).current;
            let (lo, hi, size) = crate::tealet::guard(t);
            if addr >= lo && addr < hi {
                let mut b1 = [0u8; 20];
                let mut b2 = [0u8; 20];
                let parts: [&[u8]; 5] = [
                    b"tealet: stack overflow in tealet ",
                    fmt_u64(crate::tealet::id(t), &mut b1),
                    b" (stack size ",
                    fmt_u64(size as u64, &mut b2),
                    b")\n",
                ];
                for p in parts {
                    libc::write(2, p.as_ptr() as *const _, p.len());
                }
                libc::abort();
            }
        }
        let prev = if sig == libc::SIGSEGV {
            (*std::ptr::addr_of!(PREV_SEGV)).assume_init_ref()
        } else {
            (*std::ptr::addr_of!(PREV_BUS)).assume_init_ref()
        };
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Re-raise with the previous disposition: returning re-executes the faulting access.
            libc::sigaction(sig, prev, null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, uctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// Install the handler process-wide (idempotent) and an alternate stack on the calling thread;
/// threads that create their first tealet later get one automatically.
pub(crate) fn install() -> i32 {
    let _g = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let ts = crate::tealet::thread_state();
    if ts.is_null() {
        return crate::tealet::ERR_THREAD;
    }
    // SAFETY: `ts` is this thread's state; sigaction with a zeroed struct plus our fields.
    unsafe {
        if (*ts).altstack.is_null() {
            (*ts).altstack = new_altstack();
            if (*ts).altstack.is_null() {
                return crate::tealet::ERR_NOMEM;
            }
        }
        if INSTALLED.load(Ordering::Acquire) {
            return crate::tealet::OK;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(libc::SIGSEGV, &sa, old.as_mut_ptr()) != 0 {
            return crate::tealet::ERR_INVALID;
        }
        *std::ptr::addr_of_mut!(PREV_SEGV) = old;
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(libc::SIGBUS, &sa, old.as_mut_ptr()) != 0 {
            return crate::tealet::ERR_INVALID;
        }
        *std::ptr::addr_of_mut!(PREV_BUS) = old;
    }
    INSTALLED.store(true, Ordering::Release);
    crate::tealet::OK
}
