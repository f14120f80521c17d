//! The async forms of the channel's send and receive ([`Channel::send_async`],
//! [`Channel::recv_async`], [`Channel::stream`]): a child module of `channel` (it
//! sleeps on the channel's parkers and reaps its registry).
//!
//! Each poll first tries the operation with the `try_` form: a message (or room) that
//! is there completes on the first poll without a syscall. Otherwise the future
//! announces itself on the parker the blocking form would sleep on, re-checks, and
//! arms the floor's doorbell ([`shmkit_sys::doorbell`]) on the parker's event word,
//! once per live process of the other side (the doorbell watches each process once,
//! however many futures name it). When one of those exits, the future reaps the
//! registry as the blocking forms do after a sleep slice, and frees a record the dead
//! process left half-written or half-read.
//!
//! The async methods take `&mut self` although the blocking ones take `&self`: a
//! handle is `Send` but not `Sync` (it caches its registry entry), and a future that
//! holds `&mut Channel` is `Send`, so it can be spawned on a multi-thread runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{st_tag, tag, Channel, RecvError, SendError, Side, TypeName};
use shmkit_sys::parker::Parker;

use crate::async_wait::{Attempt, Waiting};
use crate::shim::Ordering;

/// The future of [`Channel::recv_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvAsync<'a, T, N: TypeName> {
    ch: &'a mut Channel<T, N>,
    waiting: Waiting,
}

/// The future of [`Channel::send_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendAsync<'a, T, N: TypeName> {
    ch: &'a mut Channel<T, N>,
    msg: Option<T>,
    waiting: Waiting,
}

/// The messages of a channel as a [`Stream`](futures_core::Stream): see
/// [`Channel::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a, T, N: TypeName> {
    ch: &'a mut Channel<T, N>,
    waiting: Waiting,
    done: bool,
}

// The message is never pinned (it is moved in and out of the `Option` freely).
impl<T, N: TypeName> Unpin for SendAsync<'_, T, N> {}

impl<T, N: TypeName> std::fmt::Debug for RecvAsync<'_, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvAsync")
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<T, N: TypeName> std::fmt::Debug for SendAsync<'_, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAsync")
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<T, N: TypeName> std::fmt::Debug for RecvStream<'_, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("done", &self.done)
            .finish()
    }
}

impl<T, N: TypeName> Channel<T, N> {
    /// The live processes registered on `side` other than this one (pid, start time),
    /// each once.
    fn live_peers(&self, side: Side) -> Vec<(u32, u64)> {
        let me = shmkit_sys::owner::current_pid();
        let (peers, _, _) = self.side(side);
        let mut out: Vec<(u32, u64)> = Vec::new();
        for p in peers.iter() {
            let w = p.slot.word();
            let pid = crate::peer::holder_pid(w);
            if pid != 0 && pid != me && !out.iter().any(|k| k.0 == pid) {
                out.push((pid, w >> 32));
            }
        }
        out
    }

    /// After a peer of `side` exited: reaps dead entries (so a side with no live
    /// process left reads as gone) and frees the record at `pos` if a dead process
    /// holds it, as the blocking forms do after a sleep slice.
    fn recover_after_death(&self, side: Side, pos: &crate::shim::AtomicU64) {
        let _ = self.gone(side, true);
        // Relaxed/Acquire: as in the blocking forms' snapshot.
        let p = pos.load(Ordering::Relaxed);
        let w = self.word(p).load(Ordering::Acquire);
        if st_tag(w) == tag(p) {
            let _ = self.unstick(p, w);
        }
    }
}

