//! Who holds a shared object (a lock, a ring role, a queue slot), and the one judgement
//! of whether that holder still exists. Every shmkit layer asks here: the segment
//! crate for a creator that died before READY, the locks for a dead holder, rings and
//! queues for a dead peer.
//!
//! A *process* is named by its pid plus its start time ([`current_pid`],
//! [`current_start_time`], [`start_time`]); a *thread* (a lock holder) by its tid plus
//! its start time ([`current`], packed as an [`OwnerIdent`]). [`is_alive`] judges both
//! (a pid is a tid on Linux), [`process_alive`] is its form for the words rings and
//! queues keep.
//!
//! # Identity
//! A holder is a *thread*, named by its kernel thread id (TID, `gettid(2)`) plus the
//! thread's start time (field 22 of `/proc/<tid>/stat`, clock ticks since boot). The
//! pair is packed into an [`OwnerIdent`]: `start_time_low32 << 32 | tid`. Linux TIDs are
//! below `PID_MAX_LIMIT` = 2^22, so a TID also fits the 30 low bits of a lock word.
//!
//! The calling thread's identity is computed once (one `gettid` and one read of
//! `/proc/thread-self/stat`) and cached in a thread-local, so the lock fast path makes no
//! syscall.
//!
//! # Fork
//! A forked child inherits no locks, but it does inherit the forking thread's
//! thread-local cache, which then names the *parent* thread. A `pthread_atfork` child
//! handler (registered the first time any identity is computed) clears the cache of
//! the one thread that exists in the child, so the child computes its own identity on
//! its next lock. A child created by a raw `clone(2)` that bypasses libc's `fork` does
//! not run the handler and must not use shmkit locks before `exec`.
//!
//! # Liveness and PID reuse
//! [`is_alive`] reads `/proc/<tid>/stat`: no such entry means the thread is gone; state
//! `Z`/`X` (zombie, dead) means it has exited even though nobody reaped it yet (a child
//! killed by SIGKILL stays a zombie until its parent waits); a start time different from
//! the recorded one means the TID was reused by a new thread, so the recorded holder is
//! gone. If `/proc` cannot be read, `kill(tid, 0)` is the fallback (`ESRCH` = gone),
//! which cannot see zombies or reuse.
//!
//! # Pid namespaces
//! TIDs are namespace-local: a holder in another pid namespace has no `/proc` entry
//! here, or the entry of an unrelated thread, so it would look dead. A caller that
//! knows the object may be shared across pid namespaces runs its lock calls inside
//! [`with_pid_namespace_probe`]; while the probe says
//! "shared", [`is_alive`] answers "alive" for every owner: nothing is ever declared
//! dead that might live elsewhere. Without a probe (raw memory), owners are judged as
//! if everyone shared our pid namespace.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

/// `start_time_low32 << 32 | tid` of a thread (or `<< 32 | pid` of a process); 0 means
/// "nobody".
pub type OwnerIdent = u64;

/// Mask of the TID bits of an identity or lock word.
pub const TID_MASK: u32 = (1 << 30) - 1;

/// The TID part of an identity.
#[inline]
pub fn ident_tid(ident: OwnerIdent) -> u32 {
    (ident as u32) & TID_MASK
}

/// The start-time part of an identity.
#[inline]
pub fn ident_start(ident: OwnerIdent) -> u32 {
    (ident >> 32) as u32
}

thread_local! {
    static ME: Cell<OwnerIdent> = const { Cell::new(0) };
}

/// Whether the fork handler is registered: `0` no, `1` a thread is registering it, `2`
/// registered. Not a `std::sync::Once`: a `Once` that another thread of the parent was
/// running at the moment of a `fork` stays "running" forever in the child, and every
/// lock in the child would then hang on it (seen in the test suite). Nothing here ever
/// waits.
static ATFORK: AtomicU8 = AtomicU8::new(0);
const ATFORK_NONE: u8 = 0;
const ATFORK_REGISTERING: u8 = 1;
const ATFORK_DONE: u8 = 2;

