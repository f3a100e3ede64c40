//! Stack memory. `arena` reserves address space and carves guarded slots, `pool` keeps a
//! thread's freed slots most-recently-used first, `shared` is the dense policy's regions.

pub(crate) mod arena;
pub(crate) mod pool;
pub(crate) mod shared;

/// Guard below every stack. Larger than a page because C code built without stack-clash
/// protection can move the stack pointer past one page in a single frame; the guard costs
/// address space only (a marker or one mprotect whatever its size).
pub(crate) const GUARD_SIZE: usize = 64 * 1024;
/// Default usable size of a dedicated stack (reserved, not resident).
pub(crate) const DEFAULT_DEDICATED: usize = 256 * 1024;
/// Default size of a shared region: CPython needs thread-default recursion depth.
pub(crate) const DEFAULT_SHARED: usize = 8 * 1024 * 1024;
/// Smallest stack we hand out: signal frames alone take several KiB with AVX-512.
pub(crate) const MIN_STACK: usize = 32 * 1024;
/// Largest stack size accepted: larger requests are bad input, not a shortage of memory (and
/// the slot arithmetic stays far from overflow).
pub(crate) const MAX_STACK: usize = 1 << 40;

pub(crate) fn page_round(n: usize) -> usize {
    (n + 4095) & !4095
}

/// An address in the calling function's frame: tells which stack the caller runs on.
#[inline(always)]
pub(crate) fn current_stack_address() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// Why a stack could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StackError {
    NoMem,
    Exhausted,
}
