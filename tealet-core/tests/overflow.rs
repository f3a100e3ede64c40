//! Stack overflow in a tealet: the handler names the tealet and aborts (checked in a child).
use std::ffi::c_void;
use std::ptr::null_mut;

use tealet_core::*;

mod common;
use common::in_child;

#[inline(never)]
#[allow(unconditional_recursion)] // it is meant to overflow the stack
fn recurse(n: u64) -> u64 {
    let buf = [n; 64];
    std::hint::black_box(&buf);
    recurse(n + 1) + buf[3]
}

unsafe extern "C" fn deep(_me: *mut tealet_t, _arg: *mut c_void, _v: *mut *mut c_void) -> *mut tealet_t {
    recurse(0);
    null_mut()
}

const FAR_SIZE: usize = 64 * 1024;

/// A frame that moves the stack pointer 32 KiB past the stack's end in one step, as C code built
/// without stack-clash protection can: the write lands deep in the guard, not on its first page.
unsafe extern "C" fn far_below(_me: *mut tealet_t, _arg: *mut c_void, _v: *mut *mut c_void) -> *mut tealet_t {
    let here = std::hint::black_box(0u8);
    let target = (&here as *const u8 as usize) - FAR_SIZE - 32 * 1024;
    // SAFETY: meant to fault: `target` is inside the guard below this tealet's stack.
    unsafe { std::ptr::write_volatile(target as *mut u8, 1) };
    null_mut()
}

#[test]
fn overflow_is_reported_with_id_and_size() {
    for (policy, size) in [(TEALET_STACK_DEDICATED, 64 * 1024), (TEALET_STACK_SHARED, 1024 * 1024)] {
        let (code, err) = in_child(|| {
            // SAFETY: plain API use in the child.
            unsafe {
                assert_eq!(tealet_install_overflow_handler(), TEALET_OK);
                let cfg = tealet_config_t { stack_size: size, policy };
                let mut t = null_mut();
                assert_eq!(tealet_create(Some(deep), null_mut(), &cfg, &mut t), TEALET_OK);
                let msg = format!("tealet: stack overflow in tealet {} (stack size {})\n", tealet_id(t), size);
                libc::write(2, b"expect:".as_ptr() as *const _, 7);
                libc::write(2, msg.as_ptr() as *const _, msg.len());
                tealet_switch(t, null_mut());
            }
        });
        assert_eq!(code, -libc::SIGABRT, "policy {policy}: {err}");
        let (expect, got) = err.split_once('\n').expect("child wrote the expected line");
        let expect = expect.strip_prefix("expect:").unwrap();
        assert_eq!(got.lines().next(), Some(expect), "policy {policy}");
    }
}

#[test]
fn a_frame_far_past_the_stack_end_is_reported() {
    let (code, err) = in_child(|| {
        // SAFETY: plain API use in the child.
        unsafe {
            assert_eq!(tealet_install_overflow_handler(), TEALET_OK);
            let cfg = tealet_config_t { stack_size: FAR_SIZE, policy: TEALET_STACK_DEDICATED };
            let mut t = null_mut();
            assert_eq!(tealet_create(Some(far_below), null_mut(), &cfg, &mut t), TEALET_OK);
            tealet_switch(t, null_mut());
        }
    });
    assert_eq!(code, -libc::SIGABRT, "{err}");
    assert!(err.contains(&format!("(stack size {FAR_SIZE})")), "{err}");
}

#[test]
fn foreign_faults_chain_to_previous_handler() {
    let (code, err) = in_child(|| {
        // SAFETY: install, then fault on an address that is not a tealet guard.
        unsafe {
            assert_eq!(tealet_install_overflow_handler(), TEALET_OK);
            std::ptr::read_volatile(std::ptr::without_provenance::<u64>(8));
        }
    });
    assert_eq!(code, -libc::SIGSEGV, "{err}");
    assert!(!err.contains("stack overflow"), "{err}");
}
