//! Cross-process tests of `Queue<T>`: producers and consumers are forked processes
//! sharing a `MAP_SHARED` anonymous region.

use std::sync::atomic::{AtomicU8, Ordering};

use shmkit_testkit::{fork_child, stress, Child, Exit, Pipe, SharedRegion};
use shmkit_typed::{GetError, Queue};

const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;

fn new_queue(capacity: usize) -> SharedRegion {
    let region = SharedRegion::new(Queue::<u64>::region_size(capacity).unwrap());
    // SAFETY: a fresh, exclusive, page-aligned mapping that outlives every handle.
    unsafe { Queue::<u64>::init(region.as_ptr(), region.len(), capacity) }.expect("init queue");
    region
}

fn attach(region: &SharedRegion) -> Queue<u64> {
    // SAFETY: the region holds an initialised queue and outlives the handle.
    unsafe { Queue::attach(region.as_ptr(), region.len()) }.expect("attach queue")
}

/// One counter per item, in shared memory: consumers count what they receive.
fn counters(region: &SharedRegion, n: usize) -> &[AtomicU8] {
    assert!(region.len() >= n);
    // SAFETY: the region is at least `n` bytes and lives as long as the borrow;
    // AtomicU8 has the size and alignment of u8 and zero is a valid value.
    unsafe { std::slice::from_raw_parts(region.as_ptr() as *const AtomicU8, n) }
}

fn item(producer: u64, seq: u64, per: u64) -> u64 {
    producer * per + seq
}

