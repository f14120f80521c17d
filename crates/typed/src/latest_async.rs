//! The async form of [`Latest::wait_newer`] ([`Latest::wait_newer_async`]): a child
//! module of `latest` (it sleeps on the cell's parker and judges the writer's slot).
//!
//! Each poll first looks at `latest`, as the blocking form does: a newer value that is
//! there completes the future on the first poll without a syscall and without the
//! doorbell. Otherwise the future announces itself on the readers' parker, re-checks,
//! and arms the floor's doorbell ([`shmkit_sys::doorbell`]) on the parker's event
//! word, naming the writer process so that its death wakes it. The writer wakes every
//! sleeping reader with one futex wake after each publish, and when it leaves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Latest, LatestError};
use crate::async_wait::Waiting;
use crate::peer::{holder_pid, HolderWatch, PeerState};

/// The future of [`Latest::wait_newer_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitNewerAsync<'a, T: bytemuck::Pod> {
    cell: &'a Latest<T>,
    seen: u64,
    waiting: Waiting,
    /// The writer, judged when the doorbell says it may be gone.
    watch: HolderWatch,
}

impl<T: bytemuck::Pod> std::fmt::Debug for WaitNewerAsync<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitNewerAsync")
            .field("seen", &self.seen)
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<T: bytemuck::Pod> Latest<T> {
    /// Waits until a value newer than sequence `seen` is published and returns it
    /// with its sequence number, as [`wait_newer`](Self::wait_newer) does, without
    /// blocking the thread. A newer value already there completes the future on its
    /// first poll, without a syscall.
    ///
    /// # Cancel safety
    /// Cancel-safe: reading a value takes nothing from the cell (every reader sees
    /// it), so a dropped future loses nothing; it withdraws its registration.
    ///
    /// # Errors
    /// As [`wait_newer`](Self::wait_newer): [`LatestError::WriterLeft`] /
    /// [`LatestError::PeerDied`] when the writer left or died and nothing newer is
    /// there, [`LatestError::Corrupt`], and [`LatestError::Os`] if the doorbell's
    /// helper thread could not be started.
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// use shmkit_typed::Latest;
    ///
    /// let name = format!("shmkit-doc-latest-async-{}", std::process::id());
    /// let mut cell = Latest::<u64>::create(&name, 0)?;
    /// let reader = Latest::<u64>::open(&name)?; // in another process, usually
    /// let seen = reader.sequence();
    /// std::thread::spawn(move || cell.publish(42));
    /// // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    /// let (seq, value) = block_on(reader.wait_newer_async(seen))?;
    /// assert!(seq > seen);
    /// assert_eq!(value, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_newer_async(&self, seen: u64) -> WaitNewerAsync<'_, T> {
        WaitNewerAsync {
            cell: self,
            seen,
            waiting: Waiting::new(),
            watch: HolderWatch::new(),
        }
    }

    /// Sleepers announced now on the readers' parker, blocking waiters and pending
    /// futures alike: a snapshot, for tests and diagnostics.
    pub fn sleepers(&self) -> u32 {
        self.hdr().wait.newer.sleepers()
    }
}

impl<T: bytemuck::Pod> Future for WaitNewerAsync<'_, T> {
    type Output = Result<(u64, T), LatestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let cell = this.cell;
        let first = !this.waiting.announced;
        if cell.sequence() > this.seen {
            return this.finish(cell.read());
        }
        // The optional bounded spin (off by default, see the doorbell's docs).
        let seen = this.seen;
        if shmkit_sys::doorbell::spin_for(|| (cell.sequence() > seen).then_some(())).is_some() {
            return this.finish(cell.read());
        }
        let h = cell.hdr();
        let ev = this.waiting.announce(&h.wait.newer);
        // The re-check after announcing (Dekker, see `Parker::announce`).
        if cell.sequence() > this.seen {
            return this.finish(cell.read());
        }
        let word = h.meta.writer.word();
        // One load: a writer that left (its handle dropped) bumps the parker after it
        // marks its slot, so this sees it once woken. Then the last look: it may have
        // published after our re-check and before it left.
        if holder_pid(word) == 0 && h.meta.writer.left_count().is_some() {
            return this.finish(if cell.sequence() > this.seen {
                cell.read()
            } else {
                Err(LatestError::WriterLeft)
            });
        }
        if !first && this.waiting.peer_needs_check() {
            match this
                .watch
                .state_of(cell.segment_opt(), &h.meta.writer, word)
            {
                // A dead writer publishes nothing more: the last look first.
                PeerState::Died { pid } => {
                    return this.finish(if cell.sequence() > this.seen {
                        cell.read()
                    } else {
                        Err(LatestError::PeerDied { pid })
                    });
                }
                PeerState::Left { .. } => {
                    return this.finish(if cell.sequence() > this.seen {
                        cell.read()
                    } else {
                        Err(LatestError::WriterLeft)
                    });
                }
                PeerState::Vacant | PeerState::Attached { .. } => {}
            }
        }
        let peers = (holder_pid(word) != 0)
            .then(|| (holder_pid(word), word >> 32))
            .into_iter()
            .collect();
        if let Err(e) = this.waiting.arm(&h.wait.newer, ev, peers, cx) {
            return this.finish(Err(LatestError::Os(e)));
        }
        Poll::Pending
    }
}

impl<T: bytemuck::Pod> WaitNewerAsync<'_, T> {
    fn finish(&mut self, r: Result<(u64, T), LatestError>) -> Poll<Result<(u64, T), LatestError>> {
        // The writer wakes every sleeping reader: a wake this future swallowed was no
        // other reader's, so nothing is passed on.
        let _ = self.waiting.retract(&self.cell.hdr().wait.newer);
        Poll::Ready(r)
    }
}

impl<T: bytemuck::Pod> Drop for WaitNewerAsync<'_, T> {
    fn drop(&mut self) {
        let _ = self.waiting.retract(&self.cell.hdr().wait.newer);
    }
}
