//! SharedValue / RawValue across real processes.

use shmkit_testkit::{fork_child, stress, unique_name, Exit, Pipe, ShmCleanup};
use shmkit_typed::{LockError, OpenError, RawValue, SharedArray, SharedValue};

#[test]
fn eight_processes_update_without_losing_an_increment() {
    let per_child = stress(100_000, 1_000_000);
    let counter = SharedValue::<u64>::anonymous(0).expect("anonymous value");
    let children: Vec<_> = (0..8)
        .map(|_| {
            let counter = &counter;
            fork_child(move || {
                for _ in 0..per_child {
                    if counter.update(|v| *v += 1).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok();
    }
    assert_eq!(counter.get().expect("get"), 8 * per_child as u64);
}

#[test]
fn a_named_value_is_seen_by_a_process_that_opens_it() {
    let name = unique_name("value-named");
    let _cleanup = ShmCleanup::new(&name);
    let v = SharedValue::<[u32; 4]>::create(&name, [1, 2, 3, 4]).expect("create");
    assert!(v.is_creator());
    let child_name = name.clone();
    let mut child = fork_child(move || {
        let Ok(opened) = SharedValue::<[u32; 4]>::open(&child_name) else {
            return 2;
        };
        if opened.is_creator() || opened.get().ok() != Some([1, 2, 3, 4]) {
            return 3;
        }
        let ok = opened.set([9, 9, 9, 9]).is_ok();
        if ok {
            0
        } else {
            4
        }
    });
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(v.get().expect("get"), [9, 9, 9, 9]);
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let name = unique_name("value-ooc");
    let _cleanup = ShmCleanup::new(&name);
    let a = SharedValue::<i32>::open_or_create(&name, 5).expect("first");
    let b = SharedValue::<i32>::open_or_create(&name, 99).expect("second");
    assert!(a.is_creator());
    assert!(!b.is_creator());
    assert_eq!(
        b.get().expect("get"),
        5,
        "the second caller's init is not applied"
    );
}

#[test]
fn opening_with_another_type_names_both_types() {
    let name = unique_name("value-type");
    let _cleanup = ShmCleanup::new(&name);
    let _v = SharedValue::<u64>::create(&name, 7).expect("create");
    match SharedValue::<f32>::open(&name) {
        Err(OpenError::TypeMismatch { expected, found }) => {
            assert!(expected.contains("f32"), "{expected}");
            assert!(found.contains("u64"), "{found}");
        }
        other => panic!("expected TypeMismatch, got {:?}", other.err()),
    }
    // Same T, other kind of object: also a mismatch, never a misread.
    assert!(matches!(
        RawValue::<u64>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        SharedArray::<u64>::open_any_len(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    let msg = SharedValue::<i64>::open(&name)
        .err()
        .expect("mismatch")
        .to_string();
    assert!(msg.contains("i64") && msg.contains("u64"), "{msg}");
}

#[test]
fn a_holder_killed_with_the_lock_surfaces_as_owner_died_then_recovers() {
    let v = SharedValue::<u64>::anonymous(10).expect("anonymous");
    let locked = Pipe::new();
    let mut child = {
        let v = &v;
        let locked = &locked;
        fork_child(move || {
            let mut g = match v.lock() {
                Ok(g) => g,
                Err(_) => return 1,
            };
            *g = 11; // half-done update, then death
            locked.send(1);
            loop {
                std::hint::spin_loop();
            }
        })
    };
    locked.recv_n(1);
    child.kill();
    assert_eq!(child.wait(), Exit::Signal(9), "killed by SIGKILL");
    match v.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(*g, 11, "the dead holder's write is visible for repair");
            *g = 12;
            g.make_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.err()),
    }
    assert_eq!(v.get().expect("consistent again"), 12);
    v.update(|x| *x += 1).expect("normal use");
    assert_eq!(v.get().expect("get"), 13);
}

#[test]
fn raw_value_is_shared_without_a_lock() {
    let v = RawValue::<u64>::anonymous(1).expect("anonymous");
    let mut child = {
        let v = &v;
        fork_child(move || {
            v.set(v.get() + 41);
            0
        })
    };
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(v.get(), 42);
}

#[test]
fn creating_a_name_twice_is_an_error() {
    let name = unique_name("value-twice");
    let _cleanup = ShmCleanup::new(&name);
    let _v = SharedValue::<u8>::create(&name, 1).expect("create");
    let err = SharedValue::<u8>::create(&name, 2).err().expect("exists");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn opening_a_missing_name_is_an_error() {
    let name = unique_name("value-missing");
    let err = SharedValue::<u8>::open(&name).err().expect("missing");
    assert!(matches!(err, OpenError::Segment(_)), "{err:?}");
}

#[test]
fn get_after_a_holder_died_reports_it_then_poisoned_until_repaired() {
    let v = SharedValue::<u64>::anonymous(1).expect("anonymous");
    let locked = Pipe::new();
    let mut child = {
        let v = &v;
        let locked = &locked;
        fork_child(move || {
            let _g = v.lock();
            locked.send(1);
            loop {
                std::hint::spin_loop();
            }
        })
    };
    locked.recv_n(1);
    child.kill();
    child.wait();
    assert_eq!(v.get(), Err(shmkit_typed::AccessError::OwnerDied));
    assert_eq!(v.set(5), Err(shmkit_typed::AccessError::Poisoned));
    match v.lock() {
        Err(LockError::Poisoned(g)) => g.make_consistent(),
        other => panic!("expected Poisoned, got {:?}", other.err()),
    }
    assert_eq!(v.get(), Ok(1), "the failed set changed nothing");
}
