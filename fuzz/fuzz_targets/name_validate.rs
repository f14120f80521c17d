//! Coverage-guided fuzzing of POSIX name validation: an accepted name is always a
//! single entry directly inside `/dev/shm`. Shares
//! `shmkit_segment::fuzz::name_validate` with the proptest harness
//! (`crates/segment/tests/fuzz.rs`, `names_never_escape_dev_shm`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = shmkit_segment::fuzz::name_validate(name);
    }
});