/// Registers [`atfork_child`] once per process; returns whether it is registered.
fn ensure_atfork() -> bool {
    // Acquire: pairs with the Release store below (the registration happened-before).
    if ATFORK.load(Ordering::Acquire) == ATFORK_DONE {
        return true;
    }
    // Acquire/Relaxed: only one thread wins; the others go on without waiting.
    if ATFORK
        .compare_exchange(
            ATFORK_NONE,
            ATFORK_REGISTERING,
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        // libc, not rustix: `pthread_atfork` is a libc function (no syscall), which
        // rustix does not wrap.
        // SAFETY: registering a plain `extern "C" fn` that only touches a thread-local
        // is allowed; the prepare and parent handlers are absent (None).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(atfork_child)) };
        // pthread_atfork only fails on ENOMEM; then let a later call try again.
        let next = if rc == 0 { ATFORK_DONE } else { ATFORK_NONE };
        // Release: publishes the registration to the Acquire loads above.
        ATFORK.store(next, Ordering::Release);
    }
    ATFORK.load(Ordering::Acquire) == ATFORK_DONE
}

/// This process's pid and start time (low 32 bits), cached by [`current_pid`] /
/// [`current_start_time`]; 0 = not known yet. Cleared in a forked child.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static START: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn atfork_child() {
    // Runs in the child's only thread, the one that called fork: forget the parent's
    // identity. `try_with` because the thread-local may be in teardown.
    let _ = ME.try_with(|me| me.set(0));
    // Relaxed: the child is single-threaded right after fork (atomic stores are
    // async-signal-safe).
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
}

/// This process's pid without a syscall on the fast path (glibc no longer caches
/// `getpid`; a syscall costs ~220 ns here). Cleared in a forked child by the fork
/// handler, so a handle inherited through `fork` notices it runs in another process.
///
/// # Examples
/// ```
/// assert_eq!(shmkit_sys::owner::current_pid(), std::process::id());
/// ```
pub fn current_pid() -> u32 {
    // Relaxed: the same value for every thread; a stale 0 only makes us ask the kernel.
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    let handler = ensure_atfork();
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    // Cache only once the handler that clears the cache in a forked child exists.
    if handler {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

/// This process's start time (low 32 bits of field 22 of `/proc/self/stat`; 0 if
/// `/proc` cannot be read), cached like [`current_pid`]. With the pid it names this
/// process uniquely.
pub fn current_start_time() -> u32 {
    let t = START.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    let handler = ensure_atfork();
    let t = start_time(current_pid()).unwrap_or(0);
    if handler {
        START.store(t, Ordering::Relaxed);
    }
    t
}

/// The start time (low 32 bits) of process or thread `id`, if it exists.
///
/// # Examples
/// ```
/// use shmkit_sys::owner::{current_pid, current_start_time, start_time};
///
/// assert_eq!(start_time(current_pid()), Some(current_start_time()));
/// assert_eq!(start_time(u32::MAX), None); // no such process
/// ```
pub fn start_time(id: u32) -> Option<u32> {
    let path = format!("/proc/{id}/stat");
    read_stat(&path).ok().map(|s| s.start)
}

/// The calling thread's identity (cached; no syscall after the first call per thread).
#[inline]
pub fn current() -> OwnerIdent {
    let me = ME.with(Cell::get);
    if me != 0 {
        return me;
    }
    current_slow()
}

#[cold]
fn current_slow() -> OwnerIdent {
    let handler = ensure_atfork();
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    let start = read_stat("/proc/thread-self/stat")
        .map(|s| s.start)
        .unwrap_or(0);
    let ident = (u64::from(start) << 32) | u64::from(tid & TID_MASK);
    // Cache only once the fork handler exists: it is what clears a cached identity
    // that a forked child inherits. Until then (another thread is registering it right
    // now), each call computes the identity afresh: slower, never wrong.
    if handler {
        let _ = ME.try_with(|me| me.set(ident));
    }
    ident
}

#[cfg_attr(loom, allow(dead_code))] // loom models supply their own liveness
struct Stat {
    /// The one-letter state (field 3).
    state: u8,
    /// Start time, clock ticks since boot, truncated to 32 bits (field 22).
    start: u32,
}

/// Reads and parses `/proc/.../stat`; `Err` carries the errno if it does not exist or
/// cannot be read.
fn read_stat(path: &str) -> Result<Stat, i32> {
    use std::io::Read;
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(ESRCH);
    let mut file = std::fs::File::open(path).map_err(errno)?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if len == 0 => return Err(errno(e)),
            Err(_) => break,
        }
    }
    if len == 0 {
        return Err(ESRCH);
    }
    parse_stat(&buf[..len]).ok_or(EINVAL)
}

const ESRCH: i32 = rustix::io::Errno::SRCH.raw_os_error();
const ENOENT: i32 = rustix::io::Errno::NOENT.raw_os_error();
const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

