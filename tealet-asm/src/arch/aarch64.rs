//! aarch64 AAPCS64: x19-x30, sp (the context itself) and d8-d15. `bti c` at every entry,
//! resume with `ret` so it works where BTI is enforced.
use core::arch::naked_asm;

use crate::{EntryFn, RestoreFn, SaveFn};

/// Bytes `switch` stores: x19-x30 (96) and d8-d15 (64).
pub const FRAME_SIZE: usize = 160;

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
        "sub sp, sp, #160",
        ".cfi_def_cfa_offset 160",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        ".cfi_offset x19, -160",
        ".cfi_offset x20, -152",
        ".cfi_offset x21, -144",
        ".cfi_offset x22, -136",
        ".cfi_offset x23, -128",
        ".cfi_offset x24, -120",
        ".cfi_offset x25, -112",
        ".cfi_offset x26, -104",
        ".cfi_offset x27, -96",
        ".cfi_offset x28, -88",
        ".cfi_offset x29, -80",
        ".cfi_offset x30, -72",
        ".cfi_offset d8, -64",
        ".cfi_offset d9, -56",
        ".cfi_offset d10, -48",
        ".cfi_offset d11, -40",
        ".cfi_offset d12, -32",
        ".cfi_offset d13, -24",
        ".cfi_offset d14, -16",
        ".cfi_offset d15, -8",
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
        "ldp d14, d15, [sp, #144]",
        "ldp d12, d13, [sp, #128]",
        "ldp d10, d11, [sp, #112]",
        "ldp d8, d9, [sp, #96]",
        "ldp x29, x30, [sp, #80]",
        "ldp x27, x28, [sp, #64]",
        "ldp x25, x26, [sp, #48]",
        "ldp x23, x24, [sp, #32]",
        "ldp x21, x22, [sp, #16]",
        "ldp x19, x20, [sp, #0]",
        "add sp, sp, #160",
        ".cfi_def_cfa_offset 0",
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
        "sub sp, sp, #160",
        ".cfi_def_cfa_offset 160",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        ".cfi_offset x19, -160",
        ".cfi_offset x20, -152",
        ".cfi_offset x21, -144",
        ".cfi_offset x22, -136",
        ".cfi_offset x23, -128",
        ".cfi_offset x24, -120",
        ".cfi_offset x25, -112",
        ".cfi_offset x26, -104",
        ".cfi_offset x27, -96",
        ".cfi_offset x28, -88",
        ".cfi_offset x29, -80",
        ".cfi_offset x30, -72",
        ".cfi_offset d8, -64",
        ".cfi_offset d9, -56",
        ".cfi_offset d10, -48",
        ".cfi_offset d11, -40",
        ".cfi_offset d12, -32",
        ".cfi_offset d13, -24",
        ".cfi_offset d14, -16",
        ".cfi_offset d15, -8",
        "mov x9, sp",
        "str x9, [x1]",
        // From here on sp is in the target context, whose frame has the same layout.
        "mov sp, x2",
        "cbz x3, 2f",
        "str x0, [x3]",
        "2:",
        "mov x0, #0",
        "ldp d14, d15, [sp, #144]",
        "ldp d12, d13, [sp, #128]",
        "ldp d10, d11, [sp, #112]",
        "ldp d8, d9, [sp, #96]",
        "ldp x29, x30, [sp, #80]",
        "ldp x27, x28, [sp, #64]",
        "ldp x25, x26, [sp, #48]",
        "ldp x23, x24, [sp, #32]",
        "ldp x21, x22, [sp, #16]",
        "ldp x19, x20, [sp, #0]",
        "add sp, sp, #160",
        ".cfi_def_cfa_offset 0",
        "ret",
        ".cfi_endproc",
    )
}

/// First code of a fresh stack, reached by the first switch's `ret`: x19 = entry, x20 = arg,
/// x0 = the first switch's result
/// (`restore`'s, or 0 from `jump`). The undefined return address ends debugger
/// backtraces here.
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
