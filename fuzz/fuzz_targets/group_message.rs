//! Group messages (ns 11) and the group payloads beside them. Selector:
//! 0 the input as a retrieved group message, decrypted with the fixed group's key;
//! 1 the input as the Envelope inside, encrypted and signed by a fixed member first (bit 4
//!   picks zstd), so the Envelope and Content checks behind the decryption are reached;
//! 2 a GroupUpdateMessage (control message) read as from the group and as one-to-one;
//! 3 a multi-recipient message and a kicked notice for the fixed member;
//! 4 Content bytes checked for legacy groups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use session_proto::groups::control::{read_direct_update, read_group_update};
use session_proto::groups::legacy;
use session_proto::groups::message::{
    decrypt_group_data, decrypt_group_message, encrypt_group_data_with_nonce,
};
use session_proto::groups::multi::{decrypt_simple, read_kicked_notice};
use session_proto::protos::GroupUpdateMessage;
use sessiond_fuzz::{group_admin, recipient, sender, split_selector};

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let own = recipient();
    let keys = group_admin();
    let group_pk = *keys.group_public_key();
    match sel % 5 {
        0 => {
            let _ = decrypt_group_data(&keys, rest);
            let _ = decrypt_group_message(&keys, rest);
        }
        1 => {
            let Some(key) = keys.encryption_key() else {
                return;
            };
            let Ok(ct) = encrypt_group_data_with_nonce(
                &sender(),
                &group_pk,
                key.key(),
                rest,
                sel & 16 != 0,
                &[0x31; 24],
            ) else {
                return;
            };
            let _ = decrypt_group_message(&keys, &ct);
        }
        2 => {
            if let Ok(update) = GroupUpdateMessage::decode(rest) {
                let _ = read_group_update(&group_pk, 1_700_000_000_000, &update);
                let _ = read_direct_update(&own, sender().account_id(), 1_700_000_000_000, &update);
            }
        }
        3 => {
            let _ = decrypt_simple(
                &own,
                sender().x25519_public(),
                rest,
                b"SessionGroupKickedMessage",
            );
            let _ = read_kicked_notice(&own, &group_pk, Some(0), rest);
            let _ = read_kicked_notice(&own, &group_pk, None, rest);
        }
        _ => {
            let _ = legacy::in_content(rest);
        }
    }
});
