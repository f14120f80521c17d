//! `shmkit bench`: shmkit's ring, queue and channel against a pipe and a Unix socket, between two
//! real processes, every byte verified, and beside the [`floor`] (a minimal spin ring
//! over the same kind of mapping) so that every figure also reads as a ratio to the
//! limit of the machine it ran on.
//!
//! Each case forks a peer process (the benchmark runs single-threaded, so `fork` is
//! safe here). Throughput: the parent sends `count` messages, the child receives and
//! verifies each, then reports; the clock runs from the first send to the child's
//! report. Latency: ping-pong, one message each way per round, every round timed.
//! Every case is repeated and the median of the repeats is reported.

pub mod floor;
mod pattern;
mod plot;
pub mod serde_msg;
mod shm;
mod stream;
pub mod transport;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

pub use pattern::Pattern;
pub use plot::write_svg;
pub use transport::{channel, Channel, MsgReceiver, MsgSender, Transport};

/// The message sizes the full run measures.
pub const SIZES: [usize; 5] = [8, 64, 1024, 64 * 1024, 1024 * 1024];

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Transports [`run`] measures ([`run_cases`] is given its cases instead).
    pub transports: Vec<Transport>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Repeats per case (the median is reported).
    pub repeats: usize,
    /// Bytes each throughput run moves (the message count follows from the size).
    pub bytes_per_run: usize,
    /// Most messages in one throughput run.
    pub max_messages: usize,
    /// Most ping-pong rounds in one latency run.
    pub max_rounds: usize,
    /// Print a progress line to stderr (default: when stderr is a terminal).
    pub progress: bool,
}

impl BenchConfig {
    /// The default run: every transport and size, 5 repeats.
    pub fn full() -> Self {
        BenchConfig {
            transports: Transport::ALL.to_vec(),
            sizes: SIZES.to_vec(),
            repeats: 5,
            bytes_per_run: 512 << 20,
            max_messages: 2_000_000,
            max_rounds: 20_000,
            progress: io::IsTerminal::is_terminal(&io::stderr()),
        }
    }

    /// A run under 30 s on a 2-vCPU machine: fewer bytes and rounds, 3 repeats.
    pub fn quick() -> Self {
        BenchConfig {
            repeats: 3,
            bytes_per_run: 32 << 20,
            max_messages: 200_000,
            max_rounds: 2_000,
            ..Self::full()
        }
    }

    fn messages(&self, size: usize) -> usize {
        (self.bytes_per_run / size).clamp(16, self.max_messages)
    }

    fn rounds(&self, size: usize) -> usize {
        (self.bytes_per_run / 4 / size).clamp(16, self.max_rounds)
    }
}

/// One measured case: the medians over its repeats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// Which transport.
    pub transport: &'static str,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second, one way.
    pub messages_per_s: f64,
    /// Payload bytes per second, one way.
    pub bytes_per_s: f64,
    /// Median ping-pong round trip.
    pub rtt_median_ns: u64,
    /// 99th percentile ping-pong round trip.
    pub rtt_p99_ns: u64,
    /// Messages per second, one way, when the sender publishes [`BATCH`] messages at a
    /// time and the receiver releases what it finds in one go (transports that can:
    /// the ring's `write_batch`/`read_batch` and the floor); absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batched_messages_per_s: Option<f64>,
}

/// Messages per published batch in the batched throughput run (and most per release
/// on the receiving side).
pub const BATCH: usize = 64;

