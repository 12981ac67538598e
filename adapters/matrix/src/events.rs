//! The mapping from sessiond to Matrix events: a conversation's room state (create, members,
//! name, power levels, join rules), its invite state for message requests, and timeline events
//! from event-log entries (messages both ways; failed deliveries as `m.notice`).

use serde_json::{json, Value};
use sessiond_api::v1::{
    event, Conversation, DeliveryState, Event, IncomingMessage, OutgoingMessage,
};

use crate::auth::Me;
use crate::ids::{event_id, room_id, short_account, state_event_id, sub_event_id, user_id};
use crate::state::{IdentityState, Typers};

/// Rooms are created with this room version.
pub const ROOM_VERSION: &str = "10";

/// The user's membership of a conversation's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// An open conversation.
    Join,
    /// A message request: the contact wrote, the user never wrote back or opened it.
    Invite,
    /// Left with `Leave`.
    Leave,
}

impl Membership {
    /// Of a conversation as the daemon describes it.
    pub fn of(conv: &Conversation) -> Membership {
        if conv.left {
            Membership::Leave
        } else if conv.accepted {
            Membership::Join
        } else {
            Membership::Invite
        }
    }

    /// The conversation's (`accepted`, `left`) that say this membership.
    pub fn flags(self) -> (bool, bool) {
        match self {
            Membership::Invite => (false, false),
            Membership::Join => (true, false),
            Membership::Leave => (true, true),
        }
    }

    /// Of a group with `status` (a `GroupStatus`): invited, joined, or gone (left, kicked,
    /// destroyed).
    pub fn of_group(status: i32) -> Membership {
        use sessiond_api::v1::GroupStatus;
        match GroupStatus::try_from(status) {
            Ok(GroupStatus::Invited) => Membership::Invite,
            Ok(GroupStatus::Joined) => Membership::Join,
            _ => Membership::Leave,
        }
    }

    /// What an event-log entry says the membership became, if it is a group change or a change
    /// of a one-to-one conversation (a group's or community room's conversation flags do not say
    /// its membership).
    pub fn changed_by(ev: &Event) -> Option<Membership> {
        use sessiond_api::v1::ConversationKind;
        match ev.kind.as_ref()? {
            event::Kind::Conversation(c) => c
                .conversation
                .as_ref()
                .filter(|c| {
                    !matches!(
                        ConversationKind::try_from(c.kind),
                        Ok(ConversationKind::Group | ConversationKind::CommunityRoom)
                    )
                })
                .map(Membership::of),
            event::Kind::Group(g) => Some(Membership::of_group(g.status)),
            _ => None,
        }
    }
}

/// The conversation (its address) an event-log entry belongs to.
pub(crate) fn peer_of(ev: &Event) -> Option<&str> {
    let address = match ev.kind.as_ref()? {
        event::Kind::Incoming(m) if !m.conversation_id.is_empty() => &m.conversation_id,
        event::Kind::Incoming(m) => &m.sender,
        event::Kind::Outgoing(m) => &m.recipient,
        event::Kind::Delivery(d) => &d.recipient,
        event::Kind::Conversation(c) => {
            let c = c.conversation.as_ref()?;
            if c.conversation_id.is_empty() {
                &c.account_id
            } else {
                &c.conversation_id
            }
        }
        event::Kind::Group(g) => &g.group_id,
        event::Kind::RoomMessageDeleted(d) => &d.conversation_id,
        event::Kind::RoomReactions(r) => &r.conversation_id,
        event::Kind::Reaction(r) => &r.conversation,
        event::Kind::Removed(r) => &r.conversation,
        event::Kind::Disappearing(d) => &d.conversation,
        event::Kind::Notice(n) => &n.conversation,
        _ => return None,
    };
    (!address.is_empty()).then_some(address.as_str())
}

/// One conversation as a room, for one user.
#[derive(Debug)]
pub(crate) struct RoomView<'a> {
    /// The user.
    pub me: &'a Me,
    /// The server name.
    pub server: &'a str,
    /// The conversation.
    pub conv: &'a Conversation,
    /// What a group or community room needs besides.
    pub extra: &'a crate::kinds::Extra,
}

