//! Groups and community rooms as Matrix rooms, beside the one-to-one rooms of [`crate::rooms`].
//!
//! Every room is a conversation (its address: a `05…` peer, a `03…` group, a community room's
//! `<base URL>/<token>`); this module loads what a group or community room needs besides the
//! conversation ([`Extra`]: the group and its members, the community room and its posts),
//! normalises the conversation so the rest of the adapter reads membership the same way for
//! all three ([`Loaded`]), and maps the group and community operations:
//!
//! | Matrix | group (`GroupService`) | community room (`CommunityService`) |
//! |---|---|---|
//! | `createRoom` with `name` or several `invite`s, no `is_direct` | `CreateGroup` | — |
//! | `join` | `AcceptInvitation` | `JoinRoom` by URL (see [`community_url`]) |
//! | `leave` | `DeclineInvitation` / `LeaveGroup` | `LeaveRoom` |
//! | `invite` | `InviteGroupMembers` (history shared) | — |
//! | `kick` | `RemoveGroupMembers` | — |
//! | `m.room.name` / `m.room.topic` | `UpdateGroupInfo` | — |
//! | `m.room.power_levels` with a member at 100 | `PromoteGroupMembers` | — |
//! | `m.reaction`, redaction | — (the daemon has no group reactions yet) | `ReactToRoomMessage`, `DeleteRoomMessage` |
//!
//! Others' reactions come from the reactors the server lists (`@15…`), and from
//! [`REACTIONS_USER`] for those it does not list.
//!
//! Power levels: in a group admins have 100, members 0, and kick, invite, ban and state events
//! need 100; in a community room moderators have 50, and a read-only room sets
//! `events_default` to 50 so clients disable sending (a send answers 403 `M_FORBIDDEN`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use sessiond_api::v1::{
    event, AcceptInvitationRequest, Conversation, ConversationKind, CreateGroupRequest,
    DeclineInvitationRequest, Event, GetGroupRequest, Group, GroupChanged, GroupMember,
    GroupStatus, InviteGroupMembersRequest, JoinRoomRequest, LeaveGroupRequest, LeaveRoomRequest,
    ListEventsRequest, ListGroupMembersRequest, ListGroupsRequest, ListRoomsRequest,
    PromoteGroupMembersRequest, RemoveGroupMembersRequest, Room, RoomReaction,
    UpdateGroupInfoRequest,
};
use tonic::Code;

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::{Membership, RoomView};
use crate::ids::{
    event_id, is_group_id, is_room_address, parse_user, room_id, room_key, sub_event_id, user_id,
    LocalUser,
};

/// How far back a community room's log is read to find the posts its deletions and
/// reactions name.
const POSTS_LOOKBACK: i32 = 1000;
/// The sender of community reactions by others the server does not name (it lists only the
/// first few reactors of each emoji).
pub(crate) const REACTIONS_USER: &str = "community-reactions";

/// What a room needs besides its conversation.
#[derive(Debug, Clone, Default)]
pub(crate) enum Extra {
    /// A one-to-one conversation.
    #[default]
    Direct,
    /// A group, with its members as the identity last read them.
    Group {
        group: Group,
        members: Vec<GroupMember>,
    },
    /// A community room; `room` is `None` once left.
    Community { room: Option<Room>, posts: Posts },
}

/// A community room's recent posts and reaction tallies, to map deletions and reactions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Posts {
    /// Server message id → (seq of the post's event, its sender's Account/blinded ID).
    by_server_id: HashMap<i64, (u64, String)>,
    /// Seq of a reactions change → the tally before it.
    before: HashMap<u64, Vec<RoomReaction>>,
}

/// A conversation with what its room needs.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The conversation; `account_id` is its address whatever the kind, and `accepted`/`left`
    /// say the identity's membership (for groups from the group's status, for community rooms
    /// from whether the room is joined).
    pub conv: Conversation,
    /// The rest.
    pub extra: Extra,
}

impl Loaded {
    /// Its room, for `me`.
    pub fn view<'a>(&'a self, me: &'a Me, server: &'a str) -> RoomView<'a> {
        RoomView {
            me,
            server,
            conv: &self.conv,
            extra: &self.extra,
        }
    }

    /// The conversation's address.
    pub fn address(&self) -> &str {
        &self.conv.account_id
    }

    /// The user's membership.
    pub fn membership(&self) -> Membership {
        Membership::of(&self.conv)
    }

    /// A copy whose conversation says `membership` (the room as it was at an earlier point of
    /// the log).
    pub fn with_membership(&self, membership: Membership) -> Loaded {
        let mut copy = self.clone();
        (copy.conv.accepted, copy.conv.left) = membership.flags();
        copy
    }
}

fn kind(c: &Conversation) -> ConversationKind {
    ConversationKind::try_from(c.kind).unwrap_or(ConversationKind::Unspecified)
}

/// Every conversation of the identity shown as a room (one-to-one, groups, community rooms
/// joined or left), most recent first; groups and joined community rooms without anything in
/// the log yet come last.
pub(crate) async fn load_all(me: &Me) -> Result<Vec<Loaded>, MatrixError> {
    load_all_with(me, &|_| true).await
}