/// One row of the comparison: a name for the table and the JSON, and how to make a
/// one-way channel able to carry messages of a given size. The extension point of the
/// harness: `shmkit bench` runs one case per [`Transport`] ([`Transport::case`]); other
/// benchmarks (benches/peers) add their own beside them and are measured by the same
/// code in the same run.
#[derive(Clone, Copy)]
pub struct Case {
    /// The name in the table and the JSON (`transport`).
    pub name: &'static str,
    /// Makes a channel for `size`-byte messages. Called before the fork, so the tx half
    /// is used in one process and the rx half in the other: a transport whose state
    /// does not survive `fork` sets itself up lazily on first use. An error of kind
    /// [`io::ErrorKind::Unsupported`] (this transport cannot carry that size) skips the
    /// cell with a note on stderr; any other error aborts the run.
    pub channel: fn(usize) -> io::Result<Channel>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// Runs every transport of `config` (the cases of [`Transport::case`]).
pub fn run(config: &BenchConfig) -> io::Result<Vec<CaseResult>> {
    let cases: Vec<Case> = config.transports.iter().map(|t| t.case()).collect();
    run_cases(config, &cases)
}

/// Runs every case of `cases` at every size of `config` (its `transports` are not
/// looked at), size by size in the order given. A failed verification or a transport
/// error aborts with the error; a size a case cannot carry is skipped (see [`Case`]).
pub fn run_cases(config: &BenchConfig, cases: &[Case]) -> io::Result<Vec<CaseResult>> {
    let total = cases.len() * config.sizes.len();
    let mut results = Vec::with_capacity(total);
    let mut done = 0;
    for &size in &config.sizes {
        for case in cases {
            done += 1;
            if config.progress {
                eprint!(
                    "\r\x1b[2K[{done}/{total}] {} {}",
                    case.name,
                    human_size(size)
                );
                let _ = io::stderr().flush();
            }
            match run_case(config, case, size) {
                Ok(result) => results.push(result),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    if config.progress {
                        eprint!("\r\x1b[2K");
                    }
                    eprintln!("skipped {} at {}: {e}", case.name, human_size(size));
                }
                Err(e) => return Err(e),
            }
        }
    }
    if config.progress {
        eprintln!("\r\x1b[2K[{total}/{total}] done");
    }
    Ok(results)
}

fn run_case(config: &BenchConfig, case: &Case, size: usize) -> io::Result<CaseResult> {
    let count = config.messages(size);
    let rounds = config.rounds(size);
    let mut rates = Vec::new();
    let mut medians = Vec::new();
    let mut p99s = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..config.repeats {
        let secs = throughput_once(case, size, count)?;
        rates.push(count as f64 / secs);
        if let Some(secs) = batched_throughput_once(case, size, count)? {
            batched.push(count as f64 / secs);
        }
        let mut rtts = pingpong_once(case, size, rounds)?;
        rtts.sort_unstable();
        medians.push(percentile(&rtts, 50.0));
        p99s.push(percentile(&rtts, 99.0));
    }
    let messages_per_s = median_f64(&mut rates);
    medians.sort_unstable();
    p99s.sort_unstable();
    Ok(CaseResult {
        transport: case.name,
        size,
        messages_per_s,
        bytes_per_s: messages_per_s * size as f64,
        rtt_median_ns: medians[medians.len() / 2],
        rtt_p99_ns: p99s[p99s.len() / 2],
        batched_messages_per_s: (!batched.is_empty()).then(|| median_f64(&mut batched)),
    })
}

/// The value below which `p` percent of the sorted samples fall (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Forks a peer that runs `body` and reports one status byte on a pipe: 1 = every
/// message verified, 0 = a mismatch, 2 = a transport error or panic.
fn fork_peer(body: impl FnOnce() -> io::Result<bool>) -> io::Result<(libc::pid_t, io::PipeReader)> {
    let (status_r, mut status_w) = io::pipe()?;
    // libc: rustix has no safe fork (only the raw `runtime::kernel_fork`, which skips
    // libc's atfork handlers), nor `_exit` outside its unstable `runtime` feature.
    // SAFETY: the benchmark is single-threaded when it forks (no other thread can hold
    // a lock the child needs); the child runs `body` and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(status_r);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        let code: u8 = match outcome {
            Ok(Ok(true)) => 1,
            Ok(Ok(false)) => 0,
            _ => 2,
        };
        let _ = status_w.write_all(&[code]);
        // SAFETY: ends the child at once, without running the parent's destructors.
        unsafe { libc::_exit(0) }
    }
    drop(status_w);
    Ok((pid, status_r))
}

