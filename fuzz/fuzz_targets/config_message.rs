//! Config messages after decryption: the plaintext classifier (padding, zstd, multipart parts),
//! the legacy protobuf wrapper, the symmetric decryption, and ConfigMessage parsing with its
//! serializer round trip (unsigned, and verified against a fixed key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::config::crypt::{self, Part};
use session_proto::config::object::USER_PROFILE;
use session_proto::config::wrap;
use session_proto::config::ConfigMessage;

fuzz_target!(|data: &[u8]| {
    let own = sessiond_fuzz::recipient();
    let _ = crypt::classify(data);
    let _ = Part::parse(data);
    let _ = crypt::unpack(data);
    let _ = wrap::unwrap_any(&own, data, USER_PROFILE.namespace);
    let _ = crypt::decrypt(data, own.seed(), USER_PROFILE.domain);
    let verifier = own.signing_key().verifying_key();
    let _ = ConfigMessage::parse(data, Some(&verifier), 5, false);
    for trust in [false, true] {
        if let Ok(m) = ConfigMessage::parse(data, None, 5, trust) {
            let _ = m.own_diff();
            let bytes = m.serialize(None);
            let again = ConfigMessage::parse(&bytes, None, 5, trust)
                .expect("a serialized config message parses");
            assert_eq!(again.seqno(), m.seqno());
            assert_eq!(again.serialize(None), bytes, "serialization is stable");
        }
    }
});
