//! Cross-process tests of `Ring`: a writer and a reader in separate real processes
//! (forked children sharing a `MAP_SHARED` anonymous region).

use std::time::Duration;

use shmkit_testkit::{fork_child, stress, Exit, Pipe, SharedRegion};
use shmkit_typed::ring::DEFAULT_RING_CAPACITY;
use shmkit_typed::{ReadError, Ring, WriteError};

fn new_ring(capacity: usize) -> SharedRegion {
    let region = SharedRegion::new(Ring::region_size(capacity));
    // SAFETY: a fresh, exclusive, page-aligned mapping that outlives every handle.
    unsafe { Ring::init(region.as_ptr(), region.len(), capacity) }.expect("init ring");
    region
}

fn attach(region: &SharedRegion) -> Ring {
    // SAFETY: the region holds an initialised ring and outlives the handle.
    unsafe { Ring::attach(region.as_ptr(), region.len()) }.expect("attach ring")
}

/// Deterministic message number `seq`: length 1..=4096 from a hash of `seq`, first
/// bytes the sequence number, the rest a pattern derived from it.
fn msg_len(seq: u64) -> usize {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    1 + (x % 4096) as usize
}

fn fill(seq: u64, buf: &mut [u8]) {
    let s = seq.to_le_bytes();
    let k = buf.len().min(8);
    buf[..k].copy_from_slice(&s[..k]);
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (seq as u8).wrapping_add((i as u8).wrapping_mul(31));
    }
}

/// Checks every byte of message `seq`.
fn check(seq: u64, msg: &[u8]) -> bool {
    if msg.len() != msg_len(seq) {
        return false;
    }
    let s = seq.to_le_bytes();
    let k = msg.len().min(8);
    if msg[..k] != s[..k] {
        return false;
    }
    msg.iter()
        .enumerate()
        .skip(8)
        .all(|(i, &b)| b == (seq as u8).wrapping_add((i as u8).wrapping_mul(31)))
}

#[test]
fn ten_million_random_length_messages_arrive_intact_and_in_order() {
    let n = stress(200_000, 10_000_000) as u64;
    let region = new_ring(DEFAULT_RING_CAPACITY);
    let writer = fork_child(|| {
        let mut ring = attach(&region);
        for seq in 0..n {
            if ring.write_with(msg_len(seq), |buf| fill(seq, buf)).is_err() {
                return 1;
            }
        }
        if ring.close().is_err() {
            return 2;
        }
        0
    });
    let mut ring = attach(&region);
    let mut seq = 0u64;
    loop {
        match ring.read_with(|msg| check(seq, msg)) {
            Ok(ok) => {
                assert!(ok, "message {seq} is wrong");
                seq += 1;
            }
            Err(ReadError::Closed) => break,
            Err(e) => panic!("read failed after {seq} messages: {e}"),
        }
    }
    assert_eq!(seq, n);
    writer.join_ok();
}

#[test]
fn close_lets_the_reader_drain_then_reports_closed() {
    // Large enough for all 1000 messages: the reader starts only after the close.
    let region = new_ring(256 * 1024);
    let done = Pipe::new();
    let release = Pipe::new();
    let writer = fork_child(|| {
        let mut ring = attach(&region);
        for seq in 0..1000u64 {
            if ring
                .write_with(msg_len(seq) % 100 + 1, |b| b.fill(seq as u8))
                .is_err()
            {
                return 1;
            }
        }
        if ring.close().is_err() {
            return 2;
        }
        done.send(1);
        // Stay alive so the reader sees `Closed`, not a dead writer.
        release.recv();
        0
    });
    // Wait until the writer has closed, so the reader starts on a closed ring.
    done.recv_n(1);
    let mut ring = attach(&region);
    assert!(ring.is_closed());
    let mut buf = Vec::new();
    for seq in 0..1000u64 {
        let len = ring.read_into(&mut buf).expect("message before Closed");
        assert_eq!(len, msg_len(seq) % 100 + 1);
        assert!(buf.iter().all(|&b| b == seq as u8));
    }
    assert!(matches!(ring.read_into(&mut buf), Err(ReadError::Closed)));
    assert!(matches!(
        ring.try_read_into(&mut buf),
        Err(ReadError::Closed)
    ));
    release.send(0);
    writer.join_ok();
}

