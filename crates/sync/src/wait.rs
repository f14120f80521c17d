//! How the lock algorithms wait, kept apart from the algorithms themselves.
//!
//! Every algorithm in this crate is written against [`Waiter`]: "sleep while this word
//! holds this value", "wake n sleepers", "is this holder still alive". In production the
//! waiter is [`Futex`] (shared futexes and `/proc` liveness checks); the loom models in
//! the unit tests supply a waiter built on loom's own mutex and condvar, so loom checks
//! the algorithm's interleavings without seeing a syscall.

use crate::atomic::AtomicU32;
use crate::futex::{Deadline, WaitOutcome};
use crate::owner::OwnerIdent;

/// The waiting strategy an algorithm uses.
pub(crate) trait Waiter {
    /// Sleeps while `*word == expected`, at most until `deadline`. May return early for
    /// any reason; callers re-check their condition. An error means sleeping is not
    /// possible at all: callers give up and return it (never retry it in a loop).
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<&Deadline>,
    ) -> Result<WaitOutcome, shmkit_sys::OsError>;
    /// Wakes up to `n` sleepers on `word`; returns how many were woken.
    fn wake(&self, word: &AtomicU32, n: u32) -> usize;
    /// Whether the lock holder `tid` (with start time `start`, if known) still exists.
    fn owner_alive(&self, tid: u32, start: Option<u32>) -> bool;
    /// The calling thread's identity.
    fn me(&self) -> OwnerIdent;
    /// The calling process's identity, encoded as a thread's (`start_time_low32 << 32 |
    /// pid`), for objects held by a process rather than a thread (semaphore permits,
    /// barrier parties). Its liveness is checked with [`owner_alive`](Self::owner_alive).
    fn process(&self) -> OwnerIdent;
    /// Asks the floor's death watcher to wake sleepers on `word` when the process of
    /// holder thread `tid` exits; `None` (the default, and under loom) when it cannot:
    /// the caller then keeps the paced liveness checks.
    fn watch_holder<'a>(
        &self,
        tid: u32,
        start: Option<u32>,
        word: &'a AtomicU32,
    ) -> Option<shmkit_sys::watcher::WordWatch<'a>> {
        let _ = (tid, start, word);
        None
    }
}

/// The production waiter: shared futexes, `/proc` liveness, the cached thread identity.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Futex;

#[cfg(not(loom))]
impl Waiter for Futex {
    #[inline]
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<&Deadline>,
    ) -> Result<WaitOutcome, shmkit_sys::OsError> {
        crate::futex::wait(word, expected, deadline)
    }
    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32) -> usize {
        crate::futex::wake(word, n)
    }
    fn owner_alive(&self, tid: u32, start: Option<u32>) -> bool {
        crate::owner::is_alive(tid, start)
    }
    fn watch_holder<'a>(
        &self,
        tid: u32,
        start: Option<u32>,
        word: &'a AtomicU32,
    ) -> Option<shmkit_sys::watcher::WordWatch<'a>> {
        shmkit_sys::watcher::watch_thread(tid, start, word)
    }
    #[inline]
    fn me(&self) -> OwnerIdent {
        crate::owner::current()
    }
    #[inline]
    fn process(&self) -> OwnerIdent {
        crate::owner::current_process()
    }
}

/// Under loom the public API (which uses the default waiter) must still compile; it is
/// only exercised through the explicit loom waiter in the models.
#[cfg(loom)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Futex;

#[cfg(loom)]
impl Waiter for Futex {
    fn wait(
        &self,
        _: &AtomicU32,
        _: u32,
        _: Option<&Deadline>,
    ) -> Result<WaitOutcome, shmkit_sys::OsError> {
        loom::thread::yield_now();
        Ok(WaitOutcome::Woken)
    }
    fn wake(&self, _: &AtomicU32, _: u32) -> usize {
        0
    }
    fn owner_alive(&self, _: u32, _: Option<u32>) -> bool {
        true
    }
    fn me(&self) -> OwnerIdent {
        crate::owner::current()
    }
    fn process(&self) -> OwnerIdent {
        crate::owner::current()
    }
}

/// The death watcher's registrations for a set of holder *processes* (semaphore
/// permit holders, barrier parties), one per process identity (`start << 32 | pid`),
/// waking sleepers on one word when any of them exits. Refreshed from the recorded
/// identities before each sleep: kept for identities still recorded, made for new ones
/// (one `/proc` read and a pidfd each), dropped for gone ones.
pub(crate) struct WatchSet<'a> {
    regs: Vec<(OwnerIdent, Option<shmkit_sys::watcher::WordWatch<'a>>)>,
}

impl<'a> WatchSet<'a> {
    pub(crate) fn new() -> Self {
        WatchSet { regs: Vec::new() }
    }

    /// Watches exactly the processes `idents` (non-zero), for sleepers on `word`.
    pub(crate) fn refresh<W: Waiter>(
        &mut self,
        w: &W,
        idents: impl Iterator<Item = OwnerIdent>,
        word: &'a AtomicU32,
    ) {
        let now: Vec<OwnerIdent> = idents.filter(|&v| v != 0).collect();
        if now.len() == self.regs.len() && now.iter().zip(&self.regs).all(|(v, (k, _))| v == k) {
            return;
        }
        let mut old = std::mem::take(&mut self.regs);
        for v in now {
            let reg = match old.iter().position(|(k, _)| *k == v) {
                Some(i) => old.swap_remove(i).1,
                None => {
                    let start = (v >> 32 != 0).then_some((v >> 32) as u32);
                    w.watch_holder(v as u32, start, word)
                }
            };
            self.regs.push((v, reg));
        }
    }

