//! Interop with Python's `multiprocessing.shared_memory.SharedMemory`, both ways:
//! Python reads (and checks the header of) a segment Rust created, and Rust attaches
//! one Python created with `Segment::open_raw`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use shmkit_segment::{Segment, HEADER_LEN};
use shmkit_testkit::ShmCleanup;

fn python() -> Option<Command> {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .status()
        .is_ok_and(|s| s.success());
    if !shmkit_testkit::skip_or_fail(ok, "python3 with multiprocessing.shared_memory not found") {
        return None;
    }
    Some(Command::new("python3"))
}

/// Attaches without letting this Python process's resource tracker delete a segment
/// it only attached (gh-82300): `track=False` on 3.13+, `unregister` before that.
const ATTACH: &str = r#"
import sys, struct
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    try:
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:
        shm = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm
"#;

#[test]
fn python_reads_a_segment_rust_created() {
    let Some(mut py) = python() else { return };
    let name = shmkit_testkit::unique_name("py-read");
    let _c = ShmCleanup::new(&name);
    let msg = b"hello from rust";
    let seg = Segment::options()
        .posix(&name)
        .size(1024)
        .create_with(|p, _| {
            // SAFETY: the payload is ours alone until READY; msg fits.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len()) }
        })
        .unwrap();
    // The header as docs/layout.md describes it, read with `struct`.
    let script = format!(
        "{ATTACH}
shm = attach({name:?})
(magic, version, state, pid, hlen, total, poff, psize,
 kind, nlen, tsize, talign, fp, tname, pidns) = struct.unpack_from('<8sIIIIQQQIIQQQ40sQ', shm.buf, 0)
import os
assert pidns == os.stat('/proc/self/ns/pid').st_ino, pidns
assert magic == b'SHMKITSG', magic
assert version == 2 and state & 0xffff == 1 and hlen == 128 and poff == 128, (version, state, hlen, poff)
assert psize == 1024 and total == 1152 and shm.size >= total, (psize, total, shm.size)
assert tname[:nlen] == b'bytes', tname
def fnv(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h
want = fnv(kind.to_bytes(4, 'little') + tsize.to_bytes(8, 'little') + talign.to_bytes(8, 'little') + b'bytes')
assert fp == want, (hex(fp), hex(want))
payload = bytes(shm.buf[poff:poff + 15])
shm.buf[poff + 512:poff + 512 + 11] = b'from python'
print('pid', pid, 'payload', payload.decode())
shm.close()
"
    );
    let out = py.arg("-c").arg(script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("pid {} payload hello from rust", std::process::id())
    );
    // SAFETY: python has exited; nobody else writes.
    let bytes = unsafe { seg.as_slice() };
    assert_eq!(&bytes[HEADER_LEN + 512..HEADER_LEN + 523], b"from python");
    // Python's tracker did not remove the segment it merely attached.
    assert!(std::path::Path::new("/dev/shm").join(&name).exists());
}

#[test]
fn rust_attaches_a_segment_python_created() {
    let Some(mut py) = python() else { return };
    let name = shmkit_testkit::unique_name("py-create");
    let _c = ShmCleanup::new(&name);
    let script = format!(
        "
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(name={name:?}, create=True, size=4096)
shm.buf[:11] = b'from python'
print('ready', flush=True)
sys.stdin.readline()
print('got', bytes(shm.buf[100:109]).decode(), flush=True)
shm.close()
shm.unlink()
"
    );
    let mut child = py
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let seg = Segment::open_raw(&name).unwrap();
    assert_eq!(seg.len(), 4096, "size from fstat, exact on Linux");
    assert_eq!(seg.payload_ptr(), seg.as_ptr());
    assert_eq!(seg.payload_len(), 4096);
    assert!(seg.header().is_none());
    assert!(!seg.is_creator());
    // Volatile: the Python process shares this memory.
    // SAFETY: inside the 4096-byte mapping.
    let got: Vec<u8> = (0..11)
        .map(|i| unsafe { seg.as_ptr().add(i).read_volatile() })
        .collect();
    assert_eq!(got, b"from python");
    for (i, b) in b"from rust".iter().enumerate() {
        // SAFETY: inside the mapping; python reads only after our newline below.
        unsafe { seg.as_ptr().add(100 + i).write_volatile(*b) };
    }
    // A foreign segment is not mistaken for a shmkit one.
    assert!(Segment::options()
        .posix(&name)
        .open_timeout(std::time::Duration::from_millis(20))
        .open()
        .is_err());
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got from rust");
    assert!(child.wait().unwrap().success());
    drop(seg);
    // open_raw never unlinks; python did.
    assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
}
