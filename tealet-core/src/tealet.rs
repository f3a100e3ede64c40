//! Tealets and the per-thread state that switches between them.
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::stack::pool::Pool;
use crate::stack::shared::{Region, Regions};
use crate::stack::{page_round, StackError, DEFAULT_DEDICATED, DEFAULT_SHARED, GUARD_SIZE, MIN_STACK};

pub(crate) const OK: i32 = 0;
pub(crate) const ERR_INVALID: i32 = -1;
pub(crate) const ERR_NOMEM: i32 = -2;
pub(crate) const ERR_FINISHED: i32 = -3;
pub(crate) const ERR_THREAD: i32 = -4;
pub(crate) const ERR_STACK: i32 = -5;

pub(crate) const NEW: i32 = 0;
pub(crate) const RUNNING: i32 = 1;
pub(crate) const SUSPENDED: i32 = 2;
pub(crate) const FINISHED: i32 = 3;

pub(crate) const POLICY_DEDICATED: i32 = 0;
pub(crate) const POLICY_SHARED: i32 = 1;

pub(crate) type RunFn = unsafe extern "C" fn(*mut Tealet, *mut c_void, *mut *mut c_void) -> *mut Tealet;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Identity of a thread.
pub(crate) struct ThreadTag {
    /// The thread's `threadid::current()`, 0 once its state is torn down (a later thread may
    /// reuse the value).
    tid: AtomicUsize,
    /// The thread's state, read only by that thread.
    ts: AtomicPtr<ThreadState>,
}

pub(crate) enum Stack {
    /// The thread's own stack; `top` and `low` from pthread attributes.
    Main { top: usize, low: usize },
    /// A slot `[base, base + slot)` with the guard at `base`.
    Dedicated { base: usize, slot: usize },
    Shared(*mut Region),
}

pub struct Tealet {
    pub(crate) id: u64,
    pub(crate) status: i32,
    pub(crate) thread: Arc<ThreadTag>,
    pub(crate) run: Option<RunFn>,
    pub(crate) arg: *mut c_void,
    pub(crate) data: *mut c_void,
    /// Saved stack pointer while not running.
    pub(crate) sp: usize,
    /// Where the value it is resumed with goes (its `tealet_switch` argument), or null.
    out: *mut *mut c_void,
    /// ASan's fake stack of this context while it is suspended.
    #[cfg(feature = "asan")]
    fake_stack: *mut c_void,
    pub(crate) stack: Stack,
    /// Heap copy of `[sp, top)` while another tealet occupies the shared region (malloc'd).
    pub(crate) saved: *mut u8,
    pub(crate) saved_len: usize,
}

impl Tealet {
    pub(crate) fn is_main(&self) -> bool {
        matches!(self.stack, Stack::Main { .. })
    }

    /// Highest address of this tealet's stack. Only valid while its thread is alive.
    pub(crate) fn top(&self) -> usize {
        match self.stack {
            Stack::Main { top, .. } => top,
            Stack::Dedicated { base, slot } => base + slot,
            // SAFETY: regions live as long as their thread, which the caller checked.
            Stack::Shared(r) => unsafe { (*r).top() },
        }
    }

    /// `[guard_low, guard_high)` and usable size, for the overflow report.
    pub(crate) fn guard(&self) -> (usize, usize, usize) {
        match self.stack {
            Stack::Main { low, top } => (low.saturating_sub(GUARD_SIZE), low, top - low),
            Stack::Dedicated { base, slot } => (base, base + GUARD_SIZE, slot - GUARD_SIZE),
            // SAFETY: only called for the running tealet, whose region is alive.
            Stack::Shared(r) => unsafe { ((*r).base, (*r).base + GUARD_SIZE, (*r).usable()) },
        }
    }

    fn free_saved(&mut self) {
        if !self.saved.is_null() {
            // SAFETY: `saved` came from malloc and nothing else refers to it.
            unsafe { libc::free(self.saved as *mut c_void) };
            self.saved = null_mut();
            self.saved_len = 0;
        }
    }
}

pub(crate) struct ThreadState {
    pub(crate) tag: Arc<ThreadTag>,
    pub(crate) main: *mut Tealet,
    pub(crate) current: *mut Tealet,
    pub(crate) previous: *mut Tealet,
    /// Switch in progress (through `save`/`restore`): where to, with what value, whether the
    /// current one finishes.
    target: *mut Tealet,
    value: *mut c_void,
    finishing: bool,
    /// Buffer for the region owner's copy, allocated before the switch so OOM is an error code.
    spare: *mut u8,
    spare_len: usize,
    /// Slot of a finished tealet, released once we are off it.
    release: Option<(usize, usize)>,
    pub(crate) pool: Pool,
    regions: Regions,
    pub(crate) altstack: *mut u8,
}

