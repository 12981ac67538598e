//! Conversations of many people as IRC channels (`#name`): groups and community rooms (the
//! same machinery; each operation asks the daemon by the conversation's kind; the rooms' own
//! parts are in `rooms`).
//!
//! - Names: `#` and the conversation's name made nick-safe and lower-cased, unique per
//!   connection (a clash gets `-` and the first hex characters of the ID); the topic says the
//!   name, description and ID (`03…`).
//! - JOIN of a channel the user is invited to accepts the invitation; PART leaves; PRIVMSG
//!   posts; TOPIC sets the name (admins); INVITE adds a member; KICK removes one; MODE +o
//!   promotes; NAMES and WHO list members, `@` for admins.
//! - Events: members' messages are PRIVMSGs from their nicks; membership changes (the members
//!   list's difference between polls) are JOIN/PART/KICK lines; an invitation is an INVITE
//!   line; a rename is a TOPIC line.

use std::collections::{BTreeMap, HashMap};

use sessiond_api::v1::{
    event, AcceptInvitationRequest, ConversationKind, Event, Group, GroupChanged, GroupStatus,
    InviteGroupMembersRequest, LeaveGroupRequest, ListGroupMembersRequest, ListGroupsRequest,
    PromoteGroupMembersRequest, RemoveGroupMembersRequest, SendMessageRequest,
    UpdateGroupInfoRequest,
};
use tonic::Status;

use super::{Close, Conn};
use crate::cap::Cap;
use crate::directory::contact_user;
use crate::line::{format_time, Message};
use crate::numeric::*;
use crate::split::{split_text, text_budget};

/// One channel of the connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Channel {
    /// `#name` as shown.
    pub name: String,
    /// The conversation's address (`03…` for a group).
    pub conversation: String,
    /// Its kind.
    pub kind: i32,
    /// Its name and description.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Members: Account ID → admin.
    pub members: BTreeMap<String, bool>,
    /// The user is in it (joined), not just invited.
    pub joined: bool,
    /// The user is an admin (may set the topic, invite, kick, op).
    pub admin: bool,
    /// What the topic ends with: the room's join URL (to share), else the conversation's ID.
    pub link: String,
    /// The user may not post (a read-only room: mode +m).
    pub read_only: bool,
    /// The user's own ID in the conversation when it is not the Account ID (a room: the
    /// blinded `15…` ID).
    pub own: String,
}

impl Channel {
    pub(super) fn topic(&self) -> String {
        let mut t = self.title.clone();
        if !self.description.is_empty() {
            t.push_str(" — ");
            t.push_str(&self.description);
        }
        let link = if self.link.is_empty() {
            &self.conversation
        } else {
            &self.link
        };
        format!("{t} [{link}]")
    }

    /// A community room (not a group).
    pub(super) fn is_room(&self) -> bool {
        self.kind == ConversationKind::CommunityRoom as i32
    }

    /// The channel modes: `+nt`, with `m` when the user may not post.
    pub(super) fn modes(&self) -> &'static str {
        if self.read_only {
            "+mnt"
        } else {
            "+nt"
        }
    }
}

/// One emoji's reactions to a room post: (emoji, how many, whether the user is one of them).
pub(super) type Counted = (String, u64, bool);

/// The channels of one connection, by lower-case name.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    by_name: BTreeMap<String, Channel>,
    /// Room posts shown or looked up: (room, server message id) → seq.
    pub(super) posts: HashMap<(String, i64), u64>,
    /// The reactions last seen per room post: (room, server message id) → its counts.
    pub(super) reactions: HashMap<(String, i64), Vec<Counted>>,
}

/// `name` made a channel name: letters, digits, `-` and `_`, lower case; `#` in front.
pub(crate) fn channel_name(
    title: &str,
    conversation: &str,
    taken: impl Fn(&str) -> bool,
) -> String {
    let mut slug: String = title
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase();
    slug.truncate(40);
    let id = conversation.get(2..10).unwrap_or(conversation);
    if slug.is_empty() {
        slug = format!("g{id}");
    }
    let name = format!("#{slug}");
    if !taken(&name) {
        return name;
    }
    format!("#{slug}-{}", &id[..id.len().min(6)])
}

