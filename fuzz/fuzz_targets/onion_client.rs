//! The client side of onion replies: a snode destination's `{"status","body"}` reply (base64 or
//! raw) and a server's v4 (bencoded) reply. Selector even: the input is the HTTP body as
//! received; odd: the input is the reply plaintext, encrypted under the fixed layer key first so
//! the JSON and bencode parsers behind the decryption are reached.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use session_proto::onion::{EncType, LayerKey, ReplyHandle};
use sessiond_fuzz::split_selector;

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let enc = if sel & 2 == 0 {
        EncType::AesGcm
    } else {
        EncType::XChaCha20
    };
    let key = LayerKey::derive(enc, &[0x66; 32], &[0x77; 32], &[0x88; 32]);
    let handle = ReplyHandle::new(key.clone());
    if sel & 1 == 0 {
        let _ = handle.open_snode_reply(rest);
        let _ = handle.open_v4_reply(rest);
        let _ = handle.open(rest);
        return;
    }
    let mut ct = Vec::new();
    key.encrypt_with_nonce(&vec![0x99; enc.nonce_len()], rest, &mut ct);
    let _ = handle.open_v4_reply(&ct);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&ct);
    let via_b64 = handle.open_snode_reply(b64.as_bytes());
    let via_raw = handle.open_snode_reply(&ct);
    // A raw body that happens to be base64 text would be taken as base64; ours never is when
    // it decrypts, so both forms must agree.
    if let (Ok(a), Ok(b)) = (&via_b64, &via_raw) {
        assert_eq!(a, b);
    }
});