thread_local! {
    static STATE: Cell<*mut ThreadState> = const { Cell::new(null_mut()) };
    static TEARDOWN: Teardown = const { Teardown };
}

/// Frees the thread's state at thread exit.
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        let ts = STATE.with(|s| s.replace(null_mut()));
        if ts.is_null() {
            return;
        }
        // SAFETY: `ts` came from Box::into_raw in `thread_state` and is no longer reachable.
        let ts = unsafe { Box::from_raw(ts) };
        ts.tag.tid.store(0, Ordering::Release);
        crate::trap::drop_altstack(ts.altstack);
        // SAFETY: the main tealet was boxed in `thread_state`; its pointer dies with the thread.
        drop(unsafe { Box::from_raw(ts.main) });
    }
}

/// The running thread's state, without creating it (signal-safe).
pub(crate) fn thread_state_if_any() -> *mut ThreadState {
    STATE.try_with(|s| s.get()).unwrap_or(null_mut())
}

fn main_stack_bounds() -> (usize, usize) {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; we destroy it after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let mut addr: *mut c_void = null_mut();
        let mut size: usize = 0;
        libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (addr as usize + size, addr as usize)
    }
}

/// The calling thread's state, created with its main tealet on first use; null during
/// thread teardown.
#[inline]
pub(crate) fn thread_state() -> *mut ThreadState {
    let ts = thread_state_if_any();
    if !ts.is_null() {
        return ts;
    }
    init_thread()
}

#[cold]
fn init_thread() -> *mut ThreadState {
    if TEARDOWN.try_with(|_| ()).is_err() {
        return null_mut();
    }
    let tag = Arc::new(ThreadTag { tid: AtomicUsize::new(crate::threadid::current()), ts: AtomicPtr::new(null_mut()) });
    let (top, low) = main_stack_bounds();
    let main = Box::into_raw(Box::new(Tealet {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        status: RUNNING,
        thread: tag.clone(),
        run: None,
        arg: null_mut(),
        data: null_mut(),
        sp: 0,
        out: null_mut(),
        #[cfg(feature = "asan")]
        fake_stack: null_mut(),
        stack: Stack::Main { top, low },
        saved: null_mut(),
        saved_len: 0,
    }));
    let ts = Box::into_raw(Box::new(ThreadState {
        tag,
        main,
        current: main,
        previous: null_mut(),
        target: null_mut(),
        value: null_mut(),
        finishing: false,
        spare: null_mut(),
        spare_len: 0,
        release: None,
        pool: Pool::default(),
        regions: Regions::default(),
        altstack: null_mut(),
    }));
    STATE.with(|s| s.set(ts));
    // SAFETY: `ts` was just created for this thread.
    unsafe { (&(*ts).tag).ts.store(ts, Ordering::Relaxed) };
    // SAFETY: `ts` was just created for this thread.
    unsafe { (*ts).altstack = crate::trap::thread_altstack() };
    ts
}

/// Whether `t` belongs to the calling thread (`ts`) and that thread is alive.
pub(crate) fn same_thread(ts: *mut ThreadState, t: &Tealet) -> bool {
    // SAFETY: `ts` is the live state of the calling thread.
    Arc::ptr_eq(&t.thread, unsafe { &(*ts).tag })
}

pub(crate) fn thread_alive(t: &Tealet) -> bool {
    t.thread.tid.load(Ordering::Acquire) != 0
}

