//! The per-process **death watcher**: one helper thread that holds the pidfds of the
//! peer processes current waiters depend on, and wakes those waiters when a peer
//! exits, so that an idle waiter sleeps without a timer while its peer lives.
//!
//! A waiter that is about to sleep on a [`Parker`] until a peer process acts calls
//! [`watch`] with the peer's pid and start time; while the returned [`Registration`]
//! lives, the peer's exit sets [`Registration::fired`] and bumps and wakes the parker
//! ([`Parker::bump_and_wake`]). The waiter then sleeps in long slices
//! ([`SAFETY_SLICE`], a safety net only) instead of the paced 10–80 ms checks of
//! [`CheckPace`](crate::parker::CheckPace).
//!
//! Registrations are refcounted per (peer, parker): a thousand waiters on one peer and
//! one parker cost one pidfd, one epoll entry and one wake. The thread is started
//! lazily by the first registration, and again lazily in a forked child (which has no
//! threads but the forking one: the inherited state is dropped when the pid differs).
//!
//! # The wake-up is not lost
//! The watcher is just another waker of the [`Parker`] protocol: it publishes the
//! change (the registration's `dead` flag, Release) and then bumps the event word
//! unconditionally (Release) and futex-wakes. The waiter's re-check in
//! [`Parker::park`] includes [`Registration::fired`] (Acquire): either the re-check
//! sees the flag, or the event word it loaded before the re-check is older than the
//! bump, and the futex wait returns at once. A peer that died before [`watch`] opened
//! its pidfd is a readable pidfd at once (a zombie) or no pidfd (gone or reused: the
//! start time no longer matches): [`watch`] then returns `None` and the caller keeps
//! the paced checks.
//!
//! # When there is no registration
//! [`watch`] returns `None` (the caller falls back to paced checks) when the pidfd
//! cannot be had (kernel before 5.3, no permission, pid not visible in this pid
//! namespace, or inside a pid-namespace probe that says owners may live elsewhere),
//! or when the helper thread cannot be started.
//!
//! # Examples
//! ```
//! use shmkit_sys::{owner, watcher, Parker};
//!
//! let parker = Parker::new();
//! let mut child = std::process::Command::new("sleep").arg("5").spawn()?;
//! let start = owner::start_time(child.id()).map_or(0, u64::from);
//! // SAFETY: `parker` outlives the registration (dropped at the end of this scope).
//! let reg = unsafe { watcher::watch(child.id(), start, &parker) };
//! if let Some(reg) = reg {
//!     child.kill()?;
//!     // The watcher thread bumps the parker when the child exits.
//!     let end = parker.wait_until(None, &mut shmkit_sys::parker::NoHooks, || reg.fired())?;
//!     assert_eq!(end, shmkit_sys::parker::WaitEnd::Ready);
//! } else {
//!     child.kill()?; // no pidfd here (old kernel): callers fall back to paced checks
//! }
//! child.wait()?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::atomic::AtomicU32;
use crate::parker::Parker;

/// How long a waiter whose peer is watched sleeps before it looks again by itself: a
/// safety net only (a peer's exit wakes it at once). Also the longest time a lock
/// waiter takes to notice a holder *thread* that exited while its process lives.
pub const SAFETY_SLICE: Duration = Duration::from_secs(1);

/// A waiter's registration with the death watcher: see the [module docs](self).
/// Dropping it unregisters (the last registration of a peer closes its pidfd).
#[derive(Debug)]
pub struct Registration {
    dead: Arc<AtomicBool>,
    #[cfg(not(loom))]
    key: (u32, u64),
    #[cfg(not(loom))]
    target: Target,
    #[cfg(not(loom))]
    owner_pid: u32,
}

/// What the watcher wakes when a peer exits.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    /// A [`Parker`] (address): bumped and woken.
    Parker(usize),
    /// A lock's futex word (address): woken without a change (a lock word belongs to
    /// the lock protocol), and woken again every [`REWAKE`] until its waiters
    /// unregister, which covers a waiter that checked [`Registration::fired`] just
    /// before the exit and went to sleep just after the first wake.
    Word(usize),
}

/// How often the watcher wakes again the lock words of a dead peer whose waiters have
/// not unregistered yet (see `Target::Word`).
pub const REWAKE: Duration = Duration::from_millis(10);

/// A [`Registration`] for a lock word borrowed for `'a` (safe: it cannot outlive the
/// word). See [`watch_thread`].
#[derive(Debug)]
pub struct WordWatch<'a> {
    reg: Registration,
    _word: std::marker::PhantomData<&'a AtomicU32>,
}

