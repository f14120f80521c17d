//! Cross-process tests of `Latest<T>`: a writer and readers in separate real processes
//! (forked children opening the cell by name).

use std::time::Duration;

use shmkit_testkit::{fork_child, stress, unique_name, Exit, Pipe, ShmCleanup};
use shmkit_typed::latest::{LATEST_BUFFERS, LATEST_HEADER_SIZE};
use shmkit_typed::{Latest, LatestError, OpenError, SharedValue};

/// A value whose every word repeats its sequence number: a torn read mixes two.
type Value = [u64; 24];

fn value(seq: u64) -> Value {
    [seq; 24]
}

fn whole(v: &Value) -> bool {
    v.iter().all(|&w| w == v[0])
}

#[test]
fn readers_in_other_processes_never_see_a_torn_or_older_value_while_the_writer_races() {
    let n = stress(200_000, 5_000_000) as u64;
    let name = unique_name("latest-race");
    let _cleanup = ShmCleanup::new(&name);
    let mut cell = Latest::<Value>::create(&name, value(1)).expect("create");
    let started = Pipe::new();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let name = name.clone();
            let started = &started;
            fork_child(move || {
                let Ok(cell) = Latest::<Value>::open(&name) else {
                    return 1;
                };
                started.send(1);
                let mut last = 0;
                loop {
                    let Ok((seq, v)) = cell.read() else {
                        return 2;
                    };
                    if !whole(&v) || v[0] != seq {
                        return 3; // torn, or not the value of its sequence
                    }
                    if seq < last {
                        return 4; // went back in time
                    }
                    last = seq;
                    if seq == n + 1 {
                        return 0; // the last value
                    }
                }
            })
        })
        .collect();
    started.recv_n(2);
    for seq in 2..=n + 1 {
        assert_eq!(cell.publish(value(seq)).expect("publish"), seq);
    }
    for r in readers {
        r.join_ok();
    }
}