fn reap(pid: libc::pid_t, mut status: io::PipeReader, what: &str) -> io::Result<()> {
    let mut byte = [9u8];
    let n = status.read(&mut byte)?;
    // Reap our own child (its status byte already told how it went).
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        while let Err(rustix::io::Errno::INTR) =
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        {}
    }
    match (n, byte[0]) {
        (1, 1) => Ok(()),
        (1, 0) => Err(io::Error::other(format!(
            "{what}: a message arrived corrupted or out of order"
        ))),
        _ => Err(io::Error::other(format!(
            "{what}: the peer process failed (transport error or crash)"
        ))),
    }
}

/// Seconds to move `count` verified messages of `size` bytes one way.
fn throughput_once(case: &Case, size: usize, count: usize) -> io::Result<f64> {
    let pattern = Pattern::new(size);
    let ch = (case.channel)(size)?;
    one_way(
        case,
        ch,
        |rx| {
            let mut ok = true;
            for seq in 0..count as u64 {
                ok &= rx.recv_with(&mut |msg| pattern.check(msg, seq))?;
            }
            Ok(ok)
        },
        |tx| {
            for seq in 0..count as u64 {
                tx.send_with(size, &mut |buf| pattern.fill(buf, seq))?;
            }
            Ok(())
        },
    )
}

/// Seconds to move `count` verified messages one way in batches of [`BATCH`], or `None`
/// if the transport does not batch.
fn batched_throughput_once(case: &Case, size: usize, count: usize) -> io::Result<Option<f64>> {
    let pattern = Pattern::new(size);
    let ch = (case.channel)(size)?;
    if !ch.tx.batches() {
        return Ok(None);
    }
    let count = count as u64;
    let secs = one_way(
        case,
        ch,
        |rx| {
            let (mut ok, mut seq) = (true, 0u64);
            while seq < count {
                let max = (count - seq).min(BATCH as u64) as usize;
                rx.recv_batch(max, &mut |msg| {
                    ok &= pattern.check(msg, seq);
                    seq += 1;
                })?;
            }
            Ok(ok)
        },
        |tx| {
            let mut seq = 0u64;
            while seq < count {
                let n = (count - seq).min(BATCH as u64) as usize;
                tx.send_batch(size, n, &mut |buf, i| pattern.fill(buf, seq + i as u64))?;
                seq += n as u64;
            }
            Ok(())
        },
    )?;
    Ok(Some(secs))
}

/// Runs `receive` in a forked peer on `ch`'s receiving half and `send` here on its
/// sending half; the seconds from the first send (once the peer is ready) to the
/// peer's report that `receive` verified everything.
fn one_way(
    case: &Case,
    mut ch: Channel,
    receive: impl FnOnce(&mut dyn MsgReceiver) -> io::Result<bool>,
    send: impl FnOnce(&mut dyn MsgSender) -> io::Result<()>,
) -> io::Result<f64> {
    let (mut ready_r, mut ready_w) = io::pipe()?;
    let (pid, status) = {
        let rx = &mut *ch.rx;
        fork_peer(move || {
            rx.attach()?;
            ready_w.write_all(&[1])?;
            receive(rx)
        })?
    };
    let mut b = [0u8];
    ready_r.read_exact(&mut b)?;
    let start = Instant::now();
    send(&mut *ch.tx)?;
    ch.tx.finish()?;
    let result = reap(pid, status, case.name);
    let secs = start.elapsed().as_secs_f64();
    result.map(|()| secs.max(1e-9))
}

