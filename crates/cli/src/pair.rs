//! The writer/reader pair: two processes, started in two terminals in either order,
//! stream messages through a named shmkit [`Ring`]; the reader verifies every byte.
//!
//! Used by `examples/writer.rs`, `examples/reader.rs` and `examples/demo.rs`.
//!
//! - Whichever side starts first creates the ring (`Ring::open_or_create`); the other
//!   attaches. The reader waits for the writer.
//! - Every message carries its sequence number and a fixed pattern (see
//!   [`Pattern`]): the reader checks every byte of every message.
//! - Ctrl-C on the writer closes the ring: the reader drains what was sent and exits
//!   with a message saying the writer stopped early. Ctrl-C on the reader makes the
//!   writer's next wait report that the reader is gone. Either way the side that stops
//!   removes the segment's name, so nothing is left in `/dev/shm`.
//! - A writer that finishes leaves the closed ring in place for its reader, which
//!   removes the name once it has drained it (if no reader ever comes, `shmkit rm
//!   --dead` removes it).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmkit_typed::{ReadError, Ring, WriteError};

use crate::bench::Pattern;

/// Default segment name of the pair.
pub const DEFAULT_NAME: &str = "shmkit-demo";
/// Ring capacity the pair creates: 4 MiB (above L2, room for 64 KiB messages).
pub const RING_CAPACITY: usize = 4 << 20;
/// How often a blocked side wakes to look at Ctrl-C and print progress.
const POLL: Duration = Duration::from_millis(100);

/// What one side of the pair did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Report {
    /// Messages moved (and, for the reader, verified).
    pub messages: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Seconds from the first message to the last.
    pub seconds: f64,
    /// Whether every message received was exactly the one expected.
    pub verified: bool,
}

impl Report {
    /// The one-line JSON form: `{"messages":N,"bytes":B,"seconds":S,"verified":true}`.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report serialises")
    }

    /// Messages and bytes per second, for display.
    pub fn rates(&self) -> (f64, f64) {
        let s = self.seconds.max(1e-9);
        (self.messages as f64 / s, self.bytes as f64 / s)
    }
}

