//! Tealets and the per-thread state that switches between them.
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::stack::pool::Pool;
use crate::stack::shared::Regions;
use crate::stack::{page_round, StackError, DEFAULT_DEDICATED, DEFAULT_SHARED, GUARD_SIZE, MAX_STACK, MIN_STACK};

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
/// Ids a thread takes at a time, so creating a tealet needs no shared atomic.
const ID_BLOCK: u64 = 1024;

// `Tealet::flags`: the stack kind in bits 0-1, whether the stack is copied out in bit 2.
const KIND_MASK: u8 = 0b11;
const KIND_MAIN: u8 = 0;
const KIND_DEDICATED: u8 = 1;
const KIND_SHARED: u8 = 2;
const COPIED: u8 = 1 << 2;

/// The word in front of a heap copy's stack bytes: where the resume value goes.
const OUT_WORD: usize = std::mem::size_of::<usize>();

/// Where tealets live: their thread and, for the shared policy, their region. Reference counted
/// by its tealets, so it outlives the thread.
pub(crate) struct Home {
    /// The thread's `threadid::current()`, 0 once its state is torn down (a later thread may
    /// reuse the value).
    tid: AtomicUsize,
    /// The thread's state, read only by that thread.
    ts: AtomicPtr<ThreadState>,
    /// A shared region `[base, base + slot)` with its guard at `base`; both 0 for the thread.
    pub(crate) base: usize,
    pub(crate) slot: usize,
    /// The tealet whose live stack is in place in the region, or null (only its thread uses it).
    pub(crate) owner: AtomicPtr<Tealet>,
}

impl Home {
    /// A home for a region of this home's thread.
    pub(crate) fn region(&self, base: usize, slot: usize) -> Home {
        Home {
            tid: AtomicUsize::new(self.tid.load(Ordering::Relaxed)),
            ts: AtomicPtr::new(self.ts.load(Ordering::Relaxed)),
            base,
            slot,
            owner: AtomicPtr::new(null_mut()),
        }
    }

    /// Its thread is gone: every switch to its tealets now fails with ERR_THREAD.
    pub(crate) fn retire(&self) {
        self.tid.store(0, Ordering::Release);
    }

    pub(crate) fn top(&self) -> usize {
        self.base + self.slot
    }
}

/// A tealet's record. Shared-policy tealets are exactly this (40 bytes: a suspended one costs
/// its live stack bytes plus this and one malloc header); dedicated and main tealets carry
/// their stack bounds behind it.
#[repr(C)]
pub struct Tealet {
    /// Saved stack pointer while suspended. A new shared tealet keeps its `arg` here until its
    /// first frame is written (its region may be occupied before).
    sp: usize,
    status: u8,
    /// Stack kind and copied-out flag (`KIND_MASK`, `COPIED`).
    flags: u8,
    /// The id, 48 bits (unique until 2^48 tealets were created).
    id_hi: u16,
    id_lo: u32,
    /// `Arc::into_raw` of its home.
    home: *const Home,
    data: *mut c_void,
    /// New: its run function. Suspended in place: where its resume value goes (its
    /// `tealet_switch` argument), or null. Copied out: the malloc'd copy, that pointer first,
    /// then the stack bytes `[sp, top)`.
    link: usize,
    /// ASan's fake stack of this context while it is suspended.
    #[cfg(feature = "asan")]
    fake_stack: *mut c_void,
}

#[cfg(all(target_pointer_width = "64", not(feature = "asan")))]
const _: () = assert!(std::mem::size_of::<Tealet>() == 40);

#[repr(C)]
struct DedicatedTealet {
    t: Tealet,
    /// The slot `[base, base + slot)` with the guard at `base`.
    base: usize,
    slot: usize,
}

#[repr(C)]
struct MainTealet {
    t: Tealet,
    /// The thread's own stack, from pthread attributes.
    top: usize,
    low: usize,
}

impl Drop for Tealet {
    fn drop(&mut self) {
        if self.flags & COPIED != 0 {
            // SAFETY: the copy came from malloc and only this record refers to it.
            unsafe { libc::free(self.link as *mut c_void) };
        }
        // SAFETY: `home` came from Arc::into_raw when this record was made.
        drop(unsafe { Arc::from_raw(self.home) });
    }
}

