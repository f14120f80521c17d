//! Cross-process tests of `Topic`: a writer and readers in separate real processes
//! (forked children opening the topic by name), peers killed with SIGKILL.

use shmkit_testkit::{fork_child, unique_name, Exit, Pipe, ShmCleanup};
use shmkit_typed::topic::{
    Block, Overwrite, ReadError, Topic, TopicConfig, TopicPolicy, TypedTopic, WriteError,
};
use shmkit_typed::OpenError;

/// Length of message `seq`: 9..=1000 bytes from a hash of `seq`.
fn msg_len(seq: u64) -> usize {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    9 + (x % 992) as usize
}

/// Message `seq`: its sequence number, then bytes derived from it, the last byte a
/// checksum of the others.
fn fill(seq: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let n = buf.len();
    for (i, b) in buf.iter_mut().enumerate().take(n - 1).skip(8) {
        *b = (seq as u8).wrapping_add((i as u8).wrapping_mul(31));
    }
    let sum = buf[..n - 1].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    buf[n - 1] = sum;
}

/// The sequence number of `msg` if it is a whole, untorn message.
fn check(msg: &[u8]) -> Option<u64> {
    if msg.len() < 8 {
        return None;
    }
    let seq = u64::from_le_bytes(msg[..8].try_into().ok()?);
    let mut want = vec![0; msg_len(seq)];
    fill(seq, &mut want);
    (want == msg).then_some(seq)
}

fn named(prefix: &str) -> (String, ShmCleanup) {
    let name = unique_name(prefix);
    let guard = ShmCleanup::new(&name);
    (name, guard)
}

#[test]
fn block_one_writer_three_reader_processes_each_see_every_message_in_order() {
    let (name, _cleanup) = named("topic-fanout");
    let n = 20_000u64;
    let mut writer = Topic::<Block>::create(&name, TopicConfig::new(16 << 10)).unwrap();
    let ready = Pipe::new();
    let mut readers: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                let Ok(topic) = Topic::<Block>::open(&name) else {
                    return 10;
                };
                let Ok(mut sub) = topic.subscribe() else {
                    return 11;
                };
                ready.send(1);
                let mut buf = Vec::new();
                let mut next = 0u64;
                loop {
                    // Half the messages zero-copy, half copied out.
                    let got = if next.is_multiple_of(2) {
                        sub.read_with(check)
                    } else {
                        sub.read_into(&mut buf).map(|_| check(&buf))
                    };
                    match got {
                        Ok(Some(seq)) if seq == next => next += 1,
                        Ok(_) => return 12,
                        Err(ReadError::Closed) => return if next == n { 0 } else { 13 },
                        Err(_) => return 14,
                    }
                }
            })
        })
        .collect();
    ready.recv_n(3);
    for seq in 0..n {
        writer
            .write_with(msg_len(seq), |buf| fill(seq, buf))
            .unwrap();
    }
    writer.close().unwrap();
    for r in &mut readers {
        assert_eq!(r.wait(), Exit::Code(0));
    }
}

