//! `shmkit-bridge`: one half of a shmkit ⇄ Zenoh bridge (see `shmkit-bridge --help`).
use clap::Parser;

/// Bridge a local shmkit channel, topic or ring over Zenoh.
#[derive(Debug, Parser)]
#[command(name = "shmkit-bridge", version)]
struct Cli {
    #[command(flatten)]
    args: shmkit_zenoh::cli::BridgeArgs,
}

fn main() {
    std::process::exit(shmkit_zenoh::cli::run(Cli::parse().args));
}
