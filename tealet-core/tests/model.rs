//! Copy-on-contention against a model: random switch orders among many shared-stack tealets
//! (and some dedicated ones) must keep every tealet's stack contents and counters intact.
use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::null_mut;

use proptest::collection::vec;
use proptest::prelude::*;
use tealet_core::*;

const DONE: usize = usize::MAX;

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::default());
}

#[derive(Default)]
struct World {
    tealets: Vec<*mut tealet_t>,
    /// Address of each tealet's on-stack pattern, published by the tealet.
    pattern_at: Vec<usize>,
    /// Hops still to make: the index to switch to next, or DONE for main.
    plan: Vec<usize>,
    counters: Vec<u64>,
}

fn pattern(idx: usize, k: usize) -> u64 {
    (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k as u64
}

unsafe extern "C" fn worker(_me: *mut tealet_t, arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    let idx = arg as usize;
    // Depth varies per tealet so live sizes differ.
    let mut local = vec![0u64; 0];
    let mut frame = [0u64; 48];
    for (k, w) in frame.iter_mut().enumerate() {
        *w = pattern(idx, k);
    }
    local.push(&frame as *const _ as u64);
    WORLD.with(|w| w.borrow_mut().pattern_at[idx] = frame.as_ptr() as usize);
    // SAFETY: `value` is valid during run.
    let mut v = unsafe { *value } as usize;
    loop {
        for (k, w) in std::hint::black_box(&frame).iter().enumerate() {
            assert_eq!(*w, pattern(idx, k), "tealet {idx}: stack word {k} corrupted");
        }
        if v == DONE {
            break;
        }
        let next = WORLD.with(|w| {
            let mut w = w.borrow_mut();
            w.counters[idx] += 1;
            let n = w.plan.pop().unwrap_or(DONE);
            if n == DONE { None } else { Some(w.tealets[n]) }
        });
        // SAFETY: every planned target is a live, unfinished tealet of this thread.
        v = match next {
            Some(t) => {
                let mut p = std::ptr::null_mut();
                assert_eq!(unsafe { tealet_switch(t, &mut p) }, TEALET_OK);
                p as usize
            }
            None => {
                let mut p = std::ptr::null_mut();
                assert_eq!(unsafe { tealet_switch(tealet_main(), &mut p) }, TEALET_OK);
                p as usize
            }
        };
    }
    assert_eq!(local.len(), 1);
    // SAFETY: main is live.
    unsafe { tealet_main() }
}

fn check_pattern(idx: usize, t: *mut tealet_t, at: usize) {
    for k in 0..48 {
        let addr = at + k * 8;
        // SAFETY: the tealet is suspended and `addr` lies in its live stack.
        let p = unsafe { tealet_translate(t, addr as *const c_void) } as *const u64;
        assert!(!p.is_null(), "translate gave NULL for tealet {idx}");
        // SAFETY: translate points at readable bytes (in place or the heap copy).
        assert_eq!(unsafe { p.read_unaligned() }, pattern(idx, k), "translated word {k} of {idx}");
    }
}

/// Runs each chain main -> a -> b -> ... -> main, then checks one tealet's stack through
/// `tealet_translate`.
fn run_model(n: usize, chains: &[(Vec<usize>, usize)]) {
    let tealets: Vec<_> = (0..n)
        .map(|i| {
            let policy = if i % 5 == 4 { TEALET_STACK_DEDICATED } else { TEALET_STACK_SHARED };
            let cfg = tealet_config_t { stack_size: if i % 3 == 0 { 256 * 1024 } else { 0 }, policy };
            let mut t = null_mut();
            // SAFETY: valid arguments.
            assert_eq!(unsafe { tealet_create(Some(worker), i as *mut c_void, &cfg, &mut t) }, TEALET_OK);
            t
        })
        .collect();
    WORLD.with(|w| {
        *w.borrow_mut() = World { tealets: tealets.clone(), pattern_at: vec![0; n], plan: vec![], counters: vec![0; n] };
    });
    let mut model = vec![0u64; n];
    for (step, (chain, check)) in chains.iter().enumerate() {
        // Each hop counted once; consecutive repeats are a switch to self (a no-op, counted).
        for &i in chain {
            model[i] += 1;
        }
        let mut plan: Vec<usize> = chain[1..].to_vec();
        plan.push(DONE);
        plan.reverse();
        WORLD.with(|w| w.borrow_mut().plan = plan);
        let mut p = std::ptr::without_provenance_mut(1);
        // SAFETY: the chain's tealets are live and unfinished.
        assert_eq!(unsafe { tealet_switch(tealets[chain[0]], &mut p) }, TEALET_OK);
        let counters = WORLD.with(|w| w.borrow().counters.clone());
        assert_eq!(counters, model, "after chain {step}");
        let at = WORLD.with(|w| w.borrow().pattern_at[*check]);
        if at != 0 {
            check_pattern(*check, tealets[*check], at);
        }
    }
    for (i, &t) in tealets.iter().enumerate() {
        // SAFETY: live tealets of this thread.
        unsafe {
            if tealet_status(t) == TEALET_STATUS_SUSPENDED {
                let mut p = DONE as *mut c_void;
                assert_eq!(tealet_switch(t, &mut p), TEALET_OK);
            }
            if tealet_status(t) == TEALET_STATUS_NEW {
                assert_eq!(model[i], 0);
            } else {
                assert_eq!(tealet_status(t), TEALET_STATUS_FINISHED);
            }
            assert_eq!(tealet_free(t), TEALET_OK);
        }
    }
}

/// A tealet count, then chains of 1 to 6 hops, each with a tealet to check afterwards.
fn scenario() -> impl Strategy<Value = (usize, Vec<(Vec<usize>, usize)>)> {
    (3usize..40).prop_flat_map(|n| (Just(n), vec((vec(0..n, 1..=6), 0..n), 1..400)))
}

proptest! {
    // Few cases keep it short (it also runs under qemu); each has hundreds of switches.
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_switch_orders_match_model((n, chains) in scenario()) {
        run_model(n, &chains);
    }
}

/// Forwards every switch to the tealet in its data pointer until it receives NULL.
unsafe extern "C" fn bouncer(me: *mut tealet_t, _arg: *mut c_void, value: *mut *mut c_void) -> *mut tealet_t {
    // SAFETY: `value` is valid; the data pointer is a live tealet of this thread.
    unsafe {
        let mut v = *value;
        while !v.is_null() {
            assert_eq!(tealet_switch(tealet_get_data(me) as *mut tealet_t, &mut v), TEALET_OK);
        }
        tealet_main()
    }
}

#[test]
fn ping_pong_on_different_regions_never_copies() {
    std::thread::spawn(|| {
        let shared = tealet_config_t { stack_size: 0, policy: TEALET_STACK_SHARED };
        let (mut a, mut b) = (null_mut(), null_mut());
        // SAFETY: plain API use; a fresh thread's first two shared tealets get their own regions.
        unsafe {
            assert_eq!(tealet_create(Some(bouncer), null_mut(), &shared, &mut a), TEALET_OK);
            assert_eq!(tealet_create(Some(bouncer), null_mut(), &shared, &mut b), TEALET_OK);
            tealet_set_data(a, b as *mut c_void);
            tealet_set_data(b, tealet_main() as *mut c_void);
            for _ in 0..1000 {
                let mut v = std::ptr::without_provenance_mut(1); // main -> a -> b -> main
                assert_eq!(tealet_switch(a, &mut v), TEALET_OK);
                assert_eq!(tealet_stack_saved(a), 0);
                assert_eq!(tealet_stack_saved(b), 0);
            }
            tealet_set_data(b, a as *mut c_void);
            tealet_set_data(a, tealet_main() as *mut c_void);
            let mut v = null_mut(); // b finishes into main ...
            assert_eq!(tealet_switch(b, &mut v), TEALET_OK);
            let mut v = null_mut(); // ... then a
            assert_eq!(tealet_switch(a, &mut v), TEALET_OK);
            for t in [a, b] {
                assert_eq!(tealet_status(t), TEALET_STATUS_FINISHED);
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        }
    })
    .join()
    .unwrap();
}

#[test]
fn contention_on_one_region_copies_out_the_suspended_owner() {
    std::thread::spawn(|| {
        // 5 tealets on 4 regions: the 5th shares a region with one of the first four.
        let shared = tealet_config_t { stack_size: 0, policy: TEALET_STACK_SHARED };
        let ts: Vec<_> = (0..5)
            .map(|_| {
                let mut t = null_mut();
                // SAFETY: valid arguments.
                assert_eq!(unsafe { tealet_create(Some(bouncer), null_mut(), &shared, &mut t) }, TEALET_OK);
                // SAFETY: `t` is live.
                unsafe { tealet_set_data(t, tealet_main() as *mut c_void) };
                t
            })
            .collect();
        // SAFETY: live tealets of this thread.
        unsafe {
            for &t in &ts {
                let mut v = std::ptr::without_provenance_mut(1);
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
            }
            let saved: Vec<usize> = ts.iter().map(|&t| tealet_stack_saved(t)).collect();
            assert_eq!(saved.iter().filter(|&&s| s > 0).count(), 1, "{saved:?}");
            assert_eq!(saved[4], 0, "the last one to run is in place");
            for (&t, &s) in ts.iter().zip(&saved) {
                let used = tealet_stack_used(t);
                assert!(used > 0 && used >= s, "live stack {used}, saved {s}");
                if s > 0 {
                    assert_eq!(used, s, "a copied-out stack is all on the heap");
                }
            }
            assert_eq!(tealet_stack_used(tealet_current()), 0, "the running one is not suspended");
            let victim = saved.iter().position(|&s| s > 0).unwrap();
            let mut v = std::ptr::without_provenance_mut(1);
            assert_eq!(tealet_switch(ts[victim], &mut v), TEALET_OK);
            assert_eq!(tealet_stack_saved(ts[victim]), 0);
            assert!(tealet_stack_saved(ts[4]) > 0, "the 5th was evicted in turn");
            for &t in &ts {
                let mut v = null_mut();
                assert_eq!(tealet_switch(t, &mut v), TEALET_OK);
                assert_eq!(tealet_stack_used(t), 0, "finished");
                assert_eq!(tealet_free(t), TEALET_OK);
            }
        }
    })
    .join()
    .unwrap();
}
