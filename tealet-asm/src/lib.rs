//! The context switch and the entry of a fresh stack, per architecture. Nothing else.
//!
//! The same two routines serve both stack policies (stackman style):
//! [`switch`]`(save, restore, ctx)` pushes the callee-saved state, calls `save(ctx, sp)` on the
//! current stack, moves the stack pointer to the value `save` returned, calls `restore(ctx, sp)`
//! on the target stack *below* that pointer (so `restore` may copy a saved-out stack back into
//! place above itself), pops the target's state and returns `restore`'s result in the target.
//!
//! [`jump`]`(value, from, to, out)` is the same switch without callbacks for when nothing has
//! to be copied: it stores the stack pointer to `*from`, resumes `to`, stores `value` to `*out`
//! there (unless `out` is null) and returns 0, so a C function can tail-call it and return its
//! status straight into the resumed caller. Both push the same frame, so a context saved by
//! either is resumed by either.
//!
//! [`init_stack`] writes the frame of a fresh stack so that the first switch to it "returns"
//! into an entry trampoline, which calls `entry(result, arg)` with the first switch's result;
//! `entry` must never return.
#![no_std]

mod arch;

pub use arch::{init_stack, jump, switch, FRAME_SIZE};

/// Runs on the old stack with its saved stack pointer; returns the stack pointer to resume.
pub type SaveFn = unsafe extern "C" fn(ctx: *mut u8, sp: *mut u8) -> *mut u8;
/// Runs on the new stack below `sp`; its result is what `switch` returns in the resumed context.
pub type RestoreFn = unsafe extern "C" fn(ctx: *mut u8, sp: *mut u8) -> *mut u8;
/// Called by the trampoline of a fresh stack with `restore`'s result and the `arg` of `init_stack`.
pub type EntryFn = unsafe extern "C" fn(value: *mut u8, arg: *mut u8) -> !;