#[test]
fn writer_killed_mid_stream_gives_peer_died_after_the_last_complete_message() {
    let region = new_ring(256 * 1024);
    let started = Pipe::new();
    let mut writer = fork_child(|| {
        let mut ring = attach(&region);
        let mut seq = 0u64;
        loop {
            // Large records filled byte by byte: the kill lands inside one often.
            let r = ring.write_with(msg_len(seq), |buf| fill(seq, buf));
            if r.is_err() {
                return 1;
            }
            if seq == 10 {
                started.send(1);
            }
            seq += 1;
        }
    });
    started.recv_n(1);
    let mut ring = attach(&region);
    let mut seq = 0u64;
    // Read part of the stream, kill the writer while it writes, then drain.
    while seq < 3000 {
        assert!(
            ring.read_with(|m| check(seq, m)).unwrap(),
            "message {seq} is wrong"
        );
        seq += 1;
    }
    writer.kill();
    let pid = writer.pid() as u32;
    let err = loop {
        match ring.read_with(|m| check(seq, m)) {
            Ok(ok) => {
                assert!(ok, "message {seq} is torn or wrong");
                seq += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, ReadError::PeerDied { pid: p } if p == pid),
        "{err:?}"
    );
    assert!(seq >= 3000, "only {seq} messages before PeerDied");
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
}

#[test]
fn reader_killed_while_the_ring_is_full_gives_writer_peer_died() {
    let region = new_ring(4096);
    let ready = Pipe::new();
    let hold = Pipe::new();
    let mut reader = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        if ring.read_into(&mut buf).is_err() {
            return 1;
        }
        ready.send(1);
        hold.recv();
        0
    });
    let mut ring = attach(&region);
    ring.write(b"first").unwrap();
    ready.recv_n(1);
    while ring.try_write(&[7; 100]).is_ok() {}
    reader.kill();
    assert_eq!(reader.wait(), Exit::Signal(libc::SIGKILL));
    let err = ring.write(&[7; 100]).unwrap_err();
    assert!(
        matches!(err, WriteError::PeerDied { pid } if pid == reader.pid() as u32),
        "{err:?}"
    );
}

/// A reader blocked on an empty ring does not poll its writer on a timer: it registers
/// the writer's process with the death watcher (checked here), whose wake on the
/// writer's SIGKILL ends the wait with `PeerDied`; the registration is gone after.
#[test]
fn a_blocked_reader_registers_its_writer_with_the_death_watcher_and_sees_it_die() {
    use shmkit_sys::watcher;
    if !shmkit_testkit::skip_or_fail(watcher::pidfds_available(), "pidfd_open (Linux 5.3+)") {
        return;
    }
    let region = new_ring(4096);
    let ready = Pipe::new();
    let hold = Pipe::new();
    let mut writer = fork_child(|| {
        let mut ring = attach(&region);
        if ring.write(b"first").is_err() {
            return 1;
        }
        ready.send(1);
        hold.recv();
        0
    });
    ready.recv_n(1);
    let pid = writer.pid() as u32;
    let mut ring = attach(&region);
    let mut buf = Vec::new();
    ring.read_into(&mut buf).expect("the first message");
    std::thread::scope(|s| {
        let reader = s.spawn(move || ring.read_into(&mut buf));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let mut registered = watcher::is_watched(pid);
        while !registered && std::time::Instant::now() < until {
            std::thread::yield_now();
            registered = watcher::is_watched(pid);
        }
        // Killed either way, so that a failure does not leave the reader blocked.
        writer.kill();
        let r = reader.join().unwrap();
        assert!(
            matches!(r, Err(ReadError::PeerDied { pid: p }) if p == pid),
            "{r:?}"
        );
        assert!(
            registered,
            "the reader never registered its writer's process"
        );
    });
    assert!(
        !watcher::is_watched(pid),
        "unregistered once the reader's handle is gone"
    );
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
}