/// [`load_all`], reading the recent posts (for deletions and reactions in timelines) only of
/// the community rooms `posts_for` names.
pub(crate) async fn load_all_with(
    me: &Me,
    posts_for: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Loaded>, MatrixError> {
    let mut convs = me.client.all_conversations(me.name()).await?;
    convs.retain(|c| {
        matches!(
            kind(c),
            ConversationKind::Direct
                | ConversationKind::Unspecified
                | ConversationKind::Group
                | ConversationKind::CommunityRoom
                | ConversationKind::CommunityDm
        )
    });
    let mut groups: HashMap<String, Group> = match me
        .client
        .groups
        .clone()
        .list_groups(ListGroupsRequest {
            identity: me.name().to_owned(),
        })
        .await
    {
        Ok(r) => r
            .into_inner()
            .groups
            .into_iter()
            .map(|g| (g.group_id.clone(), g))
            .collect(),
        // A daemon without groups has none.
        Err(s) if s.code() == Code::Unimplemented => HashMap::new(),
        Err(s) => return Err(s.into()),
    };
    let mut rooms = joined_rooms(me).await?;
    let mut out = Vec::with_capacity(convs.len());
    for mut conv in convs {
        if conv.account_id.is_empty() {
            conv.account_id = conv.conversation_id.clone();
        }
        let extra = match kind(&conv) {
            ConversationKind::Group => {
                // A declined invitation leaves no group: no room either.
                let Some(group) = groups.remove(&conv.account_id) else {
                    continue;
                };
                group_extra(me, &mut conv, group).await?
            }
            ConversationKind::CommunityRoom => {
                let room = rooms.remove(&conv.account_id);
                let posts = posts_for(&conv.account_id);
                community_extra(me, &mut conv, room, posts).await?
            }
            _ => Extra::Direct,
        };
        out.push(Loaded { conv, extra });
    }
    // Groups with nothing in the log yet.
    let mut quiet: Vec<Group> = groups.into_values().collect();
    quiet.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    for group in quiet {
        let mut conv = Conversation {
            account_id: group.group_id.clone(),
            conversation_id: group.group_id.clone(),
            kind: ConversationKind::Group as i32,
            ..Default::default()
        };
        let extra = group_extra(me, &mut conv, group).await?;
        out.push(Loaded { conv, extra });
    }
    let mut fresh: Vec<Room> = rooms.into_values().collect();
    fresh.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    for room in fresh {
        let mut conv = Conversation {
            account_id: room.room_id.clone(),
            conversation_id: room.room_id.clone(),
            kind: ConversationKind::CommunityRoom as i32,
            ..Default::default()
        };
        let posts = posts_for(&conv.account_id);
        let extra = community_extra(me, &mut conv, Some(room), posts).await?;
        out.push(Loaded { conv, extra });
    }
    Ok(out)
}

/// The room of the conversation at `address`, if the identity has it (loading only what that
/// room needs).
pub(crate) async fn load(me: &Me, address: &str) -> Result<Option<Loaded>, MatrixError> {
    let found = me
        .client
        .all_conversations(me.name())
        .await?
        .into_iter()
        .find(|c| c.conversation_id == address || c.account_id == address);
    let existed = found.is_some();
    let mut conv = found.unwrap_or_else(|| Conversation {
        account_id: address.to_owned(),
        conversation_id: address.to_owned(),
        ..Default::default()
    });
    conv.account_id = address.to_owned();
    if is_group_id(address) {
        let group = match me
            .client
            .groups
            .clone()
            .get_group(GetGroupRequest {
                identity: me.name().to_owned(),
                group_id: address.to_owned(),
            })
            .await
        {
            Ok(r) => r.into_inner().group,
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => return Err(s.into()),
        };
        let Some(group) = group else {
            return Ok(None);
        };
        conv.kind = ConversationKind::Group as i32;
        let extra = group_extra(me, &mut conv, group).await?;
        return Ok(Some(Loaded { conv, extra }));
    }
    if is_room_address(address) {
        let room = joined_rooms(me).await?.remove(address);
        if room.is_none() && !existed {
            return Ok(None);
        }
        conv.kind = ConversationKind::CommunityRoom as i32;
        let extra = community_extra(me, &mut conv, room, true).await?;
        return Ok(Some(Loaded { conv, extra }));
    }
    if !existed
        || !matches!(
            kind(&conv),
            ConversationKind::Direct
                | ConversationKind::Unspecified
                | ConversationKind::CommunityDm
        )
    {
        return Ok(None);
    }
    Ok(Some(Loaded {
        conv,
        extra: Extra::Direct,
    }))
}

/// The joined community rooms by address.
async fn joined_rooms(me: &Me) -> Result<HashMap<String, Room>, MatrixError> {
    let mut out = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = match me
            .rooms
            .clone()
            .list_rooms(ListRoomsRequest {
                identity: me.name().to_owned(),
                page_size: 100,
                page_token,
            })
            .await
        {
            Ok(p) => p.into_inner(),
            // A daemon without communities has none.
            Err(s) if s.code() == Code::Unimplemented => return Ok(out),
            Err(s) => return Err(s.into()),
        };
        out.extend(page.rooms.into_iter().map(|r| (r.room_id.clone(), r)));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

async fn group_extra(me: &Me, conv: &mut Conversation, group: Group) -> Result<Extra, MatrixError> {
    (conv.accepted, conv.left) = Membership::of_group(group.status).flags();
    conv.display_name = group.name.clone();
    let members = match me
        .client
        .groups
        .clone()
        .list_group_members(ListGroupMembersRequest {
            identity: me.name().to_owned(),
            group_id: group.group_id.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner().members,
        // An invitation not accepted yet may have no members list to read.
        Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => vec![],
        Err(s) => return Err(s.into()),
    };
    Ok(Extra::Group { group, members })
}

async fn community_extra(
    me: &Me,
    conv: &mut Conversation,
    room: Option<Room>,
    with_posts: bool,
) -> Result<Extra, MatrixError> {
    conv.accepted = true;
    conv.left = room.is_none();
    if let Some(r) = &room {
        conv.display_name = if r.name.is_empty() {
            r.token.clone()
        } else {
            r.name.clone()
        };
    }
    if !with_posts {
        return Ok(Extra::Community {
            room,
            posts: Posts::default(),
        });
    }
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            newest_first: true,
            page_size: POSTS_LOOKBACK,
            peer: conv.account_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut posts = Posts::default();
    let mut tallies: HashMap<i64, Vec<RoomReaction>> = HashMap::new();
    let own = me.identity.account_id.clone();
    for ev in page.events.iter().rev() {
        match &ev.kind {
            Some(event::Kind::Incoming(m)) if m.server_message_id != 0 => {
                posts
                    .by_server_id
                    .entry(m.server_message_id)
                    .or_insert((ev.seq, m.sender.clone()));
            }
            Some(event::Kind::Outgoing(m)) if m.server_message_id != 0 => {
                posts
                    .by_server_id
                    .entry(m.server_message_id)
                    .or_insert((ev.seq, own.clone()));
            }
            Some(event::Kind::RoomReactions(r)) => {
                let prev = tallies
                    .insert(r.server_message_id, r.reactions.clone())
                    .unwrap_or_default();
                posts.before.insert(ev.seq, prev);
            }
            _ => {}
        }
    }
    Ok(Extra::Community { room, posts })
}

// ------------------------------------------------------------------------------------------------
// State
// ------------------------------------------------------------------------------------------------

impl RoomView<'_> {
    /// The Matrix user of an Account ID (or blinded ID) in this room: the user for the
    /// identity's own, a ghost otherwise.
    pub fn user_of(&self, account: &str) -> String {
        if account == self.me.identity.account_id
            || matches!(self.extra, Extra::Community { room: Some(r), .. } if r.own_blinded_id == account)
        {
            self.me.user_id.clone()
        } else {
            user_id(account, self.server)
        }
    }

    /// An admin of the group other than the user, else the one who invited the user: who
    /// invites and kicks in the timeline.
    fn an_admin(&self) -> String {
        if let Extra::Group { group, members } = self.extra {
            if let Some(m) = members
                .iter()
                .find(|m| m.admin && m.account_id != self.me.identity.account_id)
            {
                return user_id(&m.account_id, self.server);
            }
            if !group.inviter.is_empty() {
                return user_id(&group.inviter, self.server);
            }
        }
        self.me.user_id.clone()
    }

    fn fixed(&self, what: &str, kind: &str, key: &str, sender: &str, content: Value) -> Value {
        json!({
            "type": kind,
            "state_key": key,
            "content": content,
            "sender": sender,
            "origin_server_ts": self.me.identity.created_at_ms,
            "event_id": format!("${what}_{}", room_key(self.peer())),
            "unsigned": {},
        })
    }

    /// The state of a group or community room (`None` for a one-to-one room).
    pub(crate) fn kind_state(&self) -> Option<Vec<Value>> {
        match self.extra {
            Extra::Direct => None,
            Extra::Group { group, members } => Some(self.group_state(group, members)),
            Extra::Community { room, .. } => Some(self.community_state(room.as_ref())),
        }
    }

    fn my_membership(&self) -> &'static str {
        match self.membership() {
            Membership::Join => "join",
            Membership::Invite => "invite",
            Membership::Leave => "leave",
        }
    }

    fn group_state(&self, group: &Group, members: &[GroupMember]) -> Vec<Value> {
        let me = self.me.user_id.clone();
        let creator = self.an_admin();
        let mut out = vec![
            self.fixed(
                "create",
                "m.room.create",
                "",
                &creator,
                json!({ "creator": creator, "room_version": crate::events::ROOM_VERSION }),
            ),
            self.fixed(
                "join_rules",
                "m.room.join_rules",
                "",
                &creator,
                json!({ "join_rule": "invite" }),
            ),
            self.fixed(
                "history_visibility",
                "m.room.history_visibility",
                "",
                &creator,
                json!({ "history_visibility": "shared" }),
            ),
            self.fixed(
                "name",
                "m.room.name",
                "",
                &creator,
                json!({ "name": group.name }),
            ),
            self.group_power_levels(group, members),
        ];
        if !group.description.is_empty() {
            out.push(self.fixed(
                "topic",
                "m.room.topic",
                "",
                &creator,
                json!({ "topic": group.description }),
            ));
        }
        let mut mine = false;
        for m in members {
            let user = self.user_of(&m.account_id);
            let is_me = user == me;
            mine |= is_me;
            let membership = if is_me {
                self.my_membership()
            } else if m.invited {
                "invite"
            } else {
                "join"
            };
            let sender = if membership == "invite" {
                creator.clone()
            } else {
                user.clone()
            };
            let name = if is_me {
                self.me.display_name().to_owned()
            } else {
                m.name.clone()
            };
            let mut content = json!({ "membership": membership });
            if !name.is_empty() {
                content["displayname"] = json!(name);
            }
            out.push(self.fixed(
                &format!("member_{}", user_key(&user)),
                "m.room.member",
                &user,
                &sender,
                content,
            ));
        }
        if !mine {
            let membership = self.my_membership();
            let kicked = group.status == GroupStatus::Kicked as i32;
            let sender = if membership == "invite" || kicked {
                creator.clone()
            } else {
                me.clone()
            };
            out.push(self.fixed(
                "member_me",
                "m.room.member",
                &me,
                &sender,
                json!({ "membership": membership, "displayname": self.me.display_name() }),
            ));
        }
        out
    }

    fn group_power_levels(&self, group: &Group, members: &[GroupMember]) -> Value {
        let mut users = serde_json::Map::new();
        for m in members.iter().filter(|m| m.admin) {
            users.insert(self.user_of(&m.account_id), json!(100));
        }
        if group.admin {
            users.insert(self.me.user_id.clone(), json!(100));
        }
        self.fixed(
            "power_levels",
            "m.room.power_levels",
            "",
            &self.an_admin(),
            json!({
                "users": users,
                "users_default": 0,
                "events": {},
                "events_default": 0,
                "state_default": 100,
                "ban": 100,
                "kick": 100,
                "redact": 100,
                "invite": 100,
                "notifications": { "room": 100 },
            }),
        )
    }

    fn community_state(&self, room: Option<&Room>) -> Vec<Value> {
        let me = self.me.user_id.clone();
        let mut out = vec![
            self.fixed(
                "create",
                "m.room.create",
                "",
                &me,
                json!({ "creator": me, "room_version": crate::events::ROOM_VERSION }),
            ),
            self.fixed(
                "join_rules",
                "m.room.join_rules",
                "",
                &me,
                json!({ "join_rule": "public" }),
            ),
            self.fixed(
                "history_visibility",
                "m.room.history_visibility",
                "",
                &me,
                json!({ "history_visibility": "shared" }),
            ),
            self.fixed(
                "name",
                "m.room.name",
                "",
                &me,
                json!({ "name": self.conv.display_name }),
            ),
            self.fixed(
                "member_me",
                "m.room.member",
                &me,
                &me,
                json!({ "membership": self.my_membership(), "displayname": self.me.display_name() }),
            ),
        ];
        if let Some(room) = room {
            if !room.description.is_empty() {
                out.push(self.fixed(
                    "topic",
                    "m.room.topic",
                    "",
                    &me,
                    json!({ "topic": room.description }),
                ));
            }
            let mut users = serde_json::Map::new();
            for m in &room.moderators {
                users.insert(self.user_of(m), json!(50));
            }
            let mine = if room.admin {
                100
            } else if room.moderator {
                50
            } else {
                0
            };
            users.insert(me.clone(), json!(mine));
            out.push(self.fixed(
                "power_levels",
                "m.room.power_levels",
                "",
                &me,
                json!({
                    "users": users,
                    "users_default": 0,
                    "events": {},
                    // Read-only: posting needs more than a user has, so clients disable it.
                    "events_default": if room.write { 0 } else { 50 },
                    "state_default": 100,
                    "ban": 50,
                    "kick": 100,
                    "redact": 50,
                    "invite": 100,
                    "notifications": { "room": 100 },
                }),
            ));
        }
        out
    }

    /// The stripped state of a group invitation: the group's name, the inviter's join and the
    /// user's invite.
    pub(crate) fn group_invite_state(&self) -> Option<Vec<Value>> {
        let Extra::Group { group, .. } = self.extra else {
            return None;
        };
        let inviter = if group.inviter.is_empty() {
            self.an_admin()
        } else {
            user_id(&group.inviter, self.server)
        };
        let strip = |kind: &str, key: &str, sender: &str, content: Value| json!({ "type": kind, "state_key": key, "sender": sender, "content": content });
        Some(vec![
            strip(
                "m.room.create",
                "",
                &inviter,
                json!({ "creator": inviter, "room_version": crate::events::ROOM_VERSION }),
            ),
            strip(
                "m.room.join_rules",
                "",
                &inviter,
                json!({ "join_rule": "invite" }),
            ),
            strip("m.room.name", "", &inviter, json!({ "name": group.name })),
            strip(
                "m.room.member",
                &inviter,
                &inviter,
                json!({ "membership": "join" }),
            ),
            strip(
                "m.room.member",
                &self.me.user_id,
                &inviter,
                json!({ "membership": "invite", "displayname": self.me.display_name() }),
            ),
        ])
    }

    /// Member events (join, with display names) for the posters of `events` in a community
    /// room, which has no member list: clients learn the names of the people they see.
    pub(crate) fn poster_members(&self, events: &[&Event]) -> Vec<Value> {
        if !matches!(self.extra, Extra::Community { .. }) {
            return vec![];
        }
        let mut seen = std::collections::BTreeMap::new();
        for ev in events {
            if let Some(event::Kind::Incoming(m)) = &ev.kind {
                let user = self.user_of(&m.sender);
                if user != self.me.user_id {
                    let name = if m.sender_profile_name.is_empty() {
                        crate::ids::short_account(&m.sender)
                    } else {
                        m.sender_profile_name.clone()
                    };
                    seen.insert(user, name);
                }
            }
        }
        seen.into_iter()
            .map(|(user, name)| {
                self.fixed(
                    &format!("member_{}", user_key(&user)),
                    "m.room.member",
                    &user,
                    &user,
                    json!({ "membership": "join", "displayname": name }),
                )
            })
            .collect()
    }

    /// The summary of a group or community room.
    pub(crate) fn kind_summary(&self) -> Option<Value> {
        match self.extra {
            Extra::Direct => None,
            Extra::Group { members, .. } => {
                let heroes: Vec<String> = members
                    .iter()
                    .map(|m| self.user_of(&m.account_id))
                    .filter(|u| *u != self.me.user_id)
                    .take(5)
                    .collect();
                Some(json!({
                    "m.heroes": heroes,
                    "m.joined_member_count": members.iter().filter(|m| !m.invited).count(),
                    "m.invited_member_count": members.iter().filter(|m| m.invited).count(),
                }))
            }
            Extra::Community { room, .. } => Some(json!({
                "m.heroes": [],
                "m.joined_member_count": room.as_ref().map_or(1, |r| r.active_users.max(1)),
                "m.invited_member_count": 0,
            })),
        }
    }

    /// `joined_members` of a group or community room.
    pub(crate) fn kind_joined(&self) -> Option<Value> {
        let state = self.kind_state()?;
        let mut out = serde_json::Map::new();
        for e in state {
            if e["type"] == "m.room.member" && e["content"]["membership"] == "join" {
                if let Some(user) = e["state_key"].as_str() {
                    out.insert(
                        user.to_owned(),
                        json!({ "display_name": e["content"]["displayname"], "avatar_url": null }),
                    );
                }
            }
        }
        Some(Value::Object(out))
    }

    // --------------------------------------------------------------------------------------------
    // Timeline
    // --------------------------------------------------------------------------------------------

    /// The timeline events of a group change, a community deletion or a reactions change;
    /// `None` for any other event.
    pub(crate) fn kind_timeline(&self, ev: &Event) -> Option<Vec<Value>> {
        let out = match ev.kind.as_ref()? {
            event::Kind::Group(g) => self.group_change(ev, g),
            event::Kind::RoomMessageDeleted(d) => {
                let Extra::Community { posts, .. } = self.extra else {
                    return Some(vec![]);
                };
                let Some((seq, sender)) = posts.by_server_id.get(&d.server_message_id) else {
                    return Some(vec![]);
                };
                vec![json!({
                    "type": "m.room.redaction",
                    "redacts": event_id(*seq),
                    "content": { "redacts": event_id(*seq), "reason": "deleted" },
                    "sender": self.user_of(sender),
                    "origin_server_ts": ev.recorded_at_ms,
                    "event_id": event_id(ev.seq),
                    "unsigned": {},
                })]
            }
            event::Kind::RoomReactions(r) => {
                let Extra::Community { posts, .. } = self.extra else {
                    return Some(vec![]);
                };
                let Some((target, _)) = posts.by_server_id.get(&r.server_message_id) else {
                    return Some(vec![]);
                };
                let before = posts.before.get(&ev.seq).cloned().unwrap_or_default();
                let mut out = Vec::new();
                for now in &r.reactions {
                    let was = before.iter().find(|b| b.emoji == now.emoji);
                    for sender in self.new_reactors(now, was) {
                        let n = out.len();
                        out.push(json!({
                            "type": "m.reaction",
                            "content": { "m.relates_to": {
                                "rel_type": "m.annotation",
                                "event_id": event_id(*target),
                                "key": now.emoji,
                            }},
                            "sender": sender,
                            "origin_server_ts": ev.recorded_at_ms,
                            "event_id": sub_event_id(ev.seq, n),
                            "unsigned": {},
                        }));
                    }
                }
                out
            }
            _ => return None,
        };
        Some(out)
    }

    /// Who newly reacted with `now`'s emoji since `was`: the user (if `you` turned on), the
    /// reactors the server newly lists (as their users), and, for a rise in the count the list
    /// does not explain (the server lists only the first few), [`REACTIONS_USER`] once.
    fn new_reactors(&self, now: &RoomReaction, was: Option<&RoomReaction>) -> Vec<String> {
        let (count, you) = was.map_or((0, false), |b| (b.count, b.you));
        let Some(rise) = now.count.checked_sub(count).filter(|r| *r > 0) else {
            return vec![];
        };
        let mut out = Vec::new();
        if now.you && !you {
            out.push(self.me.user_id.clone());
        }
        let known = was.map_or(&[][..], |b| b.reactors.as_slice());
        for id in now.reactors.iter().filter(|id| !known.contains(id)) {
            let user = self.user_of(id);
            if !out.contains(&user) {
                out.push(user);
            }
        }
        out.truncate(usize::try_from(rise).unwrap_or(usize::MAX));
        if (out.len() as u64) < rise {
            out.push(user_id(REACTIONS_USER, self.server));
        }
        out
    }

    fn group_change(&self, ev: &Event, g: &GroupChanged) -> Vec<Value> {
        let Extra::Group { group, members } = self.extra else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut push = |kind: &str, key: &str, sender: &str, content: Value| {
            let n = out.len();
            out.push(json!({
                "type": kind,
                "state_key": key,
                "content": content,
                "sender": sender,
                "origin_server_ts": ev.recorded_at_ms,
                "event_id": sub_event_id(ev.seq, n),
                "unsigned": {},
            }));
        };
        let admin = self.an_admin();
        let me = &self.me.user_id;
        let status = GroupStatus::try_from(g.status).unwrap_or(GroupStatus::Unspecified);
        for a in &g.added {
            let user = self.user_of(a);
            if user == *me {
                if status == GroupStatus::Joined {
                    push("m.room.member", me, me, json!({ "membership": "join" }));
                }
                continue;
            }
            push(
                "m.room.member",
                &user,
                &admin,
                json!({ "membership": "invite" }),
            );
        }
        for r in &g.removed {
            let user = self.user_of(r);
            if user != *me {
                push(
                    "m.room.member",
                    &user,
                    &user,
                    json!({ "membership": "leave" }),
                );
            }
        }
        match status {
            GroupStatus::Kicked => push(
                "m.room.member",
                me,
                &admin,
                json!({ "membership": "leave", "reason": "removed from the group by an admin" }),
            ),
            GroupStatus::Left => push("m.room.member", me, me, json!({ "membership": "leave" })),
            GroupStatus::Destroyed => push(
                "m.room.member",
                me,
                &admin,
                json!({ "membership": "leave", "reason": "the group was deleted" }),
            ),
            _ => {}
        }
        if !g.promoted.is_empty() {
            let mut pl = self.group_power_levels(group, members);
            for p in &g.promoted {
                pl["content"]["users"][self.user_of(p)] = json!(100);
            }
            push("m.room.power_levels", "", &admin, pl["content"].take());
        }
        if g.renamed {
            push("m.room.name", "", &admin, json!({ "name": g.name }));
        }
        if g.description_changed {
            push(
                "m.room.topic",
                "",
                &admin,
                json!({ "topic": group.description }),
            );
        }
        out
    }
}

/// The localpart of a user id (for event ids).
fn user_key(user: &str) -> &str {
    user.strip_prefix('@')
        .and_then(|u| u.split(':').next())
        .unwrap_or(user)
}

// ------------------------------------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------------------------------------

/// Account IDs of users of this server that are Session users (`@05…:server`); the first that
/// is not is `M_INVALID_PARAM`.
fn session_users(
    users: &[String],
    server: &str,
    field: &'static str,
) -> Result<Vec<String>, MatrixError> {
    users
        .iter()
        .map(|u| match parse_user(u, server, false) {
            Some(LocalUser::Ghost(id)) => Ok(id),
            Some(LocalUser::Blinded(_)) => Err(MatrixError::param(
                field,
                format!(
                    "{u} is someone met in a community (a blinded ID): a group takes Session \
                     users by Account ID (@05…:{server})"
                ),
            )),
            _ => Err(MatrixError::param(
                field,
                format!("{u} is not a Session user of this server (@<Account ID>:{server})"),
            )),
        })
        .collect()
}

/// The daemon's answer to a group operation: FAILED_PRECONDITION ("not an admin", "not in
/// the group") is a refusal (`M_FORBIDDEN`), other codes as usual.
fn group_err(status: tonic::Status) -> MatrixError {
    match status.code() {
        Code::FailedPrecondition | Code::PermissionDenied => {
            MatrixError::Forbidden(status.message().to_owned())
        }
        Code::NotFound => MatrixError::NotInRoom,
        _ => status.into(),
    }
}

/// `createRoom` for a group: `name` (else "Group"), `topic`, the Session users in `invite`.
pub(crate) async fn create_group(
    me: &Me,
    server: &str,
    name: Option<String>,
    topic: Option<String>,
    invite: &[String],
) -> Result<String, MatrixError> {
    let members = session_users(invite, server, "invite")?;
    let group = me
        .client
        .groups
        .clone()
        .create_group(CreateGroupRequest {
            identity: me.name().to_owned(),
            name: name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Group".into()),
            description: topic.unwrap_or_default(),
            members,
        })
        .await?
        .into_inner()
        .group
        .ok_or_else(|| {
            MatrixError::from(tonic::Status::internal("CreateGroup returned nothing"))
        })?;
    Ok(room_id(me.name(), &group.group_id, server))
}

/// `join` of a group room: accepts the invitation (a member already: nothing to do).
pub(crate) async fn join_group(
    me: &Me,
    server: &str,
    group_id: &str,
) -> Result<String, MatrixError> {
    let group = me
        .client
        .groups
        .clone()
        .get_group(GetGroupRequest {
            identity: me.name().to_owned(),
            group_id: group_id.to_owned(),
        })
        .await
        .map_err(|s| match s.code() {
            Code::NotFound | Code::PermissionDenied => MatrixError::UnknownRoom,
            _ => s.into(),
        })?
        .into_inner()
        .group
        .ok_or(MatrixError::UnknownRoom)?;
    match GroupStatus::try_from(group.status) {
        Ok(GroupStatus::Joined) => {}
        Ok(GroupStatus::Invited) => {
            me.client
                .groups
                .clone()
                .accept_invitation(AcceptInvitationRequest {
                    identity: me.name().to_owned(),
                    group_id: group_id.to_owned(),
                })
                .await
                .map_err(group_err)?;
        }
        _ => {
            return Err(MatrixError::Forbidden(
                "you are no longer in this group; an admin must invite you again".into(),
            ))
        }
    }
    Ok(room_id(me.name(), group_id, server))
}

/// `leave` of a group room: declines a pending invitation, else leaves the group.
pub(crate) async fn leave_group(me: &Me, loaded: &Loaded) -> Result<(), MatrixError> {
    let group_id = loaded.address().to_owned();
    let identity = me.name().to_owned();
    match loaded.membership() {
        Membership::Invite => {
            me.client
                .groups
                .clone()
                .decline_invitation(DeclineInvitationRequest { identity, group_id })
                .await
                .map_err(group_err)?;
        }
        Membership::Join => {
            me.client
                .groups
                .clone()
                .leave_group(LeaveGroupRequest { identity, group_id })
                .await
                .map_err(group_err)?;
        }
        // Left already (or kicked): leaving again changes nothing.
        Membership::Leave => {}
    }
    Ok(())
}

/// The body of `invite` and `kick`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserBody {
    pub user_id: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub reason: Option<String>,
}

