//! The one-to-one receive path past decryption: the input is a Content plaintext (padding
//! included or not), sealed and signed by a fixed sender for a fixed recipient, wrapped in an
//! Envelope and a WebSocketMessage as a real sender would, then received in full. The first
//! eight bytes are the Envelope timestamp, so the sigTimestamp check is reached both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use session_proto::message::{classify, decrypt_message, encrypt_for_recipient_deterministic};
use session_proto::protos::{
    envelope, web_socket_message, Envelope, WebSocketMessage, WebSocketRequestMessage,
};

fuzz_target!(|data: &[u8]| {
    let Some((ts, plaintext)) = data.split_first_chunk::<8>() else {
        return;
    };
    let own = sessiond_fuzz::recipient();
    let sender = sessiond_fuzz::sender();
    let Ok(ct) = encrypt_for_recipient_deterministic(&sender, own.x25519_public(), plaintext)
    else {
        return;
    };
    let env = Envelope {
        r#type: envelope::Type::SessionMessage as i32,
        source: None,
        timestamp: u64::from_le_bytes(*ts),
        source_device: Some(1),
        content: Some(ct),
        server_timestamp: None,
        pro_sig: None,
    };
    let ws = WebSocketMessage {
        r#type: Some(web_socket_message::Type::Request as i32),
        request: Some(WebSocketRequestMessage {
            verb: Some(String::new()),
            path: Some(String::new()),
            body: Some(env.encode_to_vec()),
            headers: Vec::new(),
            id: Some(0),
        }),
        response: None,
    };
    if let Ok(incoming) = decrypt_message(&own, &ws.encode_to_vec()) {
        assert_eq!(&incoming.sender, sender.account_id());
        let _ = classify(&incoming.content);
    }
});
