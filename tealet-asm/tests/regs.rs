//! Register preservation: fill every callee-saved register with a pattern, switch to a fresh
//! stack whose code clobbers them all, switch back, and read them out.
use core::arch::naked_asm;

#[repr(C, align(16))]
struct Stack([u8; 64 * 1024]);

/// Both directions use one cell: `save` stores where we came from and resumes the other side.
struct Ctx {
    next: *mut u8,
}

unsafe extern "C" fn save(ctx: *mut u8, sp: *mut u8) -> *mut u8 {
    // SAFETY: `ctx` is the test's Ctx.
    unsafe {
        let c = &mut *(ctx as *mut Ctx);
        core::mem::replace(&mut c.next, sp)
    }
}

unsafe extern "C" fn restore(ctx: *mut u8, _sp: *mut u8) -> *mut u8 {
    ctx
}

unsafe extern "C" fn entry(ctx: *mut u8, _arg: *mut u8) -> ! {
    // SAFETY: switches back to the probe, which never resumes us.
    unsafe { clobber_and_switch(save, restore, ctx) };
    unreachable!()
}

#[cfg(target_arch = "x86_64")]
const EXPECTED: &[u64] = &[1229782938247303441u64, 2459565876494606882u64, 3689348814741910323u64, 4919131752989213764u64, 6148914691236517205u64, 7378697629483820646u64];
#[cfg(target_arch = "aarch64")]
const EXPECTED: &[u64] = &[19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 108, 109, 110, 111, 112, 113, 114, 115];
#[cfg(target_arch = "riscv64")]
const EXPECTED: &[u64] = &[100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211];

/// Loads the patterns, calls `switch(save, restore, ctx)`, stores the registers to `out`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn probe(_s: tealet_asm::SaveFn, _r: tealet_asm::RestoreFn, _c: *mut u8, _out: *mut u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rcx",
        "mov rbx, 1229782938247303441",
        "mov rbp, 2459565876494606882",
        "mov r12, 3689348814741910323",
        "mov r13, 4919131752989213764",
        "mov r14, 6148914691236517205",
        "mov r15, 7378697629483820646",
        "call {sw}",
        "mov rcx, [rsp]",
        "mov [rcx + 0], rbx",
        "mov [rcx + 8], rbp",
        "mov [rcx + 16], r12",
        "mov [rcx + 24], r13",
        "mov [rcx + 32], r14",
        "mov [rcx + 40], r15",
        "pop rcx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        sw = sym tealet_asm::switch,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn probe(_s: tealet_asm::SaveFn, _r: tealet_asm::RestoreFn, _c: *mut u8, _out: *mut u64) {
    naked_asm!(
        "sub sp, sp, #176",
        "stp x19, x20, [sp]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "str x3, [sp, #160]",
        "mov x19, #19",
        "mov x20, #20",
        "mov x21, #21",
        "mov x22, #22",
        "mov x23, #23",
        "mov x24, #24",
        "mov x25, #25",
        "mov x26, #26",
        "mov x27, #27",
        "mov x28, #28",
        "mov x29, #29",
        "mov x9, #108",
        "fmov d8, x9",
        "mov x9, #109",
        "fmov d9, x9",
        "mov x9, #110",
        "fmov d10, x9",
        "mov x9, #111",
        "fmov d11, x9",
        "mov x9, #112",
        "fmov d12, x9",
        "mov x9, #113",
        "fmov d13, x9",
        "mov x9, #114",
        "fmov d14, x9",
        "mov x9, #115",
        "fmov d15, x9",
        "bl {sw}",
        "ldr x3, [sp, #160]",
        "str x19, [x3, #0]",
        "str x20, [x3, #8]",
        "str x21, [x3, #16]",
        "str x22, [x3, #24]",
        "str x23, [x3, #32]",
        "str x24, [x3, #40]",
        "str x25, [x3, #48]",
        "str x26, [x3, #56]",
        "str x27, [x3, #64]",
        "str x28, [x3, #72]",
        "str x29, [x3, #80]",
        "str d8, [x3, #88]",
        "str d9, [x3, #96]",
        "str d10, [x3, #104]",
        "str d11, [x3, #112]",
        "str d12, [x3, #120]",
        "str d13, [x3, #128]",
        "str d14, [x3, #136]",
        "str d15, [x3, #144]",
        "ldp d14, d15, [sp, #144]",
        "ldp d12, d13, [sp, #128]",
        "ldp d10, d11, [sp, #112]",
        "ldp d8, d9, [sp, #96]",
        "ldp x29, x30, [sp, #80]",
        "ldp x27, x28, [sp, #64]",
        "ldp x25, x26, [sp, #48]",
        "ldp x23, x24, [sp, #32]",
        "ldp x21, x22, [sp, #16]",
        "ldp x19, x20, [sp]",
        "add sp, sp, #176",
        "ret",
        sw = sym tealet_asm::switch,
    )
}

