//! Loom models of the ring, queue, topic, channel and latest-value protocols (atomics
//! and fences only; the futex is replaced by yields, see `shim.rs`). Run with:
//!
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-typed --release --lib loom

use loom::thread;

/// Explores interleavings with at most 4 preemptions (the bound keeps each model well
/// under a minute; most concurrency bugs need fewer than 4).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(4);
    b.check(f);
}

use crate::queue::Queue;
use crate::ring::{ReadError, Ring, WriteError};

/// Writes `msg`, yielding while the ring is full.
fn write_spin(ring: &mut Ring, msg: &[u8]) {
    loop {
        match ring.try_write(msg) {
            Ok(()) => return,
            Err(WriteError::Full) => thread::yield_now(),
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// Reads one message, yielding while the ring is empty.
fn read_spin(ring: &mut Ring) -> Vec<u8> {
    let mut buf = Vec::new();
    loop {
        match ring.try_read_into(&mut buf) {
            Ok(_) => return buf,
            Err(ReadError::Empty) => thread::yield_now(),
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn loom_ring_messages_arrive_whole_and_in_order_across_a_wrap() {
    model(|| {
        // 64-byte ring: records of 32 + 24 bytes, then a wrap marker and a 32-byte
        // record that must wait for the first to be consumed.
        let (mut writer, mut reader) = Ring::new_for_loom(64);
        let w = thread::spawn(move || {
            write_spin(&mut writer, &[1; 20]);
            write_spin(&mut writer, &[2; 9]);
            write_spin(&mut writer, &[3; 20]);
            writer.close().unwrap();
        });
        assert_eq!(read_spin(&mut reader), vec![1; 20]);
        assert_eq!(read_spin(&mut reader), vec![2; 9]);
        assert_eq!(read_spin(&mut reader), vec![3; 20]);
        w.join().unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            reader.try_read_into(&mut buf),
            Err(ReadError::Closed)
        ));
    });
}

#[test]
fn loom_ring_reader_that_leaves_wakes_the_waiting_writer_with_reader_left() {
    model(|| {
        let (mut writer, mut reader) = Ring::new_for_loom(64);
        // Three 16-byte records and the next header (cleared before each commit) fill
        // the 64-byte ring.
        for i in 1..=3u8 {
            writer.try_write(&[i; 8]).unwrap();
        }
        let r = thread::spawn(move || {
            let mut buf = Vec::new();
            assert_eq!(reader.try_read_into(&mut buf).unwrap(), 8);
            drop(reader); // leaves cleanly: must wake a writer asleep on the full ring
        });
        // The blocking write path (spin, then sleep on `space_event`): one record fits
        // in the space the reader freed, the next can never fit. A wake lost between
        // the writer's re-check and its sleep would leave it waiting for ever (loom's
        // futex stand-in returns only on a change of the word).
        writer.write(&[4; 8]).unwrap();
        let e = writer.write(&[5; 8]).unwrap_err();
        assert!(
            matches!(e, WriteError::ReaderLeft { messages_read: 1 }),
            "{e:?}"
        );
        r.join().unwrap();
    });
}

#[test]
fn loom_ring_batch_publishes_before_it_waits_and_read_batch_frees_space_once() {
    model(|| {
        // 64-byte ring, three 24-byte records in one batch (limit 10): the third does
        // not fit until the reader frees the first two, which it can only see if the
        // batch publishes them before waiting (a missed publish or wake deadlocks
        // here: loom's futex stand-in returns only on a change of the word).
        let (mut writer, mut reader) = Ring::new_for_loom(64);
        let w = thread::spawn(move || {
            let mut batch = writer.write_batch(10).unwrap();
            for i in 1..=3u8 {
                batch.write(&[i; 16]).unwrap();
            }
            drop(batch);
            writer.close().unwrap();
        });
        let mut got = Vec::new();
        loop {
            match reader.read_batch(8, |m| {
                assert!(m.iter().all(|&b| b == m[0]) && m.len() == 16, "torn: {m:?}");
                got.push(m[0]);
            }) {
                Ok(n) => assert!(n >= 1),
                Err(ReadError::Closed) => break,
                Err(e) => panic!("read failed: {e}"),
            }
        }
        assert_eq!(got, [1, 2, 3]);
        w.join().unwrap();
    });
}

#[test]
fn loom_latest_reader_never_sees_a_torn_or_older_value_across_buffer_reuse() {
    model(|| {
        // Four publishes: value 5 reuses buffer 1, which held value 1, so a reader
        // still copying value 1 there must notice and move on.
        let (mut writer, reader) = crate::latest::Latest::<[u64; 2]>::new_for_loom([1, 1]);
        let w = thread::spawn(move || {
            for s in 2..=5u64 {
                assert_eq!(writer.publish([s, s]).unwrap(), s);
            }
        });
        let mut last = 0;
        for _ in 0..2 {
            let (seq, v) = reader.read().unwrap();
            assert_eq!(v, [seq, seq], "torn or mismatched value");
            assert!(seq >= last, "went back from {last} to {seq}");
            last = seq;
        }
        w.join().unwrap();
        assert_eq!(reader.read().unwrap(), (5, [5, 5]));
    });
}

#[test]
fn loom_latest_wait_newer_is_woken_by_a_publish() {
    model(|| {
        let (mut writer, reader) = crate::latest::Latest::<u64>::new_for_loom(1);
        let w = thread::spawn(move || {
            writer.publish(2).unwrap();
            writer // dropped after the join: leaving must not race the wake-up
        });
        // Spins, then sleeps on the parker: a lost wake-up would hang the model.
        assert_eq!(reader.wait_newer(1).unwrap(), (2, 2));
        drop(w.join().unwrap());
    });
}

fn put_spin(q: &Queue<u32>, v: u32) {
    let mut v = v;
    loop {
        match q.try_put(v) {
            Ok(()) => return,
            Err(e) => {
                v = e.into_inner();
                thread::yield_now();
            }
        }
    }
}

fn get_spin(q: &Queue<u32>) -> u32 {
    loop {
        if let Ok(v) = q.try_get() {
            return v;
        }
        thread::yield_now();
    }
}

#[test]
fn loom_queue_two_producers_each_item_exactly_once() {
    model(|| {
        let (q, q2) = Queue::<u32>::new_for_loom(2);
        let q2 = std::sync::Arc::new(q2);
        let p1 = {
            let q = q2.clone();
            thread::spawn(move || put_spin(&q, 1))
        };
        let p2 = {
            let q = q2.clone();
            thread::spawn(move || put_spin(&q, 2))
        };
        let a = get_spin(&q);
        let b = get_spin(&q);
        p1.join().unwrap();
        p2.join().unwrap();
        let mut got = [a, b];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(q.try_get().is_err());
    });
}

#[test]
fn loom_queue_items_cross_laps_of_one_slot() {
    model(|| {
        // Capacity 1: the items go through the same slot in successive laps.
        let (q, q2) = Queue::<u32>::new_for_loom(1);
        let c = thread::spawn(move || {
            let a = get_spin(&q2);
            let b = get_spin(&q2);
            (a, b)
        });
        put_spin(&q, 10);
        put_spin(&q, 20);
        assert_eq!(c.join().unwrap(), (10, 20));
    });
}

use crate::topic::{
    Block, Overwrite, ReadError as TopicReadError, Topic, WriteError as TopicWriteError,
};

/// The Overwrite model: the reader copies 16-byte messages while the writer
/// overwrites them; `validate: false` skips the seqlock check.
fn topic_overwrite_model(validate: bool) {
    model(move || {
        // 64-byte topic: a 16-byte message takes a 32-byte record, so two fit and the
        // third overwrites the first while the reader may be copying it (two payload
        // words each, so a copy that mixed two messages would show two values).
        let (mut writer, reader) = Topic::<Overwrite>::new_for_loom(64, 1);
        let mut sub = reader.subscribe().unwrap();
        if !validate {
            sub = sub.unchecked();
        }
        let w = thread::spawn(move || {
            for i in 1..=3u8 {
                writer.write(&[i; 16]).unwrap(); // never waits
            }
            writer.close().unwrap();
        });
        // Every message is either read whole, in order, or counted as missed.
        let mut next = 1u64;
        let mut buf = Vec::new();
        loop {
            match sub.try_read_into(&mut buf) {
                Ok(len) => {
                    assert_eq!(len, 16);
                    assert!(buf.iter().all(|&b| b == buf[0]), "torn: {buf:?}");
                    assert_eq!(u64::from(buf[0]), next, "out of order");
                    next += 1;
                }
                Err(TopicReadError::Lagged(n)) => {
                    assert!(n > 0);
                    next += n;
                }
                Err(TopicReadError::Empty) => thread::yield_now(),
                Err(TopicReadError::Closed) => break,
                Err(e) => panic!("read failed: {e}"),
            }
        }
        assert_eq!(next, 4, "every message read or counted as missed");
        w.join().unwrap();
    });
}

#[test]
fn loom_topic_overwrite_reader_gets_whole_messages_or_lagged_never_a_mix() {
    topic_overwrite_model(true);
}

/// Without the re-check of `head` after the copy, loom finds the interleaving in which
/// the reader returns a torn (or overwritten) message: the model sees the race the
/// seqlock closes.
#[test]
#[should_panic(expected = "torn")]
fn loom_topic_overwrite_without_the_seqlock_check_returns_a_torn_message() {
    topic_overwrite_model(false);
}

#[test]
fn loom_topic_block_writer_sleeps_until_the_slowest_reader_frees_room() {
    model(|| {
        // 64-byte topic; records of 48, 32 and 48 bytes: the second and third each
        // need a wrap marker (published alone) and room that only the reader's
        // progress frees (its cursor stores, after a record and after skipping a
        // marker, and their wakes). The reader sleeps until the writer publishes. A
        // lost wake-up on either side blocks for ever (loom's futex stand-in returns
        // only on a change of the word).
        let (mut writer, reader) = Topic::<Block>::new_for_loom(64, 1);
        let mut sub = reader.subscribe().unwrap();
        let msgs: [&[u8]; 3] = [&[1; 24], &[2; 16], &[3; 24]];
        let w = thread::spawn(move || {
            for m in msgs {
                writer.write(m).unwrap();
            }
            writer.close().unwrap();
            assert!(matches!(
                writer.write(&[4; 16]),
                Err(TopicWriteError::Closed)
            ));
        });
        let mut buf = Vec::new();
        for m in msgs {
            sub.read_into(&mut buf).unwrap();
            assert_eq!(buf, m);
        }
        assert!(matches!(
            sub.read_into(&mut buf),
            Err(TopicReadError::Closed)
        ));
        w.join().unwrap();
    });
}

use crate::channel::{Channel, RecvError, SendError};

/// Sends `v`, yielding while the channel is full.
fn chan_send_spin(ch: &Channel<u64>, v: u64) {
    loop {
        match ch.loom_send(v, false) {
            Ok(()) => return,
            Err(SendError::Full(())) => thread::yield_now(),
            Err(e) => panic!("send failed: {e}"),
        }
    }
}

/// Receives one message, yielding while the channel is empty.
fn chan_recv_spin(ch: &Channel<u64>) -> u64 {
    loop {
        match ch.loom_recv(false) {
            Ok(v) => return v,
            Err(RecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("recv failed: {e}: {}", ch.loom_state()),
        }
    }
}

/// Two senders race for the tail (claim, help the tail along, commit) while one
/// receiver claims: each record arrives exactly once, whole (the payload cells are
/// loom cells: a read not ordered after its write is reported), and the space is
/// reclaimed (head catches up with the tail).
#[test]
fn loom_channel_two_senders_one_receiver_each_record_exactly_once() {
    // Three preemptions: with four this model alone took 6 minutes on the shared
    // 2-vCPU machine; the claim races it checks need two.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let (rx, tx1) = Channel::<u64>::new_for_loom(64, 0);
        let tx2 = tx1.clone();
        rx.loom_register(false, true);
        tx1.loom_register(true, false);
        tx2.loom_register(true, false);
        let s1 = thread::spawn(move || chan_send_spin(&tx1, 11));
        let s2 = thread::spawn(move || chan_send_spin(&tx2, 22));
        let mut got = [chan_recv_spin(&rx), chan_recv_spin(&rx)];
        s1.join().unwrap();
        s2.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [11, 22]);
        // Both senders left (their handles dropped with their threads): drained, so
        // disconnected.
        assert!(matches!(rx.loom_recv(false), Err(RecvError::Disconnected)));
        assert!(rx.is_empty());
    });
}

/// A receiver blocks on an empty channel (spin, then the sleep on the `data` parker;
/// loom's futex returns only when the event word changes): the send must wake it in
/// every interleaving, and the message must be the one sent.
#[test]
fn loom_channel_receiver_asleep_on_empty_is_woken_by_a_send() {
    model(|| {
        let (rx, tx) = Channel::<u64>::new_for_loom(64, 0);
        rx.loom_register(false, true);
        tx.loom_register(true, false);
        let s = thread::spawn(move || {
            chan_send_spin(&tx, 7);
            tx // kept: dropping it would disconnect (another wake-up)
        });
        assert_eq!(rx.loom_recv(true).unwrap(), 7);
        drop(s.join().unwrap());
    });
}

/// A sender blocks on a full channel (32 bytes: one 8-byte record fills it) and sleeps
/// on the `space` parker; the receiver only marks its record DONE and wakes it (it
/// reclaims nothing), so the sender must reclaim the space itself after waking: every
/// interleaving must end with both messages received in order.
#[test]
fn loom_channel_sender_asleep_on_full_is_woken_and_reclaims() {
    model(|| sender_asleep_after_one_is_woken_by_its_receive(32, 0));
}

/// The model of the two "sender asleep after one message" tests: a channel of
/// `capacity` bytes and bound `max_messages` (0: none) that one message fills; a
/// second send sleeps until a receiver takes the first; both arrive in order.
fn sender_asleep_after_one_is_woken_by_its_receive(capacity: u32, max_messages: u32) {
    let (rx, tx) = Channel::<u64>::new_for_loom(capacity, max_messages);
    rx.loom_register(false, true);
    tx.loom_register(true, false);
    tx.loom_send(1, false).unwrap();
    assert!(matches!(tx.loom_send(9, false), Err(SendError::Full(()))));
    let r = thread::spawn(move || {
        let a = chan_recv_spin(&rx);
        let b = chan_recv_spin(&rx);
        (a, b, rx)
    });
    tx.loom_send(2, true).unwrap();
    let (a, b, rx) = r.join().unwrap();
    assert_eq!((a, b), (1, 2));
    drop(rx);
}

/// A sender blocks on a channel holding three records (64 bytes) and sleeps on
/// `space`; a receiver drains all four. Only the receiver whose record is at `head`
/// wakes it (the other DONEs find `head` below their record): the sender must still
/// be woken and reclaim in every interleaving.
#[test]
fn loom_channel_sender_asleep_behind_three_records_is_woken_by_the_one_at_head() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let (rx, tx) = Channel::<u64>::new_for_loom(64, 0);
        rx.loom_register(false, true);
        tx.loom_register(true, false);
        for v in 1..=3 {
            tx.loom_send(v, false).unwrap();
        }
        let r = thread::spawn(move || {
            let got: Vec<u64> = (0..4).map(|_| chan_recv_spin(&rx)).collect();
            (got, rx)
        });
        tx.loom_send(4, true).unwrap();
        let (got, rx) = r.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
        drop(rx);
    });
}

