//! The envelope every message crosses Zenoh in: a fixed 28-byte header, then the
//! payload bytes exactly as the local object carried them (never re-encoded).
//!
//! ```text
//! offset size  field
//!      0    2  magic  b"SZ"
//!      2    1  version (1)
//!      3    1  kind: 0 data, 1 ack, 2 announce, 3 handover
//!      4    8  source id (u64 LE): the exporter's id, fresh at each exporter start
//!     12    8  sequence number (u64 LE): data: 1, 2, ...; ack/announce: last delivered;
//!              handover: the last one the previous exporter took (u64::MAX: unknown)
//!     20    4  payload length (u32 LE); ack/announce: the importer's window
//!     24    4  reserved, zero
//!     28    n  payload (data; handover: 8 bytes, the previous exporter's id, u64 LE)
//! ```
//!
//! [`decode`] checks every field and returns an [`EnvelopeError`] for anything else:
//! bytes from the network are never trusted.
//!
//! ```
//! use shmkit_zenoh::envelope::{decode, encode_data, Envelope, EnvelopeError};
//!
//! let mut wire = Vec::new();
//! encode_data(&mut wire, 7, 1, b"hello");
//! assert_eq!(decode(&wire)?, Envelope::Data { source: 7, seq: 1, payload: b"hello" });
//! assert_eq!(decode(&wire[..10]), Err(EnvelopeError::Truncated { len: 10 }));
//! # Ok::<(), EnvelopeError>(())
//! ```

/// The first two bytes of every envelope.
pub const MAGIC: [u8; 2] = *b"SZ";
/// The envelope format version this build writes and accepts.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 28;
/// The largest payload accepted (a ring, channel or topic message is far smaller).
pub const MAX_PAYLOAD: usize = 64 << 20;

const KIND_DATA: u8 = 0;
const KIND_ACK: u8 = 1;
const KIND_ANNOUNCE: u8 = 2;
const KIND_HANDOVER: u8 = 3;

/// A decoded envelope; `Data` borrows its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// One message of source `source`, number `seq` (from 1).
    Data {
        /// The exporter's id.
        source: u64,
        /// The message's number, from 1, without holes.
        seq: u64,
        /// The bytes the local object carried.
        payload: &'a [u8],
    },
    /// The importer has delivered everything of `source` up to `delivered`, and has
    /// room for `window` more.
    Ack {
        /// The exporter's id the importer last saw (0: none).
        source: u64,
        /// The last sequence number delivered locally.
        delivered: u64,
        /// Messages the importer accepts beyond `delivered`.
        window: u32,
    },
    /// As `Ack`, and "resend everything after `delivered`": sent by an importer that
    /// (re)started, found a hole, or heard nothing for a while.
    Announce {
        /// The exporter's id the importer last saw (0: none).
        source: u64,
        /// The last sequence number delivered locally.
        delivered: u64,
        /// Messages the importer accepts beyond `delivered`.
        window: u32,
    },
    /// The exporter `source` follows the exporter `old`, which took messages up to
    /// `last` from the local object (`u64::MAX`: unknown) before it ended: an importer
    /// still following `old` counts those it did not deliver as gaps.
    Handover {
        /// The new exporter's id.
        source: u64,
        /// The exporter it follows.
        old: u64,
        /// The last sequence number `old` took, or `u64::MAX`.
        last: u64,
    },
}

/// Why bytes from the network are not an envelope. Counted by the bridge, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than the header.
    #[error("envelope of {len} bytes is shorter than its {HEADER_LEN}-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Not a shmkit envelope.
    #[error("not a shmkit envelope (magic {found:02x?})")]
    BadMagic {
        /// The first two bytes.
        found: [u8; 2],
    },
    /// A version this build does not know.
    #[error("envelope version {found}, this build reads version {VERSION}")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// An unknown kind byte.
    #[error("unknown envelope kind {found}")]
    Kind {
        /// The kind byte found.
        found: u8,
    },
    /// The reserved bytes are not zero.
    #[error("reserved envelope bytes are not zero")]
    Reserved,
    /// A data envelope numbered 0, or from source 0; a handover naming source 0.
    #[error("data envelope with sequence number 0 or source 0, or handover naming source 0")]
    ZeroField,
    /// The length field disagrees with the bytes received, or is above [`MAX_PAYLOAD`].
    #[error("envelope says {declared} payload bytes, {actual} follow the header")]
    Length {
        /// The length field.
        declared: u32,
        /// Bytes after the header.
        actual: usize,
    },
}

fn header(out: &mut Vec<u8>, kind: u8, source: u64, seq: u64, len: u32) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
}

