//! The context switch and the entry of a fresh stack, per architecture. Nothing else.
//!
//! One primitive serves both stack policies (stackman style):
//! [`switch`]`(save, restore, ctx)` pushes the callee-saved state, calls `save(ctx, sp)` on the
//! current stack, moves the stack pointer to the value `save` returned, calls `restore(ctx, sp)`
//! on the target stack *below* that pointer (so `restore` may copy a saved-out stack back into
//! place above itself), pops the target's state and returns `restore`'s result in the target.
//!
//! [`init_stack`] writes the frame of a fresh stack so that the first switch to it "returns"
//! into an entry trampoline, which calls `entry(restore_result, arg)`; `entry` must never return.
#![no_std]

mod arch;

pub use arch::{init_stack, switch, FRAME_SIZE};

/// Runs on the old stack with its saved stack pointer; returns the stack pointer to resume.
pub type SaveFn = unsafe extern "C" fn(ctx: *mut u8, sp: *mut u8) -> *mut u8;
/// Runs on the new stack below `sp`; its result is what `switch` returns in the resumed context.
pub type RestoreFn = unsafe extern "C" fn(ctx: *mut u8, sp: *mut u8) -> *mut u8;
/// Called by the trampoline of a fresh stack with `restore`'s result and the `arg` of `init_stack`.
pub type EntryFn = unsafe extern "C" fn(value: *mut u8, arg: *mut u8) -> !;
