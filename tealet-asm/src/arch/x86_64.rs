//! x86_64 System V: rbx, rbp, r12-r15, the return address, MXCSR and the x87 control word.
//! `endbr64` at every entry.
use core::arch::naked_asm;

use crate::{EntryFn, RestoreFn, SaveFn};

/// Bytes `switch` pushes: MXCSR + x87 CW (8), six registers (48), return address (8).
pub const FRAME_SIZE: usize = 64;

/// Push the frame `init_stack` lays out (lowest first: MXCSR + x87 CW, r15 … rbp) with its
/// unwind info; `switch` and `jump` share it.
macro_rules! save_frame {
    () => {
        concat!(
            "push rbp\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset rbp, 0\n",
            "push rbx\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset rbx, 0\n",
            "push r12\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset r12, 0\n",
            "push r13\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset r13, 0\n",
            "push r14\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset r14, 0\n",
            "push r15\n",
            ".cfi_adjust_cfa_offset 8\n",
            ".cfi_rel_offset r15, 0\n",
            "sub rsp, 8\n",
            ".cfi_adjust_cfa_offset 8\n",
            "stmxcsr [rsp]\n",
            "fnstcw [rsp + 4]\n",
        )
    };
}

/// Pop the frame `save_frame!` pushed, leaving rsp at the return address.
macro_rules! restore_frame {
    () => {
        concat!(
            "ldmxcsr [rsp]\n",
            "fldcw [rsp + 4]\n",
            "add rsp, 8\n",
            ".cfi_adjust_cfa_offset -8\n",
            "pop r15\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore r15\n",
            "pop r14\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore r14\n",
            "pop r13\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore r13\n",
            "pop r12\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore r12\n",
            "pop rbx\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore rbx\n",
            "pop rbp\n",
            ".cfi_adjust_cfa_offset -8\n",
            ".cfi_restore rbp\n",
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
        "endbr64",
        save_frame!(),
        // r12/r13 are saved above, so they carry restore and ctx across the stack change.
        "mov r12, rsi",
        "mov r13, rdx",
        "mov rax, rdi",
        "mov rdi, rdx",
        "mov rsi, rsp",
        "call rax",
        // From here on rsp is in the target context, whose frame has the same layout.
        "mov rsp, rax",
        "mov rdi, r13",
        "mov rsi, rax",
        "call r12",
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
        "endbr64",
        save_frame!(),
        "mov [rsi], rsp",
        // From here on rsp is in the target context, whose frame has the same layout.
        "mov rsp, rdx",
        "test rcx, rcx",
        "jz 2f",
        "mov [rcx], rdi",
        "2:",
        "xor eax, eax",
        restore_frame!(),
        // Resume with a jump: a `ret` here would always mispredict (the return stack holds
        // the caller of the context we left), and `tealet_switch` tail-calls us.
        "pop r11",
        ".cfi_adjust_cfa_offset -8",
        "jmp r11",
        ".cfi_endproc",
    )
}

/// First code of a fresh stack, reached by the first switch's `ret`: rbx = entry, r12 = arg,
/// rax = the first switch's result
/// (`restore`'s, or 0 from `jump`). The undefined return address ends debugger
/// backtraces here.
///
/// # Safety
/// Never called: only the `ret` into a frame from `init_stack` may enter it.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_undefined rip",
        "endbr64",
        "mov rdi, rax",
        "mov rsi, r12",
        "call rbx",
        "ud2",
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
    let fpenv = 0x1F80u64 | (0x037Fu64 << 32); // default MXCSR, default x87 control word
    let words: [u64; 8] = [
        fpenv,
        0,                           // r15
        0,                           // r14
        0,                           // r13
        arg as u64,                  // r12
        entry as *const () as usize as u64,       // rbx
        0,                           // rbp: ends frame-pointer chains
        trampoline as *const () as usize as u64,  // return address
    ];
    // SAFETY: the caller guarantees the frame's bytes are writable; `top` is 16-aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp, words.len()) };
    sp as *mut u8
}
