//! Hostile shared state: a ring, queue or channel whose shared bytes another process scribbled
//! over must give errors (or well-formed messages/items), never a panic, an
//! out-of-bounds access or an endless loop. Property tests over random mutations of a
//! valid ring/queue; `SHMKIT_STRESS=1` runs ten times the cases.

use proptest::prelude::*;
use shmkit_testkit::{stress, SharedRegion};
use shmkit_typed::channel::CHANNEL_HEADER_SIZE;
use shmkit_typed::{Channel, Queue, Ring};

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
            // SAFETY: the region is page aligned, at least `len` bytes, and ours alone.
            let ch = unsafe { Channel::<Vec<u8>>::init(region.as_ptr(), len, CHANNEL_CAP) }
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
