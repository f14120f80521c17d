//! The async forms of the topic's reads and write ([`Subscriber::read_into_async`],
//! [`Subscriber::read_async`], [`Subscriber::stream`],
//! [`TypedSubscriber::read_value_async`], [`Topic::write_async`]): a child module of
//! `topic` (it sleeps on the topic's parkers, judges the writer's slot and reaps dead
//! readers' slots).
//!
//! Each poll first tries the operation with the `try_` form the blocking calls start
//! with: a message (or room) that is there completes on the first poll without a
//! syscall and without the doorbell. Otherwise the future announces itself on the
//! parker the blocking form would sleep on (`data` for a reader, `space` for the
//! Block writer), re-checks, and arms the floor's doorbell ([`shmkit_sys::doorbell`])
//! on the parker's event word, naming the peer processes its wait depends on (the
//! writer, for a reader; the readers that hold it back, for the writer) so that their
//! death wakes it. The writer wakes every sleeping reader with one futex wake after
//! each publish, and a reader wakes the writer when it moves its cursor, as for the
//! blocking forms.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{
    value_of, Block, ReadError, Subscriber, Topic, TopicPolicy, TypedSubscriber, WriteError,
};
use shmkit_sys::parker::Parker;

use crate::async_wait::{Attempt, Waiting};
use crate::peer::{holder_pid, HolderWatch, PeerState};
use crate::shim::Ordering;

/// The state of a pending read: its announcement and interests, and its judge of the
/// writer's liveness.
struct ReadWait {
    waiting: Waiting,
    watch: HolderWatch,
}

impl ReadWait {
    fn new() -> Self {
        ReadWait {
            waiting: Waiting::new(),
            watch: HolderWatch::new(),
        }
    }
}

/// The future of [`Subscriber::read_into_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct ReadIntoAsync<'a, 't, P: TopicPolicy = Block> {
    sub: &'a mut Subscriber<'t, P>,
    buf: &'a mut Vec<u8>,
    wait: ReadWait,
}

/// The future of [`Subscriber::read_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct ReadAsync<'a, 't, P: TopicPolicy = Block> {
    sub: &'a mut Subscriber<'t, P>,
    wait: ReadWait,
}

/// The messages of a topic as a [`Stream`](futures_core::Stream): see
/// [`Subscriber::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct MessageStream<'a, 't, P: TopicPolicy = Block> {
    sub: &'a mut Subscriber<'t, P>,
    wait: ReadWait,
    done: bool,
}

/// The future of [`TypedSubscriber::read_value_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct ReadValueAsync<'a, 't, T: bytemuck::Pod, P: TopicPolicy = Block> {
    sub: &'a mut TypedSubscriber<'t, T, P>,
    wait: ReadWait,
}

/// The future of [`Topic::write_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAsync<'a, P: TopicPolicy = Block> {
    op: WriteOp<'a, P>,
    waiting: Waiting,
}

impl<P: TopicPolicy> std::fmt::Debug for ReadIntoAsync<'_, '_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadIntoAsync")
            .field("waiting", &self.wait.waiting.announced)
            .finish()
    }
}

impl<P: TopicPolicy> std::fmt::Debug for ReadAsync<'_, '_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAsync")
            .field("waiting", &self.wait.waiting.announced)
            .finish()
    }
}

impl<P: TopicPolicy> std::fmt::Debug for MessageStream<'_, '_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream")
            .field("done", &self.done)
            .finish()
    }
}

impl<T: bytemuck::Pod, P: TopicPolicy> std::fmt::Debug for ReadValueAsync<'_, '_, T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadValueAsync")
            .field("waiting", &self.wait.waiting.announced)
            .finish()
    }
}

