//! What the `writer` and `reader` examples (and the `demo`, which runs them) agree on:
//! their command-line options, the stream's first message, the bytes of every message,
//! and the small plumbing around them (Ctrl-C, a progress line, the final report).
//!
//! The ring code itself is in `examples/writer.rs` and `examples/reader.rs`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Segment name both sides use unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "shmkit-demo";
/// Ring capacity, for whichever side creates the ring: 4 MiB (above L2, room for
/// messages up to 1 MiB).
pub const RING_CAPACITY: usize = 4 << 20;
/// How long a blocked side waits before it looks at Ctrl-C again.
pub const POLL: Duration = Duration::from_millis(100);

/// What the writer sends (the `demo` takes the same two options).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Number of messages.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
}

/// `writer [--name NAME] [--count N] [--size BYTES] [--json]`
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Streams messages through a named shmkit ring; start `reader` anywhere.")]
pub struct WriterArgs {
    /// Name of the shared segment (in /dev/shm).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// What to send.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub json: bool,
}

/// `reader [--name NAME] [--count N] [--size BYTES] [--json]`: without `--count` and
/// `--size` the reader takes whatever the writer announces.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Receives and verifies the messages `writer` sends through a named ring.")]
pub struct ReaderArgs {
    /// Name of the shared segment (in /dev/shm).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Stop after this many messages (default: all the writer sends). More than the
    /// writer sends is an error.
    #[arg(long)]
    pub count: Option<u64>,
    /// Expect messages of this size (default: the writer's); a different size is an error.
    #[arg(long)]
    pub size: Option<usize>,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub json: bool,
}

/// `demo [--count N] [--size BYTES] [--no-bench]`
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "The writer/reader pair, then shmkit against a pipe and a Unix socket.")]
pub struct DemoArgs {
    /// What the writer sends to the reader.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Skip the comparison with a pipe and a Unix socket.
    #[arg(long)]
    pub no_bench: bool,
}

/// The stream's first message: how many messages follow and how large each is.
/// Layout: 8 bytes of magic, then `count` and `size` as little-endian `u64`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// Messages after this one.
    pub count: u64,
    /// Bytes in each of them.
    pub size: u64,
}

impl StreamHeader {
    /// Bytes of the encoded header.
    pub const LEN: usize = 24;
    const MAGIC: [u8; 8] = *b"shmkpair";

    /// Encodes the header into `buf` (exactly [`Self::LEN`] bytes).
    pub fn write_to(&self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&Self::MAGIC);
        buf[8..16].copy_from_slice(&self.count.to_le_bytes());
        buf[16..24].copy_from_slice(&self.size.to_le_bytes());
    }

    /// Decodes a header; `None` if `msg` is not one.
    pub fn parse(msg: &[u8]) -> Option<StreamHeader> {
        if msg.len() != Self::LEN || msg[..8] != Self::MAGIC {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"));
        Some(StreamHeader {
            count: word(8),
            size: word(16),
        })
    }
}

/// The bytes of every message, so the reader can check all of them: the bench's
/// [`Pattern`](shmkit_cli::bench::Pattern) (byte `i` is `i * 31 + 7` mod 256, the first
/// up to 8 bytes the sequence number), so the pair and `shmkit bench` verify alike.
// Examples that include `common` without using the pair do not use it (as with the rest
// of this module, which `#![allow(dead_code)]` in common/mod.rs covers).
#[allow(unused_imports)]
pub use shmkit_cli::bench::Pattern;

/// What one side did, printed as a line for people and, with `--json`, as a last line
/// `{"messages":N,"bytes":B,"seconds":S,"verified":true}` for programs (the demo).
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Messages moved (and, for the reader, verified).
    pub messages: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Seconds from the first message to the last.
    pub seconds: f64,
}

impl Report {
    /// Prints the report of `side` ("writer" or "reader"), then `note` if not empty.
    pub fn print(&self, side: &str, note: &str, json: bool) {
        let s = self.seconds.max(1e-9);
        println!(
            "{side}: {} messages, {} bytes in {:.3} s: {:.2} M msg/s, {:.2} GB/s{note}",
            self.messages,
            self.bytes,
            self.seconds,
            self.messages as f64 / s / 1e6,
            self.bytes as f64 / s / 1e9,
        );
        if json {
            println!(
                "{{\"messages\":{},\"bytes\":{},\"seconds\":{},\"verified\":true}}",
                self.messages, self.bytes, self.seconds
            );
        }
    }
}

static CTRL_C: AtomicBool = AtomicBool::new(false);

extern "C" fn on_ctrl_c(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CTRL_C.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C (SIGINT) and SIGTERM set a flag that [`ctrl_c_pressed`] reads, instead
/// of killing the process before it can close the ring and leave cleanly.
pub fn catch_ctrl_c() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // libc, not rustix: rustix's sigaction is only for programs without libc.
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, and the
        // handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_ctrl_c as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Whether Ctrl-C (or SIGTERM) arrived since [`catch_ctrl_c`].
pub fn ctrl_c_pressed() -> bool {
    CTRL_C.load(Ordering::Relaxed)
}

/// A progress line on stderr, at most twice a second, only when stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    side: &'static str,
    total: u64,
    size: u64,
    on: bool,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// Progress of `total` messages of `size` bytes.
    pub fn new(side: &'static str, total: u64, size: usize, json: bool) -> Progress {
        Progress {
            side,
            total,
            size: size as u64,
            on: !json && std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: Instant::now(),
        }
    }

    /// Called after message `done` (cheap: looks at the clock every 4096 messages).
    pub fn tick(&mut self, done: u64) {
        if self.on && done.is_multiple_of(4096) && self.last.elapsed() >= Duration::from_millis(500)
        {
            self.last = Instant::now();
            let mb_s = (done * self.size) as f64 / self.start.elapsed().as_secs_f64() / 1e6;
            eprint!(
                "\r\x1b[2K{}: {done}/{} messages, {mb_s:.1} MB/s",
                self.side, self.total
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}
