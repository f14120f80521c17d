//! The async forms of the ring's read and write ([`Ring::read_async`],
//! [`Ring::write_async`]): a child module of `ring` (it sleeps on the ring's parkers and
//! judges its peer slots).
//!
//! Each poll first tries the operation with the `try_` form the blocking calls start
//! with: a message (or space) that is there completes on the first poll without a
//! syscall. Otherwise the future announces itself on the parker the blocking form
//! would sleep on ([`Parker::announce`]), re-checks, and arms the floor's doorbell
//! ([`shmkit_sys::doorbell`]) on the parker's event word, naming the peer process
//! (the writer, for a reader) so that its death wakes the future. See the
//! [`future` module of shmkit-sync](shmkit_sync::future) for the helper threads and
//! their bound.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{ReadError, Ring, WriteError};
use shmkit_sys::parker::Parker;

use crate::async_wait::{Attempt, Waiting};
use crate::peer::{holder_pid, HolderWatch, PeerSlot, PeerState};

/// The peer process named in `slot` (pid, start time), if one holds the role.
fn peer_of(slot: &PeerSlot) -> Option<(u32, u64)> {
    let w = slot.word();
    (holder_pid(w) != 0).then(|| (holder_pid(w), w >> 32))
}

/// The future of [`Ring::read_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct ReadAsync<'a> {
    op: ReadOp<'a>,
    waiting: Waiting,
}

/// The read as [`Waiting::poll`] drives it.
struct ReadOp<'a> {
    ring: &'a mut Ring,
    buf: &'a mut Vec<u8>,
    /// The writer, judged when the doorbell says it may be gone.
    watch: HolderWatch,
}

/// The future of [`Ring::write_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAsync<'a> {
    op: WriteOp<'a>,
    waiting: Waiting,
}

/// The write as [`Waiting::poll`] drives it.
struct WriteOp<'a> {
    ring: &'a mut Ring,
    msg: &'a [u8],
    /// The reader, judged when the doorbell says it may be gone.
    watch: HolderWatch,
}

impl std::fmt::Debug for ReadAsync<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAsync")
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl std::fmt::Debug for WriteAsync<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteAsync")
            .field("len", &self.op.msg.len())
            .field("waiting", &self.waiting.announced)
            .finish()
    }
}