#[test]
fn a_value_left_half_written_is_never_shown_and_a_new_writer_continues_after_a_killed_one() {
    let name = unique_name("latest-kill");
    let _cleanup = ShmCleanup::new(&name);
    let reader = Latest::<Value>::create(&name, value(1)).expect("create");
    let published = Pipe::new();
    let release = Pipe::new();
    // A writer process publishes values 2..=5, then waits to be killed.
    let mut writer = fork_child(|| {
        let Ok(mut cell) = Latest::<Value>::open(&name) else {
            return 1;
        };
        for seq in 2..=5 {
            if cell.publish(value(seq)).is_err() {
                return 2;
            }
        }
        published.send(1);
        release.recv();
        0
    });
    published.recv_n(1);
    // Simulate a kill in the middle of value 6: its buffer is odd-stamped and holds
    // half of the new words, exactly what a writer killed there leaves behind.
    let payload = reader.segment().payload_ptr();
    let stride = (8 + std::mem::size_of::<Value>()).next_multiple_of(128);
    let buf = LATEST_HEADER_SIZE + (6 % LATEST_BUFFERS as usize) * stride;
    // SAFETY: the buffer lies inside the mapped payload (docs/layout.md); every process
    // touches these words atomically, so these stores are as a writer's would be.
    unsafe {
        let words = payload.add(buf).cast::<std::sync::atomic::AtomicU64>();
        (*words).store(6 * 2 + 1, std::sync::atomic::Ordering::SeqCst);
        for k in 1..=12 {
            (*words.add(k)).store(6, std::sync::atomic::Ordering::SeqCst);
        }
    }
    writer.kill();
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
    let (seq, v) = reader.read().expect("read");
    assert_eq!(
        (seq, v),
        (5, value(5)),
        "the last complete value, not the torn one"
    );
    // Waiting for something newer than 5 learns the writer died instead of hanging.
    match reader.wait_newer_timeout(5, Duration::from_secs(30)) {
        Err(LatestError::PeerDied { pid }) => assert_eq!(pid as i32, writer.pid()),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    // A new writer (here: this process) takes the role over and continues at 6,
    // rewriting the buffer the dead writer left half-written.
    let mut next = Latest::<Value>::open(&name).expect("open");
    assert_eq!(next.publish(value(6)).expect("take over"), 6);
    assert_eq!(reader.read().expect("read"), (6, value(6)));
}

#[test]
fn a_waiting_reader_is_woken_by_a_publish_and_told_when_the_writer_leaves() {
    let name = unique_name("latest-wait");
    let _cleanup = ShmCleanup::new(&name);
    let mut writer = Latest::<u64>::create(&name, 10).expect("create");
    writer.publish(11).expect("publish"); // takes the role: sequence 2
    let ready = Pipe::new();
    let go = Pipe::new();
    let reader = fork_child(|| {
        let Ok(cell) = Latest::<u64>::open(&name) else {
            return 1;
        };
        ready.send(1);
        // Blocks (spins, then sleeps) until the parent publishes.
        match cell.wait_newer(2) {
            Ok((3, 12)) => {}
            _ => return 2,
        }
        ready.send(1);
        go.recv();
        // The writer has dropped its handle by now: no newer value will come.
        match cell.wait_newer(3) {
            Err(LatestError::WriterLeft) => {}
            _ => return 3,
        }
        // The latest value stays readable.
        if cell.get() != Ok(12) {
            return 4;
        }
        0
    });
    ready.recv_n(1);
    writer.publish(12).expect("publish");
    ready.recv_n(1);
    // A second writer while this one lives is refused, by pid.
    let other = fork_child(
        || match Latest::<u64>::open(&name).map(|mut c| c.publish(0)) {
            Ok(Err(LatestError::RoleTaken { .. })) => 0,
            _ => 1,
        },
    );
    other.join_ok();
    let keep = Latest::<u64>::open(&name).expect("open"); // keeps the name alive
    drop(writer);
    go.send(1);
    reader.join_ok();
    drop(keep);
}

#[test]
fn wait_newer_times_out_and_opening_with_another_type_is_refused() {
    let name = unique_name("latest-type");
    let _cleanup = ShmCleanup::new(&name);
    let cell = Latest::<u32>::create(&name, 7).expect("create");
    assert_eq!(cell.read(), Ok((1, 7)));
    assert_eq!(
        cell.wait_newer_timeout(1, Duration::from_millis(20)),
        Err(LatestError::Timeout)
    );
    // Already newer: returns at once.
    assert_eq!(cell.wait_newer(0), Ok((1, 7)));
    assert!(matches!(
        Latest::<u64>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        SharedValue::<u32>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
}

/// A reader that sleeps for each value judges its writer once per handle, not on every
/// sleep (as the ring's reader, see `ring.rs`): the writer's registration with the
/// death watcher stays between two sleeping waits and goes with the handle.
#[test]
fn a_reader_that_sleeps_per_value_keeps_its_writer_registered_between_waits() {
    use shmkit_sys::watcher;
    if !shmkit_testkit::skip_or_fail(watcher::pidfds_available(), "pidfd_open (Linux 5.3+)") {
        return;
    }
    let name = unique_name("latest-judge");
    let _cleanup = ShmCleanup::new(&name);
    let cell = Latest::<u64>::create(&name, 0).expect("create");
    let ready = Pipe::new();
    let go = Pipe::new();
    let mut writer = fork_child(|| {
        let Ok(mut cell) = Latest::<u64>::open(&name) else {
            return 1;
        };
        // Takes the writer role (sequence 2), then publishes one value per go byte.
        if cell.publish(1).is_err() {
            return 2;
        }
        ready.send(1);
        while let Some(n) = go.recv() {
            if n == 0 || cell.publish(u64::from(n)).is_err() {
                break;
            }
        }
        0
    });
    ready.recv_n(1);
    let pid = writer.pid() as u32;
    let (waits, registered_between, gone) =
        super::two_sleeping_waits(pid, &go, cell, |cell, n| cell.wait_newer(u64::from(n) + 1));
    for (n, got) in (1..=2u64).zip(waits) {
        assert_eq!(got.ok(), Some((n + 2, n)), "value {n}");
    }
    go.send(0);
    assert_eq!(writer.wait(), Exit::Code(0));
    assert_eq!(
        registered_between,
        [true, true],
        "the writer stays registered between sleeping waits"
    );
    assert!(gone, "unregistered once the reader's handle is gone");
}
