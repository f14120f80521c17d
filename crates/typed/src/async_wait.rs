//! What the async forms of the typed objects share (`ring_async.rs`,
//! `channel_async.rs`, `queue_async.rs`): a pending future's announcement on the
//! object's [`Parker`] and its interests in the floor's doorbell
//! ([`shmkit_sys::doorbell`]). Each future polls the same way: try the `try_` form;
//! [`Waiting::announce`]; try again (the re-check of the Parker's handshake); if a
//! peer it depends on may be gone ([`Waiting::peer_needs_check`]), judge and recover
//! as the blocking form does after a sleep slice; [`Waiting::arm`]; `Pending`. On
//! completion or drop, [`Waiting::retract`].

use std::task::Context;

use shmkit_sys::doorbell::Interest;
use shmkit_sys::parker::Parker;

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
