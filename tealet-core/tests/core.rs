//! Behaviour of the C ABI, called from Rust.
use std::ffi::c_void;
use std::ptr::null_mut;

use tealet_core::*;

fn cfg(policy: i32) -> tealet_config_t {
    tealet_config_t { stack_size: 0, policy }
}

const POLICIES: [i32; 2] = [TEALET_STACK_DEDICATED, TEALET_STACK_SHARED];

fn create(run: unsafe extern "C" fn(*mut tealet_t, *mut c_void, *mut *mut c_void) -> *mut tealet_t, arg: *mut c_void, policy: i32) -> *mut tealet_t {
    let mut t = null_mut();
    // SAFETY: valid run function, config and out pointer.
    let rc = unsafe { tealet_create(Some(run), arg, &cfg(policy), &mut t) };
    assert_eq!(rc, TEALET_OK);
    t
}

fn switch(t: *mut tealet_t, v: usize) -> usize {
    let mut p = v as *mut c_void;
    // SAFETY: `t` is a live tealet of this thread.
    let rc = unsafe { tealet_switch(t, &mut p) };
    assert_eq!(rc, TEALET_OK);
    p as usize
}

/// Adds its argument to every value it receives and sends it back; stops on 0.
unsafe extern "C" fn adder(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `value` is valid for the duration of run.
    let mut v = unsafe { *value } as usize;
    while v != 0 {
        // SAFETY: called on a tealet of this thread, outside any signal handler.
        v = switch(unsafe { tealet_previous() }, v + arg as usize);
    }
    // SAFETY: as above.
    unsafe { *value = 7777 as *mut c_void };
    // SAFETY: as in the loop.
    unsafe { tealet_previous() }
}