impl WordWatch<'_> {
    /// Whether the watched process has exited (its lock waiters were woken).
    pub fn fired(&self) -> bool {
        self.reg.fired()
    }
}

/// Registers the futex `word` (a lock word) to be woken when the *process* of thread
/// `tid` (started at `start`, if known) exits: the lock holder is a thread, and its
/// process is found once (`Tgid` in `/proc/<tid>/status`). `None` when it cannot be
/// watched (see the [module docs](self)) or the thread is gone already: fall back to
/// paced checks.
///
/// Only the process is watched: a holder *thread* that exits while its process lives
/// is not seen by the watcher, and a waiter notices it at the end of its
/// [`SAFETY_SLICE`].
pub fn watch_thread(tid: u32, start: Option<u32>, word: &AtomicU32) -> Option<WordWatch<'_>> {
    #[cfg(loom)]
    {
        let _ = (tid, start, word);
        None
    }
    #[cfg(not(loom))]
    {
        if tid == 0 || crate::owner::probe_says_shared() {
            return None;
        }
        let tgid = crate::owner::tgid_of(tid)?;
        let pstart = crate::owner::start_time(tgid)?;
        let reg = imp::register(
            tgid,
            u64::from(pstart),
            Target::Word(word as *const _ as usize),
        )?;
        // The thread still lives after the pidfd was opened: its process did not exit,
        // so `tgid` was not reused and the pidfd names the holder's process.
        crate::owner::is_alive(tid, start).then_some(WordWatch {
            reg,
            _word: std::marker::PhantomData,
        })
    }
}

impl Registration {
    /// Whether the watched peer has exited (then the parker was bumped and woken).
    pub fn fired(&self) -> bool {
        // Acquire: pairs with the watcher's Release store before it bumps the parker.
        self.dead.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Registers `parker` to be bumped and woken when process `pid` (started at `start`,
/// low 32 bits; 0 = unknown, then any process with that pid) exits. `None` when the
/// peer cannot be watched (see the [module docs](self)): fall back to paced checks.
///
/// # Safety
/// `parker` must stay valid (mapped) until the returned [`Registration`] is dropped:
/// the watcher thread may bump it at any time until then.
pub unsafe fn watch(pid: u32, start: u64, parker: *const Parker) -> Option<Registration> {
    #[cfg(loom)]
    {
        let _ = (pid, start, parker);
        None
    }
    #[cfg(not(loom))]
    {
        if pid == 0 || crate::owner::probe_says_shared() {
            return None;
        }
        imp::register(pid, start, Target::Parker(parker as usize))
    }
}

/// Whether this process's watcher currently holds a registration on process `pid`
/// (for tests and diagnostics: a waiter blocked on a live peer should be registered).
pub fn is_watched(pid: u32) -> bool {
    #[cfg(loom)]
    {
        let _ = pid;
        false
    }
    #[cfg(not(loom))]
    {
        imp::is_watched(pid)
    }
}

/// Whether `pidfd_open` works here (kernel 5.3+, not forbidden by a seccomp filter):
/// without it nothing is watched and waiters keep paced checks.
pub fn pidfds_available() -> bool {
    let Some(me) = rustix::process::Pid::from_raw(std::process::id() as i32) else {
        return false;
    };
    rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).is_ok()
}

impl Drop for Registration {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        imp::unwatch(self);
    }
}

#[cfg(not(loom))]
mod imp {
    use super::*;
    use crate::atomic::Ordering;
    use rustix::event::epoll;
    use rustix::fd::OwnedFd;
    use std::collections::HashMap;

    struct Peer {
        pidfd: OwnedFd,
        dead: Arc<AtomicBool>,
        /// What to wake → registrations.
        parkers: HashMap<Target, usize>,
    }

    pub(super) struct State {
        /// The process this state (and its thread) belongs to; another pid means a
        /// forked child that inherited the memory but not the thread.
        pid: u32,
        epoll: Arc<OwnedFd>,
        peers: HashMap<(u32, u64), Peer>,
        /// epoll token → peer key.
        tokens: HashMap<u64, (u32, u64)>,
        next_token: u64,
    }

    /// Per process: a child forked while another thread held this lock gets its own
    /// (see [`PerProcess`](crate::per_process::PerProcess)).
    static STATE: crate::per_process::PerProcess<Option<State>> =
        crate::per_process::PerProcess::new();

    pub(super) fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
        // A panic while holding the lock leaves consistent maps (no invariant spans
        // an unwind point): `PerProcess::lock` goes on.
        STATE.lock()
    }

