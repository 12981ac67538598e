//! The JSON bodies of the SOGS HTTP API subset a gateway uses (spec §2, §4): room and message
//! objects, poll info, DMs, batch sub-requests and their replies, and the request paths.
//!
//! Servers add fields over time and omit optional ones, so every struct tolerates unknown keys
//! and treats absent optional keys as absent; binary fields stay base64 strings here and are
//! decoded (and checked) where they are used.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::url::check_room_token;
use crate::err::CommunityError;

/// `GET /capabilities` → `{"capabilities": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Sorted capability names, e.g. `["blind", "reactions", "sogs"]`.
    pub capabilities: Vec<String>,
    /// With `?required=…`: the ones the server lacks (412).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
}

impl Capabilities {
    /// Whether the server requires blinded IDs.
    pub fn blind(&self) -> bool {
        self.capabilities.iter().any(|c| c == "blind")
    }
}

/// What the caller may do in a room (part of the room object and of pollInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Access {
    /// Whether the caller may read.
    #[serde(default)]
    pub read: bool,
    /// Whether the caller may post.
    #[serde(default)]
    pub write: bool,
    /// Whether the caller may upload.
    #[serde(default)]
    pub upload: bool,
    /// Present (true) when the caller moderates the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderator: Option<bool>,
    /// Present (true) when the caller administers the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    /// Present (true) for global moderators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_moderator: Option<bool>,
    /// Present (true) for global admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_admin: Option<bool>,
}

impl Access {
    /// Whether the caller moderates the room (room or global moderator or admin).
    pub fn is_moderator(&self) -> bool {
        [
            self.moderator,
            self.admin,
            self.global_moderator,
            self.global_admin,
        ]
        .contains(&Some(true))
    }
}

/// A pinned message in a room object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pinned {
    /// Message id.
    pub id: i64,
    /// When it was pinned (Unix seconds).
    pub pinned_at: f64,
    /// Who pinned it.
    pub pinned_by: String,
}

/// A room object (`GET /room/R`, `details` of pollInfo, entries of `GET /rooms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RoomInfo {
    /// The room token.
    pub token: String,
    /// Display name.
    pub name: String,
    /// Description, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Room image file id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<i64>,
    /// Increases whenever the metadata changes.
    #[serde(default)]
    pub info_updates: i64,
    /// The room's latest message seqno.
    #[serde(default)]
    pub message_sequence: i64,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: f64,
    /// Users active within `active_users_cutoff`.
    #[serde(default)]
    pub active_users: i64,
    /// Seconds.
    #[serde(default)]
    pub active_users_cutoff: i64,
    /// Visible moderators.
    #[serde(default)]
    pub moderators: Vec<String>,
    /// Visible admins.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Hidden moderators (shown to moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_moderators: Option<Vec<String>>,
    /// Hidden admins (shown to moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_admins: Option<Vec<String>>,
    /// Pinned messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_messages: Option<Vec<Pinned>>,
    /// What the caller may do.
    #[serde(flatten)]
    pub access: Access,
    /// Room default (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_read: Option<bool>,
    /// Room default (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_accessible: Option<bool>,
    /// Room default (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_write: Option<bool>,
    /// Room default (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_upload: Option<bool>,
}

/// `GET /room/R/pollInfo/N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PollInfo {
    /// The room token.
    pub token: String,
    /// Active users.
    #[serde(default)]
    pub active_users: i64,
    /// What the caller may do.
    #[serde(flatten)]
    pub access: Access,
    /// The full room object, only when `info_updates` differs from the number asked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<RoomInfo>,
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Reaction {
    /// Order of first use on this message.
    #[serde(default)]
    pub index: i64,
    /// How many users reacted.
    pub count: i64,
    /// Up to `reactors` session IDs, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactors: Option<Vec<String>>,
    /// Present (true) when the caller reacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub you: Option<bool>,
}

