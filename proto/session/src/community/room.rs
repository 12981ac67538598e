//! Room messages (spec §3): what is posted is the Content itself, padded and signed (no
//! Envelope, no encryption); what is read back is checked against the poster's blinded key.
//!
//! Post: `data = pad160(Content)`, `signature = blind15_sign(data)`, both base64 in
//! `{"data", "signature"}`. Read: drop reaction-only rows, handle deletions, verify the
//! signature over the decoded `data` (plain Ed25519 for `15`/`25`, XEd25519 for `05`), unpad,
//! parse Content (a bare Content, or an old client's Envelope), and drop it when
//! `sigTimestamp` is more than 6 h from the server's `posted`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use prost::Message as _;

use super::api::{PostMessage, Reaction, RoomMessage};
use super::auth::decode_b64;
use super::blinding::{verify_by_id, Blind15Keys};
use crate::account_id::AccountId;
use crate::err::CommunityError;
use crate::padding::{pad160, unpad};
use crate::protos::{Content, Envelope};

/// How far `Content.sigTimestamp` may be from the server's `posted` time (desktop: 6 h).
pub const MAX_SIG_TIMESTAMP_SKEW_MS: u64 = 6 * 3600 * 1000;

/// Pads and signs a Content for posting; the result serialises to the POST body.
pub fn encode_room_message(keys: &Blind15Keys, content: &Content) -> PostMessage {
    let padded = pad160(&content.encode_to_vec());
    let signature = keys.sign(&padded);
    PostMessage {
        data: STANDARD.encode(&padded),
        signature: STANDARD.encode(signature),
        whisper_to: None,
        whisper_mods: None,
        files: None,
    }
}

/// A verified post read from a room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPost {
    /// Server message id (the key for edits, deletions and reactions).
    pub id: i64,
    /// The event counter of this update.
    pub seqno: i64,
    /// The poster as the server shows them (`15…`).
    pub sender: AccountId,
    /// The server's `posted` time, ms.
    pub posted_ms: u64,
    /// The server's `edited` time, ms, when this is an edit.
    pub edited_ms: Option<u64>,
    /// The decoded Content.
    pub content: Content,
    /// Reactions by emoji.
    pub reactions: BTreeMap<String, Reaction>,
}

/// What one row of a messages poll means.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomUpdate {
    /// A new or edited post whose signature verified.
    Post(Box<RoomPost>),
    /// The post with this id was deleted.
    Deleted {
        /// Server message id.
        id: i64,
        /// Event counter.
        seqno: i64,
    },
    /// Only the reactions of a post changed.
    Reactions {
        /// Server message id.
        id: i64,
        /// Event counter.
        seqno: i64,
        /// The reactions now.
        reactions: BTreeMap<String, Reaction>,
    },
}

impl RoomUpdate {
    /// The row's seqno (the poll cursor is the largest seen).
    pub fn seqno(&self) -> i64 {
        match self {
            RoomUpdate::Post(p) => p.seqno,
            RoomUpdate::Deleted { seqno, .. } | RoomUpdate::Reactions { seqno, .. } => *seqno,
        }
    }
}

/// `floor(seconds * 1000)`, clamped to 0 for negative or non-finite values.
fn secs_to_ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).floor() as u64
    } else {
        0
    }
}

/// Classifies and checks one message row. A post that fails a check is an error (the caller
/// skips it with the reason); its `id`/`seqno` are still in the row for the cursor.
pub fn read_room_message(msg: &RoomMessage) -> Result<RoomUpdate, CommunityError> {
    if msg.is_reaction_only() {
        return Ok(RoomUpdate::Reactions {
            id: msg.id,
            seqno: msg.seqno,
            reactions: msg.reactions.clone().unwrap_or_default(),
        });
    }
    if msg.is_deleted() {
        return Ok(RoomUpdate::Deleted {
            id: msg.id,
            seqno: msg.seqno,
        });
    }
    let bad = |field, reason| CommunityError::BadField { field, reason };
    let sender = msg
        .session_id
        .as_deref()
        .ok_or(bad("session_id", "missing"))
        .and_then(|s| AccountId::parse_raw(s).map_err(|_| bad("session_id", "not 66 hex")))?;
    let data = msg
        .data
        .as_ref()
        .and_then(|d| d.as_deref())
        .ok_or(bad("data", "missing"))?;
    let data = decode_b64(data).ok_or(bad("data", "not base64"))?;
    let signature: [u8; 64] = msg
        .signature
        .as_deref()
        .and_then(decode_b64)
        .and_then(|s| s.try_into().ok())
        .ok_or(bad("signature", "not 64 bytes of base64"))?;
    verify_by_id(&sender, &data, &signature)?;
    let content = decode_community_content(&data)?;
    let posted_ms = secs_to_ms(msg.posted.unwrap_or(0.0));
    if let Some(sig_ts) = content.sig_timestamp.filter(|&t| t != 0) {
        if sig_ts.abs_diff(posted_ms) > MAX_SIG_TIMESTAMP_SKEW_MS {
            return Err(CommunityError::StaleTimestamp {
                sig_timestamp_ms: sig_ts,
                posted_ms,
            });
        }
    }
    Ok(RoomUpdate::Post(Box::new(RoomPost {
        id: msg.id,
        seqno: msg.seqno,
        sender,
        posted_ms,
        edited_ms: msg.edited.map(secs_to_ms),
        content,
        reactions: msg.reactions.clone().unwrap_or_default(),
    })))
}

/// Unpads and parses the Content of a room post or community DM: a bare Content, or (from old
/// clients) an Envelope whose `content` is the Content.
pub fn decode_community_content(padded: &[u8]) -> Result<Content, CommunityError> {
    let bytes = unpad(padded);
    match Content::decode(bytes) {
        Ok(c) => Ok(c),
        Err(e) => match Envelope::decode(bytes) {
            Ok(env) => match env.content {
                Some(inner) => Content::decode(unpad(&inner)).map_err(CommunityError::Content),
                None => Err(CommunityError::Content(e)),
            },
            Err(_) => Err(CommunityError::Content(e)),
        },
    }
}
