//! Helpers shared by the segment integration tests: one [`Target`] per backend with a
//! cleanup guard, so a failing test leaves nothing behind.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use shmkit_segment::{Segment, SegmentOptions};

/// Env var carrying a [`Target`] to a re-executed child.
pub const TARGET_ENV: &str = "SHMKIT_SEG_TARGET";

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Posix,
    SysV,
    File,
    Anonymous,
}

/// A unique place for a segment of one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Posix(String),
    SysV(i32),
    File(PathBuf),
    Anonymous,
}

/// A System V key unique to this process and call (never 0 = IPC_PRIVATE).
pub fn unique_key() -> i32 {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed) & 0xff;
    (0x5300_0000 | ((std::process::id() & 0xffff) << 8) | n) as i32
}

impl Target {
    /// A fresh target and the guard that removes it.
    pub fn new(kind: Kind, prefix: &str) -> (Target, Cleanup) {
        let t = match kind {
            Kind::Posix => Target::Posix(shmkit_testkit::unique_name(prefix)),
            Kind::SysV => Target::SysV(unique_key()),
            Kind::File => {
                Target::File(std::env::temp_dir().join(shmkit_testkit::unique_name(prefix)))
            }
            Kind::Anonymous => Target::Anonymous,
        };
        let c = Cleanup(t.clone());
        (t, c)
    }

    /// Options pointing at this target.
    pub fn options(&self) -> SegmentOptions {
        let o = Segment::options();
        match self {
            Target::Posix(n) => o.posix(n),
            Target::SysV(k) => o.sysv(*k),
            Target::File(p) => o.file(p),
            Target::Anonymous => o.anonymous(),
        }
    }

    /// Whether the name still exists.
    pub fn exists(&self) -> bool {
        match self {
            Target::Posix(n) => std::path::Path::new("/dev/shm").join(n).exists(),
            // SAFETY: shmget takes no pointers.
            Target::SysV(k) => (unsafe { libc::shmget(*k, 0, 0) }) != -1,
            Target::File(p) => p.exists(),
            Target::Anonymous => false,
        }
    }

    /// Encoding for [`TARGET_ENV`].
    pub fn encode(&self) -> String {
        match self {
            Target::Posix(n) => format!("posix:{n}"),
            Target::SysV(k) => format!("sysv:{k}"),
            Target::File(p) => format!("file:{}", p.display()),
            Target::Anonymous => "anonymous:".into(),
        }
    }

    /// Inverse of [`Target::encode`].
    pub fn decode(s: &str) -> Target {
        let (k, v) = s.split_once(':').expect("kind:value");
        match k {
            "posix" => Target::Posix(v.into()),
            "sysv" => Target::SysV(v.parse().expect("key")),
            "file" => Target::File(v.into()),
            _ => Target::Anonymous,
        }
    }

    /// The target a re-executed child was given.
    pub fn from_env() -> Target {
        Target::decode(&std::env::var(TARGET_ENV).expect("target env"))
    }
}

/// Removes the target's name on drop, ignoring "does not exist".
#[derive(Debug)]
pub struct Cleanup(pub Target);

impl Drop for Cleanup {
    fn drop(&mut self) {
        match &self.0 {
            Target::Posix(n) => drop(shmkit_testkit::ShmCleanup::new(n)),
            Target::SysV(k) => {
                let _ = shmkit_segment::remove_sysv(*k);
            }
            Target::File(p) => {
                let _ = std::fs::remove_file(p);
            }
            Target::Anonymous => {}
        }
    }
}

/// Reads `n` payload bytes (volatile: another process may have written them).
pub fn read_payload(seg: &Segment, n: usize) -> Vec<u8> {
    assert!(n <= seg.payload_len());
    // SAFETY: `n` bytes from the payload start are inside the mapping (checked).
    (0..n)
        .map(|i| unsafe { seg.payload_ptr().add(i).read_volatile() })
        .collect()
}

/// Writes `data` at the payload start (volatile).
pub fn write_payload(seg: &Segment, at: usize, data: &[u8]) {
    assert!(at + data.len() <= seg.payload_len());
    for (i, b) in data.iter().enumerate() {
        // SAFETY: inside the payload (checked); the tests order access with pipes/exits.
        unsafe { seg.payload_ptr().add(at + i).write_volatile(*b) };
    }
}

/// Runs a re-executed child in `role` for the test `test_path` and returns whether it
/// passed (exit 0) plus its stdout.
pub fn run_role(test_path: &str, role: &str, target: &Target) -> (bool, String) {
    let child = shmkit_testkit::spawn_role(test_path, role, &[(TARGET_ENV, &target.encode())]);
    let out = child.wait_with_output().expect("wait for child");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
