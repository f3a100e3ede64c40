//! Valgrind client requests (cargo feature `valgrind`): every stack slot is registered as a
//! stack once, when it is carved from its arena (slots are never unmapped), so memcheck treats
//! our switches as stack changes instead of warning "client switching stacks?". The request is
//! the documented magic instruction sequence, a no-op when not running under valgrind.

const STACK_REGISTER: usize = 0x1501;
/// Memcheck's ('M' << 24 | 'C' << 16) + 1.
const MAKE_MEM_UNDEFINED: usize = 0x4D43_0001;

/// Tell valgrind that `[low, high)` is a stack.
pub(crate) fn register_stack(low: usize, high: usize) {
    request(STACK_REGISTER, low, high - 1);
}

/// Stack bytes we are about to fill for a context that is not running: memcheck still holds
/// what it last saw there (often "no access", left by frames of another context).
pub(crate) fn make_writable(addr: usize, len: usize) {
    request(MAKE_MEM_UNDEFINED, addr, len);
}

#[cfg(target_arch = "x86_64")]
fn request(code: usize, a1: usize, a2: usize) -> usize {
    let args: [usize; 6] = [code, a1, a2, 0, 0, 0];
    let result: usize;
    // SAFETY: the rotations sum to 128 bits (rdi unchanged) and xchg rbx, rbx is a no-op; under
    // valgrind the sequence reads `args` and sets rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51", "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") 0usize => result,
            inout("rdi") 0usize => _,
            options(nostack, preserves_flags),
        );
    }
    result
}

#[cfg(target_arch = "aarch64")]
fn request(code: usize, a1: usize, a2: usize) -> usize {
    let args: [usize; 6] = [code, a1, a2, 0, 0, 0];
    let result: usize;
    // SAFETY: the rotations sum to 128 bits (x12 unchanged) and orr x10, x10, x10 is a no-op;
    // under valgrind the sequence reads `args` and sets x3.
    unsafe {
        std::arch::asm!(
            "ror x12, x12, #3", "ror x12, x12, #13", "ror x12, x12, #51", "ror x12, x12, #61",
            "orr x10, x10, x10",
            in("x4") args.as_ptr(),
            inout("x3") 0usize => result,
            inout("x12") 0usize => _,
            options(nostack, preserves_flags),
        );
    }
    result
}

/// Debian's valgrind (3.19) has no riscv64 port: nothing to tell.
#[cfg(target_arch = "riscv64")]
fn request(_code: usize, _a1: usize, _a2: usize) -> usize {
    0
}
