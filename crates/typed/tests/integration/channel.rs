//! Cross-process tests of `Channel<T>`: senders and receivers are forked processes
//! sharing an anonymous channel (or unrelated processes opening it by name); killed
//! peers are killed with SIGKILL.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmkit_testkit::{fork_child, stress, Child, Exit, Pipe, SharedRegion};
use shmkit_typed::{Channel, RecvError, SendError};

/// A message of varying size: who sent it, its sequence number, and padding.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Msg {
    sender: u8,
    seq: u32,
    pad: Vec<u8>,
}

fn msg(sender: u8, seq: u32) -> Msg {
    Msg {
        sender,
        seq,
        pad: vec![sender; (seq % 97) as usize],
    }
}

/// One counter per (sender, seq), in shared memory: receivers count what they get.
fn counters(region: &SharedRegion, n: usize) -> &[AtomicU8] {
    assert!(region.len() >= n);
    // SAFETY: the region is at least `n` bytes and lives as long as the borrow;
    // AtomicU8 has the size and alignment of u8 and zero is a valid value.
    unsafe { std::slice::from_raw_parts(region.as_ptr() as *const AtomicU8, n) }
}

/// A child's exit code for a failed send (the parent's assertion shows it).
fn send_code<T>(e: &SendError<T>) -> i32 {
    match e {
        SendError::Disconnected(_) => 11,
        SendError::ClaimLost(_) => 12,
        SendError::Corrupt(_) => 13,
        SendError::RegistryFull(_) => 14,
        _ => 10,
    }
}

/// Sends `per` messages as `sender`, then leaves (drops its handle) if `leave`.
fn send_all(ch: &Channel<Msg>, sender: u8, per: u32, leave: bool) -> i32 {
    let ch = ch.clone();
    for seq in 0..per {
        if let Err(e) = ch.send(msg(sender, seq)) {
            return send_code(&e);
        }
    }
    if leave {
        drop(ch);
    } else {
        std::mem::forget(ch);
    }
    0
}

/// Receives until `Disconnected`, counting every message and checking per-sender
/// order and contents; `each` runs after every message. Exit codes say what failed.
fn receive_all(ch: &Channel<Msg>, seen: &[AtomicU8], per: u32, mut each: impl FnMut()) -> i32 {
    let ch = ch.clone();
    let mut last = [None::<u32>; 8];
    loop {
        match ch.recv() {
            Ok(m) => {
                if m != msg(m.sender, m.seq) {
                    return 3; // torn or mixed contents
                }
                let s = m.sender as usize;
                if last[s].is_some_and(|l| l >= m.seq) {
                    return 4; // per-sender order broken
                }
                last[s] = Some(m.seq);
                let Some(c) = seen.get(s * per as usize + m.seq as usize) else {
                    return 5;
                };
                c.fetch_add(1, Ordering::Relaxed);
                each();
            }
            Err(RecvError::Disconnected) => return 0,
            Err(_) => return 2,
        }
    }
}

fn count(seen: &[AtomicU8], from: usize, to: usize, pred: impl Fn(u8) -> bool) -> usize {
    (from..to)
        .filter(|&i| pred(seen[i].load(Ordering::Relaxed)))
        .count()
}

#[test]
fn two_sender_processes_three_receivers_every_message_exactly_once_in_order() {
    let per = stress(20_000, 500_000) as u32;
    let ch = Channel::<Msg>::anonymous(16 * 1024).expect("anonymous channel");
    let seen_region = SharedRegion::new(2 * per as usize);
    let seen = counters(&seen_region, 2 * per as usize);
    let receivers: Vec<Child> = (0..3)
        .map(|_| fork_child(|| receive_all(&ch, seen, per, || {})))
        .collect();
    let ch = &ch;
    let senders: Vec<Child> = (0..2u8)
        .map(|s| fork_child(move || send_all(ch, s, per, true)))
        .collect();
    for s in senders {
        s.join_ok();
    }
    for r in receivers {
        r.join_ok();
    }
    let total = 2 * per as usize;
    assert_eq!(count(seen, 0, total, |c| c != 1), 0, "not exactly once");
    assert!(ch.is_empty());
}

