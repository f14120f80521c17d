//! What the async forms of the typed objects share (`ring_async.rs`,
//! `channel_async.rs`, `queue_async.rs`, `topic_async.rs`, `latest_async.rs`): a
//! pending future's announcement on the object's [`Parker`] and its interests in the
//! floor's doorbell ([`shmkit_sys::doorbell`]). Each future polls the same way,
//! [`Waiting::poll`]: try the `try_` form (an [`Attempt`]); the optional bounded spin;
//! [`Waiting::announce`]; try again (the re-check of the Parker's handshake); if a
//! peer it depends on may be gone ([`Waiting::peer_needs_check`]), judge and recover
//! as the blocking form does after a sleep slice; [`Waiting::arm`]; `Pending`. On
//! completion, and on drop ([`Waiting::drop_with`]), [`Waiting::retract`].

use std::task::{Context, Poll};

use shmkit_sys::doorbell::Interest;
use shmkit_sys::parker::Parker;

/// One async operation as [`Waiting::poll`] drives it: the blocking form's `try_`
/// step, the parker that form sleeps on, and its peer checks.
pub(crate) trait Attempt {
    type Output;
    /// One try: `None` while the operation would block (empty, full, not newer).
    fn attempt(&mut self) -> Option<Self::Output>;
    /// The parker the blocking form sleeps on (and wakes).
    fn parker(&self) -> &Parker;
    /// After the re-check failed: what the blocking form checks after a sleep slice.
    /// `peer_may_be_gone` says the doorbell reported a watched peer gone (or not
    /// watchable); `Some` ends the wait with that output (an error, or what one more
    /// attempt found after a recovery).
    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output>;
    /// The peer processes whose death must wake the future (pid, start time; 0 if not
    /// known).
    fn peers(&self) -> Vec<(u32, u64)>;
    /// The output for a doorbell that could not be armed.
    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output;
    /// Whether a wake the dropped future swallowed is passed on to another sleeper
    /// (parkers woken one sleeper per item: the queue's and the channel's).
    const PASS_ON: bool = false;
}

/// A pending future's state: its announcement on one parker and one doorbell interest
/// per peer process it depends on (or one naming nobody).
pub(crate) struct Waiting {
    pub(crate) announced: bool,
    interests: Vec<Interest>,
}

impl Waiting {
    pub(crate) fn new() -> Self {
        Waiting {
            announced: false,
            interests: Vec::new(),
        }
    }

    /// One poll of `op` (see the module docs); `Ready` has retracted everything.
    pub(crate) fn poll<A: Attempt>(&mut self, op: &mut A, cx: &Context<'_>) -> Poll<A::Output> {
        let first = !self.announced;
        // The first try, then the optional bounded spin (off by default, see the
        // doorbell's docs).
        if let Some(done) = op
            .attempt()
            .or_else(|| shmkit_sys::doorbell::spin_for(|| op.attempt()))
        {
            return self.done(op, done);
        }
        let ev = self.announce(op.parker());
        // The re-check after announcing (Dekker, see `Parker::announce`).
        if let Some(done) = op.attempt() {
            return self.done(op, done);
        }
        if let Some(done) = op.check(!first && self.peer_needs_check()) {
            return self.done(op, done);
        }
        let peers = op.peers();
        match self.arm(op.parker(), ev, peers, cx) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                let out = op.os_error(e);
                self.done(op, out)
            }
        }
    }

    fn done<A: Attempt>(&mut self, op: &A, out: A::Output) -> Poll<A::Output> {
        let _ = self.retract(op.parker());
        Poll::Ready(out)
    }

    /// What a future's `Drop` does: retracts, and passes on a swallowed wake if `A`
    /// says so.
    pub(crate) fn drop_with<A: Attempt>(&mut self, op: &A) {
        self.drop_on(op.parker(), A::PASS_ON);
    }

    /// [`drop_with`](Self::drop_with) for a future that has no [`Attempt`] at hand
    /// (its type lacks the operation's bounds): retracts from `parker`, and wakes one
    /// other sleeper there if `pass_on` and the doorbell had woken this future.
    pub(crate) fn drop_on(&mut self, parker: &Parker, pass_on: bool) {
        if self.retract(parker) && pass_on {
            parker.wake(1);
        }
    }

    pub(crate) fn announce(&mut self, parker: &Parker) -> u32 {
        if self.announced {
            parker.observe()
        } else {
            self.announced = true;
            parker.announce()
        }
    }

    pub(crate) fn peer_needs_check(&self) -> bool {
        self.interests.iter().any(Interest::peer_needs_check)
    }

    /// Arms one interest per peer in `peers` (or one without a peer) on `parker`'s
    /// event word, expecting `ev`.
    pub(crate) fn arm(
        &mut self,
        parker: &Parker,
        ev: u32,
        peers: Vec<(u32, u64)>,
        cx: &Context<'_>,
    ) -> Result<(), shmkit_sync::OsError> {
        self.interests
            .resize_with(peers.len().max(1), Interest::new);
        let peers = peers.into_iter().map(Some).chain(std::iter::repeat(None));
        for (interest, peer) in self.interests.iter_mut().zip(peers) {
            interest.arm(parker.event(), ev, peer, cx.waker())?;
        }
        Ok(())
    }

    /// Withdraws the announcement and the interests; returns whether the doorbell had
    /// woken this future since it last armed (a wake it swallows if it is dropped).
    pub(crate) fn retract(&mut self, parker: &Parker) -> bool {
        if std::mem::take(&mut self.announced) {
            parker.retract();
        }
        let mut woken = false;
        for mut i in self.interests.drain(..) {
            woken |= i.disarm();
        }
        woken
    }
}
