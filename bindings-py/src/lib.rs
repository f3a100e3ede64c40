//! `_continuation`: PyPy's continulet for CPython 3.9-3.13, each continuation on its own tealet.
//! All CPython internals live in csrc/pystate.c (wrapped by `pystate`); this file holds the
//! continulet semantics (who holds which continuation) and the Python API.
// `error` is PyPy's name for the module's exception class.
#![allow(non_camel_case_types)]
mod finalizer;
mod frames;
mod hidden;
mod pystate;

use pyo3::exceptions::{PyBaseException, PyException, PyNotImplementedError, PyTypeError};
use pyo3::types::{PyDict, PyList, PyString, PyTraceback, PyTuple, PyType};
use pyo3::{create_exception, ffi, intern, prelude::*, Borrowed, PyTraverseError, PyVisit};
use pystate::*;
use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::collections::BTreeMap;
use std::sync::{Mutex, Once, OnceLock};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use tealet_core as tc;

create_exception!(_continuation, error, PyException, "Usage error of the _continuation module.");
create_exception!(
    _continuation,
    ContinuletExit,
    PyBaseException,
    "Thrown into a pending continulet that became garbage, so its finally blocks run."
);

/// What a switch carries: the value the resumed side returns, or the exception it raises there
/// (boxed: a PyErr is several words, and every continulet keeps an outbox).
enum Payload {
    Value(Py<PyAny>),
    Throw(Box<PyErr>),
}

impl Payload {
    fn throw(e: PyErr) -> Payload {
        Payload::Throw(Box::new(e))
    }

    fn deliver(self) -> PyResult<Py<PyAny>> {
        match self {
            Payload::Value(v) => Ok(v),
            Payload::Throw(e) => Err(*e),
        }
    }

}

/// Dropping references at once. Our raw C entry points (`switch_method`, `run`) hold the GIL
/// without pyo3 counting the thread as attached, where dropping a `Py` would defer its decref;
/// a `Bound` decrefs at once, without the thread-state round trip `attached` costs.
trait Release {
    fn release(self, py: Python<'_>);
}

impl<T> Release for Py<T> {
    fn release(self, py: Python<'_>) {
        drop(self.into_bound(py));
    }
}

impl<R: Release> Release for Option<R> {
    fn release(self, py: Python<'_>) {
        if let Some(r) = self {
            r.release(py);
        }
    }
}

impl<R: Release> Release for Vec<R> {
    fn release(self, py: Python<'_>) {
        self.into_iter().for_each(|r| r.release(py));
    }
}

impl Release for Payload {
    fn release(self, py: Python<'_>) {
        match self {
            Payload::Value(v) => v.release(py),
            Payload::Throw(e) => attached(|_| drop(e)), // rare: errors only
        }
    }
}

/// Attached to every tealet (`tealet_set_data`): its interpreter state, its call until the
/// callable returns, and until then the continulet whose callable it is (the result goes to
/// whatever continuation that continulet holds when the callable ends).
struct Cont {
    /// The tealet this is attached to, and whether it finished (then whoever it switched to
    /// last frees both, after taking its outbox).
    tealet: *mut tc::tealet_t,
    finished: bool,
    state: *mut TpyState,
    call: Option<Call>,
    owner: Option<Py<Continulet>>,
    /// What this tealet passes on its last switch out; the switch's value points here (heap, so
    /// it stays put even when the stack is copied out), and the receiver takes it.
    outbox: Option<Payload>,
}

/// A Cont whose tealet is gone (or never made) goes with its interpreter state: into the pool,
/// emptied, while it has room.
impl Release for Box<Cont> {
    fn release(mut self, py: Python<'_>) {
        let (call, owner, outbox) = (self.call.take(), self.owner.take(), self.outbox.take());
        // SAFETY: nothing uses the state any more; emptying it may run finalizers, which may make
        // and release Conts (the pool is not borrowed meanwhile).
        unsafe { tpy_state_recycle(self.state) };
        // SAFETY: the GIL is held (see `Pool`), and nothing else borrows the pool here.
        let pool = unsafe { &mut *POOL.0.get() };
        if pool.len() < POOL_MAX && pool.try_reserve(1).is_ok() {
            pool.push(self);
        } else {
            // SAFETY: the emptied state is ours alone.
            unsafe { tpy_state_free(self.state) };
        }
        call.release(py);
        owner.release(py);
        outbox.release(py);
    }
}

impl Cont {
    /// Its references to its own continulet: `owner`, and the callable's first argument when
    /// its class passes it. Not counted while the never-started tealet is at home (`Slot::home`).
    fn self_refs(&self) -> impl Iterator<Item = *mut ffi::PyObject> + '_ {
        let first = self.call.as_ref().filter(|c| c.with_self).map(|c| c.args.as_slice()[0].as_ptr());
        self.owner.as_ref().map(|o| o.as_ptr()).into_iter().chain(first)
    }

    /// Drops the uncounted `self_refs` without releasing them (their continulet is being freed).
    fn forget_self_refs(&mut self) {
        std::mem::forget(self.owner.take());
        if let Some(call) = self.call.as_mut().filter(|c| c.with_self) {
            call.with_self = false;
            match std::mem::replace(&mut call.args, Args::Many(Vec::new())) {
                Args::Alone(a) => std::mem::forget(a),
                Args::Many(mut v) => {
                    std::mem::forget(v.remove(0));
                    call.args = Args::Many(v);
                }
            }
        }
    }
}

/// Released Conts with their emptied interpreter states, reused by the next continulets: a
/// create+run+finish then allocates neither. Only touched with the GIL held (GIL builds only),
/// never across Python code.
struct Pool(std::cell::UnsafeCell<Vec<Box<Cont>>>);

// SAFETY: every access happens with the GIL held, which serialises the threads.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(std::cell::UnsafeCell::new(Vec::new()));
const POOL_MAX: usize = 256;

/// A continulet's callable with the vectorcall arguments it gets, made by `__init__`: its
/// references live here until the callable returns, where the GC sees them, rather than on the
/// continuation's C stack.
struct Call {
    callable: Py<PyAny>,
    args: Args,
    kwnames: Option<Py<PyTuple>>,
    /// `args` starts with the continulet (its class passes it).
    with_self: bool,
}

/// The continulet (unless its class sets `pass_continulet` false), the positional arguments,
/// then the keyword values: inline when the continulet is the only one (the usual case, no
/// allocation).
enum Args {
    Alone([Py<PyAny>; 1]),
    Many(Vec<Py<PyAny>>),
}

impl Args {
    fn as_slice(&self) -> &[Py<PyAny>] {
        match self {
            Args::Alone(a) => a,
            Args::Many(v) => v,
        }
    }
}

impl Call {
    /// `callable` with `args[skip..]` and `kwds`. Fails (out of memory for the keyword names)
    /// before it owns any reference, so it works in raw entry points too (see `Release`).
    fn new(first: Option<&Bound<'_, Continulet>>, callable: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, skip: usize, kwds: Option<&Bound<'_, PyDict>>) -> PyResult<Call> {
        let py = args.py();
        let nkw = kwds.map_or(0, |k| k.len());
        let npos = args.len() - skip;
        let kwnames = match kwds {
            Some(k) if nkw > 0 => Some(PyTuple::new(py, k.iter().map(|(name, _)| name))?.unbind()),
            _ => None,
        };
        let first = first.map(|c| c.clone().into_any().unbind());
        let with_self = first.is_some();
        let callable = callable.clone().unbind();
        if npos == 0 && nkw == 0 {
            let args = match first {
                Some(c) => Args::Alone([c]),
                None => Args::Many(Vec::new()),
            };
            return Ok(Call { callable, args, kwnames: None, with_self });
        }
        let mut all = Vec::with_capacity(usize::from(with_self) + npos + nkw);
        all.extend(first);
        all.extend(args.iter().skip(skip).map(Bound::unbind));
        all.extend(kwds.into_iter().flat_map(|k| k.iter().map(|(_, v)| v.unbind())));
        Ok(Call { callable, args: Args::Many(all), kwnames, with_self })
    }

    /// Calls the callable; a new reference, or NULL with an exception set.
    fn call(&self) -> *mut ffi::PyObject {
        // SAFETY: Py<PyAny> is a non-null object pointer (repr(transparent)); the tuple's length
        // is read from a live tuple.
        let nkw = self.kwnames.as_ref().map_or(0, |k| unsafe { ffi::PyTuple_GET_SIZE(k.as_ptr()) } as usize);
        let kwnames = self.kwnames.as_ref().map_or(ptr::null_mut(), |k| k.as_ptr());
        let args = self.args.as_slice();
        // SAFETY: every pointer is kept alive by `self`, which outlives the call; vectorcall
        // borrows them.
        unsafe { tpy_call(self.callable.as_ptr(), args.as_ptr().cast(), args.len() - nkw, kwnames) }
    }
}

impl Release for Call {
    fn release(self, py: Python<'_>) {
        self.callable.release(py);
        match self.args {
            Args::Alone([a]) => a.release(py),
            Args::Many(v) => v.release(py),
        }
        self.kwnames.release(py);
    }
}

/// The stored continuation of a continulet. Only touched with the GIL held, in its owner thread.
struct Slot {
    tealet: Cell<*mut tc::tealet_t>,
    bound: Cell<bool>,
    thread: Cell<u64>,
    /// ContinuletExit did not finish what it holds, or it was left at interpreter shutdown: the
    /// GC is no longer shown its frames, so nothing they use is cleared while they may still run.
    unkillable: Cell<bool>,
    /// The context its callable finished in (greenlet's dead gr_context).
    last_context: Cell<Option<Py<PyAny>>>,
    /// It holds its own never-started tealet, whose `Cont::self_refs` are then not counted:
    /// otherwise each unstarted continulet would be a reference cycle, freed only by the GC
    /// (never with the GC disabled). They count from the moment the tealet leaves (`leave_home`).
    home: Cell<bool>,
}

/// `c`'s own never-started tealet `t` left its slot (a switch into it or a move elsewhere): its
/// references to `c` count from now on, since `c` may go while `t` lives.
#[cold]
fn leave_home(c: &Continulet, t: *mut tc::tealet_t) {
    c.slot.home.set(false);
    // SAFETY: t is c's never-started tealet, carrying its Cont, whose self_refs point at c:
    // alive (borrowed here), so counting them is sound.
    unsafe {
        for p in (*cont_of(t)).self_refs() {
            ffi::Py_INCREF(p);
        }
    }
}

