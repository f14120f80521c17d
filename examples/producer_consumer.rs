//! Five producers and two consumers share one bounded queue in shared memory; every
//! item is consumed exactly once. `Queue::close()` replaces Python's `None` sentinel:
//! after the last producer finishes, the parent closes the queue, the consumers drain
//! what is left and then see `Closed`.
//!
//! Run: `cargo run --release --example producer_consumer`

#[path = "common/mod.rs"]
mod common;

use shmkit::typed::{GetError, Queue};

const PRODUCERS: u64 = 5;
const CONSUMERS: usize = 2;
const ITEMS_PER_PRODUCER: u64 = 20_000;

/// An item: which producer made it and its number there.
fn item(producer: u64, n: u64) -> u64 {
    producer << 32 | n
}

fn producer(name: &str, id: u64) {
    let queue = Queue::<u64>::open(name).expect("open the queue");
    for n in 0..ITEMS_PER_PRODUCER {
        queue.put(item(id, n)).expect("put");
    }
}

/// Prints the sum and count of what it consumed, so the parent can check exactly-once.
fn consumer(name: &str) {
    let queue = Queue::<u64>::open(name).expect("open the queue");
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        match queue.get() {
            Ok(v) => {
                count += 1;
                sum = sum.wrapping_add(v);
            }
            Err(GetError::Closed) => break,
            Err(e) => panic!("get: {e}"),
        }
    }
    println!("{count} {sum}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--producer") => return producer(&args[1], args[2].parse().expect("id")),
        Some("--consumer") => return consumer(&args[1]),
        _ => {}
    }
    let name = common::run_name("queue");
    let queue = Queue::<u64>::create(&name, 1024).expect("create the queue");
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| common::spawn_self(&["--consumer", &name]))
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| common::spawn_self(&["--producer", &name, &id.to_string()]))
        .collect();
    for p in producers {
        common::output_of(p);
    }
    // All producers are done: instead of one `None` per consumer, close the queue.
    queue.close();
    let (mut count, mut sum) = (0u64, 0u64);
    for (i, c) in consumers.into_iter().enumerate() {
        let out = common::output_of(c);
        let mut it = out
            .split_whitespace()
            .map(|x| x.parse::<u64>().expect("a number"));
        let (n, s) = (it.next().expect("count"), it.next().expect("sum"));
        println!("consumer {i}: consumed {n} items");
        count += n;
        sum = sum.wrapping_add(s);
    }
    let expected_count = PRODUCERS * ITEMS_PER_PRODUCER;
    let expected_sum = (0..PRODUCERS)
        .flat_map(|p| (0..ITEMS_PER_PRODUCER).map(move |n| item(p, n)))
        .fold(0u64, u64::wrapping_add);
    println!("{PRODUCERS} producers put {expected_count} items; {CONSUMERS} consumers got {count}");
    assert_eq!(count, expected_count, "every item consumed once");
    assert_eq!(sum, expected_sum, "no item lost or duplicated");
    println!("OK: every item consumed exactly once");
}
