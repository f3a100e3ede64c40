//! Which thread is running, without a thread-local lookup: the thread pointer register, which
//! the C library points at the running thread's control block (unique among live threads).
use std::arch::asm;

#[inline(always)]
pub(crate) fn current() -> usize {
    let tp: usize;
    // SAFETY: reads the thread pointer; no memory is touched on aarch64 and riscv64, and on
    // x86_64 glibc and musl keep the control block's own address at %fs:0.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags));
        #[cfg(target_arch = "aarch64")]
        asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "riscv64")]
        asm!("mv {}, tp", out(reg) tp, options(nomem, nostack, preserves_flags));
    }
    tp
}
