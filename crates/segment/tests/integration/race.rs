//! `open_or_create` from 8 unrelated processes at once: exactly one creates, all see
//! the creator's data. Children are re-executions of this test binary, started together
//! through a ready/go barrier on their stdin/stdout pipes.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Kind, Target, TARGET_ENV};
use shmkit_segment::{Segment, TypeTag};
use shmkit_testkit::{child_role, ROLE_ENV};

const RACERS: usize = 8;
const SIZE: usize = 64 * 1024;
const TAG: TypeTag = TypeTag::new(0x5241_4345, "race::Pattern", 1, 1);

fn pattern(i: usize, pid: u32) -> u8 {
    (i as u32).wrapping_mul(31).wrapping_add(pid) as u8
}

fn say(line: &str) {
    // Straight to fd 1: libtest captures print!, not this.
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
}

fn wait_byte() {
    let mut b = [0u8; 1];
    std::io::stdin().read_exact(&mut b).unwrap();
}

/// One racer: ready, wait for go, open_or_create, check every byte, report, wait for
/// "exit" (so the creator's drop cannot remove the segment before all have opened it).
fn racer() {
    let t = Target::from_env();
    say("ready");
    wait_byte();
    let seg: Segment = t
        .options()
        .size(SIZE)
        .type_tag(TAG)
        .open_timeout(Duration::from_secs(20))
        .open_or_create_with(|p, len| {
            let pid = std::process::id();
            // SAFETY: the payload is ours alone until READY; 4 + len bytes fit.
            unsafe {
                std::ptr::copy_nonoverlapping(pid.to_le_bytes().as_ptr(), p, 4);
                for i in 4..len {
                    p.add(i).write(pattern(i, pid));
                }
            }
        })
        .unwrap();
    // SAFETY: after READY nobody writes the payload in this test.
    let bytes = unsafe { std::slice::from_raw_parts(seg.payload_ptr(), seg.payload_len()) };
    let pid = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let intact = bytes
        .iter()
        .enumerate()
        .skip(4)
        .all(|(i, b)| *b == pattern(i, pid));
    let what = if seg.is_creator() {
        "created"
    } else {
        "opened"
    };
    say(&format!("result {what} {pid} {intact}"));
    wait_byte();
}

fn race(kind: Kind) {
    let (t, _c) = Target::new(kind, "race");
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..RACERS)
        .map(|_| {
            Command::new(&exe)
                .args([
                    shmkit_testkit::test_path!(open_or_create_race_8_processes),
                    "--exact",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env(ROLE_ENV, "racer")
                .env(TARGET_ENV, t.encode())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    let next_marker = |r: &mut BufReader<_>, marker: &str| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert_ne!(r.read_line(&mut line).unwrap(), 0, "racer exited early");
            if line.starts_with(marker) {
                return line.trim().to_owned();
            }
        }
    };
    for r in &mut readers {
        next_marker(r, "ready");
    }
    // Everyone is at the barrier: go.
    for c in &mut children {
        c.stdin.as_mut().unwrap().write_all(b"g").unwrap();
    }
    let results: Vec<String> = readers
        .iter_mut()
        .map(|r| next_marker(r, "result"))
        .collect();
    for c in &mut children {
        c.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a racer failed");
    }
    let created = results.iter().filter(|l| l.contains(" created ")).count();
    assert_eq!(created, 1, "{kind:?}: exactly one creator: {results:?}");
    let creator_pid = results
        .iter()
        .find(|l| l.contains(" created "))
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .to_owned();
    for l in &results {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(
            f[2], creator_pid,
            "{kind:?}: all see the creator's data: {l}"
        );
        assert_eq!(f[3], "true", "{kind:?}: payload intact: {l}");
    }
    if kind == Kind::File {
        // Files persist by default: the creator's exit leaves it (the guard removes it).
        assert!(t.exists(), "{kind:?}: a file-backed segment persists");
    } else {
        assert!(!t.exists(), "{kind:?}: the creator removed it on exit");
    }
}

#[test]
fn open_or_create_race_8_processes() {
    if child_role().as_deref() == Some("racer") {
        racer();
        return;
    }
    let rounds = shmkit_testkit::stress(1, 20);
    for _ in 0..rounds {
        race(Kind::Posix);
        race(Kind::SysV);
        race(Kind::File);
    }
}