/// A reader that sleeps for each message judges its writer once per handle, not on
/// every sleep (the `/proc` read, the pidfd and the registration cost some 25
/// syscalls, ten times the futex wake a sleeping ping-pong pays per message): the
/// writer's registration with the death watcher stays between two sleeping reads and
/// goes with the handle.
#[test]
fn a_reader_that_sleeps_per_message_keeps_its_writer_registered_between_reads() {
    use shmkit_sys::watcher;
    if !shmkit_testkit::skip_or_fail(watcher::pidfds_available(), "pidfd_open (Linux 5.3+)") {
        return;
    }
    let region = new_ring(4096);
    let ready = Pipe::new();
    let go = Pipe::new();
    let mut writer = fork_child(|| {
        let mut ring = attach(&region);
        // Takes the writer role, then writes one message per go byte.
        if ring.write(b"0").is_err() {
            return 1;
        }
        ready.send(1);
        while let Some(n) = go.recv() {
            if n == 0 || ring.write(&[n]).is_err() {
                break;
            }
        }
        0
    });
    ready.recv_n(1);
    let pid = writer.pid() as u32;
    let mut ring = attach(&region);
    let mut buf = Vec::new();
    ring.read_into(&mut buf).expect("the first message");
    let (reads, registered_between, gone) = super::two_sleeping_waits(pid, &go, ring, |ring, n| {
        ring.read_into(&mut buf).map(|len| (len, buf[..len] == [n]))
    });
    for (n, read) in (1..=2u8).zip(reads) {
        assert_eq!(read.ok(), Some((1, true)), "message {n}");
    }
    go.send(0);
    assert_eq!(writer.wait(), Exit::Code(0));
    assert_eq!(
        registered_between,
        [true, true],
        "the writer stays registered between sleeping reads"
    );
    assert!(gone, "unregistered once the reader's handle is gone");
}

#[test]
fn restarted_reader_takes_over_from_a_dead_one() {
    let region = new_ring(4096);
    let ready = Pipe::new();
    let hold = Pipe::new();
    let mut first = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        if ring.read_into(&mut buf).is_err() {
            return 1;
        }
        ready.send(1);
        hold.recv();
        0
    });
    let mut ring = attach(&region);
    ring.write(b"one").unwrap();
    ring.write(b"two").unwrap();
    ready.recv_n(1);
    first.kill();
    assert_eq!(first.wait(), Exit::Signal(libc::SIGKILL));
    let second = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        match ring.read_into_timeout(&mut buf, Duration::from_secs(10)) {
            Ok(3) if buf == b"two" => 0,
            _ => 1,
        }
    });
    second.join_ok();
}

#[test]
fn named_ring_between_unrelated_processes() {
    use shmkit_testkit::{child_role, spawn_role, unique_name, ShmCleanup};
    if let Some(role) = child_role() {
        // Re-executed as the writer: open by name, write, close.
        assert_eq!(role, "writer");
        let name = std::env::var("RING_NAME").unwrap();
        let mut ring = Ring::open(&name).expect("open by name");
        for seq in 0..1000u64 {
            ring.write_with(msg_len(seq), |b| fill(seq, b)).unwrap();
        }
        ring.close().unwrap();
        return;
    }
    let name = unique_name("ring");
    let _cleanup = ShmCleanup::new(&name);
    let mut ring = Ring::create(&name, 1 << 20).expect("create");
    // A ring is not a queue, and vice versa.
    assert!(matches!(
        shmkit_typed::Queue::<u64>::open(&name),
        Err(shmkit_typed::OpenError::TypeMismatch { .. })
    ));
    let mut child = spawn_role(
        shmkit_testkit::test_path!(named_ring_between_unrelated_processes),
        "writer",
        &[("RING_NAME", &name)],
    );
    for seq in 0..1000u64 {
        assert!(ring.read_with(|m| check(seq, m)).unwrap(), "message {seq}");
    }
    assert!(matches!(ring.read_with(|_| ()), Err(ReadError::Closed)));
    assert!(child.wait().unwrap().success());
}

