//! [`Select`]: wait until any of several [`Channel`] receivers has something, in one
//! sleep (no polling).
//!
//! # Example
//! ```
//! use shmkit_typed::{Channel, RecvError, Select};
//!
//! let jobs = Channel::<String>::anonymous(4096)?;
//! let stop = Channel::<()>::anonymous(4096)?;
//! stop.send(())?;
//! let mut sel = Select::new();
//! let (j, s) = (sel.recv(&jobs), sel.recv(&stop));
//! let i = sel.ready()?; // blocks until one of them has a message (or is disconnected)
//! assert_eq!(i, s);
//! match stop.try_recv() {
//!     Ok(()) => {}                 // the message `ready` saw
//!     Err(RecvError::Empty) => {}  // another receiver took it first: call `ready` again
//!     Err(e) => return Err(e.into()),
//! }
//! assert!(sel.try_ready().is_none() && j == 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it waits
//! As a blocking receive does: it polls for a while (the floor's backoff), then sleeps
//! on the `data` parker of *every* channel at once ([`Parker::park_any`], one
//! `futex_waitv`): it announces itself on each, re-checks every channel, and sleeps;
//! a send into any of them after the re-check wakes it (a syscall only then). Sleeps
//! are cut into the channel's paced slices; after a slice that ended without a wake it
//! also reaps dead senders (a killed last sender makes its channel ready:
//! `Disconnected`) and gives up a record whose writer died. On a kernel without
//! `futex_waitv` (before Linux 5.16) the sleep falls back to slices of 1 ms on the
//! first channel (see [`futex::wait_any`](shmkit_sys::futex::wait_any)).
//!
//! # Readiness, not delivery
//! A `Select` registers each of its handles as a receiver of its channel on its first
//! look (senders are not told `Disconnected` while it waits;
//! [`RecvError::RegistryFull`] if every receiver entry is held). It claims nothing: it
//! says which channel a receive would not wait on (like
//! `crossbeam_channel::Select::ready`). Channels are multi-consumer across processes,
//! so another receiver may take the message first; `try_recv` then says `Empty`, and
//! the caller selects again. Receiving the message in the select itself would need a
//! claim on several channels at once that can be given back, which the record protocol
//! (one claim, then `DONE`) does not have.

use std::cell::Cell;
use std::time::{Duration, Instant};

use shmkit_sys::backoff::PollGauge;
use shmkit_sys::parker::{CheckPace, Parker};

use crate::channel::{Channel, RecvError, TypeName};
use crate::wait::Wait;

/// The most channels one [`Select`] waits on (the kernel's `futex_waitv` limit).
pub const SELECT_MAX: usize = shmkit_sys::futex::WAIT_ANY_MAX;

/// A channel a [`Select`] can wait on, whatever its message type.
trait Selectable {
    fn attach(&self) -> Result<(), RecvError>;
    fn parker(&self) -> &Parker;
    fn ready(&self, deep: bool) -> bool;
}

impl<T, N: TypeName> Selectable for Channel<T, N> {
    fn attach(&self) -> Result<(), RecvError> {
        self.attach_receiver()
    }

    fn parker(&self) -> &Parker {
        self.data_parker()
    }

    fn ready(&self, deep: bool) -> bool {
        self.recv_ready(deep)
    }
}