impl Channels {
    /// The channel of a conversation.
    pub fn of(&self, conversation: &str) -> Option<&Channel> {
        self.by_name
            .values()
            .find(|c| c.conversation == conversation)
    }

    /// The channel called `name` (any case).
    pub fn named(&self, name: &str) -> Option<&Channel> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// Adds or updates the channel of a group; returns it.
    fn upsert_group(&mut self, g: &Group) -> Channel {
        let existing = self.of(&g.group_id).map(|c| c.name.clone());
        let name = match existing {
            Some(n) => n,
            None => channel_name(&g.name, &g.group_id, |n| {
                self.by_name.contains_key(&n.to_ascii_lowercase())
            }),
        };
        let entry = self
            .by_name
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Channel {
                name: name.clone(),
                conversation: g.group_id.clone(),
                kind: ConversationKind::Group as i32,
                ..Channel::default()
            });
        entry.title = g.name.clone();
        entry.description = g.description.clone();
        entry.admin = g.admin;
        entry.clone()
    }

    /// True if a channel is called `name` (any case).
    pub fn taken(&self, name: &str) -> bool {
        self.by_name.contains_key(&name.to_ascii_lowercase())
    }

    pub(super) fn set(&mut self, c: Channel) {
        self.by_name.insert(c.name.to_ascii_lowercase(), c);
    }

    pub(super) fn remove(&mut self, name: &str) {
        if let Some(c) = self.by_name.remove(&name.to_ascii_lowercase()) {
            self.posts.retain(|(room, _), _| *room != c.conversation);
            self.reactions
                .retain(|(room, _), _| *room != c.conversation);
        }
    }

    /// Every channel.
    pub fn all(&self) -> impl Iterator<Item = &Channel> {
        self.by_name.values()
    }
}

impl Conn {
    pub(super) fn channels_mut(&mut self) -> Option<&mut Channels> {
        self.session.as_mut().map(|s| &mut s.channels)
    }

    pub(super) fn channel(&self, name: &str) -> Option<Channel> {
        self.session.as_ref()?.channels.named(name).cloned()
    }

    /// The channel of a conversation.
    pub(super) fn channel_of(&self, conversation: &str) -> Option<Channel> {
        self.session.as_ref()?.channels.of(conversation).cloned()
    }

    /// The prefix of `account` as a channel member.
    pub(super) async fn member_prefix(&mut self, account: &str) -> String {
        let nick = self.nick_of(account).await;
        format!("{nick}!{}@session", contact_user(account))
    }