#[test]
fn anonymous_ring_is_shared_with_forked_children() {
    let mut ring = Ring::anonymous(64 * 1024).expect("anonymous ring");
    let writer = fork_child(|| {
        // The child writes through its inherited copy of the handle.
        for seq in 0..2000u64 {
            if ring
                .write_with(msg_len(seq) % 512 + 1, |b| b.fill(seq as u8))
                .is_err()
            {
                return 1;
            }
        }
        i32::from(ring.close().is_err())
    });
    let mut buf = Vec::new();
    for seq in 0..2000u64 {
        assert_eq!(ring.read_into(&mut buf).unwrap(), msg_len(seq) % 512 + 1);
        assert!(buf.iter().all(|&b| b == seq as u8));
    }
    assert!(matches!(ring.read_into(&mut buf), Err(ReadError::Closed)));
    writer.join_ok();
}

#[test]
fn reader_that_exits_cleanly_gives_the_writer_reader_left_not_a_hang() {
    let region = new_ring(4096);
    let reader = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        for _ in 0..3 {
            if ring.read_into(&mut buf).is_err() {
                return 1;
            }
        }
        // Leaves cleanly: the handle's drop releases the reader role.
        drop(ring);
        0
    });
    let mut ring = attach(&region);
    // Bounded, so that a writer that is never told fails instead of hanging.
    let mut written = 0;
    let err = loop {
        match ring.write_timeout(&[7; 100], Duration::from_secs(10)) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
    };
    reader.join_ok();
    assert!(
        matches!(err, WriteError::ReaderLeft { messages_read: 3 }),
        "{err:?}"
    );
    // Still nobody reading: the next blocking write says the same at once.
    let err = ring.write(&[7; 100]).unwrap_err();
    assert!(matches!(err, WriteError::ReaderLeft { .. }), "{err:?}");
    let err = ring.try_write(&[7; 100]).unwrap_err();
    assert!(matches!(err, WriteError::ReaderLeft { .. }), "{err:?}");

    // A new reader attaches: the writer continues, and the count goes on.
    let ready = Pipe::new();
    let second = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        let mut n = 0;
        // Drain what the first reader left, then the 50 messages written below.
        loop {
            match ring.read_into_timeout(&mut buf, Duration::from_secs(10)) {
                Ok(100) => n += 1,
                Err(ReadError::Closed) => break,
                _ => return 1,
            }
            if n == 1 {
                ready.send(1);
            }
        }
        i32::from(n != written - 3 + 50) * 2
    });
    ready.recv_n(1);
    for _ in 0..50 {
        ring.write_timeout(&[7; 100], Duration::from_secs(10))
            .expect("a new reader clears the left state");
    }
    ring.close().unwrap();
    second.join_ok();
}

#[test]
fn wait_consumed_returns_when_all_is_read_and_reports_a_reader_that_left_first() {
    let region = new_ring(4096);
    let go_on = Pipe::new();
    let reader = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        for _ in 0..5 {
            if ring.read_into(&mut buf).is_err() {
                return 1;
            }
        }
        // Wait until the writer saw everything consumed, then read one more and leave.
        go_on.recv();
        if ring.read_into(&mut buf).is_err() {
            return 2;
        }
        0
    });
    let mut ring = attach(&region);
    for _ in 0..5 {
        ring.write(b"hello").unwrap();
    }
    ring.wait_consumed_timeout(Duration::from_secs(10))
        .expect("all five read");
    for _ in 0..3 {
        ring.write(b"more").unwrap();
    }
    go_on.send(1);
    // The reader reads one of the three and leaves: waiting would never end.
    let err = ring
        .wait_consumed_timeout(Duration::from_secs(10))
        .unwrap_err();
    reader.join_ok();
    assert!(
        matches!(err, WriteError::ReaderLeft { messages_read: 6 }),
        "{err:?}"
    );
}