    /// The state of this process, starting the helper thread if needed.
    fn state(guard: &mut Option<State>) -> Option<&mut State> {
        let me = crate::owner::current_pid();
        if guard.as_ref().is_some_and(|s| s.pid != me) {
            // A forked child: the parent's thread is not here. Forget its state
            // (closing our copies of its fds does not affect the parent).
            *guard = None;
        }
        if guard.is_none() {
            let ep = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).ok()?);
            let thread_ep = ep.clone();
            std::thread::Builder::new()
                .name("shmkit-watcher".into())
                .spawn(move || run(me, &thread_ep))
                .ok()?;
            *guard = Some(State {
                pid: me,
                epoll: ep,
                peers: HashMap::new(),
                tokens: HashMap::new(),
                next_token: 0,
            });
        }
        guard.as_mut()
    }

    pub(super) fn register(pid: u32, start: u64, target: Target) -> Option<Registration> {
        let mut guard = lock();
        let st = state(&mut guard)?;
        let key = (pid, start);
        if !st.peers.contains_key(&key) {
            let pidfd = crate::parker::open_verified_pidfd(pid, start)?;
            let token = st.next_token;
            st.next_token += 1;
            epoll::add(
                &*st.epoll,
                &pidfd,
                epoll::EventData::new_u64(token),
                epoll::EventFlags::IN,
            )
            .ok()?;
            st.tokens.insert(token, key);
            st.peers.insert(
                key,
                Peer {
                    pidfd,
                    dead: Arc::new(AtomicBool::new(false)),
                    parkers: HashMap::new(),
                },
            );
        }
        let peer = st.peers.get_mut(&key)?;
        *peer.parkers.entry(target).or_insert(0) += 1;
        Some(Registration {
            dead: peer.dead.clone(),
            key,
            target,
            owner_pid: st.pid,
        })
    }

    pub(super) fn is_watched(pid: u32) -> bool {
        let guard = lock();
        guard.as_ref().is_some_and(|st| {
            st.pid == crate::owner::current_pid()
                && st
                    .peers
                    .iter()
                    .any(|(k, p)| k.0 == pid && !p.parkers.is_empty())
        })
    }

    pub(super) fn unwatch(reg: &Registration) {
        let mut guard = lock();
        let Some(st) = guard.as_mut().filter(|s| s.pid == reg.owner_pid) else {
            return; // registered by the parent before a fork: its state is gone
        };
        let Some(peer) = st.peers.get_mut(&reg.key) else {
            return;
        };
        if let Some(n) = peer.parkers.get_mut(&reg.target) {
            *n -= 1;
            if *n == 0 {
                peer.parkers.remove(&reg.target);
            }
        }
        if peer.parkers.is_empty() {
            if let Some(peer) = st.peers.remove(&reg.key) {
                // Already removed from the epoll set if it fired; an error is harmless.
                let _ = epoll::delete(&*st.epoll, &peer.pidfd);
                st.tokens.retain(|_, k| *k != reg.key);
            }
        }
    }

    /// Wakes what `peer` has registered (its process exited).
    fn wake_all(peer: &Peer) {
        for target in peer.parkers.keys() {
            match *target {
                Target::Parker(addr) => {
                    // SAFETY: `watch`'s contract keeps the parker valid until its
                    // registration drops, and unregistering takes the state lock,
                    // which our caller holds.
                    let parker = unsafe { &*(addr as *const Parker) };
                    parker.bump_and_wake(u32::MAX);
                }
                Target::Word(addr) => {
                    // SAFETY: a `WordWatch` borrows the word for as long as its
                    // registration lives, and unregistering takes the state lock,
                    // which our caller holds.
                    let word = unsafe { &*(addr as *const AtomicU32) };
                    crate::futex::wake_all(word);
                }
            }
        }
    }

    /// The helper thread: waits for pidfds to turn readable (their process exited) and
    /// wakes what is registered on them; while a dead peer keeps lock-word
    /// registrations, wakes those again every [`REWAKE`].
    fn run(me: u32, ep: &OwnedFd) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(16);
        let mut rewake = false;
        loop {
            events.clear();
            let rewake_after = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: REWAKE.as_nanos() as i64,
            };
            let timeout = rewake.then_some(&rewake_after);
            match epoll::wait(ep, rustix::buffer::spare_capacity(&mut events), timeout) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return, // the epoll fd is unusable: waiters keep their slices
            }
            let mut guard = lock();
            let Some(st) = guard.as_mut().filter(|s| s.pid == me) else {
                return;
            };
            for ev in &events {
                // A copy: the event may be a packed struct.
                let data = ev.data;
                let Some(key) = st.tokens.remove(&data.u64()) else {
                    continue;
                };
                let Some(peer) = st.peers.get(&key) else {
                    continue;
                };
                // Out of the set: a readable pidfd stays readable (level-triggered).
                let _ = epoll::delete(ep, &peer.pidfd);
                // Release: pairs with the Acquire in `Registration::fired`, read in
                // the waiter's re-check after it loaded the event word.
                peer.dead.store(true, Ordering::Release);
                wake_all(peer);
            }
            rewake = false;
            // Relaxed: our own store above (or an earlier turn's), under the lock.
            for peer in st.peers.values().filter(|p| p.dead.load(Ordering::Relaxed)) {
                if peer.parkers.keys().any(|t| matches!(t, Target::Word(_))) {
                    if events.is_empty() {
                        wake_all(peer);
                    }
                    rewake = true;
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::parker::{NoHooks, WaitEnd};

    #[test]
    fn a_killed_peer_wakes_a_long_sleep_and_registrations_are_shared() {
        let parker = Parker::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let start = crate::owner::start_time(child.id()).map_or(0, u64::from);
        // SAFETY: `parker` outlives both registrations (dropped before it).
        let (a, b) = unsafe {
            (
                watch(child.id(), start, &parker).expect("pidfd_open works here"),
                watch(child.id(), start, &parker).expect("pidfd_open works here"),
            )
        };
        assert!(!a.fired() && !b.fired());
        drop(b); // one of two: the peer stays watched
        let waiter = std::thread::scope(|s| {
            let w = s.spawn(|| {
                // No deadline and no hooks: only the watcher can end this wait.
                parker.wait_until(None, &mut NoHooks, || a.fired())
            });
            child.kill().expect("kill");
            w.join().unwrap()
        });
        assert_eq!(waiter.expect("futex"), WaitEnd::Ready);
        assert!(a.fired());
        child.wait().expect("reap");
    }

    #[test]
    fn a_killed_holder_process_wakes_a_futex_wait_on_a_lock_word() {
        let word = AtomicU32::new(7);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        // The child's main thread stands for a lock holder thread.
        let ww = watch_thread(child.id(), None, &word).expect("pidfd_open works here");
        assert!(!ww.fired());
        std::thread::scope(|s| {
            let w = s.spawn(|| {
                // No deadline, and the word never changes: only the watcher's wakes
                // (repeated until we unregister) can end these waits.
                while !ww.fired() {
                    crate::futex::wait(&word, 7, None).expect("futex");
                }
            });
            child.kill().expect("kill");
            w.join().unwrap();
        });
        assert!(ww.fired());
        child.wait().expect("reap");
    }

    /// A thread that holds the watcher's state lock when another thread forks: the
    /// child inherits the lock held by a thread it does not have. Before the state was
    /// per process, the child's first watch waited on that lock forever (seen as a
    /// hung 8-process lock test in CI-like runs).
    #[test]
    fn a_child_forked_while_another_thread_holds_the_watchers_lock_still_watches() {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = imp::lock();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        // SAFETY: the child only watches its parent and leaves with `_exit`; the lock
        // another thread holds at the fork is exactly what the test is about.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let parker = Parker::new();
            let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
            let start = crate::owner::start_time(parent).map_or(0, u64::from);
            // SAFETY: `parker` outlives the registration (dropped first).
            let reg = unsafe { watch(parent, start, &parker) };
            let code = if reg.is_some() { 0 } else { 3 };
            drop(reg);
            // SAFETY: ends the child without the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        // Bounded: a child still stuck after 20 s is killed and the test fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut status = 0;
        let exited = loop {
            // SAFETY: `pid` is our child; `status` a valid out pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break true;
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break false;
            }
            // Polling a child's exit status (not synchronisation under test).
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(
            exited,
            "the child hung on the lock its parent's thread held"
        );
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }

    #[test]
    fn a_gone_or_reused_pid_is_not_watched() {
        let parker = Parker::new();
        // SAFETY: `parker` outlives the (absent) registrations.
        unsafe {
            assert!(watch(4_194_305 + 7, 0, &parker).is_none());
            let me = crate::owner::current_pid();
            let wrong_start = u64::from(crate::owner::current_start_time()) ^ 1;
            assert!(watch(me, wrong_start, &parker).is_none());
        }
    }
}
