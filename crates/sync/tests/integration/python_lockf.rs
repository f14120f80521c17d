//! Interop with Python's usual file lock, `fcntl.lockf` (a classic POSIX record lock,
//! `fcntl(F_SETLK)`): `FileLock::lock`/`try_lock` (`flock`) do NOT see it, while the
//! range locks (`lock_range`/`try_lock_range`, open-file-description locks) conflict
//! with it both ways. A python3 process holds the lock; pipes (its stdin and stdout)
//! say when, so nothing sleeps.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use shmkit_sync::{FileLock, FileLockError, LockMode};

/// Holds `lockf` on the file named by argv[1] on "lock", releases it on "unlock", tries
/// a non-blocking `lockf` on "try" (answers "got" or "busy"); answers every command.
const SCRIPT: &str = r#"
import fcntl, sys
f = open(sys.argv[1], "r+")
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "lock":
        fcntl.lockf(f, fcntl.LOCK_EX)
        print("locked", flush=True)
    elif cmd == "unlock":
        fcntl.lockf(f, fcntl.LOCK_UN)
        print("unlocked", flush=True)
    elif cmd == "try":
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(f, fcntl.LOCK_UN)
            print("got", flush=True)
        except OSError:
            print("busy", flush=True)
"#;

struct Python {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    /// Sends `cmd` and returns the answer line.
    fn ask(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("write to python");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from python");
        line.trim().to_owned()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the script ends
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Removes the file when dropped (also when an assertion fails).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import fcntl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn python_lockf_excludes_lock_range_but_not_flock() {
    if !shmkit_testkit::skip_or_fail(python_available(), "python3 not found") {
        return;
    }
    let path = std::env::temp_dir().join(shmkit_testkit::unique_name("lockf"));
    let _rm = RemoveOnDrop(path.clone());
    let lock = FileLock::open(&path).expect("open the lock file");
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut py = Python {
        child,
        stdin,
        stdout,
    };

    assert_eq!(py.ask("lock"), "locked");
    // flock and POSIX record locks are separate lock tables: flock does not see it.
    let whole = lock
        .try_lock(LockMode::Exclusive)
        .expect("flock does not conflict with lockf");
    drop(whole);
    // Range locks (OFD) conflict with lockf: exclusive and shared, whole file or part.
    assert!(matches!(
        lock.try_lock_range(0, 0, LockMode::Exclusive),
        Err(FileLockError::WouldBlock)
    ));
    assert!(matches!(
        lock.try_lock_range(10, 1, LockMode::Shared),
        Err(FileLockError::WouldBlock)
    ));

    assert_eq!(py.ask("unlock"), "unlocked");
    let held = lock
        .try_lock_range(0, 0, LockMode::Exclusive)
        .expect("free once python released it");
    // And the other way round: python's lockf sees our range lock...
    assert_eq!(py.ask("try"), "busy");
    drop(held);
    assert_eq!(py.ask("try"), "got");
    // ...but not a flock.
    let whole = lock.lock(LockMode::Exclusive).expect("flock");
    assert_eq!(py.ask("try"), "got", "lockf does not see flock");
    drop(whole);
}
