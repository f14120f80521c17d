//! Peer roles in shared memory: which process holds a role of a shared object (the
//! [`Ring`](crate::Ring)'s writer and reader), and, when nobody does, how the last
//! holder went.
//!
//! A role is a [`PeerSlot`] in the object's header. It tells apart the four states a
//! peer waiting on the other side must answer differently ([`PeerState`]):
//!
//! | state | the other side |
//! |---|---|
//! | *never attached* ([`PeerState::Vacant`]) | waits: the peer has not started yet |
//! | *attached* ([`PeerState::Attached`]) | waits: the peer is alive and working |
//! | *left cleanly* ([`PeerState::Left`]) | stops waiting with a typed error naming the peer's progress (e.g. `WriteError::ReaderLeft`) |
//! | *died* ([`PeerState::Died`]) | stops waiting with `PeerDied { pid }` |
//!
//! A new process may [claim](PeerSlot::claim) the role again in any state but
//! *attached*; it continues the predecessor's progress counter.
//!
//! # Word encoding
//! `PeerSlot` is `#[repr(C)]`, 16 bytes, align 8: two `u64` words.
//!
//! `word` (offset 0):
//! - bits 0..32: pid of the holder; `0` when nobody holds the role;
//! - bits 32..64 with a holder: the low 32 bits of the holder's start time (clock
//!   ticks since boot, field 22 of `/proc/<pid>/stat`), so a new process that reuses
//!   the pid is told apart from the dead holder: the *whole* word names a process;
//! - bits 32..64 without a holder: `0` = never attached ([`VACANT`]), `1` = the last
//!   holder left cleanly ([`LEFT`]); any other value is read as *left*.
//!
//! `count` (offset 8): the role's progress counter (for the ring's reader: messages
//! read), stored by a holder when it leaves, before `word` becomes [`LEFT`]; a
//! holder counts locally in between, so the hot path never writes it. A holder that
//! dies leaves the count of the last clean leave behind.
//!
//! # Orderings
//! `claim` is a compare-exchange with AcqRel: Acquire so that a new holder sees the
//! state its predecessor published (and the `count` stored before a leave); Release
//! so that the role word orders after whatever the claimer initialised. `release`
//! stores `count` (Relaxed), then moves `word` to [`LEFT`] with Release; a peer that
//! loads [`LEFT`] with Acquire ([`PeerSlot::state`]) sees that count and everything
//! the leaver published before leaving.

use shmkit_segment::Segment;
use shmkit_sys::backoff::PollGauge;
use shmkit_sys::owner;
use shmkit_sys::parker::{CheckPace, Parker, PeerWatch};
use shmkit_sys::watcher::{self, Registration};
use shmkit_sys::Deadline;

use crate::shim::{AtomicU64, Ordering};

/// Runs `f` (a lock call, a liveness check) so that every liveness check in it asks
/// `seg` whether its objects may be shared across pid namespaces (at the time of the
/// check, after the owner word was read), and then declares nobody dead: one over
/// there cannot be told from a dead one here. With `None` (raw memory, no header) `f`
/// just runs, and peers are judged as if all shared our pid namespace.
pub(crate) fn in_segment<R>(seg: Option<&Segment>, f: impl FnOnce() -> R) -> R {
    match seg {
        Some(seg) => {
            let shared = || seg.shared_across_pid_namespaces();
            owner::with_pid_namespace_probe(&shared, f)
        }
        None => f(),
    }
}

/// [`owner::process_alive`] for a peer of an object in `seg` (see [`in_segment`]):
/// always `true` once `seg` is shared across pid namespaces.
pub(crate) fn is_alive_in(seg: Option<&Segment>, pid: u32, start_time: u64) -> bool {
    in_segment(seg, || owner::process_alive(pid, start_time))
}

/// `word` of a role that was never held.
pub(crate) const VACANT: u64 = 0;
/// `word` of a role whose last holder released it cleanly.
pub(crate) const LEFT: u64 = 1 << 32;

/// One role of a shared object: its holder and its progress counter. See the
/// [module docs](self) for the encoding.
#[repr(C)]
pub(crate) struct PeerSlot {
    /// Holder (pid + start time) or how the role was left.
    word: AtomicU64,
    /// Progress counter stored on a clean leave.
    count: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<PeerSlot>() == 16);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<PeerSlot>() == 8);

/// How a role stands, as seen by the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerState {
    /// Nobody ever held the role.
    Vacant,
    /// A live process holds the role.
    Attached {
        /// The holder's pid.
        pid: u32,
    },
    /// The last holder released the role cleanly.
    Left {
        /// Its progress counter when it left.
        count: u64,
    },
    /// The recorded holder is dead (or its pid now names another process).
    Died {
        /// The dead holder's pid.
        pid: u32,
    },
}

