//! The snode (relay) side of onion requests: a whole `/onion_req/v2` body peeled with a fixed
//! node key, and (selector odd) the input as the decrypted layer itself, sealed to the node with a
//! fixed ephemeral key so the routing JSON, the inner frame and hop counting are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::onion::{
    encode_frame, open_server_request, peel, x25519_public, EncType, LayerKey, NodeKeys, PeerKey,
};
use sessiond_fuzz::split_selector;

const NODE_SECRET: [u8; 32] = [0x33; 32];
const EPHEMERAL: [u8; 32] = [0x44; 32];

fuzz_target!(|data: &[u8]| {
    let node = NodeKeys::new(NODE_SECRET);
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let body = if sel & 1 == 0 {
        rest.to_vec()
    } else {
        let enc = if sel & 2 == 0 {
            EncType::AesGcm
        } else {
            EncType::XChaCha20
        };
        let a_pub = x25519_public(&EPHEMERAL);
        let Ok(key) = LayerKey::for_sender(enc, &EPHEMERAL, &a_pub, &PeerKey::new(*node.public()))
        else {
            return;
        };
        let nonce = vec![0x55; enc.nonce_len()];
        let mut blob = Vec::new();
        key.encrypt_with_nonce(&nonce, rest, &mut blob);
        let meta = format!(
            r#"{{"ephemeral_key":"{}","enc_type":"{}","hop_no":{}}}"#,
            hex_lower(&a_pub),
            enc.as_str(),
            sel >> 2
        );
        encode_frame(&blob, meta.as_bytes())
    };
    if let Ok(peeled) = peel(&node, &body) {
        let _ = format!("{peeled:?}");
    }
    let _ = open_server_request(&node, &body);
});

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
