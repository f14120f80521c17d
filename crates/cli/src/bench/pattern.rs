//! The bytes every benchmark message carries, so the receiver can verify all of them.

/// A message template: byte `i` is the lower-case letter `b'a' + (i * 31 + 7) % 26`
/// (ASCII, so that the serde comparison can carry part of it as a `String`), and the
/// first (up to) 8 bytes
/// are replaced by the message's sequence number (little-endian). The receiver checks
/// the sequence number and compares the rest with the template (a `memcmp`, so checking
/// costs about what copying does, whatever the transport).
#[derive(Debug, Clone)]
pub struct Pattern {
    template: Vec<u8>,
}

impl Pattern {
    /// The template for `size`-byte messages.
    pub fn new(size: usize) -> Self {
        Pattern {
            template: (0..size)
                .map(|i| b'a' + ((i.wrapping_mul(31) + 7) % 26) as u8)
                .collect(),
        }
    }

    /// Message size.
    pub fn len(&self) -> usize {
        self.template.len()
    }

    /// Whether messages are empty.
    pub fn is_empty(&self) -> bool {
        self.template.is_empty()
    }

    /// Writes message `seq` into `buf` (which must be `len()` bytes).
    pub fn fill(&self, buf: &mut [u8], seq: u64) {
        buf.copy_from_slice(&self.template);
        let k = buf.len().min(8);
        buf[..k].copy_from_slice(&seq.to_le_bytes()[..k]);
    }

    /// Whether `msg` is exactly message `seq`.
    pub fn check(&self, msg: &[u8], seq: u64) -> bool {
        let k = msg.len().min(8);
        msg.len() == self.template.len()
            && msg[..k] == seq.to_le_bytes()[..k]
            && msg[k..] == self.template[k..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_check_roundtrips_and_catches_changes() {
        for size in [1, 8, 9, 1000] {
            let p = Pattern::new(size);
            let mut buf = vec![0; size];
            p.fill(&mut buf, 42);
            assert!(p.check(&buf, 42));
            assert!(!p.check(&buf, 43) || size == 0);
            let last = buf.len() - 1;
            buf[last] ^= 1;
            assert!(!p.check(&buf, 42));
        }
    }
}