/// `invite` in a group room: invites the Session user, sharing the history.
pub(crate) async fn invite(
    me: &Me,
    server: &str,
    group_id: &str,
    user: &str,
) -> Result<(), MatrixError> {
    let members = session_users(&[user.to_owned()], server, "user_id")?;
    me.client
        .groups
        .clone()
        .invite_group_members(InviteGroupMembersRequest {
            identity: me.name().to_owned(),
            group_id: group_id.to_owned(),
            members,
            share_history: true,
        })
        .await
        .map_err(group_err)?;
    Ok(())
}

/// `kick` in a group room: removes the member.
pub(crate) async fn kick(
    me: &Me,
    server: &str,
    loaded: &Loaded,
    user: &str,
) -> Result<(), MatrixError> {
    let Extra::Group { group, members } = &loaded.extra else {
        return Err(MatrixError::Forbidden(
            "only a group's members can be kicked: this room is not a group".into(),
        ));
    };
    if parse_user(user, server, false) == Some(LocalUser::Identity(me.name().to_owned())) {
        return Err(MatrixError::Forbidden(
            "to remove yourself, leave the room".into(),
        ));
    }
    let ids = session_users(&[user.to_owned()], server, "user_id")?;
    if !group.admin {
        return Err(MatrixError::Forbidden(
            "only an admin of the group can remove members".into(),
        ));
    }
    if !members.iter().any(|m| m.account_id == ids[0]) {
        return Err(MatrixError::NotFound(format!(
            "{user} is not a member of this group"
        )));
    }
    me.client
        .groups
        .clone()
        .remove_group_members(RemoveGroupMembersRequest {
            identity: me.name().to_owned(),
            group_id: group.group_id.clone(),
            members: ids,
            delete_messages: false,
        })
        .await
        .map_err(group_err)?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(crate) struct NameBody {
    name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TopicBody {
    topic: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PowerBody {
    #[serde(default)]
    pub(crate) users: HashMap<String, i64>,
}

/// `PUT state` in a group room: the name, the topic (description), power levels (a member
/// raised to 100 is promoted to admin). Answers the event id.
pub(crate) async fn put_group_state(
    me: &Me,
    server: &str,
    loaded: &Loaded,
    kind: &str,
    key: &str,
    body: &crate::http::Body,
) -> Result<String, MatrixError> {
    let Extra::Group { group, members } = &loaded.extra else {
        return Err(MatrixError::NotInRoom);
    };
    if !key.is_empty() {
        return Err(MatrixError::Forbidden(format!(
            "{kind} with a state key is not something a Session group has"
        )));
    }
    let update = |name: String, description: String| UpdateGroupInfoRequest {
        identity: me.name().to_owned(),
        group_id: group.group_id.clone(),
        name,
        description,
    };
    let what = match kind {
        "m.room.name" => {
            let b: NameBody = body.json()?;
            if b.name.is_empty() {
                return Err(MatrixError::param("name", "a group's name cannot be empty"));
            }
            me.client
                .groups
                .clone()
                .update_group_info(update(b.name, String::new()))
                .await
                .map_err(group_err)?;
            "name"
        }
        "m.room.topic" => {
            let b: TopicBody = body.json()?;
            if b.topic.is_empty() {
                return Err(MatrixError::param(
                    "topic",
                    "a Session group's description cannot be cleared, only changed",
                ));
            }
            me.client
                .groups
                .clone()
                .update_group_info(update(String::new(), b.topic))
                .await
                .map_err(group_err)?;
            "topic"
        }
        "m.room.power_levels" => {
            let b: PowerBody = body.json()?;
            let mut promote = Vec::new();
            for (user, level) in &b.users {
                let Some(LocalUser::Ghost(id)) = parse_user(user, server, false) else {
                    continue;
                };
                let Some(m) = members.iter().find(|m| m.account_id == id) else {
                    continue;
                };
                match (m.admin, *level >= 100) {
                    (false, true) => promote.push(id),
                    (true, false) => {
                        return Err(MatrixError::Forbidden(
                            "a Session group admin cannot be demoted".into(),
                        ))
                    }
                    _ => {}
                }
            }
            if !promote.is_empty() {
                me.client
                    .groups
                    .clone()
                    .promote_group_members(PromoteGroupMembersRequest {
                        identity: me.name().to_owned(),
                        group_id: group.group_id.clone(),
                        members: promote,
                    })
                    .await
                    .map_err(group_err)?;
            }
            "power_levels"
        }
        _ => {
            return Err(MatrixError::Forbidden(format!(
                "{kind} is fixed in a Session group; m.room.name, m.room.topic and \
                 m.room.power_levels can be set"
            )))
        }
    };
    Ok(format!("${what}_{}", room_key(loaded.address())))
}

/// The community room URL a `join/{roomIdOrAlias}` names, if it names one: the full URL
/// (`http(s)://host[:port]/ROOM?public_key=…`, percent-encoded in the path), optionally as an
/// alias `#<URL>` or `#<URL>:<server name>`.
pub(crate) fn community_url<'a>(room: &'a str, server: &str) -> Option<&'a str> {
    let s = room.strip_prefix('#').unwrap_or(room);
    let s = s
        .strip_suffix(server)
        .and_then(|t| t.strip_suffix(':'))
        .unwrap_or(s);
    is_room_address(s).then_some(s)
}

/// Joins a community room by URL; answers its room id.
pub(crate) async fn join_community(
    me: &Me,
    server: &str,
    url: &str,
) -> Result<String, MatrixError> {
    let room = me
        .rooms
        .clone()
        .join_room(JoinRoomRequest {
            identity: me.name().to_owned(),
            url: url.to_owned(),
        })
        .await
        .map_err(|s| match s.code() {
            Code::NotFound => MatrixError::NotFound(s.message().to_owned()),
            _ => s.into(),
        })?
        .into_inner()
        .room
        .ok_or_else(|| MatrixError::from(tonic::Status::internal("JoinRoom returned nothing")))?;
    Ok(room_id(me.name(), &room.room_id, server))
}

/// Rejoins a community room by its room id (left before): its URL is the address with the
/// server's key, which the daemon still knows only while joined, so this is refused with a
/// pointer to joining by URL.
pub(crate) fn rejoin_refused() -> MatrixError {
    MatrixError::Forbidden(
        "join a community room by its URL: POST /join/<percent-encoded \
         http(s)://host/ROOM?public_key=…>"
            .into(),
    )
}

/// Leaves a community room.
pub(crate) async fn leave_community(me: &Me, address: &str) -> Result<(), MatrixError> {
    me.rooms
        .clone()
        .leave_room(LeaveRoomRequest {
            identity: me.name().to_owned(),
            room_id: address.to_owned(),
        })
        .await
        .map_err(MatrixError::room)?;
    Ok(())
}

/// The post an event id names in a community room: (server message id, whether it is the
/// user's own).
pub(crate) fn post_of(loaded: &Loaded, me: &Me, event: &str) -> Option<(i64, bool)> {
    let Extra::Community { posts, room } = &loaded.extra else {
        return None;
    };
    let seq = crate::ids::parse_event_id(event)?;
    let own_blinded = room.as_ref().map(|r| r.own_blinded_id.as_str());
    posts
        .by_server_id
        .iter()
        .find(|(_, (s, _))| *s == seq)
        .map(|(id, (_, sender))| {
            (
                *id,
                *sender == me.identity.account_id || Some(sender.as_str()) == own_blinded,
            )
        })
}

/// True if `address` is a group's.
pub(crate) fn is_group(address: &str) -> bool {
    is_group_id(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_api::v1::RoomMessageDeleted;

    fn me() -> Me {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let token = "t".repeat(64);
        Me {
            client: sessiond_api::client::Client::new(channel.clone(), &token).expect("token"),
            rooms: crate::auth::rooms_client(channel, &token).expect("token"),
            token,
            identity: sessiond_api::v1::Identity {
                name: "alice".into(),
                account_id: format!("05{}", "aa".repeat(32)),
                ..Default::default()
            },
            user_id: "@alice:hs".into(),
            device_id: "SDX".into(),
        }
    }

    fn group_room(status: GroupStatus, admin: bool) -> Loaded {
        let me = format!("05{}", "aa".repeat(32));
        let bob = format!("05{}", "bb".repeat(32));
        let gid = format!("03{}", "cc".repeat(32));
        let mut conv = Conversation {
            account_id: gid.clone(),
            conversation_id: gid.clone(),
            kind: ConversationKind::Group as i32,
            ..Default::default()
        };
        (conv.accepted, conv.left) = match status {
            GroupStatus::Invited => (false, false),
            GroupStatus::Joined => (true, false),
            _ => (true, true),
        };
        Loaded {
            conv,
            extra: Extra::Group {
                group: Group {
                    group_id: gid,
                    name: "Hikers".into(),
                    status: status as i32,
                    admin,
                    inviter: bob.clone(),
                    ..Default::default()
                },
                members: vec![
                    GroupMember {
                        account_id: me,
                        admin,
                        ..Default::default()
                    },
                    GroupMember {
                        account_id: bob,
                        admin: true,
                        name: "Bob".into(),
                        ..Default::default()
                    },
                ],
            },
        }
    }

    #[test]
    fn community_urls_and_aliases() {
        let url = "http://127.0.0.1:8080/lobby?public_key=ab";
        assert_eq!(community_url(url, "hs"), Some(url));
        assert_eq!(community_url(&format!("#{url}"), "hs"), Some(url));
        assert_eq!(community_url(&format!("#{url}:hs"), "hs"), Some(url));
        assert_eq!(community_url("!abc:hs", "hs"), None);
        assert_eq!(community_url("#lobby:hs", "hs"), None);
        assert_eq!(community_url("ftp://x/y", "hs"), None);
    }

    #[tokio::test]
    async fn a_group_room_has_members_power_levels_and_a_kick() {
        let me = me();
        let room = group_room(GroupStatus::Joined, false);
        let view = room.view(&me, "hs");
        let state = view.state();
        let find = |kind: &str, key: &str| {
            state
                .iter()
                .find(|e| e["type"] == kind && e["state_key"] == key)
                .cloned()
                .unwrap_or_else(|| panic!("{kind} {key}"))
        };
        let bob = format!("@05{}:hs", "bb".repeat(32));
        assert_eq!(find("m.room.name", "")["content"]["name"], "Hikers");
        assert_eq!(
            find("m.room.member", "@alice:hs")["content"]["membership"],
            "join"
        );
        assert_eq!(find("m.room.member", &bob)["content"]["displayname"], "Bob");
        let pl = find("m.room.power_levels", "");
        assert_eq!(pl["content"]["users"][&bob], 100);
        assert!(pl["content"]["users"].get("@alice:hs").is_none());
        let ids: std::collections::HashSet<&str> = state
            .iter()
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        assert_eq!(ids.len(), state.len(), "distinct event ids");

        let kicked = group_room(GroupStatus::Kicked, false);
        let view = kicked.view(&me, "hs");
        let ev = Event {
            seq: 9,
            kind: Some(event::Kind::Group(GroupChanged {
                group_id: kicked.address().to_owned(),
                status: GroupStatus::Kicked as i32,
                removed: vec![me.identity.account_id.clone()],
                ..Default::default()
            })),
            ..Default::default()
        };
        let out = view.kind_timeline(&ev).expect("a group change");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["state_key"], "@alice:hs");
        assert_eq!(out[0]["content"]["membership"], "leave");
        assert_eq!(out[0]["sender"], json!(bob));
        assert_eq!(out[0]["event_id"], "$9");
    }

    #[tokio::test]
    async fn an_invitation_names_its_inviter() {
        let me = me();
        let room = group_room(GroupStatus::Invited, false);
        let state = room.view(&me, "hs").invite_state();
        let mine = state
            .iter()
            .find(|e| e["state_key"] == "@alice:hs")
            .expect("the invite");
        assert_eq!(mine["content"]["membership"], "invite");
        assert_eq!(mine["sender"], json!(format!("@05{}:hs", "bb".repeat(32))));
    }

    #[tokio::test]
    async fn others_reactions_come_from_the_reactors_the_server_lists() {
        let me = me();
        let own = format!("15{}", "0a".repeat(32));
        let (a, b) = (
            format!("15{}", "aa".repeat(32)),
            format!("15{}", "bb".repeat(32)),
        );
        let loaded = Loaded {
            conv: Conversation {
                account_id: "http://h:1/lobby".into(),
                ..Default::default()
            },
            extra: Extra::Community {
                room: Some(Room {
                    own_blinded_id: own.clone(),
                    ..Default::default()
                }),
                posts: Posts::default(),
            },
        };
        let view = loaded.view(&me, "hs");
        let r = |count: u64, you: bool, reactors: &[&String]| RoomReaction {
            emoji: "👍".into(),
            count,
            you,
            reactors: reactors.iter().map(|s| (*s).clone()).collect(),
        };
        let anon = format!("@{REACTIONS_USER}:hs");
        assert_eq!(
            view.new_reactors(&r(2, false, &[&a, &b]), None),
            [format!("@{a}:hs"), format!("@{b}:hs")]
        );
        // The user's own reaction (listed too) once, and a rise the list does not explain.
        assert_eq!(
            view.new_reactors(&r(3, true, &[&a, &own]), Some(&r(1, false, &[&a]))),
            ["@alice:hs".to_owned(), anon.clone()]
        );
        // No list: one anonymous reaction; no rise: nothing.
        assert_eq!(
            view.new_reactors(&r(4, false, &[]), Some(&r(2, false, &[]))),
            [anon]
        );
        assert!(view
            .new_reactors(&r(1, false, &[&a]), Some(&r(2, false, &[&a, &b])))
            .is_empty());
    }

    #[tokio::test]
    async fn a_deletion_of_an_unknown_post_shows_nothing() {
        let me = me();
        let loaded = Loaded {
            conv: Conversation {
                account_id: "http://h:1/lobby".into(),
                ..Default::default()
            },
            extra: Extra::Community {
                room: None,
                posts: Posts::default(),
            },
        };
        let ev = Event {
            seq: 3,
            kind: Some(event::Kind::RoomMessageDeleted(RoomMessageDeleted {
                conversation_id: "http://h:1/lobby".into(),
                server_message_id: 77,
            })),
            ..Default::default()
        };
        assert_eq!(loaded.view(&me, "hs").kind_timeline(&ev), Some(vec![]));
        assert_eq!(post_of(&loaded, &me, "$3"), None);
    }
}