#[test]
fn a_killed_sender_loses_at_most_its_message_in_flight_and_receivers_end_disconnected() {
    let per = stress(10_000, 200_000) as u32;
    let ch = Channel::<Msg>::anonymous(4096).expect("anonymous channel");
    // Sender 0 is the victim (sends for ever); sender 1 sends `per` and leaves.
    let seen_region = SharedRegion::new(2 * per as usize);
    let seen = counters(&seen_region, 2 * per as usize);
    let ready = Pipe::new();
    let mut victim = fork_child(|| {
        let tx = ch.clone();
        for seq in 0..per {
            if tx.send(msg(0, seq)).is_err() {
                return 1;
            }
            if seq == 1000 {
                ready.send(1);
            }
        }
        // Out of sequence numbers: wait to be killed (never leaves cleanly).
        loop {
            std::thread::park();
        }
    });
    let receivers: Vec<Child> = (0..2)
        .map(|_| fork_child(|| receive_all(&ch, seen, per, || {})))
        .collect();
    ready.recv_n(1);
    // The survivor attaches before the victim dies: were every sender gone for a
    // moment, the receivers would rightly report Disconnected and leave.
    let attached = Pipe::new();
    let other = fork_child(|| {
        let tx = ch.clone();
        if let Err(e) = tx.send(msg(1, 0)) {
            return send_code(&e);
        }
        attached.send(1);
        for seq in 1..per {
            if let Err(e) = tx.send(msg(1, seq)) {
                return send_code(&e);
            }
        }
        0
    });
    attached.recv_n(1);
    victim.kill();
    assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
    other.join_ok();
    // The receivers end with Disconnected: the victim is found dead (no hang).
    for r in receivers {
        r.join_ok();
    }
    let p = per as usize;
    assert_eq!(
        count(seen, p, 2 * p, |c| c != 1),
        0,
        "survivor not exactly once"
    );
    assert_eq!(
        count(seen, 0, p, |c| c > 1),
        0,
        "victim's messages duplicated"
    );
    // The victim's delivered messages are a prefix of its sequence: only the one in
    // flight (the last) may be lost, never one in the middle.
    let got = count(seen, 0, p, |c| c == 1);
    assert!(got > 1000);
    assert_eq!(
        count(seen, 0, got, |c| c != 1),
        0,
        "a gap in the victim's sequence"
    );
}

#[test]
fn a_killed_receiver_loses_at_most_one_message_and_the_rest_goes_on() {
    let per = stress(10_000, 200_000) as u32;
    let ch = Channel::<Msg>::anonymous(4096).expect("anonymous channel");
    let seen_region = SharedRegion::new(2 * per as usize);
    let seen = counters(&seen_region, 2 * per as usize);
    let ready = Pipe::new();
    // The victim is the only receiver at first: it surely gets its 50 messages.
    let mut victim = fork_child(|| {
        let mut n = 0;
        receive_all(&ch, seen, per, || {
            n += 1;
            if n == 50 {
                ready.send(1);
            }
        })
    });
    // The senders send half, then wait for the kill: the stream cannot end (and the
    // victim leave with Disconnected) before the victim is killed.
    let go = Pipe::new();
    let (chr, go) = (&ch, &go);
    let senders: Vec<Child> = (0..2u8)
        .map(|s| {
            fork_child(move || {
                let tx = chr.clone();
                for seq in 0..per {
                    if seq == per / 2 {
                        go.recv();
                    }
                    if let Err(e) = tx.send(msg(s, seq)) {
                        return send_code(&e);
                    }
                }
                0
            })
        })
        .collect();
    ready.recv_n(1);
    // The survivors attach (a receive that finds nothing or something) before the
    // victim dies: were every receiver gone for a moment, senders would rightly stop.
    let receivers: Vec<Child> = (0..2)
        .map(|_| {
            fork_child(|| {
                let rx = ch.clone();
                match rx.try_recv() {
                    Ok(m) => seen[m.sender as usize * per as usize + m.seq as usize]
                        .fetch_add(1, Ordering::Relaxed),
                    Err(RecvError::Empty) => 0,
                    Err(_) => return 6,
                };
                ready.send(2);
                receive_all(&rx, seen, per, || {})
            })
        })
        .collect();
    ready.recv_n(2);
    victim.kill();
    assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
    go.send(1);
    go.send(1);
    for s in senders {
        s.join_ok();
    }
    for r in receivers {
        r.join_ok();
    }
    let total = 2 * per as usize;
    assert_eq!(
        count(seen, 0, total, |c| c > 1),
        0,
        "a message delivered twice"
    );
    let missing = count(seen, 0, total, |c| c == 0);
    assert!(
        missing <= 1,
        "{missing} messages lost (at most the one in flight)"
    );
}

