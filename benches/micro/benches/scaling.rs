//! How shmkit's figures move with the number of processes (the 2-process figures are
//! `shmkit bench`'s and `benches/mutex.rs`'s). Not a criterion bench: each case forks
//! its processes once and times the whole run. `cargo bench -p shmkit-benches --bench
//! scaling` (`SHMKIT_SCALING_ITEMS` sets the items per case, default 400,000).
//!
//! - Queue: `P` producer and `P` consumer processes over one `Queue<[u8; 64]>` of 1024
//!   slots; every item is put once and got once (the consumers count, the totals are
//!   checked). Items per second, all producers together.
//! - Mutex: `N` processes each do lock + increment + unlock on one `SharedValue<u64>`;
//!   rounds per second, all together (the final count is checked).
//! - Latest: one writer publishes `[u64; 8]` values as fast as it can while `R` reader
//!   processes read continuously; publishes per second and reads per second per reader
//!   (readers never slow the writer down: it never waits for them).
//!
//! On a 2-vCPU machine every case with more than two processes time-shares the CPUs:
//! read the rows as "what contention and oversubscription cost", not as parallel
//! speed-up.

use std::time::Instant;

use shmkit_testkit::{fork_child, Pipe};
use shmkit_typed::{Latest, Queue, SharedValue};

fn items() -> u64 {
    std::env::var("SHMKIT_SCALING_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000)
}

/// Forks `n` children running `f(i)` after the parent says go; returns the seconds from
/// go to the last child's exit (each must exit 0).
fn timed_children(n: usize, f: impl Fn(usize) -> i32) -> f64 {
    let ready = Pipe::new();
    let go = Pipe::new();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let (ready, go, f) = (&ready, &go, &f);
            fork_child(move || {
                ready.send(1);
                go.recv();
                f(i)
            })
        })
        .collect();
    ready.recv_n(n);
    let start = Instant::now();
    for _ in 0..n {
        go.send(1);
    }
    for c in children {
        c.join_ok();
    }
    start.elapsed().as_secs_f64()
}

fn queue(p: usize, total: u64) {
    let q = Queue::<[u8; 64]>::anonymous(1024).expect("queue");
    let per = total / p as u64;
    let got = SharedValue::<u64>::anonymous(0).expect("counter");
    let secs = timed_children(2 * p, |i| {
        if i < p {
            for k in 0..per {
                let mut item = [0u8; 64];
                item[..8].copy_from_slice(&k.to_le_bytes());
                if q.put(item).is_err() {
                    return 1;
                }
            }
            0
        } else {
            let mut n = 0u64;
            // Consumers stop on Closed: the last producer's exit is not a signal, so
            // each consumer takes its share and leaves.
            for _ in 0..per {
                if q.get().is_err() {
                    return 2;
                }
                n += 1;
            }
            got.update(|g| *g += n).map_or(3, |()| 0)
        }
    });
    let moved = got.get().expect("count");
    assert_eq!(moved, per * p as u64, "every item got once");
    println!(
        "queue      {p} producers x {p} consumers  {:>8.2} M items/s",
        moved as f64 / secs / 1e6
    );
}

fn mutex(n: usize, total: u64) {
    let v = SharedValue::<u64>::anonymous(0).expect("value");
    let per = total / n as u64;
    let secs = timed_children(n, |_| {
        for _ in 0..per {
            if v.update(|x| *x += 1).is_err() {
                return 1;
            }
        }
        0
    });
    assert_eq!(v.get().expect("count"), per * n as u64);
    println!(
        "mutex      {n} processes                 {:>8.2} M rounds/s ({:.0} ns per round)",
        (per * n as u64) as f64 / secs / 1e6,
        secs * 1e9 / (per * n as u64) as f64
    );
}

fn latest(readers: usize, total: u64) {
    let name = shmkit_testkit::unique_name("scaling-latest");
    let _cleanup = shmkit_testkit::ShmCleanup::new(&name);
    let _cell = Latest::<[u64; 8]>::create(&name, [0; 8]).expect("latest");
    let reads = SharedValue::<u64>::anonymous(0).expect("counter");
    let stop = total + 1;
    let secs = timed_children(readers + 1, |i| {
        let Ok(mut cell) = Latest::<[u64; 8]>::open(&name) else {
            return 1;
        };
        if i == 0 {
            for s in 1..=stop {
                if cell.publish([s; 8]).is_err() {
                    return 2;
                }
            }
            0
        } else {
            let mut n = 0u64;
            loop {
                match cell.get() {
                    Ok(v) if v.iter().all(|&w| w == v[0]) => {
                        n += 1;
                        if v[0] == stop {
                            break;
                        }
                    }
                    _ => return 3,
                }
            }
            reads.update(|r| *r += n).map_or(4, |()| 0)
        }
    });
    let per_reader = if readers == 0 {
        String::new()
    } else {
        format!(
            ", {:.2} M reads/s per reader",
            reads.get().expect("reads") as f64 / readers as f64 / secs / 1e6
        )
    };
    println!(
        "latest     1 writer, {readers:>2} readers        {:>8.2} M publishes/s{per_reader}",
        stop as f64 / secs / 1e6
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let total = items();
    println!("scaling: {total} items per case");
    for p in [1, 2, 4] {
        queue(p, total);
    }
    for n in [1, 2, 4, 8] {
        mutex(n, total);
    }
    for r in [0, 1, 4, 16] {
        latest(r, total);
    }
}
