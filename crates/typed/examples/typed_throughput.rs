//! Quick two-process throughput check of Ring and Queue beside a pipe (the lead's
//! criterion benches in `benches/` are the reference; this is a smoke measurement).
//!
//! cargo run --release -p shmkit-typed --example typed_throughput

use std::time::{Duration, Instant};

use shmkit_testkit::{fork_child, Pipe};
use shmkit_typed::{Queue, Ring};

const RUN: Duration = Duration::from_millis(700);

fn ring_rate(size: usize) -> (f64, f64) {
    let mut ring = Ring::anonymous(4 << 20).unwrap();
    let n = (2_000_000_000 / (size + 8)).clamp(10_000, 20_000_000) as u64;
    let writer = fork_child(|| {
        let msg = vec![7u8; size];
        let start = Instant::now();
        let mut i = 0;
        while i < n && (i & 1023 != 0 || start.elapsed() < RUN) {
            if ring.write(&msg).is_err() {
                return 1;
            }
            i += 1;
        }
        i32::from(ring.close().is_err())
    });
    let start = Instant::now();
    let mut count = 0u64;
    while ring.read_with(|m| m.len()).is_ok() {
        count += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    writer.join_ok();
    (count as f64 / secs, count as f64 * size as f64 / secs)
}

fn pipe_rate(size: usize) -> (f64, f64) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let writer = fork_child(|| {
        let msg = vec![7u8; size];
        let start = Instant::now();
        while start.elapsed() < RUN {
            for _ in 0..64 {
                let mut off = 0;
                while off < size {
                    // SAFETY: writing from a live buffer into our pipe.
                    let r = unsafe { libc::write(fds[1], msg[off..].as_ptr().cast(), size - off) };
                    if r <= 0 {
                        return 1;
                    }
                    off += r as usize;
                }
            }
        }
        0
    });
    // SAFETY: closing our copy of the write end so read sees EOF when the child ends.
    unsafe { libc::close(fds[1]) };
    let mut buf = vec![0u8; size];
    let start = Instant::now();
    let mut bytes = 0usize;
    loop {
        // SAFETY: reading into a live buffer of `size` bytes (whole message, like a
        // message-oriented reader would).
        let r = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), size) };
        if r <= 0 {
            break;
        }
        bytes += r as usize;
    }
    let secs = start.elapsed().as_secs_f64();
    writer.join_ok();
    // SAFETY: closing the read end we own.
    unsafe { libc::close(fds[0]) };
    (bytes as f64 / size as f64 / secs, bytes as f64 / secs)
}

fn queue_rate() -> f64 {
    let q = Queue::<[u64; 8]>::anonymous(1024).unwrap();
    let producer = fork_child(|| {
        let start = Instant::now();
        let mut i = 0u64;
        while i & 1023 != 0 || start.elapsed() < RUN {
            if q.put([i; 8]).is_err() {
                return 1;
            }
            i += 1;
        }
        q.close();
        0
    });
    let start = Instant::now();
    let mut count = 0u64;
    while q.get().is_ok() {
        count += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    producer.join_ok();
    count as f64 / secs
}

fn ring_round_trip() -> Duration {
    let mut ping = Ring::anonymous(1 << 20).unwrap();
    let mut pong = Ring::anonymous(1 << 20).unwrap();
    let rounds = 200_000u32;
    let ready = Pipe::new();
    let echo = fork_child(|| {
        ready.send(1);
        for _ in 0..rounds {
            let Ok(v) = ping.read_with(|m| m[0]) else {
                return 1;
            };
            if pong.write(&[v; 8]).is_err() {
                return 2;
            }
        }
        0
    });
    ready.recv_n(1);
    let start = Instant::now();
    for i in 0..rounds {
        ping.write(&[i as u8; 8]).unwrap();
        pong.read_with(|m| assert_eq!(m[0], i as u8)).unwrap();
    }
    let rt = start.elapsed() / rounds;
    echo.join_ok();
    rt
}

fn pipe_round_trip() -> Duration {
    let (mut a, mut b) = ([0; 2], [0; 2]);
    // SAFETY: valid arrays of two ints for pipe(2) to fill.
    let rc = unsafe { (libc::pipe(a.as_mut_ptr()), libc::pipe(b.as_mut_ptr())) };
    assert_eq!(rc, (0, 0));
    let rounds = 20_000u32;
    let echo = fork_child(|| {
        let mut m = [0u8; 8];
        for _ in 0..rounds {
            // SAFETY: reading/writing 8 bytes of a live local through our pipes.
            unsafe {
                if libc::read(a[0], m.as_mut_ptr().cast(), 8) != 8
                    || libc::write(b[1], m.as_ptr().cast(), 8) != 8
                {
                    return 1;
                }
            }
        }
        0
    });
    let mut m = [0u8; 8];
    let start = Instant::now();
    for _ in 0..rounds {
        // SAFETY: as in the child.
        unsafe {
            assert_eq!(libc::write(a[1], m.as_ptr().cast(), 8), 8);
            assert_eq!(libc::read(b[0], m.as_mut_ptr().cast(), 8), 8);
        }
    }
    let rt = start.elapsed() / rounds;
    echo.join_ok();
    for fd in a.into_iter().chain(b) {
        // SAFETY: closing fds we own.
        unsafe { libc::close(fd) };
    }
    rt
}

/// CPU time (user + system) a reader spends blocked on an empty ring for `wait`.
fn idle_reader_cpu(wait: Duration) -> Duration {
    let mut ring = Ring::anonymous(1 << 16).unwrap();
    let report = Pipe::new();
    let reader = fork_child(|| {
        let mut buf = Vec::new();
        let r = ring.read_into_timeout(&mut buf, wait);
        // SAFETY: getrusage fills a valid local struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as u64 * 1_000_000
            + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as u64;
        for b in us.to_le_bytes() {
            report.send(b);
        }
        i32::from(r.is_ok())
    });
    let mut bytes = [0u8; 8];
    for b in &mut bytes {
        *b = report.recv().unwrap();
    }
    reader.join_ok();
    Duration::from_micros(u64::from_le_bytes(bytes))
}

fn main() {
    for size in [8usize, 64, 1024, 65536] {
        let (rm, rb) = ring_rate(size);
        let (pm, pb) = pipe_rate(size);
        println!(
            "{size:>6} B  ring {:>8.2} M msg/s {:>7.2} GB/s | pipe {:>6.2} M msg/s {:>6.2} GB/s | ratio {:>5.1}x",
            rm / 1e6,
            rb / 1e9,
            pm / 1e6,
            pb / 1e9,
            rm / pm
        );
    }
    let q = queue_rate();
    println!(
        "queue 64 B items, 1 producer 1 consumer: {:.2} M items/s",
        q / 1e6
    );
    let (rt, prt) = (ring_round_trip(), pipe_round_trip());
    println!(
        "ping-pong round trip (8 B): ring {rt:?}, pipe {prt:?} ({:.1}x)",
        prt.as_secs_f64() / rt.as_secs_f64()
    );
    let wait = Duration::from_secs(1);
    println!(
        "reader blocked on an empty ring for {wait:?} used {:?} of CPU",
        idle_reader_cpu(wait)
    );
}
