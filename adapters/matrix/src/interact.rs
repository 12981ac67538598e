//! Replies, reactions, unsend, disappearing timers and notices in a conversation's room.
//!
//! To the client:
//! - a reply's `content` has `m.relates_to: {m.in_reply_to: {event_id}}` (the quoted message's
//!   event, when the daemon has it);
//! - a reaction is an `m.reaction` event with `m.relates_to: {rel_type: m.annotation,
//!   event_id, key: <emoji>}`; its removal an `m.room.redaction` of that reaction event;
//! - an unsent or expired message is an `m.room.redaction` of the message's event (`reason`
//!   "unsent" or "disappeared");
//! - the conversation's disappearing timer is a state event of this gateway's own namespace,
//!   [`TIMER_EVENT`] (`org.sessiond.disappearing`, state key `""`), content `{"mode":
//!   "after_send"|"after_read"|"off", "seconds": <n>}`; a client sets it with `PUT
//!   /rooms/{room}/state/org.sessiond.disappearing` and the same content;
//! - the contact's Session read receipts are its `m.read` receipts (ephemeral, in the sync
//!   that brings them);
//! - screenshot, saved-media, accepted-request and ignored-control-message notices are
//!   `m.notice` messages.
//!
//! From the client: `m.room.message` with `m.in_reply_to` is a reply; `PUT send/m.reaction` a
//! reaction; `PUT /rooms/{room}/redact/{event}/{txn}` unsends the user's own message or takes
//! back the user's own reaction; read receipts (`/receipt`, `/read_markers`) mark the
//! conversation read, which sends Session read receipts when the identity sends them.

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};
use sessiond_api::v1::{
    event, DeleteRoomMessageRequest, DeliveryState, Disappearing, DisappearingMode, Event,
    ListEventsRequest, MessageRef, NoticeKind, ReactRequest, ReactToRoomMessageRequest,
    RemovedReason, SetDisappearingRequest, UnsendRequest,
};

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::RoomView;
use crate::http::{Answer, Body, Json, Path};
use crate::ids::{event_id, parse_event_id, parse_room};
use crate::state::Shared;

/// The type of the room state event that carries the disappearing timer (our namespace).
pub(crate) const TIMER_EVENT: &str = "org.sessiond.disappearing";

/// Adds the reply relation of a message event (`ev`) to its `content`.
pub(crate) fn decorate(content: &mut Value, ev: &Event) {
    let reply = match ev.kind.as_ref() {
        Some(event::Kind::Incoming(m)) => m.reply_to.as_ref(),
        Some(event::Kind::Outgoing(m)) => m.reply_to.as_ref(),
        _ => None,
    };
    if let Some(r) = reply.filter(|r| r.seq != 0) {
        content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": event_id(r.seq) } });
    }
}

/// The content of the timer state event.
pub(crate) fn timer_content(d: &Disappearing) -> Value {
    let mode = match DisappearingMode::try_from(d.mode) {
        Ok(DisappearingMode::AfterRead) if d.seconds > 0 => "after_read",
        Ok(DisappearingMode::AfterSend) if d.seconds > 0 => "after_send",
        _ => "off",
    };
    json!({ "mode": mode, "seconds": if mode == "off" { 0 } else { d.seconds } })
}

/// The timeline event of a reaction, removal, timer change or notice; `None` for other kinds.
pub(crate) fn timeline(view: &RoomView<'_>, ev: &Event) -> Option<Value> {
    let sender_of = |author: &str| view.user_of(author);
    let (kind, sender, content, extra) = match ev.kind.as_ref()? {
        event::Kind::Reaction(r) if r.removed => {
            if r.removes_seq == 0 {
                return None;
            }
            (
                "m.room.redaction",
                sender_of(&r.author),
                json!({ "redacts": event_id(r.removes_seq) }),
                Some(("redacts", json!(event_id(r.removes_seq)))),
            )
        }
        event::Kind::Reaction(r) => (
            "m.reaction",
            sender_of(&r.author),
            json!({ "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": event_id(r.target_seq),
                "key": r.emoji,
            }}),
            None,
        ),
        event::Kind::Removed(r) => {
            let why = match RemovedReason::try_from(r.reason) {
                Ok(RemovedReason::Expired) => "disappeared",
                Ok(RemovedReason::Deleted) => "deleted by an admin",
                _ => "unsent",
            };
            let author = r.message.as_ref().map_or("", |m| m.author.as_str());
            (
                "m.room.redaction",
                sender_of(author),
                json!({ "redacts": event_id(r.removed_seq), "reason": why }),
                Some(("redacts", json!(event_id(r.removed_seq)))),
            )
        }
        event::Kind::Disappearing(d) => (
            TIMER_EVENT,
            sender_of(&d.author),
            timer_content(&d.disappearing.unwrap_or_default()),
            Some(("state_key", json!(""))),
        ),
        event::Kind::Notice(n) => {
            let body = match NoticeKind::try_from(n.kind) {
                Ok(NoticeKind::Screenshot) => "took a screenshot".to_owned(),
                Ok(NoticeKind::MediaSaved) => "saved an attachment".to_owned(),
                Ok(NoticeKind::RequestAccepted) => "accepted your message request".to_owned(),
                Ok(NoticeKind::RequestDeclined) => "declined your message request".to_owned(),
                _ => format!("sessiond ignored a control message: {}", n.reason),
            };
            (
                "m.room.message",
                sender_of(&n.author),
                json!({ "msgtype": "m.notice", "body": body }),
                None,
            )
        }
        _ => return None,
    };
    let mut out = json!({
        "type": kind,
        "content": content,
        "sender": sender,
        "origin_server_ts": ev.recorded_at_ms,
        "event_id": event_id(ev.seq),
        "unsigned": {},
    });
    if let Some((key, value)) = extra {
        out[key] = value;
    }
    Some(out)
}