#[cfg(target_arch = "riscv64")]
#[unsafe(naked)]
unsafe extern "C" fn probe(_s: tealet_asm::SaveFn, _r: tealet_asm::RestoreFn, _c: *mut u8, _out: *mut u64) {
    naked_asm!(
        "addi sp, sp, -224",
        "sd ra, 200(sp)",
        "sd a3, 208(sp)",
        "sd s0, 0(sp)",
        "sd s1, 8(sp)",
        "sd s2, 16(sp)",
        "sd s3, 24(sp)",
        "sd s4, 32(sp)",
        "sd s5, 40(sp)",
        "sd s6, 48(sp)",
        "sd s7, 56(sp)",
        "sd s8, 64(sp)",
        "sd s9, 72(sp)",
        "sd s10, 80(sp)",
        "sd s11, 88(sp)",
        "fsd fs0, 96(sp)",
        "fsd fs1, 104(sp)",
        "fsd fs2, 112(sp)",
        "fsd fs3, 120(sp)",
        "fsd fs4, 128(sp)",
        "fsd fs5, 136(sp)",
        "fsd fs6, 144(sp)",
        "fsd fs7, 152(sp)",
        "fsd fs8, 160(sp)",
        "fsd fs9, 168(sp)",
        "fsd fs10, 176(sp)",
        "fsd fs11, 184(sp)",
        "li s0, 100",
        "li s1, 101",
        "li s2, 102",
        "li s3, 103",
        "li s4, 104",
        "li s5, 105",
        "li s6, 106",
        "li s7, 107",
        "li s8, 108",
        "li s9, 109",
        "li s10, 110",
        "li s11, 111",
        "li t1, 200",
        "fmv.d.x fs0, t1",
        "li t1, 201",
        "fmv.d.x fs1, t1",
        "li t1, 202",
        "fmv.d.x fs2, t1",
        "li t1, 203",
        "fmv.d.x fs3, t1",
        "li t1, 204",
        "fmv.d.x fs4, t1",
        "li t1, 205",
        "fmv.d.x fs5, t1",
        "li t1, 206",
        "fmv.d.x fs6, t1",
        "li t1, 207",
        "fmv.d.x fs7, t1",
        "li t1, 208",
        "fmv.d.x fs8, t1",
        "li t1, 209",
        "fmv.d.x fs9, t1",
        "li t1, 210",
        "fmv.d.x fs10, t1",
        "li t1, 211",
        "fmv.d.x fs11, t1",
        "call {sw}",
        "ld a3, 208(sp)",
        "sd s0, 0(a3)",
        "sd s1, 8(a3)",
        "sd s2, 16(a3)",
        "sd s3, 24(a3)",
        "sd s4, 32(a3)",
        "sd s5, 40(a3)",
        "sd s6, 48(a3)",
        "sd s7, 56(a3)",
        "sd s8, 64(a3)",
        "sd s9, 72(a3)",
        "sd s10, 80(a3)",
        "sd s11, 88(a3)",
        "fsd fs0, 96(a3)",
        "fsd fs1, 104(a3)",
        "fsd fs2, 112(a3)",
        "fsd fs3, 120(a3)",
        "fsd fs4, 128(a3)",
        "fsd fs5, 136(a3)",
        "fsd fs6, 144(a3)",
        "fsd fs7, 152(a3)",
        "fsd fs8, 160(a3)",
        "fsd fs9, 168(a3)",
        "fsd fs10, 176(a3)",
        "fsd fs11, 184(a3)",
        "ld s0, 0(sp)",
        "ld s1, 8(sp)",
        "ld s2, 16(sp)",
        "ld s3, 24(sp)",
        "ld s4, 32(sp)",
        "ld s5, 40(sp)",
        "ld s6, 48(sp)",
        "ld s7, 56(sp)",
        "ld s8, 64(sp)",
        "ld s9, 72(sp)",
        "ld s10, 80(sp)",
        "ld s11, 88(sp)",
        "fld fs0, 96(sp)",
        "fld fs1, 104(sp)",
        "fld fs2, 112(sp)",
        "fld fs3, 120(sp)",
        "fld fs4, 128(sp)",
        "fld fs5, 136(sp)",
        "fld fs6, 144(sp)",
        "fld fs7, 152(sp)",
        "fld fs8, 160(sp)",
        "fld fs9, 168(sp)",
        "fld fs10, 176(sp)",
        "fld fs11, 184(sp)",
        "ld ra, 200(sp)",
        "addi sp, sp, 224",
        "ret",
        sw = sym tealet_asm::switch,
    )
}