// SAFETY: every access happens with the GIL held (GIL builds only), and switches check the
// owning thread before touching the tealet.
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw tealet pointer is only dereferenced by the core in its owner thread.
unsafe impl Send for Slot {}

thread_local! {
    static MAIN: Cell<*mut tc::tealet_t> = const { Cell::new(ptr::null_mut()) };
    static SERIAL: Cell<u64> = const { Cell::new(0) };
    static EXIT: ThreadExit = const { ThreadExit };
}

/// Main tealet of every thread that made one, by thread serial, and whether that thread still
/// runs: another thread may read the suspended continuations of a live thread (their records
/// stay), but a dead thread's main tealet is freed with it. Locked across such reads, and by
/// the exiting thread before the core frees its main tealet.
static THREADS: Mutex<BTreeMap<u64, (usize, bool)>> = Mutex::new(BTreeMap::new());

struct ThreadExit;

impl Drop for ThreadExit {
    fn drop(&mut self) {
        thread_ended(SERIAL.with(|s| s.get()));
    }
}

fn thread_ended(serial: u64) {
    if let Some(e) = THREADS.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&serial) {
        e.1 = false;
    }
}

/// Kept in the thread's state dict, which CPython clears when the thread is done with Python,
/// before `Thread.join` returns (the OS thread, and `ThreadExit`, end later): from then on its
/// continuations can never run again.
#[pyclass(module = "_continuation", frozen)]
struct _ThreadEnd {
    serial: u64,
}

impl Drop for _ThreadEnd {
    fn drop(&mut self) {
        thread_ended(self.serial);
    }
}

/// A number naming the calling thread, never reused (unlike addresses or OS thread ids), and
/// cheaper than std::thread::current() on the switch path.
fn thread_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    SERIAL.with(|s| {
        if s.get() == 0 {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        s.get()
    })
}

fn core_error(rc: c_int) -> PyErr {
    if rc == tc::TEALET_ERR_NOMEM {
        return no_memory();
    }
    // SAFETY: tealet_strerror returns a static NUL-terminated string for any code.
    let msg = unsafe { std::ffi::CStr::from_ptr(tc::tealet_strerror(rc)) };
    error::new_err(format!("tealet: {}", msg.to_string_lossy()))
}

/// CPython's own MemoryError (PyErr_NoMemory, from its preallocated instances), taken as it is:
/// unlike a lazy PyErr, neither making nor raising it allocates, which an allocation that just
/// failed requires.
fn no_memory() -> PyErr {
    // SAFETY: errors are only made with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: sets the error indicator, which `fetch` takes back at once.
    unsafe { ffi::PyErr_NoMemory() };
    PyErr::fetch(py)
}

/// `tpy_type_flag`'s cache entries, one per class attribute it reads.
const FLAG_DETACH_FRAMES: c_int = 0;
const FLAG_PASS_CONTINULET: c_int = 1;

/// The class attribute `name` of `slf`'s class as a flag, its answer cached in `slot` (one per name).
fn type_flag(slf: &Bound<'_, Continulet>, name: &Bound<'_, PyString>, slot: c_int) -> PyResult<bool> {
    // SAFETY: a live type object and an interned str.
    match unsafe { tpy_type_flag(ffi::Py_TYPE(slf.as_ptr()), name.as_ptr(), slot) } {
        flag if flag < 0 => Err(PyErr::fetch(slf.py())),
        flag => Ok(flag > 0),
    }
}

fn new_cont(py: Python<'_>, call: Option<Call>) -> PyResult<*mut Cont> {
    // SAFETY: the GIL is held (see `Pool`); a pooled Cont is empty, its state as new.
    if let Some(mut data) = unsafe { (*POOL.0.get()).pop() } {
        data.tealet = ptr::null_mut();
        data.finished = false;
        data.call = call;
        return Ok(Box::into_raw(data));
    }
    // SAFETY: plain allocation of a zeroed C struct.
    let state = unsafe { tpy_state_new() };
    if state.is_null() {
        call.release(py);
        return Err(no_memory());
    }
    // `Box::new` would abort out of memory. SAFETY: Cont is not zero-sized; `Box::from_raw`
    // frees it with this layout.
    let data = unsafe { std::alloc::alloc(std::alloc::Layout::new::<Cont>()) } as *mut Cont;
    if data.is_null() {
        // SAFETY: a fresh state nothing else knows.
        unsafe { tpy_state_free(state) };
        call.release(py);
        return Err(no_memory());
    }
    // SAFETY: fresh memory with Cont's layout.
    unsafe { data.write(Cont { tealet: ptr::null_mut(), finished: false, state, call, owner: None, outbox: None }) };
    Ok(data)
}

/// Tealet records that only their thread may free, by its serial, with their number: never-started
/// ones whose continulet was freed in another thread (see `free_stray`), and orphans whose thread
/// was still winding down (`free_orphan`). The next `bind` frees those it may.
static STRAYS: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
static STRAY_COUNT: AtomicUsize = AtomicUsize::new(0);

fn add_stray(thread: u64, t: *mut tc::tealet_t) {
    STRAYS.lock().unwrap_or_else(|e| e.into_inner()).push((thread, t as usize));
    STRAY_COUNT.fetch_add(1, Ordering::Relaxed);
}

/// Frees the strays of the calling thread, and those of threads that exited (the core refuses
/// while such a thread still winds down: they wait for a later call).
#[cold]
fn free_strays() {
    let me = thread_serial();
    let threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let mut strays = STRAYS.lock().unwrap_or_else(|e| e.into_inner());
    strays.retain(|&(serial, t)| {
        let mine = serial == me;
        if !mine && threads.get(&serial).is_some_and(|&(_, alive)| alive) {
            return true;
        }
        // SAFETY: a never-started tealet record whose Cont is gone, of this thread or of one
        // that exited; nothing else refers to it.
        unsafe { tc::tealet_free(t as *mut tc::tealet_t) != tc::TEALET_OK }
    });
    STRAY_COUNT.store(strays.len(), Ordering::Relaxed);
}

/// What waits for the end of a garbage collection that runs on a continulet's stack.
enum Later {
    /// A continulet whose pending continuation the collection found garbage (see `defer_kill`).
    Kill(Py<Continulet>),
    /// A `call_when_switchable(func, *args)`.
    Call(Py<PyAny>, Py<PyTuple>),
}

/// The garbage collection in progress as `_gc_callback` saw it, and what waits for its end.
struct Collections {
    /// From its "start" to its "stop": the serial of its thread and whether it runs on a
    /// continulet's stack (not on its thread's own stack, which is never copied out).
    running: Option<(u64, bool)>,
    /// With the serial of the thread that deferred each (the collection's own thread).
    deferred: Vec<(u64, Later)>,
}

/// Only touched with the GIL held, never across Python code.
struct CollectionsCell(std::cell::UnsafeCell<Collections>);

// SAFETY: every access happens with the GIL held, which serialises the threads.
unsafe impl Sync for CollectionsCell {}

static COLLECTIONS: CollectionsCell = CollectionsCell(std::cell::UnsafeCell::new(Collections { running: None, deferred: Vec::new() }));

/// The interpreter's "a collection runs" flag (`tpy_gc_collecting_flag`), set at module init.
static GC_COLLECTING: AtomicPtr<c_int> = AtomicPtr::new(ptr::null_mut());

/// `gc.callbacks` and our entry in it (`_gc_callback`), set at module init.
static GC_CALLBACK: OnceLock<(Py<PyList>, Py<PyAny>)> = OnceLock::new();

/// Whether leaving the running continuation cannot copy out the C stack of a garbage collection
/// in progress, which holds the heads of its object lists: an object dying meanwhile relinks its
/// neighbours there, in the place of whatever stack was copied in. Checked on every switch.
#[inline(always)]
fn switch_is_safe() -> bool {
    // SAFETY: the interpreter's flag, read with the GIL held.
    let collecting = unsafe { *GC_COLLECTING.load(Ordering::Relaxed) } != 0;
    !collecting || collecting_switch_is_safe()
}

#[cold]
#[inline(never)]
fn collecting_switch_is_safe() -> bool {
    // SAFETY: every switch runs with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let (callbacks, ours) = GC_CALLBACK.get().expect("set at module init");
    // Without our entry (a user removed it), where the collection runs is unknown.
    if !callbacks.bind(py).iter().any(|c| c.is(ours)) {
        return false;
    }
    // SAFETY: the GIL is held, and the read ends before any Python code runs.
    match unsafe { (*COLLECTIONS.0.get()).running } {
        Some((thread, on_continulet)) => !on_continulet || thread != thread_serial(),
        // Before our "start" the lists are not made yet; after our "stop" they are gone.
        None => true,
    }
}

fn collection_switch_error() -> PyErr {
    usage_error(
        "cannot switch while a garbage collection runs on a continulet's stack (from a finalizer \
         or weakref callback it runs); call_when_switchable() defers a call until it is over",
    )
}

/// The `gc.callbacks` entry: records where a collection runs; once it is over, runs what it
/// deferred.
#[pyfunction]
fn _gc_callback(py: Python<'_>, phase: &Bound<'_, PyString>, _info: &Bound<'_, PyAny>) {
    let start = phase.to_str().is_ok_and(|p| p == "start");
    let main = MAIN.with(|m| m.get());
    // SAFETY: the core's current tealet of a thread that made its main one.
    let running = start.then(|| (thread_serial(), !main.is_null() && unsafe { tc::tealet_current() } != main));
    // SAFETY: the GIL is held, and the write ends before any Python code runs.
    unsafe { (*COLLECTIONS.0.get()).running = running };
    if !start {
        run_deferred(py);
    }
}

/// Runs what this thread deferred, including what is deferred meanwhile.
fn run_deferred(py: Python<'_>) {
    let me = thread_serial();
    loop {
        // This thread's entries in one pass (a collection may defer many); what they defer in
        // turn comes after them, in the next round.
        // SAFETY: the GIL is held, and the borrow ends before any Python code runs.
        let mine: Vec<_> = unsafe {
            let deferred = &mut (*COLLECTIONS.0.get()).deferred;
            let (mine, others) = std::mem::take(deferred).into_iter().partition(|&(thread, _)| thread == me);
            *deferred = others;
            mine
        };
        if mine.is_empty() {
            break;
        }
        for (_, later) in mine {
            match later {
                Later::Kill(c) => {
                    c.get().kill(py);
                    c.release(py);
                }
                Later::Call(func, args) => {
                    if let Err(e) = func.call1(py, args.bind(py)) {
                        e.write_unraisable(py, Some(func.bind(py)));
                    }
                }
            }
        }
    }
}

