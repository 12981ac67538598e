//! Room endpoints: each room is one conversation of the user's identity (`ids::room_id`).
//! createRoom/join open it, leave leaves it, send writes to it, typing/receipts/read markers go
//! to the daemon, and state/members/messages are read from the conversation and its event log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};
use sessiond_api::v1::{
    LeaveConversationRequest, ListEventsRequest, MarkConversationReadRequest,
    OpenConversationRequest, SendMessageRequest, SendTypingRequest, SetContactNameRequest,
};
use tonic::Code;

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::{with_room, Membership};
use crate::http::{Answer, Body, Json, Path, Query};
use crate::ids::{parse_event_id, parse_room, parse_user, LocalUser, StreamToken};
use crate::kinds::Loaded;
use crate::state::Shared;
use crate::sync::clamp_number;

/// `/messages` answers at most this many events per page (larger `limit`s are clamped).
pub const MAX_PAGE: u64 = 100;
/// `/messages` without a `limit`.
const DEFAULT_PAGE: u64 = 10;
/// Idempotency keys are at most this long (the daemon's limit).
const MAX_KEY_LEN: usize = 128;

/// The peer of `room` if it is one of the user's rooms by its id (the conversation may not
/// exist yet).
fn peer_of(s: &Shared, me: &Me, room: &str) -> Result<String, MatrixError> {
    parse_room(room, me.name(), &s.config.server_name).ok_or(MatrixError::NotInRoom)
}

/// The conversation behind `room`; `NotInRoom` if there is none (or the id is not the user's).
pub(crate) async fn conversation(s: &Shared, me: &Me, room: &str) -> Result<Loaded, MatrixError> {
    let peer = peer_of(s, me, room)?;
    crate::kinds::load(me, &peer)
        .await?
        .ok_or(MatrixError::NotInRoom)
}

/// Like [`conversation`], and the user must be in the room (joined, not invited or left).
pub(crate) async fn joined(s: &Shared, me: &Me, room: &str) -> Result<Loaded, MatrixError> {
    let conv = conversation(s, me, room).await?;
    if conv.membership() != Membership::Join {
        return Err(MatrixError::NotInRoom);
    }
    Ok(conv)
}

/// Opens the conversation with `peer`; answers its room id.
async fn open(s: &Shared, me: &Me, peer: &str) -> Answer {
    let conv = me
        .client
        .conversations
        .clone()
        .open_conversation(OpenConversationRequest {
            identity: me.name().to_owned(),
            account_id: peer.to_owned(),
        })
        .await?
        .into_inner()
        .conversation
        .ok_or_else(|| MatrixError::from(tonic::Status::internal("Open returned nothing")))?;
    Ok(Json(json!({
        "room_id": crate::ids::room_id(me.name(), &conv.account_id, &s.config.server_name)
    })))
}

