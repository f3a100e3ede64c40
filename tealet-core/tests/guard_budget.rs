//! Guards of freed stacks in one size class serve another class once the mprotect-guard budget
//! (derived from vm.max_map_count; used where MADV_GUARD_INSTALL is missing, e.g. qemu-user) is spent.
use std::ffi::c_void;
use std::ptr::null_mut;

use tealet_core::*;

unsafe extern "C" fn park(_me: *mut tealet_t, _arg: *mut c_void, _value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: main is live; we park there until resumed once more.
    unsafe {
        assert_eq!(tealet_switch(tealet_main(), null_mut()), TEALET_OK);
        tealet_main()
    }
}

fn create_started(cfg: &tealet_config_t) -> Result<*mut tealet_t, i32> {
    let mut t = null_mut();
    // SAFETY: valid arguments; the first switch suspends it with a live stack.
    unsafe {
        let rc = tealet_create(Some(park), null_mut(), cfg, &mut t);
        if rc != TEALET_OK {
            return Err(rc);
        }
        assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
    }
    Ok(t)
}

fn finish_all(ts: Vec<*mut tealet_t>) {
    for t in ts {
        // SAFETY: suspended tealets of this thread.
        unsafe {
            assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

/// Start 64 KiB dedicated tealets until the guard budget (if any) runs out.
fn fill_small() -> Vec<*mut tealet_t> {
    let small = tealet_config_t { stack_size: 64 * 1024, policy: TEALET_STACK_DEDICATED };
    let mut ts = Vec::new();
    while ts.len() < 40_000 {
        match create_started(&small) {
            Ok(t) => ts.push(t),
            Err(rc) => {
                assert_eq!(rc, TEALET_ERR_STACK);
                break;
            }
        }
    }
    ts
}

fn other_classes_work() {
    let big = tealet_config_t { stack_size: 256 * 1024, policy: TEALET_STACK_DEDICATED };
    let shared = tealet_config_t { stack_size: 0, policy: TEALET_STACK_SHARED };
    let ts = vec![create_started(&big).expect("dedicated 256 KiB"), create_started(&shared).expect("shared")];
    finish_all(ts);
}

/// One test, so the phases never overlap: the budget is process-wide.
#[test]
fn freed_guards_serve_another_size_class() {
    // Freed on a thread that exits: its pool goes back to the arena.
    std::thread::spawn(|| finish_all(fill_small())).join().unwrap();
    std::thread::spawn(other_classes_work).join().unwrap();
    // Freed on a thread that lives on: its pool must not hoard the guards.
    std::thread::spawn(|| {
        finish_all(fill_small());
        other_classes_work();
    })
    .join()
    .unwrap();
}