/// Create a tealet on the calling thread.
pub(crate) fn create(run: RunFn, arg: *mut c_void, stack_size: usize, policy: i32) -> Result<*mut Tealet, i32> {
    let ts = thread_state();
    if ts.is_null() {
        return Err(ERR_THREAD);
    }
    let map_err = |e| match e {
        StackError::NoMem => ERR_NOMEM,
        StackError::Exhausted => ERR_STACK,
    };
    // SAFETY: `ts` is this thread's live state and no switch is in progress.
    let ts = unsafe { &mut *ts };
    let (stack, top) = match policy {
        POLICY_DEDICATED => {
            let size = if stack_size == 0 { DEFAULT_DEDICATED } else { page_round(stack_size.max(MIN_STACK)) };
            let slot = size + GUARD_SIZE;
            let base = ts.pool.alloc(slot).map_err(map_err)?;
            (Stack::Dedicated { base, slot }, base + slot)
        }
        POLICY_SHARED => {
            let size = if stack_size == 0 { DEFAULT_SHARED } else { page_round(stack_size.max(MIN_STACK)) };
            let r = ts.regions.pick(size + GUARD_SIZE).map_err(map_err)?;
            // SAFETY: regions live as long as the thread state.
            (Stack::Shared(r), unsafe { (*r).top() })
        }
        _ => return Err(ERR_INVALID),
    };
    let t = Box::into_raw(Box::new(Tealet {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        status: NEW,
        thread: ts.tag.clone(),
        run: Some(run),
        arg,
        data: null_mut(),
        sp: top - tealet_asm::FRAME_SIZE,
        out: null_mut(),
        #[cfg(feature = "asan")]
        fake_stack: null_mut(),
        stack,
        saved: null_mut(),
        saved_len: 0,
    }));
    // SAFETY: `t` was just created; a dedicated slot is ours alone, so its first frame can be
    // written now and the first switch needs no callback. (A shared region may be occupied.)
    unsafe {
        if let Stack::Dedicated { .. } = (*t).stack {
            #[cfg(feature = "valgrind")]
            crate::valgrind::make_writable(top - tealet_asm::FRAME_SIZE, tealet_asm::FRAME_SIZE);
            tealet_asm::init_stack(top as *mut u8, entry, t as *mut u8);
        }
    }
    Ok(t)
}

/// The calling thread's state if `target` can be switched to from the calling thread.
#[inline]
pub(crate) fn target_state(target: *mut Tealet) -> Result<*mut ThreadState, i32> {
    if target.is_null() {
        return Err(ERR_INVALID);
    }
    // SAFETY: the caller passes a tealet pointer it got from us and has not freed; its tag
    // outlives it.
    let (t, tag) = unsafe { (&*target, &*(*target).thread) };
    // A thread that reuses an exited thread's id finds 0 there: the exit happened before the
    // reuse, so even a relaxed load sees it.
    if tag.tid.load(Ordering::Relaxed) != crate::threadid::current() {
        return Err(ERR_THREAD);
    }
    if t.status == FINISHED {
        return Err(ERR_FINISHED);
    }
    Ok(tag.ts.load(Ordering::Relaxed))
}

/// Switch from the current tealet to `target` (checked by `target_state`) passing `*out`
/// (null if `out` is); `*out` receives the value we are resumed with. Returns OK once resumed,
/// or an error before anything moved.
#[inline(always)]
pub(crate) unsafe fn switch(ts: *mut ThreadState, target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    // SAFETY: `ts` is the calling thread's state, `target` one of its tealets, `out` null or
    // readable and writable (the caller's promise).
    unsafe {
        let s = &mut *ts;
        let cur = s.current;
        if target == cur {
            return OK;
        }
        let value = if out.is_null() { null_mut() } else { *out };
        let in_place = match (*target).stack {
            Stack::Shared(r) => (*r).owner == target,
            // Dedicated stacks got their first frame in `create`.
            _ => true,
        };
        if !in_place {
            return switch_copying(ts, target, out);
        }
        // Nothing to copy or release: the plain jump, as a tail call (no return to mispredict).
        (*cur).status = SUSPENDED;
        (*cur).out = out;
        let to_out = if (*target).status == NEW { &mut s.value as *mut *mut c_void } else { (*target).out };
        (*target).status = RUNNING;
        s.previous = cur;
        s.current = target;
        jump(cur, target, value, to_out)
    }
}

/// `switch` when bytes must be copied: out of line (and a tail call) so the fast path needs no
/// stack frame of its own.
#[cold]
#[inline(never)]
unsafe fn switch_copying(ts: *mut ThreadState, target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    // SAFETY: as for `switch`.
    unsafe {
        let value = if out.is_null() { null_mut() } else { *out };
        match switch_to(ts, target, value, false) {
            Ok(v) => {
                if !out.is_null() {
                    *out = v;
                }
                OK
            }
            Err(e) => e,
        }
    }
}