/// The contact's `m.read` receipt for the newest of the user's messages it read, from the
/// read receipts among `events` (the room's new events in a sync); `None` if there are none.
pub(crate) fn peer_receipt(view: &RoomView<'_>, events: &[&Event]) -> Option<Value> {
    let read = events
        .iter()
        .filter_map(|e| match e.kind.as_ref() {
            Some(event::Kind::Delivery(d))
                if d.state == DeliveryState::Read as i32 && d.message_seq != 0 =>
            {
                Some((d.message_seq, e.recorded_at_ms))
            }
            _ => None,
        })
        .max()?;
    Some(json!({
        "type": "m.receipt",
        "content": { event_id(read.0): { "m.read": { view.ghost(): { "ts": read.1 } } } }
    }))
}

/// The message an event id names in the conversation with `peer`: (its reference, whether it
/// is the user's own). `None` for an id of no message there.
async fn message_of(
    me: &Me,
    peer: &str,
    id: &str,
) -> Result<Option<(MessageRef, bool)>, MatrixError> {
    let Some(seq) = parse_event_id(id) else {
        return Ok(None);
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
            ..ListEventsRequest::default()
        })
        .await?
        .into_inner();
    let own_account = me.identity.account_id.clone();
    Ok(page
        .events
        .into_iter()
        .find(|e| e.seq == seq)
        .and_then(|e| match e.kind {
            Some(event::Kind::Incoming(m))
                if m.conversation_id == peer
                    || (m.conversation_id.is_empty() && m.sender == peer) =>
            {
                Some((
                    MessageRef {
                        sent_at_ms: m.sent_at_ms,
                        author: m.sender,
                    },
                    false,
                ))
            }
            Some(event::Kind::Outgoing(m)) if m.recipient == peer => Some((
                MessageRef {
                    sent_at_ms: m.sent_at_ms,
                    author: own_account,
                },
                true,
            )),
            _ => None,
        }))
}

/// The user's own reaction an event id names in the conversation with `peer`:
/// (target, emoji).
async fn reaction_of(
    me: &Me,
    peer: &str,
    id: &str,
) -> Result<Option<(MessageRef, String)>, MatrixError> {
    let Some(seq) = parse_event_id(id) else {
        return Ok(None);
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
            ..ListEventsRequest::default()
        })
        .await?
        .into_inner();
    Ok(page
        .events
        .into_iter()
        .find(|e| e.seq == seq)
        .and_then(|e| match e.kind {
            Some(event::Kind::Reaction(r))
                if r.conversation == peer && r.author == me.identity.account_id && !r.removed =>
            {
                r.target.map(|t| (t, r.emoji))
            }
            _ => None,
        }))
}