/// Drop a record made by `create` or `init_thread`, as the type it was allocated as.
///
/// # Safety
/// `t` is a live record that nothing uses afterwards.
unsafe fn destroy(t: *mut Tealet) {
    // SAFETY: the kind bits say which box the record came from (the caller's promise for the rest).
    unsafe {
        match (*t).flags & KIND_MASK {
            KIND_SHARED => drop(Box::from_raw(t)),
            KIND_DEDICATED => drop(Box::from_raw(t as *mut DedicatedTealet)),
            _ => drop(Box::from_raw(t as *mut MainTealet)),
        }
    }
}

// Accessors take raw pointers: a dedicated or main record's bounds lie behind the `Tealet`
// part, outside what a `&Tealet` may reach. Each needs a live record (the callers' promise).

pub(crate) unsafe fn id(t: *const Tealet) -> u64 {
    // SAFETY: see above.
    unsafe { u64::from((*t).id_hi) << 32 | u64::from((*t).id_lo) }
}

pub(crate) unsafe fn status(t: *const Tealet) -> i32 {
    // SAFETY: see above.
    unsafe { i32::from((*t).status) }
}

unsafe fn set_status(t: *mut Tealet, status: i32) {
    // SAFETY: see above.
    unsafe { (*t).status = status as u8 }
}

pub(crate) unsafe fn is_main(t: *const Tealet) -> bool {
    // SAFETY: see above.
    unsafe { (*t).flags & KIND_MASK == KIND_MAIN }
}

pub(crate) unsafe fn home<'a>(t: *const Tealet) -> &'a Home {
    // SAFETY: the record holds a count on its home (see above for the record).
    unsafe { &*(*t).home }
}

pub(crate) unsafe fn data(t: *const Tealet) -> *mut c_void {
    // SAFETY: see above.
    unsafe { (*t).data }
}

pub(crate) unsafe fn set_data(t: *mut Tealet, data: *mut c_void) {
    // SAFETY: see above.
    unsafe { (*t).data = data }
}

/// Highest address of its stack. For a main tealet only valid while its thread is alive.
pub(crate) unsafe fn top(t: *const Tealet) -> usize {
    // SAFETY: see above; the kind bits say which record type `t` is.
    unsafe {
        match (*t).flags & KIND_MASK {
            KIND_SHARED => home(t).top(),
            KIND_DEDICATED => {
                let d = t as *const DedicatedTealet;
                (*d).base + (*d).slot
            }
            _ => (*(t as *const MainTealet)).top,
        }
    }
}

/// `[guard_low, guard_high)` and usable size, for the overflow report.
pub(crate) unsafe fn guard(t: *const Tealet) -> (usize, usize, usize) {
    // SAFETY: see above; the kind bits say which record type `t` is.
    unsafe {
        match (*t).flags & KIND_MASK {
            KIND_SHARED => {
                let h = home(t);
                (h.base, h.base + GUARD_SIZE, h.slot - GUARD_SIZE)
            }
            KIND_DEDICATED => {
                let d = t as *const DedicatedTealet;
                ((*d).base, (*d).base + GUARD_SIZE, (*d).slot - GUARD_SIZE)
            }
            _ => {
                let m = t as *const MainTealet;
                ((*m).low.saturating_sub(GUARD_SIZE), (*m).low, (*m).top - (*m).low)
            }
        }
    }
}

/// Usable stack size (a shared tealet's region's), 0 for a main tealet.
pub(crate) unsafe fn stack_size(t: *const Tealet) -> usize {
    // SAFETY: see above.
    unsafe {
        if is_main(t) {
            0
        } else {
            guard(t).2
        }
    }
}

/// Bytes of its stack currently copied to the heap.
pub(crate) unsafe fn saved_len(t: *const Tealet) -> usize {
    // SAFETY: see above; a copied-out tealet is a shared one, whose home is alive.
    unsafe {
        if (*t).flags & COPIED != 0 {
            top(t) - (*t).sp
        } else {
            0
        }
    }
}

/// Bytes of a suspended tealet's live stack `[sp, top)`, in place or copied to the heap; 0
/// unless suspended.
pub(crate) unsafe fn live_len(t: *const Tealet) -> usize {
    // SAFETY: see above; a suspended shared tealet's home is alive.
    unsafe {
        if status(t) == SUSPENDED {
            top(t) - (*t).sp
        } else {
            0
        }
    }
}

