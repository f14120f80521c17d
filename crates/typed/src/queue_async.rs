//! The async forms of the queue's put and get ([`Queue::put_async`],
//! [`Queue::get_async`]): a child module of `queue` (it sleeps on the queue's parkers
//! and recovers slots blocked by dead claimers), polled as `crate::async_wait`
//! describes. A slot claimed by a process in the middle of its copy names that process
//! to the doorbell; when it exits, the future recovers the slot as the blocking forms
//! do after a sleep slice.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{claimer, state, GetError, PutError, Queue, READING, WRITING};
use shmkit_sys::parker::Parker;

use crate::async_wait::{Attempt, Waiting};
use crate::shim::{AtomicU64, Ordering};

/// The future of [`Queue::get_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct GetAsync<'a, T: bytemuck::Pod> {
    op: GetOp<'a, T>,
    waiting: Waiting,
}

/// The get as [`Waiting::poll`] drives it.
struct GetOp<'a, T: bytemuck::Pod> {
    q: &'a Queue<T>,
}

/// The future of [`Queue::put_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct PutAsync<'a, T: bytemuck::Pod> {
    op: PutOp<'a, T>,
    waiting: Waiting,
}

/// The put as [`Waiting::poll`] drives it.
struct PutOp<'a, T: bytemuck::Pod> {
    q: &'a Queue<T>,
    /// `None` once put (or handed back in an error).
    item: Option<T>,
}

// The item is never pinned (it is moved in and out of the `Option` freely).
impl<T: bytemuck::Pod> Unpin for PutAsync<'_, T> {}

impl<T: bytemuck::Pod> std::fmt::Debug for GetAsync<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetAsync")
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for PutAsync<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutAsync")
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<T: bytemuck::Pod> Queue<T> {
    /// Takes the oldest item, as [`get`](Self::get) does, without blocking the thread.
    /// An item already there completes the future on its first poll, without a
    /// syscall.
    ///
    /// # Cancel safety
    /// Cancel-safe: an item is taken only by the poll that returns `Ready`; a dropped
    /// future leaves every item for the other consumers, passes on a wake-up it
    /// swallowed, and withdraws its registration.
    ///
    /// # Errors
    /// As [`get`](Self::get); [`GetError::Os`] if the doorbell's helper thread could
    /// not be started.
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
    /// use shmkit_typed::Queue;
    ///
    /// let q = Queue::<u64>::anonymous(8)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| q.put(7));
    ///     // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    ///     assert_eq!(block_on(q.get_async())?, 7);
    ///     Ok::<(), shmkit_typed::GetError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_async(&self) -> GetAsync<'_, T> {
        GetAsync {
            op: GetOp { q: self },
            waiting: Waiting::new(),
        }
    }

    /// Puts `item`, as [`put`](Self::put) does, without blocking the thread. Room
    /// already there completes the future on its first poll, without a syscall.
    ///
    /// # Cancel safety
    /// A dropped future put nothing (the item is dropped with it), and withdraws its
    /// registration.
    ///
    /// # Errors
    /// As [`put`](Self::put), with the item; [`PutError::Os`] if the doorbell's helper
    /// thread could not be started.
    pub fn put_async(&self, item: T) -> PutAsync<'_, T> {
        PutAsync {
            op: PutOp {
                q: self,
                item: Some(item),
            },
            waiting: Waiting::new(),
        }
    }

    /// The claimer of the slot at the cursor `pos` (a process in the middle of its
    /// copy): its stamp and pid.
    fn blocker_at(&self, pos: &AtomicU64) -> Option<(u64, u32)> {
        // Relaxed/Acquire: as in the blocking forms' re-check.
        let p = pos.load(Ordering::Relaxed);
        let s = self.slot(p).stamp.load(Ordering::Acquire);
        matches!(state(s), WRITING | READING).then(|| (s, claimer(s)))
    }
}

impl<T: bytemuck::Pod> Attempt for GetOp<'_, T> {
    type Output = Result<T, GetError>;
    const PASS_ON: bool = true;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.q.try_get() {
            Err(GetError::Empty) => None,
            r => Some(r),
        }
    }

    fn parker(&self) -> &Parker {
        &self.q.hdr().wait.get
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        // A slot blocked by a dead claimer: recovered as the blocking form does.
        let (b, _) = self.q.blocker_at(&self.q.hdr().deq.pos)?;
        if self.q.recover(b) {
            self.attempt()
        } else {
            None
        }
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        let blocker = self.q.blocker_at(&self.q.hdr().deq.pos);
        blocker.map(|(_, pid)| (pid, 0)).into_iter().collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(GetError::Os(e))
    }
}

impl<T: bytemuck::Pod> Attempt for PutOp<'_, T> {
    type Output = Result<(), PutError<T>>;
    const PASS_ON: bool = true;

    fn attempt(&mut self) -> Option<Self::Output> {
        let item = self
            .item
            .take()
            .expect("PutAsync polled after it completed");
        match self.q.try_put(item) {
            Err(PutError::Full(item)) => {
                self.item = Some(item);
                None
            }
            r => Some(r),
        }
    }

    fn parker(&self) -> &Parker {
        &self.q.hdr().wait.put
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        let (b, _) = self.q.blocker_at(&self.q.hdr().enq.pos)?;
        if self.q.recover(b) {
            self.attempt()
        } else {
            None
        }
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        let blocker = self.q.blocker_at(&self.q.hdr().enq.pos);
        blocker.map(|(_, pid)| (pid, 0)).into_iter().collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        let item = self.item.take().expect("the item waits in the future");
        Err(PutError::Os(item, e))
    }
}

impl<T: bytemuck::Pod> Future for GetAsync<'_, T> {
    type Output = Result<T, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl<T: bytemuck::Pod> Future for PutAsync<'_, T> {
    type Output = Result<(), PutError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl<T: bytemuck::Pod> Drop for GetAsync<'_, T> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}

impl<T: bytemuck::Pod> Drop for PutAsync<'_, T> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}
