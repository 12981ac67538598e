//! The legacy protobuf wrapper of user configs: written on send for older clients, optional on
//! receive.
//!
//! ```text
//! WebSocketMessage{type=REQUEST, request{verb:"", path:"", id:0,
//!   body = Envelope{type=SESSION_MESSAGE, timestamp=1,
//!     content = sealed box to our own X25519 key, deterministic (message.rs), holding
//!       Content{sharedConfigMessage(11){kind(1)=ns−1, seqno(2), data(3)=config ciphertext}} || 0x80}}}
//! ```
//!
//! Unwrapping requires the sealed box to be signed by our own Ed25519 key and the kind to match
//! the namespace. One client release wrapped twice, so readers try a second unwrap.

use prost::Message as _;

use crate::err::ConfigError;
use crate::keys::IdentityKeys;
use crate::message::{decrypt_incoming, encrypt_for_recipient_deterministic, wrap_sealed};
use crate::protos::WebSocketMessage;
use crate::protos::{websocket::web_socket_message, Envelope};

/// `Content` with only field 11, `sharedConfigMessage` (reserved in the current Session proto).
#[derive(Clone, PartialEq, prost::Message)]
struct ConfigContent {
    #[prost(message, optional, tag = "11")]
    shared_config_message: Option<SharedConfigMessage>,
}

/// `SharedConfigMessage{kind, seqno, data}` (all proto2 `required`).
#[derive(Clone, PartialEq, prost::Message)]
struct SharedConfigMessage {
    #[prost(int32, required, tag = "1")]
    kind: i32,
    #[prost(int64, required, tag = "2")]
    seqno: i64,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
}

/// `SharedConfigMessage.kind` of a user-config namespace (2..=5 → 1..=4).
fn kind_of(namespace: i16) -> Option<i32> {
    (2..=5)
        .contains(&namespace)
        .then(|| i32::from(namespace) - 1)
}

/// Wraps an encrypted config of `namespace` (2..=5) for storing. Returns `None` for other
/// namespaces, which are never wrapped.
pub fn wrap(own: &IdentityKeys, ciphertext: &[u8], seqno: i64, namespace: i16) -> Option<Vec<u8>> {
    let kind = kind_of(namespace)?;
    let content = ConfigContent {
        shared_config_message: Some(SharedConfigMessage {
            kind,
            seqno,
            data: ciphertext.to_vec(),
        }),
    };
    let mut plain = content.encode_to_vec();
    plain.push(0x80);
    let sealed = encrypt_for_recipient_deterministic(own, own.x25519_public(), &plain)
        .expect("our own X25519 key is a valid recipient");
    // Timestamp 1 and no source device, as libsession writes the wrapper.
    Some(wrap_sealed(sealed, 1, None, None))
}

/// Unwraps one layer. Errors mean "not wrapped (by us, for this namespace)"; callers then treat
/// the bytes as a bare ciphertext.
pub fn unwrap(own: &IdentityKeys, data: &[u8], namespace: i16) -> Result<Vec<u8>, ConfigError> {
    let kind = kind_of(namespace).ok_or(ConfigError::Wrapper("namespace is never wrapped"))?;
    let ws = WebSocketMessage::decode(data)
        .map_err(|_| ConfigError::Wrapper("not a WebSocketMessage"))?;
    if ws.r#type != Some(web_socket_message::Type::Request as i32) {
        return Err(ConfigError::Wrapper("not a request"));
    }
    let body = ws
        .request
        .and_then(|r| r.body)
        .ok_or(ConfigError::Wrapper("no request body"))?;
    let env =
        Envelope::decode(body.as_slice()).map_err(|_| ConfigError::Wrapper("bad Envelope"))?;
    let ct = env
        .content
        .ok_or(ConfigError::Wrapper("Envelope without content"))?;
    let opened =
        decrypt_incoming(own, &ct).map_err(|_| ConfigError::Wrapper("sealed box did not open"))?;
    if &opened.sender_ed25519 != own.ed25519_public() {
        return Err(ConfigError::Wrapper("not from our own key"));
    }
    let mut plain = opened.plaintext;
    match plain.iter().rposition(|&b| b != 0) {
        Some(i) if plain[i] == 0x80 => plain.truncate(i),
        _ => return Err(ConfigError::Wrapper("invalid padding")),
    }
    let content =
        ConfigContent::decode(plain.as_slice()).map_err(|_| ConfigError::Wrapper("bad Content"))?;
    let shared = content
        .shared_config_message
        .ok_or(ConfigError::Wrapper("no sharedConfigMessage"))?;
    if shared.kind != kind {
        return Err(ConfigError::Wrapper("wrong kind for the namespace"));
    }
    Ok(shared.data)
}

/// Unwraps up to two layers; returns the bytes unchanged when they are not wrapped.
pub fn unwrap_any(own: &IdentityKeys, data: &[u8], namespace: i16) -> Vec<u8> {
    match unwrap(own, data, namespace) {
        Ok(once) => unwrap(own, &once, namespace).unwrap_or(once),
        Err(_) => data.to_vec(),
    }
}