impl<P: TopicPolicy> std::fmt::Debug for WriteAsync<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteAsync")
            .field("len", &self.op.msg.len())
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl<'t, P: TopicPolicy> Subscriber<'t, P> {
    /// Reads the next message into `buf` (replacing its contents) and returns its
    /// length, as [`read_into`](Self::read_into) does, without blocking the thread:
    /// the future completes when a message is published. A message already there
    /// completes it on the first poll, without a syscall.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is consumed (the reader's cursor moves past it) only by
    /// the poll that returns `Ready`; a dropped future leaves the next message for the
    /// next read (and `buf` unchanged), and withdraws its registration. The writer
    /// wakes every sleeping reader at once, so a dropped future swallows no wake-up
    /// another reader needed.
    ///
    /// # Errors
    /// As [`read_into`](Self::read_into): [`ReadError::Closed`] once the topic is
    /// closed (or its writer left) and drained, [`ReadError::PeerDied`] when the
    /// writer died (after every complete message was read), [`ReadError::Lagged`]
    /// (Overwrite), [`ReadError::Corrupt`], and [`ReadError::Os`] if the doorbell's
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
    /// use shmkit_typed::topic::{Block, Topic, TopicConfig};
    ///
    /// let mut writer = Topic::<Block>::anonymous(TopicConfig::new(4096))?;
    /// let handle = writer.reader_handle()?; // as another process would open it
    /// let mut sub = handle.subscribe()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(move || writer.write(b"tick"));
    ///     // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    ///     let mut buf = Vec::new();
    ///     let n = block_on(sub.read_into_async(&mut buf))?;
    ///     assert_eq!(&buf[..n], b"tick");
    ///     Ok::<(), shmkit_typed::topic::ReadError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_into_async<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadIntoAsync<'a, 't, P> {
        ReadIntoAsync {
            sub: self,
            buf,
            wait: ReadWait::new(),
        }
    }

    /// Reads the next message as a new `Vec`, as
    /// [`read_into_async`](Self::read_into_async) does.
    ///
    /// # Cancel safety
    /// As [`read_into_async`](Self::read_into_async): a dropped future consumed
    /// nothing.
    ///
    /// # Errors
    /// As [`read_into_async`](Self::read_into_async).
    pub fn read_async(&mut self) -> ReadAsync<'_, 't, P> {
        ReadAsync {
            sub: self,
            wait: ReadWait::new(),
        }
    }

    /// The messages as a [`Stream`](futures_core::Stream) of `Vec<u8>`: each item is
    /// what [`read_async`](Self::read_async) returns. The stream ends after
    /// [`ReadError::Closed`] (not yielded); [`ReadError::Lagged`] (Overwrite) is
    /// yielded and the stream goes on from the oldest message still there (as
    /// `tokio_stream::wrappers::BroadcastStream` does); after any other error the
    /// stream yields it and ends.
    ///
    /// # Cancel safety
    /// As [`read_into_async`](Self::read_into_async): a `next()` that is dropped
    /// consumed nothing.
    pub fn stream(&mut self) -> MessageStream<'_, 't, P> {
        MessageStream {
            sub: self,
            wait: ReadWait::new(),
            done: false,
        }
    }

    /// One poll of a read: see the module docs.
    fn poll_read(
        &mut self,
        buf: &mut Vec<u8>,
        w: &mut ReadWait,
        cx: &Context<'_>,
    ) -> Poll<Result<usize, ReadError>> {
        let ReadWait { waiting, watch } = w;
        waiting.poll(
            &mut ReadOp {
                sub: self,
                buf,
                watch,
            },
            cx,
        )
    }

    fn drop_read(&self, w: &mut ReadWait) {
        // The writer wakes every sleeping reader: a wake this future swallowed was no
        // other reader's, so nothing is passed on.
        w.waiting.drop_on(&self.topic.hdr().sleep.data, false);
    }
}

/// A read as [`Waiting::poll`] drives it.
struct ReadOp<'s, 'b, 'w, 't, P: TopicPolicy> {
    sub: &'s mut Subscriber<'t, P>,
    buf: &'b mut Vec<u8>,
    watch: &'w mut HolderWatch,
}

