//! ipc-channel as harness channels: its byte channel (`ipc-channel`) and its typed
//! channel carrying the serde structs of `shmkit_cli::bench::serde_msg`
//! (`ipc-channel-serde`, the row beside `channel-serde`: the same structs, built and
//! checked by the same code). Its ends are file descriptors (a Unix socket pair), so a
//! channel made before the fork works in both processes.
//!
//! The sender fills a reusable buffer and hands it to `IpcBytesSender::send` (one
//! copy into the socket); the receiver gets each message as a new `Vec<u8>` from
//! `IpcBytesReceiver::recv`. Messages larger than the socket's buffer go through
//! ipc-channel's own fragmentation.

use std::io;

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender};
use shmkit_cli::bench::serde_msg::{BenchMessage, RecvFn, SendFn, SerdeLink};
use shmkit_cli::bench::{Channel, MsgReceiver, MsgSender};

struct IpcSender {
    tx: IpcBytesSender,
    buf: Vec<u8>,
}

impl MsgSender for IpcSender {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.buf.resize(len, 0);
        fill(&mut self.buf);
        self.tx.send(&self.buf)
    }
}

struct IpcReceiver {
    rx: IpcBytesReceiver,
}

impl MsgReceiver for IpcReceiver {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let msg = self
            .rx
            .recv()
            .map_err(|e| io::Error::other(format!("ipc-channel: receive: {e:?}")))?;
        Ok(check(&msg))
    }
}

/// A harness channel over a new ipc-channel byte channel.
pub fn channel(_size: usize) -> io::Result<Channel> {
    let (tx, rx) = ipc::bytes_channel()?;
    Ok(Channel {
        tx: Box::new(IpcSender {
            tx,
            buf: Vec::new(),
        }),
        rx: Box::new(IpcReceiver { rx }),
    })
}

/// ipc-channel's typed channel (`ipc::channel::<M>()`): `send` takes each message by
/// value and serialises it (bincode) into the socket; `recv` decodes a new one.
pub struct IpcLink;

impl SerdeLink for IpcLink {
    fn link<M: BenchMessage>() -> io::Result<(SendFn<M>, RecvFn<M>)> {
        let (tx, rx) = ipc::channel::<M>()?;
        let send = move |msg: M| {
            tx.send(msg)
                .map_err(|e| io::Error::other(format!("ipc-channel: send: {e:?}")))
        };
        let recv = move || {
            rx.recv()
                .map_err(|e| io::Error::other(format!("ipc-channel: receive: {e:?}")))
        };
        Ok((Box::new(send), Box::new(recv)))
    }
}