// The clobber sequence: every callee-saved register set to garbage, then a tail call to `{sw}`.
#[cfg(target_arch = "x86_64")]
macro_rules! clobber_then {
    () => {
        concat!(
            "mov rbx, -1\n",
            "mov rbp, -1\n",
            "mov r12, -1\n",
            "mov r13, -1\n",
            "mov r14, -1\n",
            "mov r15, -1\n",
            "jmp {sw}\n",
        )
    };
}

#[cfg(target_arch = "aarch64")]
macro_rules! clobber_then {
    () => {
        concat!(
            "mov x19, #-1\n",
            "mov x20, #-1\n",
            "mov x21, #-1\n",
            "mov x22, #-1\n",
            "mov x23, #-1\n",
            "mov x24, #-1\n",
            "mov x25, #-1\n",
            "mov x26, #-1\n",
            "mov x27, #-1\n",
            "mov x28, #-1\n",
            "mov x29, #-1\n",
            "fmov d8, xzr\n",
            "fmov d9, xzr\n",
            "fmov d10, xzr\n",
            "fmov d11, xzr\n",
            "fmov d12, xzr\n",
            "fmov d13, xzr\n",
            "fmov d14, xzr\n",
            "fmov d15, xzr\n",
            "b {sw}\n",
        )
    };
}

#[cfg(target_arch = "riscv64")]
macro_rules! clobber_then {
    () => {
        concat!(
            "li s0, -1\n",
            "li s1, -1\n",
            "li s2, -1\n",
            "li s3, -1\n",
            "li s4, -1\n",
            "li s5, -1\n",
            "li s6, -1\n",
            "li s7, -1\n",
            "li s8, -1\n",
            "li s9, -1\n",
            "li s10, -1\n",
            "li s11, -1\n",
            "fmv.d.x fs0, zero\n",
            "fmv.d.x fs1, zero\n",
            "fmv.d.x fs2, zero\n",
            "fmv.d.x fs3, zero\n",
            "fmv.d.x fs4, zero\n",
            "fmv.d.x fs5, zero\n",
            "fmv.d.x fs6, zero\n",
            "fmv.d.x fs7, zero\n",
            "fmv.d.x fs8, zero\n",
            "fmv.d.x fs9, zero\n",
            "fmv.d.x fs10, zero\n",
            "fmv.d.x fs11, zero\n",
            "tail {sw}\n",
        )
    };
}

/// Clobbers, then tail-calls `switch`.
///
/// # Safety
/// As for `switch`, and the caller must never be resumed: its callee-saved registers are gone.
#[unsafe(naked)]
unsafe extern "C" fn clobber_and_switch(_s: tealet_asm::SaveFn, _r: tealet_asm::RestoreFn, _c: *mut u8) {
    naked_asm!(clobber_then!(), sw = sym tealet_asm::switch)
}

/// Clobbers, then tail-calls `jump`.
///
/// # Safety
/// As for `jump`, and the caller must never be resumed: its callee-saved registers are gone.
#[unsafe(naked)]
unsafe extern "C" fn clobber_and_jump(_v: *mut u8, _from: *mut *mut u8, _to: *mut u8, _out: *mut *mut u8) {
    naked_asm!(clobber_then!(), sw = sym tealet_asm::jump)
}

/// Leaves the fresh stack with `jump`, resuming the probe's context that `switch` saved.
unsafe extern "C" fn entry_jump(ctx: *mut u8, _arg: *mut u8) -> ! {
    let mut left: *mut u8 = core::ptr::null_mut();
    // SAFETY: resumes the probe, which never resumes us.
    unsafe { clobber_and_jump(core::ptr::null_mut(), &mut left, (*(ctx as *mut Ctx)).next, core::ptr::null_mut()) };
    unreachable!()
}

/// Runs the probe against a fresh stack whose code is `entry`, which returns to the probe
/// without ever being resumed; the registers the probe read back afterwards.
fn probe_fresh_stack(entry: tealet_asm::EntryFn) -> Vec<u64> {
    let mut stack = Box::new(Stack([0; 64 * 1024]));
    // SAFETY: the frame is written at the top of our own 16-aligned buffer.
    let top = unsafe { stack.0.as_mut_ptr().add(stack.0.len()) };
    // SAFETY: as above; `entry` never returns.
    let sp = unsafe { tealet_asm::init_stack(top, entry, core::ptr::null_mut()) };
    let mut ctx = Ctx { next: sp };
    let mut out = vec![0u64; EXPECTED.len()];
    // SAFETY: the probe switches to the fresh stack, which comes straight back.
    unsafe { probe(save, restore, &mut ctx as *mut Ctx as *mut u8, out.as_mut_ptr()) };
    out
}

#[test]
fn callee_saved_registers_survive_a_round_trip() {
    assert_eq!(probe_fresh_stack(entry), EXPECTED);
}

#[test]
fn callee_saved_registers_survive_switch_then_jump_back() {
    assert_eq!(probe_fresh_stack(entry_jump), EXPECTED);
}