/// Where the byte at stack address `addr` of a suspended tealet lives now, or null if `addr`
/// is outside its live stack. Its thread must be alive.
pub(crate) unsafe fn translate(t: *const Tealet, addr: usize) -> *mut c_void {
    // SAFETY: see above.
    unsafe {
        let sp = (*t).sp;
        if status(t) != SUSPENDED || addr < sp || addr >= top(t) {
            return null_mut();
        }
        if (*t).flags & COPIED != 0 {
            return ((*t).link + OUT_WORD + (addr - sp)) as *mut c_void;
        }
        addr as *mut c_void
    }
}

pub(crate) struct ThreadState {
    pub(crate) home: Arc<Home>,
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
    /// The rest of this thread's block of ids.
    ids: std::ops::Range<u64>,
}

impl ThreadState {
    fn next_id(&mut self) -> u64 {
        if self.ids.is_empty() {
            let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            self.ids = start..start + ID_BLOCK;
        }
        let id = self.ids.start;
        self.ids.start += 1;
        id
    }
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
        ts.home.retire();
        crate::trap::drop_altstack(ts.altstack);
        // SAFETY: the main tealet was made in `init_thread`; its pointer dies with the thread.
        unsafe { destroy(ts.main) };
        // The regions retire their homes as `ts` drops.
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

/// `Box::into_raw(Box::new(v))`, with ERR_NOMEM where `Box::new` would abort.
fn try_box<T>(v: T) -> Result<*mut T, i32> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: records are not zero-sized; `destroy` frees them as the Box of the same type.
    let p = unsafe { std::alloc::alloc(layout) } as *mut T;
    if p.is_null() {
        return Err(ERR_NOMEM);
    }
    // SAFETY: `p` is fresh memory with T's layout.
    unsafe { p.write(v) };
    Ok(p)
}

fn record(id: u64, home: Arc<Home>, kind: u8, status: i32, sp: usize, link: usize) -> Tealet {
    Tealet {
        sp,
        status: status as u8,
        flags: kind,
        id_hi: (id >> 32) as u16,
        id_lo: id as u32,
        home: Arc::into_raw(home),
        data: null_mut(),
        link,
        #[cfg(feature = "asan")]
        fake_stack: null_mut(),
    }
}

#[cold]
fn init_thread() -> *mut ThreadState {
    if TEARDOWN.try_with(|_| ()).is_err() {
        return null_mut();
    }
    let home = Arc::new(Home {
        tid: AtomicUsize::new(crate::threadid::current()),
        ts: AtomicPtr::new(null_mut()),
        base: 0,
        slot: 0,
        owner: AtomicPtr::new(null_mut()),
    });
    let (top, low) = main_stack_bounds();
    let main_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let main = Box::into_raw(Box::new(MainTealet { t: record(main_id, home.clone(), KIND_MAIN, RUNNING, 0, 0), top, low }));
    let ts = Box::into_raw(Box::new(ThreadState {
        home,
        main: main as *mut Tealet,
        current: main as *mut Tealet,
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
        ids: 0..0,
    }));
    STATE.with(|s| s.set(ts));
    // SAFETY: `ts` was just created for this thread.
    unsafe {
        let home: &Home = &(*ts).home;
        home.ts.store(ts, Ordering::Relaxed);
        (*ts).altstack = crate::trap::thread_altstack();
    }
    ts
}

/// Whether `t` belongs to the calling thread (`ts`), given that `t`'s thread is alive.
pub(crate) unsafe fn same_thread(ts: *mut ThreadState, t: *const Tealet) -> bool {
    // SAFETY: a live record (the caller's promise); two live threads have distinct states.
    unsafe { home(t).ts.load(Ordering::Relaxed) == ts }
}