/// The word naming this process (pid + low 32 bits of its start time).
pub(crate) fn own_word() -> u64 {
    u64::from(owner::current_pid()) | (u64::from(owner::current_start_time()) << 32)
}

/// A waiter's cached watch on the holder of a [`PeerSlot`]: the first look is the
/// full judgement ([`PeerSlot::state_of`], a `/proc` read); while the slot keeps
/// naming the same live holder, later looks are one `poll` of its pidfd
/// ([`PeerWatch`]), so a waiter that sleeps for long costs almost nothing per check.
///
/// Once the holder is judged alive with a pidfd, [`HolderWatch::slice`] registers it
/// with the floor's death [`watcher`]: the waiter then sleeps in long safety slices
/// and the holder's exit wakes it (no timer wake-ups while the holder lives). While
/// that registration stands and has not fired, a look at the same holder costs no
/// syscall at all.
///
/// A handle keeps one `HolderWatch` per peer it waits for across its waits (the
/// ring's writer and reader, a topic subscriber), so that a side which sleeps on every
/// message (a ping-pong, a loaded machine) judges its peer once, not on each sleep:
/// the `/proc` read, the pidfd and the registration cost some 25 syscalls and a
/// round trip through the watcher's lock, about ten times a futex wake.
#[derive(Default)]
pub(crate) struct HolderWatch {
    word: u64,
    watch: Option<PeerWatch>,
    reg: Option<Registration>,
    /// The parker `reg` bumps (its address).
    reg_parker: usize,
    /// How waits for this peer poll (see `shim::poll_backoff`): how quickly the peer
    /// answers is part of its judgement.
    poll: PollGauge,
    /// The process that judged (0: nothing judged): a forked child inherits the
    /// parent's cache but not its watcher thread, so it judges again.
    judged_by: u32,
}

impl HolderWatch {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// [`PeerSlot::state_of`]`(word)`, judged under `seg`'s pid-namespace probe.
    pub(crate) fn state_of(
        &mut self,
        seg: Option<&Segment>,
        slot: &PeerSlot,
        word: u64,
    ) -> PeerState {
        if self.judged_by != owner::current_pid() {
            // Forked since (or never judged): the parent's registration is not ours
            // (dropping it here is a no-op, see `Registration`).
            *self = HolderWatch::new();
        }
        if self.word == word {
            // The watcher bumps our parker when the holder exits: until then the
            // registration is the judgement.
            if self.reg.as_ref().is_some_and(|r| !r.fired()) {
                return PeerState::Attached {
                    pid: holder_pid(word),
                };
            }
            if let Some(w) = &mut self.watch {
                if in_segment(seg, || w.alive()) {
                    return PeerState::Attached {
                        pid: holder_pid(word),
                    };
                }
            }
        }
        let state = in_segment(seg, || slot.state_of(word));
        self.reg = None;
        self.watch = match state {
            PeerState::Attached { pid } => {
                let mut w = PeerWatch::new(pid, word >> 32);
                // Keeps the pidfd if this judges it alive outside a probe.
                in_segment(seg, || w.alive());
                Some(w)
            }
            _ => None,
        };
        self.word = word;
        self.judged_by = owner::current_pid();
        state
    }
}

impl HolderWatch {
    /// The end of the next sleep on `parker`: a long safety slice when the live
    /// holder last judged by [`HolderWatch::state_of`] is registered with the death
    /// watcher (registering it now if it can be), else the paced slice of `pace`.
    /// Sleep with [`HolderWatch::fired`] in the re-check.
    ///
    /// # Safety
    /// `parker` must stay mapped while this `HolderWatch` lives (or until the next
    /// `state_of` that changes the holder): the watcher thread may bump it until then.
    pub(crate) unsafe fn slice(
        &mut self,
        parker: *const Parker,
        pace: &mut CheckPace,
        deadline: Option<Deadline>,
    ) -> Deadline {
        if self.reg_parker != parker as usize {
            // Registered for another parker: that one would be bumped, not this.
            self.reg = None;
        }
        if self.reg.is_none() {
            if let Some(w) = self.watch.as_ref().filter(|w| w.has_pidfd()) {
                // SAFETY: the caller keeps `parker` mapped while `self` (and so the
                // registration) lives.
                self.reg = unsafe { watcher::watch(w.pid(), w.start(), parker) };
                self.reg_parker = parker as usize;
            }
        }
        if self.reg.is_some() {
            Deadline::after(watcher::SAFETY_SLICE).min_with(deadline)
        } else {
            pace.next_slice(deadline)
        }
    }

