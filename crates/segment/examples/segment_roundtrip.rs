//! Creates a POSIX shared-memory segment, writes a message into it, then starts a
//! child process (this same program, re-executed) that opens the segment by name,
//! checks its header, reads the message, and writes a reply the parent prints.
//!
//! Run: `cargo run -p shmkit-segment --example segment_roundtrip`

use std::process::Command;
use std::time::Duration;

use shmkit_segment::{Segment, TypeTag};

/// What the payload holds: a length-prefixed UTF-8 message (the reply lives at 512).
const TAG: TypeTag = TypeTag::new(1, "segment_roundtrip::Message", 1024, 1);
const REPLY_AT: usize = 512;

fn write_msg(seg: &Segment, at: usize, msg: &str) {
    let bytes = msg.as_bytes();
    assert!(at + 4 + bytes.len() <= seg.payload_len());
    let len = (bytes.len() as u32).to_le_bytes();
    for (i, b) in len.iter().chain(bytes).enumerate() {
        // SAFETY: inside the payload (asserted); the two processes take turns (the
        // parent waits for the child to exit before reading the reply).
        unsafe { seg.payload_ptr().add(at + i).write_volatile(*b) };
    }
}

fn read_msg(seg: &Segment, at: usize) -> String {
    // SAFETY: as in `write_msg`; lengths are checked against the payload.
    let byte = |i: usize| unsafe { seg.payload_ptr().add(i).read_volatile() };
    let len = u32::from_le_bytes([byte(at), byte(at + 1), byte(at + 2), byte(at + 3)]) as usize;
    let len = len.min(seg.payload_len() - at - 4);
    let bytes: Vec<u8> = (0..len).map(|i| byte(at + 4 + i)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn child(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let seg = Segment::options()
        .posix(name)
        .type_tag(TAG)
        .open_timeout(Duration::from_secs(2))
        .open()?;
    let h = seg.header().expect("a shmkit segment has a header");
    println!(
        "child  {}: opened '{name}' ({} payload bytes, type {}, created by pid {})",
        std::process::id(),
        seg.payload_len(),
        h.type_tag.name(),
        h.creator_pid
    );
    println!(
        "child  {}: read    \"{}\"",
        std::process::id(),
        read_msg(&seg, 0)
    );
    write_msg(&seg, REPLY_AT, "hello back from the child");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child" {
        return child(&args[2]);
    }
    let name = format!("shmkit-roundtrip-{}", std::process::id());
    let msg = "hello from the parent, through shared memory";
    // The creator removes the name when `seg` drops, even on an early return.
    let seg = Segment::options()
        .posix(&name)
        .size(1024)
        .type_tag(TAG)
        .create()?;
    write_msg(&seg, 0, msg);
    println!(
        "parent {}: created '{name}', wrote \"{msg}\"",
        std::process::id()
    );

    let status = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .status()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    let reply = read_msg(&seg, REPLY_AT);
    println!("parent {}: read    \"{reply}\"", std::process::id());
    assert_eq!(reply, "hello back from the child");
    drop(seg);
    println!("parent {}: removed '{name}'", std::process::id());
    Ok(())
}
