//! Async waits: [`Event::wait_async`], [`Semaphore::acquire_async`] and
//! [`Semaphore::acquire_permit_async`], as runtime-agnostic futures (`Future` +
//! `Waker`: tokio, async-std, smol or a hand-written executor).
//!
//! # How they wait
//! A future first tries the operation, exactly as the blocking form's fast path does
//! (`try_acquire`, the event's check): a permit or a set flag that is already there
//! completes on the first poll with no syscall and no helper thread. Otherwise it
//! counts itself among the object's sleepers (the same `waiters` count the blocking
//! waiters use, so `set`/`release` wake it as they wake them), re-checks, and arms
//! the floor's async doorbell ([`shmkit_sys::doorbell`]) on the object's futex word:
//! one helper thread per process sleeps in `futex_waitv` on the words of every
//! pending future (at most 126 distinct words per thread: 10,000 futures on 100
//! objects cost one thread) and wakes their tasks. No future busy-polls or holds a
//! thread of its own.
//!
//! A pending poll may first spin on the operation for a bounded time
//! ([`set_poll_spin`], off by default), as the blocking forms poll before they sleep:
//! a ping-pong then completes without the doorbell, at the price of holding the
//! executor thread for up to that budget.
//!
//! # Cancel safety
//! Every future here is cancel-safe: dropping it at any point (a `select!` that chose
//! another branch, a timeout, a runtime that shuts down) takes nothing and leaves no
//! registration behind. A permit or an auto-reset event's flag is taken only in the
//! poll that returns `Ready`; a future dropped after the doorbell woke it, but before
//! it took what it was woken for, passes the wake-up on to another waiter of the same
//! object. The sleepers count it added is removed on completion or drop.
//!
//! # Locks
//! - **[`Mutex`](crate::Mutex), [`RwLock`](crate::RwLock): no async form.** Their
//!   ownership is a *thread*'s (its tid is recorded for owner-death recovery and for
//!   the deadlock check), while a task of a multi-thread runtime moves between threads
//!   at every `.await`: a guard held across an `.await` would be released by another
//!   thread. For a lock in async code use a one-permit semaphore's
//!   [`acquire_permit_async`](Semaphore::acquire_permit_async): it is owned by the
//!   *process* (any of its threads may drop the permit), and given back to the other
//!   waiters when the process dies holding it, as every semaphore permit is. It is not
//!   reentrant: a task that awaits a second permit of the same one-permit semaphore
//!   while holding the first waits for ever, as with any non-reentrant lock.
//! - **[`NamedLock`](crate::NamedLock), [`FileLock`](crate::FileLock)**: `flock` (and
//!   the OFD range locks) has no futex word and no readiness to wait on, so no
//!   doorbell word can wake them. Their async forms
//!   ([`NamedLock::acquire_async`](crate::NamedLock::acquire_async),
//!   [`FileLock::lock_async`](crate::FileLock::lock_async),
//!   [`FileLock::lock_range_async`](crate::FileLock::lock_range_async)) are
//!   *bounded timed retries*, as their blocking `*_timeout` forms: each poll tries the
//!   non-blocking call once; a busy lock waits for the next delay of the one backoff
//!   ([`shmkit_sys::Backoff`]: 20 us doubling to 10 ms), never past the timeout, which
//!   ends the future with the typed `Timeout` error. The timer is the doorbell's
//!   ([`Interest::arm_timer`]): its helper threads wake the future after the delay,
//!   so the futures stay runtime-agnostic (no `tokio` feature, no thread per waiter).
//!   A release is therefore seen up to 10 ms late, and each waiting future costs up
//!   to 100 tries a second once the backoff reached its cap. Cancel-safe: the lock is
//!   held only by the guard of the poll that returns `Ready`; a dropped future holds
//!   no lock and no registration.
//!
//! # Examples
//! ```
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     struct T(std::thread::Thread);
//! #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
//! #     let waker = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         std::thread::park();
//! #     }
//! # }
//! use shmkit_sync::{Event, Semaphore};
//!
//! let ready = Event::new();
//! let pool = Semaphore::new(0);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         pool.release().expect("unbounded");
//!         ready.set();
//!     });
//!     // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
//!     block_on(async {
//!         ready.wait_async().await?;
//!         let permit = pool.acquire_permit_async().await?; // a process-owned lock
//!         drop(permit);
//!         Ok::<(), Box<dyn std::error::Error>>(())
//!     })
//! })?;
//! assert_eq!(pool.value(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[doc(hidden)]
pub use shmkit_sys::doorbell::force_helpers;
use shmkit_sys::doorbell::Interest;
/// The doorbell's bound and counters: helper threads running now (at most
/// `ceil(distinct armed words / WORDS_PER_HELPER)`), words registered now, and (with
/// the `tokio` feature) whether its io_uring backend serves futures polled inside a
/// tokio runtime here and how many rings it holds.
pub use shmkit_sys::doorbell::{
    helper_threads, registered_words, uring_available, uring_rings, WORDS_PER_HELPER,
};
/// The optional bounded spin of pending polls (off by default): see the doorbell's
/// [Spinning in poll](shmkit_sys::doorbell#spinning-in-poll-optional-off-by-default).
pub use shmkit_sys::doorbell::{poll_spin, set_poll_spin};

