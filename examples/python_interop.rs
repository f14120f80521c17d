//! A Rust process and a Python process share memory both ways.
//!
//! 1. Rust creates a `SharedArray<f64>` named `NAME` holding the squares 0, 1, 4, ...
//!    and a `SharedValue<i64>` named `NAME-count` holding 42.
//! 2. It runs `python3 examples/python_interop.py NAME`, which attaches with
//!    `multiprocessing.shared_memory.SharedMemory(NAME)`, reads the array through the
//!    layout documented in `docs/layout.md` (header, length, lock word, elements),
//!    reads the value with the `ctypes` structures of `docs/layout.md`, and creates a
//!    plain segment `NAME-reply` holding the sum plus the value as a little-endian `f64`.
//! 3. Rust attaches to Python's segment with `Segment::open_raw` (no shmkit header),
//!    reads the sum, checks it, and removes it.
//!
//! Run: `cargo run --release --example python_interop` (needs `python3`)

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

use shmkit::segment::{remove, Segment};
use shmkit::typed::{SharedArray, SharedValue};

const N: usize = 10;

fn main() {
    let name = common::run_name("py");
    let squares: Vec<f64> = (0..N).map(|i| (i * i) as f64).collect();
    let array = SharedArray::<f64>::create_from(&name, &squares).expect("create the array");
    println!("rust:   created '{name}' with {N} squares");
    let count_name = format!("{name}-count");
    let count = SharedValue::<i64>::create(&count_name, 42).expect("create the value");
    println!("rust:   created '{count_name}', a SharedValue<i64> holding 42");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python_interop.py");
    let status = Command::new("python3")
        .args([script, &name])
        .status()
        .expect("run python3 (is it installed?)");
    assert!(status.success(), "the Python side failed: {status}");

    let reply_name = format!("{name}-reply");
    let reply = Segment::open_raw(&reply_name).expect("open Python's reply segment");
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        // SAFETY: the reply segment is at least 8 bytes (Python created it so, and
        // open_raw took its size from fstat); Python has exited, nobody writes it now.
        *b = unsafe { reply.as_ptr().add(i).read_volatile() };
    }
    let sum = f64::from_le_bytes(bytes);
    drop(reply);
    remove(&reply_name).expect("remove the reply segment");
    let expected: f64 = squares.iter().sum::<f64>() + 42.0;
    println!("rust:   python says the sum plus the value is {sum} (expected {expected})");
    assert_eq!(sum, expected);
    assert_eq!(array.len(), N);
    drop(count);
    println!("OK: Rust -> Python -> Rust through shared memory");
}
