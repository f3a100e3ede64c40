//! riscv64 LP64D: ra, sp (the context itself), s0-s11 and fs0-fs11. gp and tp are untouched.
use core::arch::naked_asm;

use crate::{EntryFn, RestoreFn, SaveFn};

/// Bytes `switch` stores: ra and s0-s11 (104), fs0-fs11 (96), padded to 16.
pub const FRAME_SIZE: usize = 208;

/// Store the frame `init_stack` lays out (ra, s0-s11, then fs0-fs11) with its unwind info;
/// `switch` and `jump` share it.
macro_rules! save_frame {
    () => {
        concat!(
            "addi sp, sp, -208\n",
            ".cfi_def_cfa_offset 208\n",
            "sd ra, 0(sp)\n",
            "sd s0, 8(sp)\n",
            "sd s1, 16(sp)\n",
            "sd s2, 24(sp)\n",
            "sd s3, 32(sp)\n",
            "sd s4, 40(sp)\n",
            "sd s5, 48(sp)\n",
            "sd s6, 56(sp)\n",
            "sd s7, 64(sp)\n",
            "sd s8, 72(sp)\n",
            "sd s9, 80(sp)\n",
            "sd s10, 88(sp)\n",
            "sd s11, 96(sp)\n",
            "fsd fs0, 104(sp)\n",
            "fsd fs1, 112(sp)\n",
            "fsd fs2, 120(sp)\n",
            "fsd fs3, 128(sp)\n",
            "fsd fs4, 136(sp)\n",
            "fsd fs5, 144(sp)\n",
            "fsd fs6, 152(sp)\n",
            "fsd fs7, 160(sp)\n",
            "fsd fs8, 168(sp)\n",
            "fsd fs9, 176(sp)\n",
            "fsd fs10, 184(sp)\n",
            "fsd fs11, 192(sp)\n",
            ".cfi_offset ra, -208\n",
            ".cfi_offset s0, -200\n",
            ".cfi_offset s1, -192\n",
            ".cfi_offset s2, -184\n",
            ".cfi_offset s3, -176\n",
            ".cfi_offset s4, -168\n",
            ".cfi_offset s5, -160\n",
            ".cfi_offset s6, -152\n",
            ".cfi_offset s7, -144\n",
            ".cfi_offset s8, -136\n",
            ".cfi_offset s9, -128\n",
            ".cfi_offset s10, -120\n",
            ".cfi_offset s11, -112\n",
        )
    };
}

/// Load the frame `save_frame!` stored and pop it.
macro_rules! restore_frame {
    () => {
        concat!(
            "ld ra, 0(sp)\n",
            "ld s0, 8(sp)\n",
            "ld s1, 16(sp)\n",
            "ld s2, 24(sp)\n",
            "ld s3, 32(sp)\n",
            "ld s4, 40(sp)\n",
            "ld s5, 48(sp)\n",
            "ld s6, 56(sp)\n",
            "ld s7, 64(sp)\n",
            "ld s8, 72(sp)\n",
            "ld s9, 80(sp)\n",
            "ld s10, 88(sp)\n",
            "ld s11, 96(sp)\n",
            "fld fs0, 104(sp)\n",
            "fld fs1, 112(sp)\n",
            "fld fs2, 120(sp)\n",
            "fld fs3, 128(sp)\n",
            "fld fs4, 136(sp)\n",
            "fld fs5, 144(sp)\n",
            "fld fs6, 152(sp)\n",
            "fld fs7, 160(sp)\n",
            "fld fs8, 168(sp)\n",
            "fld fs9, 176(sp)\n",
            "fld fs10, 184(sp)\n",
            "fld fs11, 192(sp)\n",
            "addi sp, sp, 208\n",
            ".cfi_def_cfa_offset 0\n",
        )
    };
}

/// Switch stacks; see the crate docs.
///
/// # Safety
/// `save` must return a stack pointer produced by `switch` or `init_stack` whose context is not
/// running; both callbacks must not unwind.
#[unsafe(naked)]
pub unsafe extern "C" fn switch(save: SaveFn, restore: RestoreFn, ctx: *mut u8) -> *mut u8 {
    naked_asm!(
        ".cfi_startproc",
        save_frame!(),
        // s1/s2 are saved above, so they carry restore and ctx across the stack change.
        "mv s1, a1",
        "mv s2, a2",
        "mv t0, a0",
        "mv a0, a2",
        "mv a1, sp",
        "jalr t0",
        // From here on sp is in the target context, whose frame has the same layout.
        "mv sp, a0",
        "mv a1, a0",
        "mv a0, s2",
        "jalr s1",
        restore_frame!(),
        "ret",
        ".cfi_endproc",
    )
}

/// Switch stacks without callbacks; see the crate docs.
///
/// # Safety
/// `to` must be a stack pointer produced by `switch`, `jump` or `init_stack` whose context is
/// not running; `from` must be writable, and so must `out` (or null) in the resumed context.
#[unsafe(naked)]
pub unsafe extern "C" fn jump(value: *mut u8, from: *mut *mut u8, to: *mut u8, out: *mut *mut u8) -> i32 {
    naked_asm!(
        ".cfi_startproc",
        save_frame!(),
        "sd sp, 0(a1)",
        // From here on sp is in the target context, whose frame has the same layout.
        "mv sp, a2",
        "beqz a3, 2f",
        "sd a0, 0(a3)",
        "2:",
        "li a0, 0",
        restore_frame!(),
        "ret",
        ".cfi_endproc",
    )
}

/// First code of a fresh stack, reached by the first switch's `ret`: s1 = entry, s2 = arg,
/// a0 = the first switch's result
/// (`restore`'s, or 0 from `jump`). The undefined return address ends debugger
/// backtraces here.
///
/// # Safety
/// Never called: only the `ret` into a frame from `init_stack` may enter it.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_undefined ra",
        "mv a1, s2",
        "jalr s1",
        "unimp",
        ".cfi_endproc",
    )
}

/// Write the initial frame below `top` (16-byte aligned) and return the stack pointer to pass
/// back from a `save` callback.
///
/// # Safety
/// `[top - FRAME_SIZE, top)` must be writable memory of the stack being prepared.
pub unsafe fn init_stack(top: *mut u8, entry: EntryFn, arg: *mut u8) -> *mut u8 {
    let sp = top.wrapping_sub(FRAME_SIZE) as *mut u64;
    let mut words = [0u64; FRAME_SIZE / 8];
    words[0] = trampoline as *const () as usize as u64; // ra
    words[1] = 0; // s0: ends frame-pointer chains
    words[2] = entry as *const () as usize as u64; // s1
    words[3] = arg as u64; // s2
    // SAFETY: the caller guarantees the frame's bytes are writable; `top` is 16-aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp, words.len()) };
    sp as *mut u8
}
