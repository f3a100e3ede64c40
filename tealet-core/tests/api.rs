//! The safe Rust API.
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tealet_core::api::{switch_back, Error, Status, Tealet};

fn generator(first: usize) -> usize {
    let mut acc = first;
    for i in 0..10 {
        acc += switch_back(i).unwrap();
    }
    acc
}

#[test]
fn generator_with_closures() {
    // SAFETY: nothing outside the tealet borrows its stack.
    let shared = unsafe { Tealet::new_shared(generator, 0) }.unwrap();
    for t in [Tealet::new(generator, 0).unwrap(), shared] {
        assert_eq!(t.status(), Status::New);
        let mut got = vec![t.switch(100).unwrap()];
        for k in 1..10 {
            got.push(t.switch(k).unwrap());
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(t.switch(10).unwrap(), 100 + (1..=10).sum::<usize>());
        assert_eq!(t.status(), Status::Finished);
        assert_eq!(t.switch(0), Err(Error(tealet_core::TEALET_ERR_FINISHED)));
        assert!(t.switch(0).unwrap_err().to_string().contains("finished"));
    }
}

struct Bump(Rc<Cell<i32>>);

impl Drop for Bump {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn drop_drops_the_unstarted_closure_and_unwinds_a_suspended_stack() {
    let flag = Rc::new(Cell::new(0));
    let b = Bump(flag.clone());
    drop(Tealet::new(move |_| { let _b = &b; 0 }, 0).unwrap());
    assert_eq!(flag.get(), 1, "the unstarted closure was dropped");

    let suspended = |b: Bump| move |_| { let b = b; switch_back(0).unwrap(); drop(b); 0 };
    // SAFETY: nothing outside the tealet borrows its stack.
    let shared = unsafe { Tealet::new_shared(suspended(Bump(flag.clone())), 0) }.unwrap();
    for t in [Tealet::new(suspended(Bump(flag.clone())), 0).unwrap(), shared] {
        let before = flag.get();
        t.switch(0).unwrap();
        assert_eq!(t.status(), Status::Suspended);
        drop(t);
        assert_eq!(flag.get(), before + 1, "the suspended stack was unwound");
    }
}

#[test]
fn a_scoped_thread_borrowing_a_suspended_stack_is_joined_before_the_stack_goes() {
    const K: u64 = 0x5EED_5EED_5EED_5EED;
    static CHANGED: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let t = Tealet::new(
        |_| {
            let x = AtomicU64::new(K);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(200) {
                        CHANGED.fetch_or(x.load(Ordering::SeqCst) != K, Ordering::SeqCst);
                    }
                    DONE.store(true, Ordering::SeqCst);
                });
                switch_back(0).unwrap();
            });
            0
        },
        0,
    )
    .unwrap();
    t.switch(0).unwrap();
    drop(t);
    assert!(DONE.load(Ordering::SeqCst), "the scope ended (its thread joined) before the drop returned");
    // Stacks made now may take the freed slot: the scoped thread is gone.
    let others: Vec<Tealet> = (0..8).map(|_| Tealet::new(|_| { let _ = [7u8; 16384]; 0 }, 0).unwrap()).collect();
    for o in &others {
        o.switch(0).unwrap();
    }
    assert!(!CHANGED.load(Ordering::SeqCst));
}

#[test]
fn a_panic_in_a_tealet_goes_on_in_the_tealet_it_returns_to() {
    let t = Tealet::new(|_| panic!("boom in a tealet"), 0).unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| t.switch(0))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a tealet"));
    assert_eq!(t.status(), Status::Finished);
    // The next switch is unaffected.
    let u = Tealet::new(|v| v + 1, 0).unwrap();
    assert_eq!(u.switch(41).unwrap(), 42);
}
