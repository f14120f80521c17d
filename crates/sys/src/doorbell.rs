//! The async **doorbell**: how a future sleeps on a shmkit futex word without a thread
//! of its own, and without busy polling.
//!
//! No executor can poll a futex. A future that cannot proceed therefore *arms* an
//! [`Interest`]: the address of the futex word it would sleep on, the value it would
//! sleep on, its task's [`Waker`], and optionally the peer process its wait depends on.
//! A per-process helper thread sleeps in [`futex::wait_any_raw`]
//! (`futex_waitv`, Linux 5.16+) on every armed word at once and, when a word is woken
//! or no longer holds its value, wakes the wakers armed on it. The future is then
//! polled again, re-checks its condition and either completes or arms again.
//!
//! # The bound
//! Words are shared, not futures: every interest on one word shares one slot of the
//! helper's wait. A helper waits on at most [`WORDS_PER_HELPER`] (126) distinct words
//! (`futex_waitv` takes 128: the other two are the helper's own control word and the
//! death word below), so this process runs `ceil(distinct armed words / 126)` helper
//! threads: 10,000 futures waiting on 100 objects are one thread. A helper whose words
//! all went away exits; the next interest starts one again.
//!
//! # The handshake (no lost wake-up)
//! The waker side is unchanged: it publishes, then (behind its fence) looks for
//! sleepers and, if any, changes the word and futex-wakes it ([`Parker::wake`], or the
//! sync objects' `waiters` counters). A future counts itself as a sleeper for as long
//! as it waits (e.g. [`Parker::announce`] on its first pending poll, [`Parker::retract`]
//! when it completes or is dropped), loads the value *after* announcing, re-checks its
//! condition, and only then arms that value. Either the re-check sees the change, or
//! the waker saw the sleeper and changes the word: if the change comes before the
//! helper's `futex_waitv`, the kernel finds the word differing and returns at once; if
//! after, the wake reaches the helper. Loom-modelled (`parker`'s `loom_tests`).
//!
//! # Safety without keep-alive
//! The helper never reads or writes an armed word itself: it only hands addresses to
//! the kernel, which answers `EFAULT` for memory that is gone. A future that is leaked
//! (`mem::forget`) with its interest armed, and whose object is then unmapped, costs at
//! most one spurious wake-up; no memory of ours is touched. This is why an interest
//! needs no `Arc` of the mapping.
//!
//! # Peers that die
//! An interest may name the peer process its wait depends on. Peers are watched per
//! process, not per future: the first interest on a peer registers it with the death
//! [`watcher`] (one pidfd) against a static [`Parker`] every helper
//! also waits on; when the peer exits, the helpers wake the interests armed on it, and
//! their futures find the death as the blocking forms do and return the same typed
//! error. A peer the watcher cannot watch (no pidfd) is checked by its futures when the
//! helper wakes them every [`CHECK_CAP`] (80 ms) while such interests are armed.
//!
//! # Fork and shutdown
//! The state belongs to the process that made it: in a forked child (another pid) it
//! is dropped, and the child's first interest starts a helper of its own. A helper
//! exits when it has no word left, i.e. when the last interest on its words is dropped
//! (a runtime that shuts down with futures pending drops them, and so their interests).
//!
//! # Timers
//! A wait with no futex word to sleep on (`flock`, which has no readiness: see
//! `shmkit_sync`'s `NamedLock` and `FileLock`) retries after a delay. No executor-neutral
//! timer exists, so the doorbell is that timer: [`Interest::arm_timer`] wakes the
//! waker at a [`Deadline`], from the same helper threads (their `futex_waitv` takes
//! the earliest armed deadline as its timeout). Timer interests share one word that
//! nobody wakes, so any number of them take one slot of one helper.
//!
//! # Spinning in poll (optional, off by default)
//! A future that finds nothing arms the doorbell at once: its wake-up then costs a
//! futex wake of the helper and a cross-thread wake of the task (tens of µs here),
//! where a blocking wait polls for some 50 µs first and, in a ping-pong, never sleeps.
//! [`set_poll_spin`] gives pending polls that bounded spin too: the futures of the
//! typed objects (ring, queue, channel, topic, `Latest`) and of `Event` and
//! `Semaphore` retry their operation for up to that long ([`spin_for`]) before they
//! announce themselves and arm. It is off (zero) by default: a spinning poll holds
//! its executor thread for up to the budget, which a runtime with other tasks to run
//! rarely wants; a dedicated latency-critical task may.
//!
//! # With tokio: io_uring, one hop (feature `tokio`)
//! Through a helper thread a wake-up travels twice (the helper, then the task's
//! runtime thread). With the `tokio` feature, on Linux 6.7+, an interest armed by a
//! future polled inside a tokio runtime goes instead to an io_uring ring of the
//! polling thread whose file descriptor sits in the runtime's reactor: the kernel
//! wakes the runtime thread itself, as for a socket (`doorbell_uring.rs` has the
//! design: one ring per thread, one request per word and ring, a reaper task per
//! ring, cancel on the last interest's drop, rings closed with their runtime). The
//! handshake above is unchanged (the kernel compares the word, as `futex_waitv`
//! does), so it has no loom model of its own. Timers, peers the watcher cannot watch,
//! other executors, and kernels or sandboxes without io_uring's futex ops stay with
//! the helper threads ([`uring_available`] says which). The runtime must have I/O
//! enabled (`enable_io`/`enable_all`, as `#[tokio::main]` does): tokio cannot be
//! asked, so one registration in a runtime without it panics inside tokio (the
//! message is printed once) and turns the backend off for the process.
//!
//! # Without `futex_waitv` (Linux before 5.16)
//! The helper then sleeps on its control word alone, in slices of
//! [`FIRST_CHECK`] (10 ms), and wakes every armed interest
//! after each slice: correct, but a wake-up may take up to 10 ms and idle futures cost
//! CPU. [`waitv_available`] says which mode this kernel gives.
//!
//! # Examples
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::task::{Wake, Waker};
//! use shmkit_sys::doorbell::Interest;
//! use shmkit_sys::Parker;
//!
//! // A waker that counts its wake-ups (an executor's would re-poll the task).
//! struct Count(AtomicU32);
//! impl Wake for Count {
//!     fn wake(self: Arc<Self>) {
//!         self.0.fetch_add(1, Ordering::SeqCst);
//!     }
//! }
//! let count = Arc::new(Count(AtomicU32::new(0)));
//! let waker = Waker::from(count.clone());
//!
//! let parker = Parker::new();
//! let ready = AtomicU32::new(0);
//! // The future's poll: announce, re-check, arm.
//! let ev = parker.announce();
//! assert_eq!(ready.load(Ordering::Acquire), 0);
//! let mut interest = Interest::new();
//! interest.arm(parker.event(), ev, None, &waker)?;
//! // Another thread (or process) publishes and wakes, as for a blocking waiter.
//! ready.store(1, Ordering::Release);
//! parker.wake(1);
//! while count.0.load(Ordering::SeqCst) == 0 {
//!     std::thread::yield_now(); // the helper thread wakes the waker
//! }
//! assert!(interest.disarm()); // woken, and now deregistered
//! parker.retract();
//! # Ok::<(), shmkit_sys::OsError>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};
use std::task::Waker;