impl<T: Serialize + DeserializeOwned, N: TypeName> Channel<T, N> {
    /// Receives a message, as [`recv`](Self::recv) does, without blocking the thread.
    /// A message already there completes the future on its first poll, without a
    /// syscall. Takes `&mut self` so that the future is `Send` (see the handle's
    /// [`Send`]-but-not-`Sync` note in the module docs): give each task its own handle
    /// ([`Clone`]).
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is claimed only by the poll that returns `Ready`; a
    /// dropped future leaves every message for the other receivers, passes on a
    /// wake-up it swallowed, and withdraws its registration.
    ///
    /// # Errors
    /// As [`recv`](Self::recv): [`RecvError::Disconnected`] once every sender is gone
    /// (left, or killed) and the channel is drained, and the rest; [`RecvError::Os`]
    /// if the doorbell's helper thread could not be started.
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
    /// use shmkit_typed::Channel;
    ///
    /// let mut rx = Channel::<String>::anonymous(4096)?;
    /// let tx = rx.clone(); // as another process would open it
    /// std::thread::spawn(move || tx.send("job".to_string()));
    /// // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    /// assert_eq!(block_on(rx.recv_async())?, "job");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_async(&mut self) -> RecvAsync<'_, T, N> {
        RecvAsync {
            ch: self,
            waiting: Waiting::new(),
        }
    }

    /// Sends `msg`, as [`send`](Self::send) does, without blocking the thread. Room
    /// already there completes the future on its first poll, without a syscall.
    ///
    /// # Cancel safety
    /// A dropped future sent nothing (`msg` is dropped with it), and withdraws its
    /// registration.
    ///
    /// # Errors
    /// As [`send`](Self::send), with the message; [`SendError::Os`] if the doorbell's
    /// helper thread could not be started.
    pub fn send_async(&mut self, msg: T) -> SendAsync<'_, T, N> {
        SendAsync {
            ch: self,
            msg: Some(msg),
            waiting: Waiting::new(),
        }
    }

    /// The received messages as a [`Stream`](futures_core::Stream): each item is what
    /// [`recv_async`](Self::recv_async) returns; the stream ends after
    /// [`RecvError::Disconnected`] (not yielded) and after yielding any other error.
    ///
    /// # Cancel safety
    /// As [`recv_async`](Self::recv_async): a `next()` that is dropped takes nothing.
    pub fn stream(&mut self) -> RecvStream<'_, T, N> {
        RecvStream {
            ch: self,
            waiting: Waiting::new(),
            done: false,
        }
    }

    fn poll_recv(&self, w: &mut Waiting, cx: &Context<'_>) -> Poll<Result<T, RecvError>> {
        w.poll(&mut RecvOp(self), cx)
    }

    fn poll_send(
        &self,
        w: &mut Waiting,
        msg: &mut Option<T>,
        cx: &Context<'_>,
    ) -> Poll<Result<(), SendError<T>>> {
        w.poll(&mut SendOp { ch: self, msg }, cx)
    }
}

/// A receive as [`Waiting::poll`] drives it.
struct RecvOp<'c, T, N: TypeName>(&'c Channel<T, N>);

/// A send as [`Waiting::poll`] drives it: the message waits in the future's `Option`
/// (`None` once sent or handed back in an error).
struct SendOp<'c, 'm, T, N: TypeName> {
    ch: &'c Channel<T, N>,
    msg: &'m mut Option<T>,
}

impl<T: Serialize + DeserializeOwned, N: TypeName> Attempt for RecvOp<'_, T, N> {
    type Output = Result<T, RecvError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.0.try_recv() {
            Err(RecvError::Empty) => None,
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        &self.0.hdr().wait.data
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        self.0.recover_after_death(Side::Tx, &self.0.hdr().read.pos);
        self.attempt()
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        self.0.live_peers(Side::Tx)
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(RecvError::Os(e))
    }
}

impl<T: Serialize + DeserializeOwned, N: TypeName> Attempt for SendOp<'_, '_, T, N> {
    type Output = Result<(), SendError<T>>;

    fn attempt(&mut self) -> Option<Self::Output> {
        let m = self
            .msg
            .take()
            .expect("SendAsync polled after it completed");
        match self.ch.try_send(m) {
            Err(SendError::Full(m)) => {
                *self.msg = Some(m);
                None
            }
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        &self.ch.hdr().wait.space
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        self.ch
            .recover_after_death(Side::Rx, &self.ch.hdr().head.pos);
        self.attempt()
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        self.ch.live_peers(Side::Rx)
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        let m = self.msg.take().expect("the message waits in the future");
        Err(SendError::Os(m, e))
    }
}

impl<T: Serialize + DeserializeOwned, N: TypeName> Future for RecvAsync<'_, T, N> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.ch.poll_recv(&mut this.waiting, cx)
    }
}

impl<T: Serialize + DeserializeOwned, N: TypeName> Future for SendAsync<'_, T, N> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.ch.poll_send(&mut this.waiting, &mut this.msg, cx)
    }
}

impl<T: Serialize + DeserializeOwned, N: TypeName> futures_core::Stream for RecvStream<'_, T, N> {
    type Item = Result<T, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.ch.poll_recv(&mut this.waiting, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(m)) => Poll::Ready(Some(Ok(m))),
            Poll::Ready(Err(RecvError::Disconnected)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

// Dropped pending futures: a wake-up one swallowed goes to another receiver (sender).
// `drop_on`, not `drop_with`: the future types do not carry the bounds of their
// `Attempt`s.

impl<T, N: TypeName> Drop for RecvAsync<'_, T, N> {
    fn drop(&mut self) {
        self.waiting.drop_on(&self.ch.hdr().wait.data, true);
    }
}

impl<T, N: TypeName> Drop for RecvStream<'_, T, N> {
    fn drop(&mut self) {
        self.waiting.drop_on(&self.ch.hdr().wait.data, true);
    }
}

impl<T, N: TypeName> Drop for SendAsync<'_, T, N> {
    fn drop(&mut self) {
        self.waiting.drop_on(&self.ch.hdr().wait.space, true);
    }
}