/// Whether `t`'s thread has not exited yet.
pub(crate) unsafe fn thread_alive(t: *const Tealet) -> bool {
    // SAFETY: a live record (the caller's promise).
    unsafe { home(t).tid.load(Ordering::Acquire) != 0 }
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
    if stack_size > MAX_STACK {
        return Err(ERR_INVALID);
    }
    // SAFETY: `ts` is this thread's live state and no switch is in progress.
    let ts = unsafe { &mut *ts };
    match policy {
        POLICY_DEDICATED => {
            let size = if stack_size == 0 { DEFAULT_DEDICATED } else { page_round(stack_size.max(MIN_STACK)) };
            let slot = size + GUARD_SIZE;
            let base = ts.pool.alloc(slot).map_err(map_err)?;
            let top = base + slot;
            let sp = top - tealet_asm::FRAME_SIZE;
            let t = record(ts.next_id(), ts.home.clone(), KIND_DEDICATED, NEW, sp, run as usize);
            let t = try_box(DedicatedTealet { t, base, slot }).inspect_err(|_| ts.pool.release(base, slot))?;
            // SAFETY: the slot is ours alone, so its first frame (which hands `arg` to `entry`)
            // can be written now and the first switch needs no callback.
            unsafe {
                #[cfg(feature = "valgrind")]
                crate::valgrind::make_writable(sp, tealet_asm::FRAME_SIZE);
                tealet_asm::init_stack(top as *mut u8, entry, arg as *mut u8);
            }
            Ok(t as *mut Tealet)
        }
        POLICY_SHARED => {
            let size = if stack_size == 0 { DEFAULT_SHARED } else { page_round(stack_size.max(MIN_STACK)) };
            let home = ts.regions.pick(size + GUARD_SIZE, &ts.home).map_err(map_err)?;
            // The region may be occupied: `restore` writes the first frame on the first switch.
            let id = ts.next_id();
            try_box(record(id, home, KIND_SHARED, NEW, arg as usize, run as usize))
        }
        _ => Err(ERR_INVALID),
    }
}

/// `tealet_switch`: the common case, a suspended tealet of this thread whose stack is in place
/// (a suspended shared tealet not copied out owns its region), in one check and a tail call to
/// the plain jump, with no stack frame. The rest goes to `switch_start`.
#[inline(always)]
pub(crate) unsafe fn switch_fast(target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    // SAFETY: `target` is null or a tealet pointer from us, not yet freed, whose home outlives
    // it; `out` is null or readable and writable (the caller's promise). The thread id matches
    // only on the tealet's own live thread (a retired home holds 0), so `ts` is this thread's
    // live state.
    unsafe {
        if target.is_null() {
            return switch_checked(target, out);
        }
        let h = home(target);
        if h.tid.load(Ordering::Relaxed) != crate::threadid::current()
            || (*target).status != SUSPENDED as u8
            || (*target).flags & COPIED != 0
        {
            return switch_start(target, out);
        }
        enter(&mut *h.ts.load(Ordering::Relaxed), target, out, (*target).link as *mut *mut c_void)
    }
}

/// `switch_fast`'s next case, out of line: a new dedicated tealet of this thread (`create` wrote
/// its first frame, which takes the value from the thread state). The rest goes to
/// `switch_checked`.
#[inline(never)]
unsafe extern "C" fn switch_start(target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    // SAFETY: as for `switch_fast`, with `target` non-null.
    unsafe {
        let h = home(target);
        if h.tid.load(Ordering::Relaxed) != crate::threadid::current()
            || (*target).status != NEW as u8
            || (*target).flags & KIND_MASK != KIND_DEDICATED
        {
            return switch_checked(target, out);
        }
        let s = &mut *h.ts.load(Ordering::Relaxed);
        let to_out = &mut s.value as *mut *mut c_void;
        enter(s, target, out, to_out)
    }
}

/// The bookkeeping of a switch from the running tealet to `target` whose stack is in place, and
/// the jump; `to_out` is where `target` takes its value.
#[inline(always)]
unsafe fn enter(s: &mut ThreadState, target: *mut Tealet, out: *mut *mut c_void, to_out: *mut *mut c_void) -> i32 {
    // SAFETY: `s` is this thread's state, `target` one of its tealets whose stack is in place,
    // `out` null or readable and writable (the callers' promise).
    unsafe {
        let cur = s.current;
        (*cur).status = SUSPENDED as u8;
        (*cur).link = out as usize;
        (*target).status = RUNNING as u8;
        s.previous = cur;
        s.current = target;
        let value = if out.is_null() { null_mut() } else { *out };
        jump(cur, target, value, to_out)
    }
}

