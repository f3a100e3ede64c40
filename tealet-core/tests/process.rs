//! The process around the tealets: exit() on a tealet's stack, an address-space limit, fork.
//! Each case runs in a forked child.
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

use tealet_core::*;

mod common;
use common::in_child;

const POLICIES: [i32; 2] = [TEALET_STACK_DEDICATED, TEALET_STACK_SHARED];

unsafe extern "C" fn exits(_me: *mut tealet_t, _arg: *mut c_void, _v: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: exit runs the thread's and the process's destructors on this tealet's stack.
    unsafe { libc::exit(3) }
}

unsafe extern "C" fn returns(_me: *mut tealet_t, _arg: *mut c_void, _v: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: called on a tealet of this thread.
    unsafe { tealet_previous() }
}

fn create(run: unsafe extern "C" fn(*mut tealet_t, *mut c_void, *mut *mut c_void) -> *mut tealet_t, stack_size: usize, policy: i32) -> Result<*mut tealet_t, i32> {
    let mut t = null_mut();
    let cfg = tealet_config_t { stack_size, policy };
    // SAFETY: valid run function, config and out pointer.
    match unsafe { tealet_create(Some(run), null_mut(), &cfg, &mut t) } {
        TEALET_OK => Ok(t),
        e => Err(e),
    }
}

#[test]
fn exit_inside_a_tealet_exits_with_its_status() {
    for policy in POLICIES {
        let (code, err) = in_child(|| {
            let t = create(exits, 0, policy).unwrap();
            // SAFETY: a new tealet of this thread.
            unsafe { tealet_switch(t, null_mut()) };
        });
        assert_eq!(code, 3, "policy {policy}: {err}");
    }
}

#[test]
#[cfg_attr(not(target_arch = "x86_64"), ignore = "qemu-user does not apply RLIMIT_AS to its guest")]
fn an_address_space_limit_gets_smaller_reservations() {
    for policy in POLICIES {
        let (code, err) = in_child(|| {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
            // Room for 512 MiB more: less than one arena chunk (1 GiB) of any size.
            let limit = pages * 4096 + (512 << 20);
            let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: plain setrlimit on this child.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
            // Sizes no other test uses: their classes have no reservation yet.
            let odd = 4096 * (1 + policy as usize);
            for stack_size in [(2 << 20) + odd, (3 << 20) + odd] {
                let t = create(returns, stack_size, policy).unwrap_or_else(|e| panic!("size {stack_size}: error {e}"));
                // SAFETY: a new tealet of this thread, finished by the switch.
                unsafe {
                    assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
                    assert_eq!(tealet_free(t), TEALET_OK);
                }
            }
        });
        assert_eq!(code, 0, "policy {policy}: {err}");
    }
}

#[test]
fn fork_while_another_thread_makes_stacks() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let maker = std::thread::spawn(|| {
        let mut k = 0;
        while !STOP.load(Ordering::Relaxed) {
            // New sizes keep the arena lock busy (a new class reserves address space).
            let t = create(returns, (64 << 10) + (k % 64) * 4096, TEALET_STACK_DEDICATED).unwrap();
            // SAFETY: a new tealet of this thread.
            unsafe { tealet_free(t) };
            k += 1;
        }
    });
    // Fewer under qemu-user, where each fork copies the emulator.
    let forks = if cfg!(target_arch = "x86_64") { 100 } else { 20 };
    for _ in 0..forks {
        let (code, err) = in_child(|| {
            // SAFETY: alarm only ends a child that would otherwise hang.
            unsafe { libc::alarm(5) };
            let t = create(returns, 1 << 20, TEALET_STACK_DEDICATED).unwrap();
            // SAFETY: a new tealet of this thread.
            unsafe { assert_eq!(tealet_switch(t, null_mut()), TEALET_OK) };
        });
        assert_eq!(code, 0, "{err}");
    }
    STOP.store(true, Ordering::Relaxed);
    maker.join().unwrap();
}

#[test]
#[cfg_attr(not(target_arch = "x86_64"), ignore = "qemu-user does not apply RLIMIT_AS to its guest")]
fn out_of_memory_is_an_error_code() {
    for policy in POLICIES {
        let (code, err) = in_child(|| {
            // A stack in the pool (dedicated), the thread's four regions made (shared): one more
            // tealet needs only its record.
            for _ in 0..4 {
                let t = create(returns, 0, policy).unwrap();
                // SAFETY: a new tealet of this thread, finished by the switch.
                unsafe {
                    tealet_switch(t, null_mut());
                    tealet_free(t);
                }
            }
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
            let limit = pages * 4096 + (1 << 20);
            let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: plain setrlimit on this child, then malloc until it fails (the blocks are
            // chained through their first word, so keeping them needs no other memory).
            unsafe {
                assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &rl), 0);
                let mut head: *mut c_void = null_mut();
                for size in [1 << 16, 4096, 1024].into_iter().chain((8..=256).rev().step_by(8)) {
                    loop {
                        let p = libc::malloc(size);
                        if p.is_null() {
                            break;
                        }
                        *(p as *mut *mut c_void) = head;
                        head = p;
                    }
                }
            }
            if create(returns, 0, policy) != Err(TEALET_ERR_NOMEM) {
                // SAFETY: leaves the child at once, without allocating.
                unsafe { libc::_exit(7) };
            }
        });
        assert_eq!(code, 0, "policy {policy}: {err}");
    }
}
