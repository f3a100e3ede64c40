//! aarch64 AAPCS64: x19-x30, sp (the context itself) and d8-d15. `bti c` at every entry,
//! resume with `ret` so it works where BTI is enforced.
use core::arch::naked_asm;

use crate::{EntryFn, RestoreFn, SaveFn};

/// Bytes `switch` stores: x19-x30 (96) and d8-d15 (64).
pub const FRAME_SIZE: usize = 160;

/// Store the frame `init_stack` lays out (x19-x30, then d8-d15) with its unwind info;
/// `switch` and `jump` share it.
macro_rules! save_frame {
    () => {
        concat!(
            "sub sp, sp, #160\n",
            ".cfi_def_cfa_offset 160\n",
            "stp x19, x20, [sp, #0]\n",
            "stp x21, x22, [sp, #16]\n",
            "stp x23, x24, [sp, #32]\n",
            "stp x25, x26, [sp, #48]\n",
            "stp x27, x28, [sp, #64]\n",
            "stp x29, x30, [sp, #80]\n",
            "stp d8, d9, [sp, #96]\n",
            "stp d10, d11, [sp, #112]\n",
            "stp d12, d13, [sp, #128]\n",
            "stp d14, d15, [sp, #144]\n",
            ".cfi_offset x19, -160\n",
            ".cfi_offset x20, -152\n",
            ".cfi_offset x21, -144\n",
            ".cfi_offset x22, -136\n",
            ".cfi_offset x23, -128\n",
            ".cfi_offset x24, -120\n",
            ".cfi_offset x25, -112\n",
            ".cfi_offset x26, -104\n",
            ".cfi_offset x27, -96\n",
            ".cfi_offset x28, -88\n",
            ".cfi_offset x29, -80\n",
            ".cfi_offset x30, -72\n",
            ".cfi_offset d8, -64\n",
            ".cfi_offset d9, -56\n",
            ".cfi_offset d10, -48\n",
            ".cfi_offset d11, -40\n",
            ".cfi_offset d12, -32\n",
            ".cfi_offset d13, -24\n",
            ".cfi_offset d14, -16\n",
            ".cfi_offset d15, -8\n",
        )
    };
}

/// Load the frame `save_frame!` stored and pop it.
macro_rules! restore_frame {
    () => {
        concat!(
            "ldp d14, d15, [sp, #144]\n",
            "ldp d12, d13, [sp, #128]\n",
            "ldp d10, d11, [sp, #112]\n",
            "ldp d8, d9, [sp, #96]\n",
            "ldp x29, x30, [sp, #80]\n",
            "ldp x27, x28, [sp, #64]\n",
            "ldp x25, x26, [sp, #48]\n",
            "ldp x23, x24, [sp, #32]\n",
            "ldp x21, x22, [sp, #16]\n",
            "ldp x19, x20, [sp, #0]\n",
            "add sp, sp, #160\n",
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
        "bti c",
        save_frame!(),
        // x19/x20 are saved above, so they carry restore and ctx across the stack change.
        "mov x19, x1",
        "mov x20, x2",
        "mov x3, x0",
        "mov x0, x2",
        "mov x1, sp",
        "blr x3",
        // From here on sp is in the target context, whose frame has the same layout.
        "mov sp, x0",
        "mov x1, x0",
        "mov x0, x20",
        "blr x19",
        restore_frame!(),
        "ret",
        ".cfi_endproc",
        // GNU property note: this object's code is BTI-compatible (every indirect-call target
        // starts with `bti c`; resumption uses `ret`). Without it the linker drops BTI for the
        // whole output, and `-z force-bti` warns. No PAC bit: nothing here signs return addresses.
        ".pushsection .note.gnu.property, \"a\"",
        ".balign 8",
        ".long 4",          // n_namesz
        ".long 16",         // n_descsz
        ".long 5",          // NT_GNU_PROPERTY_TYPE_0
        ".asciz \"GNU\"",
        ".long 0xc0000000", // GNU_PROPERTY_AARCH64_FEATURE_1_AND
        ".long 4",          // pr_datasz
        ".long 1",          // GNU_PROPERTY_AARCH64_FEATURE_1_BTI
        ".long 0",          // padding to 8
        ".popsection",
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
        "bti c",
        save_frame!(),
        "mov x9, sp",
        "str x9, [x1]",
        // From here on sp is in the target context, whose frame has the same layout.
        "mov sp, x2",
        "cbz x3, 2f",
        "str x0, [x3]",
        "2:",
        "mov x0, #0",
        restore_frame!(),
        "ret",
        ".cfi_endproc",
    )
}

/// First code of a fresh stack, reached by the first switch's `ret`: x19 = entry, x20 = arg,
/// x0 = the first switch's result
/// (`restore`'s, or 0 from `jump`). The undefined return address ends debugger
/// backtraces here.
///
/// # Safety
/// Never called: only the `ret` into a frame from `init_stack` may enter it.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_undefined x30",
        "bti c",
        "mov x1, x20",
        "blr x19",
        "brk #1",
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
    words[0] = entry as *const () as usize as u64; // x19
    words[1] = arg as u64; // x20
    words[10] = 0; // x29: ends frame-pointer chains
    words[11] = trampoline as *const () as usize as u64; // x30
    // SAFETY: the caller guarantees the frame's bytes are writable; `top` is 16-aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp, words.len()) };
    sp as *mut u8
}