/// Defers `later` to the end of the collection in progress (see `switch_is_safe`).
fn defer(later: Later) {
    // SAFETY: the GIL is held (a `Py` is handed in), and nothing else borrows the list here.
    unsafe { (*COLLECTIONS.0.get()).deferred.push((thread_serial(), later)) };
}

/// call_when_switchable(func, /, *args): calls `func(*args)` now, or, while a garbage collection
/// runs on a continulet's stack (a finalizer or weakref callback it runs, where no switch is
/// allowed), once that collection is over, in this thread; then its exceptions go to
/// `sys.unraisablehook`. For finalizers that switch (kill a suspended coroutine).
#[pyfunction]
#[pyo3(signature = (func, /, *args))]
fn call_when_switchable(func: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(format!("call_when_switchable() argument 1 must be callable, not {}", func.get_type().name()?)));
    }
    if switch_is_safe() {
        func.call1(args)?;
    } else {
        defer(Later::Call(func.clone().unbind(), args.clone().unbind()));
    }
    Ok(())
}

/// The calling thread's main tealet, with its `Cont` attached on first use.
fn main_tealet() -> PyResult<*mut tc::tealet_t> {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: installs the core's SIGSEGV/SIGBUS handler; it chains to earlier handlers.
        unsafe { tc::tealet_install_overflow_handler() };
    });
    MAIN.with(|m| {
        if m.get().is_null() {
            // SAFETY: creates (or returns) this thread's main tealet.
            let t = unsafe { tc::tealet_main() };
            if t.is_null() {
                return Err(no_memory());
            }
            // SAFETY: the GIL is held (callers are entry points); a Cont without a call.
            let data = new_cont(unsafe { Python::assume_attached() }, None)?;
            // SAFETY: t is this thread's live main tealet; data is its fresh Cont, whose frames
            // are the thread's own (never linked below).
            unsafe {
                tpy_set_detached((*data).state);
                tc::tealet_set_data(t, data.cast());
                (*data).tealet = t;
            }
            m.set(t);
            THREADS.lock().unwrap_or_else(|e| e.into_inner()).insert(thread_serial(), (t as usize, true));
            // Registered after the core's own thread-exit hook (made by tealet_main), so it runs
            // first: the thread reads as dead before its main tealet is freed.
            EXIT.with(|_| ());
            attached(|py| -> PyResult<()> {
                // SAFETY: the GIL is held; a borrowed dict (NULL if there is none).
                let dict = unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyThreadState_GetDict()) };
                if let Some(dict) = dict {
                    dict.set_item("_continuation.thread_end", _ThreadEnd { serial: thread_serial() })?;
                }
                Ok(())
            })?;
        }
        Ok(m.get())
    })
}

fn cont_of(t: *mut tc::tealet_t) -> *mut Cont {
    // SAFETY: every tealet we create or adopt carries a `Cont` from creation on.
    unsafe { tc::tealet_get_data(t).cast() }
}