/// Round-trip times, in nanoseconds, of `rounds` verified ping-pongs.
fn pingpong_once(case: &Case, size: usize, rounds: usize) -> io::Result<Vec<u64>> {
    let pattern = Pattern::new(size);
    let mut there = (case.channel)(size)?;
    let mut back = (case.channel)(size)?;
    // Both receivers join before anything is sent: ours here, the peer's before it
    // says it is ready.
    back.rx.attach()?;
    let (mut ready_r, mut ready_w) = io::pipe()?;
    let (pid, status) = {
        let rx = &mut there.rx;
        let tx = &mut back.tx;
        let pattern = &pattern;
        fork_peer(move || {
            rx.attach()?;
            ready_w.write_all(&[1])?;
            let mut ok = true;
            for seq in 0..rounds as u64 {
                ok &= rx.recv_with(&mut |msg| pattern.check(msg, seq))?;
                tx.send_with(size, &mut |buf| pattern.fill(buf, seq))?;
            }
            tx.finish()?;
            Ok(ok)
        })?
    };
    ready_r.read_exact(&mut [0u8])?;
    let mut rtts = Vec::with_capacity(rounds);
    let mut ok = true;
    for seq in 0..rounds as u64 {
        let t = Instant::now();
        there
            .tx
            .send_with(size, &mut |buf| pattern.fill(buf, seq))?;
        ok &= back.rx.recv_with(&mut |msg| pattern.check(msg, seq))?;
        rtts.push(t.elapsed().as_nanos() as u64);
    }
    there.tx.finish()?;
    reap(pid, status, case.name)?;
    if !ok {
        return Err(io::Error::other(format!(
            "{}: an echoed message arrived corrupted",
            case.name
        )));
    }
    Ok(rtts)
}

/// `8 B`, `64 KiB`, `1 MiB`.
pub fn human_size(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

fn human_rate(v: f64, unit: &str) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{scaled:.2} {prefix}{unit}")
}

fn human_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// An aligned table: one row per case, with ratios to the pipe and to the floor of the
/// same size. Throughput: this rate over theirs (higher is better; `÷ floor` 1.00 is
/// the limit); `batched/s` is the rate with [`BATCH`] messages per publish, over the
/// floor's batched rate in `batched ÷ floor`. Round trip: `rtt × pipe` is how many times faster than the pipe,
/// `rtt ÷ floor` how many floor round trips one costs (1.00 is the limit).
pub fn table(results: &[CaseResult]) -> String {
    let header = [
        "transport",
        "size",
        "messages/s",
        "bytes/s",
        "× pipe",
        "÷ floor",
        "batched/s",
        "batched ÷ floor",
        "rtt median",
        "rtt p99",
        "rtt × pipe",
        "rtt ÷ floor",
    ];
    let mut rows: Vec<[String; 12]> = Vec::new();
    for r in results {
        let same = |t: &str| {
            results
                .iter()
                .find(|p| p.transport == t && p.size == r.size)
        };
        let (pipe, floor) = (same("pipe"), same("floor"));
        // Throughput: this transport's rate over the other's (higher is better).
        let rate = |o: Option<&CaseResult>, unit: &str| {
            o.map_or("-".into(), |o| {
                format!("{:.2}{unit}", r.messages_per_s / o.messages_per_s)
            })
        };
        let rtt = |a: u64, b: u64| format!("{:.2}", a as f64 / b.max(1) as f64);
        rows.push([
            r.transport.to_string(),
            human_size(r.size),
            human_rate(r.messages_per_s, "msg/s"),
            human_rate(r.bytes_per_s, "B/s"),
            rate(pipe, "×"),
            rate(floor, ""),
            r.batched_messages_per_s
                .map_or("-".into(), |b| human_rate(b, "msg/s")),
            // Batched over the floor's batched rate (the floor ring's best).
            match (
                r.batched_messages_per_s,
                floor.and_then(|f| f.batched_messages_per_s),
            ) {
                (Some(b), Some(f)) => format!("{:.2}", b / f),
                _ => "-".into(),
            },
            human_ns(r.rtt_median_ns),
            human_ns(r.rtt_p99_ns),
            // How many times faster than the pipe's round trip.
            pipe.map_or("-".into(), |p| rtt(p.rtt_median_ns, r.rtt_median_ns) + "×"),
            // How many floors one round trip costs (1.00 = at the limit).
            floor.map_or("-".into(), |f| rtt(r.rtt_median_ns, f.rtt_median_ns)),
        ]);
    }
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i < 2 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
            out.push_str("  ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(&header, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        &mut out,
    );
    for row in &rows {
        line(
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
            &mut out,
        );
    }
    out
}

