//! Process-wide arenas: big `MAP_NORESERVE` reservations carved into slots of one size, each
//! slot = guard page(s) + usable stack. Guards are `MADV_GUARD_INSTALL` markers (no extra
//! kernel mappings) where the kernel has them, else `mprotect` within a `vm.max_map_count` budget.
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{StackError, GUARD_SIZE};

const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Address space reserved per chunk.
const CHUNK_BYTES: usize = 1 << 30;

struct Class {
    slot: usize,
    /// Freed slots, guard installed.
    free: Vec<usize>,
    /// Freed slots whose mprotect guard was lent to another size class.
    unguarded: Vec<usize>,
    cursor: usize,
    end: usize,
}

static CLASSES: Mutex<Vec<Class>> = Mutex::new(Vec::new());
static GUARD_MODE: OnceLock<GuardMode> = OnceLock::new();
static MPROTECT_GUARDS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// CLASSES, held by the forking thread across a fork (see `AT_FORK`).
    static FORK_HOLD: Cell<Option<MutexGuard<'static, Vec<Class>>>> = const { Cell::new(None) };
}

/// A fork while another thread held CLASSES would leave it locked for good in the child, so the
/// forking thread takes it first and both sides release it afterwards. Registered as the library
/// loads: registering on first use left a window (a fork during it) where the child hung.
#[used]
#[link_section = ".init_array"]
static AT_FORK: extern "C" fn() = register_at_fork;

extern "C" fn register_at_fork() {
    extern "C" fn prepare() {
        FORK_HOLD.with(|h| h.set(Some(lock_classes())));
    }
    extern "C" fn release() {
        FORK_HOLD.with(|h| drop(h.take()));
    }
    // SAFETY: the handlers only lock and unlock CLASSES on the forking thread.
    unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
}

fn lock_classes() -> MutexGuard<'static, Vec<Class>> {
    CLASSES.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GuardMode {
    Madvise,
    /// mprotect guards, at most this many.
    Mprotect(usize),
}

/// The process's mappings: (`vm.max_map_count`, mappings in use).
fn map_counts() -> (usize, usize) {
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65530);
    let used = std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(0);
    (max, used)
}

fn max_map_budget() -> usize {
    let (max, used) = map_counts();
    // Each mprotect guard can split one mapping into three: two new VMAs. Use half the headroom.
    max.saturating_sub(used) / 4
}

/// Whether reading `page` faults, asked without faulting: write(2) from it gives EFAULT.
/// (Emulators such as qemu-user accept unknown madvise advice without doing anything.)
fn is_guarded(page: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: a private pipe, closed below; write(2) reports a bad buffer as EFAULT.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return false;
        }
        let n = libc::write(fds[1], page as *const _, 1);
        libc::close(fds[0]);
        libc::close(fds[1]);
        n < 0
    }
}

fn guard_mode(probe_at: usize) -> GuardMode {
    *GUARD_MODE.get_or_init(|| {
        // SAFETY: `probe_at` is the first page of a fresh private anonymous writable mapping.
        let r = unsafe { libc::madvise(probe_at as *mut _, GUARD_SIZE, MADV_GUARD_INSTALL) };
        if r == 0 && is_guarded(probe_at) {
            GuardMode::Madvise
        } else {
            GuardMode::Mprotect(max_map_budget())
        }
    })
}

fn reserve(len: usize) -> Result<usize, StackError> {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        // mmap says ENOMEM for both; a process at its mapping limit has memory to spare.
        let (max, used) = map_counts();
        return Err(if used + 1 >= max { StackError::Exhausted } else { StackError::NoMem });
    }
    // SAFETY: `p..p+len` is the mapping just created. Huge pages would make every touched
    // stack cost 2 MiB of RSS.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    Ok(p as usize)
}

