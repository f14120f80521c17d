//! Fuzzing of everything the segment crate reads from bytes another process controls:
//! the header (validation, decoding, the READY wait), sizes against the real object,
//! and names. Bounded `proptest` runs that take a few seconds in the default test run
//! (`SHMKIT_STRESS=1` runs ten times more cases); the longer, coverage-guided run is
//! the `cargo fuzz` target `header_validate` (see `docs/reliability.md`), which calls
//! the same entry points (`shmkit_segment::fuzz`).
//!
//! What every case asserts: an error or a success, never a panic; a success only when
//! the header is valid by the specification below and its payload fits in the
//! mapping; never an endless wait (deadlines are already past, or 2 ms for real
//! segments).

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use shmkit_segment::fuzz::{header_validate, header_validate_bytes, name_validate, valid_header};
use shmkit_segment::{
    header::TAG_NAME_LEN, CreateError, OpenError, Segment, TypeTag, HEADER_LEN, LAYOUT_VERSION,
    MAGIC, MAX_NAME_LEN,
};
use shmkit_testkit::{stress, unique_name, ShmCleanup};

/// Header fields, by byte offset and width (see `docs/layout.md`).
#[derive(Clone, Copy, Debug)]
enum Field {
    Magic,
    Version,
    State,
    CreatorPid,
    HeaderLen,
    TotalSize,
    PayloadOffset,
    PayloadSize,
    TagKind,
    TagNameLen,
    TagSize,
    TagAlign,
    TagFingerprint,
    TagNameByte(u8),
    CreatorPidns,
}

impl Field {
    fn span(self) -> (usize, usize) {
        match self {
            Field::Magic => (0, 8),
            Field::Version => (8, 4),
            Field::State => (12, 4),
            Field::CreatorPid => (16, 4),
            Field::HeaderLen => (20, 4),
            Field::TotalSize => (24, 8),
            Field::PayloadOffset => (32, 8),
            Field::PayloadSize => (40, 8),
            Field::TagKind => (48, 4),
            Field::TagNameLen => (52, 4),
            Field::TagSize => (56, 8),
            Field::TagAlign => (64, 8),
            Field::TagFingerprint => (72, 8),
            Field::TagNameByte(i) => (80 + usize::from(i) % TAG_NAME_LEN, 1),
            Field::CreatorPidns => (120, 8),
        }
    }
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::Magic),
        Just(Field::Version),
        Just(Field::State),
        Just(Field::CreatorPid),
        Just(Field::HeaderLen),
        Just(Field::TotalSize),
        Just(Field::PayloadOffset),
        Just(Field::PayloadSize),
        Just(Field::TagKind),
        Just(Field::TagNameLen),
        Just(Field::TagSize),
        Just(Field::TagAlign),
        Just(Field::TagFingerprint),
        any::<u8>().prop_map(Field::TagNameByte),
        Just(Field::CreatorPidns),
    ]
}

/// Values that sit on the edges the validation must get right, plus anything.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(127),
        Just(128),
        Just(129),
        Just(4096),
        Just(u64::from(u32::MAX)),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        Just(u64::MAX - 127),
        Just(MAGIC),
        any::<u64>(),
    ]
}

/// A mutation: write `value` (truncated to the field's width) over `field`.
fn mutations() -> impl Strategy<Value = Vec<(Field, u64)>> {
    prop::collection::vec((field(), value()), 0..4)
}

