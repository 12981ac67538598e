//! The onion `[u32 len][blob][json]` frame: decoding, and the encoder round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::onion::{decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok((blob, json)) = decode_frame(data) {
        assert_eq!(encode_frame(blob, json), data, "frame round trip");
    }
});