    /// Whether the registered holder has exited (the watcher then woke the parker).
    pub(crate) fn fired(&self) -> bool {
        self.reg.as_ref().is_some_and(Registration::fired)
    }
}

/// How [`PeerWaitOn::wait`] ended. Every end but `Ready` and `TimedOut` was checked
/// against one last look at the condition (what the peer published before it went is
/// never lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerWait {
    /// The condition held.
    Ready,
    /// The object's `closed` flag was set.
    Closed,
    /// The peer left cleanly, with its progress count.
    Left { count: u64 },
    /// The peer died.
    Died { pid: u32 },
    /// The deadline passed.
    TimedOut,
}

/// What one side of a shared object blocks on when one peer (the holder of `peer`)
/// can unblock it: the parker that peer wakes, and the flag that closes the object.
/// [`PeerWaitOn::wait`] is the one "poll, then sleep and watch the peer" loop of the
/// ring (both sides), the topic's readers and `Latest`'s readers.
pub(crate) struct PeerWaitOn<'a> {
    /// The object's segment (its pid-namespace setting); `None` under loom.
    pub(crate) segment: Option<&'a Segment>,
    /// Where the peer wakes us after each change.
    pub(crate) parker: &'a Parker,
    /// The peer's role.
    pub(crate) peer: &'a PeerSlot,
    /// A flag, stored (Release) after the last change, that ends the wait.
    pub(crate) closed: Option<&'a crate::shim::AtomicU32>,
}

impl PeerWaitOn<'_> {
    /// Waits until `ready()` (which only loads: the caller re-reads what it needs once
    /// this returns), polling for [`POLL_TIME`](crate::shim::POLL_TIME) and then
    /// sleeping on the parker in slices. Between slices the peer is judged
    /// ([`HolderWatch`]: a pidfd poll, or the death watcher's wake); a peer that left or
    /// died, or the closed flag, ends the wait once `ready()` is looked at once more.
    /// The re-check before each sleep includes the peer's role word, so a peer that
    /// leaves or attaches (and wakes the parker) is never slept through.
    ///
    /// # Errors
    /// The futex's, if a sleep fails (never retried: a retry would fail at once again).
    ///
    /// `watch` is the caller's judgement of this peer, kept across waits (see
    /// [`HolderWatch`]).
    ///
    /// # Safety
    /// `self.parker` must stay mapped while `watch` lives (or until it is used with
    /// another parker): the registration it keeps lets the watcher thread bump that
    /// parker until it is dropped. A handle keeps `watch` beside the mapping and drops
    /// it first.
    pub(crate) unsafe fn wait(
        &self,
        watch: &mut HolderWatch,
        deadline: Option<Deadline>,
        ready: impl Fn() -> bool,
    ) -> Result<PeerWait, shmkit_sys::OsError> {
        // The gauge is taken out for the wait, so that its poll (which records how the
        // wait went when it is dropped: after the sleep, if it slept) can live through
        // the sleep while `watch` judges the peer.
        let gauge = std::mem::take(&mut watch.poll);
        // SAFETY: our own contract, passed on.
        let end = unsafe { self.wait_gauged(watch, &gauge, deadline, ready) };
        watch.poll = gauge;
        end
    }

    /// [`PeerWaitOn::wait`] with the gauge apart from `watch`.
    ///
    /// # Safety
    /// As [`PeerWaitOn::wait`].
    unsafe fn wait_gauged(
        &self,
        watch: &mut HolderWatch,
        gauge: &PollGauge,
        deadline: Option<Deadline>,
        ready: impl Fn() -> bool,
    ) -> Result<PeerWait, shmkit_sys::OsError> {
        // Acquire: pairs with the Release store of the flag by `close`, stored after
        // the last change: a `ready()` after seeing it sees that change.
        let closed = || self.closed.is_some_and(|c| c.load(Ordering::Acquire) != 0);
        let last_look = |end: PeerWait| if ready() { PeerWait::Ready } else { end };
        if ready() {
            return Ok(PeerWait::Ready);
        }
        // Lives until the wait ends: a wait that slept without polling is judged by how
        // long it slept (see `PollGauge`).
        let mut backoff = crate::shim::poll_backoff(gauge);
        while backoff.snooze() {
            if ready() {
                return Ok(PeerWait::Ready);
            }
        }
        let mut pace = CheckPace::new();
        loop {
            if closed() {
                return Ok(last_look(PeerWait::Closed));
            }
            let word = self.peer.word();
            match watch.state_of(self.segment, self.peer, word) {
                PeerState::Died { pid } => return Ok(last_look(PeerWait::Died { pid })),
                PeerState::Left { count } => return Ok(last_look(PeerWait::Left { count })),
                PeerState::Vacant | PeerState::Attached { .. } => {}
            }
            if deadline.is_some_and(|d| d.has_passed()) {
                return Ok(PeerWait::TimedOut);
            }
            // SAFETY: the parker stays mapped while `watch` lives (our contract).
            let slice = unsafe { watch.slice(self.parker, &mut pace, deadline) };
            self.parker.park(Some(&slice), || {
                ready() || closed() || self.peer.word() != word || watch.fired()
            })?;
            if ready() {
                return Ok(PeerWait::Ready);
            }
        }
    }
}

