//! The peers benchmark: shmkit's transports (ring, queue, pipe, unix-socket and the
//! floor) against iceoryx2 and ipc-channel, in one run, by the same harness
//! (`shmkit_cli::bench::run_cases`): a forked peer process per case, throughput one
//! way with every byte verified, ping-pong round trips (full RTT, median and p99), the
//! same table and the same JSON rows as `shmkit bench`.
//!
//! ```sh
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --quick
//! # the serde comparison: the same structs through the channel, a pipe and ipc-channel
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --quick --size 64,1024,65536 \
//!     --only ring,channel,channel-serde,pipe,pipe-serde,ipc-channel-serde,floor
//! # shmkit's Zenoh bridge beside plain Zenoh pub/sub (TCP, loopback)
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --zenoh --size 64,65536
//! ```

mod fanout;
mod iox;
mod ipc;
mod zenoh;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Parser;
use shmkit_cli::bench::{self, BenchConfig, Case, Transport};

/// shmkit against iceoryx2 and ipc-channel.
#[derive(Parser, Debug)]
struct Args {
    /// The short run (fewer bytes and rounds, 3 repeats).
    #[arg(long)]
    quick: bool,
    /// Message sizes in bytes, comma-separated (default: shmkit bench's sizes).
    #[arg(long, value_delimiter = ',')]
    size: Vec<usize>,
    /// Repeats per case (the median is reported).
    #[arg(long)]
    repeats: Option<usize>,
    /// Only the cases of these names, comma-separated (default: every case; the names
    /// are the table's, e.g. `ring,channel,channel-serde,pipe-serde,ipc-channel-serde`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of the transports: fan-out round trips of shmkit's `Topic` and
    /// iceoryx2 with 1, 4 and 16 registered subscribers (`--size` defaults to 64 and
    /// 65536 here).
    #[arg(long)]
    fanout: bool,
    /// Only remove what dead iceoryx2 nodes left behind (run by the benchmark itself,
    /// in a new process, when it is done).
    #[arg(long, hide = true)]
    clean_iceoryx2: bool,
    /// Instead of the transports: shmkit's Zenoh bridge (ring → bridge → Zenoh →
    /// bridge → ring) beside plain Zenoh pub/sub, TCP on loopback (`--size` defaults
    /// to 64 and 65536 here).
    #[arg(long)]
    zenoh: bool,
    /// One side of a `--zenoh` case (run by the benchmark itself).
    #[arg(long, hide = true)]
    zenoh_role: Option<String>,
    #[arg(long, hide = true, default_value_t = 0)]
    zenoh_count: usize,
    #[arg(long, hide = true, default_value_t = 0)]
    zenoh_port: u16,
    #[arg(long, hide = true)]
    zenoh_bridged: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    iox::quiet_log();
    if args.clean_iceoryx2 {
        return match iox::clean_dead_nodes() {
            Ok((_, 0)) => ExitCode::SUCCESS,
            Ok((_, failed)) => {
                eprintln!("iceoryx2: {failed} dead node(s) could not be cleaned up");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("iceoryx2: cleanup: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.fanout {
        return fanout_main(&args);
    }
    if let Some(role) = &args.zenoh_role {
        let size = args.size.first().copied().unwrap_or(64);
        zenoh::role(
            role,
            args.zenoh_bridged,
            size,
            args.zenoh_count,
            args.zenoh_port,
        );
        return ExitCode::SUCCESS;
    }
    if args.zenoh {
        let sizes = if args.size.is_empty() {
            vec![64, 65536]
        } else {
            args.size.clone()
        };
        let repeats = args.repeats.unwrap_or(if args.quick { 3 } else { 5 });
        let rows = zenoh::run(&sizes, repeats, args.quick);
        print!("{}", bench::table(&rows));
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
            if let Err(e) = std::fs::write(path, json + "\n") {
                eprintln!("peers: writing {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    let mut config = if args.quick {
        BenchConfig::quick()
    } else {
        BenchConfig::full()
    };
    if !args.size.is_empty() {
        config.sizes = args.size;
    }
    if let Some(r) = args.repeats {
        config.repeats = r.max(1);
    }
    let mut cases: Vec<Case> = Transport::ALL.iter().map(|t| t.case()).collect();
    cases.push(Case {
        name: "iceoryx2",
        channel: iox::channel,
    });
    cases.push(Case {
        name: "ipc-channel",
        channel: ipc::channel,
    });
    // The same serde structs as `channel-serde` and `pipe-serde` (see
    // `shmkit_cli::bench::serde_msg`).
    cases.push(Case {
        name: "ipc-channel-serde",
        channel: bench::serde_msg::serde_channel::<ipc::IpcLink>,
    });
    if !args.only.is_empty() {
        let unknown: Vec<_> = args
            .only
            .iter()
            .filter(|n| !cases.iter().any(|c| c.name == n.as_str()))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<_> = cases.iter().map(|c| c.name).collect();
            eprintln!("peers: no case {unknown:?}; the cases are {names:?}");
            return ExitCode::FAILURE;
        }
        cases.retain(|c| args.only.iter().any(|n| n == c.name));
    }
    let outcome = bench::run_cases(&config, &cases);
    // The peer processes end with `_exit`, so their iceoryx2 nodes are dead, not
    // dropped, and only a process that is not a fork of this one can tell (see
    // `iox::clean_dead_nodes`): a new process of this executable sweeps them.
    let swept =
        std::env::current_exe().and_then(|exe| Command::new(exe).arg("--clean-iceoryx2").status());
    if !matches!(swept, Ok(s) if s.success()) {
        eprintln!("peers: the iceoryx2 cleanup did not succeed ({swept:?}): see /dev/shm/iox2_* and /tmp/iceoryx2");
    }
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peers: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", bench::table(&results));
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&results).expect("rows serialise");
        if let Err(e) = std::fs::write(&path, json + "\n") {
            eprintln!("peers: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn fanout_main(args: &Args) -> ExitCode {
    let sizes = if args.size.is_empty() {
        vec![64, 65536]
    } else {
        args.size.clone()
    };
    let repeats = args.repeats.unwrap_or(if args.quick { 3 } else { 5 });
    let outcome = fanout::run(&sizes, &[1, 4, 16], repeats);
    let swept =
        std::env::current_exe().and_then(|exe| Command::new(exe).arg("--clean-iceoryx2").status());
    if !matches!(swept, Ok(s) if s.success()) {
        eprintln!("peers: the iceoryx2 cleanup did not succeed ({swept:?})");
    }
    let rows = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peers: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", fanout::table(&rows));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("peers: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