/// Parses the state and start time out of a `stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the *last* `)`.
fn parse_stat(line: &[u8]) -> Option<Stat> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&line[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 was the state; the start time is field 22, i.e. 19 further on.
    let start: u64 = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        state,
        start: start as u32,
    })
}

/// A probe asking "may the owners of this object live in another pid namespace?"; a
/// raw pointer to a caller's closure, valid while [`with_pid_namespace_probe`] runs.
type Probe = *const (dyn Fn() -> bool + 'static);

thread_local! {
    /// The innermost probe of the [`with_pid_namespace_probe`] calls running on this
    /// thread.
    static PROBE: Cell<Option<Probe>> = const { Cell::new(None) };
}

/// Runs `f`; every liveness check made on this thread meanwhile (by [`is_alive`], so by
/// every shmkit layer: a lock's dead-holder recovery, a ring's or queue's dead peer, a
/// segment's dead creator) first calls `shared`, and while it returns `true` (the object
/// may be used from another pid namespace) declares no owner dead: a dead holder is
/// then never recovered, and waiters wait or time out.
///
/// `shared` is called at each check, after the owner word was read, so it may read a
/// flag another process sets at any time (shmkit's segment header flag is read that
/// way, after a SeqCst fence). Calls nest; the previous probe comes back when `f`
/// returns or unwinds.
///
/// # Examples
/// ```
/// use shmkit_sys::owner::{is_alive, with_pid_namespace_probe};
///
/// let shared_across_namespaces = || true; // e.g. a segment header flag
/// // Inside the probe even a pid that exists nowhere counts as alive.
/// assert!(with_pid_namespace_probe(&shared_across_namespaces, || is_alive(u32::MAX, None)));
/// assert!(!is_alive(u32::MAX, None));
/// ```
pub fn with_pid_namespace_probe<R>(shared: &dyn Fn() -> bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Probe>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = PROBE.try_with(|p| p.set(self.0));
        }
    }
    // SAFETY: only the lifetime of the trait object is erased (same fat pointer
    // layout); the pointer is only dereferenced in `foreign_possible` while this
    // call runs (it is restored by `Restore` before `shared`'s borrow ends).
    let erased: Probe =
        unsafe { std::mem::transmute::<*const (dyn Fn() -> bool + '_), Probe>(shared as *const _) };
    let _restore = Restore(PROBE.with(|p| p.replace(Some(erased))));
    f()
}

/// Whether the probe of an enclosing [`with_pid_namespace_probe`] says, right now,
/// that owners may live in another pid namespace (then liveness answers are "alive"
/// even for ids that exist nowhere here: do not cache them).
pub fn probe_says_shared() -> bool {
    foreign_possible()
}

/// Whether the probe of the enclosing [`with_pid_namespace_probe`], if any, says the owners may live
/// in another pid namespace.
fn foreign_possible() -> bool {
    match PROBE.try_with(Cell::get) {
        // SAFETY: a probe is only installed by `with_pid_namespace_probe`, which removes it before
        // the closure it points to goes away; we are inside that call on this thread.
        Ok(Some(p)) => unsafe { (*p)() },
        _ => false,
    }
}

/// Whether the thread or process `tid` still exists and (if `start` is known) is the
/// same one that recorded that start time (not a new one that reused the id); a zombie
/// (killed, not yet reaped) counts as dead. Costs one `/proc` read (a few
/// microseconds): for slow paths only. Always `true` inside a
/// [`with_pid_namespace_probe`] whose probe says the object may be shared across pid
/// namespaces. See the module docs.
///
/// # Examples
/// ```
/// use shmkit_sys::owner::{current_pid, current_start_time, is_alive};
///
/// assert!(is_alive(current_pid(), Some(current_start_time())));
/// // Another start time: a new process that reused our pid, so "we" are gone.
/// assert!(!is_alive(current_pid(), Some(current_start_time().wrapping_add(1))));
/// ```
pub fn is_alive(tid: u32, start: Option<u32>) -> bool {
    if foreign_possible() {
        // A foreign owner cannot be told from a dead one: never declare it dead.
        return true;
    }
    let path = format!("/proc/{tid}/stat");
    match read_stat(&path) {
        Ok(stat) => {
            if stat.state == b'Z' || stat.state == b'X' {
                return false;
            }
            match start {
                Some(s) => s == stat.start,
                None => true,
            }
        }
        Err(ENOENT) | Err(ESRCH) => false,
        Err(_) => {
            // /proc unavailable: fall back to kill(tid, 0), which sees existence only
            // (EPERM: it exists but is not ours).
            let Some(pid) = i32::try_from(tid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return false;
            };
            !matches!(
                rustix::process::test_kill_process(pid),
                Err(rustix::io::Errno::SRCH)
            )
        }
    }
}

/// The process (thread group id) of thread `tid`, from `/proc/<tid>/status`; `None`
/// when the thread is not visible here.
///
/// # Examples
/// ```
/// use shmkit_sys::owner::{current_pid, tgid_of};
///
/// assert_eq!(tgid_of(current_pid()), Some(current_pid())); // the main thread
/// ```
pub fn tgid_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// [`is_alive`] for the identity words rings and queues keep: pid 0 ("nobody") counts
/// as alive, so an empty slot is never "recovered"; start time 0 means "unknown"; only
/// the low 32 bits of `start_time` are compared (what shared words keep).
///
/// # Examples
/// ```
/// use shmkit_sys::owner::{current_pid, current_start_time, process_alive};
///
/// assert!(process_alive(current_pid(), u64::from(current_start_time())));
/// assert!(process_alive(0, 0)); // nobody: nothing to recover
/// assert!(!process_alive(4_194_305 + 7, 0)); // above PID_MAX_LIMIT: never a process
/// ```
pub fn process_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return true;
    }
    let start = (start_time != 0).then_some(start_time as u32);
    is_alive(pid, start)
}