/// The bound in messages: a sender blocks on a channel holding its one allowed
/// message (128 bytes, so the bytes never bind) and sleeps on `space`; the receiver's
/// take is what lets it on (the record at `head` turns DONE: the same wake-up as for
/// the bytes). Every interleaving must end with both messages received in order.
#[test]
fn loom_channel_sender_asleep_at_the_message_bound_is_woken_by_a_receive() {
    model(|| sender_asleep_after_one_is_woken_by_its_receive(128, 1));
}

/// The bound in messages is exact between racing senders: with one of two allowed
/// messages queued, two senders try to send at once (claims, tail helping and the
/// count all interleaved) and exactly one gets in.
#[test]
fn loom_channel_two_senders_racing_for_the_last_place_under_the_bound_one_wins() {
    model(|| {
        let (rx, tx1) = Channel::<u64>::new_for_loom(128, 2);
        let tx2 = tx1.clone();
        rx.loom_register(false, true);
        tx1.loom_register(true, false);
        tx2.loom_register(true, false);
        tx1.loom_send(1, false).unwrap();
        let s = thread::spawn(move || (tx2.loom_send(22, false).is_ok(), tx2));
        let mine = tx1.loom_send(11, false).is_ok();
        let (theirs, tx2) = s.join().unwrap();
        assert!(mine ^ theirs, "exactly one sender gets the last place");
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.loom_recv(false).unwrap(), 1);
        let second = rx.loom_recv(false).unwrap();
        assert_eq!(second, if mine { 11 } else { 22 });
        drop((tx1, tx2));
    });
}

