//! Header validation: everything an opener decides from bytes another process
//! controls, as one pure function over a 128-byte copy of the header, so it can be
//! fuzzed directly (`tests/integration/fuzz.rs`, `fuzz/fuzz_targets/header_validate.rs`)
//! and is the very code `open` runs.
//!
//! The rule: no length, offset or size is taken from the header unless it is checked
//! against the real mapping first. On success the payload `128..128 + payload_size`
//! lies inside the mapping.

use std::time::Instant;

use crate::error::OpenError;
use crate::header::{
    Header, HeaderInfo, HeaderRef, TypeTag, HEADER_LEN, LAYOUT_VERSION, MAGIC, STATE_FAILED,
    STATE_INIT_MASK, STATE_READY, STATE_SHARED_PID_NAMESPACES,
};
use crate::wait::wait_ready;

/// What the opener asked for (from its options).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expect {
    /// `.size(n)`: the payload size must equal it.
    pub(crate) payload_size: Option<u64>,
    /// `.type_tag(t)`: the header's tag must equal it; `None` for `.any_type()`.
    pub(crate) type_tag: Option<TypeTag>,
    /// The opener's pid namespace inode (0 = unknown: no check).
    pub(crate) pid_namespace: u64,
    /// `.allow_foreign_pid_namespace(true)`: a creator in another pid namespace is fine.
    pub(crate) allow_foreign_pid_namespace: bool,
}

impl Expect {
    /// Whether a segment made in `creator` (a pid namespace inode) is in another pid
    /// namespace than the opener's. Unknown on either side (0) is not "another".
    pub(crate) fn is_foreign(&self, creator: u64) -> bool {
        creator != 0 && self.pid_namespace != 0 && creator != self.pid_namespace
    }
}

/// Checks a copy of a header against the real mapping length and the opener's
/// expectations. Pure: reads only `bytes`; never panics (fuzzed).
///
/// On success the returned header has the right magic and version, is READY, has
/// `payload_offset == 128` and `128 + payload_size == total_size <= mapping_len`.
pub(crate) fn validate(
    bytes: &[u8; HEADER_LEN],
    mapping_len: u64,
    expect: &Expect,
    name: &str,
) -> Result<HeaderInfo, OpenError> {
    let corrupt = |reason| OpenError::Corrupt {
        name: name.to_owned(),
        reason,
    };
    if mapping_len < HEADER_LEN as u64 {
        return Err(OpenError::TooSmall {
            name: name.to_owned(),
            len: mapping_len,
            needed: HEADER_LEN as u64,
        });
    }
    let info = Header::from_bytes(bytes);
    if info.magic != MAGIC {
        return Err(OpenError::NotShmkit {
            name: name.to_owned(),
            found: info.magic,
        });
    }
    if info.version != LAYOUT_VERSION {
        return Err(OpenError::Version {
            found: info.version,
            supported: LAYOUT_VERSION,
        });
    }
    let state = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if state & !(STATE_INIT_MASK | STATE_SHARED_PID_NAMESPACES) != 0 {
        return Err(corrupt("unknown flags in the state word"));
    }
    match state & STATE_INIT_MASK {
        STATE_READY => {}
        STATE_FAILED => {
            return Err(OpenError::InitFailed {
                pid: info.creator_pid,
            })
        }
        // Only a peer writing garbage (or resetting a READY header) gets here: `open`
        // validates after it saw READY.
        _ => return Err(corrupt("the init state is not READY (1)")),
    }
    if info.header_len as usize != HEADER_LEN || info.payload_offset != HEADER_LEN as u64 {
        return Err(corrupt("header length or payload offset is not 128"));
    }
    if info.total_size > mapping_len {
        return Err(OpenError::TooSmall {
            name: name.to_owned(),
            len: mapping_len,
            needed: info.total_size,
        });
    }
    if info.payload_offset.checked_add(info.payload_size) != Some(info.total_size) {
        return Err(corrupt("payload offset + payload size != total size"));
    }
    if let Some(want) = expect.payload_size {
        if want != info.payload_size {
            return Err(OpenError::SizeMismatch {
                name: name.to_owned(),
                expected: want,
                found: info.payload_size,
            });
        }
    }
    if let Some(want) = &expect.type_tag {
        if *want != info.type_tag {
            return Err(OpenError::TypeMismatch {
                expected: want.to_string(),
                found: info.type_tag.to_string(),
            });
        }
    }
    if expect.is_foreign(info.creator_pidns) && !expect.allow_foreign_pid_namespace {
        return Err(OpenError::ForeignPidNamespace {
            name: name.to_owned(),
            creator: info.creator_pidns,
            ours: expect.pid_namespace,
        });
    }
    Ok(info)
}