/// Runs `f` with pyo3 counting this thread as attached, which it is (the GIL is held): pyo3
/// defers the decref of a `Py` dropped otherwise, as in our raw C entry points (`switch_method`,
/// `run`, not called through pyo3), and the GC would see stale counts until it applied them.
fn attached<R>(f: impl FnOnce(Python<'_>) -> R) -> R {
    // SAFETY: called with the GIL held by a thread of the running interpreter.
    unsafe { Python::attach_unchecked(f) }
}

/// Frees `sender`, which just switched to us, if that was its last switch (a finished tealet
/// cannot free itself).
fn reap(py: Python<'_>, sender: *mut Cont) {
    // SAFETY: sender is the live Cont of the tealet that switched to us; once finished, nothing
    // else refers to it or to its tealet.
    unsafe {
        if (*sender).finished {
            tc::tealet_free((*sender).tealet);
            Box::from_raw(sender).release(py);
        }
    }
}

/// Stores `payload` in `from`'s outbox and returns the switch value that points at it.
fn post(from: *mut Cont, payload: Payload) -> *mut c_void {
    // SAFETY: `from` is the running tealet's Cont, only touched from this thread.
    unsafe {
        (*from).outbox = Some(payload);
        (&raw mut (*from).outbox).cast()
    }
}

/// Takes the payload a switch value points at (the sender's outbox), before the sender may be
/// freed; returns it with the sender.
fn take_posted(value: *mut c_void) -> (Payload, *mut Cont) {
    // SAFETY: every switch value is a pointer to the outbox field of a live sender's Cont,
    // filled by `post`.
    unsafe {
        let sender = value.byte_sub(std::mem::offset_of!(Cont, outbox)).cast::<Cont>();
        let payload = (*sender).outbox.take().expect("a switch always carries a payload");
        (payload, sender)
    }
}

/// The interpreter state whose top frame the frames of `me` link to while it runs (PyPy's f_back
/// of the callable's frame): the continuation its continulet holds now, where its result goes.
/// Null if it holds none (the main continuation has no continulet).
fn held_state(me: *mut Cont) -> *mut TpyState {
    // SAFETY: me is the running tealet's Cont; a continulet holds a live, unfinished tealet
    // (finishing takes it out of the slot), which carries its Cont.
    unsafe {
        let Some(owner) = (*me).owner.as_ref() else { return ptr::null_mut() };
        let t = owner.get().slot.tealet.get();
        if t.is_null() {
            return ptr::null_mut();
        }
        (*cont_of(t)).state
    }
}

/// `error(msg)`, built out of line: the switch path's frames stay on every suspended stack.
#[cold]
#[inline(never)]
fn usage_error(msg: &'static str) -> PyErr {
    error::new_err(msg)
}

/// The `switch_args` of a departure through `throw`, whose argument vector pyo3 does not show:
/// the GC trusts the top frame's call to it as before (see `tpy_save`).
const THROW_ARGS: *const c_void = ptr::dangling();

/// Before leaving the current continuation (`current`): saves its interpreter state and posts
/// `payload` in its outbox; returns the switch value. `switch_args`: the argument vector of the
/// `switch` call it leaves through, `THROW_ARGS` through `throw`, null any other way (`tpy_save`).
#[inline(always)]
fn depart(py: Python<'_>, me: *mut Cont, payload: Payload, switch_args: *const c_void) -> PyResult<*mut c_void> {
    // SAFETY: `me` is the current tealet's Cont; saving happens before we leave its stack.
    if unsafe { tpy_save((*me).state, switch_args) } < 0 {
        let err = PyErr::fetch(py);
        payload.release(py);
        return Err(err);
    }
    Ok(post(me, payload))
}

/// Back on our own stack (`me`) after `tealet_switch` returned `rc`: reinstalls our interpreter
/// state, then takes what we are resumed with.
#[inline(always)]
fn arrive(py: Python<'_>, me: *mut Cont, rc: c_int, value: *mut c_void) -> PyResult<Py<PyAny>> {
    // SAFETY: me is the running tealet's Cont; its state is reinstalled first.
    unsafe { tpy_restore((*me).state, held_state(me)) };
    let (payload, sender) = take_posted(value);
    if rc != tc::TEALET_OK {
        // On failure nobody took the payload from our outbox: drop it.
        payload.release(py);
        return Err(core_error(rc));
    }
    reap(py, sender);
    payload.deliver()
}

/// Leaves the current continuation for `target` (`route(cont, to)` chose both), carrying
/// `payload`; returns what we are resumed with.
fn transfer(py: Python<'_>, cont: &Continulet, to: Option<&Continulet>, current: *mut tc::tealet_t, target: *mut tc::tealet_t, payload: Payload, switch_args: *const c_void) -> PyResult<Py<PyAny>> {
    let me = cont_of(current);
    let mut value = depart(py, me, payload, switch_args).inspect_err(|_| unroute(cont, to, target))?;
    // SAFETY: target is a live tealet of this thread (checked by the callers); the GIL travels
    // with the switch because it stays in this OS thread.
    let rc = unsafe { tc::tealet_switch(target, &mut value) };
    if rc != tc::TEALET_OK {
        unroute(cont, to, target);
    }
    arrive(py, me, rc, value)
}

/// The first switch into a tealet lands here, on its own stack. This frame and the core's entry
/// are all that stay below the callable's frames on the C stack (and in every copy of it), so
/// the work is in out-of-line helpers.
unsafe extern "C" fn run(_me: *mut tc::tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tc::tealet_t {
    let data = arg.cast::<Cont>();
    // SAFETY: data is this tealet's Cont; tpy_start installs its fresh interpreter state.
    unsafe { tpy_start((*data).state, held_state(data)) };
    let call = begin(data, value);
    let result = if call {
        // SAFETY: data is this tealet's Cont; `call` is not touched until the call returns,
        // and nothing on this C stack owns a reference while the callable runs.
        unsafe { (*data).call.as_ref().map_or(ptr::null_mut(), Call::call) }
    } else {
        ptr::null_mut()
    };
    end(data, value, call.then_some(result))
}

/// Takes the first switch's payload; if the callable must not run, drops the call and leaves
/// the outcome in the outbox. Returns whether to call.
#[inline(never)]
fn begin(data: *mut Cont, value: *mut *mut c_void) -> bool {
    // SAFETY: the GIL travels with the switch that started us.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: the switcher passed its outbox in *value.
    let (payload, sender) = take_posted(unsafe { *value });
    reap(py, sender);
    // SAFETY: data is this tealet's Cont, only used from this thread.
    let data = unsafe { &mut *data };
    let outcome = match payload {
        Payload::Throw(e) => *e,
        Payload::Value(v) => {
            let none = v.is_none(py);
            v.release(py);
            if none {
                return true;
            }
            PyTypeError::new_err("can't send non-None value to a just-started continulet")
        }
    };
    data.call.take().release(py);
    fail(data, outcome)
}

/// The callable does not run: `outcome` goes to the outbox.
fn fail(data: &mut Cont, outcome: PyErr) -> bool {
    data.outbox = Some(Payload::throw(outcome));
    false
}

/// After the run: the callable's `result` if it was called (a new reference, or NULL with an
/// exception set) goes to the outbox, the interpreter state is released, and the outcome goes to
/// the continuation the continulet holds now; returns that tealet.
#[inline(never)]
fn end(data: *mut Cont, value: *mut *mut c_void, result: Option<*mut ffi::PyObject>) -> *mut tc::tealet_t {
    // SAFETY: the GIL stays with this thread's running continuation.
    let py = unsafe { Python::assume_attached() };
    if let Some(result) = result {
        // SAFETY: data is this tealet's Cont; the call is over.
        let data = unsafe { &mut *data };
        data.call.take().release(py);
        // SAFETY: result is what vectorcall returned.
        data.outbox = Some(match unsafe { Bound::from_owned_ptr_or_err(py, result) } {
            Ok(v) => Payload::Value(v.unbind()),
            Err(e) => Payload::throw(e),
        });
    }
    // SAFETY: the callable is done; release this continuation's own interpreter state and
    // take the context it ends in (a new reference or NULL).
    let context = unsafe { Bound::from_owned_ptr_or_opt(py, tpy_finish()) };
    finish(data, value, context.map(Bound::unbind))
}

/// The outcome goes to the continuation the continulet holds now; it is finished afterwards,
/// keeping `context`. Nothing is released here: a finalizer run on this finished tealet could
/// switch away from it, and the target frees it (`reap`), releasing the owner there.
fn finish(data: *mut Cont, value: *mut *mut c_void, context: Option<Py<PyAny>>) -> *mut tc::tealet_t {
    // SAFETY: single-threaded access under the GIL; data is this tealet's Cont, whose owner is
    // set by `bind` and only taken from a never-started one.
    let owner = unsafe {
        (*data).finished = true;
        (*data).owner.as_ref().expect("a started continulet's tealet has its owner")
    };
    // A continulet's own tealet finishes once, so this drops nothing.
    let replaced = owner.get().slot.last_context.replace(context);
    assert!(replaced.is_none(), "a continulet finished twice");
    let target = owner.get().slot.tealet.replace(ptr::null_mut());
    let target = if target.is_null() { main_tealet().unwrap_or(ptr::null_mut()) } else { target };
    // SAFETY: value is the core's in/out slot; the target takes the payload from our outbox,
    // which lives until the target reaps this finished tealet (after taking it).
    unsafe { *value = (&raw mut (*data).outbox).cast() };
    target
}

/// `continulet.switch(value=None, to=None)`, a METH_FASTCALL|METH_KEYWORDS C function rather
/// than a pyo3 method: its frame stays on the C stack of every continuation suspended in it (and
/// in every heap copy of that stack), so it is only this small frame around the core's switch.
unsafe extern "C" fn switch_method(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut value = ptr::null_mut();
    let mut me = ptr::null_mut();
    // SAFETY: CPython passes the method's arguments as documented for METH_FASTCALL|METH_KEYWORDS.
    let target = unsafe { switch_prepare(slf, args, nargs, kwnames, &mut value, &mut me) };
    if target.is_null() {
        return value.cast();
    }
    // SAFETY: switch_prepare checked target (a live tealet of this thread) and departed.
    let rc = unsafe { tc::tealet_switch(target, &mut value) };
    if rc != tc::TEALET_OK {
        // SAFETY: switch_prepare routed this switch, and nothing ran since.
        unsafe { switch_unroute(target) };
    }
    switch_arrive(me, rc, value)
}

/// The continulets of the switch `switch_prepare` routed last, kept for `switch_unroute` rather
/// than in switch_method's frame, which every suspended stack carries. Only touched with the
/// GIL held (GIL builds only).
struct LastRoute(Cell<(*const Continulet, *const Continulet)>);

// SAFETY: every access happens with the GIL held, which serialises the threads.
unsafe impl Sync for LastRoute {}

static LAST_ROUTE: LastRoute = LastRoute(Cell::new((ptr::null(), ptr::null())));

/// After a core switch that failed: undoes switch_prepare's `route`.
///
/// # Safety
/// Only right after that switch failed: no code ran since `route`, and switch_method's
/// arguments (the two continulets) are still borrowed.
#[cold]
#[inline(never)]
unsafe fn switch_unroute(target: *mut tc::tealet_t) {
    let (cont, to) = LAST_ROUTE.0.get();
    // SAFETY: see the function's contract; `cont` is never null once routed.
    unsafe { unroute(&*cont, to.as_ref(), target) };
}

/// Parses switch's arguments and departs: returns the tealet to switch to, with the switch value
/// in `*value` and the departing Cont in `*me`; or NULL with `*value` the call's result (NULL
/// with an exception set on error).
#[inline(never)]
unsafe fn switch_prepare(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    value: &mut *mut c_void,
    me: &mut *mut Cont,
) -> *mut tc::tealet_t {
    // SAFETY: CPython calls methods with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: the method descriptor checked that slf is a continulet; args holds nargs positional
    // values followed by one per name in kwnames, all borrowed for the call.
    // Only Bound values are dropped here (pyo3 decrefs those at once): the payload is made once
    // the switch is sure to go ahead.
    let prepared = unsafe { switch_args(py, slf, args, nargs, kwnames) }.and_then(|(v, to)| {
        let cont = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Continulet>() };
        let route = route(cont.get(), to.as_ref().map(|t| t.get()))?;
        let v = v.map_or_else(|| py.None(), |v| v.to_owned().unbind());
        match route {
            Route::Here => Ok((ptr::null_mut(), v.into_ptr().cast())),
            Route::To(current, target) => {
                *me = cont_of(current);
                LAST_ROUTE.0.set((cont.get(), to.as_ref().map_or(ptr::null(), |t| t.get())));
                let departed = depart(py, *me, Payload::Value(v), args.cast());
                Ok((target, departed.inspect_err(|_| unroute(cont.get(), to.as_ref().map(|t| t.get()), target))?))
            }
        }
    });
    match prepared {
        Ok((target, v)) => {
            *value = v;
            target
        }
        Err(e) => {
            e.restore(py);
            *value = ptr::null_mut();
            ptr::null_mut()
        }
    }
}

type SwitchArgs<'a, 'py> = (Option<Borrowed<'a, 'py, PyAny>>, Option<Borrowed<'a, 'py, Continulet>>);

/// `(value=None, to=None)` from a vectorcall argument array, borrowed from it (`slf` is the
/// continulet whose switch this is).
#[inline]
unsafe fn switch_args<'a, 'py>(
    py: Python<'py>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<SwitchArgs<'a, 'py>> {
    const NAMES: [&str; 2] = ["value", "to"];
    let nargs = nargs as usize;
    if kwnames.is_null() && nargs <= NAMES.len() {
        // SAFETY: nargs values are in args (the usual `switch()`, `switch(v)`, `switch(v, to)`).
        let v = (nargs >= 1).then(|| unsafe { Borrowed::from_ptr(py, *args) });
        let to = if nargs == 2 { switch_to(slf, unsafe { Borrowed::from_ptr(py, *args.add(1)) })? } else { None };
        return Ok((v, to));
    }
    let names = if kwnames.is_null() {
        None
    } else {
        // SAFETY: kwnames is a tuple of str when not NULL.
        Some(unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked::<PyTuple>() })
    };
    let nkw = names.as_ref().map_or(0, |n| n.len());
    if nargs > NAMES.len() {
        return Err(PyTypeError::new_err(format!("switch() takes at most 2 arguments ({} given)", nargs + nkw)));
    }
    let mut slots: [Option<Borrowed<'a, 'py, PyAny>>; 2] = [None, None];
    for (i, slot) in slots.iter_mut().enumerate().take(nargs) {
        // SAFETY: i < nargs.
        *slot = Some(unsafe { Borrowed::from_ptr(py, *args.add(i)) });
    }
    if let Some(names) = &names {
        for (k, name) in names.iter().enumerate() {
            let name = name.cast_into::<PyString>()?;
            let i = match NAMES.iter().position(|n| name.to_str().is_ok_and(|s| s == *n)) {
                Some(i) => i,
                None => return Err(PyTypeError::new_err(format!("switch() got an unexpected keyword argument '{name}'"))),
            };
            if slots[i].is_some() {
                return Err(PyTypeError::new_err(format!("switch() got multiple values for argument '{name}'")));
            }
            // SAFETY: keyword values follow the positional ones.
            slots[i] = Some(unsafe { Borrowed::from_ptr(py, *args.add(nargs + k)) });
        }
    }
    let [v, to] = slots;
    Ok((v, match to {
        Some(t) => switch_to(slf, t)?,
        None => None,
    }))
}

/// switch's `to`: None or a continulet. One of the same type as `slf` (a continulet: the method
/// descriptor checked it) needs no walk of its type's bases.
#[inline(always)]
fn switch_to<'a, 'py>(slf: *mut ffi::PyObject, to: Borrowed<'a, 'py, PyAny>) -> PyResult<Option<Borrowed<'a, 'py, Continulet>>> {
    if to.is_none() {
        return Ok(None);
    }
    // SAFETY: both are live objects; reading their types.
    if unsafe { ffi::Py_TYPE(to.as_ptr()) == ffi::Py_TYPE(slf) } {
        // SAFETY: same type as a continulet.
        return Ok(Some(unsafe { to.cast_unchecked::<Continulet>() }));
    }
    to.cast::<Continulet>().map(Some).map_err(|_| not_continulet(&to))
}

/// PyPy's error for a non-continulet where a continulet is expected (`to`, permute's arguments).
#[cold]
fn not_continulet(o: &Bound<'_, PyAny>) -> PyErr {
    let name = o.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string());
    PyTypeError::new_err(format!("'_continuation.continulet' object expected, got '{name}' instead"))
}

/// Switching a finished continulet (even to itself, which goes nowhere) or to a finished one.
#[cold]
fn finished_error() -> PyErr {
    usage_error("continulet already finished")
}

/// After switch_method's switch: what `switch()` returns (NULL with an exception set).
#[inline(never)]
fn switch_arrive(me: *mut Cont, rc: c_int, value: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: the GIL is held by this thread across switches.
    let py = unsafe { Python::assume_attached() };
    match arrive(py, me, rc, value) {
        Ok(v) => v.into_ptr(),
        Err(e) => {
            e.restore(py);
            ptr::null_mut()
        }
    }
}

/// Where a switch goes: nowhere (the value comes straight back), or from `current` to `target`.
enum Route {
    Here,
    To(*mut tc::tealet_t, *mut tc::tealet_t),
}

/// The continulets a switch exchanges: `cont` receives the current continuation, `to` (if any)
/// `cont`'s old one; None: the switch goes nowhere.
#[inline(always)]
fn endpoints<'a>(cont: &'a Continulet, to: Option<&'a Continulet>) -> Option<(&'a Continulet, Option<&'a Continulet>)> {
    let to = to.filter(|t| t.slot.bound.get());
    match (cont.slot.bound.get(), to) {
        (false, None) => None,
        (false, Some(t)) => Some((t, None)),
        (true, Some(t)) if ptr::eq(t, cont) => None,
        (true, t) => Some((cont, t)),
    }
}

