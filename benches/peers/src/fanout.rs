//! Fan-out round trips: one publisher, `n` registered subscribers in as many processes,
//! one of which echoes each message back on a second single-subscriber channel; the
//! others are live processes that stay registered and idle (this VM has 2 vCPUs: busy
//! readers would measure the scheduler, idle registered ones measure what each extra
//! reader costs the publisher). Full round trips, median and p99, for shmkit's
//! `Topic<Block>` and iceoryx2's publish-subscribe, at the same sizes, in the same run;
//! and for the topic, the publisher's throughput with one reading subscriber among the
//! registered ones.
//!
//! ```sh
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --fanout
//! ```

use std::io::{self, Read, Write};
use std::time::Instant;

use iceoryx2::prelude::*;
use shmkit_cli::bench::{human_size, percentile, Pattern};
use shmkit_typed::topic::{Block, Topic, TopicConfig};

use crate::iox::{iox_send, other, poll, unique_name, Endpoint};

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// `topic` or `iceoryx2`.
    pub transport: &'static str,
    /// Message size in bytes.
    pub size: usize,
    /// Registered subscribers on the outgoing channel (one of them echoes).
    pub subscribers: usize,
    /// Median round trip.
    pub rtt_median_ns: u64,
    /// 99th percentile round trip.
    pub rtt_p99_ns: u64,
    /// Topic only: messages per second the publisher writes while one subscriber reads
    /// every message (verified) and the others stay registered and idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_messages_per_s: Option<f64>,
}

/// Round trips per case: bounded by what idle subscribers can buffer.
fn rounds(size: usize) -> usize {
    if size <= 4096 {
        2000
    } else {
        50
    }
}

/// Forks a child that runs `f` and exits 0 if it returned `Ok`, else 1.
fn fork(f: impl FnOnce() -> io::Result<()>) -> io::Result<libc::pid_t> {
    // SAFETY: the benchmark is single-threaded when it forks (iceoryx2's nodes are made
    // after the fork, in each process); the child runs `f` and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => 0,
            _ => 1,
        };
        // SAFETY: ends the child at once, without the parent's destructors.
        unsafe { libc::_exit(code) }
    }
    Ok(pid)
}

/// Reaps `pids`; an error if any did not exit 0.
fn reap(pids: &[libc::pid_t], what: &str) -> io::Result<()> {
    let mut failed = 0;
    for &pid in pids {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io::Error::last_os_error());
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(io::Error::other(format!(
            "{what}: {failed} peer process(es) failed"
        )));
    }
    Ok(())
}

/// The pipes every case synchronises on: children say they are registered on `ready`;
/// idle children leave when they read a byte on `done`.
struct Sync {
    ready: (io::PipeReader, io::PipeWriter),
    done: (io::PipeReader, io::PipeWriter),
}

impl Sync {
    fn new() -> io::Result<Sync> {
        Ok(Sync {
            ready: io::pipe()?,
            done: io::pipe()?,
        })
    }

    fn registered(&self) -> io::Result<()> {
        (&self.ready.1).write_all(&[1])
    }

    fn wait_registered(&self, n: usize) -> io::Result<()> {
        (&self.ready.0).read_exact(&mut vec![0; n])
    }

    fn wait_done(&self) -> io::Result<()> {
        (&self.done.0).read_exact(&mut [0])
    }

    fn release(&self, n: usize) -> io::Result<()> {
        (&self.done.1).write_all(&vec![1; n])
    }
}

/// Forks `k` processes that subscribe to `topic`, say so on `sync`, and stay idle
/// until released.
fn idle_subscribers(
    topic: &Topic<Block>,
    sync: &Sync,
    k: usize,
    pids: &mut Vec<libc::pid_t>,
) -> io::Result<()> {
    for _ in 0..k {
        pids.push(fork(|| {
            let _sub = topic.subscribe().map_err(io::Error::other)?;
            sync.registered()?;
            sync.wait_done()
        })?);
    }
    Ok(())
}