/// The fast path's stack change: a tail call, unless ASan must hear about it on both sides.
#[inline(always)]
unsafe fn jump(cur: *mut Tealet, target: *mut Tealet, value: *mut c_void, to_out: *mut *mut c_void) -> i32 {
    // SAFETY: `cur` is the running tealet, `target` a suspended or new one whose stack is in
    // place; `to_out` is null or where the target wants its value (the caller's promise).
    unsafe {
        let from = &mut (*cur).sp as *mut usize as *mut *mut u8;
        #[cfg(feature = "asan")]
        {
            let (_, low, size) = (*target).guard();
            crate::sanitizer::start(&mut (*cur).fake_stack, low, size);
            let rc = tealet_asm::jump(value as *mut u8, from, (*target).sp as *mut u8, to_out as *mut *mut u8);
            crate::sanitizer::finish((*cur).fake_stack);
            rc
        }
        #[cfg(not(feature = "asan"))]
        tealet_asm::jump(value as *mut u8, from, (*target).sp as *mut u8, to_out as *mut *mut u8)
    }
}

/// Switch from the current tealet to `target` (checked) passing `value` through `save` and
/// `restore`; returns the value we are resumed with, or an error before anything moved. With
/// `finishing` it never returns. Kept out of line so the fast path stays a leaf tail call.
#[inline(never)]
pub(crate) fn switch_to(ts: *mut ThreadState, target: *mut Tealet, value: *mut c_void, finishing: bool) -> Result<*mut c_void, i32> {
    // SAFETY: `ts` is the calling thread's state; `target` was checked by `target_state`.
    unsafe {
        let s = &mut *ts;
        if target == s.current {
            return Ok(value);
        }
        if let Stack::Shared(r) = (*target).stack {
            let owner = (*r).owner;
            if !owner.is_null() && owner != target && !(owner == s.current && finishing) {
                // Upper bound of the owner's live bytes; `save` copies the exact range.
                let low = if owner == s.current { (&s as *const _ as usize) - 1024 } else { (*owner).sp };
                let len = (*r).top() - low;
                let buf = libc::malloc(len) as *mut u8;
                if buf.is_null() {
                    return Err(ERR_NOMEM);
                }
                s.spare = buf;
                s.spare_len = len;
            }
        }
        let me = s.current;
        let mut received = null_mut();
        (*me).out = &mut received;
        s.target = target;
        s.value = value;
        s.finishing = finishing;
        #[cfg(feature = "asan")]
        {
            let (_, low, size) = (*target).guard();
            let keep = if finishing { null_mut() } else { &mut (*me).fake_stack as *mut *mut c_void };
            crate::sanitizer::start(keep, low, size);
        }
        tealet_asm::switch(save, restore, ts as *mut u8);
        #[cfg(feature = "asan")]
        crate::sanitizer::finish((*me).fake_stack);
        Ok(received)
    }
}

/// Runs on the old stack: record where it stopped, evict the target region's occupant.
unsafe extern "C" fn save(ctx: *mut u8, sp: *mut u8) -> *mut u8 {
    // SAFETY: `ctx` is the ThreadState passed to `switch` by `switch_to`, which set `target`.
    unsafe {
        let s = &mut *(ctx as *mut ThreadState);
        let cur = &mut *s.current;
        let tgt = &mut *s.target;
        if s.finishing {
            cur.status = FINISHED;
            match cur.stack {
                Stack::Dedicated { base, slot } => s.release = Some((base, slot)),
                Stack::Shared(r) if (*r).owner == s.current => (*r).owner = null_mut(),
                _ => {}
            }
        } else {
            cur.sp = sp as usize;
            cur.status = SUSPENDED;
        }
        if let Stack::Shared(r) = tgt.stack {
            let owner = (*r).owner;
            if !owner.is_null() && owner != s.target {
                let o = &mut *owner;
                let len = (*r).top() - o.sp;
                if len > s.spare_len {
                    crate::trap::fatal(b"tealet: internal error: stack copy bound too small\n");
                }
                #[cfg(feature = "asan")]
                crate::sanitizer::unpoison(o.sp, len);
                std::ptr::copy_nonoverlapping(o.sp as *const u8, s.spare, len);
                // Shrinking in place keeps the copy at live bytes + malloc's header.
                let p = libc::realloc(s.spare as *mut c_void, len) as *mut u8;
                o.saved = if p.is_null() { s.spare } else { p };
                o.saved_len = len;
                s.spare = null_mut();
                s.spare_len = 0;
            }
            (*r).owner = s.target;
            #[cfg(feature = "valgrind")]
            {
                // `restore` runs below the target's stack pointer, where memcheck may still see
                // the dead frames of the region's previous occupant; our own frame stays as is.
                let mut low = tgt.sp.saturating_sub(4096).max((*r).base + GUARD_SIZE);
                if matches!(cur.stack, Stack::Shared(c) if c == r) {
                    low = low.max(sp as usize);
                }
                if low < tgt.sp {
                    crate::valgrind::make_writable(low, tgt.sp - low);
                }
            }
        }
        s.previous = s.current;
        s.current = s.target;
        tgt.sp as *mut u8
    }
}

