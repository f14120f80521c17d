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
use shmkit_sys::parker::Parker;

use crate::async_wait::{Attempt, Waiting};
use crate::peer::{holder_pid, HolderWatch, PeerState};

/// The future of [`Latest::wait_newer_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitNewerAsync<'a, T: bytemuck::Pod> {
    op: WaitOp<'a, T>,
    waiting: Waiting,
}

/// The wait as [`Waiting::poll`] drives it.
struct WaitOp<'a, T: bytemuck::Pod> {
    cell: &'a Latest<T>,
    seen: u64,
    /// The writer, judged when the doorbell says it may be gone.
    watch: HolderWatch,
}

impl<T: bytemuck::Pod> std::fmt::Debug for WaitNewerAsync<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitNewerAsync")
            .field("seen", &self.op.seen)
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
            op: WaitOp {
                cell: self,
                seen,
                watch: HolderWatch::new(),
            },
            waiting: Waiting::new(),
        }
    }

    /// Sleepers announced now on the readers' parker, blocking waiters and pending
    /// futures alike: a snapshot, for tests and diagnostics.
    pub fn sleepers(&self) -> u32 {
        self.hdr().wait.newer.sleepers()
    }
}

impl<T: bytemuck::Pod> Attempt for WaitOp<'_, T> {
    type Output = Result<(u64, T), LatestError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        (self.cell.sequence() > self.seen).then(|| self.cell.read())
    }

    fn parker(&self) -> &Parker {
        // The writer wakes every sleeping reader: a wake a dropped future swallowed was
        // no other reader's, so nothing is passed on.
        &self.cell.hdr().wait.newer
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        let cell = self.cell;
        let writer = &cell.hdr().meta.writer;
        let word = writer.word();
        // One load: a writer that left (its handle dropped) bumps the parker after it
        // marks its slot, so this sees it once woken.
        let end = if holder_pid(word) == 0 && writer.left_count().is_some() {
            LatestError::WriterLeft
        } else if !peer_may_be_gone {
            return None;
        } else {
            match self.watch.state_of(cell.segment_opt(), writer, word) {
                PeerState::Died { pid } => LatestError::PeerDied { pid },
                PeerState::Left { .. } => LatestError::WriterLeft,
                PeerState::Vacant | PeerState::Attached { .. } => return None,
            }
        };
        // A writer gone publishes nothing more: the last look first (it may have
        // published after our re-check and before it went).
        Some(self.attempt().unwrap_or(Err(end)))
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        let word = self.cell.hdr().meta.writer.word();
        (holder_pid(word) != 0)
            .then(|| (holder_pid(word), word >> 32))
            .into_iter()
            .collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(LatestError::Os(e))
    }
}

impl<T: bytemuck::Pod> Future for WaitNewerAsync<'_, T> {
    type Output = Result<(u64, T), LatestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl<T: bytemuck::Pod> Drop for WaitNewerAsync<'_, T> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}