/// PyPy's switch/throw: `cont` receives the current continuation, `to` (if any) `cont`'s old
/// one, and we resume what was in `to` (or in `cont`).
#[inline(always)]
fn route(cont: &Continulet, to: Option<&Continulet>) -> PyResult<Route> {
    let Some((cont, to)) = endpoints(cont, to) else {
        return if cont.finished() { Err(finished_error()) } else { Ok(Route::Here) };
    };
    // PyPy's order: `cont` finished, `to` of another thread than `cont`, `cont` foreign, `to` finished.
    if cont.finished() {
        return Err(finished_error());
    }
    let thread = cont.slot.thread.get();
    if to.is_some_and(|t| t.slot.thread.get() != thread) {
        return Err(usage_error("cross-thread double switch"));
    }
    // Both are bound here: foreign() without reading the thread-local twice.
    if thread != thread_serial() {
        return Err(usage_error("cannot switch to a different thread"));
    }
    if to.is_some_and(|t| t.finished()) {
        return Err(finished_error());
    }
    if !switch_is_safe() {
        return Err(collection_switch_error());
    }
    // SAFETY: `cont` is bound in this thread, whose main tealet was made then, so a current
    // tealet exists.
    let current = unsafe { tc::tealet_current() };
    let old = cont.slot.tealet.replace(current);
    if cont.slot.home.get() {
        leave_home(cont, old);
    }
    let target = match to {
        Some(t) => {
            let held = t.slot.tealet.replace(old);
            if t.slot.home.get() {
                leave_home(t, held);
            }
            held
        }
        None => old,
    };
    Ok(Route::To(current, target))
}

/// Undoes `route(cont, to)` when the switch to `target` did not leave (the save or the core
/// switch failed): each continulet holds again what it held, as in PyPy, which exchanges only
/// after switching.
#[cold]
fn unroute(cont: &Continulet, to: Option<&Continulet>, target: *mut tc::tealet_t) {
    let Some((cont, to)) = endpoints(cont, to) else { return };
    let old = match to {
        Some(t) => t.slot.tealet.replace(target),
        None => target,
    };
    cont.slot.tealet.set(old);
}

#[pyclass(subclass, weakref, module = "_continuation", name = "continulet", frozen)]
pub struct Continulet {
    slot: Slot,
}

impl Continulet {
    /// What `__new__` makes (see `continulet_new`): unbound, not pending.
    fn unbound() -> Self {
        Continulet {
            slot: Slot {
                tealet: Cell::new(ptr::null_mut()),
                bound: Cell::new(false),
                thread: Cell::new(0),
                unkillable: Cell::new(false),
                last_context: Cell::new(None),
                home: Cell::new(false),
            },
        }
    }

    fn finished(&self) -> bool {
        self.slot.bound.get() && self.slot.tealet.get().is_null()
    }

    fn foreign(&self) -> bool {
        self.slot.bound.get() && self.slot.thread.get() != thread_serial()
    }

    /// `__init__`: binds to a new tealet that will call `callable(self, *args[skip..], **kwds)`
    /// (without `self` if the class sets `pass_continulet` false).
    /// Drops what it made on failure without pyo3 being attached (called from `continulet_init`).
    fn bind(slf: &Bound<'_, Self>, callable: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, skip: usize, kwds: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        // The flags first: their truth may run code, which may bind this continulet.
        let (detach, pass_self) = if slf.is_exact_instance_of::<Continulet>() {
            (false, true)
        } else {
            (type_flag(slf, intern!(py, "detach_frames"), FLAG_DETACH_FRAMES)?,
             type_flag(slf, intern!(py, "pass_continulet"), FLAG_PASS_CONTINULET)?)
        };
        if me.slot.bound.get() {
            return Err(error::new_err("continulet already __init__ialized"));
        }
        main_tealet()?;
        if STRAY_COUNT.load(Ordering::Relaxed) != 0 {
            free_strays();
        }
        let data = new_cont(py, Some(Call::new(pass_self.then_some(slf), callable, args, skip, kwds)?))?;
        // SAFETY: data is a fresh Cont, ours until the tealet takes it.
        if unsafe { tpy_reserve((*data).state) } < 0 {
            let err = PyErr::fetch(py);
            // SAFETY: as above.
            unsafe { Box::from_raw(data).release(py) };
            return Err(err);
        }
        // SAFETY: data is a fresh Cont; the tealet takes it as its data.
        unsafe {
            (*data).owner = Some(slf.clone().unbind());
            if detach {
                tpy_set_detached((*data).state);
            }
        }
        let cfg = tc::tealet_config_t { stack_size: 0, policy: tc::TEALET_STACK_SHARED };
        let mut t = ptr::null_mut();
        // SAFETY: run is our entry; data outlives the tealet (freed when it is reaped or killed).
        let rc = unsafe { tc::tealet_create(Some(run), data.cast(), &cfg, &mut t) };
        if rc != tc::TEALET_OK {
            // SAFETY: the tealet was not created; data is still ours.
            unsafe { Box::from_raw(data).release(py) };
            return Err(core_error(rc));
        }
        // SAFETY: t is the new tealet.
        unsafe {
            tc::tealet_set_data(t, data.cast());
            (*data).tealet = t;
        }
        // SAFETY: the caller holds `slf` besides these references (see `Slot::home`).
        unsafe {
            for p in (*data).self_refs() {
                ffi::Py_DECREF(p);
            }
        }
        me.slot.home.set(true);
        me.slot.tealet.set(t);
        me.slot.bound.set(true);
        me.slot.thread.set(thread_serial());
        Ok(())
    }

    /// switch/throw carrying `payload` (see `route`).
    fn exchange(py: Python<'_>, cont: &Continulet, to: Option<&Continulet>, payload: Payload, switch_args: *const c_void) -> PyResult<Py<PyAny>> {
        match route(cont, to)? {
            Route::Here => payload.deliver(),
            Route::To(current, target) => transfer(py, cont, to, current, target, payload, switch_args),
        }
    }

    /// The tealet held here if it belongs to a thread that exited and is not its (freed) main
    /// tealet: it can never run again.
    fn orphaned(&self) -> Option<*mut tc::tealet_t> {
        let t = self.slot.tealet.get();
        if t.is_null() || !self.foreign() {
            return None;
        }
        let threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        match threads.get(&self.slot.thread.get()) {
            Some(&(main, false)) if main != t as usize => Some(t),
            _ => None,
        }
    }

    /// Frees a continuation of a thread that exited, dropping what its frames own without
    /// running them (greenlet does the same); left leaked if that cannot be done safely.
    fn free_orphan(&self, py: Python<'_>) {
        let Some(t) = self.orphaned() else { return };
        let data = cont_of(t);
        // SAFETY: a tealet record of a dead thread (never the main one) with its Cont; nothing
        // can run it any more, so its state is ours to release.
        unsafe {
            if tc::tealet_status(t) == tc::TEALET_STATUS_SUSPENDED && tpy_abandon((*data).state) < 0 {
                return;
            }
            self.slot.tealet.set(ptr::null_mut());
            if self.slot.home.replace(false) {
                (*data).forget_self_refs();
            }
            // Fails (TEALET_ERR_THREAD) while the OS thread still winds down: the record waits
            // with the strays then, and nothing reads its data again.
            if tc::tealet_free(t) != tc::TEALET_OK {
                add_stray(self.slot.thread.get(), t);
            }
            Box::from_raw(data).release(py);
        }
    }

    /// Frees the never-started tealet at home here when this continulet goes in another thread
    /// than its own, which lives: the core frees a tealet only in its thread (or once that
    /// exited), so the record waits in `STRAYS`; its Cont, with the call, goes now.
    fn free_stray(&self, py: Python<'_>) {
        let t = self.slot.tealet.get();
        if !self.slot.home.replace(false) {
            return;
        }
        self.slot.tealet.set(ptr::null_mut());
        add_stray(self.slot.thread.get(), t);
        // SAFETY: a never-started tealet, at home here: nothing else refers to its Cont, which
        // its thread never reads again (the record is only freed).
        unsafe {
            let mut data = Box::from_raw(cont_of(t));
            data.forget_self_refs();
            data.release(py);
        }
    }

    /// `kill` during a garbage collection: keeps this continulet (resurrected, as a finalizer
    /// may) for `run_deferred`, once the collection is over, with what it holds untouched: a
    /// pending continuation's end goes to the continulet of its callable, which may be garbage
    /// of the same cycle. A continulet being deallocated never gets here: one that holds a
    /// continuation to unwind is referenced by its own tealet.
    fn defer_kill(&self, py: Python<'_>) {
        let offset = *VALUE_OFFSET.get().expect("measured at module init");
        // SAFETY: self lives inside its object at `offset` (see `continulet_new`).
        let obj = unsafe { (self as *const Self).cast::<u8>().sub(offset) as *mut ffi::PyObject };
        // SAFETY: obj is this continulet's object, alive unless being deallocated.
        if unsafe { ffi::Py_REFCNT(obj) } == 0 {
            self.slot.unkillable.set(true);
            error::new_err("continulet freed during a garbage collection; what it holds is leaked").write_unraisable(py, None);
            return;
        }
        // SAFETY: a live object of the continulet type or a subclass.
        defer(Later::Kill(unsafe { Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<Continulet>().unbind() }));
    }

