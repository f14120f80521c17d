//! Hostile shared state: a ring, queue or channel whose shared bytes another process scribbled
//! over must give errors (or well-formed messages/items), never a panic, an
//! out-of-bounds access or an endless loop. Property tests over random mutations of a
//! valid ring/queue; `SHMKIT_STRESS=1` runs ten times the cases.

use proptest::prelude::*;
use shmkit_testkit::{stress, SharedRegion};
use shmkit_typed::channel::CHANNEL_HEADER_SIZE;
use shmkit_typed::{Channel, ChannelBounds, Queue, Ring};

const RING_CAP: usize = 4096;
const QUEUE_CAP: usize = 16;
const CHANNEL_CAP: usize = 1024;

fn cases() -> u32 {
    stress(500, 5000) as u32
}

/// Writes `(offset, byte)` mutations into the region, offsets taken modulo its length.
fn scribble(region: &SharedRegion, len: usize, mutations: &[(usize, u8)]) {
    for &(off, byte) in mutations {
        // SAFETY: `off % len` is inside the mapped region; nothing else uses it now.
        unsafe { region.as_ptr().add(off % len).write_volatile(byte) };
    }
}

/// Mutations biased towards the control block, where indices and lengths live.
fn mutations(header: usize, len: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    let offset = prop_oneof![3 => 0..header, 1 => 0..len];
    prop::collection::vec((offset, any::<u8>()), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_ring_state_is_an_error_or_a_message_never_a_panic(
        sent in prop::collection::vec(1usize..600, 0..12),
        muts in mutations(512, Ring::region_size(RING_CAP)),
    ) {
        let len = Ring::region_size(RING_CAP);
        let region = SharedRegion::new(len);
        {
            // SAFETY: the region is page aligned, `len` bytes, and ours alone.
            let mut ring = unsafe { Ring::init(region.as_ptr(), len, RING_CAP) }.expect("init");
            for (i, n) in sent.iter().enumerate() {
                if ring.try_write(&vec![i as u8; *n]).is_err() {
                    break;
                }
            }
            std::mem::forget(ring); // keep the roles as a live process would leave them
        }
        scribble(&region, len, &muts);
        // SAFETY: as above; attach must validate everything it reads.
        if let Ok(mut ring) = unsafe { Ring::attach(region.as_ptr(), len) } {
            for _ in 0..64 {
                match ring.try_read_with(|m| m.len()) {
                    Ok(n) => prop_assert!(n <= ring.max_message_len()),
                    Err(_) => break,
                }
            }
            let _ = ring.try_write(b"after the scribble");
            let _ = ring.try_write(&[0u8; RING_CAP / 2]);
            std::mem::forget(ring);
        }
    }

    #[test]
    fn random_queue_state_is_an_error_or_an_item_never_a_panic(
        put in 0usize..QUEUE_CAP,
        taken in 0usize..QUEUE_CAP,
        muts in mutations(512, Queue::<u64>::region_size(QUEUE_CAP).expect("size")),
    ) {
        let len = Queue::<u64>::region_size(QUEUE_CAP).expect("size");
        let region = SharedRegion::new(len.next_multiple_of(4096));
        {
            // SAFETY: the region is page aligned, at least `len` bytes, and ours alone.
            let q = unsafe { Queue::<u64>::init(region.as_ptr(), len, QUEUE_CAP) }.expect("init");
            for i in 0..put {
                let _ = q.try_put(i as u64);
            }
            for _ in 0..taken.min(put) {
                let _ = q.try_get();
            }
        }
        scribble(&region, len, &muts);
        // SAFETY: as above; attach must validate everything it reads.
        if let Ok(q) = unsafe { Queue::<u64>::attach(region.as_ptr(), len) } {
            for _ in 0..2 * QUEUE_CAP {
                if q.try_get().is_err() {
                    break;
                }
            }
            for i in 0..2 * QUEUE_CAP {
                if q.try_put(i as u64).is_err() {
                    break;
                }
            }
            let _ = (q.len(), q.is_empty(), q.is_full());
        }
    }

    #[test]
    fn random_channel_state_is_an_error_or_a_message_never_a_panic(
        sent in prop::collection::vec(0usize..300, 0..12),
        taken in 0usize..12,
        bound in prop::option::of(1usize..8),
        muts in prop::collection::vec(
            (
                prop_oneof![
                    2 => 0..640usize,
                    2 => CHANNEL_HEADER_SIZE..CHANNEL_HEADER_SIZE + CHANNEL_CAP,
                    1 => 0..CHANNEL_HEADER_SIZE + CHANNEL_CAP,
                ],
                any::<u8>(),
            ),
            1..12,
        ),
    ) {
        let len = Channel::<Vec<u8>>::region_size(CHANNEL_CAP);
        let region = SharedRegion::new(len.next_multiple_of(4096));
        {
            let bounds = ChannelBounds { bytes: CHANNEL_CAP, messages: bound };
            // SAFETY: the region is page aligned, at least `len` bytes, and ours alone.
            let ch = unsafe { Channel::<Vec<u8>>::init(region.as_ptr(), len, bounds) }
                .expect("init");
            for (i, n) in sent.iter().enumerate() {
                if ch.try_send(vec![i as u8; *n]).is_err() {
                    break;
                }
            }
            for _ in 0..taken {
                let _ = ch.try_recv();
            }
            std::mem::forget(ch); // keep its registry entries as a live process would
        }
        scribble(&region, len, &muts);
        // SAFETY: as above; attach must validate everything it reads, and every later
        // call every stamp and cursor.
        if let Ok(ch) = unsafe { Channel::<Vec<u8>>::attach(region.as_ptr(), len) } {
            for _ in 0..16 {
                match ch.try_recv_with(|m| m.len()) {
                    Ok(n) => prop_assert!(n <= ch.max_message_len()),
                    Err(_) => break,
                }
            }
            let _ = ch.recv_timeout(std::time::Duration::from_millis(1));
            let _ = ch.try_send(b"after the scribble".to_vec());
            let _ = ch.send_timeout(vec![0u8; CHANNEL_CAP / 2], std::time::Duration::from_millis(1));
            let _ = (ch.len(), ch.is_empty(), ch.is_corrupt());
        }
    }
}

mod topic {
    use super::*;
    use shmkit_typed::topic::{Block, Overwrite, Topic, TopicConfig, TopicPolicy};

    const TOPIC_CAP: usize = 1024;
    const READERS: u32 = 4;

    /// Writes `sent` messages into a fresh topic with one subscriber joined before
    /// them, scribbles `muts` over the payload, then reads, writes and opens again:
    /// errors or well-formed messages, never a panic or an endless loop.
    fn scribbled_topic<P: TopicPolicy>(sent: &[usize], muts: &[(usize, u8)]) {
        let config = TopicConfig::new(TOPIC_CAP).max_readers(READERS);
        let mut writer = Topic::<P>::anonymous(config).expect("create");
        let reader = writer.reader_handle().expect("reopen");
        let mut sub = reader.subscribe().expect("a free slot");
        for (i, n) in sent.iter().enumerate() {
            if writer.try_write(&vec![i as u8; *n]).is_err() {
                break;
            }
        }
        let seg = writer.segment().expect("a segment");
        let (ptr, len) = (seg.payload_ptr(), config.region_size());
        for &(off, byte) in muts {
            // SAFETY: `off % len` is inside the payload; the handles of this test
            // touch it only through atomics, and none runs now.
            unsafe { ptr.add(off % len).write_volatile(byte) };
        }
        let mut buf = Vec::new();
        for _ in 0..64 {
            match sub.try_read_into(&mut buf) {
                Ok(n) => assert!(n <= writer.max_message_len() && n == buf.len()),
                Err(_) => break,
            }
        }
        for _ in 0..8 {
            let _ = writer.try_write(b"after the scribble");
        }
        for _ in 0..64 {
            if sub.try_read_into(&mut buf).is_err() {
                break;
            }
        }
        // Opening validates the header it finds: an error or a usable handle.
        if let Ok(again) = writer.reader_handle() {
            if let Ok(mut s) = again.subscribe() {
                let _ = s.try_read_into(&mut buf);
            }
            let _ = again.readers();
        }
        drop(sub);
    }

    /// The case the property first found: a `head` off a record boundary (byte 144).
    #[test]
    fn an_unaligned_head_is_corrupt_not_a_panic() {
        scribbled_topic::<Overwrite>(&[], &[(144, 17)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn random_topic_state_is_an_error_or_a_message_never_a_panic(
            sent in prop::collection::vec(1usize..300, 0..12),
            muts in mutations(
                shmkit_typed::topic::TOPIC_HEADER_SIZE + READERS as usize * 128,
                TopicConfig::new(TOPIC_CAP).max_readers(READERS).region_size(),
            ),
            overwrite in any::<bool>(),
        ) {
            if overwrite {
                scribbled_topic::<Overwrite>(&sent, &muts);
            } else {
                scribbled_topic::<Block>(&sent, &muts);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 5, ..ProptestConfig::default() })]

    #[test]
    fn random_latest_state_is_refused_at_open_or_reads_as_a_value_or_corrupt_never_a_panic(
        published in 0u64..9,
        muts in prop::collection::vec(
            (prop_oneof![3 => 0usize..384, 1 => 0usize..shmkit_typed::Latest::<[u64; 3]>::region_size()], any::<u8>()),
            1..12,
        ),
    ) {
        use shmkit_typed::{Latest, LatestError};
        let name = shmkit_testkit::unique_name("fuzz-latest");
        let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
        let mut made = Latest::<[u64; 3]>::create(&name, [1; 3]).expect("create");
        for s in 0..published {
            made.publish([s + 2; 3]).expect("publish");
        }
        let len = made.segment().payload_len();
        let ptr = made.segment().payload_ptr();
        for &(off, byte) in &muts {
            // SAFETY: `off % len` is inside the mapped payload; the writer is idle.
            unsafe { ptr.add(off % len).write_volatile(byte) };
        }
        std::mem::forget(made); // a writer that still holds its role, as if alive
        // The name stays: `_cleanup` removes it.
        if let Ok(mut cell) = Latest::<[u64; 3]>::open(&name) {
            match cell.read() {
                Ok((seq, v)) => prop_assert!(seq > 0 && v.len() == 3),
                Err(LatestError::Corrupt { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
            let _ = cell.wait_newer_timeout(u64::MAX, std::time::Duration::ZERO);
            match cell.publish([7; 3]) {
                Ok(_) | Err(LatestError::RoleTaken { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