/// `GET /_matrix/client/v3/joined_rooms`.
pub(crate) async fn joined_rooms(State(s): State<Arc<Shared>>, me: Me) -> Answer {
    let rooms: Vec<String> = crate::kinds::load_all_with(&me, &|_| false)
        .await?
        .iter()
        .filter(|l| l.membership() == Membership::Join)
        .map(|l| crate::ids::room_id(me.name(), l.address(), &s.config.server_name))
        .collect();
    Ok(Json(json!({ "joined_rooms": rooms })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreateRoomBody {
    #[serde(default)]
    pub(crate) invite: Vec<String>,
    #[serde(default)]
    is_direct: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    topic: Option<String>,
}

/// `POST /_matrix/client/v3/createRoom`: a DM with one Session user (`invite:
/// ["@05…:server"]`, or `is_direct`) opens that conversation; a DM with someone met in a
/// community (`invite: ["@15…:server"]`, a room poster) opens a community DM, sent through the
/// server it was met on (`M_NOT_FOUND` for a blinded ID never met); a room with a `name` or several
/// Session users invited (and no `is_direct`) creates a Session group with the user as its
/// admin. Anything else cannot be a Session conversation.
pub(crate) async fn create_room(State(s): State<Arc<Shared>>, me: Me, body: Body) -> Answer {
    let body: CreateRoomBody = body.json()?;
    let server = &s.config.server_name;
    if !body.is_direct && (body.invite.len() > 1 || body.name.is_some()) {
        let room =
            crate::kinds::create_group(&me, server, body.name, body.topic, &body.invite).await?;
        return Ok(Json(json!({ "room_id": room })));
    }
    let only_dms = || {
        MatrixError::Unsupported(
            "a room here is a Session conversation: invite exactly one Session user \
             (@<Account ID>:server) for a one-to-one room, or one community poster \
             (@<blinded ID>:server) for a community DM, or give a name (and invite any \
             number) for a group"
                .into(),
        )
    };
    let [user] = body.invite.as_slice() else {
        return Err(only_dms());
    };
    match parse_user(user, &s.config.server_name, false) {
        Some(LocalUser::Ghost(peer) | LocalUser::Blinded(peer)) => open(&s, &me, &peer).await,
        _ => Err(only_dms()),
    }
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}` and `/rooms/{roomId}/join`: opens the
/// conversation (accepts a message request), accepts a group invitation, or joins a community
/// room by its URL (the percent-encoded URL, or `#<URL>:<server>`, in place of the room id).
pub(crate) async fn join(State(s): State<Arc<Shared>>, me: Me, Path(room): Path<String>) -> Answer {
    let server = &s.config.server_name;
    if let Some(url) = crate::kinds::community_url(&room, server) {
        let id = crate::kinds::join_community(&me, server, url).await?;
        if let Some(address) = parse_room(&id, me.name(), server) {
            s.identity(me.name()).room_changed(&address);
        }
        return Ok(Json(json!({ "room_id": id })));
    }
    let peer = parse_room(&room, me.name(), server).ok_or(MatrixError::UnknownRoom)?;
    if crate::kinds::is_group(&peer) {
        let id = crate::kinds::join_group(&me, server, &peer).await?;
        return Ok(Json(json!({ "room_id": id })));
    }
    if crate::ids::is_room_address(&peer) {
        // Joined already: nothing to do; left: only its URL can join it again.
        return match conversation(&s, &me, &room).await {
            Ok(l) if l.membership() == Membership::Join => Ok(Json(json!({ "room_id": room }))),
            _ => Err(crate::kinds::rejoin_refused()),
        };
    }
    open(&s, &me, &peer).await
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`: leaves the conversation, declines a group
/// invitation or leaves the group, leaves a community room.
pub(crate) async fn leave(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
) -> Answer {
    let peer = peer_of(&s, &me, &room)?;
    if crate::kinds::is_group(&peer) {
        let loaded = conversation(&s, &me, &room).await?;
        crate::kinds::leave_group(&me, &loaded).await?;
        return Ok(Json(json!({})));
    }
    if crate::ids::is_room_address(&peer) {
        crate::kinds::leave_community(&me, &peer).await?;
        s.identity(me.name()).room_changed(&peer);
        return Ok(Json(json!({})));
    }
    me.client
        .conversations
        .clone()
        .leave_conversation(LeaveConversationRequest {
            identity: me.name().to_owned(),
            account_id: peer,
        })
        .await
        .map_err(MatrixError::room)?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`: history stays in the daemon; nothing to do
/// for a room the user has.
pub(crate) async fn forget(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
) -> Answer {
    conversation(&s, &me, &room).await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`: in a group, an admin invites a Session
/// user (with the history); in a one-to-one room the contact is in its room already and nobody
/// else can be.
pub(crate) async fn invite(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
    body: Body,
) -> Answer {
    let body: crate::kinds::UserBody = body.json()?;
    let conv = joined(&s, &me, &room).await?;
    if let crate::kinds::Extra::Group { group, .. } = &conv.extra {
        if !group.admin {
            return Err(MatrixError::Forbidden(
                "only an admin of the group can invite".into(),
            ));
        }
        crate::kinds::invite(&me, &s.config.server_name, conv.address(), &body.user_id).await?;
        return Ok(Json(json!({})));
    }
    if matches!(conv.extra, crate::kinds::Extra::Community { .. }) {
        return Err(MatrixError::Forbidden(
            "a community room is open: share its URL instead of inviting".into(),
        ));
    }
    match parse_user(&body.user_id, &s.config.server_name, false) {
        Some(LocalUser::Ghost(p) | LocalUser::Blinded(p)) if p == conv.address() => {
            Ok(Json(json!({})))
        }
        _ => Err(MatrixError::Forbidden(
            "a Session conversation has exactly two members".into(),
        )),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`: an admin removes a member of a group.
pub(crate) async fn kick(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
    body: Body,
) -> Answer {
    let body: crate::kinds::UserBody = body.json()?;
    let conv = joined(&s, &me, &room).await?;
    crate::kinds::kick(&me, &s.config.server_name, &conv, &body.user_id).await?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state`.
pub(crate) async fn state(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
) -> Answer {
    let conv = conversation(&s, &me, &room).await?;
    let view = conv.view(&me, &s.config.server_name);
    let id = view.room_id();
    Ok(Json(Value::Array(
        view.state()
            .into_iter()
            .map(|e| with_room(e, &id))
            .collect(),
    )))
}

/// The path of a state event: its key may be left out (or empty, with a trailing slash).
#[derive(Debug, Deserialize)]
pub(crate) struct StatePath {
    room: String,
    kind: String,
    #[serde(default)]
    key: String,
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`: the content.
pub(crate) async fn state_event(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(StatePath { room, kind, key }): Path<StatePath>,
) -> Answer {
    let conv = conversation(&s, &me, &room).await?;
    let view = conv.view(&me, &s.config.server_name);
    view.state()
        .into_iter()
        .find(|e| e["type"] == kind && e["state_key"] == key)
        .map(|mut e| Json(e["content"].take()))
        .ok_or_else(|| MatrixError::NotFound("no such state event".into()))
}

#[derive(Debug, Deserialize)]
struct NameBody {
    name: String,
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`: `m.room.name` renames
/// the contact (its local name); other state is fixed by the mapping.
pub(crate) async fn put_state(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(StatePath { room, kind, key }): Path<StatePath>,
    body: Body,
) -> Answer {
    let conv = joined(&s, &me, &room).await?;
    match &conv.extra {
        crate::kinds::Extra::Group { .. } => {
            let id = crate::kinds::put_group_state(
                &me,
                &s.config.server_name,
                &conv,
                &kind,
                &key,
                &body,
            )
            .await?;
            return Ok(Json(json!({ "event_id": id })));
        }
        crate::kinds::Extra::Community { .. } => {
            return Err(MatrixError::Forbidden(format!(
                "{kind} of a community room is set on its server, not here"
            )))
        }
        crate::kinds::Extra::Direct => {}
    }
    let conv = conv.conv;
    if kind == crate::interact::TIMER_EVENT && key.is_empty() {
        return crate::interact::put_timer(&me, &conv.account_id, &body).await;
    }
    if kind != "m.room.name" || !key.is_empty() {
        return Err(MatrixError::Forbidden(format!(
            "{kind} is fixed in a Session conversation; only m.room.name can be set"
        )));
    }
    let body: NameBody = body.json()?;
    me.client
        .conversations
        .clone()
        .set_contact_name(SetContactNameRequest {
            identity: me.name().to_owned(),
            account_id: conv.account_id.clone(),
            name: body.name,
        })
        .await?;
    Ok(Json(json!({
        "event_id": crate::ids::state_event_id("name", &conv.account_id)
    })))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`.
pub(crate) async fn members(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
) -> Answer {
    let conv = conversation(&s, &me, &room).await?;
    let view = conv.view(&me, &s.config.server_name);
    let id = view.room_id();
    let chunk: Vec<Value> = view
        .state()
        .into_iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| with_room(e, &id))
        .collect();
    Ok(Json(json!({ "chunk": chunk })))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`.
pub(crate) async fn joined_members(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
) -> Answer {
    let conv = joined(&s, &me, &room).await?;
    let view = conv.view(&me, &s.config.server_name);
    if let Some(joined) = view.kind_joined() {
        return Ok(Json(json!({ "joined": joined })));
    }
    Ok(Json(json!({ "joined": {
        me.user_id.clone(): { "display_name": me.display_name(), "avatar_url": null },
        view.ghost(): { "display_name": view.peer_name(), "avatar_url": null },
    }})))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`: pages of the conversation's event log.
/// `from`/`to` are positions (`s<seq>`: after that event); `dir` is `b` or `f`.
pub(crate) async fn messages(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
    query: Query,
) -> Answer {
    let conv = conversation(&s, &me, &room).await?;
    let token = |name: &'static str| -> Result<Option<StreamToken>, MatrixError> {
        match query.get(name) {
            None | Some("") => Ok(None),
            Some(t) => StreamToken::parse(t)
                .map(Some)
                .ok_or_else(|| MatrixError::param(name, "not a token this server gave")),
        }
    };
    let from = token("from")?;
    let to = token("to")?;
    let backwards = match query.get("dir") {
        Some("b") => true,
        Some("f") => false,
        _ => return Err(MatrixError::param("dir", "must be b or f")),
    };
    let limit = match query.get("limit") {
        None | Some("") => DEFAULT_PAGE,
        Some(l) => clamp_number(l, 1, MAX_PAGE)
            .ok_or_else(|| MatrixError::param("limit", "not a number"))?,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let (after_seq, before_seq) = if backwards {
        (
            to.map_or(0, |t| t.seq),
            from.map_or(0, |f| f.seq.saturating_add(1)),
        )
    } else {
        (
            from.map_or(0, |f| f.seq),
            to.map_or(0, |t| t.seq.saturating_add(1)),
        )
    };
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq,
            before_seq,
            page_size: i32::try_from(limit.saturating_mul(3).min(1000)).unwrap_or(1000),
            newest_first: backwards,
            peer: conv.address().to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let view = conv.view(&me, &s.config.server_name);
    let ids = s.identity(me.name());
    let room_id = view.room_id();
    let mut chunk = Vec::new();
    let mut last = None;
    let mut full = false;
    for ev in &page.events {
        if chunk.len() == limit {
            full = true;
            break;
        }
        last = Some(ev.seq);
        for v in view.timeline_events(ev, &ids) {
            chunk.push(with_room(v, &room_id));
        }
    }
    // The position after the last examined event in the paging direction.
    let end = match last {
        Some(seq) if full || !page.next_page_token.is_empty() => Some(StreamToken {
            seq: if backwards { seq - 1 } else { seq },
            eph: 0,
        }),
        _ => None,
    };
    let start = from.unwrap_or(StreamToken {
        seq: if backwards { me.identity.last_seq } else { 0 },
        eph: 0,
    });
    let mut out = json!({ "start": start.format(), "chunk": chunk, "state": [] });
    if let Some(end) = end {
        out["end"] = json!(end.format());
    }
    Ok(Json(out))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`.
pub(crate) async fn event(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((room, event)): Path<(String, String)>,
) -> Answer {
    let conv = conversation(&s, &me, &room).await?;
    let view = conv.view(&me, &s.config.server_name);
    let not_found = || MatrixError::NotFound("no such event in this room".into());
    let Some(seq) = parse_event_id(&event) else {
        // A fixed state event?
        return view
            .state()
            .into_iter()
            .find(|e| e["event_id"] == event.as_str())
            .map(|e| Json(with_room(e, &view.room_id())))
            .ok_or_else(not_found);
    };
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq: seq - 1,
            before_seq: seq.saturating_add(1),
            page_size: 1,
            newest_first: false,
            peer: conv.address().to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let ids = s.identity(me.name());
    page.events
        .first()
        .and_then(|ev| {
            view.timeline_events(ev, &ids)
                .into_iter()
                .find(|v| v["event_id"] == event.as_str())
        })
        .map(|v| Json(with_room(v, &view.room_id())))
        .ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageBody {
    pub(crate) msgtype: String,
    pub(crate) body: String,
    /// `m.image`/`m.file`/`m.audio`/`m.video`: the `mxc://` URI of an upload.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// The file's name; a `body` that differs from it is a caption.
    #[serde(default)]
    pub(crate) filename: Option<String>,
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`: `m.room.message` with a
/// text body (`m.text`, `m.notice`, `m.emote`) becomes a Session message. The txnId is the
/// daemon's idempotency key (scoped to the device), so a replayed PUT answers the first event id
/// and sends nothing.
pub(crate) async fn send(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((room, kind, txn)): Path<(String, String, String)>,
    body: Body,
) -> Answer {
    // Not the user's room: the same answer whatever else is wrong.
    peer_of(&s, &me, &room)?;
    if kind == "m.reaction" {
        let conv = joined(&s, &me, &room).await?;
        if matches!(conv.extra, crate::kinds::Extra::Community { .. }) {
            return crate::interact::send_room_reaction(&me, &conv, &body).await;
        }
        return crate::interact::send_reaction(&me, conv.address(), &body).await;
    }
    if kind != "m.room.message" {
        return Err(MatrixError::Unsupported(format!(
            "{kind} events cannot be sent to a Session conversation; only m.room.message"
        )));
    }
    let raw: Value = body.json()?;
    let body: MessageBody = body.json()?;
    let mut attachment_ids = Vec::new();
    let text = match body.msgtype.as_str() {
        "m.text" | "m.notice" => body.body,
        "m.emote" => format!("* {} {}", me.display_name(), body.body),
        "m.image" | "m.file" | "m.audio" | "m.video" => {
            let url = body
                .url
                .as_deref()
                .ok_or_else(|| MatrixError::param("url", "a media message needs its mxc:// url"))?;
            attachment_ids.push(crate::media::attachment_of(&s.config.server_name, url)?);
            // The body is the file name, or (with a different filename) a caption.
            match body.filename {
                Some(name) if name != body.body => body.body,
                _ => String::new(),
            }
        }
        other => {
            return Err(MatrixError::Unsupported(format!(
                "{other} messages cannot be sent to a Session conversation"
            )))
        }
    };
    let key = format!("mx:{}:{}", me.device_id, txn);
    if key.len() > MAX_KEY_LEN || txn.is_empty() {
        return Err(MatrixError::param("txnId", "empty or too long"));
    }
    let conv = joined(&s, &me, &room).await?;
    let reply_to = crate::interact::reply_of(&me, conv.address(), &raw).await?;
    let community_dm = sessiond_api::client::looks_like_blinded_id(conv.address());
    let sent = me
        .client
        .messages
        .clone()
        .send_message(SendMessageRequest {
            identity: me.name().to_owned(),
            recipient: conv.conv.account_id,
            text,
            idempotency_key: key,
            reply_to,
            attachment_ids,
            ..SendMessageRequest::default()
        })
        .await
        .map_err(|status| match status.code() {
            // A community DM whose server is no longer joined: say so.
            Code::NotFound if community_dm => MatrixError::Forbidden(status.message().to_owned()),
            Code::NotFound => MatrixError::NotInRoom,
            _ => MatrixError::from(status),
        })?
        .into_inner();
    s.identity(me.name())
        .record_txn(sent.seq, &me.device_id, &txn);
    Ok(Json(json!({ "event_id": crate::ids::event_id(sent.seq) })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TypingBody {
    typing: bool,
    /// How long the user is typing, in ms (with `typing: true`).
    #[serde(default)]
    timeout: Option<f64>,
}

/// How long a typing notice lasts when the client gives no timeout.
const TYPING_DEFAULT_MS: u64 = 30_000;
/// The longest typing timeout honoured.
const TYPING_MAX_MS: u64 = 120_000;

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`: a Session typing notice, best effort
/// (offline it is dropped, as typing notices are).
pub(crate) async fn typing(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((room, user)): Path<(String, String)>,
    body: Body,
) -> Answer {
    me.require_self(&user)?;
    let body: TypingBody = body.json()?;
    let peer = peer_of(&s, &me, &room)?;
    if !sessiond_api::client::looks_like_account_id(&peer) {
        // Session has no typing notices in groups and community rooms: the user's own
        // clients still see it.
        conversation(&s, &me, &room).await?;
        let timeout = body
            .timeout
            .map_or(TYPING_DEFAULT_MS, |t| t as u64)
            .clamp(1, TYPING_MAX_MS);
        s.identity(me.name())
            .set_own_typing(&peer, body.typing, Duration::from_millis(timeout));
        return Ok(Json(json!({})));
    }
    let result = me
        .client
        .messages
        .clone()
        .send_typing(SendTypingRequest {
            identity: me.name().to_owned(),
            recipient: peer.clone(),
            typing: body.typing,
        })
        .await;
    if result.is_ok()
        || result
            .as_ref()
            .is_err_and(|e| e.code() == Code::Unavailable)
    {
        // The user's own clients see it typing in `m.typing`, as the spec has it.
        // Any number is taken, clamped (`as` saturates; NaN becomes 0, then 1).
        let timeout = body
            .timeout
            .map_or(TYPING_DEFAULT_MS, |t| t as u64)
            .clamp(1, TYPING_MAX_MS);
        s.identity(me.name())
            .set_own_typing(&peer, body.typing, Duration::from_millis(timeout));
    }
    match result {
        Ok(_) => Ok(Json(json!({}))),
        Err(status) if status.code() == Code::Unavailable => {
            tracing::debug!("matrix: typing notice not sent: offline");
            Ok(Json(json!({})))
        }
        Err(status) => Err(MatrixError::room(status)),
    }
}

/// Marks the room read up to `seq`.
async fn mark_read(s: &Shared, me: &Me, room: &str, seq: u64) -> Result<(), MatrixError> {
    let peer = peer_of(s, me, room)?;
    me.client
        .conversations
        .clone()
        .mark_conversation_read(MarkConversationReadRequest {
            identity: me.name().to_owned(),
            account_id: peer,
            seq,
        })
        .await
        .map_err(MatrixError::room)?;
    Ok(())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`: `MarkRead`. A
/// receipt for one of the fixed state events marks nothing.
pub(crate) async fn receipt(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((room, _kind, event)): Path<(String, String, String)>,
) -> Answer {
    match parse_event_id(&event) {
        Some(seq) => mark_read(&s, &me, &room, seq).await?,
        None => {
            conversation(&s, &me, &room).await?;
        }
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReadMarkersBody {
    #[serde(rename = "m.fully_read", default)]
    fully_read: Option<String>,
    #[serde(rename = "m.read", default)]
    read: Option<String>,
    #[serde(rename = "m.read.private", default)]
    read_private: Option<String>,
}

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`: `MarkRead` up to the newest of them.
pub(crate) async fn read_markers(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(room): Path<String>,
    body: Body,
) -> Answer {
    let body: ReadMarkersBody = body.json()?;
    let seq = [body.fully_read, body.read, body.read_private]
        .iter()
        .flatten()
        .filter_map(|e| parse_event_id(e))
        .max();
    match seq {
        Some(seq) => mark_read(&s, &me, &room, seq).await?,
        None => {
            conversation(&s, &me, &room).await?;
        }
    }
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`: no tags.
pub(crate) async fn tags(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((user, room)): Path<(String, String)>,
) -> Answer {
    me.require_self(&user)?;
    conversation(&s, &me, &room).await?;
    Ok(Json(json!({ "tags": {} })))
}
