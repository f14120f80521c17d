//! The one sleep/wake protocol of shmkit: a [`Parker`] in shared memory (a sleepers
//! count and an event word), the Dekker handshake between a waiter that is about to
//! sleep and a waker that has just published a change, and the paced liveness checks
//! of the peer a waiter depends on ([`CheckPace`], [`PeerWatch`]).
//!
//! # The protocol
//! Waiter ([`Parker::park`]): `sleepers += 1` (SeqCst), arm (below), SeqCst fence,
//! load `event` (Acquire), re-check its condition, futex-wait while `event` still
//! holds the loaded value, `sleepers -= 1`. Waker ([`Parker::wake`]), after
//! publishing its change: SeqCst fence, load `sleepers`; if non-zero, `event += 1`
//! (Release) and futex-wake.
//! The two fences order "announce, then re-check" against "publish, then look for
//! sleepers": either the waiter's re-check sees the change, or the waker sees the
//! sleeper, bumps `event`, and the futex wait (which compares `event` atomically with
//! going to sleep) returns. Nothing is lost; a stale count only costs one needless wake.
//! Loom-modelled in this module's `loom_tests` (with blocking waits: a lost wake-up
//! leaves the model spinning and fails it).
//!
//! ## Waking once per arming
//! A writer that commits faster than its woken reader gets a CPU would otherwise bump
//! and futex-wake for every message until the reader runs and withdraws (a wake
//! storm: one syscall per message on a loaded machine). [`Parker::wake_all_once`]
//! wakes every sleeper and marks the event word [`WOKEN`] (bit 31); while the mark
//! stands, later calls skip the bump and the syscall. A waiter *arms* before its
//! fence: if the word carries the mark, it replaces it with a fresh unmarked value, so
//! it never sleeps on a marked value and a marked word always means "every sleeper
//! armed before the mark was set has been woken". The arm precedes the fence, so a
//! waker that sees a sleeper's announcement also sees its arm; a mark set between the
//! arm and the fence makes the waiter arm again (its re-check would see that waker's
//! change anyway). Objects whose wakers use it need waiters that arm: a layout
//! version marks the change.
//!
//! A waiter that cannot block (a future) uses the waiter's half in pieces, the hook
//! for external wakers: [`Parker::announce`] (count in, fence, load `event`), its own
//! re-check, then it hands the loaded value to a thread that sleeps on `event` for it
//! (the async [`doorbell`](crate::doorbell)), [`Parker::observe`] before each later
//! re-check, and [`Parker::retract`] when it stops waiting. Wakers do not change.
//!
//! # Layout (shared memory, `#[repr(C)]`, 8 bytes, align 4)
//! ```text
//! offset size field
//!      0    4 sleepers  waiters announced (about to sleep or asleep)
//!      4    4 event     futex word, bumped by a waker that saw sleepers; bit 31
//!                       (WOKEN): woken by `wake_all_once` since the last arm
//! ```
//! All-zero bytes are an idle parker.
//!
//! # Examples
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use shmkit_sys::parker::{NoHooks, Parker, WaitEnd};
//! use shmkit_sys::Deadline;
//!
//! let parker = Parker::new();
//! let ready = AtomicU32::new(0);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         ready.store(1, Ordering::Release); // publish, then wake
//!         parker.wake(1);
//!     });
//!     let end = parker
//!         .wait_until(None, &mut NoHooks, || ready.load(Ordering::Acquire) != 0)
//!         .expect("a valid futex word");
//!     assert_eq!(end, WaitEnd::Ready);
//! });
//! let soon = Deadline::after(std::time::Duration::from_millis(1));
//! assert_eq!(parker.wait_until(Some(soon), &mut NoHooks, || false)?, WaitEnd::TimedOut);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::time::Duration;

use crate::atomic::{fence, AtomicU32, Ordering};
use crate::futex::Deadline;

/// Bit 31 of the event word: a [`Parker::wake_all_once`] has woken every sleeper since
/// the last waiter armed (see the [module docs](self#waking-once-per-arming)).
pub const WOKEN: u32 = 1 << 31;

