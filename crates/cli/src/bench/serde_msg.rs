//! The serde messages of the channel comparison: the same structs, made and checked the
//! same way, go through shmkit's [`Channel<T>`](shmkit_typed::Channel) (`channel-serde`),
//! through a pipe encoded with the same format (`pipe-serde`: serialise + copy through
//! the kernel) and, in benches/peers, through ipc-channel's typed channel.
//!
//! A harness message of `size` bytes (see [`Pattern`](super::Pattern)) maps to one
//! message type, chosen by [`serde_channel`]:
//! - 64 B: [`Small`] `{ id: u64, name: String, data: Vec<u8> /* 40 B */ }`;
//! - 1 KiB: [`Record`] `{ id, name: String /* 24 B */, values: Vec<u64> /* 32 */,
//!   data: Vec<u8> /* 736 B */ }`;
//! - any other size: a `Vec<u8>` of that many bytes (64 KiB in the comparison).
//!
//! The fields are cut from the harness's bytes (the sequence number is the `id`, the
//! template's bytes the rest; the template is ASCII, so a name is valid UTF-8), and the
//! receiver puts them back together for the harness's check: every byte of every
//! message is verified, as for the byte transports. Each send builds a new message
//! (its `String` and `Vec`s), as an application does, and each transport takes it by
//! value; each receive decodes a new one. No `serde_bytes`: a `Vec<u8>` field is
//! encoded as serde encodes it by default (a sequence of `u8`), for every transport.

use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::transport::{Channel, MsgReceiver, MsgSender};

/// The ~64 B message: 8 + 16 + 40 bytes of fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Small {
    /// The message's sequence number.
    pub id: u64,
    /// 16 ASCII characters.
    pub name: String,
    /// 40 bytes.
    pub data: Vec<u8>,
}

/// The 1 KiB message: 8 + 24 + 32 × 8 + 736 bytes of fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The message's sequence number.
    pub id: u64,
    /// 24 ASCII characters.
    pub name: String,
    /// 32 numbers.
    pub values: Vec<u64>,
    /// 736 bytes.
    pub data: Vec<u8>,
}

/// A message the comparison sends: made from the harness's bytes, and turned back into
/// them for its check.
pub trait BenchMessage: Serialize + DeserializeOwned + 'static {
    /// A new message of the harness's `len` bytes, which `fill` writes (`scratch` is
    /// the sender's buffer for them).
    fn build(len: usize, scratch: &mut Vec<u8>, fill: &mut dyn FnMut(&mut [u8])) -> Self;
    /// What `check` says of this message's bytes (put together in `scratch`).
    fn verify(&self, scratch: &mut Vec<u8>, check: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

fn fill_scratch<'a>(
    len: usize,
    scratch: &'a mut Vec<u8>,
    fill: &mut dyn FnMut(&mut [u8]),
) -> &'a [u8] {
    scratch.resize(len, 0);
    fill(scratch);
    scratch
}