use crate::futex::{self, AnyWord, Deadline, WaitAny};

#[cfg(feature = "tokio")]
#[path = "doorbell_uring.rs"]
mod uring;
use crate::parker::{Parker, CHECK_CAP, FIRST_CHECK};
use crate::watcher;

/// The most distinct words one helper thread waits on (`futex_waitv` takes 128; the
/// helper's control word and the death word take two).
pub const WORDS_PER_HELPER: usize = futex::WAIT_ANY_MAX - 2;

/// Bumped by the death watcher when a watched peer exits; every helper waits on its
/// event word. Static, so the watcher may bump it at any time.
static DEATH: Parker = Parker::new();

/// The word every timer interest ([`Interest::arm_timer`]) is armed on: it holds 0 for
/// ever and nobody wakes it, so only its interests' deadlines end their wait.
static TIMER: AtomicU32 = AtomicU32::new(0);

/// The bounded spin of pending polls, in nanoseconds (0: off): see [`set_poll_spin`].
static POLL_SPIN_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets how long a pending poll of this process's futures spins on its operation
/// before it arms the doorbell (`Duration::ZERO`, the default: not at all). See
/// [Spinning in poll](self#spinning-in-poll-optional-off-by-default).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmkit_sys::doorbell;
///
/// doorbell::set_poll_spin(Duration::from_micros(50)); // as long as a blocking wait polls
/// assert_eq!(doorbell::poll_spin(), Duration::from_micros(50));
/// let mut tries = 0;
/// assert_eq!(doorbell::spin_for(|| { tries += 1; (tries == 3).then_some(tries) }), Some(3));
/// doorbell::set_poll_spin(Duration::ZERO); // off again
/// assert_eq!(doorbell::spin_for(|| Some(1)), None); // off: does not even try
/// ```
pub fn set_poll_spin(budget: std::time::Duration) {
    let nanos = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
    // Relaxed: a setting, read on its own.
    POLL_SPIN_NANOS.store(nanos, Ordering::Relaxed);
}