impl RoomView<'_> {
    /// The other side's Account ID.
    pub fn peer(&self) -> &str {
        &self.conv.account_id
    }

    /// The room id.
    pub fn room_id(&self) -> String {
        room_id(self.me.name(), self.peer(), self.server)
    }

    /// The contact's user id.
    pub fn ghost(&self) -> String {
        user_id(self.peer(), self.server)
    }

    /// The contact's name: local name, else profile name, else handle, else a short id; for a
    /// community DM whose Account ID is known, that (short) too.
    pub fn peer_name(&self) -> String {
        let name = if !self.conv.display_name.is_empty() {
            self.conv.display_name.clone()
        } else if !self.conv.handle.is_empty() {
            self.conv.handle.clone()
        } else {
            short_account(self.peer())
        };
        match self.conv.community_account_id.as_str() {
            "" => name,
            account => format!("{name} ({})", short_account(account)),
        }
    }

    /// A community DM's topic: the blinded ID, and the Account ID once a DM revealed it.
    fn community_dm_topic(&self) -> Option<Value> {
        if !sessiond_api::client::looks_like_blinded_id(self.peer()) {
            return None;
        }
        let mut topic = format!("Community DM with {}", self.peer());
        if !self.conv.community_account_id.is_empty() {
            topic.push_str(&format!("; Account ID {}", self.conv.community_account_id));
        }
        Some(self.state_event(
            "topic",
            "m.room.topic",
            "",
            &self.me.user_id,
            json!({ "topic": topic }),
        ))
    }

    /// The user's membership.
    pub fn membership(&self) -> Membership {
        Membership::of(self.conv)
    }

    fn state_event(
        &self,
        what: &str,
        kind: &str,
        key: &str,
        sender: &str,
        content: Value,
    ) -> Value {
        json!({
            "type": kind,
            "state_key": key,
            "content": content,
            "sender": sender,
            "origin_server_ts": self.me.identity.created_at_ms,
            "event_id": state_event_id(what, &crate::ids::room_key(self.peer())),
            "unsigned": {},
        })
    }

    fn create(&self) -> Value {
        let me = &self.me.user_id;
        self.state_event(
            "create",
            "m.room.create",
            "",
            me,
            json!({ "creator": me, "room_version": ROOM_VERSION }),
        )
    }

    fn my_member(&self, membership: &str, sender: &str) -> Value {
        let mut content =
            json!({ "membership": membership, "displayname": self.me.display_name() });
        if membership == "invite" {
            content["is_direct"] = json!(true);
        }
        self.state_event("me", "m.room.member", &self.me.user_id, sender, content)
    }

    fn ghost_member(&self) -> Value {
        let ghost = self.ghost();
        self.state_event(
            "ghost",
            "m.room.member",
            &ghost,
            &ghost,
            json!({ "membership": "join", "displayname": self.peer_name() }),
        )
    }

    fn name(&self) -> Value {
        self.state_event(
            "name",
            "m.room.name",
            "",
            &self.me.user_id,
            json!({ "name": self.peer_name() }),
        )
    }

    fn join_rules(&self) -> Value {
        self.state_event(
            "join_rules",
            "m.room.join_rules",
            "",
            &self.me.user_id,
            json!({ "join_rule": "invite" }),
        )
    }

    fn power_levels(&self) -> Value {
        let mut users = serde_json::Map::new();
        users.insert(self.me.user_id.clone(), json!(100));
        users.insert(self.ghost(), json!(100));
        self.state_event(
            "power_levels",
            "m.room.power_levels",
            "",
            &self.me.user_id,
            json!({
                "users": users,
                "users_default": 0,
                "events": {},
                "events_default": 0,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 0,
                "notifications": { "room": 50 },
            }),
        )
    }

    fn history_visibility(&self) -> Value {
        self.state_event(
            "history_visibility",
            "m.room.history_visibility",
            "",
            &self.me.user_id,
            json!({ "history_visibility": "shared" }),
        )
    }

    /// The full state of a room the user is in (or left: then the user's member event says
    /// `leave`).
    pub fn state(&self) -> Vec<Value> {
        if let Some(state) = self.kind_state() {
            return state;
        }
        let mine = match self.membership() {
            Membership::Leave => self.my_member("leave", &self.me.user_id),
            Membership::Invite => self.my_member("invite", &self.ghost()),
            Membership::Join => self.my_member("join", &self.me.user_id),
        };
        let mut out = vec![
            self.create(),
            mine,
            self.ghost_member(),
            self.power_levels(),
            self.join_rules(),
            self.history_visibility(),
            self.name(),
        ];
        out.extend(self.community_dm_topic());
        out
    }

    /// The stripped state of an invite (a message request): who invites, the room's name.
    pub fn invite_state(&self) -> Vec<Value> {
        if let Some(state) = self.group_invite_state() {
            return state;
        }
        let strip = |ev: Value| {
            json!({
                "type": ev["type"],
                "state_key": ev["state_key"],
                "content": ev["content"],
                "sender": ev["sender"],
            })
        };
        vec![
            strip(self.create()),
            strip(self.join_rules()),
            strip(self.name()),
            strip(self.ghost_member()),
            strip(self.my_member("invite", &self.ghost())),
        ]
    }

    /// The user's leave, as a timeline event (id from the event-log entry that recorded it).
    pub fn leave_event(&self, seq: u64, ts: u64) -> Value {
        json!({
            "type": "m.room.member",
            "state_key": self.me.user_id,
            "content": { "membership": "leave" },
            "sender": self.me.user_id,
            "origin_server_ts": ts,
            "event_id": event_id(seq),
            "unsigned": {},
        })
    }

    /// The timeline events for an event-log entry of this conversation, if it shows as any:
    /// messages both ways, and failed deliveries as an `m.notice`. `ids` gives back the txnId
    /// of the user's own sends from this device.
    pub fn timeline_events(&self, ev: &Event, ids: &IdentityState) -> Vec<Value> {
        if let Some(out) = self.kind_timeline(ev) {
            return out;
        }
        let Some(main) = self.timeline_event(ev, ids) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let sub = |n: usize, content: Option<Value>| {
            let mut e = main.clone();
            e["event_id"] = json!(sub_event_id(ev.seq, n));
            if let Some(c) = content {
                e["content"] = c;
            }
            if let Some(u) = e["unsigned"].as_object_mut() {
                u.remove("transaction_id");
            }
            e
        };
        match ev.kind.as_ref() {
            // A message's further attachments: an event each, after the first.
            Some(event::Kind::Incoming(IncomingMessage { attachments, .. }))
            | Some(event::Kind::Outgoing(OutgoingMessage { attachments, .. })) => {
                for (n, file) in attachments.iter().enumerate().skip(1) {
                    out.push(sub(
                        n,
                        Some(crate::media::file_content(self.server, file, "")),
                    ));
                }
            }
            // Their redactions, with the first's.
            Some(event::Kind::Removed(r)) => {
                for n in 1..usize::try_from(r.attachments).unwrap_or(0) {
                    let mut e = sub(n, None);
                    let target = json!(sub_event_id(r.removed_seq, n));
                    e["redacts"] = target.clone();
                    e["content"]["redacts"] = target;
                    out.push(e);
                }
            }
            _ => {}
        }
        out.insert(0, main);
        out
    }

    /// The timeline event for an event-log entry that makes at most one (see
    /// [`RoomView::timeline_events`] for all of them).
    pub fn timeline_event(&self, ev: &Event, ids: &IdentityState) -> Option<Value> {
        let (sender, content, ts) = match ev.kind.as_ref()? {
            event::Kind::Incoming(m) => {
                let mut content = if let Some(c) =
                    crate::media::media_content(self.server, &m.text, &m.attachments)
                {
                    c
                } else if m.text.is_empty() {
                    json!({ "msgtype": "m.notice", "body": "(a message sessiond cannot show)" })
                } else {
                    json!({ "msgtype": "m.text", "body": m.text })
                };
                crate::interact::decorate(&mut content, ev);
                (self.user_of(&m.sender), content, m.sent_at_ms)
            }
            event::Kind::Outgoing(m) => {
                let mut content = crate::media::media_content(self.server, &m.text, &m.attachments)
                    .unwrap_or_else(|| json!({ "msgtype": "m.text", "body": m.text }));
                crate::interact::decorate(&mut content, ev);
                (self.me.user_id.clone(), content, m.sent_at_ms)
            }
            event::Kind::Delivery(d) if d.state == DeliveryState::Failed as i32 => (
                self.me.user_id.clone(),
                json!({
                    "msgtype": "m.notice",
                    "body": format!("⚠ Not delivered: {}", d.reason),
                }),
                ev.recorded_at_ms,
            ),
            _ => return crate::interact::timeline(self, ev),
        };
        let mut unsigned = json!({});
        if matches!(ev.kind, Some(event::Kind::Outgoing(_))) {
            if let Some(txn) = ids.txn_of(ev.seq, &self.me.device_id) {
                unsigned["transaction_id"] = json!(txn);
            }
        }
        Some(json!({
            "type": "m.room.message",
            "content": content,
            "sender": sender,
            "origin_server_ts": ts,
            "event_id": event_id(ev.seq),
            "unsigned": unsigned,
        }))
    }

    /// The user's read receipt (from the conversation's `read_seq`), if any.
    pub fn receipt(&self) -> Option<Value> {
        if self.conv.read_seq == 0 {
            return None;
        }
        Some(json!({
            "type": "m.receipt",
            "content": {
                event_id(self.conv.read_seq): {
                    "m.read": { self.me.user_id.clone(): { "ts": self.conv.last_activity_ms } }
                }
            }
        }))
    }

    /// The `m.fully_read` room account data (the read marker), if any.
    pub fn fully_read(&self) -> Option<Value> {
        (self.conv.read_seq > 0).then(|| {
            json!({ "type": "m.fully_read", "content": { "event_id": event_id(self.conv.read_seq) } })
        })
    }

    /// The `m.typing` ephemeral event: everyone typing in the room, the user included.
    pub fn typing(&self, who: Typers) -> Value {
        let mut users = Vec::new();
        if who.peer {
            users.push(self.ghost());
        }
        if who.me {
            users.push(self.me.user_id.clone());
        }
        json!({ "type": "m.typing", "content": { "user_ids": users } })
    }

    /// The room summary.
    pub fn summary(&self) -> Value {
        if let Some(summary) = self.kind_summary() {
            return summary;
        }
        json!({
            "m.heroes": [self.ghost()],
            "m.joined_member_count": if self.membership() == Membership::Join { 2 } else { 1 },
            "m.invited_member_count": if self.membership() == Membership::Invite { 1 } else { 0 },
        })
    }
}