    /// Reads a group's members into its channel.
    async fn load_members(&mut self, conversation: &str) -> Result<(), Status> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let members = s
            .client
            .groups
            .clone()
            .list_group_members(ListGroupMembersRequest {
                identity: s.identity.clone(),
                group_id: conversation.to_owned(),
            })
            .await?
            .into_inner()
            .members;
        if let Some(chans) = self.channels_mut() {
            if let Some(mut c) = chans.of(conversation).cloned() {
                c.members = members
                    .into_iter()
                    .filter(|m| !m.invited)
                    .map(|m| (m.account_id, m.admin))
                    .collect();
                chans.set(c);
            }
        }
        Ok(())
    }

    /// At registration: every joined group as a joined channel, every invitation as an INVITE.
    pub(super) async fn join_channels(&mut self) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let listed = s
            .client
            .groups
            .clone()
            .list_groups(ListGroupsRequest {
                identity: s.identity.clone(),
            })
            .await;
        let groups = match listed {
            Ok(r) => r.into_inner().groups,
            Err(status) => {
                let why = crate::err::status_text(&status);
                return self
                    .root_notice(&format!("Could not list groups: {why}"))
                    .await;
            }
        };
        for g in groups {
            self.group_seen(&g).await?;
        }
        self.join_rooms().await
    }

    /// Shows a group's state: a JOIN (with topic and names) once joined, an INVITE while invited,
    /// a KICK or PART when it ended.
    async fn group_seen(&mut self, g: &Group) -> Result<(), Close> {
        let Some(chans) = self.channels_mut() else {
            return Ok(());
        };
        let before = chans.of(&g.group_id).cloned();
        let mut c = chans.upsert_group(g);
        let status = GroupStatus::try_from(g.status).unwrap_or(GroupStatus::Unspecified);
        match status {
            GroupStatus::Joined if !c.joined => {
                c.joined = true;
                if let Some(chans) = self.channels_mut() {
                    chans.set(c.clone());
                }
                let _ = self.load_members(&g.group_id).await;
                self.show_join(&c.name).await?;
            }
            GroupStatus::Joined
                if before.is_some_and(|b| b.title != g.name || b.description != g.description) =>
            {
                let topic = c.topic();
                self.send(
                    Message::new("TOPIC", vec![c.name.clone(), topic])
                        .with_source(self.srv.config.server_name.clone()),
                )
                .await?;
            }
            GroupStatus::Invited => {
                let inviter = if g.inviter.is_empty() {
                    self.srv.config.server_name.clone()
                } else {
                    self.member_prefix(&g.inviter).await
                };
                let me = self.me();
                self.send(Message::new("INVITE", vec![me, c.name.clone()]).with_source(inviter))
                    .await?;
            }
            GroupStatus::Kicked | GroupStatus::Destroyed if c.joined => {
                let me = self.me();
                let why = if status == GroupStatus::Kicked {
                    "Removed from the group"
                } else {
                    "The group was destroyed"
                };
                self.send(
                    Message::new("KICK", vec![c.name.clone(), me, why.to_owned()])
                        .with_source(self.srv.config.server_name.clone()),
                )
                .await?;
                if let Some(chans) = self.channels_mut() {
                    chans.remove(&c.name);
                }
            }
            GroupStatus::Left if c.joined => {
                let prefix = self.my_prefix();
                self.send(
                    Message::new("PART", vec![c.name.clone(), "Left".to_owned()])
                        .with_source(prefix),
                )
                .await?;
                if let Some(chans) = self.channels_mut() {
                    chans.remove(&c.name);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// JOIN line, topic and names of a channel the user is in.
    pub(super) async fn show_join(&mut self, name: &str) -> Result<(), Close> {
        let prefix = self.my_prefix();
        self.send(Message::new("JOIN", vec![name.to_owned()]).with_source(prefix))
            .await?;
        if let Some(c) = self.channel(name) {
            self.numeric(RPL_TOPIC, &[&c.name, &c.topic()]).await?;
        }
        self.channel_names(name).await
    }

    /// RPL_NAMREPLY and RPL_ENDOFNAMES for a channel.
    pub(super) async fn channel_names(&mut self, name: &str) -> Result<(), Close> {
        let Some(c) = self.channel(name) else {
            return self
                .numeric(RPL_ENDOFNAMES, &[name, "End of /NAMES list"])
                .await;
        };
        let own = if c.own.is_empty() {
            self.session
                .as_ref()
                .map(|s| s.account_id.clone())
                .unwrap_or_default()
        } else {
            c.own.clone()
        };
        let mut nicks = Vec::new();
        for (account, admin) in &c.members {
            let nick = if *account == own {
                self.me()
            } else {
                self.nick_of(account).await
            };
            nicks.push(if *admin { format!("@{nick}") } else { nick });
        }
        if !c.members.contains_key(&own) {
            // Not read yet (the first poll of a group just joined): at least the user.
            nicks.push(self.me());
        }
        for chunk in nicks.chunks(20) {
            self.numeric(RPL_NAMREPLY, &["=", &c.name, &chunk.join(" ")])
                .await?;
        }
        self.numeric(RPL_ENDOFNAMES, &[&c.name, "End of /NAMES list"])
            .await
    }

    /// WHO for a channel: one RPL_WHOREPLY per member.
    pub(super) async fn channel_who(&mut self, name: &str) -> Result<(), Close> {
        let server = self.srv.config.server_name.clone();
        if let Some(c) = self.channel(name) {
            for (account, admin) in &c.members {
                let nick = self.nick_of(account).await;
                let flags = if *admin { "H@" } else { "H" };
                self.numeric(
                    RPL_WHOREPLY,
                    &[
                        &c.name,
                        &contact_user(account),
                        "session",
                        &server,
                        &nick,
                        flags,
                        &format!("0 {account}"),
                    ],
                )
                .await?;
            }
        }
        self.numeric(RPL_ENDOFWHO, &[name, "End of /WHO list"])
            .await
    }

    /// Says why a channel operation failed.
    async fn channel_failed(&mut self, name: &str, status: &Status) -> Result<(), Close> {
        let why = crate::err::status_text(status);
        if status.code() == tonic::Code::FailedPrecondition {
            return self.numeric(ERR_CHANOPRIVSNEEDED, &[name, &why]).await;
        }
        self.root_notice(&format!("{name}: {why}")).await
    }

    /// `JOIN #chan`: a channel the user is in (shown again) or invited to (accepted). Returns
    /// false if there is no such channel.
    pub(super) async fn join_channel(&mut self, name: &str) -> Result<bool, Close> {
        let Some(c) = self.channel(name) else {
            return Ok(false);
        };
        if c.joined {
            self.show_join(&c.name).await?;
            return Ok(true);
        }
        let Some(s) = &self.session else {
            return Ok(true);
        };
        let r = match c.kind {
            k if k == ConversationKind::Group as i32 => s
                .client
                .groups
                .clone()
                .accept_invitation(AcceptInvitationRequest {
                    identity: s.identity.clone(),
                    group_id: c.conversation.clone(),
                })
                .await
                .map(|r| r.into_inner().group),
            _ => Ok(None),
        };
        match r {
            Ok(Some(g)) => self.group_seen(&g).await?,
            Ok(None) => {}
            Err(status) => self.channel_failed(&c.name, &status).await?,
        }
        Ok(true)
    }

    /// `PART #chan`: leaves the conversation. Returns false if there is no such channel.
    pub(super) async fn part_channel(&mut self, name: &str) -> Result<bool, Close> {
        let Some(c) = self.channel(name) else {
            return Ok(false);
        };
        if !c.joined {
            self.numeric(ERR_NOTONCHANNEL, &[&c.name, "You're not on that channel"])
                .await?;
            return Ok(true);
        }
        if c.is_room() {
            self.leave_room(&c).await?;
            return Ok(true);
        }
        let Some(s) = &self.session else {
            return Ok(true);
        };
        let r = s
            .client
            .groups
            .clone()
            .leave_group(LeaveGroupRequest {
                identity: s.identity.clone(),
                group_id: c.conversation.clone(),
            })
            .await;
        match r {
            Ok(r) => {
                if let Some(g) = r.into_inner().group {
                    self.group_seen(&g).await?;
                }
            }
            Err(status) => self.channel_failed(&c.name, &status).await?,
        }
        Ok(true)
    }

    /// `PRIVMSG #chan text`: posts in the conversation (echoed with echo-message). Returns
    /// false if there is no such channel.
    pub(super) async fn say_in_channel(
        &mut self,
        name: &str,
        text: &str,
        msg: &Message,
    ) -> Result<bool, Close> {
        let Some(c) = self.channel(name) else {
            return Ok(false);
        };
        if !c.joined {
            self.numeric(ERR_CANNOTSENDTOCHAN, &[&c.name, "Join the channel first"])
                .await?;
            return Ok(true);
        }
        if c.read_only {
            self.numeric(
                ERR_CANNOTSENDTOCHAN,
                &[
                    &c.name,
                    "Cannot send to channel (+m): the room is read-only for you, only its moderators may post",
                ],
            )
            .await?;
            return Ok(true);
        }
        let reply_to = self.reply_of(msg, &c.conversation).await;
        let Some(s) = &mut self.session else {
            return Ok(true);
        };
        let r = s
            .client
            .messages
            .clone()
            .send_message(SendMessageRequest {
                identity: s.identity.clone(),
                recipient: c.conversation.clone(),
                text: text.to_owned(),
                reply_to,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => {
                let sent = r.into_inner();
                s.own_sent.insert(sent.seq);
                if self.caps.has(Cap::EchoMessage) {
                    let source = self.my_prefix();
                    let lines =
                        self.channel_lines(&c.name, &source, text, sent.sent_at_ms, sent.seq, None);
                    for line in lines {
                        self.out.push(&line, None).await?;
                    }
                }
            }
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                let why = crate::err::status_text(&status);
                self.numeric(
                    ERR_CANNOTSENDTOCHAN,
                    &[&c.name, &format!("Cannot send to channel: {why}")],
                )
                .await?;
            }
            Err(status) => self.channel_failed(&c.name, &status).await?,
        }
        Ok(true)
    }

    /// `TOPIC #chan [text]`: shows the topic, or renames the conversation (admins).
    pub(super) async fn channel_topic(
        &mut self,
        name: &str,
        text: Option<&str>,
    ) -> Result<bool, Close> {
        let Some(c) = self.channel(name) else {
            return Ok(false);
        };
        let Some(text) = text else {
            let c = if c.is_room() {
                self.refresh_room(&c.conversation).await.unwrap_or(c)
            } else {
                c
            };
            self.numeric(RPL_TOPIC, &[&c.name, &c.topic()]).await?;
            return Ok(true);
        };
        if c.is_room() {
            self.numeric(
                ERR_CHANOPRIVSNEEDED,
                &[
                    &c.name,
                    "A room's name and description are set on its community server",
                ],
            )
            .await?;
            return Ok(true);
        }
        let Some(s) = &self.session else {
            return Ok(true);
        };
        // "name — description [id]" as shown: only the name part is the name.
        let new_name = text.split(" — ").next().unwrap_or(text).trim().to_owned();
        let r = s
            .client
            .groups
            .clone()
            .update_group_info(UpdateGroupInfoRequest {
                identity: s.identity.clone(),
                group_id: c.conversation.clone(),
                name: new_name,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) => {
                if let Some(g) = r.into_inner().group {
                    self.group_seen(&g).await?;
                }
            }
            Err(status) => self.channel_failed(&c.name, &status).await?,
        }
        Ok(true)
    }

    /// `INVITE nick #chan`, `KICK #chan nick`, `MODE #chan +o nick`: membership operations.
    pub(super) async fn channel_member_op(
        &mut self,
        op: MemberOp,
        name: &str,
        nick: &str,
    ) -> Result<bool, Close> {
        let Some(c) = self.channel(name) else {
            return Ok(false);
        };
        if c.is_room() {
            let why = match op {
                MemberOp::Invite => "Anyone with the room's URL (in the topic) can join it",
                MemberOp::Kick => {
                    "Moderators ban from a room with the Session apps (or gRPC Moderate)"
                }
                MemberOp::Op => "A room's moderators are appointed on its community server",
            };
            self.numeric(ERR_CHANOPRIVSNEEDED, &[&c.name, why]).await?;
            return Ok(true);
        }
        let Some(account) = self.resolve(nick).await else {
            self.numeric(ERR_NOSUCHNICK, &[nick, "No such nick"])
                .await?;
            return Ok(true);
        };
        let Some(s) = &self.session else {
            return Ok(true);
        };
        let (mut groups, identity, group_id) = (
            s.client.groups.clone(),
            s.identity.clone(),
            c.conversation.clone(),
        );
        let members = vec![account];
        let r = match op {
            MemberOp::Invite => groups
                .invite_group_members(InviteGroupMembersRequest {
                    identity,
                    group_id,
                    members,
                    share_history: true,
                })
                .await
                .map(|r| r.into_inner().group),
            MemberOp::Kick => groups
                .remove_group_members(RemoveGroupMembersRequest {
                    identity,
                    group_id,
                    members,
                    delete_messages: false,
                })
                .await
                .map(|r| r.into_inner().group),
            MemberOp::Op => groups
                .promote_group_members(PromoteGroupMembersRequest {
                    identity,
                    group_id,
                    members,
                })
                .await
                .map(|r| r.into_inner().group),
        };
        match r {
            Ok(_) => {
                if op == MemberOp::Invite {
                    self.numeric(RPL_INVITING, &[nick, &c.name]).await?;
                }
            }
            Err(status) => self.channel_failed(&c.name, &status).await?,
        }
        Ok(true)
    }

    /// A message event of a channel's conversation, as a PRIVMSG to the channel. Returns false if
    /// the event is not a channel's.
    pub(super) async fn channel_message(&mut self, event: &Event) -> Result<bool, Close> {
        let Some((conversation, true)) = super::history::conversation_of(event) else {
            return Ok(false);
        };
        if matches!(&event.kind, Some(event::Kind::Outgoing(_))) {
            let own = self
                .session
                .as_mut()
                .is_some_and(|s| s.own_sent.remove(&event.seq));
            if own {
                // Shown already (echo) or typed by this client: seen, once everything before
                // it is written.
                self.out.push_mark(conversation, event.seq).await?;
                return Ok(true);
            }
        }
        self.show_channel_message(event, None).await?;
        Ok(true)
    }

    /// Shows one message event of a channel (live, or in a history `batch`); nothing if the
    /// conversation is no channel of this connection.
    pub(super) async fn show_channel_message(
        &mut self,
        event: &Event,
        batch: Option<&str>,
    ) -> Result<(), Close> {
        let (conversation, sender, profile, text, time_ms, files, server_id, from_me) =
            match &event.kind {
                Some(event::Kind::Incoming(m)) => (
                    &m.conversation_id,
                    m.sender.as_str(),
                    m.sender_profile_name.as_str(),
                    &m.text,
                    m.sent_at_ms,
                    &m.attachments,
                    m.server_message_id,
                    false,
                ),
                Some(event::Kind::Outgoing(m)) => (
                    &m.conversation_id,
                    "",
                    "",
                    &m.text,
                    m.sent_at_ms,
                    &m.attachments,
                    m.server_message_id,
                    true,
                ),
                _ => return Ok(()),
            };
        let Some(c) = self.channel_of(conversation) else {
            return Ok(());
        };
        if server_id != 0 {
            if let Some(chans) = self.channels_mut() {
                if chans.posts.len() > 4096 {
                    chans.posts.clear();
                }
                chans
                    .posts
                    .insert((c.conversation.clone(), server_id), event.seq);
            }
        }
        let source = if from_me {
            self.my_prefix()
        } else {
            if c.is_room() {
                self.room_poster(&c, sender, profile, batch.is_none())
                    .await?;
            }
            self.member_prefix(sender).await
        };
        let text = super::chat::with_attachments(text, files);
        let (text, reply_tag) = self.reply_decor(event, &text).await;
        let lines = self.channel_lines(&c.name, &source, &text, time_ms, event.seq, batch);
        let count = lines.len();
        for (i, mut line) in lines.into_iter().enumerate() {
            if let (0, Some(tag)) = (i, &reply_tag) {
                line = line.with_tag("+draft/reply", Some(tag.clone()));
            }
            let mark = (i + 1 == count).then(|| (c.conversation.clone(), event.seq));
            self.out.push(&line, mark).await?;
        }
        Ok(())
    }

    /// The PRIVMSG lines of one channel message, tagged as the client's caps allow.
    pub(super) fn channel_lines(
        &self,
        chan: &str,
        source: &str,
        text: &str,
        time_ms: u64,
        seq: u64,
        batch: Option<&str>,
    ) -> Vec<Message> {
        let text = if text.is_empty() {
            "[a message with nothing sessiond can show]"
        } else {
            text
        };
        split_text(text, text_budget(source, "PRIVMSG", chan))
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut line = Message::new("PRIVMSG", vec![chan.to_owned(), part])
                    .with_source(source.to_owned());
                if let Some(b) = batch.filter(|_| self.caps.has(Cap::Batch)) {
                    line = line.with_tag("batch", Some(b.to_owned()));
                }
                if self.caps.has(Cap::ServerTime) {
                    line = line.with_tag("time", Some(format_time(time_ms)));
                }
                if self.caps.has(Cap::MessageTags) {
                    let id = if i == 0 {
                        seq.to_string()
                    } else {
                        format!("{seq}-{i}")
                    };
                    line = line.with_tag("msgid", Some(id));
                }
                line
            })
            .collect()
    }

    /// A GroupChanged event: membership lines, topic, invitation, kick.
    pub(super) async fn channel_group_event(&mut self, g: &GroupChanged) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let got = s
            .client
            .groups
            .clone()
            .get_group(sessiond_api::v1::GetGroupRequest {
                identity: s.identity.clone(),
                group_id: g.group_id.clone(),
            })
            .await;
        let Ok(group) = got.map(|r| r.into_inner().group) else {
            return Ok(());
        };
        let Some(group) = group else { return Ok(()) };
        let known = self
            .session
            .as_ref()
            .and_then(|s| s.channels.of(&g.group_id).cloned());
        let was_joined = known.as_ref().is_some_and(|c| c.joined);
        self.group_seen(&group).await?;
        if !was_joined {
            return Ok(());
        }
        let Some(c) = self
            .session
            .as_ref()
            .and_then(|s| s.channels.of(&g.group_id).cloned())
        else {
            return Ok(());
        };
        let own = self
            .session
            .as_ref()
            .map(|s| s.account_id.clone())
            .unwrap_or_default();
        let _ = self.load_members(&g.group_id).await;
        for a in g.added.iter().filter(|a| **a != own) {
            let p = self.member_prefix(a).await;
            self.send(Message::new("JOIN", vec![c.name.clone()]).with_source(p))
                .await?;
        }
        for r in g.removed.iter().filter(|r| **r != own) {
            let nick = self.nick_of(r).await;
            self.send(
                Message::new("KICK", vec![c.name.clone(), nick, "Removed".to_owned()])
                    .with_source(self.srv.config.server_name.clone()),
            )
            .await?;
        }
        for p in g.promoted.iter() {
            let nick = if *p == own {
                self.me()
            } else {
                self.nick_of(p).await
            };
            self.send(
                Message::new("MODE", vec![c.name.clone(), "+o".to_owned(), nick])
                    .with_source(self.srv.config.server_name.clone()),
            )
            .await?;
        }
        Ok(())
    }
}

