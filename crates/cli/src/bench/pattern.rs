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
    ///
    /// Every byte is compared, word by word with the differences OR-ed together and
    /// tested once (no early exit, no `memcmp` call): for small messages the calls
    /// `memcmp` took (two per message) were a measurable part of the harness's cost,
    /// which the benchmark should not add to what it measures.
    #[inline]
    pub fn check(&self, msg: &[u8], seq: u64) -> bool {
        let t = &self.template[..];
        if msg.len() != t.len() {
            return false;
        }
        let k = msg.len().min(8);
        let mut seen = seq.to_le_bytes();
        seen[..k].copy_from_slice(&msg[..k]);
        let mut diff = u64::from_le_bytes(seen) ^ seq;
        if k < 8 {
            // Short messages carry only the low bytes of the sequence number.
            diff &= (1u64 << (8 * k)) - 1;
        }
        let (m, t) = (&msg[k..], &t[k..]);
        let (mw, tw) = (m.chunks_exact(8), t.chunks_exact(8));
        let (mr, tr) = (mw.remainder(), tw.remainder());
        for (a, b) in mw.zip(tw) {
            let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
            diff |= word(a) ^ word(b);
        }
        for (a, b) in mr.iter().zip(tr) {
            diff |= u64::from(a ^ b);
        }
        diff == 0
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

    #[test]
    fn check_catches_a_change_in_any_byte_and_a_wrong_length() {
        for size in [1, 7, 8, 9, 15, 16, 17, 64, 100] {
            let p = Pattern::new(size);
            let mut buf = vec![0; size];
            p.fill(&mut buf, 0x0102_0304_0506_0708);
            assert!(p.check(&buf, 0x0102_0304_0506_0708), "size {size}");
            for i in 0..size {
                for bit in [0x01, 0x80] {
                    buf[i] ^= bit;
                    assert!(
                        !p.check(&buf, 0x0102_0304_0506_0708),
                        "size {size} byte {i}"
                    );
                    buf[i] ^= bit;
                }
            }
            assert!(!p.check(&buf[..size - 1], 0x0102_0304_0506_0708));
            let mut longer = buf.clone();
            longer.push(b'a');
            assert!(!p.check(&longer, 0x0102_0304_0506_0708));
        }
    }
}
