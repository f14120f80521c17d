//! Test support shared by shmkit's crates (not published).
//!
//! - [`unique_name`]: segment names that never collide between tests or runs
//!   (prefix + pid + counter), and [`ShmCleanup`] that removes them even when a test fails.
//! - [`fork_child`]: run a closure in a forked child (real process, shared anonymous
//!   memory inherited), with [`Child`] to wait for or SIGKILL it.
//! - [`spawn_role`] / [`child_role`]: re-execute the current test binary as an unrelated
//!   process that runs one test in a named role (for named segments and locks);
//!   [`test_path!`] names that test wherever its file lives.
//! - [`Pipe`]: a one-way byte pipe for "I'm ready" / "go" signals: no sleeps as
//!   synchronisation.
//!
//! # Fork safety
//! The test harness runs tests on several threads. A forked child must not rely on
//! locks another thread might have held at the fork (stdout/stderr locks in particular):
//! the child closure should report through its exit code or a [`Pipe`], never print.
//! [`fork_child`] points the child's stderr at `/dev/null` for this reason (without taking
//! the panic-hook lock, which a panicking parent thread may hold at the fork).

use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that carries a re-executed child's role.
pub const ROLE_ENV: &str = "SHMKIT_TEST_ROLE";

/// A name unique to this test process and call: `shmkit-t-{prefix}-{pid}-{n}`.
///
/// It starts with `shmkit` so CI's `/dev/shm` leak check finds anything left behind.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("shmkit-t-{prefix}-{}-{n}", std::process::id())
}

/// Removes the POSIX shared memory object `name` (without leading `/`) when dropped,
/// ignoring "does not exist". Create it first thing in a test so a failing assertion
/// still cleans up.
#[derive(Debug)]
pub struct ShmCleanup {
    name: String,
}

impl ShmCleanup {
    /// Guard for the POSIX name `name` (no leading slash).
    pub fn new(name: &str) -> Self {
        ShmCleanup {
            name: name.to_owned(),
        }
    }
}

impl Drop for ShmCleanup {
    fn drop(&mut self) {
        let _ = rustix::shm::unlink(format!("/{}", self.name));
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited normally with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// A child process started by [`fork_child`].
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    fn rpid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_raw(self.pid).expect("a forked child's pid is positive")
    }

    /// Sends SIGKILL (a pid we forked and have not reaped: at worst ESRCH, ignored).
    pub fn kill(&self) {
        let _ = rustix::process::kill_process(self.rpid(), rustix::process::Signal::KILL);
    }

    /// `waitpid` on our child, retried on EINTR; `None` with WNOHANG while it runs.
    fn waitpid(&self, opts: rustix::process::WaitOptions) -> Option<Exit> {
        loop {
            match rustix::process::waitpid(Some(self.rpid()), opts) {
                Ok(status) => return status.map(|(_, st)| decode(st)),
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => panic!("waitpid failed: {err}"),
            }
        }
    }

    /// Waits for the child to end.
    pub fn wait(&mut self) -> Exit {
        let exit = self
            .waitpid(rustix::process::WaitOptions::empty())
            .expect("a blocking waitpid returns a status");
        self.reaped = true;
        exit
    }

    /// Waits up to `timeout`; `None` if the child is still running then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(exit) = self.waitpid(rustix::process::WaitOptions::NOHANG) {
                self.reaped = true;
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling a child's exit status: this is not synchronisation between the
            // processes under test, only a bounded wait for the OS to report an exit.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Waits and asserts the child exited with code 0.
    pub fn join_ok(mut self) {
        let exit = self.wait();
        assert_eq!(exit, Exit::Code(0), "child {} failed: {exit:?}", self.pid);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.wait();
        }
    }
}

fn decode(status: rustix::process::WaitStatus) -> Exit {
    if let Some(code) = status.exit_status() {
        Exit::Code(code)
    } else if let Some(sig) = status.terminating_signal() {
        Exit::Signal(sig)
    } else {
        Exit::Code(-1)
    }
}

/// Forks; the child runs `f` and exits with its return value (101 if it panics).
///
/// The child inherits every `MAP_SHARED` mapping of the parent, so this is how tests
/// share anonymous memory between real processes. See the module docs on what the
/// child may do.
pub fn fork_child<F: FnOnce() -> i32>(f: F) -> Child {
    // libc: rustix has no safe fork (only the raw `runtime::kernel_fork`, which skips
    // libc's atfork handlers that the floor's `pthread_atfork` registration relies on).
    // SAFETY: fork(2) has no memory-safety preconditions of its own; the child only
    // runs `f` and then `_exit`s without running destructors or atexit handlers of the
    // parent's state (see the module docs for what `f` may do).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        silence_stderr();
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // libc: `_exit` (no atexit handlers, no destructors); rustix only has the raw
        // `exit_group` behind its unstable `runtime` feature.
        // SAFETY: _exit ends the child immediately; nothing after it runs.
        unsafe { libc::_exit(code) }
    }
    Child { pid, reaped: false }
}