/// Byte offset of the reader role's owner word in the ring header (docs/layout.md).
const READER_WORD_OFFSET: usize = 32;

#[test]
fn a_new_process_with_the_dead_readers_pid_can_claim_the_role() {
    let region = new_ring(4096);
    // Forge the word a dead reader with our pid but another start time would have
    // left (what a restarted container that reuses pid 1 finds).
    let pid = u64::from(std::process::id());
    let start = u64::from(shmkit_sys::owner::current_start_time() ^ 1);
    // SAFETY: the word is 8-aligned inside the mapped header; no handle is attached.
    unsafe {
        (region.as_ptr().add(READER_WORD_OFFSET) as *mut u64).write(pid | (start << 32));
    }
    let mut ring = attach(&region);
    let mut buf = Vec::new();
    let r = ring.try_read_into(&mut buf);
    assert!(matches!(r, Err(ReadError::Empty)), "{r:?}");
}

#[test]
fn writer_that_exits_without_close_gives_the_reader_closed_after_draining() {
    let region = new_ring(4096);
    let hold = Pipe::new();
    let writer = fork_child(|| {
        let mut ring = attach(&region);
        for seq in 0..3u64 {
            if ring.write(&seq.to_le_bytes()).is_err() {
                return 1;
            }
        }
        drop(ring); // exits cleanly without calling close()
        hold.recv(); // stays alive: the reader must see Closed, not a dead writer
        0
    });
    let mut ring = attach(&region);
    for seq in 0..3u64 {
        let got = ring.read_with_timeout(Duration::from_secs(10), |m| m.to_vec());
        assert_eq!(got.unwrap(), seq.to_le_bytes());
    }
    let err = ring
        .read_with_timeout(Duration::from_secs(10), |_| ())
        .unwrap_err();
    assert!(matches!(err, ReadError::Closed), "{err:?}");
    hold.send(0);
    writer.join_ok();
}

/// A reader that is alive but hung (attached, never reads again) is neither dead nor
/// gone: a writer on the full ring waits, and a timed write says `Timeout`, never
/// `PeerDied` or `ReaderLeft`.
#[test]
fn a_hung_reader_makes_a_timed_write_time_out_not_report_a_departure() {
    let region = new_ring(4096);
    let attached = Pipe::new();
    let release = Pipe::new();
    let reader = fork_child(|| {
        let mut ring = attach(&region);
        let mut buf = Vec::new();
        if ring.read_into(&mut buf).is_err() {
            return 1;
        }
        attached.send(1);
        // Hung: holds the reader role and reads nothing until told to go.
        release.recv();
        0
    });
    let mut ring = attach(&region);
    ring.write(&[1; 64]).expect("first message");
    attached.recv_n(1);
    let err = loop {
        match ring.write_timeout(&[2; 64], Duration::from_millis(50)) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WriteError::Timeout), "{err:?}");
    release.send(1);
    reader.join_ok();
}