/// The spin budget of pending polls ([`set_poll_spin`]).
pub fn poll_spin() -> std::time::Duration {
    // Relaxed: as in `set_poll_spin`.
    std::time::Duration::from_nanos(POLL_SPIN_NANOS.load(Ordering::Relaxed))
}

/// Retries `attempt` with the floor's [`Backoff`](crate::Backoff) for up to the
/// [`poll_spin`] budget; returns its first `Some`, or `None` once the budget is spent
/// (at once, without a try, when spinning is off). For a future's poll, before it
/// announces itself as a sleeper.
#[inline]
pub fn spin_for<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    // Relaxed: as in `set_poll_spin`.
    let nanos = POLL_SPIN_NANOS.load(Ordering::Relaxed);
    if nanos == 0 {
        return None;
    }
    let mut backoff = crate::Backoff::polling_for(std::time::Duration::from_nanos(nanos));
    while backoff.snooze() {
        if let Some(t) = attempt() {
            return Some(t);
        }
    }
    None
}

/// Helper threads running now in this process (see [`helper_threads`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Helper threads running now in this process: `ceil(distinct armed words / 126)` at
/// most (plus, briefly, one that is exiting). For tests and diagnostics.
pub fn helper_threads() -> usize {
    // Relaxed: a snapshot.
    RUNNING.load(Ordering::Relaxed)
}

/// Distinct words with at least one interest in this process now. For tests.
pub fn registered_words() -> usize {
    count_here(|st| {
        #[cfg(feature = "tokio")]
        let on_rings = st.uring.words.len();
        #[cfg(not(feature = "tokio"))]
        let on_rings = 0;
        st.words.len() + on_rings
    })
}

/// `count` of this process's state (0 before it has one, and in a forked child).
fn count_here(count: impl FnOnce(&State) -> usize) -> usize {
    let guard = lock();
    guard
        .as_ref()
        .filter(|st| st.pid == crate::owner::current_pid())
        .map_or(0, count)
}

/// For tests only: sends every interest to the helper threads while `on`, as where
/// io_uring is refused (the `tokio` feature's backend, `doorbell_uring.rs`).
#[doc(hidden)]
pub fn force_helpers(on: bool) {
    #[cfg(feature = "tokio")]
    // Relaxed: a setting, read on its own.
    uring::FORCE_HELPERS.store(on, Ordering::Relaxed);
    #[cfg(not(feature = "tokio"))]
    let _ = on;
}

/// Whether futures polled inside a tokio runtime are served by the io_uring backend
/// here: the `tokio` feature is on and this kernel lets the process use io_uring with
/// its futex ops (Linux 6.7+; a seccomp filter, e.g. a container's default, may
/// refuse io_uring). Otherwise the helper threads serve them.
pub fn uring_available() -> bool {
    #[cfg(feature = "tokio")]
    {
        uring::usable()
    }
    #[cfg(not(feature = "tokio"))]
    false
}

/// io_uring rings this process's doorbell holds now (one per thread that polled a
/// future inside a tokio runtime, while that runtime lives; always 0 without the
/// `tokio` feature). For tests and diagnostics.
pub fn uring_rings() -> usize {
    #[cfg(feature = "tokio")]
    {
        count_here(|st| st.uring.rings.len())
    }
    #[cfg(not(feature = "tokio"))]
    0
}

/// Set by [`force_slices`]: helpers behave as on a kernel without `futex_waitv`.
static FORCE_SLICES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For tests only: makes this process's helper threads behave as on a kernel without
/// `futex_waitv` (Linux before 5.16: 10 ms slices, see the [module docs](self)) while
/// `on`, so that the fallback is exercised on any kernel. A helper asleep in
/// `futex_waitv` switches at its next wake (any new word or timer wakes it).
#[doc(hidden)]
pub fn force_slices(on: bool) {
    // Relaxed: a setting, read on its own.
    FORCE_SLICES.store(on, Ordering::Relaxed);
}

/// Whether this kernel has `futex_waitv` (Linux 5.16+): see the [module docs](self)
/// for what the doorbell does without it.
pub fn waitv_available() -> bool {
    let w = AtomicU32::new(0);
    !matches!(
        futex::wait_any_raw(&[AnyWord::new(&w, 1)], Some(&Deadline::now())),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error())
    )
}

/// A peer process: pid and start time (low 32 bits; 0 = unknown).
pub type PeerKey = (u32, u64);

/// A future's registration with the doorbell: see the [module docs](self). Created
/// empty; [`arm`](Self::arm) registers it, [`disarm`](Self::disarm) (or drop)
/// deregisters it.
#[derive(Debug, Default)]
pub struct Interest {
    /// 0: not registered.
    id: u64,
    /// The process that registered it (a forked child's copy is not registered).
    pid: u32,
}