/// Points the (forked) child's fd 2 at `/dev/null`, so a panic message goes nowhere.
///
/// This replaces `std::panic::set_hook` in the child: that takes the panic hook's write
/// lock, and if another thread of the parent was panicking (holding the read lock) at
/// the fork, the child waits for it forever.
fn silence_stderr() {
    // rustix issues the open/dup2/close syscalls directly (no allocation, no locks):
    // async-signal-safe, as the child of a multithreaded fork requires.
    use rustix::fs::{Mode, OFlags};
    if let Ok(fd) = rustix::fs::open(
        c"/dev/null",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

/// The role this process was re-executed in by [`spawn_role`], if any.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Re-executes the current test binary to run exactly the test `test_name` (its full
/// path inside the test binary, e.g. `race::open_or_create_race`: write it
/// [`test_path!`]`(open_or_create_race)`) with [`ROLE_ENV`] set to `role` and the extra
/// environment `env`. The test checks [`child_role`] first thing and, in a child, does
/// the child's work and returns.
pub fn spawn_role(test_name: &str, role: &str, env: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--test-threads=1", "--quiet"])
        .env(ROLE_ENV, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("re-execute the test binary")
}

/// The name the test harness gives the test function `f` of the calling module: its
/// path inside the test binary without the crate name (`race::open_or_create_race` for
/// `fn open_or_create_race` in `tests/integration/race.rs`), as [`spawn_role`] needs it.
///
/// Each crate's integration tests share one binary, one module per file, so a test's
/// name depends on where it lives; this macro keeps a re-executed child pointed at the
/// right test when files move. `f` must be a `fn()` in scope (checked at compile time).
#[macro_export]
macro_rules! test_path {
    ($f:ident) => {{
        let _: fn() = $f;
        $crate::path_in_binary(concat!(module_path!(), "::", stringify!($f)))
    }};
}

/// `path` without its first segment (the crate name): see [`test_path!`].
#[doc(hidden)]
pub fn path_in_binary(path: &'static str) -> &'static str {
    path.split_once("::").map_or(path, |(_, rest)| rest)
}

/// A one-way pipe for readiness signals between processes.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// A new pipe (close-on-exec).
    pub fn new() -> Self {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe2");
        Pipe { read, write }
    }

    /// Writes one byte (a signal).
    pub fn send(&self, byte: u8) {
        let n = rustix::io::write(&self.write, &[byte]).expect("pipe write");
        assert_eq!(n, 1, "pipe write: short write");
    }

    /// Blocks until one byte arrives; `None` when every writer has closed.
    pub fn recv(&self) -> Option<u8> {
        let mut byte = [0u8];
        loop {
            match rustix::io::read(&self.read, &mut byte) {
                Ok(1) => return Some(byte[0]),
                Ok(_) => return None,
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => panic!("pipe read: {err}"),
            }
        }
    }

    /// Receives `n` signals (e.g. one from each of `n` children).
    pub fn recv_n(&self, n: usize) {
        for _ in 0..n {
            self.recv()
                .expect("a child closed the pipe before signalling");
        }
    }
}

impl Default for Pipe {
    fn default() -> Self {
        Self::new()
    }
}

/// A `MAP_SHARED` mapping of a fresh memfd for tests of primitives on raw memory:
/// shared with children made by [`fork_child`]. Zero-filled, page aligned. (A memfd
/// rather than `MAP_ANONYMOUS`, so `memmap2` maps and unmaps it without `unsafe`.)
#[derive(Debug)]
pub struct SharedRegion {
    map: memmap2::MmapRaw,
}

impl SharedRegion {
    /// Maps `len` zeroed bytes.
    pub fn new(len: usize) -> Self {
        let fd = rustix::fs::memfd_create(c"shmkit-test-region", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&std::fs::File::from(fd))
            .expect("mmap");
        SharedRegion { map }
    }

    /// Start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the region is empty (never, for a successful map).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

/// Whether a test that needs something this machine may lack can run.
///
/// Returns `true` when `available`. Otherwise prints why the test skips and returns
/// `false`, unless `SHMKIT_CI=1` (set by `.ci/run`, whose machines have root and
/// python3): there a missing requirement fails the test instead of passing silently.
pub fn skip_or_fail(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("SHMKIT_CI").map_or(true, |v| v != "1"),
        "SHMKIT_CI=1 but this test cannot run: {what}"
    );
    eprintln!("skipping: {what} (set SHMKIT_CI=1 to make this a failure)");
    false
}

/// Whether this process runs as root (some tests switch uid, mount or unshare).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Scales a stress size: `quick` by default, `heavy` when `SHMKIT_STRESS=1`, and a
/// fifth of `quick` (at least 1) when `SHMKIT_STRESS=light`: CI's memcheck run
/// (`.ci/valgrind`), 20-50 times slower than native, looks for memory errors in the
/// code the cases reach, which the native run of the same tests has already fed the
/// full count.
pub fn stress(quick: usize, heavy: usize) -> usize {
    match std::env::var("SHMKIT_STRESS").as_deref() {
        Ok("1") => heavy,
        Ok("light") => (quick / 5).max(1),
        _ => quick,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn test_path_is_the_harness_name_without_the_crate() {
        assert_eq!(
            test_path!(test_path_is_the_harness_name_without_the_crate),
            "tests::test_path_is_the_harness_name_without_the_crate"
        );
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name("a"), unique_name("a"));
        assert!(unique_name("x").starts_with("shmkit-t-x-"));
    }

    #[test]
    fn forked_child_sees_shared_region_and_reports_exit() {
        let region = SharedRegion::new(4096);
        // SAFETY: the region is page-aligned and 4096 bytes, enough for an AtomicU64.
        let counter = unsafe { &*(region.as_ptr() as *const AtomicU64) };
        let ready = Pipe::new();
        let child = fork_child(|| {
            counter.fetch_add(41, Ordering::Relaxed);
            ready.send(1);
            7
        });
        ready.recv_n(1);
        let mut child = child;
        assert_eq!(child.wait(), Exit::Code(7));
        assert_eq!(counter.load(Ordering::Relaxed), 41);
    }

    #[test]
    fn killed_child_reports_signal() {
        let go = Pipe::new();
        let mut child = fork_child(|| {
            go.recv();
            0
        });
        child.kill();
        assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
    }
}
