//! Recovery passwords typed or pasted by a user: decode with and without the checksum word,
//! and the encode round trip of whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::mnemonic::{decode, decode_recovery_password, encode, encode_recovery_password};

fuzz_target!(|data: &[u8]| {
    let Ok(phrase) = std::str::from_utf8(data) else {
        return;
    };
    for checksum in [true, false] {
        if let Ok(bytes) = decode(phrase, checksum) {
            if let Ok(words) = encode(&bytes, checksum) {
                let again = decode(&words, checksum).expect("an encoded phrase decodes");
                assert_eq!(*again, *bytes);
            }
        }
    }
    if let Ok(seed) = decode_recovery_password(phrase) {
        let words = encode_recovery_password(&seed);
        assert_eq!(
            *decode_recovery_password(&words).expect("round trip"),
            *seed
        );
    }
});
