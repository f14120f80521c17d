//! Coverage-guided fuzzing of everything `open` does with a header another process
//! wrote: the READY wait (deadline already past), one copy of the header, validation
//! against the mapping length and the opener's expectations, and `list()`'s decoding.
//!
//! The input layout (raw header or patches over a valid one, mapping length, options)
//! is documented on `shmkit_segment::fuzz::header_validate_bytes`; the same function
//! runs under `proptest` in `crates/segment/tests/fuzz.rs` (`raw_bytes_never_panic`).
//! Any panic is a finding: the function asserts that a success only ever hands out a
//! payload that fits in the mapping, with the right magic, version, state, size and
//! type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmkit_segment::fuzz::header_validate_bytes(data);
});
