//! The `shmkit` command (ls, inspect, rm, bench). Work in progress.

fn main() {
    eprintln!("shmkit: no subcommands yet");
}