/// Waits for any of several channel receivers: see the [module docs](self).
pub struct Select<'a> {
    chans: Vec<&'a dyn Selectable>,
    /// Where the next look starts (round robin, so a busy channel does not starve the
    /// others).
    next: Cell<usize>,
    /// How its waits poll (see `shim::poll_backoff`).
    poll: PollGauge,
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("channels", &self.chans.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Select<'a> {
    /// A select over no channel yet.
    pub fn new() -> Self {
        Select {
            chans: Vec::new(),
            next: Cell::new(0),
            poll: PollGauge::new(),
        }
    }

    /// Adds a channel's receiving side; returns its index (0, 1, ...), which
    /// [`ready`](Select::ready) returns when it is this channel's turn.
    ///
    /// # Panics
    /// With more than [`SELECT_MAX`] channels.
    pub fn recv<T, N: TypeName>(&mut self, ch: &'a Channel<T, N>) -> usize {
        assert!(
            self.chans.len() < SELECT_MAX,
            "a Select waits on at most {SELECT_MAX} channels"
        );
        self.chans.push(ch);
        self.chans.len() - 1
    }

    /// The index of a channel a receive would not wait on now, if any (never reads
    /// `/proc`: a killed sender is seen by the blocking forms).
    pub fn try_ready(&self) -> Option<usize> {
        // A registry full of live receivers: the `try_recv` that follows says so.
        let _ = self.attach();
        self.find(false)
    }

    /// Registers this process's handles as receivers of their channels (once per
    /// handle and process: a pid comparison after that), so that while it waits to
    /// receive, senders are not told that no receiver is left.
    fn attach(&self) -> Result<(), RecvError> {
        self.chans.iter().try_for_each(|c| c.attach())
    }

    /// Blocks until a receive on one of the channels would not wait: a message, its
    /// senders gone (`Disconnected`) or corrupt; returns that channel's index.
    ///
    /// # Errors
    /// [`RecvError::Os`] if sleeping failed in the kernel; [`RecvError::RegistryFull`]
    /// if a channel's receiver entries are all held by live processes.
    ///
    /// # Panics
    /// If no channel was added (it would wait for ever).
    pub fn ready(&self) -> Result<usize, RecvError> {
        self.wait(Wait::Until(None))
    }

    /// As [`ready`](Select::ready), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Os`], [`RecvError::RegistryFull`].
    pub fn ready_timeout(&self, timeout: Duration) -> Result<usize, RecvError> {
        self.wait(Wait::timeout(timeout))
    }

    /// As [`ready`](Select::ready), waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Os`], [`RecvError::RegistryFull`].
    pub fn ready_deadline(&self, deadline: Instant) -> Result<usize, RecvError> {
        self.wait(Wait::at(deadline))
    }

    fn find(&self, deep: bool) -> Option<usize> {
        let n = self.chans.len();
        let start = self.next.get();
        let i = (0..n)
            .map(|k| (start + k) % n.max(1))
            .find(|&i| self.chans[i].ready(deep))?;
        self.next.set((i + 1) % n);
        Some(i)
    }

    fn wait(&self, wait: Wait) -> Result<usize, RecvError> {
        assert!(
            !self.chans.is_empty(),
            "a Select with no channel waits for ever"
        );
        self.attach()?;
        let deadline = match wait {
            Wait::No => return self.find(false).ok_or(RecvError::Empty),
            Wait::Until(d) => d,
        };
        // Built at the first sleep: a channel ready at once costs no allocation.
        let mut parkers: Vec<&Parker> = Vec::new();
        let mut backoff = crate::shim::poll_backoff(&self.poll);
        let mut pace = CheckPace::new();
        let mut deep = false;
        loop {
            if let Some(i) = self.find(std::mem::take(&mut deep)) {
                return Ok(i);
            }
            if deadline.is_some_and(|d| d.has_passed()) {
                return Err(RecvError::Timeout);
            }
            // Under loom straight to the sleep (as the channel's own waits).
            if !cfg!(loom) && backoff.snooze() {
                continue;
            }
            if parkers.is_empty() {
                parkers.extend(self.chans.iter().map(|c| c.parker()));
            }
            let slice = pace.next_slice(deadline);
            let ready = Parker::park_any(&parkers, Some(&slice), || self.find(false).is_some())
                .map_err(RecvError::Os)?;
            // Never under loom (no clock; the reap reads `/proc`).
            deep = !cfg!(loom) && !ready && slice.has_passed();
        }
    }
}
