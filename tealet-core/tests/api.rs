//! The safe Rust API.
use std::cell::Cell;
use std::rc::Rc;

use tealet_core::api::{switch_back, Error, Policy, Status, Tealet};

#[test]
fn generator_with_closures() {
    for policy in [Policy::Dedicated, Policy::Shared] {
        let t = Tealet::new(
            |first| {
                let mut acc = first;
                for i in 0..10 {
                    acc += switch_back(i).unwrap();
                }
                acc
            },
            policy,
            0,
        )
        .unwrap();
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

#[test]
fn drop_unstarted_drops_closure_and_suspended_leaks_documented() {
    let flag = Rc::new(Cell::new(0));
    struct Bump(Rc<Cell<i32>>);
    impl Drop for Bump {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let b = Bump(flag.clone());
    let t = Tealet::new(move |_| { let _b = &b; 0 }, Policy::Dedicated, 0).unwrap();
    drop(t);
    assert_eq!(flag.get(), 1, "the unstarted closure was dropped");

    let b = Bump(flag.clone());
    let t = Tealet::new(move |_| { let b = b; switch_back(0).unwrap(); drop(b); 0 }, Policy::Shared, 0).unwrap();
    t.switch(0).unwrap();
    assert_eq!(t.status(), Status::Suspended);
    drop(t);
    assert_eq!(flag.get(), 1, "a suspended tealet's stack is dropped without unwinding");
}