#[test]
fn every_receiver_killed_makes_send_return_the_message_disconnected() {
    let ch = Channel::<Msg>::anonymous(1024).expect("anonymous channel");
    let ready = Pipe::new();
    let mut receiver = fork_child(|| {
        let rx = ch.clone();
        // Registers as a receiver, then waits for a message that never comes.
        let _ = rx.try_recv();
        ready.send(1);
        let _ = rx.recv();
        9
    });
    ready.recv_n(1);
    receiver.kill();
    assert_eq!(receiver.wait(), Exit::Signal(libc::SIGKILL));
    // Sends queue until the channel is full; the blocked send then finds the receiver
    // dead and hands the message back.
    let tx = ch.clone();
    let mut sent = 0u32;
    let back = loop {
        match tx.send(msg(1, sent)) {
            Ok(()) => sent += 1,
            Err(SendError::Disconnected(m)) => break m,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 1000, "never disconnected");
    };
    assert_eq!(back, msg(1, sent));
    assert!(sent > 0, "the channel queued until it was full");
    // A receiver attaching again clears it: it gets what was queued, in order.
    let rx = ch.clone();
    for seq in 0..sent {
        assert_eq!(rx.recv().unwrap(), msg(1, seq));
    }
    tx.send(msg(1, 7)).unwrap();
}