/// Lift the guard of one freed slot of another size class so its mprotect budget can serve
/// `slot`; the lender re-guards that slot when it reuses it.
fn reclaim_guard(classes: &mut [Class], slot: usize) -> bool {
    for c in classes.iter_mut().filter(|c| c.slot != slot) {
        if let Some(base) = c.free.pop() {
            // SAFETY: a freed slot of ours that nobody runs on; its guard page becomes plain memory.
            if unsafe { libc::mprotect(base as *mut _, GUARD_SIZE, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
                c.free.push(base);
                return false;
            }
            MPROTECT_GUARDS.fetch_sub(1, Ordering::Relaxed);
            c.unguarded.push(base);
            return true;
        }
    }
    false
}

/// `install_guard`, lending guards from other size classes' freed slots when the budget is spent.
fn install_guard_reclaiming(classes: &mut [Class], base: usize, slot: usize) -> Result<(), StackError> {
    loop {
        match install_guard(base) {
            Err(StackError::Exhausted) if reclaim_guard(classes, slot) => continue,
            r => return r,
        }
    }
}

fn install_guard(base: usize) -> Result<(), StackError> {
    match guard_mode(base) {
        GuardMode::Madvise => {
            // SAFETY: `base` is the guard page of a slot we own.
            let r = unsafe { libc::madvise(base as *mut _, GUARD_SIZE, MADV_GUARD_INSTALL) };
            if r != 0 {
                return Err(StackError::NoMem);
            }
        }
        GuardMode::Mprotect(budget) => {
            if MPROTECT_GUARDS.fetch_add(1, Ordering::Relaxed) >= budget {
                MPROTECT_GUARDS.fetch_sub(1, Ordering::Relaxed);
                return Err(StackError::Exhausted);
            }
            // SAFETY: `base` is the guard page of a slot we own.
            let r = unsafe { libc::mprotect(base as *mut _, GUARD_SIZE, libc::PROT_NONE) };
            if r != 0 {
                MPROTECT_GUARDS.fetch_sub(1, Ordering::Relaxed);
                return Err(StackError::Exhausted);
            }
        }
    }
    Ok(())
}

/// A guarded slot of `slot` bytes (guard included); returns its lowest address.
pub(crate) fn alloc(slot: usize) -> Result<usize, StackError> {
    let mut classes = lock_classes();
    let idx = match classes.iter().position(|c| c.slot == slot) {
        Some(i) => i,
        None => {
            classes.push(Class { slot, free: Vec::new(), unguarded: Vec::new(), cursor: 0, end: 0 });
            classes.len() - 1
        }
    };
    if let Some(base) = classes[idx].free.pop() {
        return Ok(base);
    }
    if let Some(base) = classes[idx].unguarded.pop() {
        if let Err(e) = install_guard_reclaiming(&mut classes, base, slot) {
            classes[idx].unguarded.push(base);
            return Err(e);
        }
        return Ok(base);
    }
    let class = &mut classes[idx];
    if class.cursor + slot > class.end {
        // Under an address-space limit (ulimit -v) a chunk may not fit: then a few slots, or
        // one, leaving the rest of the headroom to other sizes.
        let chunk = CHUNK_BYTES.max(slot * 4) / slot * slot;
        let mut reserved = Err(StackError::NoMem);
        for len in [chunk, slot * 4, slot] {
            reserved = reserve(len).map(|start| (start, len));
            if reserved != Err(StackError::NoMem) {
                break;
            }
        }
        let (start, len) = reserved?;
        class.cursor = start;
        class.end = start + len;
    }
    let base = class.cursor;
    install_guard_reclaiming(&mut classes, base, slot)?;
    classes[idx].cursor += slot;
    #[cfg(feature = "valgrind")]
    crate::valgrind::register_stack(base + GUARD_SIZE, base + slot);
    Ok(base)
}

/// Give a slot back to every thread; its guard stays installed.
pub(crate) fn free(base: usize, slot: usize) {
    let mut classes = lock_classes();
    if let Some(c) = classes.iter_mut().find(|c| c.slot == slot) {
        // Out of memory, the slot stays reserved and unused: freeing must not abort.
        if c.free.try_reserve(1).is_ok() {
            c.free.push(base);
        }
    }
}

/// Drop the pages of `[base + GUARD_SIZE, base + slot)`; the guard survives.
pub(crate) fn trim(base: usize, slot: usize) {
    // SAFETY: the usable part of a slot we own and nobody runs on.
    unsafe { libc::madvise((base + GUARD_SIZE) as *mut _, slot - GUARD_SIZE, libc::MADV_DONTNEED) };
}