    /// Throws ContinuletExit into a pending continuation held here, so its finally blocks run
    /// (not during interpreter shutdown: then it is left as is).
    fn kill(&self, py: Python<'_>) {
        let t = self.slot.tealet.get();
        if t.is_null() || self.slot.unkillable.get() {
            return;
        }
        if self.foreign() {
            if self.orphaned().is_some() {
                self.free_orphan(py);
            } else {
                self.free_stray(py);
            }
            return;
        }
        // SAFETY: t is a live tealet of this thread.
        let status = unsafe { tc::tealet_status(t) };
        let main = MAIN.with(|m| m.get());
        if t == main || status == tc::TEALET_STATUS_RUNNING {
            return;
        }
        // Only its own never-started tealet goes without running: freeing another's would leave
        // this continulet finished while its own callable may still be suspended elsewhere,
        // with nowhere to return. Another's is thrown into, and finishes into its owner.
        // SAFETY: t is a live tealet of this thread, carrying its Cont.
        let own = unsafe { (*cont_of(t)).owner.as_ref() }.is_some_and(|o| ptr::eq(o.get(), self));
        if status == tc::TEALET_STATUS_NEW && own {
            self.slot.tealet.set(ptr::null_mut());
            // SAFETY: a never-started tealet has no stack contents to unwind.
            unsafe {
                let mut data = Box::from_raw(cont_of(t));
                if self.slot.home.replace(false) {
                    data.forget_self_refs();
                }
                tc::tealet_free(t);
                data.release(py);
            }
            return;
        }
        // SAFETY: reads a runtime flag.
        if unsafe { tpy_finalizing() } != 0 {
            // Interpreter shutdown: its modules are being torn down, so nothing runs any more
            // (greenlet does not kill its greenlets then either); what it holds is left as is.
            self.slot.unkillable.set(true);
            return;
        }
        if !switch_is_safe() {
            self.defer_kill(py);
            return;
        }
        let exit = Payload::throw(ContinuletExit::new_err(()));
        match Self::exchange(py, self, None, exit, ptr::null()) {
            Ok(_) => {}
            Err(e) if e.is_instance_of::<ContinuletExit>(py) => {}
            Err(e) => e.write_unraisable(py, None),
        }
        if !self.slot.tealet.get().is_null() {
            self.slot.unkillable.set(true);
            error::new_err("ContinuletExit did not finish the continulet; it is leaked").write_unraisable(py, None);
        }
    }
}

/// Builds the exception `throw(type, value, tb)` raises, normalised like PyPy's.
fn make_exception(typ: &Bound<'_, PyAny>, value: Option<&Bound<'_, PyAny>>, tb: Option<&Bound<'_, PyAny>>) -> PyResult<PyErr> {
    let exc = if typ.is_instance_of::<PyBaseException>() {
        if value.is_some_and(|v| !v.is_none()) {
            return Err(PyTypeError::new_err("instance exception may not have a separate value"));
        }
        typ.clone()
    } else if typ.cast::<PyType>().is_ok_and(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false)) {
        match value {
            None => typ.call0()?,
            Some(v) if v.is_none() => typ.call0()?,
            Some(v) if v.is_instance(typ)? => v.clone(),
            Some(v) => match v.cast::<PyTuple>() {
                Ok(args) => typ.call1(args.clone())?,
                Err(_) => typ.call1((v,))?,
            },
        }
    } else {
        let name = typ.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string());
        return Err(PyTypeError::new_err(format!("exceptions must derive from BaseException, not {name}")));
    };
    if let Some(tb) = tb.filter(|tb| !tb.is_none()) {
        if !tb.is_instance_of::<PyTraceback>() {
            return Err(PyTypeError::new_err("throw() third argument must be a traceback object"));
        }
        exc.call_method1("with_traceback", (tb,))?;
    }
    Ok(PyErr::from_value(exc))
}

#[pymethods]
impl Continulet {
    /// pyo3's constructor, which gives the type its `__new__`; it makes only the probe that
    /// `install_fast_new` measures, then `continulet_new` replaces it as the type's tp_new.
    #[new]
    #[pyo3(signature = (*_args, **_kwds))]
    fn new(_args: &Bound<'_, PyTuple>, _kwds: Option<&Bound<'_, PyDict>>) -> Self {
        Self::unbound()
    }

    #[pyo3(signature = (callable, *args, **kwds))]
    fn __init__(slf: &Bound<'_, Self>, callable: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, kwds: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        Self::bind(slf, callable, args, 0, kwds)
    }

    /// PyPy names the value `val`; `value` (keyword only) is accepted too.
    #[pyo3(signature = (r#type, val = None, tb = None, to = None, *, value = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        r#type: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
        to: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let val = match (val, value) {
            (Some(_), Some(_)) => return Err(PyTypeError::new_err("throw() got both 'val' and 'value'")),
            (v, w) => v.or(w),
        };
        let to = to.map(|t| t.cast::<Continulet>().map_err(|_| not_continulet(t))).transpose()?;
        let err = make_exception(r#type, val, tb)?;
        // pyo3 parsed the arguments: where they came from is not known (see `tpy_save`).
        Self::exchange(py, slf.get(), to.map(|t| t.get()), Payload::throw(err), THROW_ARGS)
    }

    /// Gives a subclass that inherits our `switch` a descriptor of its own type: CPython's
    /// specialised calls of method descriptors (3.11+) check the instance's exact type, so with
    /// the inherited one every `sub.switch(...)` took the generic call path. A subclass that
    /// overrides `switch` keeps its override (as do its own subclasses).
    /// A subclass whose `__del__` is `is_pending` (greenlet-py's continulets: they are killed by
    /// their greenlet, never by ContinuletExit) has a finalizer without any effect: it gets none,
    /// which spares every deallocation the finalizer's lookup and call. Assigning a `__del__`
    /// later makes CPython install its generic finalizer again.
    #[classmethod]
    fn __init_subclass__(cls: &Bound<'_, PyType>) -> PyResult<()> {
        let py = cls.py();
        if is_descriptor_of(&cls.getattr(intern!(py, "switch"))?, &SWITCH_DEF) {
            cls.setattr(intern!(py, "switch"), switch_descriptor(cls)?)?;
        }
        if is_descriptor_of(&cls.getattr(intern!(py, "__del__"))?, &IS_PENDING_DEF) {
            // SAFETY: type creation is over (__init_subclass__ runs last), no instance exists yet,
            // and a finalizer slot may be cleared on a heap type: the objects read it at death.
            unsafe {
                (*cls.as_type_ptr()).tp_finalize = None;
                ffi::PyType_Modified(cls.as_type_ptr());
            }
        }
        Ok(())
    }

    /// tealet extension: a subclass that sets this class attribute to True opts out of PyPy's
    /// frame linking (read at `__init__`): while its callable runs, the callable's bottom frame
    /// has `f_back` None instead of the top frame of the continuation the continulet holds (a
    /// greenlet's run frame).
    #[classattr]
    fn detach_frames() -> bool {
        false
    }

    /// tealet extension: a subclass that sets this class attribute to False has its callable
    /// called as `callable(*args, **kwds)`, without the continulet (read at `__init__`): a layer
    /// whose callable does not need it (a greenlet's run) spares the call that would drop it.
    #[classattr]
    fn pass_continulet() -> bool {
        true
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err("cannot pickle continulet objects: pickle what runs in them (stackless tasklets) through capture_frames/resume_frames"))
    }

    /// Finalizer a subclass's `__del__` can chain to: unwinds a pending continuation.
    fn __del__(slf: &Bound<'_, Self>) {
        slf.get().kill(slf.py());
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let last = self.slot.last_context.take();
        let seen = visit.call(&last);
        self.slot.last_context.set(last);
        seen?;
        let t = self.slot.tealet.get();
        let reachable = !self.foreign() || self.orphaned().is_some();
        if t.is_null() || !reachable || self.slot.unkillable.get() || MAIN.with(|m| m.get()) == t {
            return Ok(());
        }
        // SAFETY: t is a tealet of this thread; its Cont is alive while the tealet is.
        let data = unsafe { &*cont_of(t) };
        if unsafe {
            // SAFETY: as above.
            tc::tealet_status(t)
        } == tc::TEALET_STATUS_RUNNING
        {
            return Ok(());
        }
        // Uncounted references are not shown to the GC (see `Slot::home`).
        let home = self.slot.home.get();
        if let Some(c) = &data.call {
            visit.call(&c.callable)?;
            let uncounted = usize::from(home && c.with_self);
            for a in &c.args.as_slice()[uncounted..] {
                visit.call(a)?;
            }
            visit.call(&c.kwnames)?;
        }
        if !home {
            visit.call(&data.owner)?;
        }
        let mut v = Visiting { visit, failed: None };
        // SAFETY: tpy_traverse only visits references this suspended continuation owns.
        unsafe { tpy_traverse(data.state, visit_trampoline, (&mut v as *mut Visiting<'_>).cast()) };
        v.failed.map_or(Ok(()), Err)
    }

    fn __clear__(&self) {
        // SAFETY: called by the GC with the GIL held.
        let py = unsafe { Python::assume_attached() };
        drop(self.slot.last_context.take());
        self.kill(py);
    }
}

/// tp_finalize: unwinds a pending continuation held by a continulet that became garbage.
unsafe extern "C" fn continulet_finalize(obj: *mut ffi::PyObject) {
    let finalize = |py: Python<'_>| {
        // SAFETY: CPython calls tp_finalize on a live object, which outlives this call.
        let obj = unsafe { Bound::from_borrowed_ptr(py, obj) };
        let Ok(c) = obj.cast::<Continulet>() else { return };
        let saved = PyErr::take(py);
        c.get().kill(py);
        if let Some(e) = saved {
            e.restore(py);
        }
    };
    // SAFETY: Py_IsInitialized only reads a runtime flag; the GC runs with the GIL held.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        // attach (not assume_attached): the GC calls this outside any pyo3 frame, and pyo3 defers
        // the decrefs of an unattached thread, which would keep the garbage alive past this collection.
        Python::attach(finalize);
    } else {
        // The final collections of Py_FinalizeEx run after the runtime reports itself uninitialized
        // (3.12+), where attach would panic; deferred decrefs no longer matter then.
        // SAFETY: the GC calls tp_finalize with the GIL held.
        finalize(unsafe { Python::assume_attached() });
    }
}

/// The type's tp_init as pyo3 made it, kept by `install_fast_init`.
static PYO3_INIT: OnceLock<ffi::initproc> = OnceLock::new();

/// tp_init for `continulet(callable, *args, **kwds)` with a positional callable: binds without
/// pyo3's trampoline and argument parsing. Without one (callable by keyword, or missing, with
/// pyo3's errors) pyo3's.
unsafe extern "C" fn continulet_init(slf: *mut ffi::PyObject, args: *mut ffi::PyObject, kwds: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls tp_init (and the `__init__` descriptor its wrapped function) with the
    // GIL held, on an instance of the type or a subclass, with a tuple and a dict or NULL.
    unsafe {
        // No positional callable: pyo3 takes it by keyword or raises. With one, every keyword
        // goes on to the callable, `callable=` included (as PyPy).
        if ffi::PyTuple_GET_SIZE(args) == 0 {
            let init = PYO3_INIT.get().expect("installed with the type");
            return init(slf, args, kwds);
        }
        let py = Python::assume_attached();
        let args = Borrowed::from_ptr(py, args).cast_unchecked::<PyTuple>();
        let kwds = (!kwds.is_null() && ffi::PyDict_Size(kwds) != 0).then(|| Borrowed::from_ptr(py, kwds).cast_unchecked::<PyDict>());
        let slf = Borrowed::from_ptr(py, slf).cast_unchecked::<Continulet>();
        match Continulet::bind(&slf, &args.get_borrowed_item_unchecked(0), &args, 1, kwds.as_deref()) {
            Ok(()) => 0,
            Err(e) => {
                e.restore(py);
                -1
            }
        }
    }
}