#[test]
fn a_killed_receiver_is_noticed_by_sends_before_the_channel_fills() {
    let ch = Channel::<u64>::anonymous(1 << 20).expect("anonymous channel");
    let ready = Pipe::new();
    let mut receiver = fork_child(|| {
        let rx = ch.clone();
        let _ = rx.try_recv(); // registers
        ready.send(1);
        let _ = rx.recv();
        9
    });
    ready.recv_n(1);
    receiver.kill();
    assert_eq!(receiver.wait(), Exit::Signal(libc::SIGKILL));
    let tx = ch.clone();
    let mut sent = 0u64;
    loop {
        match tx.send(sent) {
            Ok(()) => sent += 1,
            Err(SendError::Disconnected(v)) => {
                assert_eq!(v, sent);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // 16-byte records in 1 MiB: the channel was far from full.
    assert!(sent <= 4096 && ch.len() as u64 == sent, "{sent} sent");
}

#[test]
fn named_channel_between_unrelated_processes_and_type_check() {
    use shmkit_testkit::{child_role, spawn_role, unique_name, ShmCleanup};
    if let Some(role) = child_role() {
        assert_eq!(role, "sender");
        let name = std::env::var("CHANNEL_NAME").unwrap();
        let tx = Channel::<Msg>::open(&name).expect("open by name");
        for seq in 0..5_000 {
            tx.send(msg(3, seq)).unwrap();
        }
        return; // dropping `tx` leaves: the receiver then sees Disconnected
    }
    let name = unique_name("chan");
    let _cleanup = ShmCleanup::new(&name);
    let rx = Channel::<Msg>::create(&name, 8192).expect("create");
    match Channel::<String>::open(&name) {
        Err(shmkit_typed::OpenError::TypeMismatch { expected, found }) => {
            assert!(expected.contains("String"), "{expected}");
            assert!(found.contains("Msg"), "{found}");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let mut child = spawn_role(
        shmkit_testkit::test_path!(named_channel_between_unrelated_processes_and_type_check),
        "sender",
        &[("CHANNEL_NAME", &name)],
    );
    let mut next = 0;
    loop {
        match rx.recv() {
            Ok(m) => {
                assert_eq!(m, msg(3, next));
                next += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, 5_000);
    assert!(child.wait().unwrap().success());
}

#[test]
fn garbage_in_the_mapping_is_corrupt_in_every_process_never_a_hang() {
    let ch = Channel::<Msg>::anonymous(1024).expect("anonymous channel");
    ch.send(msg(1, 1)).unwrap();
    let seg = ch.segment().expect("a segment");
    // The first record's stamp, through the raw mapping, as a foreign writer would:
    // the right tag and state with an impossible length.
    let stamp = seg
        .payload_ptr()
        .wrapping_add(shmkit_typed::channel::CHANNEL_HEADER_SIZE);
    let bad: u64 = (2_000_000 << 3) | 2;
    // SAFETY: the stamp word lies inside the mapping; nobody else uses it right now.
    unsafe { stamp.cast::<u64>().write_volatile(bad) };
    let child = fork_child(|| {
        let rx = ch.clone();
        match rx.recv_timeout(Duration::from_secs(10)) {
            Err(RecvError::Corrupt { .. }) => {}
            _ => return 1,
        }
        match rx.recv() {
            Err(RecvError::Corrupt { .. }) => 0,
            _ => 2,
        }
    });
    child.join_ok();
    assert!(ch.is_corrupt());
    assert!(matches!(ch.send(msg(1, 2)), Err(SendError::Corrupt(_))));
}

/// A handle waiting in a `Select` is a receiver of its channel: a sender whose only
/// receiver left is not told `Disconnected` while a select waits to receive. (A bridge
/// exporter restarted after a kill waits so; its producer spun on `Disconnected` and
/// the select waited for ever.)
#[test]
fn a_select_waiting_on_a_channel_is_its_receiver() {
    use shmkit_typed::Select;
    let ch = Channel::<u64>::anonymous(4096).expect("anonymous channel");
    // A receiver attaches in a child process and leaves.
    fork_child(|| match ch.clone().try_recv() {
        Err(RecvError::Empty) => 0,
        _ => 1,
    })
    .join_ok();
    assert!(matches!(ch.send(1), Err(SendError::Disconnected(1))));
    let rx = ch.clone();
    let mut sel = Select::new();
    sel.recv(&rx);
    assert_eq!(sel.try_ready(), None);
    // A sender in another process, while the select is the channel's only receiver.
    fork_child(|| match ch.clone().send(7) {
        Ok(()) => 0,
        Err(e) => send_code(&e),
    })
    .join_ok();
    assert_eq!(sel.ready_timeout(Duration::from_secs(10)), Ok(0));
    assert_eq!(rx.try_recv(), Ok(7));
}

/// A `Select` over three channels asleep in the parent: messages sent by child
/// processes into any of them wake it (one sleep over all three, no polling), each
/// index is reported for the channel that has the message, and a killed last sender
/// makes its channel ready (then `Disconnected`).
#[test]
fn select_wakes_for_any_channel_fed_by_other_processes_and_for_a_killed_sender() {
    use shmkit_typed::Select;
    let chans: Vec<Channel<u64>> = (0..3)
        .map(|_| Channel::anonymous(4096).expect("anonymous channel"))
        .collect();
    let mut sel = Select::new();
    let idx: Vec<usize> = chans.iter().map(|c| sel.recv(c)).collect();
    assert_eq!(idx, [0, 1, 2]);
    assert_eq!(sel.try_ready(), None);
    assert_eq!(
        sel.ready_timeout(Duration::from_millis(20)),
        Err(RecvError::Timeout)
    );
    let (go, done) = (Pipe::new(), Pipe::new());
    // One sender per channel; each sends when it reads a byte from `go`, and stays (a
    // live sender: its channel is not disconnected) until it reads one from `done`.
    let mut senders: Vec<Child> = (0..3)
        .map(|k| {
            let (go, done, ch) = (&go, &done, &chans[k]);
            fork_child(move || {
                let tx = ch.clone();
                go.recv();
                let code = match tx.send(100 + k as u64) {
                    Ok(()) => 0,
                    Err(e) => send_code(&e),
                };
                done.recv();
                code
            })
        })
        .collect();
    let mut seen = Vec::new();
    for _ in 0..3 {
        go.send(1); // one child (whichever reads the byte) sends into its channel
        let i = sel.ready().expect("ready");
        assert_eq!(chans[i].try_recv(), Ok(100 + i as u64));
        assert_eq!(sel.try_ready(), None, "only that channel had a message");
        seen.push(i);
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
    for _ in 0..3 {
        done.send(1);
    }
    for s in senders.drain(..) {
        s.join_ok();
    }
    // Every sender left: each channel is now ready with Disconnected.
    for c in &chans {
        assert_eq!(c.try_recv(), Err(RecvError::Disconnected));
    }
    // A killed sender: the select's slow path reaps it and reports its channel.
    let ch = Channel::<u64>::anonymous(4096).expect("anonymous channel");
    let quiet = Channel::<u64>::anonymous(4096).expect("anonymous channel");
    let ready = Pipe::new();
    let mut victim = fork_child(|| {
        let tx = ch.clone();
        tx.send(1).unwrap();
        ready.send(1);
        loop {
            std::thread::park();
        }
    });
    ready.recv_n(1);
    let mut sel = Select::new();
    sel.recv(&quiet);
    let i = sel.recv(&ch);
    assert_eq!(sel.ready(), Ok(i));
    assert_eq!(ch.try_recv(), Ok(1));
    victim.kill();
    assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
    assert_eq!(sel.ready(), Ok(i));
    assert_eq!(ch.recv(), Err(RecvError::Disconnected));
}