/// Adds `room_id` to an event (for endpoints that answer events outside `/sync`).
pub(crate) fn with_room(mut ev: Value, room_id: &str) -> Value {
    ev["room_id"] = json!(room_id);
    ev
}

/// The `m.direct` account data: the ghost of every one-to-one conversation and community DM →
/// its room.
pub(crate) fn m_direct<'a>(
    me: &Me,
    server: &str,
    convs: impl Iterator<Item = &'a Conversation>,
) -> Value {
    let mut map = serde_json::Map::new();
    for c in convs.filter(|c| {
        sessiond_api::client::looks_like_account_id(&c.account_id)
            || sessiond_api::client::looks_like_blinded_id(&c.account_id)
    }) {
        map.insert(
            user_id(&c.account_id, server),
            json!([room_id(me.name(), &c.account_id, server)]),
        );
    }
    json!({ "type": "m.direct", "content": map })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_api::v1::{DeliveryUpdate, IncomingMessage, OutgoingMessage};

    fn me() -> Me {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        Me {
            token: "t".repeat(64),
            client: sessiond_api::client::Client::new(channel.clone(), &"t".repeat(64))
                .expect("token"),
            rooms: crate::auth::rooms_client(channel, &"t".repeat(64)).expect("token"),
            identity: sessiond_api::v1::Identity {
                name: "alice".into(),
                created_at_ms: 1000,
                ..Default::default()
            },
            user_id: "@alice:hs".into(),
            device_id: "SDX".into(),
        }
    }

    fn conv(accepted: bool, left: bool) -> Conversation {
        Conversation {
            account_id: format!("05{}", "cd".repeat(32)),
            display_name: "Carol".into(),
            accepted,
            left,
            read_seq: 4,
            ..Default::default()
        }
    }

    /// The room of a one-to-one conversation `c` on server "hs".
    fn direct<'a>(me: &'a Me, c: &'a Conversation) -> RoomView<'a> {
        RoomView {
            me,
            server: "hs",
            conv: c,
            extra: &crate::kinds::Extra::Direct,
        }
    }

    fn ev(seq: u64, kind: event::Kind) -> Event {
        Event {
            seq,
            recorded_at_ms: 77,
            identity: "alice".into(),
            kind: Some(kind),
        }
    }

    /// A message with several files is an event per file (ids `$seq`, `$seq_1`, …; the text is
    /// the first one's caption), and its removal redacts them all.
    #[tokio::test]
    async fn each_file_of_a_message_is_an_event_and_a_removal_redacts_them_all() {
        use sessiond_api::v1::{Attachment, MessageRemoved};
        let me = me();
        let c = conv(true, false);
        let view = direct(&me, &c);
        let ids = IdentityState::new();
        let file = |id: &str, name: &str, mime: &str| Attachment {
            id: id.repeat(32),
            file_name: name.into(),
            content_type: mime.into(),
            size: 10,
            ..Default::default()
        };
        let album = ev(
            9,
            event::Kind::Incoming(IncomingMessage {
                sender: c.account_id.clone(),
                text: "holiday".into(),
                attachments: vec![
                    file("a", "1.jpg", "image/jpeg"),
                    file("b", "2.jpg", "image/jpeg"),
                    file("c", "notes.txt", "text/plain"),
                ],
                ..Default::default()
            }),
        );
        let out = view.timeline_events(&album, &ids);
        let got: Vec<(&str, &str, &str)> = out
            .iter()
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap_or_default(),
                    e["content"]["msgtype"].as_str().unwrap_or_default(),
                    e["content"]["body"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("$9", "m.image", "holiday"),
                ("$9_1", "m.image", "2.jpg"),
                ("$9_2", "m.file", "notes.txt"),
            ]
        );
        assert!(out
            .iter()
            .all(|e| e["sender"] == out[0]["sender"] && e["content"]["url"].is_string()));
        let removed = ev(
            12,
            event::Kind::Removed(MessageRemoved {
                conversation: c.account_id.clone(),
                removed_seq: 9,
                attachments: 3,
                ..Default::default()
            }),
        );
        let out = view.timeline_events(&removed, &ids);
        let redacts: Vec<(&str, &str)> = out
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "m.room.redaction");
                assert_eq!(e["redacts"], e["content"]["redacts"]);
                (
                    e["event_id"].as_str().unwrap_or_default(),
                    e["redacts"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            redacts,
            [("$12", "$9"), ("$12_1", "$9_1"), ("$12_2", "$9_2")]
        );
    }

    #[tokio::test]
    async fn timeline_events_both_ways_and_failures_as_notices() {
        let me = me();
        let c = conv(true, false);
        let view = direct(&me, &c);
        let ids = IdentityState::new();
        let ghost = view.ghost();
        let incoming = ev(
            5,
            event::Kind::Incoming(IncomingMessage {
                sender: c.account_id.clone(),
                text: "hi".into(),
                sent_at_ms: 50,
                ..Default::default()
            }),
        );
        let v = view.timeline_event(&incoming, &ids).expect("shown");
        assert_eq!(
            (
                &v["sender"],
                &v["event_id"],
                &v["content"]["body"],
                &v["origin_server_ts"]
            ),
            (&json!(ghost), &json!("$5"), &json!("hi"), &json!(50))
        );
        ids.record_txn(6, "SDX", "txn-1");
        let outgoing = ev(
            6,
            event::Kind::Outgoing(OutgoingMessage {
                recipient: c.account_id.clone(),
                text: "yo".into(),
                ..Default::default()
            }),
        );
        let v = view.timeline_event(&outgoing, &ids).expect("shown");
        assert_eq!(v["sender"], "@alice:hs");
        assert_eq!(v["unsigned"]["transaction_id"], "txn-1");
        let failed = ev(
            7,
            event::Kind::Delivery(DeliveryUpdate {
                state: DeliveryState::Failed as i32,
                reason: "swarm unreachable".into(),
                recipient: c.account_id.clone(),
                ..Default::default()
            }),
        );
        let v = view.timeline_event(&failed, &ids).expect("shown");
        assert_eq!(v["content"]["msgtype"], "m.notice");
        assert!(v["content"]["body"]
            .as_str()
            .expect("body")
            .contains("swarm unreachable"));
        assert_eq!(v["origin_server_ts"], 77);
        let sent = ev(
            8,
            event::Kind::Delivery(DeliveryUpdate {
                state: DeliveryState::Sent as i32,
                recipient: c.account_id.clone(),
                ..Default::default()
            }),
        );
        assert!(view.timeline_event(&sent, &ids).is_none());
        assert_eq!(peer_of(&sent), Some(c.account_id.as_str()));
    }

    #[tokio::test]
    async fn membership_state_and_invites() {
        let me = me();
        assert_eq!(Membership::of(&conv(true, false)), Membership::Join);
        assert_eq!(Membership::of(&conv(false, false)), Membership::Invite);
        assert_eq!(Membership::of(&conv(true, true)), Membership::Leave);
        let c = conv(false, false);
        let view = direct(&me, &c);
        let invite = view.invite_state();
        let mine = invite
            .iter()
            .find(|e| e["type"] == "m.room.member" && e["state_key"] == "@alice:hs")
            .expect("my invite");
        assert_eq!(mine["content"]["membership"], "invite");
        assert_eq!(mine["sender"], json!(view.ghost()));
        let name = invite
            .iter()
            .find(|e| e["type"] == "m.room.name")
            .expect("name");
        assert_eq!(name["content"]["name"], "Carol");
        let c = conv(true, false);
        let view = direct(&me, &c);
        let state = view.state();
        let ids: std::collections::HashSet<&str> = state
            .iter()
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        assert_eq!(ids.len(), state.len(), "distinct event ids");
        assert_eq!(
            view.receipt().expect("read")["content"]["$4"]["m.read"]["@alice:hs"]["ts"],
            0
        );
    }
}
