//! The reading half of the writer/reader pair: receives messages from a named shmkit
//! ring and verifies every byte (sequence number and content). Start `writer` in
//! another terminal, before or after this one; the reader waits for it.
//!
//! Run: `cargo run --release --example reader -- --count 1000000 --size 1024`
//! (flags: `--name NAME` (default `shmkit-demo`), `--count N`, `--size BYTES`, `--json`;
//! the last line with `--json` is `{"messages":N,"bytes":B,"seconds":S,"verified":true}`)

use clap::Parser;
use shmkit_cli::pair::{catch_interrupts, finish, run_reader, PairArgs};

fn main() -> std::process::ExitCode {
    let args = PairArgs::parse();
    catch_interrupts();
    eprintln!(
        "reader: waiting for {} messages of {} bytes on '{}'",
        args.count, args.size, args.name
    );
    let result = run_reader(&args.name, args.count, args.size, args.json);
    finish("reader", result, args.json)
}