/// Runs on the target stack below its saved stack pointer: put its bytes back in place and hand
/// over the value (a new tealet's `entry` reads it from the thread state).
unsafe extern "C" fn restore(ctx: *mut u8, _sp: *mut u8) -> *mut u8 {
    // SAFETY: `ctx` is the ThreadState; `current` is the target, whose stack range above its sp
    // belongs to it (save made it the region's owner).
    unsafe {
        let s = &mut *(ctx as *mut ThreadState);
        let t = &mut *s.current;
        if t.status == NEW {
            #[cfg(feature = "valgrind")]
            crate::valgrind::make_writable(t.sp, tealet_asm::FRAME_SIZE);
            tealet_asm::init_stack(t.top() as *mut u8, entry, s.current as *mut u8);
        } else {
            if !t.saved.is_null() {
                // The shadow there describes the frames of the region's previous occupant.
                #[cfg(feature = "asan")]
                crate::sanitizer::unpoison(t.sp, t.saved_len);
                #[cfg(feature = "valgrind")]
                crate::valgrind::make_writable(t.sp, t.saved_len);
                std::ptr::copy_nonoverlapping(t.saved, t.sp as *mut u8, t.saved_len);
                t.free_saved();
            }
            // After the copy: `out` points into its stack.
            if !t.out.is_null() {
                *t.out = s.value;
            }
        }
        t.status = RUNNING;
        if let Some((base, slot)) = s.release.take() {
            s.pool.release(base, slot);
        }
        null_mut()
    }
}

/// First frame of every tealet: run it, then continue where it says.
unsafe extern "C" fn entry(_zero: *mut u8, me: *mut u8) -> ! {
    // SAFETY: `me` is this new tealet, running on its own thread, with its run function; the
    // switch that started it left the value in the thread state.
    unsafe {
        #[cfg(feature = "asan")]
        crate::sanitizer::finish(null_mut());
        let me = me as *mut Tealet;
        let ts = (&(*me).thread).ts.load(Ordering::Relaxed);
        let mut value = (*ts).value;
        let run = (*me).run.expect("tealet without run function");
        let next = run(me, (*me).arg, &mut value);
        let next = if next != me && target_state(next).is_ok() { next } else { (*ts).main };
        let _ = switch_to(ts, next, value, true);
        crate::trap::fatal(b"tealet: internal error: finished tealet resumed\n")
    }
}

/// Free a tealet that is not running; its stack is dropped without unwinding.
pub(crate) fn free(t: *mut Tealet) -> i32 {
    if t.is_null() {
        return ERR_INVALID;
    }
    // SAFETY: a tealet pointer from us, not yet freed (the caller's promise).
    let tr = unsafe { &mut *t };
    if tr.is_main() {
        return ERR_INVALID;
    }
    if !thread_alive(tr) {
        // Its thread's pools and regions are gone; only a dedicated slot is still ours.
        if let (Stack::Dedicated { base, slot }, true) = (&tr.stack, tr.status != FINISHED) {
            crate::stack::arena::trim(*base, *slot);
            crate::stack::arena::free(*base, *slot);
        }
        tr.free_saved();
        // SAFETY: boxed in `create`, no other reference remains.
        drop(unsafe { Box::from_raw(t) });
        return OK;
    }
    let ts = thread_state_if_any();
    if ts.is_null() || !same_thread(ts, tr) {
        return ERR_THREAD;
    }
    // SAFETY: `ts` is this thread's state, no switch in progress.
    let s = unsafe { &mut *ts };
    if t == s.current {
        return ERR_INVALID;
    }
    // Its frames are abandoned, not returned from: their redzones would outlive them.
    #[cfg(feature = "asan")]
    if tr.status == SUSPENDED && tr.saved.is_null() {
        crate::sanitizer::unpoison(tr.sp, tr.top() - tr.sp);
    }
    match tr.stack {
        Stack::Dedicated { base, slot } if tr.status != FINISHED => s.pool.release(base, slot),
        // SAFETY: the region lives as long as this thread.
        Stack::Shared(r) if unsafe { (*r).owner } == t => unsafe { (*r).owner = null_mut() },
        _ => {}
    }
    if s.previous == t {
        s.previous = null_mut();
    }
    tr.free_saved();
    // SAFETY: boxed in `create`, no other reference remains.
    drop(unsafe { Box::from_raw(t) });
    OK
}