fn id_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Bytes that are not UTF-8 (never from the harness's ASCII template) become U+FFFD
/// and fail the receiver's check.
fn name_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl BenchMessage for Small {
    fn build(len: usize, scratch: &mut Vec<u8>, fill: &mut dyn FnMut(&mut [u8])) -> Self {
        assert_eq!(len, 64, "Small carries 64 bytes");
        let b = fill_scratch(len, scratch, fill);
        Small {
            id: id_of(b),
            name: name_of(&b[8..24]),
            data: b[24..].to_vec(),
        }
    }

    fn verify(&self, scratch: &mut Vec<u8>, check: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        scratch.clear();
        scratch.extend_from_slice(&self.id.to_le_bytes());
        scratch.extend_from_slice(self.name.as_bytes());
        scratch.extend_from_slice(&self.data);
        check(scratch)
    }
}

impl BenchMessage for Record {
    fn build(len: usize, scratch: &mut Vec<u8>, fill: &mut dyn FnMut(&mut [u8])) -> Self {
        assert_eq!(len, 1024, "Record carries 1024 bytes");
        let b = fill_scratch(len, scratch, fill);
        Record {
            id: id_of(b),
            name: name_of(&b[8..32]),
            values: b[32..288].chunks_exact(8).map(id_of).collect(),
            data: b[288..].to_vec(),
        }
    }

    fn verify(&self, scratch: &mut Vec<u8>, check: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        scratch.clear();
        scratch.extend_from_slice(&self.id.to_le_bytes());
        scratch.extend_from_slice(self.name.as_bytes());
        for v in &self.values {
            scratch.extend_from_slice(&v.to_le_bytes());
        }
        scratch.extend_from_slice(&self.data);
        check(scratch)
    }
}

impl BenchMessage for Vec<u8> {
    fn build(len: usize, _: &mut Vec<u8>, fill: &mut dyn FnMut(&mut [u8])) -> Self {
        let mut v = vec![0; len];
        fill(&mut v);
        v
    }

    fn verify(&self, _: &mut Vec<u8>, check: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        check(self)
    }
}

/// Sends messages of type `M` (by value, as ipc-channel's `send` and the channel's
/// `send` take them).
pub type SendFn<M> = Box<dyn FnMut(M) -> io::Result<()>>;
/// Receives a message of type `M`.
pub type RecvFn<M> = Box<dyn FnMut() -> io::Result<M>>;

/// A transport of serde messages: how to make a one-way link for messages of any
/// [`BenchMessage`] type (made before the fork, as a harness [`Channel`]).
pub trait SerdeLink {
    /// A new link for messages of type `M`.
    fn link<M: BenchMessage>() -> io::Result<(SendFn<M>, RecvFn<M>)>;
}

struct SerdeTx<M> {
    send: SendFn<M>,
    scratch: Vec<u8>,
}

impl<M: BenchMessage> MsgSender for SerdeTx<M> {
    fn send_with(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        let msg = M::build(len, &mut self.scratch, fill);
        (self.send)(msg)
    }
}

struct SerdeRx<M> {
    recv: RecvFn<M>,
    scratch: Vec<u8>,
}

impl<M: BenchMessage> MsgReceiver for SerdeRx<M> {
    fn recv_with(&mut self, check: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let msg = (self.recv)()?;
        Ok(msg.verify(&mut self.scratch, check))
    }
}

fn typed<L: SerdeLink, M: BenchMessage>() -> io::Result<Channel> {
    let (send, recv) = L::link::<M>()?;
    Ok(Channel {
        tx: Box::new(SerdeTx {
            send,
            scratch: Vec::new(),
        }),
        rx: Box::new(SerdeRx {
            recv,
            scratch: Vec::new(),
        }),
    })
}

/// A harness channel of `L` carrying the message type of `size` (see the module docs):
/// the `channel` of a harness [`Case`](super::Case).
pub fn serde_channel<L: SerdeLink>(size: usize) -> io::Result<Channel> {
    match size {
        64 => typed::<L, Small>(),
        1024 => typed::<L, Record>(),
        _ => typed::<L, Vec<u8>>(),
    }
}

/// The size of `msg` encoded with postcard (the format of the channel and `pipe-serde`).
pub fn postcard_len<M: Serialize>(msg: &M) -> io::Result<usize> {
    postcard::serialize_with_flavor::<M, _, usize>(msg, postcard::ser_flavors::Size::default())
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Pattern;

    fn roundtrip<M: BenchMessage>(size: usize) {
        let p = Pattern::new(size);
        let mut scratch = Vec::new();
        let m = M::build(size, &mut scratch, &mut |b| p.fill(b, 7));
        let mut bytes = vec![0; postcard_len(&m).expect("sizes")];
        postcard::to_slice(&m, &mut bytes).expect("encodes");
        let back: M = postcard::from_bytes(&bytes).expect("decodes");
        assert!(back.verify(&mut scratch, &mut |b| p.check(b, 7)));
        assert!(!back.verify(&mut scratch, &mut |b| p.check(b, 8)));
    }

    #[test]
    fn every_message_type_carries_the_harness_bytes() {
        roundtrip::<Small>(64);
        roundtrip::<Record>(1024);
        roundtrip::<Vec<u8>>(4096);
    }

    #[test]
    fn the_small_message_is_about_64_bytes_encoded() {
        let p = Pattern::new(64);
        let m = Small::build(64, &mut Vec::new(), &mut |b| p.fill(b, 1 << 40));
        let n = postcard_len(&m).unwrap();
        assert!((60..=72).contains(&n), "{n}");
        assert_eq!((m.name.len(), m.data.len()), (16, 40));
    }
}