/// Default time budget a blocked peer gets before the harness calls it dead.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(8), "8 B");
        assert_eq!(human_size(64 * 1024), "64 KiB");
        assert_eq!(human_size(1 << 20), "1 MiB");
    }

    #[test]
    fn pipe_socket_and_floor_cases_verify_every_message() {
        let config = BenchConfig {
            transports: vec![Transport::Pipe, Transport::UnixSocket, Transport::Floor],
            sizes: vec![8, 4096],
            repeats: 1,
            bytes_per_run: 1 << 20,
            max_messages: 2_000,
            max_rounds: 50,
            progress: false,
        };
        let results = run(&config).expect("bench runs");
        assert_eq!(results.len(), 6);
        for r in &results {
            assert!(r.messages_per_s > 0.0, "{r:?}");
            assert!(r.rtt_p99_ns >= r.rtt_median_ns, "{r:?}");
        }
        let t = table(&results);
        assert!(t.contains("unix-socket") && t.contains("4 KiB"), "{t}");
        // The floor row is its own yardstick: exactly 1 in both floor columns.
        let floor_row = t
            .lines()
            .find(|l| l.starts_with("floor"))
            .expect("floor row");
        assert_eq!(floor_row.matches("1.00").count(), 3, "{t}");
        // Only the floor batches among these three.
        let batched: Vec<_> = results
            .iter()
            .map(|r| (r.transport, r.batched_messages_per_s.is_some()))
            .collect();
        assert!(
            batched.iter().all(|&(t, b)| b == (t == "floor")),
            "{batched:?}"
        );
    }

    #[test]
    fn serde_cases_carry_every_message_type_verified() {
        let config = BenchConfig {
            transports: vec![Transport::ChannelSerde, Transport::PipeSerde],
            sizes: vec![64, 1024, 4096],
            repeats: 1,
            bytes_per_run: 256 << 10,
            max_messages: 500,
            max_rounds: 20,
            progress: false,
        };
        let results = run(&config).expect("bench runs");
        let names: Vec<_> = results.iter().map(|r| (r.transport, r.size)).collect();
        assert_eq!(
            names,
            [
                ("channel-serde", 64),
                ("pipe-serde", 64),
                ("channel-serde", 1024),
                ("pipe-serde", 1024),
                ("channel-serde", 4096),
                ("pipe-serde", 4096)
            ]
        );
    }

    #[test]
    fn run_cases_measures_extra_cases_and_skips_unsupported_sizes() {
        let cases = [
            Case {
                name: "extra-pipe",
                channel: |size| channel(Transport::Pipe, size),
            },
            Case {
                name: "small-only",
                channel: |size| {
                    if size > 8 {
                        return Err(io::Error::new(io::ErrorKind::Unsupported, "too big"));
                    }
                    channel(Transport::UnixSocket, size)
                },
            },
        ];
        let config = BenchConfig {
            transports: Vec::new(),
            sizes: vec![8, 64],
            repeats: 1,
            bytes_per_run: 64 << 10,
            max_messages: 500,
            max_rounds: 20,
            progress: false,
        };
        let results = run_cases(&config, &cases).expect("bench runs");
        let names: Vec<_> = results.iter().map(|r| (r.transport, r.size)).collect();
        assert_eq!(
            names,
            [("extra-pipe", 8), ("small-only", 8), ("extra-pipe", 64)]
        );
    }
}