/// A `Select` over two channels sleeps on both `data` parkers at once (one multi-word
/// wait, modelled as "returns once any word changed"); a send into the second must
/// wake it in every interleaving, and the index is the second's. The select registers
/// its handles as receivers inside the model: the send, racing that first
/// registration, must never see the channel as disconnected (it did, with a `Relaxed`
/// "ever attached" flag).
#[test]
fn loom_select_asleep_on_two_channels_is_woken_by_a_send_into_either() {
    model(|| {
        let (rx1, _tx1) = Channel::<u64>::new_for_loom(64, 0);
        let (rx2, tx2) = Channel::<u64>::new_for_loom(64, 0);
        tx2.loom_register(true, false);
        let s = thread::spawn(move || {
            chan_send_spin(&tx2, 9);
            tx2 // kept: dropping it would disconnect (another wake-up)
        });
        let mut sel = crate::Select::new();
        sel.recv(&rx1);
        let i = sel.recv(&rx2);
        assert_eq!(sel.ready().unwrap(), i);
        rx2.loom_register(false, true);
        assert_eq!(rx2.loom_recv(false).unwrap(), 9);
        drop(s.join().unwrap());
    });
}

// No loom model of the receivers' hand-on (a commit wakes a receiver only when its
// record is at `read`; the receiver that claims a record wakes one for the next): the
// model's futex ends every wait on a word once the word changes, so one wake-up
// reaches every sleeper and a missing hand-on cannot show (a model with two sleeping
// receivers also did not finish: over 30 minutes at preemption bound 2, over 10 at
// bound 1). The hand-on is the Dekker pair of `send_core`'s end and `claim_committed`; the
// cross-process tests with three receivers and the torture part exercise it.