    /// Whether every process of the set is watched (then a long safety slice is
    /// enough).
    pub(crate) fn all_watched(&self) -> bool {
        self.regs.iter().all(|(_, r)| r.is_some())
    }

    /// Whether a watched process has exited.
    pub(crate) fn fired(&self) -> bool {
        self.regs
            .iter()
            .any(|(_, r)| r.as_ref().is_some_and(|r| r.fired()))
    }

    /// After a check that did not recover a fired process (the judgement still says
    /// alive): paced checks for it from now on, never a hot loop on it.
    pub(crate) fn forget_fired(&mut self) {
        for (_, r) in &mut self.regs {
            if r.as_ref().is_some_and(|r| r.fired()) {
                *r = None;
            }
        }
    }
}

// The one Backoff of the floor: spin with loads, then yield (then the callers here
// sleep on a futex).
pub(crate) use shmkit_sys::backoff::{spin_until, yield_now as yield_cpu, SPIN_LIMIT};

/// A futex model for loom: a "kernel" lock makes check-and-sleep atomic with respect to
/// wake, as the real futex hash-bucket lock does; sleepers are woken in FIFO order and
/// `wake` reports how many it woke. Deadlines are ignored (a sleeper blocks until woken)
/// except that a waiter whose expected lock word names a dead owner times out at once,
/// which models "the next owner check finds the holder dead".
#[cfg(all(test, loom))]
pub(crate) mod loom_model {
    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};

    #[derive(Default)]
    struct Queue {
        /// (word address, ticket) of each sleeper, in arrival order.
        sleepers: Vec<(usize, u64)>,
        next_ticket: u64,
    }

    /// Whether a dead owner still holds the lock under test (then timed waits end at
    /// once, modelling "the next liveness check finds the holder dead").
    type DeadHolds = Box<dyn Fn(u32) -> bool + Send + Sync>;

    /// The shared "kernel".
    #[derive(Default)]
    pub(crate) struct Kernel {
        queue: Mutex<Queue>,
        cond: Condvar,
        /// TIDs of owners that are dead.
        dead: Vec<u32>,
        /// Given the expected futex value, whether a dead owner holds the lock; `None`:
        /// the value itself names the owner (the mutex word).
        dead_holds: Option<DeadHolds>,
    }

    impl Kernel {
        /// A kernel in which the listed TIDs are dead.
        pub(crate) fn with_dead(dead: Vec<u32>) -> Arc<Self> {
            Arc::new(Kernel {
                dead,
                ..Default::default()
            })
        }

        /// As `with_dead`, with an explicit "a dead owner holds it" probe.
        pub(crate) fn with_dead_probe(
            dead: Vec<u32>,
            probe: impl Fn(u32) -> bool + Send + Sync + 'static,
        ) -> Arc<Self> {
            Arc::new(Kernel {
                dead,
                dead_holds: Some(Box::new(probe)),
                ..Default::default()
            })
        }
    }

    /// One thread's waiter (carries that thread's identity).
    pub(crate) struct LoomWaiter {
        pub(crate) kernel: Arc<Kernel>,
        pub(crate) me: OwnerIdent,
    }

    impl Waiter for LoomWaiter {
        fn wait(
            &self,
            word: &AtomicU32,
            expected: u32,
            deadline: Option<&Deadline>,
        ) -> Result<WaitOutcome, shmkit_sys::OsError> {
            let addr = word as *const AtomicU32 as usize;
            let mut q = self.kernel.queue.lock().unwrap();
            if word.load(crate::atomic::Ordering::SeqCst) != expected {
                return Ok(WaitOutcome::ValueChanged);
            }
            let dead_holds = match &self.kernel.dead_holds {
                Some(probe) => probe(expected),
                None => self
                    .kernel
                    .dead
                    .contains(&(expected & crate::owner::TID_MASK)),
            };
            if deadline.is_some() && dead_holds {
                return Ok(WaitOutcome::TimedOut);
            }
            let ticket = q.next_ticket;
            q.next_ticket += 1;
            q.sleepers.push((addr, ticket));
            while q.sleepers.iter().any(|&(_, t)| t == ticket) {
                q = self.kernel.cond.wait(q).unwrap();
            }
            Ok(WaitOutcome::Woken)
        }

        fn wake(&self, word: &AtomicU32, n: u32) -> usize {
            let addr = word as *const AtomicU32 as usize;
            let mut q = self.kernel.queue.lock().unwrap();
            let mut woken = 0;
            q.sleepers.retain(|&(a, _)| {
                if a == addr && woken < n as usize {
                    woken += 1;
                    false
                } else {
                    true
                }
            });
            if woken > 0 {
                self.kernel.cond.notify_all();
            }
            woken
        }

        fn owner_alive(&self, tid: u32, _start: Option<u32>) -> bool {
            !self.kernel.dead.contains(&tid)
        }

        fn me(&self) -> OwnerIdent {
            self.me
        }

        /// Each model thread stands for a process of its own.
        fn process(&self) -> OwnerIdent {
            self.me
        }
    }
}