/// The `reply_to` of a message body with `m.relates_to.m.in_reply_to` (`None` without one, or
/// for an event of no message in the conversation).
pub(crate) async fn reply_of(
    me: &Me,
    peer: &str,
    body: &Value,
) -> Result<Option<MessageRef>, MatrixError> {
    let Some(id) = body
        .pointer("/m.relates_to/m.in_reply_to/event_id")
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    Ok(message_of(me, peer, id).await?.map(|(r, _)| r))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Annotation {
    rel_type: String,
    pub(crate) event_id: String,
    key: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReactionBody {
    #[serde(rename = "m.relates_to")]
    pub(crate) relates_to: Annotation,
}

/// `PUT send/m.reaction/{txn}`: a Session reaction to the annotated message.
pub(crate) async fn send_reaction(me: &Me, peer: &str, body: &Body) -> Answer {
    let body: ReactionBody = body.json()?;
    if body.relates_to.rel_type != "m.annotation" {
        return Err(MatrixError::param(
            "m.relates_to.rel_type",
            "only m.annotation",
        ));
    }
    let Some((target, _)) = message_of(me, peer, &body.relates_to.event_id).await? else {
        return Err(MatrixError::NotFound("no such message in this room".into()));
    };
    let seq = me
        .client
        .interactions
        .clone()
        .react(ReactRequest {
            identity: me.name().to_owned(),
            conversation: peer.to_owned(),
            target: Some(target),
            emoji: body.relates_to.key,
            remove: false,
        })
        .await?
        .into_inner()
        .seq;
    Ok(Json(json!({ "event_id": event_id(seq) })))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`: unsends the user's own
/// message, or takes back the user's own reaction. Anything else is `M_FORBIDDEN` (only the
/// author can unsend), an unknown event `M_NOT_FOUND`.
pub(crate) async fn redact(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((room, event, _txn)): Path<(String, String, String)>,
) -> Answer {
    let peer = parse_room(&room, me.name(), &s.config.server_name).ok_or(MatrixError::NotInRoom)?;
    if crate::ids::is_room_address(&peer) {
        return delete_post(&s, &me, &room, &event).await;
    }
    if let Some((target, emoji)) = reaction_of(&me, &peer, &event).await? {
        let seq = me
            .client
            .interactions
            .clone()
            .react(ReactRequest {
                identity: me.name().to_owned(),
                conversation: peer,
                target: Some(target),
                emoji,
                remove: true,
            })
            .await?
            .into_inner()
            .seq;
        return Ok(Json(json!({ "event_id": event_id(seq) })));
    }
    match message_of(&me, &peer, &event).await? {
        Some((target, true)) => {
            let seq = me
                .client
                .interactions
                .clone()
                .unsend(UnsendRequest {
                    identity: me.name().to_owned(),
                    conversation: peer,
                    sent_at_ms: target.sent_at_ms,
                })
                .await?
                .into_inner()
                .seq;
            Ok(Json(json!({ "event_id": event_id(seq) })))
        }
        Some((_, false)) => Err(MatrixError::Forbidden(
            "only the author can unsend a Session message".into(),
        )),
        None => Err(MatrixError::NotFound("no such event in this room".into())),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TimerBody {
    mode: String,
    #[serde(default)]
    seconds: u32,
}

/// `PUT /rooms/{roomId}/state/org.sessiond.disappearing`: sets the conversation's timer.
pub(crate) async fn put_timer(me: &Me, peer: &str, body: &Body) -> Answer {
    let body: TimerBody = body.json()?;
    let mode = match body.mode.as_str() {
        "after_send" => DisappearingMode::AfterSend,
        "after_read" => DisappearingMode::AfterRead,
        "off" => DisappearingMode::Unspecified,
        _ => return Err(MatrixError::param("mode", "after_send, after_read or off")),
    };
    let seq = me
        .client
        .interactions
        .clone()
        .set_disappearing(SetDisappearingRequest {
            identity: me.name().to_owned(),
            conversation: peer.to_owned(),
            disappearing: Some(Disappearing {
                mode: mode as i32,
                seconds: body.seconds,
            }),
        })
        .await?
        .into_inner()
        .seq;
    Ok(Json(json!({ "event_id": event_id(seq) })))
}

/// A redaction in a community room: deletes the post (the user's own, or anyone's in a room it
/// moderates; the server refuses otherwise: `M_FORBIDDEN`).
async fn delete_post(s: &Shared, me: &Me, room: &str, event: &str) -> Answer {
    let loaded = crate::rooms::joined(s, me, room).await?;
    let Some((id, _own)) = crate::kinds::post_of(&loaded, me, event) else {
        return Err(MatrixError::NotFound(
            "no such post in this room (only posts can be redacted here)".into(),
        ));
    };
    me.rooms
        .clone()
        .delete_room_message(DeleteRoomMessageRequest {
            identity: me.name().to_owned(),
            room_id: loaded.address().to_owned(),
            server_message_id: id,
        })
        .await?;
    // The deletion comes back from the server's next poll as the redaction event.
    Ok(Json(json!({ "event_id": format!("$del_{id}") })))
}

/// `PUT send/m.reaction/{txn}` in a community room: the user's reaction to the post.
pub(crate) async fn send_room_reaction(
    me: &Me,
    loaded: &crate::kinds::Loaded,
    body: &Body,
) -> Answer {
    let body: ReactionBody = body.json()?;
    if body.relates_to.rel_type != "m.annotation" {
        return Err(MatrixError::param(
            "m.relates_to.rel_type",
            "only m.annotation",
        ));
    }
    let Some((id, _)) = crate::kinds::post_of(loaded, me, &body.relates_to.event_id) else {
        return Err(MatrixError::NotFound("no such post in this room".into()));
    };
    me.rooms
        .clone()
        .react_to_room_message(ReactToRoomMessageRequest {
            identity: me.name().to_owned(),
            room_id: loaded.address().to_owned(),
            server_message_id: id,
            emoji: body.relates_to.key.clone(),
            remove: false,
        })
        .await?;
    Ok(Json(
        json!({ "event_id": format!("$react_{id}_{}", crate::ids::device_id(&body.relates_to.key)) }),
    ))
}