#[test]
fn batched_messages_cross_processes_intact_and_in_order_through_a_ring_smaller_than_a_batch() {
    // A 4 KiB ring and batches of up to 10,000 messages: a batch must publish what is
    // pending before it waits for space, or both sides wait for ever.
    let n = stress(100_000, 5_000_000) as u64;
    let region = new_ring(4096);
    let writer = fork_child(|| {
        let mut ring = attach(&region);
        let Ok(mut batch) = ring.write_batch(10_000) else {
            return 1;
        };
        for seq in 0..n {
            let len = msg_len(seq) % 200 + 1;
            if batch.write_with(len, |buf| fill(seq, buf)).is_err() {
                return 2;
            }
        }
        drop(batch);
        if ring.close().is_err() {
            return 3;
        }
        0
    });
    let mut ring = attach(&region);
    let mut seq = 0u64;
    let mut batches = 0u64;
    loop {
        let mut bad = None;
        match ring.read_batch(64, |msg| {
            let ok = msg.len() == msg_len(seq) % 200 + 1 && {
                let mut expect = vec![0; msg.len()];
                fill(seq, &mut expect);
                expect == msg
            };
            if !ok && bad.is_none() {
                bad = Some(seq);
            }
            seq += 1;
        }) {
            Ok(k) => {
                assert!((1..=64).contains(&k), "a batch of {k}");
                assert_eq!(bad, None, "message wrong");
                batches += 1;
            }
            Err(ReadError::Closed) => break,
            Err(e) => panic!("read failed after {seq} messages: {e}"),
        }
    }
    assert_eq!(seq, n);
    assert!(batches < n, "some reads took more than one message");
    writer.join_ok();
}

#[test]
fn a_batch_publishes_at_its_limit_on_flush_and_on_drop_and_not_before() {
    let region = new_ring(4096);
    let mut writer = attach(&region);
    let mut reader = attach(&region);
    let mut seen = Vec::new();
    let mut drain = |reader: &mut Ring| {
        seen.clear();
        match reader.try_read_batch(100, |m| seen.push(m[0])) {
            Ok(_) | Err(ReadError::Empty) => seen.clone(),
            Err(e) => panic!("{e}"),
        }
    };
    let mut batch = writer.write_batch(3).unwrap();
    batch.write(&[1]).unwrap();
    batch.write(&[2]).unwrap();
    assert_eq!(batch.pending(), 2);
    assert_eq!(
        drain(&mut reader),
        [0u8; 0],
        "pending messages are not visible"
    );
    batch.write(&[3]).unwrap(); // the third: the limit publishes all three
    assert_eq!(batch.pending(), 0);
    assert_eq!(drain(&mut reader), [1, 2, 3]);
    batch.write(&[4]).unwrap();
    batch.flush();
    assert_eq!(drain(&mut reader), [4]);
    batch.write(&[5]).unwrap();
    batch.write(&[6]).unwrap();
    assert_eq!(drain(&mut reader), [0u8; 0]);
    drop(batch);
    assert_eq!(drain(&mut reader), [5, 6], "dropping the batch publishes");
    // A full ring: `try_write` publishes what is pending, then reports Full.
    let mut batch = writer.write_batch(usize::MAX).unwrap();
    let mut k = 0u8;
    let e = loop {
        match batch.try_write(&[k; 100]) {
            Ok(()) => k += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(e, WriteError::Full), "{e}");
    assert_eq!(batch.pending(), 0);
    drop(batch);
    assert_eq!(drain(&mut reader).len(), usize::from(k));
}

#[test]
fn read_batch_takes_at_most_max_and_a_panic_keeps_what_was_read_before_it() {
    let region = new_ring(4096);
    let mut writer = attach(&region);
    let mut reader = attach(&region);
    for i in 0..10u8 {
        writer.write(&[i]).unwrap();
    }
    let mut got = Vec::new();
    assert_eq!(reader.read_batch(4, |m| got.push(m[0])).unwrap(), 4);
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(reader.read_batch(0, |_| unreachable!()).unwrap(), 0);
    // The closure panics on message 6: 4 and 5 count as read, 6 is read again.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader
            .read_batch(100, |m| assert!(m[0] != 6, "boom"))
            .unwrap()
    }));
    assert!(r.is_err());
    got.clear();
    assert_eq!(reader.read_batch(100, |m| got.push(m[0])).unwrap(), 4);
    assert_eq!(got, [6, 7, 8, 9]);
    writer.close().unwrap();
    assert!(matches!(
        reader.read_batch(100, |_| ()),
        Err(ReadError::Closed)
    ));
}