use crate::atomic::{AtomicU32, Ordering::*};
use crate::error::{EventError, SemaphoreError};
use crate::wait::Futex;
use crate::{Event, Semaphore, SemaphorePermit};

/// A future's place among an object's sleepers: counted in its `waiters` word while
/// it waits, so that the object's wakers make the wake syscall.
struct Sleeper<'a> {
    waiters: &'a AtomicU32,
    counted: bool,
}

impl<'a> Sleeper<'a> {
    fn new(waiters: &'a AtomicU32) -> Self {
        Sleeper {
            waiters,
            counted: false,
        }
    }

    fn count(&mut self) {
        if !self.counted {
            // AcqRel RMW, paired with the waker's RMW on `waiters` (see
            // `Semaphore::release_with`): either the waker sees us, or our re-check
            // after this sees its change.
            self.waiters.fetch_add(1, AcqRel);
            self.counted = true;
        }
    }

    fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            // Relaxed: a hint for wakers, as in the blocking waits.
            self.waiters.fetch_sub(1, Relaxed);
        }
    }

    /// After a drop that swallowed a doorbell wake: wakes one other sleeper of `word`.
    fn pass_on(&self, word: &AtomicU32) {
        // AcqRel RMW: as in `count`.
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            crate::futex::wake(word, 1);
        }
    }
}

/// The bounded async form of a wait that has nothing to sleep on (`flock`, OFD locks:
/// see the module docs on locks): each poll tries once; a busy lock arms the
/// doorbell's timer ([`Interest::arm_timer`]) for the next delay of the one backoff
/// ([`Backoff::next_nap`](shmkit_sys::Backoff::next_nap): 20 us doubling to
/// `RETRY_CAP`, 10 ms), never past the deadline, after which the future gives up.
#[derive(Debug)]
pub(crate) struct Retry {
    interest: Interest,
    backoff: shmkit_sys::Backoff,
    deadline: crate::futex::Deadline,
}

impl Retry {
    /// Gives up `timeout` after now (`Duration::MAX`: never).
    pub(crate) fn new(timeout: std::time::Duration) -> Self {
        Retry {
            interest: Interest::new(),
            backoff: shmkit_sys::Backoff::new(),
            deadline: crate::futex::Deadline::after(timeout),
        }
    }

    /// One poll: `attempt` (`Ok(None)`: busy) once, then the timeout, then the timer.
    pub(crate) fn poll<T, E>(
        &mut self,
        cx: &Context<'_>,
        attempt: impl FnOnce() -> Result<Option<T>, E>,
        timeout: impl FnOnce() -> E,
        os: impl FnOnce(crate::OsError) -> E,
    ) -> Poll<Result<T, E>> {
        let r = match attempt() {
            Ok(Some(t)) => Ok(t),
            Err(e) => Err(e),
            Ok(None) if self.deadline.has_passed() => Err(timeout()),
            Ok(None) => {
                let nap = self.backoff.next_nap(crate::file_lock::RETRY_CAP, None);
                let at = crate::futex::Deadline::after(nap).min_with(Some(self.deadline));
                match self.interest.arm_timer(at, cx.waker()) {
                    Ok(()) => return Poll::Pending,
                    Err(e) => Err(os(e)),
                }
            }
        };
        self.interest.disarm();
        Poll::Ready(r)
    }
}

/// The future of [`Event::wait_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    sleeper: Sleeper<'a>,
    interest: Interest,
}

impl std::fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWait")
            .field("waiting", &self.sleeper.counted)
            .finish()
    }
}

impl Event {
    /// Waits until the flag is set (and, for auto reset, consumes it), as
    /// [`wait`](Self::wait) does, without blocking the thread: see the
    /// [`future` module](crate::future).
    ///
    /// # Cancel safety
    /// Cancel-safe. Dropping the future consumes nothing: an auto-reset event's flag is
    /// taken only by the poll that returns `Ready`, and a wake-up the dropped future
    /// received goes on to another waiter.
    ///
    /// # Errors
    /// [`EventError::Os`] if the doorbell's helper thread could not be started.
    pub fn wait_async(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            sleeper: Sleeper::new(self.words().1),
            interest: Interest::new(),
        }
    }
}

impl Future for EventWait<'_> {
    type Output = Result<(), EventError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.event.try_take() {
            this.finish();
            return Poll::Ready(Ok(()));
        }
        // The optional bounded spin (off by default, see the doorbell's docs).
        let event = this.event;
        if shmkit_sys::doorbell::spin_for(|| event.try_take().then_some(())).is_some() {
            this.finish();
            return Poll::Ready(Ok(()));
        }
        this.sleeper.count();
        // The re-check after counting ourselves (see `Sleeper::count`).
        if this.event.try_take() {
            this.finish();
            return Poll::Ready(Ok(()));
        }
        // The flag word is 0 while clear: the helper sleeps while it is.
        let (state, _) = this.event.words();
        if let Err(e) = this.interest.arm(state, 0, None, cx.waker()) {
            this.finish();
            return Poll::Ready(Err(EventError::Os(e)));
        }
        Poll::Pending
    }
}