/// Makes `continulet_init` the type's tp_init, and the function its `__init__` descriptor wraps:
/// subclasses take their tp_init from that descriptor, and explicit `continulet.__init__(...)`
/// calls go through it. Left as pyo3 made them if the descriptor is not the expected one.
fn install_fast_init(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<Continulet>();
    let descr = ty.getattr("__dict__")?.get_item("__init__")?;
    let tp = ty.as_type_ptr();
    let d = descr.as_ptr().cast::<ffi::PyWrapperDescrObject>();
    // SAFETY: reads the live type's slot, and the descriptor's fields once its type is checked.
    unsafe {
        let Some(init) = (*tp).tp_init else { return Ok(()) };
        if ffi::Py_TYPE(descr.as_ptr()) != &raw mut ffi::PyWrapperDescr_Type || (*d).d_wrapped != init as *mut c_void {
            return Ok(());
        }
        PYO3_INIT.get_or_init(|| init);
    }
    // SAFETY: module init runs once per process (pyo3), before any instance or subclass exists;
    // the descriptor is the type's own (kept alive by its dict); the type's caches are told.
    unsafe {
        (*d).d_wrapped = continulet_init as *mut c_void;
        (*tp).tp_init = Some(continulet_init);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

/// Where pyo3 keeps the `Continulet` inside a continulet object (of the type or a subclass),
/// measured on a probe instance by `install_fast_new`.
static VALUE_OFFSET: OnceLock<usize> = OnceLock::new();

/// tp_new for `continulet(*args, **kwds)` (and `__new__`, which calls the type's tp_new): the
/// arguments are for `__init__`; allocates an unbound continulet without pyo3's trampoline and
/// argument parsing.
unsafe extern "C" fn continulet_new(subtype: *mut ffi::PyTypeObject, _args: *mut ffi::PyObject, _kwds: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let offset = *VALUE_OFFSET.get().expect("measured before tp_new was installed");
    // SAFETY: CPython calls tp_new with the GIL held and the continulet type or a subclass, whose
    // instances lay out the Continulet at `offset` (pyo3's layout, base part first); tp_alloc
    // zeroes the object, which is how pyo3 initialises its other fields (no borrow flag for a
    // frozen class, no thread checker for a Sync one, a null weak reference list).
    unsafe {
        let alloc = (*subtype).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let obj = alloc(subtype, 0);
        if !obj.is_null() {
            obj.byte_add(offset).cast::<Continulet>().write(Continulet::unbound());
        }
        obj
    }
}

/// Makes `continulet_new` the type's tp_new, before any subclass inherits it (`__new__` calls
/// the type's tp_new too).
fn install_fast_new(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<Continulet>();
    let probe = ty.call_method1("__new__", (&ty,))?.cast_into::<Continulet>()?;
    let offset = (probe.get() as *const Continulet as usize) - (probe.as_ptr() as usize);
    drop(probe);
    VALUE_OFFSET.get_or_init(|| offset);
    let tp = ty.as_type_ptr();
    // SAFETY: module init runs once per process, before any subclass exists; the type's caches
    // are told (PyType_Modified).
    unsafe {
        (*tp).tp_new = Some(continulet_new);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

/// Lets the C traversal call pyo3's visitor and keep its error.
struct Visiting<'a> {
    visit: PyVisit<'a>,
    failed: Option<PyTraverseError>,
}

unsafe extern "C" fn visit_trampoline(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Visiting of __traverse__; obj is a live object pointer, viewed as a
    // borrowed Py<PyAny> (same representation) without touching its refcount.
    unsafe {
        let v = &mut *arg.cast::<Visiting<'_>>();
        let obj = &*(&obj as *const *mut ffi::PyObject).cast::<Py<PyAny>>();
        match v.visit.call(obj) {
            Ok(()) => 0,
            Err(e) => {
                v.failed = Some(e);
                1
            }
        }
    }
}

impl Drop for Continulet {
    fn drop(&mut self) {
        let t = self.slot.tealet.get();
        if t.is_null() {
            return;
        }
        // SAFETY: objects are deallocated with the GIL held.
        let py = unsafe { Python::assume_attached() };
        self.kill(py);
    }
}

fn check_permutable(c: &Continulet) -> PyResult<bool> {
    if !c.slot.bound.get() {
        return Ok(false);
    }
    if c.finished() {
        return Err(error::new_err("got an already-finished continulet"));
    }
    if c.foreign() {
        return Err(error::new_err("inter-thread support is missing"));
    }
    Ok(true)
}

/// permute(*continulets): the last one's continuation goes to the first, the first's to the second, ...
#[pyfunction]
#[pyo3(signature = (*continulets))]
fn permute(continulets: &Bound<'_, PyTuple>) -> PyResult<()> {
    let mut bound = Vec::new();
    for c in continulets.iter() {
        let c = c.cast_into::<Continulet>().map_err(|e| not_continulet(&e.into_inner()))?;
        if check_permutable(c.get())? {
            bound.push(c);
        }
    }
    if let Some(last) = bound.last() {
        let mut carry = last.get().slot.tealet.get();
        for c in &bound {
            let c = c.get();
            carry = c.slot.tealet.replace(carry);
            if c.slot.home.get() {
                leave_home(c, carry);
            }
        }
    }
    Ok(())
}

/// Holds `cont`'s suspended state (the running one when `cont` is None or not pending).
fn state_of(cont: Option<&Continulet>) -> Option<*mut TpyState> {
    let c = cont?;
    let t = c.slot.tealet.get();
    if t.is_null() || c.foreign() {
        return None;
    }
    // SAFETY: t is a tealet of this thread carrying a Cont.
    Some(unsafe { (*cont_of(t)).state })
}

/// The state of a continuation suspended in `cont` (not running, not finished, this thread).
pub(crate) fn suspended_state(cont: &Continulet) -> Option<*mut TpyState> {
    let t = cont.slot.tealet.get();
    // SAFETY: t is checked non-null and of this thread before the core reads its status.
    if t.is_null() || cont.foreign() || unsafe { tc::tealet_status(t) } != tc::TEALET_STATUS_SUSPENDED {
        return None;
    }
    state_of(Some(cont))
}

/// Runs `f` with the state of the continuation stored in `cont` (None if it holds none: unbound
/// or finished), from any thread: another thread's continuation is read while it is suspended,
/// under the THREADS lock, which keeps that thread from freeing its main tealet meanwhile.
fn with_state<R>(cont: &Continulet, f: impl FnOnce(Option<*mut TpyState>) -> R) -> PyResult<R> {
    let t = cont.slot.tealet.get();
    if t.is_null() || !cont.foreign() {
        return Ok(f(state_of(Some(cont))));
    }
    let threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let (main, alive) = threads.get(&cont.slot.thread.get()).copied().unwrap_or((0, false));
    if !alive && t as usize == main {
        return Ok(f(None)); // freed with its thread
    }
    // SAFETY: a tealet of a live thread, or not the main one of a dead thread (those records stay
    // until freed here); the GIL keeps its thread from switching while we hold it.
    if unsafe { tc::tealet_status(t) } == tc::TEALET_STATUS_RUNNING {
        return Err(usage_error("continulet is running in a different thread"));
    }
    // SAFETY: as above; its Cont lives as long as the tealet.
    Ok(f(Some(unsafe { (*cont_of(t)).state })))
}

/// get_frame(cont): the top frame of the continuation stored in `cont`, or None.
#[pyfunction]
fn get_frame(py: Python<'_>, cont: &Bound<'_, Continulet>) -> PyResult<Py<PyAny>> {
    with_state(cont.get(), |s| match s {
        // SAFETY: tpy_top_frame returns a new reference (None when it has no frame); the frames
        // of a suspended continuation live on the heap, whichever thread it belongs to.
        Some(s) => unsafe { Bound::from_owned_ptr(py, tpy_top_frame(s)).unbind() },
        None => py.None(),
    })
}

/// get_context(cont=None): the contextvars.Context the continuation resumes with (None if unset).
/// A finished continulet reports the context its callable ended in; an unbound one None.
#[pyfunction]
#[pyo3(signature = (cont = None))]
fn get_context(py: Python<'_>, cont: Option<&Bound<'_, Continulet>>) -> PyResult<Py<PyAny>> {
    let ctx = match cont {
        // SAFETY: a borrowed pointer (NULL while the thread has no context yet).
        None => unsafe { tpy_get_current_context() },
        Some(c) if c.get().finished() => {
            let last = c.get().slot.last_context.take();
            let ctx = last.as_ref().map_or_else(|| py.None(), |l| l.clone_ref(py));
            c.get().slot.last_context.set(last);
            return Ok(ctx);
        }
        // SAFETY: a borrowed pointer owned by the suspended state.
        Some(c) => with_state(c.get(), |s| s.map_or(ptr::null_mut(), |s| unsafe { tpy_get_context(s) }))?,
    };
    // SAFETY: ctx is NULL or a live borrowed object.
    Ok(unsafe { Bound::from_borrowed_ptr_or_opt(py, ctx) }.map_or_else(|| py.None(), |b| b.unbind()))
}

/// set_context(ctx, cont=None): replace the context that continuation resumes with.
#[pyfunction]
#[pyo3(signature = (ctx, cont = None))]
fn set_context(ctx: &Bound<'_, PyAny>, cont: Option<&Bound<'_, Continulet>>) -> PyResult<()> {
    let raw = if ctx.is_none() { ptr::null_mut() } else { ctx.as_ptr() };
    // SAFETY: checked type: contextvars.Context or None.
    if !raw.is_null() && unsafe { ffi::PyContext_CheckExact(raw) } == 0 {
        return Err(PyTypeError::new_err("set_context() expects a contextvars.Context or None"));
    }
    match cont {
        // SAFETY: tpy_set_current_context takes its own reference.
        None => unsafe { tpy_set_current_context(raw) },
        Some(c) if !c.get().slot.bound.get() => return Err(error::new_err("continulet is not bound")),
        Some(c) if c.get().finished() => return Err(error::new_err("continulet already finished")),
        Some(c) => {
            // SAFETY: tpy_set_context takes its own reference.
            let set = with_state(c.get(), |s| s.map(|s| unsafe { tpy_set_context(s, raw) }))?;
            if set.is_none() {
                return Err(error::new_err("continulet of a thread that exited"));
            }
        }
    }
    Ok(())
}

/// `bytes(t)` for the tealet stored in `cont`; 0 without one: unbound, the main tealet of an exited
/// thread (freed with it), or running in another thread (nothing suspended).
fn stack_bytes(cont: &Continulet, bytes: unsafe extern "C" fn(*const tc::tealet_t) -> usize) -> usize {
    let t = cont.slot.tealet.get();
    // SAFETY: with a state, t is a live tealet record (the core gives 0 for an exited thread's).
    with_state(cont, |s| s.map_or(0, |_| unsafe { bytes(t) })).unwrap_or(0)
}

/// stack_saved(cont): bytes of that continuation's C stack held on the heap.
#[pyfunction]
fn stack_saved(cont: &Bound<'_, Continulet>) -> usize {
    stack_bytes(cont.get(), tc::tealet_stack_saved)
}

/// stack_used(cont): bytes of C stack the continuation suspended in `cont` needs to resume,
/// wherever they are kept: in place in its stack region or copied to the heap.
#[pyfunction]
fn stack_used(cont: &Bound<'_, Continulet>) -> usize {
    stack_bytes(cont.get(), tc::tealet_stack_used)
}

/// get_tstate_trash_delete_nesting(): the running thread's trash can nesting level (CPython
/// 3.9-3.12; 3.13 has no such counter: NotImplementedError), as greenlet's test helper.
#[pyfunction]
fn get_tstate_trash_delete_nesting() -> PyResult<c_int> {
    // SAFETY: called with the GIL held (a pyfunction), so the thread state is attached.
    match unsafe { tpy_trash_delete_nesting() } {
        n if n >= 0 => Ok(n),
        _ => Err(PyNotImplementedError::new_err(
            "get_tstate_trash_delete_nesting: CPython 3.13 has no trash delete nesting counter",
        )),
    }
}

/// _stack_depths(code): [(index, opcode, oparg, depth)] for every reachable instruction, from the
/// static analysis the GC (and pickling) rely on; private, for checking it against `dis`.
#[pyfunction]
fn _stack_depths(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Vec<(i32, i32, i32, i32)>> {
    // SAFETY: a type check on a live object.
    if unsafe { ffi::PyCode_Check(code.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err("_stack_depths() expects a code object"));
    }
    let _ = py;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut ins = TsdInstr { index: 0, opcode: 0, oparg: 0, depth: 0 };
        // SAFETY: code is a live code object; tsd_instruction only reads it (and caches its table).
        if unsafe { tsd_instruction(code.as_ptr(), i, &mut ins) } < 0 {
            // unreachable units and the end both stop here: skip ahead until past the end
            if unsafe { tsd_code_units(code.as_ptr()) } <= i {
                break;
            }
            i += 1;
            continue;
        }
        if out.last().map_or(true, |l: &(i32, i32, i32, i32)| l.0 != ins.index) {
            out.push((ins.index, ins.opcode, ins.oparg, ins.depth));
        }
        i = ins.index + 1;
    }
    Ok(out)
}

/// Bound and not finished.
fn pending(c: &Continulet) -> bool {
    c.slot.bound.get() && !c.slot.tealet.get().is_null()
}

/// Whether `obj` is a pending continulet (for `pending_finalizer`).
///
/// # Safety
/// GIL held; `obj` is a live object.
pub(crate) unsafe fn is_pending(py: Python<'_>, obj: *mut ffi::PyObject) -> bool {
    // SAFETY: the caller's promise.
    let obj = unsafe { Borrowed::from_ptr(py, obj) };
    obj.cast::<Continulet>().is_ok_and(|c| pending(c.get()))
}

/// `continulet.is_pending()`: bound and not finished. A raw METH_NOARGS C function, not a pyo3
/// method: greenlet-py makes it the `__del__` of its continulets, called on every deallocation.
unsafe extern "C" fn is_pending_method(slf: *mut ffi::PyObject, _noargs: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: the method descriptor checked that slf is a continulet; called with the GIL held.
    let is = unsafe {
        let py = Python::assume_attached();
        pending(Borrowed::from_ptr(py, slf).cast_unchecked::<Continulet>().get())
    };
    // SAFETY: True and False are live static objects; a new reference is returned.
    unsafe {
        let b = if is { ffi::Py_True() } else { ffi::Py_False() };
        ffi::Py_INCREF(b);
        b
    }
}

/// The definition of `switch_method`, shared by the `switch` descriptors of the type and of
/// its subclasses (see `__init_subclass__`).
static SWITCH_DEF: AtomicPtr<ffi::PyMethodDef> = AtomicPtr::new(ptr::null_mut());
/// The definition of `is_pending_method`, recognised as a subclass's `__del__`.
static IS_PENDING_DEF: AtomicPtr<ffi::PyMethodDef> = AtomicPtr::new(ptr::null_mut());

/// Puts `switch_method` and `is_pending_method` in the continulet type as its `switch` and
/// `is_pending` method descriptors.
fn add_raw_methods(py: Python<'_>) -> PyResult<()> {
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"switch".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: switch_method },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"switch($self, value=None, to=None)\n--\n\nExchange the current continuation with the one stored here and resume it.".as_ptr(),
    }));
    SWITCH_DEF.store(def, Ordering::Release);
    let ty = py.get_type::<Continulet>();
    add_method(&ty, def)?;
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"is_pending".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: is_pending_method },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"is_pending($self, /)\n--\n\nWhether the continulet is bound and not finished.".as_ptr(),
    }));
    IS_PENDING_DEF.store(def, Ordering::Release);
    add_method(&ty, def)
}

