//! shmkit's own transports for the comparison: the ring, the queue, the channel and
//! the topic.
//!
//! Both are made in anonymous shared memory before the `fork`; parent and child each
//! use their inherited copy of the one handle (the sending half in one process, the
//! receiving half in the other), which is how a ring or queue is shared with a forked
//! child.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use shmkit_typed::topic::{Block, Subscriber, Topic, TopicConfig};
use shmkit_typed::{Queue, Ring};

/// The channel's message type in the benchmark (its bytes path carries the bytes).
type ByteChannel = shmkit_typed::Channel<Vec<u8>>;

use super::serde_msg::{BenchMessage, RecvFn, SendFn, SerdeLink};
use super::transport::{Channel, MsgReceiver, MsgSender, Transport};

/// Ring data capacity: 4 MiB, twice the largest benchmark message and well above L2.
const RING_CAPACITY: usize = 4 << 20;
/// Topic data capacity: as the ring's.
const TOPIC_CAPACITY: usize = 4 << 20;
/// Channel data capacity: as the ring's.
const CHANNEL_CAPACITY: usize = 4 << 20;
/// Queue capacity in bytes of items (the item count follows from the size).
const QUEUE_BYTES: usize = 4 << 20;

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

struct RingEnd(Rc<RefCell<Ring>>);

impl MsgSender for RingEnd {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.0.borrow_mut().write_with(len, fill).map_err(other)
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn batches(&self) -> bool {
        true
    }

    fn send_batch(
        &mut self,
        len: usize,
        count: usize,
        fill: &mut dyn FnMut(&mut [u8], usize),
    ) -> io::Result<()> {
        let mut ring = self.0.borrow_mut();
        let mut batch = ring.write_batch(count).map_err(other)?;
        for i in 0..count {
            batch.write_with(len, |buf| fill(buf, i)).map_err(other)?;
        }
        Ok(())
    }
}

impl MsgReceiver for RingEnd {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        self.0.borrow_mut().read_with(check).map_err(other)
    }

    fn recv_batch(&mut self, max: usize, check: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        self.0.borrow_mut().read_batch(max, check).map_err(other)
    }
}

/// Either end of a channel: the bytes path, written and read in place (zero-copy, as
/// the ring's ends).
struct ChannelEnd(Rc<ByteChannel>);

impl MsgSender for ChannelEnd {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.0.send_with(len, fill).map_err(other)
    }
}

impl MsgReceiver for ChannelEnd {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        self.0.recv_with(check).map_err(other)
    }
}

/// The writing end of a topic.
struct TopicTx(Topic<Block>);

impl MsgSender for TopicTx {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.0.write_with(len, fill).map_err(other)
    }
}

self_cell::self_cell!(
    /// The reading end of a topic: its own handle, and the subscriber borrowing it
    /// once [`MsgReceiver::attach`] has joined.
    struct TopicRx {
        owner: Topic<Block>,
        #[covariant]
        dependent: MaybeSubscriber,
    }
);

type MaybeSubscriber<'a> = Option<Subscriber<'a, Block>>;

impl MsgReceiver for TopicRx {
    fn attach(&mut self) -> io::Result<()> {
        self.with_dependent_mut(|topic, sub| {
            if sub.is_none() {
                *sub = Some(topic.subscribe().map_err(other)?);
            }
            Ok(())
        })
    }

    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        self.with_dependent_mut(|_, sub| match sub {
            Some(sub) => sub.read_with(check).map_err(other),
            None => Err(io::Error::other("the topic's receiver was not attached")),
        })
    }
}

/// shmkit's channel carrying serde messages (`channel-serde`): `send` encodes each
/// into its record, `recv` decodes it out of the record (postcard).
pub struct ChannelLink;

impl SerdeLink for ChannelLink {
    fn link<M: BenchMessage>() -> io::Result<(SendFn<M>, RecvFn<M>)> {
        let tx = Rc::new(shmkit_typed::Channel::<M>::anonymous(CHANNEL_CAPACITY).map_err(other)?);
        let rx = tx.clone();
        let send = move |msg: M| tx.send(msg).map_err(|e| io::Error::other(e.to_string()));
        let recv = move || rx.recv().map_err(other);
        Ok((Box::new(send), Box::new(recv)))
    }
}

struct QueueEnd<const N: usize> {
    queue: Rc<Queue<[u8; N]>>,
    item: Box<[u8; N]>,
}

impl<const N: usize> MsgSender for QueueEnd<N> {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        debug_assert_eq!(len, N);
        fill(&mut self.item[..]);
        self.queue
            .put(*self.item)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl<const N: usize> MsgReceiver for QueueEnd<N> {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let item = self.queue.get().map_err(other)?;
        Ok(check(&item[..]))
    }
}

fn queue_channel<const N: usize>() -> io::Result<Channel> {
    let capacity = (QUEUE_BYTES / N).next_power_of_two().max(4);
    let queue = Rc::new(Queue::<[u8; N]>::anonymous(capacity).map_err(other)?);
    Ok(Channel {
        tx: Box::new(QueueEnd {
            queue: queue.clone(),
            item: bytemuck::zeroed_box(),
        }),
        rx: Box::new(QueueEnd {
            queue,
            item: bytemuck::zeroed_box(),
        }),
    })
}

/// Makes a ring or queue channel for `size`-byte messages.
pub fn channel(transport: Transport, size: usize) -> io::Result<Channel> {
    match transport {
        Transport::Ring => {
            let ring = Rc::new(RefCell::new(Ring::anonymous(RING_CAPACITY).map_err(other)?));
            Ok(Channel {
                tx: Box::new(RingEnd(ring.clone())),
                rx: Box::new(RingEnd(ring)),
            })
        }
        Transport::Channel => {
            let ch = Rc::new(ByteChannel::anonymous(CHANNEL_CAPACITY).map_err(other)?);
            Ok(Channel {
                tx: Box::new(ChannelEnd(ch.clone())),
                rx: Box::new(ChannelEnd(ch)),
            })
        }
        Transport::Topic => {
            let config = TopicConfig::new(TOPIC_CAPACITY).max_readers(1);
            let topic = Topic::<Block>::anonymous(config).map_err(other)?;
            let reader = topic.reader_handle().map_err(other)?;
            Ok(Channel {
                tx: Box::new(TopicTx(topic)),
                rx: Box::new(TopicRx::new(reader, |_| None)),
            })
        }
        Transport::Queue => match size {
            8 => queue_channel::<8>(),
            64 => queue_channel::<64>(),
            1024 => queue_channel::<1024>(),
            4096 => queue_channel::<4096>(),
            65536 => queue_channel::<65536>(),
            1048576 => queue_channel::<1048576>(),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the queue carries fixed-size items; the benchmark has items of 8, 64, 1024, 4096, 65536 and 1048576 bytes, not {size}"
                ),
            )),
        },
        _ => unreachable!("stream transports are made in transport.rs"),
    }
}