fn spawn_producers(q: &SharedRegion, per: u64) -> Vec<Child> {
    (0..PRODUCERS)
        .map(|p| {
            fork_child(move || {
                let queue = attach(q);
                for seq in 0..per {
                    if queue.put(item(p, seq, per)).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect()
}

fn consume(queue: &Queue<u64>, seen: &[AtomicU8], mut per_item: impl FnMut(u64)) -> i32 {
    loop {
        match queue.get() {
            Ok(v) => {
                let Some(c) = seen.get(v as usize) else {
                    return 3;
                };
                c.fetch_add(1, Ordering::Relaxed);
                per_item(v);
            }
            Err(GetError::Closed) => return 0,
            Err(_) => return 2,
        }
    }
}

#[test]
fn four_producers_four_consumers_every_item_exactly_once() {
    let per = stress(100_000, 1_000_000) as u64;
    let total = (per * PRODUCERS) as usize;
    let q = new_queue(1024);
    let seen_region = SharedRegion::new(total);
    let seen = counters(&seen_region, total);
    let consumers: Vec<Child> = (0..CONSUMERS)
        .map(|_| fork_child(|| consume(&attach(&q), seen, |_| {})))
        .collect();
    let producers = spawn_producers(&q, per);
    for p in producers {
        p.join_ok();
    }
    attach(&q).close();
    for c in consumers {
        c.join_ok();
    }
    let wrong: Vec<usize> = (0..total)
        .filter(|&i| seen[i].load(Ordering::Relaxed) != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} items not seen exactly once, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(attach(&q).is_empty());
}

#[test]
fn consumer_killed_mid_run_loses_at_most_one_item() {
    let per = stress(50_000, 1_000_000) as u64;
    let total = (per * PRODUCERS) as usize;
    let q = new_queue(256);
    let seen_region = SharedRegion::new(total);
    let seen = counters(&seen_region, total);
    let victim_ready = Pipe::new();
    // The victim signals after 1000 items and keeps consuming until it is killed.
    let mut victim = fork_child(|| {
        let queue = attach(&q);
        let mut n = 0u32;
        consume(&queue, seen, |_| {
            n += 1;
            if n == 1000 {
                victim_ready.send(1);
            }
        })
    });
    let consumers: Vec<Child> = (1..CONSUMERS)
        .map(|_| fork_child(|| consume(&attach(&q), seen, |_| {})))
        .collect();
    let producers = spawn_producers(&q, per);
    victim_ready.recv_n(1);
    victim.kill();
    assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
    for p in producers {
        p.join_ok();
    }
    attach(&q).close();
    for c in consumers {
        c.join_ok();
    }
    let dup = (0..total)
        .filter(|&i| seen[i].load(Ordering::Relaxed) > 1)
        .count();
    let missing = (0..total)
        .filter(|&i| seen[i].load(Ordering::Relaxed) == 0)
        .count();
    assert_eq!(dup, 0, "items delivered twice");
    assert!(
        missing <= 1,
        "{missing} items unaccounted (at most the one in flight)"
    );
}

#[test]
fn producer_killed_mid_run_does_not_wedge_the_queue() {
    let per = stress(50_000, 1_000_000) as u64;
    let q = new_queue(64);
    let total = (per * (PRODUCERS + 1)) as usize;
    let seen_region = SharedRegion::new(total);
    let seen = counters(&seen_region, total);
    let ready = Pipe::new();
    // An extra producer (number PRODUCERS) that is killed while putting.
    let mut victim = fork_child(|| {
        let queue = attach(&q);
        for seq in 0.. {
            if queue.put(item(PRODUCERS, seq % per, per)).is_err() {
                return 1;
            }
            if seq == 1000 {
                ready.send(1);
            }
        }
        0
    });
    let consumers: Vec<Child> = (0..CONSUMERS)
        .map(|_| fork_child(|| consume(&attach(&q), seen, |_| {})))
        .collect();
    ready.recv_n(1);
    let producers = spawn_producers(&q, per);
    victim.kill();
    assert_eq!(victim.wait(), Exit::Signal(libc::SIGKILL));
    for p in producers {
        p.join_ok();
    }
    attach(&q).close();
    for c in consumers {
        c.join_ok();
    }
    // Every item of the surviving producers arrived exactly once.
    let first = (PRODUCERS * per) as usize;
    let wrong = (0..first)
        .filter(|&i| seen[i].load(Ordering::Relaxed) != 1)
        .count();
    assert_eq!(wrong, 0);
}

#[test]
fn named_queue_between_unrelated_processes_and_type_check() {
    use shmkit_testkit::{child_role, spawn_role, unique_name, ShmCleanup};
    if let Some(role) = child_role() {
        assert_eq!(role, "producer");
        let name = std::env::var("QUEUE_NAME").unwrap();
        let q = Queue::<u64>::open_or_create(&name, 64).expect("open by name");
        for i in 0..10_000u64 {
            q.put(i).unwrap();
        }
        q.close();
        return;
    }
    let name = unique_name("queue");
    let _cleanup = ShmCleanup::new(&name);
    let q = Queue::<u64>::create(&name, 64).expect("create");
    match Queue::<f32>::open(&name) {
        Err(shmkit_typed::OpenError::TypeMismatch { expected, found }) => {
            assert!(expected.contains("f32"), "{expected}");
            assert!(found.contains("u64"), "{found}");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let mut child = spawn_role(
        shmkit_testkit::test_path!(named_queue_between_unrelated_processes_and_type_check),
        "producer",
        &[("QUEUE_NAME", &name)],
    );
    let mut next = 0u64;
    loop {
        match q.get() {
            Ok(v) => {
                assert_eq!(v, next);
                next += 1;
            }
            Err(GetError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, 10_000);
    assert!(child.wait().unwrap().success());
}

#[test]
fn anonymous_queue_is_shared_with_forked_children() {
    let q = Queue::<u64>::anonymous(16).expect("anonymous queue");
    let producer = fork_child(|| {
        for i in 0..5000u64 {
            if q.put(i * 3).is_err() {
                return 1;
            }
        }
        0
    });
    let sum: u64 = (0..5000).map(|_| q.get().unwrap()).sum();
    assert_eq!(sum, 3 * 4999 * 5000 / 2);
    producer.join_ok();
}

/// A consumer that is alive but hung (holds no claim, takes nothing) leaves a full
/// queue full: a timed put hands the item back with `Timeout`; a producer that hangs
/// likewise leaves consumers a `Timeout`, never an error about a departed peer.
#[test]
fn hung_peers_make_timed_calls_time_out() {
    let region = new_queue(4);
    let attached = Pipe::new();
    let release = Pipe::new();
    let consumer = fork_child(|| {
        let q = attach(&region);
        if q.get().is_err() {
            return 1;
        }
        attached.send(1);
        release.recv();
        0
    });
    let q = attach(&region);
    q.put(1).expect("first item");
    attached.recv_n(1);
    for i in 0..4 {
        q.put(10 + i).expect("room for four");
    }
    match q.put_timeout(99, std::time::Duration::from_millis(50)) {
        Err(shmkit_typed::PutError::Timeout(99)) => {}
        other => panic!("expected Timeout(99), got {other:?}"),
    }
    release.send(1);
    consumer.join_ok();
    for i in 0..4 {
        assert_eq!(q.get(), Ok(10 + i));
    }
    assert_eq!(
        q.get_timeout(std::time::Duration::from_millis(50)),
        Err(GetError::Timeout)
    );
}