/// `switch_fast`'s other cases: the checks, then the general switch. `extern "C"` so that nothing
/// unwinds out of it (a panic aborts here): the fast path then needs no landing pad around its
/// calls, which stay tail calls even in unwinding builds (tests, benches).
#[cold]
#[inline(never)]
unsafe extern "C" fn switch_checked(target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    let ts = match target_state(target) {
        Ok(ts) => ts,
        Err(e) => return e,
    };
    // SAFETY: `ts` and `target` checked above; `out` as promised to `switch_fast`.
    unsafe { switch(ts, target, out) }
}

/// The calling thread's state if `target` can be switched to from the calling thread.
#[inline]
pub(crate) fn target_state(target: *mut Tealet) -> Result<*mut ThreadState, i32> {
    if target.is_null() {
        return Err(ERR_INVALID);
    }
    // SAFETY: the caller passes a tealet pointer it got from us and has not freed; its home
    // outlives it.
    let h = unsafe { home(target) };
    // A thread that reuses an exited thread's id finds 0 there: the exit happened before the
    // reuse, so even a relaxed load sees it.
    if h.tid.load(Ordering::Relaxed) != crate::threadid::current() {
        return Err(ERR_THREAD);
    }
    // SAFETY: as above.
    if unsafe { status(target) } == FINISHED {
        return Err(ERR_FINISHED);
    }
    Ok(h.ts.load(Ordering::Relaxed))
}