impl Ring {
    /// Reads the next message into `buf` (replacing its contents) and returns its
    /// length, as [`read_into`](Self::read_into) does, without blocking the thread:
    /// the future completes when a message arrives. A message already there
    /// completes it on the first poll, without a syscall.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is taken only by the poll that returns `Ready`; a
    /// dropped future leaves the next message in the ring for the next read (and
    /// `buf` unchanged), and withdraws its registration.
    ///
    /// # Errors
    /// As [`read_into`](Self::read_into): [`ReadError::Closed`] once the ring is
    /// closed and drained, [`ReadError::PeerDied`] when the writer died (after every
    /// complete message was read), [`ReadError::RoleTaken`], [`ReadError::Corrupt`],
    /// and [`ReadError::Os`] if the doorbell's helper thread could not be started.
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
    /// use shmkit_typed::Ring;
    ///
    /// let name = format!("shmkit-doc-ring-async-{}", std::process::id());
    /// let mut reader = Ring::create(&name, 4096)?;
    /// let mut writer = Ring::open(&name)?; // as another process would
    /// std::thread::scope(|s| {
    ///     s.spawn(move || writer.write(b"tick"));
    ///     // `block_on` stands for any executor (tokio's `block_on`, an `.await`).
    ///     let mut buf = Vec::new();
    ///     let n = block_on(reader.read_async(&mut buf))?;
    ///     assert_eq!(&buf[..n], b"tick");
    ///     Ok::<(), shmkit_typed::ReadError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_async<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadAsync<'a> {
        ReadAsync {
            op: ReadOp {
                ring: self,
                buf,
                watch: HolderWatch::new(),
            },
            waiting: Waiting::new(),
        }
    }

    /// Writes `msg` as one message, as [`write`](Self::write) does, without blocking
    /// the thread: the future completes when there is space. Space already there
    /// completes it on the first poll, without a syscall.
    ///
    /// # Cancel safety
    /// Cancel-safe: the message is written only by the poll that returns `Ready`; a
    /// dropped future wrote nothing, and withdraws its registration.
    ///
    /// # Errors
    /// As [`write`](Self::write): [`WriteError::ReaderLeft`],
    /// [`WriteError::PeerDied`] when the reader died, [`WriteError::RoleTaken`],
    /// [`WriteError::TooLarge`], and [`WriteError::Os`] if the doorbell's
    /// helper thread could not be started.
    pub fn write_async<'a>(&'a mut self, msg: &'a [u8]) -> WriteAsync<'a> {
        WriteAsync {
            op: WriteOp {
                ring: self,
                msg,
                watch: HolderWatch::new(),
            },
            waiting: Waiting::new(),
        }
    }

    /// Sleepers announced now on the ring's two parkers (waiting for data, waiting for
    /// space), blocking waiters and pending futures alike: a snapshot, for tests and
    /// diagnostics (0 and 0 once nobody waits).
    pub fn sleepers(&self) -> (u32, u32) {
        let h = self.hdr();
        (h.sleep.data.sleepers(), h.sleep.space.sleepers())
    }

    /// The reader's check of its writer once the doorbell says it may be gone.
    fn writer_gone(&mut self, watch: &mut HolderWatch) -> Option<ReadError> {
        let h = self.hdr();
        let word = h.meta.writer.word();
        match watch.state_of(self.segment(), &h.meta.writer, word) {
            PeerState::Died { pid } => Some(ReadError::PeerDied { pid }),
            PeerState::Left { .. } => Some(ReadError::Closed),
            PeerState::Vacant | PeerState::Attached { .. } => None,
        }
    }

    /// The writer's check of its reader once the doorbell says it may be gone.
    fn reader_gone(&mut self, watch: &mut HolderWatch) -> Option<WriteError> {
        let h = self.hdr();
        let word = h.meta.reader.word();
        match watch.state_of(self.segment(), &h.meta.reader, word) {
            PeerState::Died { pid } => Some(WriteError::PeerDied { pid }),
            PeerState::Left { count } => Some(WriteError::ReaderLeft {
                messages_read: count,
            }),
            PeerState::Vacant | PeerState::Attached { .. } => None,
        }
    }
}

impl Attempt for ReadOp<'_> {
    type Output = Result<usize, ReadError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.ring.try_read_into(self.buf) {
            Err(ReadError::Empty) => None,
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        &self.ring.hdr().sleep.data
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        let e = self.ring.writer_gone(&mut self.watch)?;
        // A dead writer commits nothing more: what it committed is read first.
        Some(self.attempt().unwrap_or(Err(e)))
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        peer_of(&self.ring.hdr().meta.writer).into_iter().collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(ReadError::Os(e))
    }
}

impl Attempt for WriteOp<'_> {
    type Output = Result<(), WriteError>;

    fn attempt(&mut self) -> Option<Self::Output> {
        match self.ring.try_write(self.msg) {
            Err(WriteError::Full) => None,
            done => Some(done),
        }
    }

    fn parker(&self) -> &Parker {
        &self.ring.hdr().sleep.space
    }

    fn check(&mut self, peer_may_be_gone: bool) -> Option<Self::Output> {
        if !peer_may_be_gone {
            return None;
        }
        let e = self.ring.reader_gone(&mut self.watch)?;
        Some(self.attempt().unwrap_or(Err(e)))
    }

    fn peers(&self) -> Vec<(u32, u64)> {
        peer_of(&self.ring.hdr().meta.reader).into_iter().collect()
    }

    fn os_error(&mut self, e: shmkit_sync::OsError) -> Self::Output {
        Err(WriteError::Os(e))
    }
}

impl Future for ReadAsync<'_> {
    type Output = Result<usize, ReadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl Drop for ReadAsync<'_> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}

impl Future for WriteAsync<'_> {
    type Output = Result<(), WriteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(&mut this.op, cx)
    }
}

impl Drop for WriteAsync<'_> {
    fn drop(&mut self) {
        self.waiting.drop_with(&self.op);
    }
}