#[test]
fn overwrite_a_slow_reader_gets_lagged_with_the_exact_count_and_never_a_torn_message() {
    let (name, _cleanup) = named("topic-lag");
    let (first, total) = (2_000u64, 100_000u64);
    let mut writer = Topic::<Overwrite>::create(&name, TopicConfig::new(4096)).unwrap();
    let (ready, go) = (Pipe::new(), Pipe::new());
    let mut reader = fork_child(|| {
        let Ok(topic) = Topic::<Overwrite>::open(&name) else {
            return 10;
        };
        let Ok(mut sub) = topic.subscribe() else {
            return 11;
        };
        ready.send(1);
        // Slow on purpose: the writer laps us before we read anything.
        go.recv();
        let (mut next, mut lags, mut read) = (0u64, 0u64, 0u64);
        let mut buf = Vec::new();
        loop {
            match sub.read_into(&mut buf) {
                Ok(_) => match check(&buf) {
                    Some(seq) if seq == next => {
                        next += 1;
                        read += 1;
                    }
                    Some(_) => return 12, // out of order, or a wrong lag count
                    None => return 13,    // torn
                },
                Err(ReadError::Lagged(missed)) => {
                    if missed == 0 {
                        return 14;
                    }
                    next += missed;
                    lags += 1;
                }
                Err(ReadError::Closed) => {
                    // Every message was read or counted as missed, and we did lag.
                    return if next == total && lags > 0 && read > 0 {
                        0
                    } else {
                        15
                    };
                }
                Err(_) => return 16,
            }
        }
    });
    ready.recv();
    for seq in 0..first {
        writer
            .write_with(msg_len(seq), |buf| fill(seq, buf))
            .unwrap();
    }
    go.send(1);
    // Now the reader copies while the writer overwrites.
    for seq in first..total {
        writer
            .write_with(msg_len(seq), |buf| fill(seq, buf))
            .unwrap();
    }
    writer.close().unwrap();
    assert_eq!(reader.wait(), Exit::Code(0));
}

#[test]
fn block_readers_killed_again_and_again_never_wedge_the_writer_or_exhaust_the_slots() {
    let (name, _cleanup) = named("topic-killed-reader");
    let cap = 4096usize;
    let config = TopicConfig::new(cap).max_readers(2);
    let mut writer = Topic::<Block>::create(&name, config).unwrap();
    let mut seq = 0u64;
    // More kills than slots: each dead reader's slot must come back.
    for _ in 0..5 {
        let (ready, never) = (Pipe::new(), Pipe::new());
        let mut child = fork_child(|| {
            let Ok(topic) = Topic::<Block>::open(&name) else {
                return 10;
            };
            let Ok(_sub) = topic.subscribe() else {
                return 11;
            };
            ready.send(1);
            never.recv(); // holds the slot, reads nothing, until killed
            0
        });
        ready.recv();
        child.kill();
        assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
        // Three capacities' worth: the writer must find the dead reader and go on.
        let start = seq;
        while (seq - start) * 200 < 3 * cap as u64 {
            writer.write_with(200, |buf| fill(seq, buf)).unwrap();
            seq += 1;
        }
    }
    let handle = Topic::<Block>::open(&name).unwrap();
    let a = handle
        .subscribe()
        .expect("dead readers' slots are free again");
    let b = handle.subscribe().expect("both slots");
    assert!(matches!(
        handle.subscribe(),
        Err(ReadError::TooManyReaders { max: 2 })
    ));
    let pids: Vec<u32> = handle.readers().iter().map(|r| r.pid).collect();
    assert_eq!(pids, [std::process::id(); 2]);
    drop((a, b));
}

#[test]
fn writer_killed_readers_get_every_complete_message_then_peer_died_and_a_new_writer_continues() {
    writer_killed_then_taken_over::<Block>("topic-killed-writer-b");
    writer_killed_then_taken_over::<Overwrite>("topic-killed-writer-o");
}

