//! Communities (SOGS): replies and room rows from a server, URLs, auth headers, DMs. Selector:
//! 0 a messages-poll reply (JSON rows) read row by row;
//! 1 the input as the padded Content of a post, signed by a fixed blinded key, read as a row;
//! 2 other replies: batch sub-responses, room info, poll info, capabilities, inbox rows;
//! 3 community and server URLs (Display round trip), server keys, room tokens;
//! 4 X-SOGS-* headers (four lines) as a server checks them;
//! 5 a DM's wire bytes for a fixed blinded recipient; 6 the input as a DM's Content, encrypted
//!   by a fixed blinded sender first; 7 Content of a post or DM (bare or in an Envelope).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use session_proto::community::api::{Capabilities, DirectMessage, PollInfo, RoomInfo};
use session_proto::community::dm::encrypt_dm_with_nonce;
use session_proto::community::room::decode_community_content;
use session_proto::community::url::{check_room_token, parse_server_pubkey};
use session_proto::community::{
    decrypt_dm, parse_auth, read_room_message, AuthHeaders, Blind15Keys, CommunityUrl, RoomMessage,
    ServerUrl, SubResponse,
};
use sessiond_fuzz::{recipient, sender, split_selector};

const SERVER_PK: [u8; 32] = [
    0xef, 0xcf, 0x03, 0x3f, 0x8e, 0x32, 0x6a, 0x62, 0x1d, 0x3c, 0x8f, 0x31, 0x0a, 0x0e, 0x0c, 0x6b,
    0x2c, 0x4e, 0x58, 0xb5, 0x3e, 0x57, 0x4f, 0x38, 0x28, 0xc2, 0x5b, 0x7d, 0x1f, 0xb6, 0x6d, 0x2a,
];

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    match sel % 8 {
        0 => {
            if let Ok(rows) = serde_json::from_slice::<Vec<RoomMessage>>(rest) {
                for row in &rows {
                    let _ = read_room_message(row);
                }
            }
        }
        1 => {
            let keys = Blind15Keys::new(&sender(), &SERVER_PK);
            let row = RoomMessage {
                id: 1,
                seqno: 1,
                session_id: Some(keys.id().to_string()),
                posted: Some(1_700_000_000.5),
                data: Some(Some(STANDARD.encode(rest))),
                signature: Some(STANDARD.encode(keys.sign(rest))),
                ..RoomMessage::default()
            };
            let _ = read_room_message(&row);
        }
        2 => {
            let _ = serde_json::from_slice::<Vec<SubResponse>>(rest);
            let _ = serde_json::from_slice::<RoomInfo>(rest);
            let _ = serde_json::from_slice::<PollInfo>(rest);
            let _ = serde_json::from_slice::<Capabilities>(rest).map(|c| c.blind());
            let _ = serde_json::from_slice::<Vec<DirectMessage>>(rest);
        }
        3 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(url) = s.parse::<CommunityUrl>() {
                let text = url.to_string();
                let again: CommunityUrl = text.parse().expect("a formatted community URL parses");
                assert_eq!(again.to_string(), text);
            }
            if let Ok(url) = s.parse::<ServerUrl>() {
                let text = url.to_string();
                let again: ServerUrl = text.parse().expect("a formatted server URL parses");
                assert_eq!(again.to_string(), text);
            }
            let _ = parse_server_pubkey(s);
            let _ = check_room_token(s);
        }
        4 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            let mut lines = s.split('\n');
            let h = AuthHeaders {
                pubkey: lines.next(),
                nonce: lines.next(),
                timestamp: lines.next(),
                signature: lines.next(),
            };
            for blinded in [false, true] {
                if let Ok(Some(auth)) = parse_auth(&h, 1_700_000_000, blinded) {
                    let _ = auth.verify(&SERVER_PK, "GET", "/room/r", b"");
                }
            }
        }
        5 | 6 => {
            let own = Blind15Keys::new(&recipient(), &SERVER_PK);
            let them = Blind15Keys::new(&sender(), &SERVER_PK);
            let wire = if sel % 8 == 5 {
                rest.to_vec()
            } else {
                let Ok(w) = encrypt_dm_with_nonce(&them, own.id(), rest, &[0x12; 24]) else {
                    return;
                };
                w
            };
            if let Ok(dm) = decrypt_dm(&own, them.id(), own.id(), &wire) {
                assert_eq!(&dm.sender, sender().account_id());
            }
        }
        _ => {
            let _ = decode_community_content(rest);
        }
    }
});
