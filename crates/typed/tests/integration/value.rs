//! SharedValue / RawValue across real processes.

use shmkit_testkit::{fork_child, stress, unique_name, Exit, Pipe, ShmCleanup};
use shmkit_typed::{AccessError, LockError, OpenError, RawValue, SharedArray, SharedValue};

#[test]
fn eight_processes_update_without_losing_an_increment() {
    let per_child = stress(100_000, 1_000_000);
    let counter = SharedValue::<u64>::anonymous(0).expect("anonymous value");
    let children: Vec<_> = (0..8)
        .map(|_| {
            let counter = &counter;
            fork_child(move || {
                for _ in 0..per_child {
                    if let Err(e) = counter.update(|v| *v += 1) {
                        // Which error, in the exit code (a child's stderr is silenced).
                        return match e {
                            AccessError::OwnerDied => 2,
                            AccessError::Poisoned => 3,
                            AccessError::Timeout => 4,
                            _ => 1,
                        };
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
        .expect_err("mismatch")
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
    let err = SharedValue::<u8>::create(&name, 2).expect_err("exists");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn opening_a_missing_name_is_an_error() {
    let name = unique_name("value-missing");
    let err = SharedValue::<u8>::open(&name).expect_err("missing");
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

/// A forked writer flips `v` between `a` and `b` until told to stop, while this process
/// reads it `reads` times and hands every read to `check`.
fn flip_while_reading<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(
    v: &RawValue<T>,
    a: T,
    b: T,
    reads: usize,
    mut check: impl FnMut(T),
) {
    let stop = RawValue::<u32>::anonymous(0).expect("stop flag");
    let started = Pipe::new();
    let mut child = {
        let (v, stop, started) = (v, &stop, &started);
        fork_child(move || {
            v.set(b);
            started.send(1);
            while stop.get() == 0 {
                v.set(a);
                v.set(b);
            }
            0
        })
    };
    started.recv_n(1);
    for _ in 0..reads {
        check(v.get());
    }
    stop.set(1);
    assert_eq!(child.wait(), Exit::Code(0));
}

/// An 8-byte value is one atomic word: a reader sees one write or the other, never the
/// low half of one and the high half of the other (the halves of the two patterns
/// differ, so any mix is a third value).
#[test]
fn raw_u64_is_never_seen_half_written_across_processes() {
    const A: u64 = 0x0000_0000_ffff_ffff;
    const B: u64 = 0xffff_ffff_0000_0000;
    let v = RawValue::<u64>::anonymous(A).expect("anonymous");
    let (mut saw_a, mut saw_b) = (0usize, 0usize);
    flip_while_reading(&v, A, B, stress(200_000, 20_000_000), |x| {
        assert!(x == A || x == B, "torn u64: {x:#018x}");
        if x == A {
            saw_a += 1;
        } else {
            saw_b += 1;
        }
    });
    assert_eq!(saw_a + saw_b, stress(200_000, 20_000_000));
}

/// The same for every width that fits one atomic: 1, 2 and 4 bytes (as `[u8; N]`, so
/// a byte-wise copy would show).
#[test]
fn raw_values_of_one_atomic_width_are_never_torn_across_processes() {
    let reads = stress(50_000, 5_000_000);
    let v2 = RawValue::<[u8; 2]>::anonymous([0; 2]).expect("anonymous");
    flip_while_reading(&v2, [0; 2], [0xff; 2], reads, |x| {
        assert!(x == [0; 2] || x == [0xff; 2], "torn [u8; 2]: {x:?}");
    });
    let v4 = RawValue::<[u8; 4]>::anonymous([0; 4]).expect("anonymous");
    flip_while_reading(&v4, [0; 4], [0xff; 4], reads, |x| {
        assert!(x == [0; 4] || x == [0xff; 4], "torn [u8; 4]: {x:?}");
    });
    let v1 = RawValue::<u8>::anonymous(0).expect("anonymous");
    flip_while_reading(&v1, 0, 0xff, reads, |x| assert!(x == 0 || x == 0xff));
}

/// A 24-byte value is three atomic words: a reader MAY see a mix of two writes (this
/// is the documented tearing; use `SharedValue` when it matters). What is promised is
/// per word: each 8-byte word is one write's word, never a mix within a word. The test
/// counts mixes but does not require any.
#[test]
fn raw_value_wider_than_a_word_may_tear_but_each_word_is_whole() {
    const A: u64 = 0x0000_0000_ffff_ffff;
    const B: u64 = 0xffff_ffff_0000_0000;
    let v = RawValue::<[u64; 3]>::anonymous([A; 3]).expect("anonymous");
    let mut mixed = 0usize;
    flip_while_reading(&v, [A; 3], [B; 3], stress(100_000, 10_000_000), |x| {
        for w in x {
            assert!(w == A || w == B, "torn word in {x:#018x?}");
        }
        if x != [A; 3] && x != [B; 3] {
            mixed += 1;
        }
    });
    eprintln!("24-byte RawValue: {mixed} reads saw a mix of two writes (allowed)");
}

/// Odd sizes (3, 7, 13 bytes: pieces of 2 and 1 bytes, 4+2+1, 8+4+1) round-trip
/// between processes byte for byte.
#[test]
fn raw_values_of_odd_sizes_round_trip_across_processes() {
    let v3 = RawValue::<[u8; 3]>::anonymous([1, 2, 3]).expect("anonymous");
    let v7 = RawValue::<[u8; 7]>::anonymous([0; 7]).expect("anonymous");
    let v13 = RawValue::<[u8; 13]>::anonymous([0; 13]).expect("anonymous");
    let mut child = {
        let (v3, v7, v13) = (&v3, &v7, &v13);
        fork_child(move || {
            let [a, b, c] = v3.get();
            v3.set([c, b, a]);
            v7.set(*b"shmkit!");
            v13.set(*b"hello, world!");
            0
        })
    };
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(v3.get(), [3, 2, 1]);
    assert_eq!(&v7.get(), b"shmkit!");
    assert_eq!(&v13.get(), b"hello, world!");
}