#[test]
fn a_new_writer_continues_after_records_its_dead_predecessor_committed_but_never_published() {
    // The first writer commits three records and is killed; `tail` is then put back
    // to 0, as if it had died between its commits and its `tail` store. A reader may
    // already have read those records: the next writer must start after them, not at
    // the stale `tail`, or it would overwrite what was delivered.
    let region = new_ring(4096);
    let committed = Pipe::new();
    let mut first = fork_child(|| {
        let mut ring = attach(&region);
        for i in 0..3u8 {
            if ring.write(&[i; 10]).is_err() {
                return 2;
            }
        }
        committed.send(1);
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        3
    });
    committed.recv_n(1);
    assert_eq!(first.wait(), Exit::Signal(libc::SIGKILL));
    // SAFETY: `tail` is the u32 at offset 128 of the ring (docs/layout.md), accessed
    // atomically by ring handles; nobody uses the ring now.
    unsafe {
        (*region
            .as_ptr()
            .add(128)
            .cast::<std::sync::atomic::AtomicU32>())
        .store(0, std::sync::atomic::Ordering::SeqCst)
    };
    let mut reader = attach(&region);
    let mut got = Vec::new();
    assert_eq!(reader.read_batch(10, |m| got.push(m.to_vec())).unwrap(), 3);
    let second = fork_child(|| {
        let mut ring = attach(&region);
        match ring.write(&[9; 10]) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    });
    second.join_ok();
    reader.read_with(|m| got.push(m.to_vec())).unwrap();
    assert_eq!(got, [[0; 10], [1; 10], [2; 10], [9; 10]]);
}

#[test]
fn a_batch_cut_short_by_a_kill_is_never_read_and_the_next_writer_overwrites_it() {
    // A batch holds only its first record's header; the ones behind it are committed
    // as they are written (with stamps right for their positions). A writer killed
    // before publishing leaves that tail behind a held header: the reader must see
    // none of it, and a new writer, starting at the held record, must overwrite it
    // with messages of other lengths without the reader ever reaching a stale one.
    let region = new_ring(4096);
    let written = Pipe::new();
    let mut first = fork_child(|| {
        let mut ring = attach(&region);
        if ring.write(&[7; 24]).is_err() {
            return 2;
        }
        let mut batch = ring.write_batch(100).unwrap();
        for i in 0..5u8 {
            if batch.write(&[i; 24]).is_err() {
                return 2;
            }
        }
        written.send(1);
        // SAFETY: kill(2) on our own pid (the batch is never dropped: not published).
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        3
    });
    written.recv_n(1);
    assert_eq!(first.wait(), Exit::Signal(libc::SIGKILL));
    let mut reader = attach(&region);
    let mut got = Vec::new();
    match reader.try_read_batch(100, |m| got.push(m.to_vec())) {
        Ok(_) | Err(ReadError::Empty) => {}
        Err(e) => panic!("{e}"),
    }
    assert_eq!(got, [vec![7u8; 24]], "only the published message");
    let second = fork_child(|| {
        let mut ring = attach(&region);
        // 8 bytes shorter and 16 longer than the dead batch's records: the new
        // records' ends fall inside the stale ones.
        for (i, len) in [(100u8, 16usize), (101, 40), (102, 16)] {
            if ring.write(&vec![i; len]).is_err() {
                return 1;
            }
        }
        0
    });
    second.join_ok();
    while got.len() < 4 {
        reader.read_with(|m| got.push(m.to_vec())).unwrap();
    }
    assert_eq!(
        got,
        [vec![7u8; 24], vec![100; 16], vec![101; 40], vec![102; 16]]
    );
    assert!(matches!(
        reader.try_read_with(|_| ()),
        Err(ReadError::Empty) | Err(ReadError::Closed)
    ));
}