/// A message row from `messages/since`, `messages/recent`, `message/ID` or the `POST` reply.
///
/// Three shapes: a post (`data` and `signature`), a deletion (`data: null`, `deleted: true`),
/// and a reaction-only update (`id`, `seqno`, `reactions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RoomMessage {
    /// Server message id.
    pub id: i64,
    /// Event counter (not an ordering key).
    #[serde(default)]
    pub seqno: i64,
    /// `15…` (or `05…` on unblinded servers); absent on reaction-only rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Unix seconds (float).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted: Option<f64>,
    /// Unix seconds, when edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<f64>,
    /// base64 of the padded Content; `null` when deleted. Absent on reaction-only rows.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub data: Option<Option<String>>,
    /// base64 of the 64-byte signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Present (true) for deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// Whisper flags (moderator-only messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper: Option<bool>,
    /// Whisper to moderators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_mods: Option<bool>,
    /// Whisper to one user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_to: Option<String>,
    /// Reactions by emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<BTreeMap<String, Reaction>>,
}

/// `data` is `absent`, `null` or a string; serde's `Option` would merge the first two.
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().and_then(|x| x.as_ref()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

impl RoomMessage {
    /// A row carrying only reactions (`id`, `seqno`, `reactions`).
    pub fn is_reaction_only(&self) -> bool {
        self.data.is_none() && self.session_id.is_none() && self.deleted.is_none()
    }
    /// A deletion row.
    pub fn is_deleted(&self) -> bool {
        self.deleted == Some(true) || matches!(self.data, Some(None))
    }
}

/// `POST /room/R/message` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostMessage {
    /// base64 of the padded Content.
    pub data: String,
    /// base64 of the 64-byte signature.
    pub signature: String,
    /// Whisper to one user (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_to: Option<String>,
    /// Whisper to moderators (moderators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_mods: Option<bool>,
    /// Room file ids the post refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<i64>>,
}

/// A community DM row (`/inbox`, `/outbox`, and the `POST /inbox/ID` reply without `message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// Server id.
    pub id: i64,
    /// Unix seconds.
    pub posted_at: f64,
    /// Unix seconds.
    pub expires_at: f64,
    /// `15…` sender.
    pub sender: String,
    /// `15…` recipient.
    pub recipient: String,
    /// base64 of the encrypted DM; absent in the `POST` reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /inbox/ID` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendDirectMessage {
    /// base64 of the encrypted DM.
    pub message: String,
}

/// One sub-request of `POST /batch` or `/sequence`: `{method, path, headers?, json?|b64?|bytes?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubRequest {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// Path with query, starting with `/`.
    pub path: String,
    /// Extra headers (rarely used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// A JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// A binary body, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
    /// A text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

impl SubRequest {
    /// A `GET path`.
    pub fn get(path: impl Into<String>) -> SubRequest {
        SubRequest {
            method: "GET".into(),
            path: path.into(),
            headers: None,
            json: None,
            b64: None,
            bytes: None,
        }
    }
    /// `method path` with a JSON body.
    pub fn with_json(method: &str, path: impl Into<String>, json: Value) -> SubRequest {
        SubRequest {
            json: Some(json),
            method: method.into(),
            ..SubRequest::get(path)
        }
    }

