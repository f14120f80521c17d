//! The reading half of the writer/reader pair: receives the messages `writer` streams
//! through a named shmkit [`Ring`] and verifies every byte (sequence number and
//! content). Start it before or after the writer; it waits for the writer.
//!
//! Run: `cargo run --release --example reader`
//! (flags: `--name NAME` (default `shmkit-demo`), `--json`; `--count N` stops after N
//! messages, `--size BYTES` insists on a size. Without them the reader takes what the
//! writer's first message announces. The last line with `--json` is
//! `{"messages":N,"bytes":B,"seconds":S,"verified":true}`.)
//!
//! - Whichever side starts first creates the ring (`Ring::open_or_create`); its handle
//!   removes the name when dropped, so nothing is left in `/dev/shm`.
//! - Leaving early (`--count`, a mismatch, Ctrl-C) just drops the ring: the writer's
//!   next wait reports "the reader left after N messages".
//! - A writer that stops early (Ctrl-C) closes the ring: the reader reads what was
//!   sent, then reports how many of the announced messages arrived. A writer that is
//!   killed is reported as dead; no message it had not finished is ever seen.

#[path = "common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use shmkit::typed::{ReadError, Ring};

use common::pair::{self, Pattern, Progress, ReaderArgs, Report, StreamHeader, POLL};

/// The program (`pub` so that the demo can run it too).
pub fn main() -> ExitCode {
    let args = ReaderArgs::parse();
    pair::catch_ctrl_c();
    match receive(&args) {
        Ok((report, note)) => {
            report.print("reader", &note, args.json);
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("reader: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Receives and verifies the stream; `Err` says why it stopped, in words for the user.
fn receive(args: &ReaderArgs) -> Result<(Report, String), String> {
    let name = args.name.as_str();

    // 1. Open the ring, or create it if the writer has not yet.
    let mut ring = Ring::open_or_create(name, pair::RING_CAPACITY)
        .map_err(|e| format!("cannot open the ring '{name}': {e}"))?;
    eprintln!("reader: waiting for a writer on '{name}'");

    // 2. The first message describes the stream (`read_with` looks at the message in
    //    place). The first read also claims the reader role.
    let header = read_one(&mut ring, StreamHeader::parse)
        .map_err(|stop| stop.explain(name, 0, None))?
        .ok_or_else(|| {
            format!("the first message in '{name}' does not describe a stream: is another program using this name?")
        })?;
    eprintln!(
        "reader: attached to '{name}': the writer sends {} messages of {} bytes",
        header.count, header.size
    );

    // 3. Flags, if any, must agree with the stream; `--count` may ask for fewer.
    if let Some(size) = args.size {
        if size as u64 != header.size {
            return Err(format!(
                "the writer sends messages of {} bytes, but --size {size} was given: \
                 leave out --size to take the writer's size",
                header.size
            ));
        }
    }
    let count = match args.count {
        Some(asked) if asked > header.count => {
            return Err(format!(
                "the writer sends {} messages, but --count {asked} asks for more: \
                 leave out --count to take them all",
                header.count
            ))
        }
        Some(asked) => asked,
        None => header.count,
    };

    // 4. The messages, each checked byte for byte where it lies in the ring.
    let size = header.size as usize;
    let payload = Pattern::new(size);
    let mut progress = Progress::new("reader", count, size, args.json);
    let start = Instant::now();
    for seq in 0..count {
        let intact = read_one(&mut ring, |msg| payload.check(msg, seq))
            .map_err(|stop| stop.explain(name, seq, Some(header.count)))?;
        if !intact {
            return Err(format!(
                "message {seq} is not what the writer sent: the ring lost or changed data"
            ));
        }
        progress.tick(seq + 1);
    }
    progress.done();

    // 5. Dropping the ring leaves it cleanly: a writer with more to send learns that
    //    the reader left, and how many messages it had read.
    let note = if count < header.count {
        format!(
            ", every byte verified (stopped as asked: {count} of the writer's {})",
            header.count
        )
    } else {
        ", every byte verified".to_owned()
    };
    let report = Report {
        messages: count,
        bytes: count * header.size,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((report, note))
}

/// Why a read did not happen.
enum Stop {
    CtrlC,
    Ring(ReadError),
}

impl Stop {
    /// In words, after `seq` messages of the `announced` ones (`None`: before the header).
    fn explain(self, name: &str, seq: u64, announced: Option<u64>) -> String {
        match (self, announced) {
            (Stop::CtrlC, _) => format!("interrupted after {seq} messages"),
            // The writer closed the ring: it finished, or stopped early (Ctrl-C).
            (Stop::Ring(ReadError::Closed), Some(all)) => {
                format!("the writer stopped early: {seq} of {all} messages arrived (all verified)")
            }
            (Stop::Ring(ReadError::Closed), None) => format!(
                "the ring '{name}' is closed and empty: its writer is gone; start the writer again"
            ),
            (Stop::Ring(ReadError::PeerDied { pid }), _) => {
                format!("the writer (pid {pid}) died after {seq} complete messages; none was torn")
            }
            (Stop::Ring(ReadError::RoleTaken { pid }), _) => {
                format!("process {pid} is already reading '{name}': a ring has one reader")
            }
            (Stop::Ring(e), _) => e.to_string(),
        }
    }
}

/// Reads one message and returns what `f` made of it. While the ring is empty it
/// waits, looking at Ctrl-C every [`POLL`].
fn read_one<R>(ring: &mut Ring, f: impl Fn(&[u8]) -> R) -> Result<R, Stop> {
    loop {
        if pair::ctrl_c_pressed() {
            return Err(Stop::CtrlC);
        }
        match ring.read_with_timeout(POLL, &f) {
            Ok(r) => return Ok(r),
            Err(ReadError::Timeout) => continue,
            Err(e) => return Err(Stop::Ring(e)),
        }
    }
}