/// Writes a data envelope into `out` (cleared first).
///
/// # Panics
/// If `payload` is longer than [`MAX_PAYLOAD`] (no local object carries such a message).
pub fn encode_data(out: &mut Vec<u8>, source: u64, seq: u64, payload: &[u8]) {
    assert!(payload.len() <= MAX_PAYLOAD, "payload above MAX_PAYLOAD");
    out.reserve(HEADER_LEN + payload.len());
    header(out, KIND_DATA, source, seq, payload.len() as u32);
    out.extend_from_slice(payload);
}

/// Writes an ack (`announce == false`) or announce envelope into `out` (cleared first).
pub fn encode_ack(out: &mut Vec<u8>, announce: bool, source: u64, delivered: u64, window: u32) {
    let kind = if announce { KIND_ANNOUNCE } else { KIND_ACK };
    header(out, kind, source, delivered, window);
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Writes a handover envelope into `out` (cleared first).
pub fn encode_handover(out: &mut Vec<u8>, source: u64, old: u64, last: u64) {
    header(out, KIND_HANDOVER, source, last, 8);
    out.extend_from_slice(&old.to_le_bytes());
}

/// Decodes the header of a data envelope of `total` bytes whose payload is not
/// contiguous (Zenoh reassembled it from fragments): `head` holds its first
/// [`HEADER_LEN`] bytes. Returns the source id and sequence number; the payload is the
/// bytes after the header. Any other kind is an error (they are never fragmented:
/// decode them with [`decode`]).
///
/// # Errors
/// As [`decode`].
pub fn decode_data_head(
    head: &[u8; HEADER_LEN],
    total: usize,
) -> Result<(u64, u64), EnvelopeError> {
    let (kind, source, seq, len) = fields(head)?;
    if kind != KIND_DATA {
        return Err(EnvelopeError::Kind { found: kind });
    }
    let actual = total
        .checked_sub(HEADER_LEN)
        .ok_or(EnvelopeError::Truncated { len: total })?;
    check_data(source, seq, len, actual)?;
    Ok((source, seq))
}

/// The header's kind, source, sequence number and length, after checking the magic,
/// version and reserved bytes.
fn fields(b: &[u8]) -> Result<(u8, u64, u64, u32), EnvelopeError> {
    if b.len() < HEADER_LEN {
        return Err(EnvelopeError::Truncated { len: b.len() });
    }
    if b[0..2] != MAGIC {
        return Err(EnvelopeError::BadMagic {
            found: [b[0], b[1]],
        });
    }
    if b[2] != VERSION {
        return Err(EnvelopeError::Version { found: b[2] });
    }
    let source = u64_at(b, 4);
    let seq = u64_at(b, 12);
    let len = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
    if b[24..28] != [0; 4] {
        return Err(EnvelopeError::Reserved);
    }
    Ok((b[3], source, seq, len))
}

/// Checks a data envelope's fields; `actual`: the payload bytes after the header.
fn check_data(source: u64, seq: u64, len: u32, actual: usize) -> Result<(), EnvelopeError> {
    if len as usize != actual || len as usize > MAX_PAYLOAD {
        return Err(EnvelopeError::Length {
            declared: len,
            actual,
        });
    }
    if seq == 0 || source == 0 {
        return Err(EnvelopeError::ZeroField);
    }
    Ok(())
}

/// Decodes one envelope, checking every field.
///
/// # Errors
/// An [`EnvelopeError`] naming the first field found wrong.
pub fn decode(b: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (kind, source, seq, len) = fields(b)?;
    let rest = &b[HEADER_LEN..];
    match kind {
        KIND_DATA => {
            check_data(source, seq, len, rest.len())?;
            Ok(Envelope::Data {
                source,
                seq,
                payload: rest,
            })
        }
        k @ (KIND_ACK | KIND_ANNOUNCE) => {
            if !rest.is_empty() {
                return Err(EnvelopeError::Length {
                    declared: 0,
                    actual: rest.len(),
                });
            }
            let (source, delivered, window) = (source, seq, len);
            Ok(if k == KIND_ACK {
                Envelope::Ack {
                    source,
                    delivered,
                    window,
                }
            } else {
                Envelope::Announce {
                    source,
                    delivered,
                    window,
                }
            })
        }
        KIND_HANDOVER => {
            if len != 8 || rest.len() != 8 {
                return Err(EnvelopeError::Length {
                    declared: len,
                    actual: rest.len(),
                });
            }
            let old = u64_at(rest, 0);
            if source == 0 || old == 0 {
                return Err(EnvelopeError::ZeroField);
            }
            Ok(Envelope::Handover {
                source,
                old,
                last: seq,
            })
        }
        found => Err(EnvelopeError::Kind { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bytes of `e`, through the encoders.
    fn encode(e: &Envelope<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        match *e {
            Envelope::Data {
                source,
                seq,
                payload,
            } => encode_data(&mut out, source, seq, payload),
            Envelope::Ack {
                source,
                delivered,
                window,
            } => encode_ack(&mut out, false, source, delivered, window),
            Envelope::Announce {
                source,
                delivered,
                window,
            } => encode_ack(&mut out, true, source, delivered, window),
            Envelope::Handover { source, old, last } => {
                encode_handover(&mut out, source, old, last)
            }
        }
        out
    }

    proptest! {
        /// Any bytes at all: an envelope or a typed error, never a panic; and what
        /// decodes re-encodes to the same bytes.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let again = match decode(&bytes) {
                Ok(e) => encode(&e),
                Err(_) => bytes.clone(),
            };
            prop_assert_eq!(again, bytes);
        }

        /// The header-only decoder (payload elsewhere) agrees with the whole decoder
        /// on every input at least a header long.
        #[test]
        fn data_head_agrees_with_decode(bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN..200),
                                        kind_data in any::<bool>()) {
            let mut bytes = bytes;
            if kind_data {
                bytes[..3].copy_from_slice(&[MAGIC[0], MAGIC[1], VERSION]);
                bytes[3] = KIND_DATA;
                bytes[24..28].fill(0);
                let n = (bytes.len() - HEADER_LEN) as u32;
                bytes[20..24].copy_from_slice(&n.to_le_bytes());
            }
            let head: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
            let whole = match decode(&bytes) {
                Ok(Envelope::Data { source, seq, .. }) => Some((source, seq)),
                _ => None,
            };
            prop_assert_eq!(decode_data_head(&head, bytes.len()).ok(), whole);
        }

        /// A valid data envelope with bytes flipped, cut or appended: still no panic,
        /// and any change to the header or length is caught (the payload is opaque).
        #[test]
        fn garbled_data(
            source in 1u64.., seq in 1u64..,
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            at in 0usize..HEADER_LEN, xor in 1u8..,
            cut in 0usize..92,
        ) {
            let mut wire = Vec::new();
            encode_data(&mut wire, source, seq, &payload);
            prop_assert_eq!(decode(&wire), Ok(Envelope::Data { source, seq, payload: &payload }));
            let mut bad = wire.clone();
            bad[at] ^= xor;
            // Flipping the source or sequence number (bytes 4..20) yields another
            // valid envelope unless it becomes 0. Flipping the kind (byte 3) yields a
            // well-formed envelope of another kind where the rest happens to fit it
            // (an 8-byte payload reads as a handover's, an empty one as an ack's): no
            // decoder without a checksum can tell those from real ones (nor one with
            // a checksum from a hostile sender's), so all it must do is decode them
            // exactly. Everything else must be refused.
            match decode(&bad) {
                Ok(Envelope::Data { payload: p, .. }) => {
                    prop_assert!((4..20).contains(&at));
                    prop_assert_eq!(p, &payload[..]);
                }
                Ok(other) => {
                    prop_assert!(at == 3, "garbled data decoded as {:?}", other);
                    prop_assert_eq!(encode(&other), bad);
                }
                Err(_) => {}
            }
            if cut < wire.len() {
                prop_assert!(decode(&wire[..cut]).is_err());
            }
            wire.push(0);
            prop_assert!(decode(&wire).is_err());
        }
    }

    #[test]
    fn each_error() {
        let mut w = Vec::new();
        encode_data(&mut w, 1, 1, b"x");
        let mut b = w.clone();
        b[0] = b'X';
        assert!(matches!(decode(&b), Err(EnvelopeError::BadMagic { .. })));
        let mut b = w.clone();
        b[2] = 9;
        assert_eq!(decode(&b), Err(EnvelopeError::Version { found: 9 }));
        let mut b = w.clone();
        b[3] = 7;
        assert_eq!(decode(&b), Err(EnvelopeError::Kind { found: 7 }));
        let mut b = w.clone();
        b[25] = 1;
        assert_eq!(decode(&b), Err(EnvelopeError::Reserved));
        encode_data(&mut b, 1, 0, b"x");
        assert_eq!(decode(&b), Err(EnvelopeError::ZeroField));
        encode_ack(&mut b, true, 3, 4, 5);
        assert_eq!(
            decode(&b),
            Ok(Envelope::Announce {
                source: 3,
                delivered: 4,
                window: 5
            })
        );
        encode_handover(&mut b, 3, 2, u64::MAX);
        assert_eq!(
            decode(&b),
            Ok(Envelope::Handover {
                source: 3,
                old: 2,
                last: u64::MAX
            })
        );
        encode_handover(&mut b, 3, 0, 1);
        assert_eq!(decode(&b), Err(EnvelopeError::ZeroField));
    }
}