fn topic_rtts(size: usize, n: usize, rounds: usize) -> io::Result<Vec<u64>> {
    let pattern = Pattern::new(size);
    let cap = ((size + 16).next_multiple_of(16) * (rounds + 8))
        .next_power_of_two()
        .max(1 << 16);
    let there = TopicConfig::new(cap).max_readers(n as u32);
    let mut there = Topic::<Block>::anonymous(there).map_err(io::Error::other)?;
    let mut back = Topic::<Block>::anonymous(TopicConfig::new(cap).max_readers(1))
        .map_err(io::Error::other)?;
    let sync = Sync::new()?;
    let mut pids = Vec::new();
    pids.push(fork(|| {
        let mut sub = there.subscribe().map_err(io::Error::other)?;
        sync.registered()?;
        for _ in 0..rounds {
            sub.read_with(|m| back.write(m))
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?;
        }
        Ok(())
    })?);
    idle_subscribers(&there, &sync, n - 1, &mut pids)?;
    let mut back_sub = back.subscribe().map_err(io::Error::other)?;
    sync.wait_registered(n)?;
    let mut rtts = Vec::with_capacity(rounds);
    let mut ok = true;
    for seq in 0..rounds as u64 {
        let t = Instant::now();
        there
            .write_with(size, |b| pattern.fill(b, seq))
            .map_err(io::Error::other)?;
        ok &= back_sub
            .read_with(|m| pattern.check(m, seq))
            .map_err(io::Error::other)?;
        rtts.push(t.elapsed().as_nanos() as u64);
    }
    sync.release(n - 1)?;
    drop(back_sub);
    reap(&pids, "topic")?;
    if !ok {
        return Err(io::Error::other(
            "topic: an echoed message arrived corrupted",
        ));
    }
    Ok(rtts)
}

/// Messages per throughput run: enough for a stable rate, few enough that a buffer
/// holding them all (idle subscribers never free anything) stays small.
fn throughput_count(size: usize) -> usize {
    if size <= 4096 {
        100_000
    } else {
        500
    }
}

/// Messages per second a `Topic<Block>` publisher writes `count` messages at, while
/// one of `n` registered subscribers reads and verifies all of them and the others
/// stay idle: timed from the first write to the reader's report that it verified the
/// last (the buffer holds every message, so idle subscribers never hold the writer
/// back: this measures the per-message cost of the registry, not the scheduler).
fn topic_throughput(size: usize, n: usize, count: usize) -> io::Result<f64> {
    let pattern = Pattern::new(size);
    let cap = ((size + 16).next_multiple_of(16) * (count + 8))
        .next_power_of_two()
        .max(1 << 16);
    let config = TopicConfig::new(cap).max_readers(n as u32);
    let mut topic = Topic::<Block>::anonymous(config).map_err(io::Error::other)?;
    let sync = Sync::new()?;
    let (mut verdict_r, verdict_w) = io::pipe()?;
    let mut pids = Vec::new();
    pids.push(fork(|| {
        let mut sub = topic.subscribe().map_err(io::Error::other)?;
        sync.registered()?;
        let mut ok = true;
        for seq in 0..count as u64 {
            ok &= sub
                .read_with(|m| pattern.check(m, seq))
                .map_err(io::Error::other)?;
        }
        (&verdict_w).write_all(&[u8::from(ok)])
    })?);
    idle_subscribers(&topic, &sync, n - 1, &mut pids)?;
    sync.wait_registered(n)?;
    let start = Instant::now();
    for seq in 0..count as u64 {
        topic
            .write_with(size, |b| pattern.fill(b, seq))
            .map_err(io::Error::other)?;
    }
    let mut verdict = [0u8];
    verdict_r.read_exact(&mut verdict)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    sync.release(n - 1)?;
    reap(&pids, "topic throughput")?;
    if verdict[0] != 1 {
        return Err(io::Error::other("topic: a message arrived corrupted"));
    }
    Ok(count as f64 / secs)
}

fn iox_publisher(end: &Endpoint, size: usize, subscribers: usize) -> io::Result<crate::iox::Pub> {
    let publisher = end
        .service
        .publisher_builder()
        .initial_max_slice_len(size)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|e| other("publisher", e))?;
    poll("waiting for the subscribers", || {
        Ok((end.service.dynamic_config().number_of_subscribers() >= subscribers).then_some(()))
    })?;
    Ok(publisher)
}

fn iox_subscriber(end: &Endpoint, slots: usize) -> io::Result<crate::iox::Sub> {
    end.service
        .subscriber_builder()
        .buffer_size(slots)
        .create()
        .map_err(|e| other("subscriber", e))
}