/// A sleepers count and an event word in shared memory: see the [module docs](self).
#[repr(C)]
#[derive(Debug)]
pub struct Parker {
    sleepers: AtomicU32,
    event: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Parker>() == 8);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<Parker>() == 4);

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`Parker::wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The condition held.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// [`WaitHooks::interrupted`] said to stop (e.g. Python's Ctrl-C).
    Interrupted,
    /// [`WaitHooks::peer_alive`] said the peer this wait depends on is gone.
    PeerDied,
}

/// What a wait asks its caller on the way. Every method has a default that changes
/// nothing.
pub trait WaitHooks {
    /// Called before every sleep slice; `true` ends the wait with
    /// [`WaitEnd::Interrupted`] (a Python binding checks for signals here).
    fn interrupted(&mut self) -> bool {
        false
    }
    /// Whether the peer the wait depends on (a lock holder, the other side of a ring)
    /// still lives. Asked after sleep slices that ended without a wake, paced by
    /// [`CheckPace`]; `false` ends the wait with [`WaitEnd::PeerDied`].
    fn peer_alive(&mut self) -> bool {
        true
    }
}

/// Hooks that change nothing: wait for the condition or the deadline only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;
impl WaitHooks for NoHooks {}

impl Parker {
    /// An idle parker (all zero).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Parker {
            sleepers: AtomicU32::new(0),
            event: AtomicU32::new(0),
        }
    }

    /// An idle parker (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Parker {
            sleepers: AtomicU32::new(0),
            event: AtomicU32::new(0),
        }
    }

    /// Wakes up to `n` sleepers, if any announced themselves. Call it after publishing
    /// the change they wait for (with any ordering: the SeqCst fence here orders the
    /// publish before the sleepers load).
    #[inline]
    pub fn wake(&self, n: u32) {
        // SeqCst fence: pairs with the fence in `park` (Dekker): either the sleeper's
        // re-check sees our change, or we see its announcement.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences; a stale non-zero costs one needless wake.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.bump_and_wake(n);
        }
    }

    /// How many waiters announced themselves (about to sleep or asleep): a snapshot,
    /// for a waker that chooses how many to wake; ordered like the load in
    /// [`wake`](Parker::wake) only after the caller's own SeqCst fence.
    #[inline]
    pub fn sleepers(&self) -> u32 {
        // Relaxed: a snapshot (see above).
        self.sleepers.load(Ordering::Relaxed)
    }

    /// Wakes every sleeper, if any announced themselves, unless every sleeper that
    /// armed has been woken already (the event word still carries [`WOKEN`]): then
    /// neither the bump nor the syscall is repeated. For a parker whose wakes wake all
    /// (or that has one sleeper), such as a ring's: see the
    /// [module docs](self#waking-once-per-arming). Call it after publishing, as
    /// [`wake`](Parker::wake).
    #[inline]
    pub fn wake_all_once(&self) {
        // SeqCst fence: as in `wake` (Dekker).
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences; a stale non-zero costs one needless wake.
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return;
        }
        // Relaxed: ordered by the fences as the sleepers load is: a sleeper whose
        // announcement we see armed before its fence, so we see that arm (or a later
        // value). A mark means everyone armed before it was woken.
        let mut v = self.event.load(Ordering::Relaxed);
        while v & WOKEN == 0 {
            // Release: as the bump in `bump_and_wake`.
            match self.event.compare_exchange(
                v,
                v.wrapping_add(1) | WOKEN,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    futex_wake(&self.event, u32::MAX);
                    return;
                }
                Err(now) => v = now,
            }
        }
    }

    /// Bumps the event and wakes up to `n` sleepers whether or not any announced
    /// themselves (for rare events such as a close, where a syscall does not matter).
    pub fn bump_and_wake(&self, n: u32) {
        // Release: a sleeper that Acquires the new event value sees our change.
        self.event.fetch_add(1, Ordering::Release);
        futex_wake(&self.event, n);
    }

    /// One sleep: announces a sleeper, re-checks `ready`, and sleeps until woken, a
    /// spurious return, or `until`. Returns whether `ready` held at the re-check (then
    /// it did not sleep). An error is the futex's: return it, never retry it (a retry
    /// fails at once again: a hot loop).
    pub fn park(
        &self,
        until: Option<&Deadline>,
        ready: impl FnOnce() -> bool,
    ) -> Result<bool, crate::OsError> {
        let ev = self.announce();
        let was_ready = ready();
        let slept = if was_ready {
            Ok(())
        } else {
            futex_wait(&self.event, ev, until)
        };
        self.retract();
        slept.map(|()| was_ready)
    }

    /// The waiter's first half of the handshake, for a waiter that does not block in
    /// [`park`](Self::park) (a future, which sleeps through the async doorbell in
    /// [`crate::doorbell`]): announces a sleeper and returns the event value to sleep
    /// on. Re-check the condition after this call; if it does not hold, sleep while
    /// [`event`](Self::event) still holds the returned value. Every `announce` is
    /// matched by one [`retract`](Self::retract) when the waiter stops waiting.
    #[inline]
    pub fn announce(&self) -> u32 {
        // SeqCst: the announcement is ordered with the fence in `observe`.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.observe()
    }

    /// For a waiter that has announced itself and stays announced (a future polled
    /// again): the event value to sleep on, loaded behind the same fence as in
    /// [`announce`](Self::announce). Re-check the condition after this call.
    #[inline]
    pub fn observe(&self) -> u32 {
        loop {
            self.arm();
            // SeqCst fence: pairs with the one in `wake` (Dekker): either the waker
            // sees our announcement (and arm), or our re-check after this sees its
            // change.
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release bump in `bump_and_wake`; loaded before
            // the re-check so that a wake after the re-check changes the value we
            // sleep on.
            let ev = self.event.load(Ordering::Acquire);
            if ev & WOKEN == 0 {
                return ev;
            }
            // Marked between our arm and our fence: never sleep on a marked value.
        }
    }

    /// Replaces a [`WOKEN`] mark with a fresh unmarked value (before the fence): see
    /// the [module docs](self#waking-once-per-arming).
    #[inline]
    fn arm(&self) {
        // Relaxed: ordered before the waker's look by our SeqCst fence that follows.
        let mut v = self.event.load(Ordering::Relaxed);
        while v & WOKEN != 0 {
            // Relaxed: as above.
            match self.event.compare_exchange(
                v,
                v.wrapping_add(1) & !WOKEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => v = now,
            }
        }
    }

    /// Withdraws one [`announce`](Self::announce)ment.
    #[inline]
    pub fn retract(&self) {
        // Relaxed: a stale count only costs the waker one needless wake.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The event word a waiter sleeps on after [`announce`](Self::announce) (the
    /// futex word the async doorbell hands to the kernel).
    pub fn event(&self) -> &AtomicU32 {
        &self.event
    }

    /// [`park`](Parker::park) on several parkers at once: announces a sleeper on each,
    /// re-checks `ready`, and sleeps until any of them is woken (one
    /// [`futex::wait_any`](crate::futex::wait_any)), a spurious return, or `until`.
    /// The same Dekker pair per parker as `park`: a waker of any of them that publishes
    /// after our announcement sees it and bumps that parker's event, which ends the
    /// wait. Returns whether `ready` held at the re-check.
    ///
    /// # Errors
    /// As [`park`](Parker::park); `EINVAL` for none or more than
    /// [`WAIT_ANY_MAX`](crate::futex::WAIT_ANY_MAX) parkers.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use shmkit_sys::parker::Parker;
    ///
    /// let (p, q) = (Parker::new(), Parker::new());
    /// let ready = AtomicU32::new(0);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         ready.store(1, Ordering::Release);
    ///         q.wake(1); // the second of the two parkers
    ///     });
    ///     while !Parker::park_any(&[&p, &q], None, || ready.load(Ordering::Acquire) != 0)? {}
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn park_any(
        parkers: &[&Parker],
        until: Option<&Deadline>,
        ready: impl FnOnce() -> bool,
    ) -> Result<bool, crate::OsError> {
        const MAX: usize = crate::futex::WAIT_ANY_MAX;
        if parkers.is_empty() || parkers.len() > MAX {
            return Err(rustix::io::Errno::INVAL.into());
        }
        for p in parkers {
            // SeqCst: as in `park`.
            p.sleepers.fetch_add(1, Ordering::SeqCst);
        }
        let mut seen = [0u32; MAX];
        loop {
            for p in parkers {
                p.arm();
            }
            // SeqCst fence: pairs with the one in `wake` (Dekker), as in `observe`.
            fence(Ordering::SeqCst);
            for (ev, p) in seen.iter_mut().zip(parkers) {
                // Acquire: as in `observe`.
                *ev = p.event.load(Ordering::Acquire);
            }
            // As in `observe`: never sleep on a marked value.
            if seen.iter().all(|ev| ev & WOKEN == 0) {
                break;
            }
        }
        let was_ready = ready();
        let slept = if was_ready {
            Ok(())
        } else {
            futex_wait_any(parkers, &seen[..parkers.len()], until)
        };
        for p in parkers {
            p.retract();
        }
        slept.map(|()| was_ready)
    }

    /// Waits until `ready()` or `deadline`, sleeping in slices paced by [`CheckPace`]:
    /// before each slice [`WaitHooks::interrupted`] is asked, after each slice that
    /// ended without the condition [`WaitHooks::peer_alive`].
    pub fn wait_until(
        &self,
        deadline: Option<Deadline>,
        hooks: &mut impl WaitHooks,
        ready: impl Fn() -> bool,
    ) -> Result<WaitEnd, crate::OsError> {
        let mut pace = CheckPace::new();
        loop {
            if ready() {
                return Ok(WaitEnd::Ready);
            }
            if hooks.interrupted() {
                return Ok(WaitEnd::Interrupted);
            }
            if deadline.is_some_and(|d| d.has_passed()) {
                return Ok(WaitEnd::TimedOut);
            }
            let slice = pace.next_slice(deadline);
            if self.park(Some(&slice), &ready)? {
                return Ok(WaitEnd::Ready);
            }
            if !ready() && slice.has_passed() && !hooks.peer_alive() {
                return Ok(WaitEnd::PeerDied);
            }
        }
    }
}

/// First interval between two liveness checks of a live peer.
pub const FIRST_CHECK: Duration = Duration::from_millis(10);
/// Longest interval between two liveness checks: a peer killed while we sleep is
/// noticed at most this long after (p99 recovery < 100 ms), and an idle waiter wakes
/// about 12 times a second.
pub const CHECK_CAP: Duration = Duration::from_millis(80);

/// The pace of a waiter's liveness checks: sleep slices from [`FIRST_CHECK`],
/// doubling up to [`CHECK_CAP`], so that a waiter that waits long costs little CPU
/// while a dead peer is still found promptly.
#[derive(Debug, Clone)]
pub struct CheckPace {
    next: Duration,
}

impl Default for CheckPace {
    fn default() -> Self {
        Self::new()
    }
}

impl CheckPace {
    /// Starts at [`FIRST_CHECK`].
    pub const fn new() -> Self {
        CheckPace { next: FIRST_CHECK }
    }

    /// The end of the next sleep slice (never past `deadline`); the one after it is
    /// twice as long, up to [`CHECK_CAP`].
    pub fn next_slice(&mut self, deadline: Option<Deadline>) -> Deadline {
        let slice = Deadline::after(self.next);
        self.next = (self.next * 2).min(CHECK_CAP);
        slice.min_with(deadline)
    }
}

/// A cached watch on a process peer (pid + start time): the first check is the
/// floor's full judgement ([`owner::is_alive`](crate::owner::is_alive), a `/proc`
/// read); once it says "alive", a pidfd of that process is kept, and later checks are
/// one `poll` with zero timeout (the pidfd turns readable when the process exits). The
/// judgement is made again when the pidfd cannot be had (old kernel, no permission),
/// and inside a pid-namespace probe (which may say "alive" for a process that does not
/// exist here).
#[derive(Debug)]
pub struct PeerWatch {
    pid: u32,
    start: u64,
    pidfd: Option<rustix::fd::OwnedFd>,
}

impl PeerWatch {
    /// A watch on `pid` (started at `start`, low 32 bits; 0 = unknown).
    pub fn new(pid: u32, start: u64) -> Self {
        PeerWatch {
            pid,
            start,
            pidfd: None,
        }
    }

    /// The pid watched.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether a pidfd of the peer is kept (then the peer can be handed to the death
    /// [`watcher`](crate::watcher)).
    pub fn has_pidfd(&self) -> bool {
        self.pidfd.is_some()
    }

    /// The peer's start time (low 32 bits; 0 = unknown).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Whether the peer still runs.
    pub fn alive(&mut self) -> bool {
        if let Some(fd) = &self.pidfd {
            use rustix::event::{poll, PollFd, PollFlags};
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            return match poll(&mut fds, Some(&zero)) {
                Ok(0) => true,
                Ok(_) => false,
                Err(_) => crate::owner::process_alive(self.pid, self.start),
            };
        }
        if !crate::owner::process_alive(self.pid, self.start) {
            return false;
        }
        if self.pid != 0 && !crate::owner::probe_says_shared() {
            self.pidfd = open_verified_pidfd(self.pid, self.start);
        }
        true
    }
}

/// A pidfd of `pid`, if it still names the process started at `start` once the fd is
/// open (checked after opening: a pid reused before the open would show another start
/// time).
pub(crate) fn open_verified_pidfd(pid: u32, start: u64) -> Option<rustix::fd::OwnedFd> {
    let raw = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ok()?;
    crate::owner::process_alive(pid, start).then_some(fd)
}

#[cfg(not(loom))]
fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    until: Option<&Deadline>,
) -> Result<(), crate::OsError> {
    crate::futex::wait(word, expected, until).map(drop)
}

#[cfg(not(loom))]
fn futex_wait_any(
    parkers: &[&Parker],
    seen: &[u32],
    until: Option<&Deadline>,
) -> Result<(), crate::OsError> {
    let mut words = [(&parkers[0].event, 0u32); crate::futex::WAIT_ANY_MAX];
    for ((w, p), ev) in words.iter_mut().zip(parkers).zip(seen) {
        *w = (&p.event, *ev);
    }
    crate::futex::wait_any(&words[..parkers.len()], until).map(drop)
}

#[cfg(not(loom))]
fn futex_wake(word: &AtomicU32, n: u32) {
    crate::futex::wake(word, n);
}

/// The kernel model under loom: a wait returns only once the word changed (loom has
/// no clock, so deadlines and slices never end it). A wake-up the protocol loses then
/// leaves the waiter spinning for ever, which loom reports (the model exceeds its
/// branch limit), instead of passing unnoticed as one more loop turn.
#[cfg(loom)]
fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    _until: Option<&Deadline>,
) -> Result<(), crate::OsError> {
    // Relaxed: the caller re-reads what it waits for after waking.
    while word.load(Ordering::Relaxed) == expected {
        loom::thread::yield_now();
    }
    Ok(())
}

/// The kernel model of a multi-word wait under loom: returns once any word changed.
#[cfg(loom)]
fn futex_wait_any(
    parkers: &[&Parker],
    seen: &[u32],
    _until: Option<&Deadline>,
) -> Result<(), crate::OsError> {
    // Relaxed: as in `futex_wait`.
    while parkers
        .iter()
        .zip(seen)
        .all(|(p, ev)| p.event.load(Ordering::Relaxed) == *ev)
    {
        loom::thread::yield_now();
    }
    Ok(())
}

/// Under loom a wake is a no-op: the waker's bump of the word is what ends a wait.
#[cfg(loom)]
fn futex_wake(_word: &AtomicU32, _n: u32) {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32 as StdU32;

    #[test]
    fn the_pace_doubles_to_the_cap_and_never_passes_the_deadline() {
        let mut pace = CheckPace::new();
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            let before = Deadline::now();
            let slice = pace.next_slice(None);
            let len = Duration::from_nanos((slice.as_nanos() - before.as_nanos()) as u64);
            assert!(len >= last.min(CHECK_CAP) && len <= CHECK_CAP + Duration::from_millis(5));
            last = len;
        }
        assert!(last >= CHECK_CAP);
        let soon = Deadline::after(Duration::from_millis(1));
        assert!(pace.next_slice(Some(soon)) <= soon);
    }

    struct Hooks {
        interrupt_after: u32,
        asked: u32,
        alive: bool,
    }
    impl WaitHooks for Hooks {
        fn interrupted(&mut self) -> bool {
            self.asked += 1;
            self.asked > self.interrupt_after
        }
        fn peer_alive(&mut self) -> bool {
            self.alive
        }
    }

    #[test]
    fn hooks_end_a_wait() {
        let p = Parker::new();
        let mut h = Hooks {
            interrupt_after: 1,
            asked: 0,
            alive: true,
        };
        assert_eq!(
            p.wait_until(None, &mut h, || false).unwrap(),
            WaitEnd::Interrupted
        );
        assert_eq!(h.asked, 2, "asked before each slice");
        let mut h = Hooks {
            interrupt_after: u32::MAX,
            asked: 0,
            alive: false,
        };
        assert_eq!(
            p.wait_until(None, &mut h, || false).unwrap(),
            WaitEnd::PeerDied
        );
    }

    #[test]
    fn a_wake_after_publishing_ends_a_wait_in_another_thread() {
        let p = Parker::new();
        let flag = StdU32::new(0);
        std::thread::scope(|s| {
            let waiter =
                s.spawn(|| p.wait_until(None, &mut NoHooks, || flag.load(Ordering::Acquire) == 1));
            // Wait until it announced itself (polling a condition, not sleeping).
            while p.sleepers.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            flag.store(1, Ordering::Release);
            p.wake(1);
            assert_eq!(waiter.join().unwrap().unwrap(), WaitEnd::Ready);
        });
        assert_eq!(p.sleepers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_peer_watch_sees_a_process_exit() {
        let mut me = PeerWatch::new(
            crate::owner::current_pid(),
            u64::from(crate::owner::current_start_time()),
        );
        assert!(me.alive());
        assert!(me.pidfd.is_some(), "a pidfd is kept after the first check");
        assert!(me.alive());
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let start = crate::owner::start_time(pid).map_or(0, u64::from);
        let mut watch = PeerWatch::new(pid, start);
        let _ = watch.alive(); // may already have exited
        child.wait().expect("reap");
        assert!(!watch.alive());
        assert!(!PeerWatch::new(4_194_305 + 7, 0).alive());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A parker, a counter, and a thread that stores `1..=upto` into the counter,
    /// calling `wake` after each store (publish, then wake).
    fn publisher(
        upto: u32,
        wake: fn(&Parker),
    ) -> (Arc<Parker>, Arc<AtomicU32>, loom::thread::JoinHandle<()>) {
        let p = Arc::new(Parker::new());
        let count = Arc::new(AtomicU32::new(0));
        let (p2, c2) = (p.clone(), count.clone());
        let waker = loom::thread::spawn(move || {
            for i in 1..=upto {
                c2.store(i, Ordering::Relaxed);
                wake(&p2);
            }
        });
        (p, count, waker)
    }

    /// A waiter blocks (the model's futex returns only when the event word changes)
    /// until a waker publishes and wakes: every interleaving must end.
    #[test]
    fn loom_park_and_wake_lose_no_wakeup() {
        loom::model(|| {
            let (p, flag, waker) = publisher(1, |p| p.wake(1));
            let end = p
                .wait_until(None, &mut NoHooks, || flag.load(Ordering::Relaxed) == 1)
                .unwrap();
            assert_eq!(end, WaitEnd::Ready);
            waker.join().unwrap();
        });
    }

    /// The async doorbell's handshake (`crate::doorbell`): a future announces itself
    /// ([`Parker::announce`]), re-checks, and arms the loaded event value; the helper
    /// thread then sleeps while the word holds that value (the model's futex returns
    /// only once it changed, as `futex_waitv` does) and wakes the future, which is
    /// polled again ([`Parker::observe`], re-check) and must find the change. Either
    /// the future's re-check sees the flag, or the helper's sleep ends: every
    /// interleaving ends with the flag seen and the sleepers count back at zero.
    #[test]
    fn loom_an_armed_future_is_woken_or_sees_the_change() {
        loom::model(|| {
            let (p, flag, waker) = publisher(1, |p| p.wake(1));
            // First poll: announce, re-check.
            let mut ev = p.announce();
            while flag.load(Ordering::Relaxed) != 1 {
                // Pending with `ev` armed: the helper sleeps on it, then wakes the
                // task, whose next poll observes and re-checks.
                futex_wait(&p.event, ev, None).unwrap();
                ev = p.observe();
            }
            p.retract();
            waker.join().unwrap();
            assert_eq!(p.sleepers.load(Ordering::Relaxed), 0);
        });
    }

    /// `park_any` on two parkers: a waker of the second (publish, then wake) ends the
    /// wait in every interleaving.
    #[test]
    fn loom_park_any_is_woken_through_either_parker() {
        loom::model(|| {
            let ps = Arc::new((Parker::new(), Parker::new()));
            let flag = Arc::new(AtomicU32::new(0));
            let (p2, f2) = (ps.clone(), flag.clone());
            let waker = loom::thread::spawn(move || {
                f2.store(1, Ordering::Relaxed);
                p2.1.wake(1);
            });
            while !Parker::park_any(&[&ps.0, &ps.1], None, || flag.load(Ordering::Relaxed) == 1)
                .unwrap()
            {}
            waker.join().unwrap();
        });
    }

    /// [`Parker::wake_all_once`]: a waker publishes twice, marking the word and then
    /// (while the mark stands) skipping the bump and the syscall; the waiter needs the
    /// second publish, so it sleeps again after the first wake. It arms before that
    /// sleep (clearing the mark), so the second wake is never skipped for it: every
    /// interleaving ends.
    #[test]
    fn loom_wake_all_once_skips_only_wakes_already_given() {
        loom::model(|| {
            let (p, count, waker) = publisher(2, Parker::wake_all_once);
            let end = p
                .wait_until(None, &mut NoHooks, || count.load(Ordering::Relaxed) == 2)
                .unwrap();
            assert_eq!(end, WaitEnd::Ready);
            waker.join().unwrap();
        });
    }

    /// The same with a waiter that does not arm (an older peer's protocol): it may
    /// sleep on the marked value, and the waker skips the wake it needs. Loom must
    /// find that interleaving (why objects whose wakers skip bump their layout
    /// version).
    #[test]
    #[should_panic]
    fn loom_a_waiter_that_does_not_arm_loses_a_skipped_wakeup() {
        loom::model(|| {
            let (p, count, waker) = publisher(2, Parker::wake_all_once);
            p.sleepers.fetch_add(1, Ordering::SeqCst);
            loop {
                fence(Ordering::SeqCst);
                let ev = p.event.load(Ordering::Acquire);
                if count.load(Ordering::Relaxed) == 2 {
                    break;
                }
                futex_wait(&p.event, ev, None).unwrap();
            }
            p.retract();
            waker.join().unwrap();
        });
    }

    /// The same with a waker that looks for sleepers *before* publishing (no Dekker
    /// order): loom must find the interleaving in which the wake-up is lost and the
    /// waiter blocks for ever. Shows the model sees lost wake-ups.
    #[test]
    #[should_panic]
    fn loom_a_waker_that_checks_before_publishing_loses_a_wakeup() {
        loom::model(|| {
            let p = Arc::new(Parker::new());
            let flag = Arc::new(AtomicU32::new(0));
            let (p2, f2) = (p.clone(), flag.clone());
            let waker = loom::thread::spawn(move || {
                let sleeping = p2.sleepers.load(Ordering::SeqCst) != 0;
                f2.store(1, Ordering::SeqCst);
                if sleeping {
                    p2.bump_and_wake(1);
                }
            });
            let _ = p.wait_until(None, &mut NoHooks, || flag.load(Ordering::SeqCst) == 1);
            waker.join().unwrap();
        });
    }
}