fn apply(header: &mut [u8; HEADER_LEN], muts: &[(Field, u64)]) {
    for (f, v) in muts {
        let (off, width) = f.span();
        header[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

fn u32_at(b: &[u8; HEADER_LEN], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8; HEADER_LEN], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The specification, written independently of the crate's code: a header opens iff
/// it is shmkit's magic and version, READY (possibly flagged "shared across pid
/// namespaces", bit 16), 128-byte header and offset, offset +
/// payload == total without overflow, total fits in the mapping, and the tag equals
/// the one asked for (`TypeTag::BYTES`: kind 0, size 1, align 1, its fingerprint).
fn spec_ok(b: &[u8; HEADER_LEN], mapping_len: u64) -> bool {
    spec_ok_in(b, mapping_len, 0)
}

/// [`spec_ok`] for an opener in pid namespace `ours` (0 = unknown): also, a creator in
/// another known pid namespace is refused (no opt-in is given).
fn spec_ok_in(b: &[u8; HEADER_LEN], mapping_len: u64, ours: u64) -> bool {
    let bytes_tag = TypeTag::BYTES;
    let creator_ns = u64_at(b, 120);
    (ours == 0 || creator_ns == 0 || creator_ns == ours)
        && mapping_len >= HEADER_LEN as u64
        && u64_at(b, 0) == MAGIC
        && u32_at(b, 8) == LAYOUT_VERSION
        && (u32_at(b, 12) == 1 || u32_at(b, 12) == 1 | 1 << 16)
        && u32_at(b, 20) == 128
        && u64_at(b, 32) == 128
        && 128u64.checked_add(u64_at(b, 40)) == Some(u64_at(b, 24))
        && u64_at(b, 24) <= mapping_len
        && u32_at(b, 48) == bytes_tag.kind()
        && u64_at(b, 56) == bytes_tag.size()
        && u64_at(b, 64) == bytes_tag.align()
        && u64_at(b, 72) == bytes_tag.fingerprint()
}

/// How the mapping length relates to what the header claims.
fn mapping_len(total: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(total),
        1 => Just(total - 1),
        1 => Just(total + 1),
        1 => 0u64..HEADER_LEN as u64 + 1,
        1 => any::<u64>(),
    ]
}

fn cases(quick: u32) -> Config {
    Config {
        cases: stress(quick as usize, quick as usize * 10) as u32,
        // Failures are reported with their minimal input; no files written.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The seed input `docs/reliability.md` suggests for `cargo fuzz` (patch mode, no
/// patches, 65-byte payload) is a valid header: the fuzzer starts from a success.
#[test]
fn documented_fuzz_seed_is_a_valid_header() {
    let info = header_validate_bytes(b"\x01\x40\x00\x00\x00\x00\x00\x00\x00").unwrap();
    assert_eq!(info.payload_size, 65);
    assert_eq!(info.total_size, 128 + 65);
    // Raw mode with nothing in it is refused (all zeroes: no magic).
    assert!(header_validate_bytes(&[]).is_err());
}

/// Random bytes through the same decoder the `cargo fuzz` target uses.
#[test]
fn raw_bytes_never_panic() {
    let mut runner = TestRunner::new(cases(2000));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..320), |data| {
            let _ = header_validate_bytes(&data);
            Ok(())
        })
        .unwrap();
}

/// A valid header with 0..4 fields overwritten, against mappings shorter than,
/// equal to and longer than it claims: the result matches the specification exactly
/// (not only "no panic": a validation that refused everything would fail here).
#[test]
fn mutated_headers_open_exactly_when_the_spec_says() {
    let mut runner = TestRunner::new(cases(2000));
    let strategy = (1u64..1 << 20, mutations())
        .prop_flat_map(|(payload, muts)| (Just(payload), Just(muts), mapping_len(payload + 128)));
    runner
        .run(&strategy, |(payload, muts, len)| {
            let mut h = valid_header(payload, TypeTag::BYTES);
            apply(&mut h, &muts);
            let r = header_validate(&h, len, None, Some(TypeTag::BYTES));
            prop_assert_eq!(
                r.is_ok(),
                spec_ok(&h, len),
                "{:?} len {}: {:?}",
                muts,
                len,
                r
            );
            if let Ok(info) = r {
                prop_assert!(info.total_size <= len);
                prop_assert_eq!(info.payload_size + 128, info.total_size);
            }
            Ok(())
        })
        .unwrap();
}

/// Specific fields give their specific error.
#[test]
fn single_field_mutations_give_the_matching_error() {
    let mut runner = TestRunner::new(cases(500));
    let strategy = (1u64..1 << 16, field(), value());
    runner
        .run(&strategy, |(payload, f, v)| {
            let mut h = valid_header(payload, TypeTag::BYTES);
            let before = h;
            apply(&mut h, &[(f, v)]);
            let len = payload + 128;
            let r = header_validate(&h, len, None, Some(TypeTag::BYTES));
            if h == before {
                prop_assert!(r.is_ok(), "{:?}", r);
                return Ok(());
            }
            let as_expected = match f {
                Field::Magic => matches!(r, Err(OpenError::NotShmkit { .. })),
                Field::Version => matches!(r, Err(OpenError::Version { .. })),
                Field::State => matches!(
                    r,
                    Err(OpenError::Corrupt { .. }
                        | OpenError::InitFailed { .. }
                        | OpenError::Timeout { .. })
                ),
                Field::HeaderLen | Field::PayloadOffset | Field::PayloadSize => {
                    matches!(r, Err(OpenError::Corrupt { .. }))
                }
                Field::TotalSize => matches!(
                    r,
                    Err(OpenError::Corrupt { .. } | OpenError::TooSmall { .. })
                ),
                Field::TagKind | Field::TagSize | Field::TagAlign | Field::TagFingerprint => {
                    matches!(r, Err(OpenError::TypeMismatch { .. }))
                }
                // Informational only: never a reason to refuse.
                Field::CreatorPid
                | Field::CreatorPidns
                | Field::TagNameLen
                | Field::TagNameByte(_) => r.is_ok(),
            };
            prop_assert!(as_expected, "{:?} = {:#x}: {:?}", f, v, r);
            Ok(())
        })
        .unwrap();
}

/// End to end through real POSIX segments: create one, corrupt its header bytes, maybe
/// shrink the object (`ftruncate`, to 0, to less than a header, to one byte short of
/// what the header claims, or anywhere), then `open` with a 2 ms timeout. The result
/// matches the specification against the object's real size; on success every payload
/// byte is readable (a read past the object would be a SIGBUS and kill this test).
#[test]
fn corrupted_real_segments_fail_cleanly() {
    let mut runner = TestRunner::new(cases(1000));
    let strategy = (1usize..16 * 1024, mutations(), 0u8..6, any::<u64>());
    runner
        .run(&strategy, |(payload, muts, shrink, any_len)| {
            let name = unique_name("fuzz-e2e");
            let _guard = ShmCleanup::new(&name);
            let total = (payload + HEADER_LEN) as u64;
            let seg = Segment::options()
                .posix(&name)
                .size(payload)
                .create()
                .unwrap();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/dev/shm/{name}"))
                .unwrap();
            let mut h = [0u8; HEADER_LEN];
            file.read_exact_at(&mut h, 0).unwrap();
            apply(&mut h, &muts);
            file.write_all_at(&h, 0).unwrap();
            let new_len = match shrink {
                0 | 1 => total,
                2 => 0,
                3 => any_len % HEADER_LEN as u64,
                4 => total - 1,
                _ => any_len % (2 * total),
            };
            if new_len != total {
                file.set_len(new_len).unwrap();
            }
            let r = Segment::options()
                .posix(&name)
                .open_timeout(Duration::from_millis(2))
                .open();
            let real_len = file.metadata().unwrap().len();
            // The header as it is now (a shrunk object reads zeroes past its end).
            let mut now = [0u8; HEADER_LEN];
            let n = (real_len as usize).min(HEADER_LEN);
            file.read_exact_at(&mut now[..n], 0).unwrap();
            if real_len == 0 {
                let timed_out = matches!(r, Err(OpenError::Timeout { .. }));
                prop_assert!(timed_out, "{:?}", r);
            } else if real_len < HEADER_LEN as u64 {
                let too_small = matches!(r, Err(OpenError::TooSmall { .. }));
                prop_assert!(too_small, "{:?}", r);
            } else {
                let ours = std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino());
                let ok = spec_ok_in(&now, real_len, ours);
                prop_assert_eq!(r.is_ok(), ok, "{:?}: {:?}", muts, r);
            }
            if let Ok(opened) = r {
                prop_assert!(HEADER_LEN + opened.payload_len() <= real_len as usize);
                prop_assert!(opened.len() as u64 <= real_len);
                // A consistent header may claim an empty payload (no creator writes
                // one, but it is harmless): then there is nothing to read.
                if let Some(last) = opened.payload_len().checked_sub(1) {
                    // SAFETY: inside the payload, which validation put inside the object.
                    let _ = unsafe { opened.payload_ptr().add(last).read_volatile() };
                }
            }
            drop(seg);
            Ok(())
        })
        .unwrap();
}

/// Names: whatever the string, validation either refuses it with `InvalidName` before
/// any system call, or accepts a name that stays a single entry directly inside
/// `/dev/shm` (no `/`, not `.` or `..`, no NUL, at most 255 bytes).
#[test]
fn names_never_escape_dev_shm() {
    let mut runner = TestRunner::new(cases(2000));
    let tricky = prop::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("\0".to_owned()),
            Just("\n".to_owned()),
            Just(" ".to_owned()),
            Just("%2f".to_owned()),
            Just("é".to_owned()),
            Just("\u{202e}".to_owned()),
            "[a-z0-9_-]{1,8}",
            any::<char>().prop_map(String::from),
        ],
        0..80,
    )
    .prop_map(|parts| parts.concat());
    let strategy = prop_oneof![tricky, any::<String>()];
    runner
        .run(&strategy, |name| {
            // The shared fuzz entry point checks acceptance's promises itself.
            let checked = name_validate(&name);
            let r = Segment::options()
                .posix(&name)
                .open_timeout(Duration::ZERO)
                .open();
            match r {
                Err(OpenError::InvalidName { .. }) => {
                    prop_assert!(checked.is_err(), "{:?}", name);
                    // Refused names are refused by every entry point.
                    let created = Segment::options().posix(&name).size(1).create();
                    let refused = matches!(created, Err(CreateError::InvalidName { .. }));
                    prop_assert!(refused, "create {:?}: {:?}", name, created);
                    let raw = Segment::open_raw(&name);
                    let refused = matches!(raw, Err(OpenError::InvalidName { .. }));
                    prop_assert!(refused, "open_raw {:?}: {:?}", name, raw);
                }
                _ => {
                    prop_assert!(checked.is_ok(), "{:?}", name);
                    let p = Path::new("/dev/shm").join(&name);
                    prop_assert_eq!(p.parent(), Some(Path::new("/dev/shm")), "{:?}", name);
                    prop_assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name.as_str()));
                    prop_assert!(!name.contains('\0') && name.len() <= MAX_NAME_LEN);
                    prop_assert!(!name.is_empty() && name != "." && name != "..");
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A hostile peer rewrites the header *while* we open: a forked child keeps writing
/// random words, edge values and the valid header back over it; the parent opens again
/// and again. Every success hands out a payload inside the (never shrunk) object,
/// because `open` validates one copy of the header and uses nothing else; every
/// failure is an error within the timeout.
#[test]
fn concurrently_rewritten_header_never_yields_an_out_of_bounds_payload() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let name = unique_name("fuzz-race");
    let _guard = ShmCleanup::new(&name);
    let payload = 3 * 4096;
    let total = payload + HEADER_LEN;
    let seg = Segment::options()
        .posix(&name)
        .size(payload)
        .create()
        .unwrap();
    let valid = {
        let mut h = [0u64; HEADER_LEN / 8];
        for (i, w) in h.iter_mut().enumerate() {
            // SAFETY: word `i` < 16 is inside the header of our live mapping.
            *w = unsafe { seg.as_ptr().cast::<u64>().add(i).read_volatile() };
        }
        h
    };
    // SAFETY: the payload is 128-aligned and at least 4 bytes; only atomics touch this
    // word, in both processes.
    let stop = unsafe { &*seg.payload_ptr().cast::<AtomicU32>() };
    let words = seg.as_ptr().cast::<u64>();
    let mut child = shmkit_testkit::fork_child(|| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
        // Relaxed: a stop flag; nothing else is published through it.
        while stop.load(Ordering::Relaxed) == 0 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % 16) as usize;
            let v = match (x >> 8) % 6 {
                0 | 1 => valid[i],
                2 => x,
                3 => valid[i] ^ (1 << ((x >> 16) % 64)),
                4 => u64::MAX,
                _ => 0,
            };
            // SAFETY: word `i` < 16 is inside the header of the inherited mapping.
            unsafe { words.add(i).write_volatile(v) };
            if (x >> 24) & 3 == 0 {
                for (j, w) in valid.iter().enumerate() {
                    // SAFETY: as above.
                    unsafe { words.add(j).write_volatile(*w) };
                }
            }
        }
        0
    });
    let rounds = stress(1000, 20_000);
    let mut opened = 0;
    for _ in 0..rounds {
        let r = Segment::options()
            .posix(&name)
            .any_type()
            .open_timeout(Duration::from_millis(1))
            .open();
        if let Ok(s) = r {
            opened += 1;
            assert!(HEADER_LEN + s.payload_len() <= total, "{s:?}");
            assert!(s.len() <= total);
            if let Some(last) = s.payload_len().checked_sub(1) {
                // SAFETY: inside the validated payload, inside the object.
                let _ = unsafe { s.payload_ptr().add(last).read_volatile() };
            }
        }
    }
    // Relaxed: see the child's load.
    stop.store(1, Ordering::Relaxed);
    assert_eq!(child.wait(), shmkit_testkit::Exit::Code(0));
    assert!(
        opened > 0,
        "the valid header was never seen in {rounds} opens"
    );
    drop(seg);
}