struct Entry {
    word: usize,
    /// The io_uring ring it is armed on (`doorbell_uring.rs`); 0: the helpers.
    ring: u64,
    peer: Option<PeerKey>,
    /// A timer interest's deadline (see [`Interest::arm_timer`]).
    until: Option<Deadline>,
    waker: Option<Waker>,
    /// Woken by the helper since it was last armed.
    woken: bool,
}

impl Entry {
    /// Arms the entry on `at` (ring, word address) with its peer, deadline and
    /// waker; returns the waker it replaced, to be dropped after the lock is
    /// released (dropping the last reference of a task may drop its future, whose
    /// interest takes this lock).
    fn set(
        &mut self,
        at: (u64, usize),
        peer: Option<PeerKey>,
        until: Option<Deadline>,
        waker: &Waker,
    ) -> Option<Waker> {
        (self.ring, self.word) = at;
        self.peer = peer;
        self.until = until;
        self.woken = false;
        match &mut self.waker {
            Some(old) if old.will_wake(waker) => None,
            slot => slot.replace(waker.clone()),
        }
    }
}

struct Word {
    helper: usize,
    expected: u32,
    /// Whether the helper waits on it (some interest armed it since the last wake).
    armed: bool,
    interests: HashSet<u64>,
}

struct Peer {
    /// `None`: the watcher cannot watch it; its futures are woken every `CHECK_CAP`.
    reg: Option<watcher::Registration>,
    refs: usize,
}

struct Helper {
    /// Bumped (and woken) when this helper's set of armed words changes.
    control: Arc<AtomicU32>,
    words: usize,
    running: bool,
}

struct State {
    pid: u32,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    words: HashMap<usize, Word>,
    helpers: Vec<Helper>,
    peers: HashMap<PeerKey, Peer>,
    /// Armed interests whose peer the watcher does not watch.
    paced: usize,
    /// The io_uring backend's rings and words.
    #[cfg(feature = "tokio")]
    uring: uring::Table,
}

/// Per process: a forked child gets a fresh `None` and never takes the lock of its
/// parent's state, which another thread may have held at the fork (see
/// [`PerProcess`](crate::per_process::PerProcess)). The parent's state is left behind,
/// leaked, not dropped: its wakers are copies of the parent's tasks, and dropping one
/// could run a task's destructor here.
static STATE: crate::per_process::PerProcess<Option<State>> = crate::per_process::PerProcess::new();

fn lock() -> MutexGuard<'static, Option<State>> {
    // No invariant of the maps spans a point that can panic: `PerProcess::lock` goes
    // on after a poison.
    STATE.lock()
}

/// This process's state, made on its first use here.
fn state(guard: &mut Option<State>) -> &mut State {
    let me = crate::owner::current_pid();
    if guard.is_none() {
        // A first use in this process: in a forked child, the parent's helper threads
        // counted here do not exist.
        RUNNING.store(0, Ordering::Relaxed);
    }
    guard.get_or_insert_with(|| State {
        pid: me,
        next_id: 1,
        entries: HashMap::new(),
        words: HashMap::new(),
        helpers: Vec::new(),
        peers: HashMap::new(),
        paced: 0,
        #[cfg(feature = "tokio")]
        uring: uring::Table::default(),
    })
}

fn ring(control: &AtomicU32) {
    // Release: the helper re-reads the state under the lock after it sees the bump.
    control.fetch_add(1, Ordering::Release);
    futex::wake_all(control);
}

impl State {
    fn peer_is_paced(&self, peer: Option<PeerKey>) -> bool {
        peer.and_then(|k| self.peers.get(&k))
            .is_some_and(|p| p.reg.is_none())
    }

    /// Removes entry `id` from its word on ring `ring` (0: a helper's word).
    fn unlink_from(&mut self, id: u64, ring: u64, word: usize) {
        #[cfg(feature = "tokio")]
        if ring != 0 {
            return uring::unlink(self, id, (ring, word));
        }
        debug_assert_eq!(ring, 0);
        self.unlink(id, word);
    }

    /// Removes entry `id` from its helper word (and the word, if it was the last).
    fn unlink(&mut self, id: u64, word: usize) {
        let Some(w) = self.words.get_mut(&word) else {
            return;
        };
        w.interests.remove(&id);
        if w.interests.is_empty() {
            let helper = w.helper;
            self.words.remove(&word);
            if let Some(h) = self.helpers.get_mut(helper) {
                h.words -= 1;
                ring(&h.control);
            }
        }
    }

    fn unref_peer(&mut self, peer: Option<PeerKey>) {
        let Some(key) = peer else { return };
        if let Some(p) = self.peers.get_mut(&key) {
            p.refs -= 1;
            if p.refs == 0 {
                self.peers.remove(&key);
            }
        }
    }