    /// Checks what pysogs checks: a path starting with `/`, at most one body, a body only on
    /// POST/PUT. Returns the body bytes (JSON serialised, base64 decoded) and whether it is JSON.
    pub fn body(&self) -> Result<Option<(Vec<u8>, bool)>, CommunityError> {
        let bad = |reason| CommunityError::BadField {
            field: "batch sub-request",
            reason,
        };
        if !self.path.starts_with('/') {
            return Err(bad("path must start with /"));
        }
        let count = [
            self.json.is_some(),
            self.b64.is_some(),
            self.bytes.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if count > 1 {
            return Err(bad("at most one of json, b64, bytes"));
        }
        if count == 1 && !(self.method == "POST" || self.method == "PUT") {
            return Err(bad("only POST and PUT sub-requests take a body"));
        }
        Ok(if let Some(j) = &self.json {
            Some((j.to_string().into_bytes(), true))
        } else if let Some(b) = &self.b64 {
            Some((
                super::auth::decode_b64(b).ok_or(bad("b64 is not valid base64"))?,
                false,
            ))
        } else {
            self.bytes.as_ref().map(|s| (s.clone().into_bytes(), false))
        })
    }
}

/// One reply of a batch: `{code, headers, body}`; `body` is JSON for JSON replies, a base64
/// string otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubResponse {
    /// HTTP status.
    pub code: u16,
    /// Reply headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(default)]
    pub body: Value,
}

impl SubResponse {
    /// A JSON reply.
    pub fn json(code: u16, body: Value) -> SubResponse {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "application/json".into());
        SubResponse {
            code,
            headers,
            body,
        }
    }
    /// A non-JSON reply (text or bytes): the body is base64 in the batch.
    pub fn bytes(code: u16, content_type: &str, body: &[u8]) -> SubResponse {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), content_type.into());
        SubResponse {
            code,
            headers,
            body: Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
        }
    }
    /// Whether the code is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Request paths for one room, checked once (the token is `[A-Za-z0-9_-]`, so paths need no
/// escaping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPaths {
    token: String,
}

impl RoomPaths {
    /// Paths for a room token.
    pub fn new(token: &str) -> Result<RoomPaths, CommunityError> {
        check_room_token(token)?;
        Ok(RoomPaths {
            token: token.to_owned(),
        })
    }
    /// `/room/R`.
    pub fn info(&self) -> String {
        format!("/room/{}", self.token)
    }
    /// `/room/R/pollInfo/N`.
    pub fn poll_info(&self, info_updates: i64) -> String {
        format!("/room/{}/pollInfo/{info_updates}", self.token)
    }
    /// `/room/R/messages/since/N?t=r&reactors=5`, or `/room/R/messages/recent?reactors=5`
    /// without a cursor (desktop's poll).
    pub fn messages_since(&self, seqno: Option<i64>) -> String {
        match seqno {
            Some(n) => format!("/room/{}/messages/since/{n}?t=r&reactors=5", self.token),
            None => format!("/room/{}/messages/recent?reactors=5", self.token),
        }
    }
    /// `/room/R/message` (POST).
    pub fn post(&self) -> String {
        format!("/room/{}/message", self.token)
    }
    /// `/room/R/message/ID` (GET, PUT, DELETE).
    pub fn message(&self, id: i64) -> String {
        format!("/room/{}/message/{id}", self.token)
    }
    /// `/room/R/reaction/ID/EMOJI` (PUT, DELETE), the emoji unencoded as it is signed.
    pub fn reaction(&self, id: i64, emoji: &str) -> String {
        format!("/room/{}/reaction/{id}/{emoji}", self.token)
    }
}

/// The poll batch of one room (spec §2.4): capabilities, pollInfo, messages since the cursor,
/// and (on blinded servers) inbox and outbox since their cursors.
pub fn poll_batch(
    room: &RoomPaths,
    seqno: Option<i64>,
    inbox_since: Option<Option<i64>>,
    outbox_since: Option<Option<i64>>,
) -> Vec<SubRequest> {
    let mut reqs = vec![
        SubRequest::get("/capabilities"),
        SubRequest::get(room.poll_info(0)),
        SubRequest::get(room.messages_since(seqno)),
    ];
    for (base, since) in [("/inbox", inbox_since), ("/outbox", outbox_since)] {
        match since {
            Some(Some(id)) => reqs.push(SubRequest::get(format!("{base}/since/{id}"))),
            Some(None) => reqs.push(SubRequest::get(base)),
            None => {}
        }
    }
    reqs
}