/// Puts a method descriptor for `def` (leaked: it outlives the type) in the continulet type.
fn add_method(ty: &Bound<'_, PyType>, def: &'static mut ffi::PyMethodDef) -> PyResult<()> {
    let py = ty.py();
    // SAFETY: def outlives the type; the type object is live.
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))? };
    // SAFETY: a heap type's dict may be extended before any instance exists, then the type's
    // method caches are told (PyType_Modified).
    unsafe {
        if ffi::PyDict_SetItem((*ty.as_type_ptr()).tp_dict, (*descr.as_ptr().cast::<ffi::PyDescrObject>()).d_name, descr.as_ptr()) < 0 {
            return Err(PyErr::fetch(py));
        }
        ffi::PyType_Modified(ty.as_type_ptr());
    }
    Ok(())
}

/// A `switch` method descriptor for `ty` (the continulet type or a subclass).
fn switch_descriptor<'py>(ty: &Bound<'py, PyType>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: SWITCH_DEF is leaked, so it outlives every type; the type object is live.
    unsafe { Bound::from_owned_ptr_or_err(ty.py(), ffi::PyDescr_NewMethod(ty.as_type_ptr(), SWITCH_DEF.load(Ordering::Acquire))) }
}

/// Whether `o` is a method descriptor of ours for `def` (`switch` or `is_pending`).
fn is_descriptor_of(o: &Bound<'_, PyAny>, def: &AtomicPtr<ffi::PyMethodDef>) -> bool {
    // SAFETY: the descriptor's fields are read once its type is checked.
    unsafe {
        ffi::Py_TYPE(o.as_ptr()) == &raw mut ffi::PyMethodDescr_Type
            && (*o.as_ptr().cast::<ffi::PyMethodDescrObject>()).d_method == def.load(Ordering::Acquire)
    }
}

#[pymodule]
fn _continuation(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // pyo3 checks once that the interpreter is initialized, at the first attach from a detached
    // state (as when it normalizes an error). During shutdown CPython no longer says so and the
    // check panics; this makes it now (the interpreter runs, so it initializes nothing).
    Python::initialize();
    m.add_class::<Continulet>()?;
    // SAFETY: the type object was just created and no instance or subclass exists yet; a heap
    // type's slots may be filled in before use. The GC calls tp_finalize on garbage before it
    // clears anything (PEP 442), so ContinuletExit unwinds frames whose objects are intact.
    unsafe { (*py.get_type::<Continulet>().as_type_ptr()).tp_finalize = Some(continulet_finalize) };
    install_fast_init(py)?;
    install_fast_new(py)?;
    add_raw_methods(py)?;
    // The GC recognises a suspended top frame's call to these (csrc/pystate.c); the references
    // are kept for the life of the process.
    let methods = py.get_type::<Continulet>().getattr("__dict__")?;
    let (sw, th) = (methods.get_item("switch")?, methods.get_item("throw")?);
    // SAFETY: both are method descriptors of the type, kept alive by the references leaked here.
    unsafe { tpy_set_switch_methods(sw.into_ptr(), th.into_ptr()) };
    m.add("error", py.get_type::<error>())?;
    m.add("ContinuletExit", py.get_type::<ContinuletExit>())?;
    m.add_function(wrap_pyfunction!(permute, m)?)?;
    m.add_function(wrap_pyfunction!(get_frame, m)?)?;
    m.add_function(wrap_pyfunction!(get_context, m)?)?;
    m.add_function(wrap_pyfunction!(set_context, m)?)?;
    m.add_function(wrap_pyfunction!(stack_saved, m)?)?;
    m.add_function(wrap_pyfunction!(stack_used, m)?)?;
    m.add_function(wrap_pyfunction!(get_tstate_trash_delete_nesting, m)?)?;
    finalizer::register(m)?;
    frames::register(m)?;
    hidden::register(m)?;
    m.add_function(wrap_pyfunction!(_stack_depths, m)?)?;
    m.add_function(wrap_pyfunction!(call_when_switchable, m)?)?;
    // SAFETY: reads the address of an interpreter field; the GIL is held.
    GC_COLLECTING.store(unsafe { tpy_gc_collecting_flag() }.cast_mut(), Ordering::Relaxed);
    let callbacks = py.import("gc")?.getattr("callbacks")?.cast_into::<PyList>()?;
    let callback = wrap_pyfunction!(_gc_callback, m)?.into_any();
    callbacks.append(&callback)?;
    let _ = GC_CALLBACK.set((callbacks.unbind(), callback.unbind()));
    // SAFETY: the type is complete (every slot and method above is in place); the GIL is held.
    unsafe { tpy_make_immutable(py.get_type::<Continulet>().as_type_ptr()) };
    Ok(())
}
