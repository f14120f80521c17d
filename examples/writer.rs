//! The writing half of the writer/reader pair: streams messages into a named shmkit
//! ring. Start `reader` in another terminal, before or after this one.
//!
//! Run: `cargo run --release --example writer -- --count 1000000 --size 1024`
//! (flags: `--name NAME` (default `shmkit-demo`), `--count N`, `--size BYTES`, `--json`)

use clap::Parser;
use shmkit_cli::pair::{catch_interrupts, finish, run_writer, PairArgs};

fn main() -> std::process::ExitCode {
    let args = PairArgs::parse();
    catch_interrupts();
    eprintln!(
        "writer: sending {} messages of {} bytes through '{}' (start the reader in another terminal)",
        args.count, args.size, args.name
    );
    let result = run_writer(&args.name, args.count, args.size, args.json);
    finish("writer", result, args.json)
}
