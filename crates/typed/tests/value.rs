//! Cross-process tests of `SharedValue<T>` and `RawValue<T>`.

use shmkit_testkit::{fork_child, stress, unique_name, Exit, Pipe, ShmCleanup};
use shmkit_typed::{LockError, OpenError, RawValue, SharedValue};

#[test]
fn eight_processes_increment_exactly() {
    let per = stress(100_000, 1_000_000) as u64;
    let v = SharedValue::<u64>::anonymous(0).unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            fork_child(|| {
                for _ in 0..per {
                    if v.update(|x| *x += 1).is_err() {
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
    assert_eq!(v.get().unwrap(), 8 * per);
}

#[test]
fn named_value_opens_with_its_type_only() {
    let name = unique_name("value");
    let _cleanup = ShmCleanup::new(&name);
    let v = SharedValue::<i64>::create(&name, -5).unwrap();
    let other = SharedValue::<i64>::open(&name).unwrap();
    other.set(42).unwrap();
    assert_eq!(v.get().unwrap(), 42);
    assert_eq!(v.update(|x| std::mem::replace(x, 7)).unwrap(), 42);
    assert_eq!(*other.lock().unwrap(), 7);
    match SharedValue::<f64>::open(&name) {
        Err(OpenError::TypeMismatch { expected, found }) => {
            assert!(expected.contains("f64"), "{expected}");
            assert!(found.contains("i64"), "{found}");
        }
        r => panic!("expected TypeMismatch, got {r:?}"),
    }
    assert!(matches!(
        RawValue::<i64>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    let again = SharedValue::<i64>::open_or_create(&name, 0).unwrap();
    assert_eq!(again.get().unwrap(), 7);
}

#[test]
fn holder_killed_while_locked_surfaces_owner_died() {
    let v = SharedValue::<u32>::anonymous(1).unwrap();
    let locked = Pipe::new();
    let hold = Pipe::new();
    let mut child = fork_child(|| {
        let Ok(mut g) = v.lock() else { return 1 };
        *g = 2;
        locked.send(1);
        // Hold the lock until killed.
        hold.recv();
        0
    });
    locked.recv_n(1);
    child.kill();
    assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
    match v.lock() {
        Err(LockError::OwnerDied(g)) => {
            assert_eq!(*g, 2);
            g.make_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
    }
    assert_eq!(v.get().unwrap(), 2);
}

#[test]
fn raw_value_is_shared_without_a_lock() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Point {
        x: f64,
        y: f64,
    }
    let v = RawValue::anonymous(Point { x: 1.0, y: 2.0 }).unwrap();
    let child = fork_child(|| {
        if v.get() != (Point { x: 1.0, y: 2.0 }) {
            return 1;
        }
        v.set(Point { x: 3.0, y: 4.0 });
        0
    });
    child.join_ok();
    assert_eq!(v.get(), Point { x: 3.0, y: 4.0 });
}

#[test]
fn python_ctypes_reads_a_shared_value_i64() {
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        eprintln!("python3 not found: skipping the ctypes interop check");
        return;
    }
    let name = unique_name("pyvalue");
    let _cleanup = ShmCleanup::new(&name);
    let v = SharedValue::<i64>::create(&name, 0).unwrap();
    v.set(-1_234_567_890_123).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/read_shared_value.py");
    let out = std::process::Command::new("python3")
        .args([script, &name])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "-1234567890123 unlocked"
    );
    // The segment is still ours after the Python process exited.
    assert_eq!(
        SharedValue::<i64>::open(&name).unwrap().get().unwrap(),
        -1_234_567_890_123
    );
}
