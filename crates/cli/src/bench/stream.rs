//! Byte-stream transports for the comparison: an anonymous pipe and a Unix stream socket.
//!
//! Both carry length-prefixed frames (`u32` little-endian length, then the payload).
//! The sender makes one `write` per message (a sender cannot batch without adding
//! latency); the receiver reads through a 256 KiB buffer, so many small messages cost
//! one `read`: the strongest fair baseline for a pipe.

use std::io::{self, BufReader, Read, Write};

use super::serde_msg::{postcard_len, BenchMessage, RecvFn, SendFn, SerdeLink};
use super::transport::{MsgReceiver, MsgSender};

/// Sending half of a framed byte stream.
pub struct StreamSender<W: Write> {
    out: W,
    frame: Vec<u8>,
}

impl<W: Write> StreamSender<W> {
    /// Wraps a writable stream.
    pub fn new(out: W) -> Self {
        StreamSender {
            out,
            frame: Vec::new(),
        }
    }
}

impl<W: Write> MsgSender for StreamSender<W> {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        let len32 = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
        self.frame.clear();
        self.frame.extend_from_slice(&len32.to_le_bytes());
        self.frame.resize(4 + len, 0);
        fill(&mut self.frame[4..]);
        self.out.write_all(&self.frame)
    }
}

/// Receiving half of a framed byte stream.
pub struct StreamReceiver<R: Read> {
    input: BufReader<R>,
    msg: Vec<u8>,
}

impl<R: Read> StreamReceiver<R> {
    /// Wraps a readable stream.
    pub fn new(input: R) -> Self {
        StreamReceiver {
            input: BufReader::with_capacity(256 * 1024, input),
            msg: Vec::new(),
        }
    }
}

impl<R: Read> MsgReceiver for StreamReceiver<R> {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        self.msg.resize(len, 0);
        self.input.read_exact(&mut self.msg)?;
        Ok(check(&self.msg))
    }
}

/// A pipe carrying serde messages with postcard (`pipe-serde`): each message is encoded
/// straight into the frame of a [`StreamSender`] (the format the channel uses, one
/// copy into the kernel and one out) and decoded from the [`StreamReceiver`]'s buffer.
pub struct PipeLink;

impl SerdeLink for PipeLink {
    fn link<M: BenchMessage>() -> io::Result<(SendFn<M>, RecvFn<M>)> {
        let (r, w) = io::pipe()?;
        let (mut tx, mut rx) = (StreamSender::new(w), StreamReceiver::new(r));
        let send = move |msg: M| {
            let len = postcard_len(&msg)?;
            let mut encoded = Ok(());
            tx.send_with(len, &mut |buf| {
                encoded = postcard::to_slice(&msg, buf).map(drop);
            })?;
            encoded.map_err(io::Error::other)
        };
        let recv = move || {
            let mut msg = None;
            rx.recv_with(&mut |bytes| {
                msg = Some(postcard::from_bytes::<M>(bytes));
                true
            })?;
            msg.expect("recv_with calls back once")
                .map_err(io::Error::other)
        };
        Ok((Box::new(send), Box::new(recv)))
    }
}
