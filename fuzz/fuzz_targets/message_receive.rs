//! The one-to-one receive path on raw bytes from the swarm: WebSocketMessage, Envelope, the
//! sealed box for a fixed recipient key, Content; and the base64 `data` field form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::message::{classify, decrypt_incoming, decrypt_message, decrypt_store_data};

fuzz_target!(|data: &[u8]| {
    let own = sessiond_fuzz::recipient();
    if let Ok(incoming) = decrypt_message(&own, data) {
        let _ = classify(&incoming.content);
    }
    let _ = decrypt_incoming(&own, data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decrypt_store_data(&own, s);
    }
});