/// What `open` does once the object is mapped: wait for READY (bounded by
/// `deadline`), take one copy of the header, validate the copy. Returns the payload
/// length, which fits in the mapping.
///
/// Only the header is read; `mapping_len` is only compared against.
///
/// `h` is the header at the start of the mapping, which is `mapping_len` long.
pub(crate) fn open_header(
    h: HeaderRef<'_>,
    mapping_len: u64,
    expect: &Expect,
    name: &str,
    start: Instant,
    deadline: Option<Instant>,
) -> Result<HeaderInfo, OpenError> {
    wait_ready(h, name, start, deadline)?;
    // READY was Acquired in `wait_ready`.
    let bytes = h.read_bytes();
    validate(&bytes, mapping_len, expect, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_header(payload: u64, tag: &TypeTag) -> [u8; HEADER_LEN] {
        crate::fuzz::valid_header(payload, *tag)
    }

    #[test]
    fn a_valid_header_passes_and_matches_what_was_written() {
        let tag = TypeTag::new(3, "x", 8, 8);
        let b = ready_header(1000, &tag);
        let e = Expect {
            payload_size: Some(1000),
            type_tag: Some(tag),
            ..Expect::default()
        };
        let info = validate(&b, 1128, &e, "t").unwrap();
        assert_eq!(info.payload_size, 1000);
        assert!(info.ready);
        // A larger mapping (page rounding, System V) is fine.
        assert!(validate(&b, 4096, &e, "t").is_ok());
    }

    #[test]
    fn each_field_has_its_error() {
        let tag = TypeTag::BYTES;
        let e = Expect {
            payload_size: None,
            type_tag: Some(tag),
            ..Expect::default()
        };
        let good = ready_header(64, &tag);
        let with = |off: usize, v: &[u8]| {
            let mut b = good;
            b[off..off + v.len()].copy_from_slice(v);
            validate(&b, 192, &e, "t")
        };
        assert!(matches!(
            with(0, b"NOTSHMKT"),
            Err(OpenError::NotShmkit { .. })
        ));
        assert!(matches!(
            with(8, &9u32.to_le_bytes()),
            Err(OpenError::Version { found: 9, .. })
        ));
        assert!(matches!(
            with(12, &0u32.to_le_bytes()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            with(12, &2u32.to_le_bytes()),
            Err(OpenError::InitFailed { .. })
        ));
        // READY with the "shared across pid namespaces" flag opens; unknown flags do not.
        assert!(with(12, &(1u32 | 1 << 16).to_le_bytes()).is_ok_and(|i| i.shared_pid_namespaces));
        assert!(matches!(
            with(12, &(1u32 | 1 << 17).to_le_bytes()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            with(20, &64u32.to_le_bytes()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            with(24, &193u64.to_le_bytes()),
            Err(OpenError::TooSmall { needed: 193, .. })
        ));
        assert!(matches!(
            with(32, &0u64.to_le_bytes()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            with(40, &u64::MAX.to_le_bytes()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            with(72, &1u64.to_le_bytes()),
            Err(OpenError::TypeMismatch { .. })
        ));
        assert!(matches!(
            validate(&good, 100, &e, "t"),
            Err(OpenError::TooSmall { len: 100, .. })
        ));
        let sized = Expect {
            payload_size: Some(65),
            ..e
        };
        assert!(matches!(
            validate(&good, 192, &sized, "t"),
            Err(OpenError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn a_creator_in_another_pid_namespace_is_refused_unless_allowed() {
        let tag = TypeTag::BYTES;
        let mut b = ready_header(64, &tag);
        b[120..128].copy_from_slice(&7u64.to_le_bytes()); // the creator's namespace
        let mut e = Expect {
            type_tag: Some(tag),
            pid_namespace: 9,
            ..Expect::default()
        };
        let refused = validate(&b, 192, &e, "t");
        assert!(
            matches!(
                refused,
                Err(OpenError::ForeignPidNamespace {
                    creator: 7,
                    ours: 9,
                    ..
                })
            ),
            "{refused:?}"
        );
        e.allow_foreign_pid_namespace = true;
        assert!(validate(&b, 192, &e, "t").is_ok());
        // Same namespace, or unknown on either side: no refusal.
        e.allow_foreign_pid_namespace = false;
        e.pid_namespace = 7;
        assert!(validate(&b, 192, &e, "t").is_ok());
        e.pid_namespace = 0;
        assert!(validate(&b, 192, &e, "t").is_ok());
        b[120..128].copy_from_slice(&0u64.to_le_bytes());
        e.pid_namespace = 9;
        assert!(validate(&b, 192, &e, "t").is_ok());
    }
}
