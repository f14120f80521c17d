//! A market-data ticker: one publisher, several subscriber processes started and
//! stopped while it runs. The topic is lossy (`Overwrite`): the publisher never waits,
//! and a subscriber that falls behind is told how many ticks it missed
//! (`ReadError::Lagged(n)`) and continues from the oldest tick still there. Each
//! subscriber checks that the ticks it sees are whole and in order (with the missed
//! ones accounted for exactly), then reports what it saw and leaves; one is slow on
//! purpose (it lags), one joins late.
//!
//! Run: `cargo run --release --example ticker`

#[path = "common/mod.rs"]
mod common;

use shmkit::typed::topic::{Overwrite, ReadError, TopicConfig, TypedTopic};
use shmkit::{Pod, Zeroable};

/// One tick. `check` is derived from the rest, so a torn tick would show.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmkit::bytemuck")]
#[repr(C)]
struct Tick {
    seq: u64,
    price_cents: u64,
    check: u64,
}

impl Tick {
    fn new(seq: u64) -> Tick {
        let price_cents = 10_000 + (seq * 7919) % 500;
        Tick {
            seq,
            price_cents,
            check: seq.rotate_left(17) ^ price_cents,
        }
    }

    fn is_whole(&self) -> bool {
        self.check == self.seq.rotate_left(17) ^ self.price_cents
    }
}

/// Ticks each subscriber reads before it leaves.
const READS: u64 = 20_000;

/// Reads `READS` ticks (or until the topic closes), checking them; prints a summary.
fn subscriber(name: &str, id: &str) {
    let topic = TypedTopic::<Tick, Overwrite>::open(name).expect("open the topic");
    let mut sub = topic.subscribe().expect("a free reader slot");
    let (mut read, mut missed, mut lags) = (0u64, 0u64, 0u64);
    let mut first = None;
    let mut next = None::<u64>;
    while read < READS {
        match sub.read_value() {
            Ok(tick) => {
                assert!(tick.is_whole(), "subscriber {id}: torn tick {tick:?}");
                if let Some(want) = next {
                    assert_eq!(tick.seq, want, "subscriber {id}: out of order");
                }
                first.get_or_insert(tick.seq);
                next = Some(tick.seq + 1);
                read += 1;
                if id == "slow" && read % 2000 == 0 {
                    // A subscriber busy elsewhere now and then: the publisher laps it.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            Err(ReadError::Lagged(n)) => {
                missed += n;
                lags += 1;
                next = next.map(|s| s + n);
            }
            Err(ReadError::Closed) => break,
            Err(e) => panic!("subscriber {id}: {e}"),
        }
    }
    println!(
        "subscriber {id}: read {read} ticks from #{}, missed {missed} in {lags} lag events, all whole and in order",
        first.unwrap_or(0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--subscriber") {
        return subscriber(&args[1], &args[2]);
    }
    let name = common::run_name("ticker");
    // 64 KiB: about 1,600 ticks of 24 bytes (40 with their record header).
    let config = TopicConfig::new(64 << 10).max_readers(8);
    let mut topic = TypedTopic::<Tick, Overwrite>::create(&name, config).expect("create the topic");
    // Subscribers print their summaries to our stdout; we check how they ended.
    let mut subs: Vec<_> = ["a", "b", "slow"]
        .iter()
        .map(|id| {
            (
                common::spawn_self_inherit(&["--subscriber", &name, id]),
                None,
            )
        })
        .collect();
    let mut seq = 0u64;
    // Publish until every subscriber has left; start one more while it runs.
    loop {
        for _ in 0..1000 {
            topic.write_value(&Tick::new(seq)).expect("publish"); // never waits
            seq += 1;
        }
        if subs.len() == 3 && seq >= 200_000 {
            let late = common::spawn_self_inherit(&["--subscriber", &name, "late"]);
            subs.push((late, None));
        }
        for (child, status) in &mut subs {
            if status.is_none() {
                *status = child.try_wait().expect("poll a subscriber");
            }
        }
        if subs.len() == 4 && subs.iter().all(|(_, status)| status.is_some()) {
            break;
        }
        // A ticker, not a flood: a thousand ticks per millisecond or so.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    topic.close().expect("close");
    println!("publisher: {seq} ticks published");
    for (_, status) in &subs {
        let status = status.expect("every subscriber ended");
        assert!(status.success(), "a subscriber failed: {status}");
    }
    println!("OK: every subscriber saw whole ticks in order, missed ones counted");
}