    /// A helper with room for one more word, started if needed.
    fn helper_with_room(&mut self) -> Result<usize, crate::OsError> {
        let i = match self.helpers.iter().position(|h| h.words < WORDS_PER_HELPER) {
            Some(i) => i,
            None => {
                self.helpers.push(Helper {
                    control: Arc::new(AtomicU32::new(0)),
                    words: 0,
                    running: false,
                });
                self.helpers.len() - 1
            }
        };
        let h = &mut self.helpers[i];
        if !h.running {
            let control = h.control.clone();
            let pid = self.pid;
            std::thread::Builder::new()
                .name("shmkit-doorbell".into())
                .spawn(move || run(pid, i, &control))?;
            RUNNING.fetch_add(1, Ordering::Relaxed);
            h.running = true;
        }
        Ok(i)
    }
}

impl Interest {
    /// An interest that is not registered.
    pub const fn new() -> Self {
        Interest { id: 0, pid: 0 }
    }

    /// Registers (or updates) this interest: wake `waker` once `word` is woken or no
    /// longer holds `expected`, or once `peer` (pid, start time) exits. Call it after
    /// announcing the future as a sleeper and re-checking its condition (see the
    /// [module docs](self)). A word already armed with the same value costs no
    /// syscall.
    ///
    /// # Errors
    /// The helper thread could not be started.
    pub fn arm(
        &mut self,
        word: &AtomicU32,
        expected: u32,
        peer: Option<PeerKey>,
        waker: &Waker,
    ) -> Result<(), crate::OsError> {
        self.arm_impl(word, expected, peer, None, waker)
    }

    /// Registers (or updates) this interest as a timer: wake `waker` once `at` has
    /// passed (see [Timers](self#timers)). A helper thread sleeps until the earliest
    /// armed deadline; on a kernel without `futex_waitv` the wake comes with the next
    /// 10 ms slice instead (early or late by up to 10 ms), so a future re-checks its
    /// condition when woken and arms again if it must.
    ///
    /// # Errors
    /// The helper thread could not be started.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use std::task::{Wake, Waker};
    /// use std::time::Duration;
    /// use shmkit_sys::doorbell::Interest;
    /// use shmkit_sys::Deadline;
    ///
    /// struct Unpark(std::thread::Thread);
    /// impl Wake for Unpark {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.unpark();
    ///     }
    /// }
    /// let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    /// let at = Deadline::after(Duration::from_millis(5));
    /// let mut timer = Interest::new();
    /// timer.arm_timer(at, &waker)?;
    /// while !at.has_passed() {
    ///     std::thread::park(); // the helper thread unparks us at `at`
    /// }
    /// timer.disarm();
    /// # Ok::<(), shmkit_sys::OsError>(())
    /// ```
    pub fn arm_timer(&mut self, at: Deadline, waker: &Waker) -> Result<(), crate::OsError> {
        self.arm_impl(&TIMER, 0, None, Some(at), waker)
    }