/// The calling process's identity as an [`OwnerIdent`] (`start_time_low32 << 32 |
/// pid`), for objects held by a process rather than a thread (semaphore permits,
/// barrier parties). Judged by [`is_alive`] like a thread's.
pub fn current_process() -> OwnerIdent {
    (u64::from(current_start_time()) << 32) | u64::from(current_pid())
}

/// Inode of this process's pid namespace (`/proc/self/ns/pid`); 0 if unknown.
pub fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = b"1234 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 19 20\n";
        let s = parse_stat(line).expect("parse");
        assert_eq!(s.state, b'S');
        assert_eq!(s.start, 987654);
    }

    #[test]
    fn current_thread_is_alive_and_identity_is_cached() {
        let me = current();
        assert_ne!(me, 0);
        assert_eq!(current(), me);
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        assert_eq!(ident_tid(me), tid);
        assert!(is_alive(ident_tid(me), Some(ident_start(me))));
        // A wrong start time means "a different thread reused this TID".
        assert!(!is_alive(
            ident_tid(me),
            Some(ident_start(me).wrapping_add(1))
        ));
    }

    #[test]
    fn inside_a_shared_probe_nobody_is_declared_dead() {
        let me = current();
        let gone = std::thread::spawn(current).join().unwrap();
        let missing = 4_194_305 + 7; // above PID_MAX_LIMIT: never a thread
        assert!(!is_alive(missing, None));
        let shared = std::cell::Cell::new(true);
        let probe = || shared.get();
        with_pid_namespace_probe(&probe, || {
            // Missing, exited, or another start time: all could be a live thread in
            // another pid namespace.
            assert!(is_alive(missing, None));
            assert!(is_alive(ident_tid(gone), Some(ident_start(gone))));
            assert!(is_alive(
                ident_tid(me),
                Some(ident_start(me).wrapping_add(1))
            ));
            // The probe is asked at each check, not once.
            shared.set(false);
            assert!(!is_alive(missing, None));
            shared.set(true);
            // Nested probes: the inner one decides, the outer one comes back.
            with_pid_namespace_probe(&|| false, || assert!(!is_alive(missing, None)));
            assert!(is_alive(missing, None));
        });
        assert!(!is_alive(missing, None), "the probe ends with its call");
        let unwound =
            std::panic::catch_unwind(|| with_pid_namespace_probe(&|| true, || panic!("boom")));
        assert!(unwound.is_err());
        assert!(!is_alive(missing, None), "and when its call unwinds");
    }

    #[test]
    fn other_threads_have_other_identities() {
        let me = current();
        let other = std::thread::spawn(current).join().unwrap();
        assert_ne!(ident_tid(me), ident_tid(other));
        // That thread has exited: its TID is gone (or reused with another start time).
        // `join` returns when the kernel clears the thread's TID word, early in its
        // exit: for a moment more `/proc` may still show it running (seen once in 19
        // runs of the whole suite), so the exit is awaited, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(ident_tid(other), Some(ident_start(other))) {
            assert!(
                std::time::Instant::now() < deadline,
                "an exited thread still alive after 10 s"
            );
            std::thread::yield_now();
        }
    }
}