#[test]
fn values_both_ways() {
    for policy in POLICIES {
        let t = create(adder, 5 as *mut c_void, policy);
        // SAFETY: live tealet pointers of this thread throughout.
        unsafe {
            assert_eq!(tealet_status(t), TEALET_STATUS_NEW);
            for i in 1..100 {
                assert_eq!(switch(t, i), i + 5);
                assert_eq!(tealet_status(t), TEALET_STATUS_SUSPENDED);
                assert_eq!(tealet_previous(), t);
            }
            assert_eq!(switch(t, 0), 7777);
            assert_eq!(tealet_status(t), TEALET_STATUS_FINISHED);
            assert_eq!(tealet_current(), tealet_main());
            assert_eq!(tealet_status(tealet_main()), TEALET_STATUS_RUNNING);
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

/// Creates a child adder inside itself and relays through it (nesting).
unsafe extern "C" fn relay(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    let policy = arg as usize as i32;
    let inner = create(adder, 100 as *mut c_void, policy);
    // SAFETY: `value` is valid during run; the tealets are live.
    unsafe {
        let parent = tealet_previous();
        let mut v = *value as usize;
        while v != 0 {
            let got = switch(inner, v);
            v = switch(parent, got * 2);
        }
        assert_eq!(switch(inner, 0), 7777);
        assert_eq!(tealet_free(inner), TEALET_OK);
        *value = std::ptr::without_provenance_mut(1);
        parent
    }
}

#[test]
fn nested() {
    for policy in POLICIES {
        let t = create(relay, policy as usize as *mut c_void, policy);
        for i in 1..50 {
            assert_eq!(switch(t, i), (i + 100) * 2);
        }
        assert_eq!(switch(t, 0), 1);
        // SAFETY: finished tealet of this thread.
        assert_eq!(unsafe { tealet_free(t) }, TEALET_OK);
    }
}

/// Each link adds 1 and exits into the next link (its arg); the last returns to main.
unsafe extern "C" fn link(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `value` is valid during run.
    unsafe { *value = (*value as usize + 1) as *mut c_void };
    if arg.is_null() {
        // SAFETY: called on a tealet of this thread, outside any signal handler.
        unsafe { tealet_main() }
    } else {
        arg as *mut tealet_t
    }
}

#[test]
fn chained_exit_through_run_result_and_tealet_exit() {
    for policy in POLICIES {
        let mut next: *mut tealet_t = null_mut();
        let mut all = Vec::new();
        for _ in 0..200 {
            next = create(link, next as *mut c_void, policy);
            all.push(next);
        }
        assert_eq!(switch(next, 0), 200);
        for t in all {
            // SAFETY: finished tealets of this thread.
            unsafe {
                assert_eq!(tealet_status(t), TEALET_STATUS_FINISHED);
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        }
    }
}

unsafe extern "C" fn exiter(_me: *mut tealet_t, _arg: *mut c_void, _value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: main is live; exiting into it finishes this tealet.
    unsafe {
        assert_eq!(tealet_exit(null_mut(), null_mut()), TEALET_ERR_INVALID);
        assert_eq!(tealet_exit(tealet_current(), null_mut()), TEALET_ERR_INVALID);
        tealet_exit(tealet_main(), 42 as *mut c_void);
    }
    unreachable!("tealet_exit returned")
}

#[test]
fn exit_passes_value() {
    for policy in POLICIES {
        let t = create(exiter, null_mut(), policy);
        assert_eq!(switch(t, 1), 42);
        // SAFETY: finished tealet of this thread.
        unsafe {
            assert_eq!(tealet_status(t), TEALET_STATUS_FINISHED);
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

#[test]
fn error_codes() {
    // SAFETY: all pointers are either NULL (checked by the API) or live tealets.
    unsafe {
        let mut out = null_mut();
        assert_eq!(tealet_create(None, null_mut(), null_mut(), &mut out), TEALET_ERR_INVALID);
        assert_eq!(tealet_create(Some(adder), null_mut(), null_mut(), null_mut()), TEALET_ERR_INVALID);
        let bad = tealet_config_t { stack_size: 0, policy: 9 };
        assert_eq!(tealet_create(Some(adder), null_mut(), &bad, &mut out), TEALET_ERR_INVALID);
        // Sizes no address space holds are bad input (page rounding must not wrap them around).
        for policy in POLICIES {
            for stack_size in [usize::MAX, usize::MAX - 4095, usize::MAX - 65535, (1 << 40) + 1] {
                let huge = tealet_config_t { stack_size, policy };
                assert_eq!(tealet_create(Some(adder), null_mut(), &huge, &mut out), TEALET_ERR_INVALID, "{stack_size:#x}");
            }
        }
        assert_eq!(tealet_switch(null_mut(), null_mut()), TEALET_ERR_INVALID);
        assert_eq!(tealet_free(null_mut()), TEALET_ERR_INVALID);
        assert_eq!(tealet_stack_used(null_mut()), 0);
        assert_eq!(tealet_free(tealet_main()), TEALET_ERR_INVALID);
        assert_eq!(tealet_free(tealet_current()), TEALET_ERR_INVALID);
        assert_eq!(tealet_exit(tealet_main(), null_mut()), TEALET_ERR_INVALID, "exit from main");
        let t = create(adder, std::ptr::without_provenance_mut(1), TEALET_STACK_DEDICATED);
        assert_eq!(switch(t, 0), 7777);
        let mut v = null_mut();
        assert_eq!(tealet_switch(t, &mut v), TEALET_ERR_FINISHED);
        assert_eq!(tealet_exit(t, null_mut()), TEALET_ERR_FINISHED);
        assert_eq!(tealet_free(t), TEALET_OK);
        for code in [0, -1, -2, -3, -4, -5] {
            let s = std::ffi::CStr::from_ptr(tealet_strerror(code)).to_str().unwrap();
            assert!(!s.is_empty() && s != "unknown error", "{code}: {s}");
        }
        assert_eq!(std::ffi::CStr::from_ptr(tealet_strerror(-99)).to_str().unwrap(), "unknown error");
    }
}

/// Counts its resumes in `*arg`; each time: switching to itself is a no-op that keeps the
/// value, then back to its resumer with a NULL value pointer; finishes on the third.
unsafe extern "C" fn null_bouncer(me: *mut tealet_t, arg: *mut c_void, _value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `arg` points to the test's counter, which outlives this tealet; tealets of this thread.
    unsafe {
        let count = arg as *mut usize;
        loop {
            *count += 1;
            let mut v = std::ptr::without_provenance_mut(5);
            assert_eq!(tealet_switch(me, &mut v), TEALET_OK);
            assert_eq!(v as usize, 5);
            assert_eq!(tealet_previous(), tealet_main());
            if *count == 3 {
                return tealet_previous();
            }
            assert_eq!(tealet_switch(tealet_previous(), null_mut()), TEALET_OK);
        }
    }
}

#[test]
fn null_values_and_switch_to_self() {
    for policy in POLICIES {
        let mut count = 0usize;
        let t = create(null_bouncer, &mut count as *mut usize as *mut c_void, policy);
        // SAFETY: `t` is a tealet of this thread; `count` outlives it.
        unsafe {
            let mut v = std::ptr::without_provenance_mut(9);
            assert_eq!(tealet_switch(tealet_current(), &mut v), TEALET_OK);
            assert_eq!(v as usize, 9);
            assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
            assert_eq!((count, tealet_status(t), tealet_status(tealet_main())), (1, TEALET_STATUS_SUSPENDED, TEALET_STATUS_RUNNING));
            assert_eq!(tealet_previous(), t);
            let mut v = std::ptr::without_provenance_mut(4);
            assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
            assert!(v.is_null(), "resumed through a NULL value pointer");
            assert_eq!(count, 2);
            assert_eq!(tealet_switch(t, null_mut()), TEALET_OK);
            assert_eq!((count, tealet_status(t)), (3, TEALET_STATUS_FINISHED));
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

struct Sendable(*mut tealet_t);
// SAFETY: only the pointer value crosses threads; the API checks ownership.
unsafe impl Send for Sendable {}

#[test]
fn foreign_and_exited_threads() {
    for policy in POLICIES {
        let t = create(adder, std::ptr::without_provenance_mut(1), policy);
        assert_eq!(switch(t, 3), 4);
        let p = Sendable(t);
        let other_main = std::thread::spawn(move || {
            let p = p;
            // SAFETY: these calls must detect the foreign tealet.
            unsafe {
                let mut v = null_mut();
                assert_eq!(tealet_switch(p.0, &mut v), TEALET_ERR_THREAD);
                assert_eq!(tealet_exit(p.0, null_mut()), TEALET_ERR_THREAD);
                assert_eq!(tealet_free(p.0), TEALET_ERR_THREAD);
                // A suspended tealet of this thread, left behind when the thread exits.
                let own = create(adder, std::ptr::without_provenance_mut(1), policy);
                assert_eq!(switch(own, 3), 4);
                assert!(tealet_stack_used(own) > 0, "suspended with a live stack");
                Sendable(own)
            }
        })
        .join()
        .unwrap();
        // SAFETY: `t` is ours; `other_main.0` belongs to an exited thread.
        unsafe {
            let mut v = null_mut();
            assert_eq!(tealet_switch(other_main.0, &mut v), TEALET_ERR_THREAD);
            assert_eq!(tealet_status(other_main.0), TEALET_STATUS_SUSPENDED);
            assert!(tealet_translate(other_main.0, &v as *const _ as *const c_void).is_null());
            assert_eq!(tealet_stack_used(other_main.0), 0, "its thread exited: it cannot resume");
            assert_eq!(tealet_free(other_main.0), TEALET_OK, "freeing after the thread exited");
            assert_eq!(switch(t, 0), 7777);
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

#[test]
fn thousands_live() {
    for policy in POLICIES {
        let ts: Vec<_> = (0..5000).map(|i| create(adder, i as *mut c_void, policy)).collect();
        for round in 1..4 {
            for (i, &t) in ts.iter().enumerate() {
                assert_eq!(switch(t, round), round + i);
            }
        }
        for (i, &t) in ts.iter().enumerate() {
            assert_eq!(switch(t, 0), 7777, "tealet {i}");
            // SAFETY: finished tealet of this thread.
            assert_eq!(unsafe { tealet_free(t) }, TEALET_OK);
        }
    }
}

#[test]
fn free_suspended_and_new_then_reuse() {
    for policy in POLICIES {
        for _ in 0..1000 {
            let a = create(adder, std::ptr::without_provenance_mut(1), policy);
            let b = create(adder, 2 as *mut c_void, policy);
            assert_eq!(switch(a, 1), 2);
            // SAFETY: a is suspended, b new; both ours.
            unsafe {
                assert_eq!(tealet_free(a), TEALET_OK);
                assert_eq!(tealet_free(b), TEALET_OK);
            }
        }
    }
}

#[test]
fn copies_and_ids_outlive_their_thread() {
    let spawn = || {
        std::thread::spawn(|| {
            // Five shared tealets on four regions: starting the fifth copies one out.
            let ts: Vec<Sendable> = (0..5)
                .map(|i| {
                    let t = create(adder, i as *mut c_void, TEALET_STACK_SHARED);
                    assert_eq!(switch(t, 1), 1 + i);
                    Sendable(t)
                })
                .collect();
            // SAFETY: suspended tealets of this thread.
            let saved: usize = ts.iter().map(|t| unsafe { tealet_stack_saved(t.0) }).sum();
            assert!(saved > 0);
            (ts, saved)
        })
    };
    let (a, saved_a) = spawn().join().unwrap();
    let (b, _) = spawn().join().unwrap();
    // SAFETY: tealets of exited threads: only queries and free are allowed.
    unsafe {
        let saved: usize = a.iter().map(|t| tealet_stack_saved(t.0)).sum();
        assert_eq!(saved, saved_a, "the heap copies are still there");
        let mut ids: Vec<u64> = a.iter().chain(&b).map(|t| tealet_id(t.0)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 10, "ids are unique across threads");
        for t in a.iter().chain(&b) {
            assert_eq!(tealet_free(t.0), TEALET_OK);
        }
    }
}