fn writer_killed_then_taken_over<P: TopicPolicy>(prefix: &str) {
    let (name, _cleanup) = named(prefix);
    let made = Topic::<P>::create(&name, TopicConfig::new(1 << 20)).unwrap();
    let mut sub = made.subscribe().unwrap();
    let n = 500u64;
    let half = Pipe::new();
    let mut writer = fork_child(|| {
        let Ok(mut topic) = Topic::<P>::open(&name) else {
            return 10;
        };
        for seq in 0..n {
            if topic
                .write_with(msg_len(seq), |buf| fill(seq, buf))
                .is_err()
            {
                return 11;
            }
        }
        // Killed in the middle of message `n`: it must never be shown.
        let _ = topic.write_with(msg_len(n), |buf| {
            buf[..8].copy_from_slice(&n.to_le_bytes());
            half.send(1);
            loop {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        });
        12
    });
    half.recv();
    writer.kill();
    assert_eq!(writer.wait(), Exit::Signal(libc::SIGKILL));
    let mut buf = Vec::new();
    for seq in 0..n {
        sub.read_into(&mut buf).unwrap();
        assert_eq!(check(&buf), Some(seq));
    }
    match sub.read_into(&mut buf) {
        Err(ReadError::PeerDied { pid }) => assert_eq!(pid, writer.pid() as u32),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    // A restarted writer takes the role over; sequence numbers continue.
    let mut again = Topic::<P>::open(&name).unwrap();
    again
        .write_with(msg_len(n), |buf| fill(n, buf))
        .expect("the dead writer's role is taken over");
    assert_eq!(sub.next_seq(), n);
    sub.read_into(&mut buf).unwrap();
    assert_eq!(check(&buf), Some(n));
    assert_eq!(sub.next_seq(), n + 1);
    assert_eq!(made.published(), n + 1);
}

#[test]
fn more_readers_than_slots_is_a_typed_error_and_a_reader_that_leaves_frees_its_slot() {
    let (name, _cleanup) = named("topic-slots");
    let topic = Topic::<Overwrite>::create(&name, TopicConfig::new(1024).max_readers(3)).unwrap();
    let subs: Vec<_> = (0..3).map(|_| topic.subscribe().unwrap()).collect();
    match topic.subscribe() {
        Err(e @ ReadError::TooManyReaders { max: 3 }) => {
            assert!(e.to_string().contains("room for 3 readers"))
        }
        other => panic!("expected TooManyReaders, got {other:?}"),
    }
    drop(subs);
    assert!(topic.subscribe().is_ok());
    // A bad configuration is refused at create.
    let bad = Topic::<Block>::create(&unique_name("topic-bad"), TopicConfig::new(1000));
    assert!(bad.is_err());
    let bad = Topic::<Block>::anonymous(TopicConfig::new(1024).max_readers(257));
    assert!(bad.is_err());
}

#[test]
fn opening_with_another_policy_or_element_type_is_a_typed_error() {
    let (name, _cleanup) = named("topic-types");
    let _block = Topic::<Block>::create(&name, TopicConfig::new(1024)).unwrap();
    assert!(matches!(
        Topic::<Overwrite>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        TypedTopic::<u64, Block>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    let (name, _cleanup2) = named("topic-types-typed");
    let mut typed = TypedTopic::<u64, Overwrite>::create(&name, TopicConfig::new(1024)).unwrap();
    assert!(matches!(
        TypedTopic::<u32, Overwrite>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    assert!(matches!(
        TypedTopic::<u64, Block>::open(&name),
        Err(OpenError::TypeMismatch { .. })
    ));
    let other = TypedTopic::<u64, Overwrite>::open(&name).unwrap();
    let mut sub = other.subscribe().unwrap();
    typed.write_value(&7).unwrap();
    assert_eq!(sub.read_value().unwrap(), 7);
    typed.close().unwrap();
    assert!(matches!(sub.read_value(), Err(ReadError::Closed)));
    assert!(matches!(typed.write_value(&8), Err(WriteError::Closed)));
}

#[test]
fn a_reader_joining_late_starts_at_the_current_end() {
    for policy_block in [true, false] {
        let (name, _cleanup) = named("topic-late");
        let config = TopicConfig::new(1024);
        let mut buf = Vec::new();
        if policy_block {
            let mut w = Topic::<Block>::create(&name, config).unwrap();
            for seq in 0..10 {
                w.write(&u64::to_le_bytes(seq)).unwrap();
            }
            let r = Topic::<Block>::open(&name).unwrap();
            let mut sub = r.subscribe().unwrap();
            assert!(matches!(sub.try_read_into(&mut buf), Err(ReadError::Empty)));
            w.write(&u64::to_le_bytes(10)).unwrap();
            assert_eq!(
                sub.try_read_with(|m| m.to_vec()).unwrap(),
                10u64.to_le_bytes()
            );
        } else {
            let mut w = Topic::<Overwrite>::create(&name, config).unwrap();
            for seq in 0..100 {
                w.write(&u64::to_le_bytes(seq)).unwrap();
            }
            let r = Topic::<Overwrite>::open(&name).unwrap();
            let mut sub = r.subscribe().unwrap();
            assert!(matches!(sub.try_read_into(&mut buf), Err(ReadError::Empty)));
            w.write(&u64::to_le_bytes(100)).unwrap();
            sub.try_read_into(&mut buf).unwrap();
            assert_eq!(buf, 100u64.to_le_bytes());
            assert_eq!(sub.next_seq(), 101);
        }
    }
}

#[test]
fn block_a_live_reader_that_leaves_releases_the_waiting_writer_at_once() {
    let (name, _cleanup) = named("topic-leave");
    let mut writer = Topic::<Block>::create(&name, TopicConfig::new(1024)).unwrap();
    let (ready, go, left, done) = (Pipe::new(), Pipe::new(), Pipe::new(), Pipe::new());
    let mut child = fork_child(|| {
        let Ok(topic) = Topic::<Block>::open(&name) else {
            return 10;
        };
        let Ok(sub) = topic.subscribe() else {
            return 11;
        };
        ready.send(1);
        go.recv();
        drop(sub); // leaves, reading nothing, and stays alive
        left.send(1);
        done.recv();
        0
    });
    ready.recv();
    let mut n = 0;
    while writer.try_write(&[1; 100]).is_ok() {
        n += 1;
    }
    assert!(n > 0);
    assert!(matches!(writer.try_write(&[1; 100]), Err(WriteError::Full)));
    std::thread::scope(|s| {
        // Blocks (and most likely sleeps) until the reader leaves; the reader stays
        // alive, so only its leaving can let this write through.
        let blocked = s.spawn(|| writer.write(&[2; 100]));
        go.send(1);
        left.recv();
        blocked.join().unwrap().unwrap();
    });
    done.send(1);
    assert_eq!(child.wait(), Exit::Code(0));
}

#[test]
fn messages_up_to_the_largest_cross_the_end_of_the_ring_in_both_policies() {
    // Lengths that leave the tail at awkward offsets, then the largest message, which
    // only fits at offset 0 of an empty ring (after a wrap marker published alone).
    let lens = [1000usize, 500, 1008, 1008, 7, 1008, 300, 999, 1008];
    let config = TopicConfig::new(1024);
    let mut buf = Vec::new();

    let mut w = Topic::<Block>::anonymous(config).unwrap();
    assert_eq!(w.max_message_len(), 1008);
    assert!(matches!(
        w.try_write(&[0; 1009]),
        Err(WriteError::TooLarge {
            len: 1009,
            max: 1008
        })
    ));
    let r = w.reader_handle().unwrap();
    let mut sub = r.subscribe().unwrap();
    for (i, &len) in lens.iter().enumerate() {
        // Full while the reader has not moved past a wrap marker published alone
        // (then it finds nothing more yet): the same thread is the only reader here.
        while let Err(e) = w.try_write(&vec![i as u8; len]) {
            assert!(matches!(e, WriteError::Full), "{e:?}");
            assert!(matches!(sub.try_read_into(&mut buf), Err(ReadError::Empty)));
        }
        sub.try_read_into(&mut buf).unwrap();
        assert_eq!(buf, vec![i as u8; len]);
    }

    let mut w = Topic::<Overwrite>::anonymous(config).unwrap();
    let r = w.reader_handle().unwrap();
    let mut sub = r.subscribe().unwrap();
    for (i, &len) in lens.iter().enumerate() {
        w.write(&vec![i as u8; len]).unwrap();
        sub.try_read_into(&mut buf).unwrap();
        assert_eq!(buf, vec![i as u8; len]);
    }
    // Two largest messages unread: the first is overwritten by the second.
    w.write(&[1; 1008]).unwrap();
    w.write(&[2; 1008]).unwrap();
    assert!(matches!(
        sub.try_read_into(&mut buf),
        Err(ReadError::Lagged(1))
    ));
    sub.try_read_into(&mut buf).unwrap();
    assert_eq!(buf, [2; 1008]);
}
