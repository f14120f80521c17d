//! Cross-process tests of `SharedArray<T>`.

use shmkit_testkit::{fork_child, stress, unique_name, ShmCleanup};
use shmkit_typed::{ArrayError, OpenError, SharedArray};

#[test]
fn eight_processes_increment_elements_exactly() {
    let per = stress(100_000, 1_000_000) as u64;
    let a = SharedArray::<u64>::anonymous(4).unwrap();
    let children: Vec<_> = (0..8usize)
        .map(|p| {
            let a = &a;
            fork_child(move || {
                for _ in 0..per {
                    if a.update(p % 4, |x| *x += 1).is_err() {
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
    assert_eq!(a.copy_to_vec().unwrap(), vec![2 * per; 4]);
}

#[test]
fn named_array_checks_type_length_and_index() {
    let name = unique_name("array");
    let _cleanup = ShmCleanup::new(&name);
    let a = SharedArray::<f64>::create_from_slice(&name, &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(a.len(), 3);
    let b = SharedArray::<f64>::open(&name).unwrap();
    assert_eq!(b.len(), 3);
    b.set(1, 20.0).unwrap();
    assert_eq!(a.get(1).unwrap(), 20.0);
    assert_eq!(&*a.lock().unwrap(), &[1.0, 20.0, 3.0]);
    assert!(matches!(
        a.get(3),
        Err(ArrayError::OutOfRange { index: 3, len: 3 })
    ));
    assert!(matches!(
        a.set(usize::MAX, 0.0),
        Err(ArrayError::OutOfRange { .. })
    ));
    assert!(matches!(
        a.copy_from_slice(&[0.0; 2]),
        Err(ArrayError::OutOfRange { .. })
    ));
    a.copy_from_slice(&[7.0; 3]).unwrap();
    assert_eq!(b.copy_to_vec().unwrap(), vec![7.0; 3]);
    assert!(matches!(
        SharedArray::<f64>::open_with_len(&name, 4),
        Err(OpenError::LengthMismatch {
            expected: 4,
            found: 3
        })
    ));
    match SharedArray::<u64>::open(&name) {
        Err(OpenError::TypeMismatch { expected, found }) => {
            assert!(
                expected.contains("u64") && found.contains("f64"),
                "{expected} / {found}"
            );
        }
        r => panic!("expected TypeMismatch, got {r:?}"),
    }
    assert!(matches!(
        shmkit_typed::SharedValue::<f64>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}
