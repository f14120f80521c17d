//! The small trait every transport implements, so shmkit and the baselines run the
//! same harness (the approach of parking_lot's mutex benchmark).

use std::io;

/// Sends messages; `fill` writes the message into the buffer it is given (for shmkit's
/// ring that buffer is the shared memory itself: zero-copy).
pub trait MsgSender {
    /// Sends one message of `len` bytes, filled in place by `fill`.
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()>;
    /// Flushes and tells the receiver no more messages come (default: nothing to do).
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether [`MsgSender::send_batch`] publishes a batch together (default: no; the
    /// harness measures batched throughput only for transports that do).
    fn batches(&self) -> bool {
        false
    }
    /// Sends `count` messages of `len` bytes as one batch, published together where the
    /// transport can; `fill(buf, i)` fills the `i`-th. The default sends them one by
    /// one.
    fn send_batch(
        &mut self,
        len: usize,
        count: usize,
        fill: &mut dyn FnMut(&mut [u8], usize),
    ) -> io::Result<()> {
        for i in 0..count {
            self.send_with(len, &mut |buf| fill(buf, i))?;
        }
        Ok(())
    }
}

/// Receives messages; `check` verifies one message in place and returns whether it is
/// the expected one.
pub trait MsgReceiver {
    /// Joins the transport in the process that will receive, before the sender sends
    /// its first message (a topic's subscriber sees only what is sent after it joins).
    /// Default: nothing to do.
    fn attach(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Receives one message and returns what `check` said of it.
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool>;
    /// Receives what is there, at least one message and at most `max`, releasing them
    /// together; returns how many (each was given to `check`, which records its own
    /// verdicts). The default receives one.
    fn recv_batch(&mut self, max: usize, check: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        let _ = max;
        self.recv_with(&mut |m| {
            check(m);
            true
        })?;
        Ok(1)
    }
}

/// The transports `shmkit bench` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// shmkit's SPSC byte ring (`shmkit_typed::Ring`).
    Ring,
    /// shmkit's MPMC queue of fixed-size items (`shmkit_typed::Queue`).
    Queue,
    /// shmkit's MPMC serde channel (`shmkit_typed::Channel`), its bytes path
    /// (`send_with` / `recv_with`: in place, no encoding).
    Channel,
    /// The same channel carrying serde structs (`send`/`recv`: postcard-encoded into
    /// the record, decoded out of it): see [`serde_msg`](super::serde_msg) for the
    /// message of each size.
    ChannelSerde,
    /// shmkit's broadcast topic (`shmkit_typed::topic::Topic<Block>`, lossless) with one
    /// subscriber, written and read in place.
    Topic,
    /// An anonymous pipe.
    Pipe,
    /// The pipe carrying the same serde structs in the same format (postcard): a
    /// message serialised into the frame, copied through the kernel, decoded.
    PipeSerde,
    /// A Unix stream socket pair.
    UnixSocket,
    /// The floor: a minimal spin ring over the same kind of mapping (see
    /// [`floor`](super::floor)); every other row is also given as a ratio to it.
    Floor,
}

impl Transport {
    /// Every transport, in table order.
    pub const ALL: [Transport; 9] = [
        Transport::Ring,
        Transport::Queue,
        Transport::Channel,
        Transport::ChannelSerde,
        Transport::Topic,
        Transport::Pipe,
        Transport::PipeSerde,
        Transport::UnixSocket,
        Transport::Floor,
    ];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ring => "ring",
            Transport::Queue => "queue",
            Transport::Channel => "channel",
            Transport::ChannelSerde => "channel-serde",
            Transport::Topic => "topic",
            Transport::Pipe => "pipe",
            Transport::PipeSerde => "pipe-serde",
            Transport::UnixSocket => "unix-socket",
            Transport::Floor => "floor",
        }
    }

    /// This transport as a harness case (its name and [`channel`]).
    pub fn case(self) -> super::Case {
        super::Case {
            name: self.name(),
            channel: match self {
                Transport::Ring => |size| channel(Transport::Ring, size),
                Transport::Queue => |size| channel(Transport::Queue, size),
                Transport::Channel => |size| channel(Transport::Channel, size),
                Transport::ChannelSerde => |size| channel(Transport::ChannelSerde, size),
                Transport::Topic => |size| channel(Transport::Topic, size),
                Transport::Pipe => |size| channel(Transport::Pipe, size),
                Transport::PipeSerde => |size| channel(Transport::PipeSerde, size),
                Transport::UnixSocket => |size| channel(Transport::UnixSocket, size),
                Transport::Floor => |size| channel(Transport::Floor, size),
            },
        }
    }
}

/// A one-way channel: the sending half stays in one process, the receiving half goes to
/// the other after `fork`.
pub struct Channel {
    /// The sending half.
    pub tx: Box<dyn MsgSender>,
    /// The receiving half.
    pub rx: Box<dyn MsgReceiver>,
}

/// Makes a channel of `transport` able to carry messages of `size` bytes.
pub fn channel(transport: Transport, size: usize) -> io::Result<Channel> {
    use super::serde_msg::serde_channel;
    use super::stream::{PipeLink, StreamReceiver, StreamSender};
    match transport {
        Transport::PipeSerde => serde_channel::<PipeLink>(size),
        Transport::ChannelSerde => serde_channel::<super::shm::ChannelLink>(size),
        Transport::Pipe => {
            let (r, w) = std::io::pipe()?;
            Ok(Channel {
                tx: Box::new(StreamSender::new(w)),
                rx: Box::new(StreamReceiver::new(r)),
            })
        }
        Transport::UnixSocket => {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            Ok(Channel {
                tx: Box::new(StreamSender::new(a)),
                rx: Box::new(StreamReceiver::new(b)),
            })
        }
        Transport::Ring | Transport::Queue | Transport::Channel | Transport::Topic => {
            super::shm::channel(transport, size)
        }
        Transport::Floor => super::floor::channel(size),
    }
}