/// How a side stopped, when it did not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// The ring could not be created or opened.
    #[error("cannot open the ring '{name}': {reason}")]
    Open {
        /// Segment name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Ctrl-C.
    #[error("interrupted after {0} messages")]
    Interrupted(u64),
    /// The peer process died or stopped.
    #[error("{0}")]
    PeerGone(String),
    /// A message arrived wrong.
    #[error("message {seq} was corrupted or out of order: the ring lost data")]
    Corrupt {
        /// Which message.
        seq: u64,
    },
    /// Any other ring error.
    #[error("{0}")]
    Ring(String),
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C (SIGINT) and SIGTERM set a flag the loops check, instead of killing the
/// process before it can close the ring and remove the name. (A hand-written
/// `sigaction` rather than the `ctrlc` crate: we need only a flag, not its thread.)
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
        // handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Removes the pair's segment name, if it is still there.
fn remove_name(name: &str) {
    let _ = shmkit_segment::remove(name);
}

fn open_ring(name: &str) -> Result<Ring, PairError> {
    Ring::open_or_create(name, RING_CAPACITY).map_err(|e| PairError::Open {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// A progress line on stderr, at most every half second, only on a terminal.
struct Progress {
    on: bool,
    last: Instant,
    start: Instant,
    what: &'static str,
}

impl Progress {
    fn new(what: &'static str, quiet: bool) -> Self {
        Progress {
            on: !quiet && std::io::stderr().is_terminal(),
            last: Instant::now(),
            start: Instant::now(),
            what,
        }
    }

    fn tick(&mut self, n: u64, total: u64, bytes: u64) {
        if self.on && self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            let s = self.start.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r\x1b[2K{} {n}/{total} messages, {:.1} MB/s",
                self.what,
                bytes as f64 / s / 1e6
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Writes `count` messages of `size` bytes into the ring `name`.
///
/// # Errors
/// [`PairError`] when the ring cannot be opened, the reader dies, or Ctrl-C.
pub fn run_writer(name: &str, count: u64, size: usize, quiet: bool) -> Result<Report, PairError> {
    let mut ring = open_ring(name)?;
    if ring.is_closed() {
        // A finished or crashed earlier run left its ring behind: start afresh.
        drop(ring);
        remove_name(name);
        ring = open_ring(name)?;
    }
    let pattern = Pattern::new(size);
    let mut progress = Progress::new("writer:", quiet);
    let mut start = None;
    let mut seq = 0;
    while seq < count {
        if interrupted() {
            let _ = ring.close();
            remove_name(name);
            return Err(PairError::Interrupted(seq));
        }
        match ring.write_with_timeout(size, POLL, |buf| pattern.fill(buf, seq)) {
            Ok(()) => {
                start.get_or_insert_with(Instant::now);
                seq += 1;
                if seq.is_multiple_of(4096) {
                    progress.tick(seq, count, seq * size as u64);
                }
            }
            Err(WriteError::Timeout) => {}
            Err(WriteError::PeerDied { pid }) => {
                remove_name(name);
                return Err(PairError::PeerGone(format!(
                    "the reader (pid {pid}) stopped after {seq} messages were written"
                )));
            }
            Err(e) => {
                remove_name(name);
                return Err(PairError::Ring(e.to_string()));
            }
        }
    }
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    // Closing tells the reader that nothing more comes; it drains, then sees Closed.
    ring.close().map_err(|e| PairError::Ring(e.to_string()))?;
    // Keep the name: a reader that has not attached yet still finds the ring and the
    // messages in it. The reader removes the name when it has drained them. (Leaking
    // the handle skips only the unmap and unlink; this process exits right after.)
    std::mem::forget(ring);
    progress.done();
    Ok(Report {
        messages: count,
        bytes: count * size as u64,
        seconds,
        verified: true,
    })
}

/// Reads and verifies messages of `size` bytes from the ring `name` until the writer
/// closes it, expecting `count`.
///
/// # Errors
/// [`PairError`] when the ring cannot be opened, a message is wrong, the writer dies
/// or stops early, or Ctrl-C.
pub fn run_reader(name: &str, count: u64, size: usize, quiet: bool) -> Result<Report, PairError> {
    let mut ring = open_ring(name)?;
    let pattern = Pattern::new(size);
    let mut progress = Progress::new("reader:", quiet);
    let mut start = None;
    let mut seq = 0u64;
    let mut bytes = 0u64;
    loop {
        if interrupted() {
            remove_name(name);
            // Leave without releasing the reader role, so the writer learns at once
            // that its reader is gone (PeerDied) instead of waiting for a new one.
            std::mem::forget(ring);
            return Err(PairError::Interrupted(seq));
        }
        match ring.read_with_timeout(POLL, |msg| (pattern.check(msg, seq), msg.len())) {
            Ok((true, len)) => {
                start.get_or_insert_with(Instant::now);
                seq += 1;
                bytes += len as u64;
                if seq.is_multiple_of(4096) {
                    progress.tick(seq, count, bytes);
                }
            }
            Ok((false, _)) => {
                remove_name(name);
                return Err(PairError::Corrupt { seq });
            }
            Err(ReadError::Timeout) => {}
            Err(ReadError::Closed) => break,
            Err(ReadError::PeerDied { pid }) => {
                remove_name(name);
                return Err(PairError::PeerGone(format!(
                    "the writer (pid {pid}) died after {seq} complete messages; none was torn"
                )));
            }
            Err(e) => {
                remove_name(name);
                return Err(PairError::Ring(e.to_string()));
            }
        }
    }
    progress.done();
    remove_name(name);
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    if seq != count {
        return Err(PairError::PeerGone(format!(
            "the writer stopped early: {seq} of {count} messages arrived (all verified)"
        )));
    }
    Ok(Report {
        messages: seq,
        bytes,
        seconds,
        verified: true,
    })
}

/// Command-line options shared by the writer and reader examples.
#[derive(Debug, Clone, clap::Parser)]
pub struct PairArgs {
    /// Name of the shared segment (in /dev/shm).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Number of messages.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub json: bool,
}

/// Prints a side's result (human line, then JSON if asked) and returns the exit code.
pub fn finish(side: &str, result: Result<Report, PairError>, json: bool) -> std::process::ExitCode {
    match result {
        Ok(r) => {
            let (mps, bps) = r.rates();
            println!(
                "{side}: {} messages, {} bytes in {:.3} s: {:.2} M msg/s, {:.2} GB/s{}",
                r.messages,
                r.bytes,
                r.seconds,
                mps / 1e6,
                bps / 1e9,
                if side == "reader" {
                    ", every byte verified"
                } else {
                    ""
                }
            );
            if json {
                println!("{}", r.json());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{side}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_has_the_documented_fields() {
        let r = Report {
            messages: 3,
            bytes: 24,
            seconds: 0.5,
            verified: true,
        };
        let v: serde_json::Value = serde_json::from_str(&r.json()).expect("valid JSON");
        assert_eq!(v["messages"], 3);
        assert_eq!(v["bytes"], 24);
        assert_eq!(v["seconds"], 0.5);
        assert_eq!(v["verified"], true);
    }
}