    fn arm_impl(
        &mut self,
        word: &AtomicU32,
        expected: u32,
        peer: Option<PeerKey>,
        until: Option<Deadline>,
        waker: &Waker,
    ) -> Result<(), crate::OsError> {
        let addr = word as *const AtomicU32 as usize;
        let mut to_wake = Vec::new();
        let mut guard = lock();
        let st = state(&mut guard);
        // Where the interest was armed before (ring, word), if it was.
        let mut old_at = None;
        if self.pid != st.pid || !st.entries.contains_key(&self.id) {
            self.id = st.next_id;
            st.next_id += 1;
            self.pid = st.pid;
            st.entries.insert(
                self.id,
                Entry {
                    word: addr,
                    ring: 0,
                    peer: None,
                    until: None,
                    waker: None,
                    woken: false,
                },
            );
        } else {
            let (old_word, old_ring, old_peer, was_armed) = {
                let e = &st.entries[&self.id];
                (e.word, e.ring, e.peer, e.waker.is_some())
            };
            if was_armed && st.peer_is_paced(old_peer) {
                st.paced -= 1;
            }
            old_at = Some((old_ring, old_word));
        }
        // The peer: one watcher registration per process, shared by its interests.
        let old_peer = st.entries[&self.id].peer;
        if old_peer != peer {
            if let Some((pid, start)) = peer {
                let p = st.peers.entry((pid, start)).or_insert_with(|| Peer {
                    // SAFETY: `DEATH` is a static: valid for as long as the watcher
                    // may bump it.
                    reg: unsafe { watcher::watch(pid, start, &DEATH) },
                    refs: 0,
                });
                p.refs += 1;
            }
            st.unref_peer(old_peer);
        }
        let paced_now = st.peer_is_paced(peer);
        if paced_now {
            st.paced += 1;
        }
        // Inside a tokio runtime, the io_uring backend (`doorbell_uring.rs`) for what
        // it serves: words whose peer, if any, the watcher watches.
        #[cfg(feature = "tokio")]
        let (on_ring, reaper) = match (until.is_none() && !paced_now)
            .then(|| uring::ring_here(st))
            .flatten()
        {
            Some((r, reaper)) => (r, reaper),
            None => (0, None),
        };
        #[cfg(not(feature = "tokio"))]
        let on_ring = 0;
        // Off the word it was armed on, unless armed again on the same one.
        if let Some((old_ring, old_word)) = old_at.filter(|&at| at != (on_ring, addr)) {
            st.unlink_from(self.id, old_ring, old_word);
        }
        #[cfg(feature = "tokio")]
        if on_ring != 0 {
            let e = st.entries.get_mut(&self.id).expect("inserted above");
            let replaced = e.set((on_ring, addr), peer, None, waker);
            let armed = uring::arm(st, on_ring, addr, expected, self.id, &mut to_wake);
            if armed.is_err() {
                // The kernel refused the request (as a helper thread that cannot be
                // started): the future reports it.
                uring::unlink(st, self.id, (on_ring, addr));
            }
            drop(guard);
            // After the lock: a runtime shutting down drops the task at once, and
            // its guard takes the lock.
            if let Some(r) = reaper {
                r.spawn();
            }
            drop(replaced);
            to_wake.into_iter().for_each(Waker::wake);
            return armed;
        }
        // The word: shared by every interest on it.
        let helper = match st.words.get(&addr) {
            Some(w) => w.helper,
            None => {
                let helper = st.helper_with_room()?;
                st.helpers[helper].words += 1;
                st.words.insert(
                    addr,
                    Word {
                        helper,
                        expected,
                        armed: false,
                        interests: HashSet::new(),
                    },
                );
                helper
            }
        };
        let w = st.words.get_mut(&addr).expect("inserted above");
        w.interests.insert(self.id);
        // A paced interest may need a timed wait where the helper sleeps without one,
        // and a timer an earlier one than it sleeps with.
        let mut changed = !w.armed || paced_now || until.is_some();
        if w.armed && w.expected != expected {
            // One of the two values is stale (the word moved on): wake the interests
            // armed with the old one so that they look again; the helper sleeps on the
            // new one (and returns at once if that is the stale one).
            for id in w.interests.iter() {
                if let Some(e) = st.entries.get_mut(id) {
                    if let Some(wk) = e.waker.take() {
                        e.woken = true;
                        to_wake.push(wk);
                    }
                }
            }
            changed = true;
        }
        w.expected = expected;
        w.armed = true;
        let e = st.entries.get_mut(&self.id).expect("inserted above");
        let replaced = e.set((0, addr), peer, until, waker);
        if changed {
            ring(&st.helpers[helper].control);
        }
        drop(guard);
        drop(replaced);
        to_wake.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Deregisters this interest (also done on drop). Returns whether the helper had
    /// woken it since it was last armed: a future that is dropped after such a wake,
    /// without taking what it was woken for, passes the wake on to another waiter of
    /// the word (a semaphore permit, an auto-reset event), so that it is not lost.
    pub fn disarm(&mut self) -> bool {
        if self.id == 0 {
            return false;
        }
        let id = std::mem::take(&mut self.id);
        let mut guard = lock();
        let Some(st) = guard.as_mut().filter(|s| s.pid == self.pid) else {
            return false; // registered in the parent before a fork: gone with its state
        };
        let Some(e) = st.entries.remove(&id) else {
            return false;
        };
        if e.waker.is_some() && st.peer_is_paced(e.peer) {
            st.paced -= 1;
        }
        st.unlink_from(id, e.ring, e.word);
        st.unref_peer(e.peer);
        drop(guard);
        // Its waker is dropped here, outside the lock (see `arm`).
        e.woken
    }

    /// Whether the future should judge its peer's liveness itself now: the peer named
    /// at the last [`arm`](Self::arm) exited (the watcher fired), or cannot be watched
    /// (then the helper wakes the future every [`CHECK_CAP`] for this). `false` while
    /// a watched peer lives, or when no peer was named.
    pub fn peer_needs_check(&self) -> bool {
        let guard = lock();
        let Some(st) = guard.as_ref().filter(|s| s.pid == self.pid) else {
            return false;
        };
        st.entries
            .get(&self.id)
            .and_then(|e| e.peer)
            .and_then(|k| st.peers.get(&k))
            .is_some_and(|p| p.reg.as_ref().is_none_or(watcher::Registration::fired))
    }

    /// Whether this interest is registered (armed, or woken and not yet disarmed).
    pub fn is_registered(&self) -> bool {
        self.id != 0
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Takes the waker of entry `id` (woken by the helper).
fn take_waker(st: &mut State, id: u64, out: &mut Vec<Waker>) {
    let paced = st
        .entries
        .get(&id)
        .is_some_and(|e| e.waker.is_some() && st.peer_is_paced(e.peer));
    if let Some(e) = st.entries.get_mut(&id) {
        if let Some(w) = e.waker.take() {
            e.woken = true;
            out.push(w);
        }
    }
    if paced {
        st.paced -= 1;
    }
}

/// Takes the wakers of interests `ids` (see [`take_waker`]); `ids` is gathered first,
/// as the interests of a word live in `st` too.
fn take_wakers(st: &mut State, ids: impl IntoIterator<Item = u64>, out: &mut Vec<Waker>) {
    for id in ids {
        take_waker(st, id, out);
    }
}

/// Disarms the word at `addr` and takes the wakers armed on it.
fn fire_word(st: &mut State, addr: usize, out: &mut Vec<Waker>) {
    let Some(w) = st.words.get_mut(&addr) else {
        return;
    };
    w.armed = false;
    let ids: Vec<u64> = w.interests.iter().copied().collect();
    take_wakers(st, ids, out);
}

/// Takes the wakers of `helper`'s armed interests that match `pick`.
fn fire_where(
    st: &mut State,
    helper: usize,
    out: &mut Vec<Waker>,
    pick: impl Fn(&State, &Entry) -> bool,
) {
    let ids: Vec<u64> = st
        .entries
        .iter()
        .filter(|(_, e)| e.waker.is_some() && pick(st, e))
        .filter(|(_, e)| st.words.get(&e.word).is_some_and(|w| w.helper == helper))
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        take_waker(st, id, out);
    }
}

/// The interests armed on the timer word, if helper `index` serves it.
fn timer_ids(st: &State, index: usize) -> Vec<u64> {
    let addr = &TIMER as *const AtomicU32 as usize;
    st.words
        .get(&addr)
        .filter(|w| w.helper == index)
        .map_or_else(Vec::new, |w| w.interests.iter().copied().collect())
}

/// The earliest deadline of the armed timers helper `index` serves.
fn earliest_timer(st: &State, index: usize) -> Option<Deadline> {
    timer_ids(st, index)
        .iter()
        .filter_map(|id| st.entries.get(id))
        .filter(|e| e.waker.is_some())
        .filter_map(|e| e.until)
        .min()
}

/// Takes the wakers of the armed timers of helper `index` whose deadline has passed.
fn fire_timers(st: &mut State, index: usize, out: &mut Vec<Waker>) {
    let ids = timer_ids(st, index);
    if ids.is_empty() {
        return;
    }
    let now = Deadline::now();
    for id in ids {
        if st
            .entries
            .get(&id)
            .and_then(|e| e.until)
            .is_some_and(|d| d <= now)
        {
            take_waker(st, id, out);
        }
    }
}

/// Helper thread `index` of process `pid`: see the [module docs](self).
fn run(pid: u32, index: usize, control: &AtomicU32) {
    let mut waitv = true;
    let mut death_seen = u32::MAX;
    let mut words: Vec<AnyWord> = Vec::with_capacity(futex::WAIT_ANY_MAX);
    let mut to_wake: Vec<Waker> = Vec::new();
    loop {
        words.clear();
        let paced;
        let timer;
        {
            let mut guard = lock();
            let Some(st) = guard.as_mut().filter(|s| s.pid == pid) else {
                return; // a forked child's copy of the state (never runs) or gone
            };
            // Acquire: pairs with the Release bump of `ring`; loaded under the lock,
            // so that any change made after we release it bumps it again.
            words.push(AnyWord::new(control, control.load(Ordering::Acquire)));
            // Acquire: pairs with the watcher's bump, which follows its Release of
            // the registration's `fired` flag, checked below.
            let death = DEATH.event().load(Ordering::Acquire);
            words.push(AnyWord::new(DEATH.event(), death));
            if death != death_seen {
                death_seen = death;
                fire_where(st, index, &mut to_wake, |st, e| {
                    e.peer
                        .and_then(|k| st.peers.get(&k))
                        .and_then(|p| p.reg.as_ref())
                        .is_some_and(watcher::Registration::fired)
                });
            }
            let mine = st.helpers[index].words;
            if mine == 0 {
                st.helpers[index].running = false;
                RUNNING.fetch_sub(1, Ordering::Relaxed);
                drop(guard);
                to_wake.drain(..).for_each(Waker::wake);
                return;
            }
            words.extend(
                st.words
                    .iter()
                    .filter(|(_, w)| w.helper == index && w.armed)
                    .map(|(addr, w)| AnyWord {
                        addr: *addr,
                        expected: w.expected,
                    }),
            );
            paced = st.paced > 0;
            timer = earliest_timer(st, index);
        }
        to_wake.drain(..).for_each(Waker::wake);
        // The test switch (see `force_slices`): as on a kernel without futex_waitv.
        // Relaxed: a setting, read on its own.
        let sliced = !waitv || FORCE_SLICES.load(Ordering::Relaxed);
        let out = if !sliced {
            let until = match paced.then(|| Deadline::after(CHECK_CAP)) {
                Some(p) => Some(p.min_with(timer)),
                None => timer,
            };
            futex::wait_any_raw(&words, until.as_ref())
        } else {
            Ok(WaitAny::TimedOut)
        };
        let out = match out {
            Ok(out) => out,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) => {
                waitv = false;
                continue;
            }
            // Any other error (never seen): fall back to the slices rather than spin.
            Err(_) => {
                waitv = false;
                continue;
            }
        };
        if sliced {
            // Without futex_waitv: sleep on the control word for a slice, then wake
            // every armed interest (see the module docs).
            let slice = Deadline::after(FIRST_CHECK);
            let _ = futex::wait(control, words[0].expected, Some(&slice));
        }
        let mut guard = lock();
        let Some(st) = guard.as_mut().filter(|s| s.pid == pid) else {
            return;
        };
        match out {
            _ if sliced => fire_where(st, index, &mut to_wake, |_, _| true),
            WaitAny::Woken(i) if i >= 2 => fire_word(st, words[i].addr, &mut to_wake),
            // The control or death word: the loop re-reads the state.
            WaitAny::Woken(_) | WaitAny::Interrupted => {}
            WaitAny::SomeDiffers => {
                for w in &words[2..] {
                    if futex::differs(*w) {
                        fire_word(st, w.addr, &mut to_wake);
                    }
                }
            }
            WaitAny::TimedOut => {
                fire_where(st, index, &mut to_wake, |st, e| st.peer_is_paced(e.peer));
            }
        }
        // Whatever ended the wait: the timers that are due.
        fire_timers(st, index, &mut to_wake);
        drop(guard);
        to_wake.drain(..).for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicU32);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
            futex::wake_all(&self.0);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicU32::new(0)));
        let w = Waker::from(c.clone());
        (c, w)
    }

    /// Waits (futex, no sleep) until the counter is at least `n`.
    fn wait_count(c: &Count, n: u32) {
        loop {
            let v = c.0.load(Ordering::SeqCst);
            if v >= n {
                return;
            }
            futex::wait(&c.0, v, None).expect("futex");
        }
    }

    #[test]
    fn a_wake_of_an_armed_word_wakes_every_interest_on_it_and_one_helper_serves_them() {
        let word = Box::new(AtomicU32::new(0));
        let (c, waker) = counter();
        let mut interests: Vec<Interest> = (0..50).map(|_| Interest::new()).collect();
        for i in &mut interests {
            i.arm(&word, 0, None, &waker).expect("arm");
        }
        assert!(helper_threads() >= 1);
        word.store(1, Ordering::Release);
        futex::wake_all(&word);
        wait_count(&c, 50);
        for i in &mut interests {
            assert!(i.disarm(), "every interest was woken");
        }
    }

    #[test]
    fn a_word_that_already_differs_wakes_at_once_and_disarm_reports_no_wake_before() {
        let word = AtomicU32::new(5);
        let (c, waker) = counter();
        let mut i = Interest::new();
        assert!(!i.disarm(), "never registered");
        i.arm(&word, 4, None, &waker).expect("arm");
        wait_count(&c, 1);
        assert!(i.disarm());
        i.arm(&word, 5, None, &waker).expect("arm");
        assert!(
            !i.disarm(),
            "not woken: the word holds 5 and nobody woke it"
        );
    }

    #[test]
    fn a_timer_wakes_at_its_deadline_and_only_its_own_waker() {
        let (due, due_waker) = counter();
        let (later, later_waker) = counter();
        let mut a = Interest::new();
        let mut b = Interest::new();
        b.arm_timer(
            Deadline::after(std::time::Duration::from_secs(3600)),
            &later_waker,
        )
        .expect("arm");
        a.arm_timer(
            Deadline::after(std::time::Duration::from_millis(2)),
            &due_waker,
        )
        .expect("arm");
        wait_count(&due, 1);
        assert!(a.disarm(), "woken by the timer");
        assert_eq!(later.0.load(Ordering::SeqCst), 0, "an hour away: not woken");
        assert!(!b.disarm());
    }
}