impl EventWait<'_> {
    fn finish(&mut self) {
        self.sleeper.uncount();
        self.interest.disarm();
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        self.sleeper.uncount();
        if self.interest.disarm() && self.event.is_auto() {
            self.sleeper.pass_on(self.event.words().0);
        }
    }
}

/// The wait of [`Semaphore::acquire_async`] and [`Semaphore::acquire_permit_async`].
struct SemWait<'a> {
    sem: &'a Semaphore,
    sleeper: Sleeper<'a>,
    /// One interest per recorded holder process (all on the `value` word, which the
    /// doorbell waits on once), or one without a peer.
    interests: Vec<Interest>,
}

impl<'a> SemWait<'a> {
    fn new(sem: &'a Semaphore) -> Self {
        SemWait {
            sem,
            sleeper: Sleeper::new(sem.wait_words().1),
            interests: Vec::new(),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SemaphoreError>> {
        if self.sem.try_acquire().is_ok() {
            return self.finish(Ok(()));
        }
        // The optional bounded spin (off by default, see the doorbell's docs).
        let sem = self.sem;
        if shmkit_sys::doorbell::spin_for(|| sem.try_acquire().ok()).is_some() {
            return self.finish(Ok(()));
        }
        self.sleeper.count();
        // A recorded holder that died (the watcher fired) or that cannot be watched:
        // give its permits back, as the blocking waiters do after a slice.
        if self.interests.iter().any(Interest::peer_needs_check) {
            self.sem.reclaim_dead_holders(&Futex);
        }
        // The re-check after counting ourselves (see `Sleeper::count`).
        if self.sem.try_acquire().is_ok() {
            return self.finish(Ok(()));
        }
        let (value, _) = self.sem.wait_words();
        let me = crate::owner::current_pid();
        let peers: Vec<_> = self
            .sem
            .recorded_holders()
            .into_iter()
            .filter(|h| h.0 != me)
            .collect();
        let want = peers.len().max(1);
        self.interests.resize_with(want, Interest::new);
        let peers = peers.into_iter().map(Some).chain(std::iter::repeat(None));
        for (interest, peer) in self.interests.iter_mut().zip(peers) {
            // Permits are 0 here: the helper sleeps while they are.
            if let Err(e) = interest.arm(value, 0, peer, cx.waker()) {
                return self.finish(Err(SemaphoreError::Os(e)));
            }
        }
        Poll::Pending
    }

    fn finish(&mut self, r: Result<(), SemaphoreError>) -> Poll<Result<(), SemaphoreError>> {
        self.sleeper.uncount();
        self.interests.clear();
        Poll::Ready(r)
    }
}

impl Drop for SemWait<'_> {
    fn drop(&mut self) {
        self.sleeper.uncount();
        let mut woken = false;
        for mut i in self.interests.drain(..) {
            woken |= i.disarm();
        }
        if woken {
            self.sleeper.pass_on(self.sem.wait_words().0);
        }
    }
}

/// The future of [`Semaphore::acquire_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a>(SemWait<'a>);

/// The future of [`Semaphore::acquire_permit_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct AcquirePermit<'a>(SemWait<'a>);

impl std::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AcquirePermit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquirePermit").finish_non_exhaustive()
    }
}

impl Future for Acquire<'_> {
    type Output = Result<(), SemaphoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll(cx)
    }
}

impl<'a> Future for AcquirePermit<'a> {
    type Output = Result<SemaphorePermit<'a>, SemaphoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.0
            .poll(cx)
            .map(|r| r.map(|()| this.0.sem.permit_taken(&Futex)))
    }
}

impl Semaphore {
    /// Takes a permit, as [`acquire`](Self::acquire) does, without blocking the
    /// thread: see the [`future` module](crate::future). Waiting, it gives back the
    /// permits of recorded holders that died, as the blocking form does.
    ///
    /// # Cancel safety
    /// Cancel-safe: a permit is taken only by the poll that returns `Ready`; a future
    /// dropped after a release woke it passes the wake-up on to another waiter.
    ///
    /// # Errors
    /// [`SemaphoreError::Os`] if the doorbell's helper thread could not be started.
    pub fn acquire_async(&self) -> Acquire<'_> {
        Acquire(SemWait::new(self))
    }

    /// As [`acquire_permit`](Self::acquire_permit) (a permit given back on drop, or
    /// when this process dies holding it), without blocking the thread. A one-permit
    /// semaphore used this way is the async lock of shmkit (see the
    /// [`future` module](crate::future) on locks).
    ///
    /// # Cancel safety
    /// As [`acquire_async`](Self::acquire_async).
    ///
    /// # Errors
    /// As [`acquire_async`](Self::acquire_async).
    pub fn acquire_permit_async(&self) -> AcquirePermit<'_> {
        AcquirePermit(SemWait::new(self))
    }
}