/// Switch from the current tealet to `target` (checked by `target_state`) passing `*out`
/// (null if `out` is); `*out` receives the value we are resumed with. Returns OK once resumed,
/// or an error before anything moved.
#[inline(always)]
pub(crate) unsafe fn switch(ts: *mut ThreadState, target: *mut Tealet, out: *mut *mut c_void) -> i32 {
    // SAFETY: `ts` is the calling thread's state, `target` one of its tealets, `out` null or
    // readable and writable (the caller's promise).
    unsafe {
        // The only running tealet of this thread is its current one.
        if (*target).status == RUNNING as u8 {
            return OK;
        }
        let s = &mut *ts;
        let cur = s.current;
        // Dedicated stacks got their first frame in `create`; a shared one must be in place.
        if (*target).flags & KIND_MASK == KIND_SHARED && home(target).owner.load(Ordering::Relaxed) != target {
            return switch_copying(ts, target, out);
        }
        let value = if out.is_null() { null_mut() } else { *out };
        // Nothing to copy or release: the plain jump, as a tail call (no return to mispredict).
        (*cur).status = SUSPENDED as u8;
        (*cur).link = out as usize;
        let to_out = if (*target).status == NEW as u8 { &mut s.value as *mut *mut c_void } else { (*target).link as *mut *mut c_void };
        (*target).status = RUNNING as u8;
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
            let (_, low, size) = guard(target);
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
        if (*target).flags & KIND_MASK == KIND_SHARED {
            let h = home(target);
            let owner = h.owner.load(Ordering::Relaxed);
            if !owner.is_null() && owner != target && !(owner == s.current && finishing) {
                // Upper bound of the owner's live bytes; `save` copies the exact range.
                let low = if owner == s.current { (&s as *const _ as usize) - 1024 } else { (*owner).sp };
                let len = h.top() - low;
                let buf = libc::malloc(OUT_WORD + len) as *mut u8;
                if buf.is_null() {
                    return Err(ERR_NOMEM);
                }
                s.spare = buf;
                s.spare_len = len;
            }
        }
        let me = s.current;
        let mut received = null_mut();
        (*me).link = &mut received as *mut *mut c_void as usize;
        s.target = target;
        s.value = value;
        s.finishing = finishing;
        #[cfg(feature = "asan")]
        {
            let (_, low, size) = guard(target);
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
        let cur = s.current;
        let tgt = s.target;
        if s.finishing {
            set_status(cur, FINISHED);
            match (*cur).flags & KIND_MASK {
                KIND_DEDICATED => {
                    let d = cur as *const DedicatedTealet;
                    s.release = Some(((*d).base, (*d).slot));
                }
                KIND_SHARED if home(cur).owner.load(Ordering::Relaxed) == cur => {
                    home(cur).owner.store(null_mut(), Ordering::Relaxed)
                }
                _ => {}
            }
        } else {
            (*cur).sp = sp as usize;
            set_status(cur, SUSPENDED);
        }
        s.previous = cur;
        s.current = tgt;
        if (*tgt).flags & KIND_MASK != KIND_SHARED {
            return (*tgt).sp as *mut u8;
        }
        let h = home(tgt);
        let owner = h.owner.load(Ordering::Relaxed);
        if !owner.is_null() && owner != tgt {
            let len = h.top() - (*owner).sp;
            if len > s.spare_len {
                crate::trap::fatal(b"tealet: internal error: stack copy bound too small\n");
            }
            #[cfg(feature = "asan")]
            crate::sanitizer::unpoison((*owner).sp, len);
            *(s.spare as *mut usize) = (*owner).link;
            std::ptr::copy_nonoverlapping((*owner).sp as *const u8, s.spare.add(OUT_WORD), len);
            // Shrinking in place keeps the copy at live bytes + one word + malloc's header.
            let p = libc::realloc(s.spare as *mut c_void, OUT_WORD + len) as *mut u8;
            (*owner).link = if p.is_null() { s.spare } else { p } as usize;
            (*owner).flags |= COPIED;
            s.spare = null_mut();
            s.spare_len = 0;
        }
        h.owner.store(tgt, Ordering::Relaxed);
        // A new shared tealet's frame goes right below the region's top (`restore` writes it).
        let tsp = if status(tgt) == NEW { h.top() - tealet_asm::FRAME_SIZE } else { (*tgt).sp };
        #[cfg(feature = "valgrind")]
        {
            // `restore` runs below the target's stack pointer, where memcheck may still see
            // the dead frames of the region's previous occupant; our own frame stays as is.
            let mut low = tsp.saturating_sub(4096).max(h.base + GUARD_SIZE);
            if (*cur).home == (*tgt).home {
                low = low.max(sp as usize);
            }
            if low < tsp {
                crate::valgrind::make_writable(low, tsp - low);
            }
        }
        tsp as *mut u8
    }
}

/// Runs on the target stack below its saved stack pointer: put its bytes back in place and hand
/// over the value (a new tealet's `entry` reads it from the thread state).
unsafe extern "C" fn restore(ctx: *mut u8, _sp: *mut u8) -> *mut u8 {
    // SAFETY: `ctx` is the ThreadState; `current` is the target, whose stack range above its sp
    // belongs to it (save made it the region's owner).
    unsafe {
        let s = &mut *(ctx as *mut ThreadState);
        let t = s.current;
        if status(t) == NEW {
            if (*t).flags & KIND_MASK == KIND_SHARED {
                let top = top(t);
                #[cfg(feature = "valgrind")]
                crate::valgrind::make_writable(top - tealet_asm::FRAME_SIZE, tealet_asm::FRAME_SIZE);
                tealet_asm::init_stack(top as *mut u8, entry, (*t).sp as *mut u8);
            }
        } else {
            let out = if (*t).flags & COPIED != 0 {
                let buf = (*t).link as *mut u8;
                let len = top(t) - (*t).sp;
                // The shadow there describes the frames of the region's previous occupant.
                #[cfg(feature = "asan")]
                crate::sanitizer::unpoison((*t).sp, len);
                #[cfg(feature = "valgrind")]
                crate::valgrind::make_writable((*t).sp, len);
                std::ptr::copy_nonoverlapping(buf.add(OUT_WORD), (*t).sp as *mut u8, len);
                let out = *(buf as *const usize);
                libc::free(buf as *mut c_void);
                (*t).flags &= !COPIED;
                out
            } else {
                (*t).link
            };
            // After the copy: `out` may point into its stack.
            if out != 0 {
                *(out as *mut *mut c_void) = s.value;
            }
        }
        set_status(t, RUNNING);
        if let Some((base, slot)) = s.release.take() {
            s.pool.release(base, slot);
        }
        null_mut()
    }
}

/// First frame of every tealet: run it, then continue where it says.
unsafe extern "C" fn entry(_zero: *mut u8, arg: *mut u8) -> ! {
    // SAFETY: the switch that started this tealet made it the current one of this (live)
    // thread and left the value in the thread state; a new tealet's `link` is its run function.
    unsafe {
        #[cfg(feature = "asan")]
        crate::sanitizer::finish(null_mut());
        let ts = thread_state_if_any();
        let me = (*ts).current;
        let mut value = (*ts).value;
        let run: RunFn = std::mem::transmute::<usize, RunFn>((*me).link);
        let next = run(me, arg as *mut c_void, &mut value);
        let next = if next != me && target_state(next).is_ok() { next } else { (*ts).main };
        #[cfg(not(feature = "asan"))]
        if (*me).flags & KIND_MASK == KIND_DEDICATED && in_place(next) {
            finish_in_place(ts, me, next, value);
        }
        let _ = switch_to(ts, next, value, true);
        crate::trap::fatal(b"tealet: internal error: finished tealet resumed\n")
    }
}

/// Whether `t`'s stack is in place, so a jump resumes it.
unsafe fn in_place(t: *mut Tealet) -> bool {
    // SAFETY: a live record of this thread (the caller's promise).
    unsafe { (*t).flags & KIND_MASK != KIND_SHARED || home(t).owner.load(Ordering::Relaxed) == t }
}

/// A finished dedicated tealet `me` leaves for `next`, whose stack is in place, with a plain
/// jump: its slot goes back to this thread's pool first, which is safe because nothing on this
/// thread can take it before the jump leaves it.
#[cfg(not(feature = "asan"))]
unsafe fn finish_in_place(ts: *mut ThreadState, me: *mut Tealet, next: *mut Tealet, value: *mut c_void) -> ! {
    // SAFETY: `me` is the running dedicated tealet of this thread, `next` a checked tealet of it
    // whose stack is in place.
    unsafe {
        let s = &mut *ts;
        set_status(me, FINISHED);
        let d = me as *const DedicatedTealet;
        s.pool.release((*d).base, (*d).slot);
        let to_out = if status(next) == NEW { &mut s.value as *mut *mut c_void } else { (*next).link as *mut *mut c_void };
        set_status(next, RUNNING);
        s.previous = me;
        s.current = next;
        tealet_asm::jump(value as *mut u8, &mut (*me).sp as *mut usize as *mut *mut u8, (*next).sp as *mut u8, to_out as *mut *mut u8);
        crate::trap::fatal(b"tealet: internal error: finished tealet resumed\n")
    }
}

/// Free a tealet that is not running; its stack is dropped without unwinding.
pub(crate) fn free(t: *mut Tealet) -> i32 {
    if t.is_null() {
        return ERR_INVALID;
    }
    // SAFETY: a tealet pointer from us, not yet freed (the caller's promise).
    unsafe {
        if is_main(t) {
            return ERR_INVALID;
        }
        let dedicated = if (*t).flags & KIND_MASK == KIND_DEDICATED && status(t) != FINISHED {
            let d = t as *const DedicatedTealet;
            Some(((*d).base, (*d).slot))
        } else {
            None
        };
        if !thread_alive(t) {
            // Its thread's pools and regions are gone; only a dedicated slot is still ours.
            if let Some((base, slot)) = dedicated {
                crate::stack::arena::trim(base, slot);
                crate::stack::arena::free(base, slot);
            }
            destroy(t);
            return OK;
        }
        let ts = thread_state_if_any();
        if ts.is_null() || !same_thread(ts, t) {
            return ERR_THREAD;
        }
        let s = &mut *ts;
        if t == s.current {
            return ERR_INVALID;
        }
        // Its frames are abandoned, not returned from: their redzones would outlive them.
        #[cfg(feature = "asan")]
        if status(t) == SUSPENDED && (*t).flags & COPIED == 0 {
            crate::sanitizer::unpoison((*t).sp, top(t) - (*t).sp);
        }
        if let Some((base, slot)) = dedicated {
            s.pool.release(base, slot);
        } else if (*t).flags & KIND_MASK == KIND_SHARED && home(t).owner.load(Ordering::Relaxed) == t {
            home(t).owner.store(null_mut(), Ordering::Relaxed);
        }
        if s.previous == t {
            s.previous = null_mut();
        }
        destroy(t);
    }
    OK
}
