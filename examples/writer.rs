//! The writing half of the writer/reader pair: streams messages into a named shmkit
//! [`Ring`]. Start `reader` in another terminal, before or after this one; it needs no
//! flags, because the first message tells it how many messages of what size follow.
//!
//! Run: `cargo run --release --example writer -- --count 1000000 --size 1024`
//! (flags: `--name NAME` (default `shmkit-demo`), `--count N`, `--size BYTES`, `--json`)
//!
//! - Whichever side starts first creates the ring (`Ring::open_or_create`); its handle
//!   removes the name when dropped, so nothing is left in `/dev/shm`.
//! - The writer ends only when the reader has read every message (`wait_consumed`):
//!   exit code 0 means the messages arrived, not just that they were written.
//! - A reader that leaves early (`reader --count 10`, Ctrl-C) makes the writer stop
//!   with "the reader left after N messages"; a reader that is killed, with "the
//!   reader (pid P) died". Ctrl-C here closes the ring: the reader drains what was sent.

#[path = "common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use shmkit::typed::{Ring, WriteError};

use common::pair::{self, Pattern, Progress, Report, StreamHeader, WriterArgs, POLL};

/// The program (`pub` so that the demo can run it too).
pub fn main() -> ExitCode {
    let args = WriterArgs::parse();
    pair::catch_ctrl_c();
    match send(&args) {
        Ok(report) => {
            report.print("writer", "", args.json);
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("writer: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the stream; `Err` says why it stopped, in words for the user.
fn send(args: &WriterArgs) -> Result<Report, String> {
    let (name, count, size) = (args.name.as_str(), args.stream.count, args.stream.size);

    // 1. Open the ring, or create it if the reader has not yet.
    let open = || {
        Ring::open_or_create(name, pair::RING_CAPACITY)
            .map_err(|e| format!("cannot open the ring '{name}': {e}"))
    };
    let mut ring = open()?;
    if ring.is_closed() {
        // The ring of an earlier run whose side that created it was killed: start afresh.
        drop(ring);
        let _ = shmkit::segment::remove(name);
        ring = open()?;
    }
    eprintln!("writer: sending {count} messages of {size} bytes through '{name}'");

    // 2. The first message describes the stream, so the reader needs no flags. The
    //    first write also claims the writer role: a second writer gets `RoleTaken`.
    let header = StreamHeader {
        count,
        size: size as u64,
    };
    write_one(&mut ring, StreamHeader::LEN, |buf| header.write_to(buf))
        .map_err(|stop| stop.explain(name, 0))?;
    eprintln!("writer: attached to '{name}'");

    // 3. The messages, each filled in place in the ring (`write_with`: no copy).
    let payload = Pattern::new(size);
    let mut progress = Progress::new("writer", count, size, args.json);
    let start = Instant::now();
    for seq in 0..count {
        write_one(&mut ring, size, |buf| payload.fill(buf, seq)).map_err(|stop| {
            if matches!(stop, Stop::CtrlC) {
                // Tell the reader that nothing more comes: it drains, then sees `Closed`.
                let _ = ring.close();
            }
            stop.explain(name, seq)
        })?;
        progress.tick(seq + 1);
    }
    progress.done();

    // 4. Wait until the reader has read everything (or left): only then is the report
    //    true. Dropping the ring afterwards closes it.
    loop {
        if pair::ctrl_c_pressed() {
            let _ = ring.close();
            return Err(format!(
                "interrupted after writing all {count} messages, before the reader had read them"
            ));
        }
        match ring.wait_consumed_timeout(POLL) {
            Ok(()) => break,
            Err(WriteError::Timeout) => continue,
            Err(e) => return Err(Stop::Ring(e).explain(name, count)),
        }
    }
    Ok(Report {
        messages: count,
        bytes: count * size as u64,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Why a write did not happen.
enum Stop {
    CtrlC,
    Ring(WriteError),
}

impl Stop {
    /// In words, after `sent` messages.
    fn explain(self, name: &str, sent: u64) -> String {
        match self {
            Stop::CtrlC => format!("interrupted after {sent} messages"),
            // The reader left cleanly (it had what it wanted, or Ctrl-C). Its first
            // message was the stream header, which is not one of the N.
            Stop::Ring(WriteError::ReaderLeft { messages_read }) => format!(
                "the reader left after {} messages",
                messages_read.saturating_sub(1)
            ),
            Stop::Ring(WriteError::PeerDied { pid }) => {
                format!("the reader (pid {pid}) died after {sent} messages were written")
            }
            Stop::Ring(WriteError::RoleTaken { pid }) => {
                format!("process {pid} is already writing to '{name}': a ring has one writer")
            }
            Stop::Ring(WriteError::TooLarge { len, max }) => format!(
                "--size {len} is larger than the largest message this ring holds ({max} bytes)"
            ),
            Stop::Ring(e) => e.to_string(),
        }
    }
}

/// Writes one message of `len` bytes, filled in place by `fill`. While the ring is
/// full it waits, looking at Ctrl-C every [`POLL`].
fn write_one(ring: &mut Ring, len: usize, fill: impl Fn(&mut [u8])) -> Result<(), Stop> {
    loop {
        if pair::ctrl_c_pressed() {
            return Err(Stop::CtrlC);
        }
        match ring.write_with_timeout(len, POLL, &fill) {
            Ok(()) => return Ok(()),
            Err(WriteError::Timeout) => continue,
            Err(e) => return Err(Stop::Ring(e)),
        }
    }
}
