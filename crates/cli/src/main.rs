//! `shmkit`: list, inspect and remove shared memory segments; benchmark shmkit against
//! pipes and Unix sockets.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmkit_cli::bench::{self, BenchConfig, Transport};
use shmkit_cli::segments;

#[derive(Parser)]
#[command(
    name = "shmkit",
    version,
    about = "Shared memory segments: list, inspect, remove, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List shmkit segments: name, backend, size, type, creator pid, state
    /// (alive, dead, initialising, abandoned, init failed, corrupt, removed).
    Ls {
        /// Also list the file-backed segments in DIR (may be repeated).
        #[arg(long, value_name = "DIR")]
        dir: Vec<PathBuf>,
    },
    /// Print every header field of one segment, and whether it is valid.
    Inspect {
        /// POSIX name (`name` or `/name`), System V key (`0x%08x`), `shmid:N`, or the
        /// path of a file-backed segment (anything with a `/` past its first character).
        name: String,
    },
    /// Remove a stale segment (its creator is gone) by name, or every stale segment.
    /// Refuses anything else (in use, corrupt, not made by shmkit) unless --force.
    Rm {
        /// As for `inspect`.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        name: Option<String>,
        /// Remove every shmkit segment whose creating process is gone.
        #[arg(long)]
        dead: bool,
        /// Remove NAME even if its creator lives, its header is corrupt, or it is not
        /// a shmkit segment at all (never a directory).
        #[arg(long, conflicts_with = "dead")]
        force: bool,
        /// With --dead: also the file-backed segments in DIR (may be repeated).
        #[arg(long, value_name = "DIR", requires = "dead")]
        dir: Vec<PathBuf>,
    },
    /// Benchmark shmkit's ring, queue, channel and topic against a pipe, a Unix socket and the floor (a
    /// minimal spin ring over the same mapping), between two processes.
    Bench {
        /// A short run (under 30 s).
        #[arg(long)]
        quick: bool,
        /// Also write the results as a JSON array to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write a throughput-vs-size plot (SVG) to FILE.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Only these transports (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        transport: Vec<Transport>,
        /// Only these message sizes in bytes (default: 8,64,1024,65536,1048576).
        #[arg(long, value_delimiter = ',')]
        size: Vec<usize>,
        /// Repeats per case (the median is reported).
        #[arg(long)]
        repeats: Option<usize>,
    },
    /// Bridge a local channel, topic or ring over Zenoh:
    /// `--export channel:jobs --key site/a/jobs --listen tcp/127.0.0.1:7447` on one host,
    /// `--import site/a/jobs --into channel:jobs --connect tcp/127.0.0.1:7447` on the other.
    #[cfg(feature = "bridge")]
    Bridge(shmkit_zenoh::cli::BridgeArgs),
    /// Bridge a local channel, topic or ring over Zenoh (not built into this `shmkit`:
    /// build it with `--features bridge`, or use the `shmkit-bridge` binary).
    #[cfg(not(feature = "bridge"))]
    #[command(disable_help_flag = true)]
    Bridge {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "bridge")]
        Command::Bridge(args) => ExitCode::from(shmkit_zenoh::cli::run(args) as u8),
        #[cfg(not(feature = "bridge"))]
        Command::Bridge { .. } => {
            eprintln!(
                "shmkit bridge is not built into this shmkit (it pulls in Zenoh and tokio). Either \
                 install the CLI with the bridge: `cargo install shmkit-cli --features bridge` \
                 (from this repository: `cargo build --release -p shmkit-cli --features bridge`), \
                 or use the separate binary `shmkit-bridge` (package shmkit-zenoh), which takes \
                 the same arguments."
            );
            ExitCode::from(2)
        }
        Command::Ls { dir } => match segments::list_all(&dir) {
            Ok(all) => {
                print!("{}", segments::ls_table(&all));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Inspect { name } => match segments::find(&name) {
            Ok(s) => {
                print!("{}", segments::inspect_text(&s));
                print!("{}", segments::topic_text(&name, &s));
                print!("{}", segments::channel_text(&name, &s));
                // A Zenoh importer's or exporter's state (`<name>-zimport`,
                // `<name>-zexport`), with the bridge built in.
                #[cfg(feature = "bridge")]
                if s.corrupt.is_none() {
                    print!(
                        "{}",
                        shmkit_zenoh::state::inspect_text(&name, &s.header.type_tag)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(segments::explain(&name, &e)),
        },
        Command::Rm {
            name: Some(name),
            force,
            ..
        } => match segments::remove_by_name(&name, force) {
            Ok(()) => {
                println!("removed {name}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Rm {
            name: None, dir, ..
        } => match segments::remove_dead(&dir) {
            Ok(names) => {
                for n in &names {
                    println!("removed {n}");
                }
                println!("{} stale segment(s) removed", names.len());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Bench {
            quick,
            json,
            plot,
            transport,
            size,
            repeats,
        } => {
            let mut config = if quick {
                BenchConfig::quick()
            } else {
                BenchConfig::full()
            };
            if !transport.is_empty() {
                config.transports = transport;
            }
            if !size.is_empty() {
                config.sizes = size;
            }
            if let Some(r) = repeats {
                config.repeats = r.max(1);
            }
            run_bench(&config, json, plot)
        }
    }
}

fn run_bench(config: &BenchConfig, json: Option<PathBuf>, plot: Option<PathBuf>) -> ExitCode {
    let results = match bench::run(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shmkit bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", bench::table(&results));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&results).expect("results serialise");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("shmkit bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = plot {
        if let Err(e) = bench::write_svg(&results, &path) {
            eprintln!("shmkit bench: cannot write plot {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("shmkit: {e}");
    ExitCode::FAILURE
}
