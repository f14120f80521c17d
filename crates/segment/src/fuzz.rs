//! Fuzzing entry points: not part of the API (hidden from the docs, no stability
//! promise). The `proptest` harness (`tests/integration/fuzz.rs`) and the `cargo fuzz` target
//! (`fuzz/fuzz_targets/header_validate.rs`) both call [`header_validate_bytes`] /
//! [`header_validate`], which run the very code `open` runs on a mapped header and
//! panic if its result breaks a promise. A panic is a finding.

use std::time::Instant;

use crate::error::OpenError;
use crate::header::{Header, HeaderInfo, HeaderRef, TypeTag, HEADER_LEN, LAYOUT_VERSION, MAGIC};
use crate::validate::{open_header, validate, Expect};

/// The header a creator writes for `payload_size` bytes of `tag`, in state READY.
pub fn valid_header(payload_size: u64, tag: TypeTag) -> [u8; HEADER_LEN] {
    let mut buf = [0u64; HEADER_LEN / 8];
    // SAFETY: `buf` is zeroed and only this function touches it.
    unsafe {
        HeaderRef::from_buf(&mut buf).write_creating(
            payload_size.wrapping_add(HEADER_LEN as u64),
            payload_size,
            &tag,
            std::process::id(),
            0,
        );
    }
    let mut bytes = [0u8; HEADER_LEN];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(buf) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    bytes[12..16].copy_from_slice(&crate::header::STATE_READY.to_le_bytes());
    bytes
}

/// Runs what an opener runs on a header another process wrote: the READY wait (with a
/// deadline already past, so it returns at once: no endless wait), one copy of the
/// header, validation against `mapping_len` and the expectations; also the pure
/// validation alone and the decoding used by `list()`. Returns the opener's result.
///
/// # Panics
/// Only if a promise is broken (a finding): success with a payload that does not fit
/// in `mapping_len`, with a wrong magic/version/state/offset, with a size or type other
/// than the one asked for; or the open path and the pure validation disagreeing.
pub fn header_validate(
    header: &[u8; HEADER_LEN],
    mapping_len: u64,
    want_size: Option<u64>,
    want_tag: Option<TypeTag>,
) -> Result<HeaderInfo, OpenError> {
    // Pid namespace 0 (unknown): the namespace check never refuses here; it has its
    // own unit tests.
    let expect = Expect {
        payload_size: want_size,
        type_tag: want_tag,
        ..Expect::default()
    };
    // `list()` decodes every header it finds: it must not panic on any bytes.
    let decoded = Header::from_bytes(header);
    let _ = decoded.type_tag.to_string();
    let _ = format!("{decoded:?}");

    let pure = validate(header, mapping_len, &expect, "fuzz");

    // The open path, on an aligned copy standing in for the mapping's first bytes.
    let mut buf = [0u64; HEADER_LEN / 8];
    for (w, chunk) in buf.iter_mut().zip(header.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    let start = Instant::now();
    let opened = if mapping_len < HEADER_LEN as u64 {
        // `open` never maps an object shorter than a header (it waits or fails first).
        pure.as_ref().map(|i| *i).map_err(|_| OpenError::TooSmall {
            name: "fuzz".into(),
            len: mapping_len,
            needed: HEADER_LEN as u64,
        })
    } else {
        // `open_header` reads nothing past the header.
        open_header(
            HeaderRef::from_buf(&mut buf),
            mapping_len,
            &expect,
            "fuzz",
            start,
            Some(start),
        )
    };

    // A READY header that validates is opened at once; anything else is refused.
    assert_eq!(
        opened.as_ref().ok(),
        pure.as_ref().ok(),
        "the open path and validate disagree"
    );
    if let Err(e) = &opened {
        let _ = e.to_string();
    }
    if let Err(e) = &pure {
        let _ = e.to_string();
    }
    if let Ok(info) = &pure {
        assert_eq!(info.magic, MAGIC);
        assert_eq!(info.version, LAYOUT_VERSION);
        assert!(info.ready);
        assert_eq!(info.header_len as usize, HEADER_LEN);
        assert_eq!(info.payload_offset, HEADER_LEN as u64);
        assert_eq!(
            info.payload_offset.checked_add(info.payload_size),
            Some(info.total_size)
        );
        assert!(info.total_size <= mapping_len, "payload past the mapping");
        if let Some(w) = want_size {
            assert_eq!(info.payload_size, w);
        }
        if let Some(t) = want_tag {
            assert_eq!(info.type_tag, t);
        }
    }
    opened
}

/// [`header_validate`] driven by raw fuzzer bytes:
///
/// ```text
/// data[0]      flags: bit 0 = patch mode; bit 1 = ask for the header's own payload
///              size (.size()); bit 2 = any type (else ask for TypeTag::BYTES);
///              bit 3 (patch mode) = mapping length from the word's top bits;
///              bits 4..8 (patch mode) = extra pages on the mapping
/// data[1..9]   a u64 word (LE, zero padded)
/// data[9..]    raw mode: the 128 header bytes (zero padded), mapping length = word;
///              patch mode: (offset, byte) pairs written over a valid READY header
///              for a payload of (word & 0xfffff) + 1 bytes
/// ```
pub fn header_validate_bytes(data: &[u8]) -> Result<HeaderInfo, OpenError> {
    let flags = data.first().copied().unwrap_or(0);
    let mut word = [0u8; 8];
    let w = data.get(1..).unwrap_or(&[]);
    word[..w.len().min(8)].copy_from_slice(&w[..w.len().min(8)]);
    let word = u64::from_le_bytes(word);
    let rest = data.get(9..).unwrap_or(&[]);

    let (header, mapping_len) = if flags & 1 == 0 {
        let mut h = [0u8; HEADER_LEN];
        let n = rest.len().min(HEADER_LEN);
        h[..n].copy_from_slice(&rest[..n]);
        (h, word)
    } else {
        let payload = (word & 0xf_ffff) + 1;
        let mut h = valid_header(payload, TypeTag::BYTES);
        for p in rest.chunks_exact(2) {
            h[usize::from(p[0]) % HEADER_LEN] = p[1];
        }
        let len = if flags & 8 != 0 {
            word >> 20
        } else {
            HEADER_LEN as u64 + payload + u64::from(flags >> 4) * 4096
        };
        (h, len)
    };
    let want_size = (flags & 2 != 0).then(|| Header::from_bytes(&header).payload_size);
    let want_tag = (flags & 4 == 0).then_some(TypeTag::BYTES);
    header_validate(&header, mapping_len, want_size, want_tag)
}

/// Runs name validation on `name` and checks what acceptance promises: the name is a
/// single entry directly inside `/dev/shm` (not empty, not `.` or `..`, no `/`, no NUL,
/// at most 255 bytes), and turning it into the C string for `shm_open` cannot fail.
/// Returns the refusal reason, if refused.
///
/// # Panics
/// Only if an accepted name breaks that promise (a finding).
pub fn name_validate(name: &str) -> Result<(), &'static str> {
    crate::name::check_posix(name)?;
    assert!(!name.is_empty() && name != "." && name != "..", "{name:?}");
    assert!(!name.contains('/') && !name.contains('\0'), "{name:?}");
    assert!(name.len() <= crate::name::MAX_NAME_LEN, "{name:?}");
    let p = std::path::Path::new(crate::list::POSIX_SHM_DIR).join(name);
    assert_eq!(
        p.parent(),
        Some(std::path::Path::new(crate::list::POSIX_SHM_DIR))
    );
    assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name));
    let c = crate::name::posix_cstring(name);
    assert_eq!(c.as_bytes().len(), name.len() + 1);
    Ok(())
}