impl<P: TopicPolicy> Attempt for ReadOp<'_, '_, '_, '_, P> {
    type Output = Result<usize, ReadError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.sub.try_read_into(self.buf) {
            Err(ReadError::Empty) => None,
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        &self.sub.topic.hdr().sleep.data
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        let topic = self.sub.topic;
        let writer = &topic.hdr().meta.writer;
        let word = writer.word();
        // One load: a writer that left without closing (another program's doing)
        // reads as closed, as in the blocking form.
        let end = if holder_pid(word) == 0 && writer.left_count().is_some() {
            ReadError::Closed
        } else if !peer_may_be_gone {
            return None;
        } else {
            match self.watch.state_of(topic.segment(), writer, word) {
                PeerState::Died { pid } => ReadError::PeerDied { pid },
                PeerState::Left { .. } => ReadError::Closed,
                PeerState::Vacant | PeerState::Attached { .. } => return None,
            }
        };
        // A writer gone publishes nothing more: what it published is read first (the
        // last look; it may have published after our re-check and before it went).
        Some(self.attempt().unwrap_or(Err(end)))
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        let word = self.sub.topic.hdr().meta.writer.word();
        (holder_pid(word) != 0)
            .then(|| (holder_pid(word), word >> 32))
            .into_iter()
            .collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(ReadError::Os(e))
    }
}

impl<'t, T: bytemuck::Pod, P: TopicPolicy> TypedSubscriber<'t, T, P> {
    /// The next value, as [`read_value`](Self::read_value) does, without blocking the
    /// thread (see [`Subscriber::read_into_async`]).
    ///
    /// # Cancel safety
    /// As [`Subscriber::read_into_async`]: a dropped future consumed nothing.
    ///
    /// # Errors
    /// As [`Subscriber::read_into_async`]; [`ReadError::Corrupt`] for a message of
    /// another size than `T`.
    pub fn read_value_async(&mut self) -> ReadValueAsync<'_, 't, T, P> {
        ReadValueAsync {
            sub: self,
            wait: ReadWait::new(),
        }
    }
}

impl<P: TopicPolicy> Future for ReadIntoAsync<'_, '_, P> {
    type Output = Result<usize, ReadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.sub.poll_read(this.buf, &mut this.wait, cx)
    }
}

impl<P: TopicPolicy> Future for ReadAsync<'_, '_, P> {
    type Output = Result<Vec<u8>, ReadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut buf = Vec::new();
        this.sub
            .poll_read(&mut buf, &mut this.wait, cx)
            .map(|r| r.map(|_| buf))
    }
}

impl<T: bytemuck::Pod, P: TopicPolicy> Future for ReadValueAsync<'_, '_, T, P> {
    type Output = Result<T, ReadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let TypedSubscriber { inner, buf, .. } = &mut *this.sub;
        inner
            .poll_read(buf, &mut this.wait, cx)
            .map(|r| r.and_then(|_| value_of(buf)))
    }
}

