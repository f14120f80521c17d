//! What a blocked waiter costs while nothing happens, and how fast a waiter notices a
//! killed peer. Not a criterion bench (the figures are CPU time and latencies, not
//! iterations): `cargo bench -p shmkit-benches --bench idle`.
//!
//! Idle cost: a forked child blocks (Ring reader on an empty ring, Ring writer on a
//! full one, Queue consumer on an empty queue, Mutex waiter behind a held lock), and
//! its CPU time is read from `/proc/<pid>/schedstat` (nanoseconds on CPU) over a few
//! seconds, after a short warm-up. Target: <= 0.2 ms of CPU per second.
//!
//! Recovery: a holder (a Mutex holder, a Ring writer) is killed with SIGKILL at a random
//! moment while the waiter sleeps; the time from the kill to the waiter's return
//! (`OwnerDied`, `PeerDied`) is measured ~20 times; p50 and p99 (the maximum, with 20
//! samples). Target: p99 < 100 ms.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_testkit::{fork_child, Pipe};
use shmkit_typed::{Queue, ReadError, Ring, SharedValue};

/// Warm-up before measuring (the checks' pace settles within ~150 ms).
const WARM_UP: Duration = Duration::from_millis(500);

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds process `pid` (its main thread) spent on a CPU.
fn cpu_ns(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    s.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("a number")
}

/// CPU ms per second of the blocked child `pid`, over `secs` seconds.
fn idle_cost(pid: i32, secs: u64) -> f64 {
    std::thread::sleep(WARM_UP);
    let (c0, t0) = (cpu_ns(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, t1) = (cpu_ns(pid), Instant::now());
    (c1 - c0) as f64 / 1e6 / (t1 - t0).as_secs_f64()
}

fn report_idle(what: &str, ms_per_s: f64) {
    println!("idle {what:<16} {ms_per_s:>8.3} ms CPU / s");
}

fn idle(secs: u64) {
    // Ring reader on an empty ring; this process holds the writer role.
    {
        let mut ring = Ring::anonymous(4096).expect("ring");
        ring.write(b"hello").expect("claims the writer role");
        let child = fork_child(|| {
            let mut buf = Vec::new();
            while ring.read_into(&mut buf).is_ok() {}
            0
        });
        report_idle("ring reader", idle_cost(child.pid(), secs));
    }
    // Ring writer on a full ring; this process holds the reader role.
    {
        let mut ring = Ring::anonymous(4096).expect("ring");
        let _ = ring.try_read_into(&mut Vec::new()); // claims the reader role
        let child = fork_child(|| {
            while ring.write(&[7u8; 64]).is_ok() {}
            0
        });
        report_idle("ring writer", idle_cost(child.pid(), secs));
    }
    // Queue consumer on an empty queue.
    {
        let q = Queue::<u64>::anonymous(16).expect("queue");
        let child = fork_child(|| {
            while q.get().is_ok() {}
            0
        });
        report_idle("queue consumer", idle_cost(child.pid(), secs));
    }
    // Mutex waiter behind a lock this process holds.
    {
        let v = SharedValue::<u64>::anonymous(0).expect("value");
        let guard = v.lock().expect("lock");
        let child = fork_child(|| {
            let _ = v.lock();
            0
        });
        report_idle("mutex waiter", idle_cost(child.pid(), secs));
        drop(child);
        drop(guard);
    }
}

/// A small LCG: the kill moments only need to spread over the checks' pace.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn report_recovery(what: &str, mut v: Vec<Duration>) {
    let p50 = percentile(&mut v, 0.5);
    let p99 = percentile(&mut v, 0.99);
    println!(
        "recovery {what:<12} p50 {:>7.1} ms  p99 {:>7.1} ms  ({} kills)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        v.len()
    );
}

fn recovery(kills: usize) {
    let mut rng = Lcg(Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id()));
    // Mutex: the holder is killed while a thread of ours waits in lock().
    let mut lat = Vec::new();
    for _ in 0..kills {
        let v = SharedValue::<u64>::anonymous(0).expect("value");
        let locked = Pipe::new();
        let never = Pipe::new();
        let holder = fork_child(|| {
            let _g = v.lock();
            locked.send(1);
            never.recv();
            0
        });
        locked.recv_n(1);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = v.lock();
                tx.send(Instant::now()).expect("send");
                drop(r);
            });
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            let killed = Instant::now();
            holder.kill();
            let got = rx.recv().expect("the waiter returns");
            lat.push(got.saturating_duration_since(killed));
        });
        drop(holder);
    }
    report_recovery("mutex", lat);
    // Ring: the writer is killed while we wait in read.
    let mut lat = Vec::new();
    for _ in 0..kills {
        let mut ring = Ring::anonymous(4096).expect("ring");
        let wrote = Pipe::new();
        let never = Pipe::new();
        let writer = fork_child(|| {
            ring.write(b"x").expect("write");
            wrote.send(1);
            never.recv();
            0
        });
        wrote.recv_n(1);
        let mut buf = Vec::new();
        ring.read_into(&mut buf).expect("the one message");
        let pause = Duration::from_millis(rng.below(400));
        let pid = writer.pid();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(pause);
            let t = Instant::now();
            // SAFETY: SIGKILL to our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            t
        });
        let r = ring.read_into(&mut buf);
        let got = Instant::now();
        let killed = killer.join().expect("killer");
        assert!(matches!(r, Err(ReadError::PeerDied { .. })), "{r:?}");
        lat.push(got.saturating_duration_since(killed));
        drop(writer);
    }
    report_recovery("ring reader", lat);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let secs = env_secs("SHMKIT_IDLE_SECS", 3);
    let kills = env_secs("SHMKIT_KILLS", 20) as usize;
    idle(secs);
    recovery(kills);
}
