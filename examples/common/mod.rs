//! Helpers shared by the examples: re-running this same program as a child process,
//! and ([`pair`]) what the writer/reader pair agrees on.
//!
//! Examples start their children by re-executing themselves with `--child ...`
//! arguments, so every child is a real, separate process that finds the shared objects
//! by name, as an unrelated program would.

#![allow(dead_code)]

pub mod pair;

use std::process::{Child, Command, Stdio};

/// Starts this program again with `args`; the child's stdout is piped to the parent.
pub fn spawn_self(args: &[&str]) -> Child {
    let exe = std::env::current_exe().expect("path of this example");
    Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a child process")
}

/// Starts this program again with `args`, sharing the parent's stdout.
pub fn spawn_self_inherit(args: &[&str]) -> Child {
    let exe = std::env::current_exe().expect("path of this example");
    Command::new(exe)
        .args(args)
        .spawn()
        .expect("start a child process")
}

/// Waits for a piped child and returns its stdout; panics if it failed.
pub fn output_of(child: Child) -> String {
    let out = child.wait_with_output().expect("wait for a child");
    assert!(
        out.status.success(),
        "a child process failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A segment name unique to this run of the example.
pub fn run_name(example: &str) -> String {
    format!("shmkit-example-{example}-{}", std::process::id())
}
