//! Many suspended tealets at once, and per-tealet floating-point control state.
use std::ffi::c_void;
use std::ptr::null_mut;

use tealet_core::*;

unsafe extern "C" fn park(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    let mine = [arg as u64; 4];
    // SAFETY: main is live; we park there until resumed with the final value.
    unsafe {
        let mut v = arg;
        assert_eq!(tealet_switch(tealet_main(), &mut v), TEALET_OK);
        assert_eq!(std::hint::black_box(mine), [arg as u64; 4]);
        *value = (arg as usize + 1) as *mut c_void;
        tealet_main()
    }
}

/// The scale tests count process-wide kernel mappings, so they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vma_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// 1,000,000 suspended shared-stack tealets (100,000 under qemu-user on aarch64/riscv64, where
/// a million emulated switches alone would take minutes) with the default vm.max_map_count.
#[test]
fn a_million_suspended() {
    let n: usize = if cfg!(target_arch = "x86_64") { 1_000_000 } else { 100_000 };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::spawn(move || {
        let before = vma_count();
        let cfg = tealet_config_t { stack_size: 0, policy: TEALET_STACK_SHARED };
        let mut ts = Vec::with_capacity(n);
        for i in 0..n {
            let mut t = null_mut();
            // SAFETY: valid arguments; then start it so it suspends with a live stack.
            unsafe {
                assert_eq!(tealet_create(Some(park), i as *mut c_void, &cfg, &mut t), TEALET_OK, "tealet {i}");
                let mut v = null_mut();
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
                assert_eq!(v as usize, i);
            }
            ts.push(t);
        }
        let grown = vma_count().saturating_sub(before);
        assert!(grown < 100, "{grown} new mappings for {n} tealets");
        // SAFETY: every tealet is suspended and ours.
        let saved: usize = ts.iter().map(|&t| unsafe { tealet_stack_saved(t) }).sum();
        assert!(saved > 0);
        for (i, &t) in ts.iter().enumerate() {
            // SAFETY: as above.
            unsafe {
                assert_eq!(tealet_status(t), TEALET_STATUS_SUSPENDED);
                let mut v = null_mut();
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
                assert_eq!(v as usize, i + 1);
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        }
    })
    .join()
    .unwrap();
}

/// Thousands of suspended dedicated stacks stay within O(arena chunks) kernel mappings when
/// guards are markers, and within the mprotect budget otherwise.
#[test]
fn dedicated_thousands_suspended() {
    let n = 20_000;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::spawn(move || {
        let cfg = tealet_config_t { stack_size: 64 * 1024, policy: TEALET_STACK_DEDICATED };
        let mut ts = Vec::new();
        for i in 0..n {
            let mut t = null_mut();
            // SAFETY: valid arguments.
            unsafe {
                let rc = tealet_create(Some(park), i as *mut c_void, &cfg, &mut t);
                if rc == TEALET_ERR_STACK {
                    break; // the mprotect-guard budget ran out: a clear error, not a crash
                }
                assert_eq!(rc, TEALET_OK);
                let mut v = null_mut();
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
            }
            ts.push(t);
        }
        assert!(ts.len() >= 5000, "only {} dedicated stacks", ts.len());
        for (i, &t) in ts.iter().enumerate() {
            // SAFETY: suspended tealets of this thread.
            unsafe {
                let mut v = null_mut();
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
                assert_eq!(v as usize, i + 1);
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        }
    })
    .join()
    .unwrap();
}

#[cfg(target_arch = "x86_64")]
mod fpenv {
    use super::*;
    use std::arch::asm;

    fn mxcsr() -> u32 {
        let mut v = 0u32;
        // SAFETY: stmxcsr stores the SSE control/status register.
        unsafe { asm!("stmxcsr [{}]", in(reg) &mut v) };
        v
    }
    fn set_mxcsr(v: u32) {
        // SAFETY: loads a valid MXCSR value (rounding/mask bits only).
        unsafe { asm!("ldmxcsr [{}]", in(reg) &v) };
    }
    fn fpcw() -> u16 {
        let mut v = 0u16;
        // SAFETY: fnstcw stores the x87 control word.
        unsafe { asm!("fnstcw [{}]", in(reg) &mut v) };
        v
    }
    fn set_fpcw(v: u16) {
        // SAFETY: loads a valid x87 control word.
        unsafe { asm!("fldcw [{}]", in(reg) &v) };
    }

    const ROUND_UP: u32 = 0x1F80 | (2 << 13);
    const CW_ROUND_DOWN: u16 = 0x037F | (1 << 10);

    unsafe extern "C" fn fp_tealet(_me: *mut tealet_t, _a: *mut c_void, _v: *mut *mut c_void) -> *mut tealet_t {
        // A new tealet starts with the default control state.
        assert_eq!(mxcsr() & 0xFFC0, 0x1F80);
        assert_eq!(fpcw(), 0x037F);
        set_mxcsr(ROUND_UP);
        set_fpcw(CW_ROUND_DOWN);
        for _ in 0..3 {
            // SAFETY: main is live.
            unsafe { assert_eq!(tealet_switch(tealet_main(), null_mut()), TEALET_OK) };
            assert_eq!(mxcsr() & 0xFFC0, ROUND_UP);
            assert_eq!(fpcw(), CW_ROUND_DOWN);
        }
        // SAFETY: main is live.
        unsafe { tealet_main() }
    }

    #[test]
    fn control_words_are_per_tealet() {
        std::thread::spawn(|| {
            let t = super::super_create(fp_tealet);
            for _ in 0..3 {
                // SAFETY: `t` is ours and unfinished.
                unsafe { assert_eq!(tealet_switch(t, null_mut()), TEALET_OK) };
                assert_eq!(mxcsr() & 0xFFC0, 0x1F80, "main keeps the default rounding");
                assert_eq!(fpcw(), 0x037F);
            }
            // SAFETY: as above.
            unsafe {
                assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        })
        .join()
        .unwrap();
    }
}

#[cfg(target_arch = "x86_64")]
fn super_create(run: unsafe extern "C" fn(*mut tealet_t, *mut c_void, *mut *mut c_void) -> *mut tealet_t) -> *mut tealet_t {
    let mut t = null_mut();
    // SAFETY: valid arguments.
    assert_eq!(unsafe { tealet_create(Some(run), null_mut(), null_mut(), &mut t) }, TEALET_OK);
    t
}
