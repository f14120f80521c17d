//! Coverage-guided fuzzing of the Zenoh bridge's envelope decoder (bytes from the
//! network): a typed error or an envelope, never a panic; what decodes re-encodes to
//! the same bytes. The proptest harness is `shmkit_zenoh::envelope`'s unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit_zenoh::envelope::{decode, encode_ack, encode_data, Envelope};

fuzz_target!(|data: &[u8]| {
    let mut again = Vec::new();
    match decode(data) {
        Ok(Envelope::Data { source, seq, payload }) => encode_data(&mut again, source, seq, payload),
        Ok(Envelope::Ack { source, delivered, window }) => {
            encode_ack(&mut again, false, source, delivered, window)
        }
        Ok(Envelope::Announce { source, delivered, window }) => {
            encode_ack(&mut again, true, source, delivered, window)
        }
        Err(_) => return,
    }
    assert_eq!(again, data);
});
