//! SharedArray across real processes.

use shmkit_testkit::{fork_child, stress, unique_name, Exit, ShmCleanup};
use shmkit_typed::{AccessError, CreateError, OpenError, SharedArray};

#[test]
fn eight_processes_update_one_array_without_losing_an_increment() {
    let per_child = stress(50_000, 1_000_000);
    let a = SharedArray::<u64>::anonymous(4).expect("anonymous");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let a = &a;
            fork_child(move || {
                for _ in 0..per_child {
                    let r = a.update(|v| {
                        v[0] += 1;
                        v[1 + i % 3] += 2;
                    });
                    if r.is_err() {
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
    let v = a.copy_to_vec().expect("copy");
    assert_eq!(v[0], 8 * per_child as u64);
    assert_eq!(v[1] + v[2] + v[3], 16 * per_child as u64);
}

#[test]
fn a_named_array_round_trips_between_processes() {
    let name = unique_name("array-named");
    let _cleanup = ShmCleanup::new(&name);
    let a = SharedArray::<f64>::create_from(&name, &[1.5, 2.5, 3.5]).expect("create");
    assert_eq!(a.len(), 3);
    let child_name = name.clone();
    let mut child = fork_child(move || {
        let Ok(b) = SharedArray::<f64>::open(&child_name, 3) else {
            return 2;
        };
        if b.copy_to_vec().ok() != Some(vec![1.5, 2.5, 3.5]) {
            return 3;
        }
        let ok = b.set(2, -1.0).is_ok();
        if ok {
            0
        } else {
            4
        }
    });
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(a.get(2).expect("get"), -1.0);
}

#[test]
fn out_of_range_is_an_error_not_a_panic() {
    let a = SharedArray::<i32>::anonymous(3).expect("anonymous");
    match a.get(3) {
        Err(AccessError::OutOfRange(e)) => {
            assert_eq!((e.index, e.len), (3, 3));
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert!(matches!(
        a.set(usize::MAX, 1),
        Err(AccessError::OutOfRange(_))
    ));
    assert!(matches!(
        a.copy_from_slice(&[1, 2]),
        Err(AccessError::WrongLength {
            expected: 3,
            found: 2
        })
    ));
    a.copy_from_slice(&[4, 5, 6]).expect("right length");
    assert_eq!(a.copy_to_vec().expect("copy"), vec![4, 5, 6]);
}

#[test]
fn zero_length_is_refused() {
    assert!(matches!(
        SharedArray::<u8>::anonymous(0),
        Err(CreateError::ZeroLength)
    ));
}

#[test]
fn opening_with_another_length_or_type_is_a_typed_error() {
    let name = unique_name("array-len");
    let _cleanup = ShmCleanup::new(&name);
    let _a = SharedArray::<u32>::create(&name, 10).expect("create");
    assert!(matches!(
        SharedArray::<u32>::open(&name, 11),
        Err(OpenError::LengthMismatch {
            expected: 11,
            found: 10
        })
    ));
    match SharedArray::<i32>::open(&name, 10) {
        Err(OpenError::TypeMismatch { expected, found }) => {
            assert!(
                expected.contains("i32") && found.contains("u32"),
                "{expected} / {found}"
            );
        }
        other => panic!("expected TypeMismatch, got {:?}", other.err()),
    }
    assert_eq!(
        SharedArray::<u32>::open_any_len(&name).expect("any").len(),
        10
    );
}

#[test]
fn a_corrupted_length_is_reported_not_trusted() {
    let name = unique_name("array-corrupt");
    let _cleanup = ShmCleanup::new(&name);
    let a = SharedArray::<u64>::create(&name, 2).expect("create");
    // A hostile or buggy process overwrites the length with something huge.
    // SAFETY: the payload starts with the 8-byte length; nobody else uses it now.
    unsafe {
        a.segment()
            .payload_ptr()
            .cast::<u64>()
            .write_volatile(u64::MAX / 2)
    };
    assert!(matches!(
        SharedArray::<u64>::open_any_len(&name),
        Err(OpenError::Corrupt { .. })
    ));
    // SAFETY: as above.
    unsafe { a.segment().payload_ptr().cast::<u64>().write_volatile(0) };
    assert!(matches!(
        SharedArray::<u64>::open_any_len(&name),
        Err(OpenError::Corrupt { .. })
    ));
}

/// docs/layout.md's formula for a `SharedArray<T>` of `n` elements, spelled exactly as
/// written there: `D = max(64, A)`, elements at `D + round_up(16, A)`,
/// `payload_size = D + round_up(round_up(16, A) + n * S, max(8, A))`.
fn documented_layout<T>(n: usize) -> (usize, usize) {
    let round_up = |x: usize, to: usize| x.div_ceil(to) * to;
    let (a, s) = (std::mem::align_of::<T>(), std::mem::size_of::<T>());
    let d = a.max(64);
    let elements_at = d + round_up(16, a);
    let payload_size = d + round_up(round_up(16, a) + n * s, a.max(8));
    (elements_at, payload_size)
}

/// Where the elements start and how large the payload is, as the code lays them out.
fn actual_layout<T: bytemuck::Pod>(n: usize) -> (usize, usize) {
    let a = SharedArray::<T>::anonymous(n).expect("anonymous array");
    let base = a.segment().payload_ptr() as usize;
    let guard = a.lock().map_err(|e| e.to_string()).expect("lock");
    let elements_at = guard.as_ptr() as usize - base;
    drop(guard);
    (elements_at, a.segment().payload_len())
}

#[test]
fn payload_size_is_the_documented_formula() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(32))]
    struct Align32([u8; 32]);
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(128))]
    struct Align128([u8; 128]);
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Odd([u8; 3]);
    for n in [1, 2, 3, 5, 8, 100, 1001] {
        assert_eq!(
            actual_layout::<u8>(n),
            documented_layout::<u8>(n),
            "u8 x {n}"
        );
        assert_eq!(
            actual_layout::<u16>(n),
            documented_layout::<u16>(n),
            "u16 x {n}"
        );
        assert_eq!(
            actual_layout::<u32>(n),
            documented_layout::<u32>(n),
            "u32 x {n}"
        );
        assert_eq!(
            actual_layout::<f64>(n),
            documented_layout::<f64>(n),
            "f64 x {n}"
        );
        assert_eq!(
            actual_layout::<u128>(n),
            documented_layout::<u128>(n),
            "u128 x {n}"
        );
        assert_eq!(
            actual_layout::<Odd>(n),
            documented_layout::<Odd>(n),
            "[u8; 3] x {n}"
        );
        assert_eq!(
            actual_layout::<Align32>(n),
            documented_layout::<Align32>(n),
            "align 32 x {n}"
        );
        assert_eq!(
            actual_layout::<Align128>(n),
            documented_layout::<Align128>(n),
            "align 128 x {n}"
        );
    }
    // Spot values a C or Python reader can check by hand.
    assert_eq!(documented_layout::<f64>(10), (80, 64 + 96));
    assert_eq!(documented_layout::<u8>(3), (80, 64 + 24));
}