impl Conn {
    /// `&session` `groups create <name> [members…]` (the whole command line in `text`).
    pub(super) async fn cmd_groups(&mut self, text: &str) -> Result<String, Status> {
        const USAGE: &str =
            "Usage: groups create <name, in \"quotes\" if it has spaces> [nick or Account ID…]";
        let mut rest = text
            .split_once(char::is_whitespace)
            .map_or("", |r| r.1)
            .trim();
        let Some(after) = rest
            .strip_prefix("create")
            .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        else {
            return Ok(USAGE.to_owned());
        };
        rest = after.trim();
        let (name, members) = match rest.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((name, members)) => (name.trim(), members),
                None => return Ok(USAGE.to_owned()),
            },
            None => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
        };
        if name.is_empty() {
            return Ok(USAGE.to_owned());
        }
        let mut accounts = Vec::new();
        for nick in members.split_whitespace() {
            match self.resolve(nick).await {
                Some(a) if a.starts_with("05") => accounts.push(a),
                _ => {
                    return Ok(format!(
                        "No contact is called {nick}: 'contacts list' shows them."
                    ))
                }
            }
        }
        let Some(s) = &self.session else {
            return Ok(String::new());
        };
        let group = s
            .client
            .groups
            .clone()
            .create_group(sessiond_api::v1::CreateGroupRequest {
                identity: s.identity.clone(),
                name: name.to_owned(),
                members: accounts.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .group
            .unwrap_or_default();
        if self.group_seen(&group).await.is_err() {
            return Err(Status::unavailable("the connection is closing"));
        }
        let chan = self
            .channel_of(&group.group_id)
            .map(|c| c.name)
            .unwrap_or_default();
        Ok(format!(
            "Created the group {name} ({chan}, {}) with {} invited.",
            group.group_id,
            accounts.len()
        ))
    }
}

/// A membership operation on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberOp {
    /// INVITE: add.
    Invite,
    /// KICK: remove.
    Kick,
    /// MODE +o: promote.
    Op,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_readable_and_unique() {
        let id = format!("03{}", "ab".repeat(32));
        assert_eq!(channel_name("Hikers Club!", &id, |_| false), "#hikers-club");
        assert_eq!(channel_name("  ", &id, |_| false), "#gabababab");
        assert_eq!(
            channel_name("Hikers", &id, |n| n == "#hikers"),
            "#hikers-ababab"
        );
    }
}