fn iox_rtts(size: usize, n: usize, rounds: usize) -> io::Result<Vec<u64>> {
    let pattern = Pattern::new(size);
    let slots = rounds + 8;
    let (there, back) = (unique_name(), unique_name());
    let sync = Sync::new()?;
    let mut pids = Vec::new();
    pids.push(fork(|| {
        let there = Endpoint::open_for(&there, n, slots)?;
        let sub = iox_subscriber(&there, slots)?;
        let back = Endpoint::open_for(&back, 1, slots)?;
        sync.registered()?;
        let publisher = iox_publisher(&back, size, 1)?;
        for _ in 0..rounds {
            let sample = poll("receive", || sub.receive().map_err(|e| other("receive", e)))?;
            iox_send(&publisher, sample.payload().len(), |b| {
                b.copy_from_slice(sample.payload())
            })?;
        }
        Ok(())
    })?);
    for _ in 1..n {
        pids.push(fork(|| {
            let there = Endpoint::open_for(&there, n, slots)?;
            let _sub = iox_subscriber(&there, slots)?;
            sync.registered()?;
            sync.wait_done()
        })?);
    }
    let there = Endpoint::open_for(&there, n, slots)?;
    let publisher = iox_publisher(&there, size, n)?;
    let back = Endpoint::open_for(&back, 1, slots)?;
    let back_sub = iox_subscriber(&back, slots)?;
    sync.wait_registered(n)?;
    let mut rtts = Vec::with_capacity(rounds);
    let mut ok = true;
    for seq in 0..rounds as u64 {
        let t = Instant::now();
        iox_send(&publisher, size, |b| pattern.fill(b, seq))?;
        let sample = poll("receive", || {
            back_sub.receive().map_err(|e| other("receive", e))
        })?;
        ok &= pattern.check(sample.payload(), seq);
        drop(sample);
        rtts.push(t.elapsed().as_nanos() as u64);
    }
    sync.release(n - 1)?;
    reap(&pids, "iceoryx2")?;
    drop((back_sub, back, publisher, there));
    if !ok {
        return Err(io::Error::other(
            "iceoryx2: an echoed message arrived corrupted",
        ));
    }
    Ok(rtts)
}

/// Every case, `repeats` times each (the median of the medians and of the p99s).
pub fn run(sizes: &[usize], subscribers: &[usize], repeats: usize) -> io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &size in sizes {
        for &n in subscribers {
            type Measure = fn(usize, usize, usize) -> io::Result<Vec<u64>>;
            for (transport, measure) in [("topic", topic_rtts as Measure), ("iceoryx2", iox_rtts)] {
                eprint!("\r\x1b[2K{transport} {} x{n}", human_size(size));
                let (mut medians, mut p99s) = (Vec::new(), Vec::new());
                for _ in 0..repeats.max(1) {
                    let mut rtts = measure(size, n, rounds(size))?;
                    rtts.sort_unstable();
                    medians.push(percentile(&rtts, 50.0));
                    p99s.push(percentile(&rtts, 99.0));
                }
                medians.sort_unstable();
                p99s.sort_unstable();
                let writer_messages_per_s = if transport == "topic" {
                    let mut rates = (0..repeats.max(1))
                        .map(|_| topic_throughput(size, n, throughput_count(size)))
                        .collect::<io::Result<Vec<f64>>>()?;
                    rates.sort_by(f64::total_cmp);
                    Some(rates[rates.len() / 2])
                } else {
                    None
                };
                rows.push(Row {
                    transport,
                    size,
                    subscribers: n,
                    rtt_median_ns: medians[medians.len() / 2],
                    rtt_p99_ns: p99s[p99s.len() / 2],
                    writer_messages_per_s,
                });
            }
        }
    }
    eprintln!("\r\x1b[2K");
    Ok(rows)
}

/// The rows as a table, with each round trip beside iceoryx2's of the same case and
/// beside the same transport's with one subscriber.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "transport  size    subscribers  rtt median  rtt p99  ÷ iceoryx2  ÷ 1 subscriber  writer msgs/s  ÷ 1 subscriber\n",
    );
    for r in rows {
        let find = |t: &str, n: usize| {
            rows.iter()
                .find(|o| o.transport == t && o.size == r.size && o.subscribers == n)
        };
        let ratio = |o: Option<&Row>| {
            o.map_or("-".to_string(), |o| {
                format!(
                    "{:.2}",
                    r.rtt_median_ns as f64 / o.rtt_median_ns.max(1) as f64
                )
            })
        };
        let (rate, rate_ratio) = match (r.writer_messages_per_s, find(r.transport, 1)) {
            (Some(rate), Some(one)) => (
                format!("{:.0}", rate),
                one.writer_messages_per_s
                    .map_or("-".to_string(), |o| format!("{:.2}", rate / o.max(1e-9))),
            ),
            (Some(rate), None) => (format!("{:.0}", rate), "-".to_string()),
            (None, _) => ("-".to_string(), "-".to_string()),
        };
        out.push_str(&format!(
            "{:<10} {:<7} {:>11}  {:>8} ns  {:>7}  {:>10}  {:>14}  {:>13}  {:>14}\n",
            r.transport,
            human_size(r.size),
            r.subscribers,
            r.rtt_median_ns,
            r.rtt_p99_ns,
            ratio(find("iceoryx2", r.subscribers)),
            ratio(find(r.transport, 1)),
            rate,
            rate_ratio,
        ));
    }
    out
}