impl<P: TopicPolicy> futures_core::Stream for MessageStream<'_, '_, P> {
    type Item = Result<Vec<u8>, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut buf = Vec::new();
        match this.sub.poll_read(&mut buf, &mut this.wait, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => Poll::Ready(Some(Ok(buf))),
            Poll::Ready(Err(ReadError::Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e @ ReadError::Lagged(_))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl<P: TopicPolicy> Drop for ReadIntoAsync<'_, '_, P> {
    fn drop(&mut self) {
        self.sub.drop_read(&mut self.wait);
    }
}

impl<P: TopicPolicy> Drop for ReadAsync<'_, '_, P> {
    fn drop(&mut self) {
        self.sub.drop_read(&mut self.wait);
    }
}

impl<P: TopicPolicy> Drop for MessageStream<'_, '_, P> {
    fn drop(&mut self) {
        self.sub.drop_read(&mut self.wait);
    }
}

impl<T: bytemuck::Pod, P: TopicPolicy> Drop for ReadValueAsync<'_, '_, T, P> {
    fn drop(&mut self) {
        self.sub.inner.drop_read(&mut self.wait);
    }
}

impl<P: TopicPolicy> Topic<P> {
    /// Writes `msg` as one message, as [`write`](Self::write) does, without blocking
    /// the thread. Block: the future completes once the slowest live reader has made
    /// room (room already there completes it on the first poll, without a syscall);
    /// readers found dead while it waits lose their slot, as with the blocking form.
    /// Overwrite: never waits (the first poll completes it).
    ///
    /// # Cancel safety
    /// Cancel-safe: the message is published only by the poll that returns `Ready`; a
    /// dropped future published no message, and withdraws its registration. (It may
    /// have published a wrap marker, which readers skip and which carries no message:
    /// the next write continues after it with the same sequence number.)
    ///
    /// # Errors
    /// As [`write`](Self::write): [`WriteError::TooLarge`], [`WriteError::Closed`],
    /// [`WriteError::RoleTaken`], [`WriteError::Corrupt`], and [`WriteError::Os`] if
    /// the doorbell's helper thread could not be started.
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
    /// use shmkit_typed::topic::{Block, Topic, TopicConfig};
    ///
    /// let mut writer = Topic::<Block>::anonymous(TopicConfig::new(64))?;
    /// let handle = writer.reader_handle()?; // as another process would open it
    /// let mut sub = handle.subscribe()?;
    /// writer.write(&[7; 40])?; // the topic is full until `sub` reads it
    /// std::thread::scope(|s| {
    ///     s.spawn(move || sub.read_with(|m| m.len()));
    ///     // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    ///     block_on(writer.write_async(&[8; 40]))
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_async<'a>(&'a mut self, msg: &'a [u8]) -> WriteAsync<'a, P> {
        WriteAsync {
            op: WriteOp { topic: self, msg },
            waiting: Waiting::new(),
        }
    }

    /// Sleepers announced now on the topic's two parkers (readers waiting for data,
    /// the writer waiting for room), blocking waiters and pending futures alike: a
    /// snapshot, for tests and diagnostics (0 and 0 once nobody waits).
    pub fn sleepers(&self) -> (u32, u32) {
        let h = self.hdr();
        (h.sleep.data.sleepers(), h.sleep.space.sleepers())
    }

    /// The live reader processes other than this one that have not read everything
    /// published (pid, start time), each once: those a Block writer may wait for.
    fn lagging_reader_peers(&self) -> Vec<(u32, u64)> {
        let me = shmkit_sys::owner::current_pid();
        let mut out: Vec<(u32, u64)> = Vec::new();
        for line in self.lines() {
            let w = line.slot.word();
            let pid = holder_pid(w);
            // Relaxed: a hint of whom to watch; the room itself is judged by `scan`.
            let behind = line.cursor.load(Ordering::Relaxed) < self.tail;
            if pid != 0 && pid != me && behind && !out.iter().any(|k| k.0 == pid) {
                out.push((pid, w >> 32));
            }
        }
        out
    }
}

/// The write as [`Waiting::poll`] drives it.
struct WriteOp<'a, P: TopicPolicy> {
    topic: &'a mut Topic<P>,
    msg: &'a [u8],
}

impl<P: TopicPolicy> Attempt for WriteOp<'_, P> {
    type Output = Result<(), WriteError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.topic.try_write(self.msg) {
            Err(WriteError::Full) => None,
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        // One writer sleeps on `space`: a wake a dropped future swallowed was no one
        // else's, so nothing is passed on.
        &self.topic.hdr().sleep.space
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        // A reader process exited: free the slots of dead readers that hold us back,
        // as the blocking form does after a sleep slice.
        self.topic.reap_dead_readers(self.topic.cap);
        self.attempt()
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        self.topic.lagging_reader_peers()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(WriteError::Os(e))
    }
}

impl<P: TopicPolicy> Future for WriteAsync<'_, P> {
    type Output = Result<(), WriteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl<P: TopicPolicy> Drop for WriteAsync<'_, P> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}