/// The holder's pid in `word`, 0 for none.
pub(crate) fn holder_pid(word: u64) -> u32 {
    word as u32
}

/// Whether the holder recorded in `word` (which has one) still runs: same pid *and*
/// same start time (a `/proc` read, slow paths only).
fn holder_alive(word: u64) -> bool {
    owner::process_alive(holder_pid(word), word >> 32)
}

impl PeerSlot {
    /// A vacant slot for loom models (loom atomics cannot live in raw memory).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        PeerSlot {
            word: AtomicU64::new(VACANT),
            count: AtomicU64::new(0),
        }
    }

    /// Takes the role for this process unless a live process holds it (this process
    /// through another handle included). On success returns the progress counter the
    /// last clean leaver stored (0 if none), to continue from; on failure the
    /// holder's pid.
    ///
    /// A word with this process's pid but another start time names a dead process
    /// that had our pid (a restarted container reusing pid 1): it is taken over.
    pub(crate) fn claim(&self) -> Result<u64, u32> {
        let me = own_word();
        // Acquire: a takeover sees the state the previous holder left (see the module
        // docs); pairs with the Release of `release` and of a predecessor's claim.
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let pid = holder_pid(cur);
            if pid != 0 && (cur == me || holder_alive(cur)) {
                return Err(pid);
            }
            // AcqRel: Acquire as above; Release orders the claimer's prior setup
            // before the role word others read.
            match self
                .word
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
            {
                // Relaxed: ordered after the leaver's store by the Acquire above.
                Ok(_) => return Ok(self.count.load(Ordering::Relaxed)),
                Err(now) => cur = now,
            }
        }
    }

    /// Takes the slot for this process only if nobody holds it (never attached, or
    /// left cleanly): a registry entry of the [`Channel`](crate::Channel), where a
    /// dead holder is first [reclaimed](PeerSlot::reclaim_dead) so that the
    /// registry's live count is decremented exactly once. Returns whether it did.
    pub(crate) fn claim_free(&self) -> bool {
        // Acquire: as in `claim`.
        let cur = self.word.load(Ordering::Acquire);
        // AcqRel: as in `claim`; Relaxed on failure: the caller tries another slot.
        holder_pid(cur) == 0
            && self
                .word
                .compare_exchange(cur, own_word(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Marks the slot *left* if it still records `dead` (a holder judged dead by the
    /// caller). Returns whether this call did it (exactly one caller does).
    pub(crate) fn reclaim_dead(&self, dead: u64) -> bool {
        // AcqRel: like a release of the role (Release) and a claim (Acquire); Relaxed
        // on failure: someone else reclaimed or took the slot.
        holder_pid(dead) != 0
            && self
                .word
                .compare_exchange(dead, LEFT, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Overwrites the role word (tests forge dead holders with it).
    #[cfg(test)]
    pub(crate) fn word_store_for_test(&self, w: u64) {
        // Relaxed: single-threaded test setup.
        self.word.store(w, Ordering::Relaxed);
    }

    /// Releases the role held by this process, recording `count` as its progress
    /// (the state becomes [`PeerState::Left`]). Returns `false` (and changes nothing)
    /// if this process does not hold it.
    pub(crate) fn release(&self, count: u64) -> bool {
        let me = own_word();
        // Relaxed: only a check that we still hold the role; the CAS decides.
        if self.word.load(Ordering::Relaxed) != me {
            return false;
        }
        // Relaxed: published by the Release CAS below.
        self.count.store(count, Ordering::Relaxed);
        // Release: pairs with the Acquire in `state`/`claim`: the count and everything
        // this holder published happen-before a peer's observation of LEFT.
        self.word
            .compare_exchange(me, LEFT, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Marks the role left if `word` (a holder judged dead) still holds it, so that
    /// peers stop waiting for it; its count stays as the last clean leaver left it.
    /// Returns whether it did.
    pub(crate) fn reap(&self, word: u64) -> bool {
        // Relaxed: nothing is published with this change (the dead holder's work is
        // lost either way); a claimer Acquires the word as usual.
        self.word
            .compare_exchange(word, LEFT, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The raw role word (Acquire: pairs with `release`/`claim`), for a cheap "did
    /// anything change" re-check before sleeping.
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// The count the last holder left with, if it left cleanly and nobody claimed the
    /// role since (one atomic load, no `/proc` read).
    pub(crate) fn left_count(&self) -> Option<u64> {
        match self.word() {
            // Relaxed: ordered after the leaver's store by the Acquire in `word`.
            w if holder_pid(w) == 0 && w != VACANT => Some(self.count.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// The role's state. Costs a `/proc` read when a holder is recorded: slow paths only.
    #[cfg(test)]
    pub(crate) fn state(&self) -> PeerState {
        self.state_of(self.word())
    }

    /// The state that `w`, a value [`PeerSlot::word`] returned, stands for (a waiter
    /// keeps `w` to notice a change before it sleeps). Costs a `/proc` read when `w`
    /// records a holder.
    pub(crate) fn state_of(&self, w: u64) -> PeerState {
        let pid = holder_pid(w);
        if pid != 0 {
            if holder_alive(w) {
                PeerState::Attached { pid }
            } else {
                PeerState::Died { pid }
            }
        } else if w == VACANT {
            PeerState::Vacant
        } else {
            // Relaxed: ordered after the leaver's store by the Acquire in `word`.
            PeerState::Left {
                count: self.count.load(Ordering::Relaxed),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn slot() -> PeerSlot {
        PeerSlot {
            word: AtomicU64::new(VACANT),
            count: AtomicU64::new(0),
        }
    }

    #[test]
    fn states_from_vacant_through_attached_and_left_back_to_attached() {
        let s = slot();
        assert_eq!(s.state(), PeerState::Vacant);
        assert_eq!(s.left_count(), None);
        assert_eq!(s.claim(), Ok(0));
        let me = owner::current_pid();
        assert_eq!(s.state(), PeerState::Attached { pid: me });
        // Held by this process: a second claim (another handle) is refused.
        assert_eq!(s.claim(), Err(me));
        assert!(s.release(42));
        assert!(!s.release(7), "released twice");
        assert_eq!(s.state(), PeerState::Left { count: 42 });
        assert_eq!(s.left_count(), Some(42));
        // A new holder continues the count.
        assert_eq!(s.claim(), Ok(42));
        assert_eq!(s.state(), PeerState::Attached { pid: me });
    }

    #[test]
    fn a_dead_holder_is_reported_and_taken_over() {
        let s = slot();
        let dead = 4_194_305 + 13; // above the kernel's pid_max: never a process
        s.word.store(u64::from(dead), Ordering::Relaxed);
        assert_eq!(s.state(), PeerState::Died { pid: dead });
        assert_eq!(s.claim(), Ok(0));
    }

    #[test]
    fn our_pid_with_another_start_time_is_another_dead_process() {
        let s = slot();
        let forged =
            u64::from(owner::current_pid()) | (u64::from(owner::current_start_time() ^ 1) << 32);
        s.word.store(forged, Ordering::Relaxed);
        assert!(matches!(s.state(), PeerState::Died { .. }));
        assert_eq!(s.claim(), Ok(0));
        assert_eq!(s.word(), own_word());
    }

    #[test]
    fn in_a_segment_shared_across_pid_namespaces_nobody_is_dead() {
        let missing = 4_194_305 + 7;
        let local = Segment::options().anonymous().size(8).create().unwrap();
        assert!(!is_alive_in(Some(&local), missing, 0));
        assert!(!is_alive_in(None, missing, 0));
        // As a creator that expects peers from other containers marks it.
        let shared = Segment::options()
            .anonymous()
            .size(8)
            .allow_foreign_pid_namespace(true)
            .create()
            .unwrap();
        assert!(is_alive_in(Some(&shared), missing, 0));
        let me = owner::current_pid();
        let other_start = u64::from(owner::current_start_time()) + 1;
        assert!(is_alive_in(Some(&shared), me, other_start));
        // Outside the check, judging is back to normal.
        assert!(!owner::process_alive(missing, 0));
        assert!(!owner::process_alive(me, other_start));
    }
}
