//! Community rooms as channels (the shared parts are in `channels`).
//!
//! - Names: `#` and the room token (`#lobby`); a clash (another server's `lobby`, or a group
//!   called lobby) gets `-` and the server's host and port (`#lobby-127-0-0-1-8080`), then a
//!   number. The topic is the room's name, description and join URL (to share).
//! - Joining: `/join #name <room URL>` (the URL as the channel key), `/join <room URL>` (irssi
//!   and WeeChat send it as `#http://…`), or `rooms join <URL>` in `&session`. `/part` leaves.
//! - Members: the room's recent posters (from the log), its visible moderators (`@`) and the
//!   user. A poster is a nick derived from its display name (else `s` and the start of its
//!   blinded ID); WHOIS shows the blinded `15…` ID. A new poster JOINs before its first post.
//! - Read-only rooms are `+m` and refuse PRIVMSG with 404 saying why.
//! - Deletions: `REDACT #room <msgid>` with `draft/message-redaction`, else a NOTICE to the
//!   channel. Reactions: the server reports counts per emoji, not who reacted: a `TAGMSG` with
//!   `+draft/react` (or `+draft/unreact`) from the server per emoji whose count went up (down),
//!   from the user for its own; without `message-tags` a NOTICE with the counts.

use sessiond_api::v1::{
    event, Conversation, ConversationKind, Event, GetRoomRequest, JoinRoomRequest,
    LeaveRoomRequest, ListEventsRequest, ListRoomsRequest, Room, RoomMessageDeleted,
    RoomReactionsChanged,
};
use tonic::{Code, Status};

use super::channels::{Channel, Counted};
use super::{Close, Conn};
use crate::cap::Cap;
use crate::directory::{valid_nick, NICKLEN, ROOT};
use crate::line::Message;
use crate::numeric::*;

/// The longest channel name (ISUPPORT CHANNELLEN).
pub(crate) const CHANNELLEN: usize = 64;
/// Events read back when looking for a room's posters or one of its posts.
const SCAN: i32 = 500;
/// How much of a post a deletion or reaction notice quotes.
const EXCERPT: usize = 40;

/// The room URL `s` names: `s` itself (or after a `#` that a client put in front) if it starts
/// with `http://` or `https://`.
pub(super) fn room_url_in(s: &str) -> Option<&str> {
    let url = s.strip_prefix('#').unwrap_or(s);
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")).then_some(url)
}

/// What is wrong with a community room URL, if its shape already says (the daemon checks the
/// rest): `http(s)://host[:port]/<room>?public_key=<64 hex>`.
pub(super) fn room_url_problem(url: &str) -> Option<&'static str> {
    let rest = room_url_in(url)
        .and_then(|u| u.split_once("://"))
        .map(|p| p.1);
    let Some(rest) = rest else {
        return Some("it does not start with http:// or https://");
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let Some((host, room)) = path.split_once('/') else {
        return Some("it names no room (https://host/ROOM?public_key=…)");
    };
    if host.is_empty() {
        return Some("it names no server");
    }
    if room.is_empty() || room.contains('/') {
        return Some("it names no room (https://host/ROOM?public_key=…)");
    }
    let key = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("public_key="));
    match key {
        None => Some("it has no ?public_key= (the server's key, 64 hex characters)"),
        Some(k) if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some("its public_key is not 64 hex characters")
        }
        Some(_) => None,
    }
}

/// True for a channel name this server could have: `#` or `&` and 1 to 63 more characters
/// without spaces, commas, colons or control characters.
pub(super) fn valid_channel_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('#') | Some('&'))
        && s.len() > 1
        && s.len() <= CHANNELLEN
        && chars.all(|c| !c.is_control() && c != ' ' && c != ',' && c != ':')
}

/// Letters, digits, `-` and `_` of `s`, lower case.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c == '.' || c == ':' { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The channel name of room `token` at `address` (`<base URL>/<token>`): `#token`, else
/// `#token-<host and port>`, else that with a number; never one `taken` says is in use.
pub(crate) fn room_channel_name(
    token: &str,
    address: &str,
    taken: impl Fn(&str) -> bool,
) -> String {
    let mut base = slug(token);
    if base.is_empty() {
        base = "room".to_owned();
    }
    base.truncate(40);
    let first = format!("#{base}");
    if !taken(&first) {
        return first;
    }
    let host = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let mut second = format!("#{base}-{}", slug(host));
    second.truncate(CHANNELLEN - 4);
    if !taken(&second) {
        return second;
    }
    (2..)
        .map(|n| format!("{second}-{n}"))
        .find(|n| !taken(n))
        .unwrap_or(second)
}

/// A nick from a display name: letters, digits, `_` and `-` (a run of spaces becomes `_`),
/// starting with a letter, at most NICKLEN; `None` if nothing is left.
pub(crate) fn nick_from_name(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            if space && !out.is_empty() {
                out.push('_');
            }
            space = false;
            out.push(c);
        }
    }
    let start = out.find(|c: char| c.is_ascii_alphabetic())?;
    let mut nick = out[start..].to_owned();
    nick.truncate(NICKLEN);
    let nick = nick.trim_end_matches(['_', '-']).to_owned();
    valid_nick(&nick).then_some(nick)
}

/// The first free nick among `base`, `base2`, `base3`, … (cut to fit NICKLEN).
fn free_nick(base: &str, taken: impl Fn(&str) -> bool) -> String {
    (1u32..)
        .map(|n| {
            if n == 1 {
                base.to_owned()
            } else {
                let suffix = n.to_string();
                let keep: String = base.chars().take(NICKLEN - suffix.len()).collect();
                format!("{keep}{suffix}")
            }
        })
        .find(|n| !taken(n))
        .unwrap_or_else(|| base.to_owned())
}

/// `text` cut to [`EXCERPT`] characters.
fn excerpt(text: &str) -> String {
    let mut e: String = text.chars().take(EXCERPT).collect();
    if text.chars().count() > EXCERPT {
        e.push('…');
    }
    e
}

impl Conn {
    /// At registration: every joined room as a joined channel.
    pub(super) async fn join_rooms(&mut self) -> Result<(), Close> {
        let rooms = match self.list_rooms().await {
            Ok(r) => r,
            // An offline daemon reaches no community server, so it shows no rooms.
            Err(status) if status.code() == Code::Unavailable => return Ok(()),
            Err(status) => {
                let why = crate::err::status_text(&status);
                return self
                    .root_notice(&format!("Could not list community rooms: {why}"))
                    .await;
            }
        };
        for room in rooms {
            self.room_seen(&room, false).await?;
        }
        Ok(())
    }

    /// Every joined room (all pages).
    async fn list_rooms(&self) -> Result<Vec<Room>, Status> {
        let Some(s) = &self.session else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = s
                .client
                .communities
                .clone()
                .list_rooms(ListRoomsRequest {
                    identity: s.identity.clone(),
                    page_size: 1000,
                    page_token,
                })
                .await?
                .into_inner();
            out.extend(page.rooms);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Shows a joined room: JOIN, topic and names the first time (or again if `again`), a
    /// TOPIC line when its name or description changed, a MODE line when posting was allowed
    /// or refused since.
    async fn room_seen(&mut self, room: &Room, again: bool) -> Result<(), Close> {
        let Some(chans) = self.channels_mut() else {
            return Ok(());
        };
        let before = chans.of(&room.room_id).cloned();
        let mut c = before.clone().unwrap_or_else(|| Channel {
            name: room_channel_name(&room.token, &room.room_id, |n| chans.taken(n)),
            conversation: room.room_id.clone(),
            kind: ConversationKind::CommunityRoom as i32,
            ..Channel::default()
        });
        c.title = if room.name.is_empty() {
            room.token.clone()
        } else {
            room.name.clone()
        };
        c.description = room.description.clone();
        c.link = room.join_url.clone();
        c.read_only = !room.write && !room.moderator && !room.admin;
        c.admin = room.moderator || room.admin;
        c.own = room.own_blinded_id.clone();
        let newly = !c.joined;
        c.joined = true;
        chans.set(c.clone());
        if newly {
            self.load_posters(room).await;
            return self.show_join(&c.name).await;
        }
        if again {
            return self.show_join(&c.name).await;
        }
        let Some(b) = before else { return Ok(()) };
        let server = self.srv.config.server_name.clone();
        if b.topic() != c.topic() {
            self.send(
                Message::new("TOPIC", vec![c.name.clone(), c.topic()]).with_source(server.clone()),
            )
            .await?;
        }
        if b.read_only != c.read_only {
            let mode = if c.read_only { "+m" } else { "-m" };
            self.send(
                Message::new("MODE", vec![c.name.clone(), mode.to_owned()]).with_source(server),
            )
            .await?;
        }
        Ok(())
    }

    /// Reads a room again (for TOPIC); its channel as it is now.
    pub(super) async fn refresh_room(&mut self, address: &str) -> Option<Channel> {
        let s = self.session.as_ref()?;
        let room = s
            .client
            .communities
            .clone()
            .get_room(GetRoomRequest {
                identity: s.identity.clone(),
                room_id: address.to_owned(),
            })
            .await
            .ok()?
            .into_inner()
            .room?;
        self.room_seen(&room, false).await.ok()?;
        self.channel_of(address)
    }

    /// The room's members as far as the log knows them: recent posters, visible moderators
    /// (ops) and the user.
    async fn load_posters(&mut self, room: &Room) {
        let Some(s) = &self.session else { return };
        let page = s
            .client
            .messages
            .clone()
            .list_events(ListEventsRequest {
                identity: s.identity.clone(),
                page_size: SCAN,
                newest_first: true,
                peer: room.room_id.clone(),
                ..Default::default()
            })
            .await;
        let mut posters = Vec::new();
        if let Ok(page) = page {
            for e in page.into_inner().events {
                if let Some(event::Kind::Incoming(m)) = e.kind {
                    posters.push((m.sender, m.sender_profile_name));
                }
            }
        }
        for m in &room.moderators {
            posters.push((m.clone(), String::new()));
        }
        for (account, profile) in &posters {
            self.name_poster(account, profile);
        }
        let Some(mut c) = self.channel_of(&room.room_id) else {
            return;
        };
        for (account, _) in posters {
            let op = room.moderators.contains(&account);
            c.members.insert(account, op);
        }
        if !room.own_blinded_id.is_empty() {
            c.members
                .insert(room.own_blinded_id.clone(), room.moderator || room.admin);
        }
        if let Some(chans) = self.channels_mut() {
            chans.set(c);
        }
    }

    /// Gives a poster a nick (from its display name) if it has none yet.
    fn name_poster(&mut self, account: &str, profile: &str) {
        let me = self.me();
        let Some(s) = &mut self.session else { return };
        if account.is_empty() || s.dir.nick(account).is_some() {
            return;
        }
        let base =
            nick_from_name(profile).unwrap_or_else(|| crate::directory::fallback_nick(account));
        let dir = &s.dir;
        let nick = free_nick(&base, |n| {
            dir.account(n).is_some() || n.eq_ignore_ascii_case(ROOT) || n.eq_ignore_ascii_case(&me)
        });
        s.dir
            .upsert(account, &nick, String::new(), profile.to_owned());
    }

    /// A post's author in a room channel: named, and a member (a JOIN line first if `live` and
    /// new).
    pub(super) async fn room_poster(
        &mut self,
        c: &Channel,
        account: &str,
        profile: &str,
        live: bool,
    ) -> Result<(), Close> {
        self.name_poster(account, profile);
        let Some(mut now) = self.channel_of(&c.conversation) else {
            return Ok(());
        };
        if now.members.contains_key(account) {
            return Ok(());
        }
        now.members.insert(account.to_owned(), false);
        if let Some(chans) = self.channels_mut() {
            chans.set(now);
        }
        if live {
            let p = self.member_prefix(account).await;
            self.send(Message::new("JOIN", vec![c.name.clone()]).with_source(p))
                .await?;
        }
        Ok(())
    }

    /// Joins the room at `url` (asked for as channel `asked`): its channel appears (JOIN, topic,
    /// names); a refusal is a numeric saying why.
    pub(super) async fn join_room_url(&mut self, asked: &str, url: &str) -> Result<(), Close> {
        if let Some(why) = room_url_problem(url) {
            let text = format!(
                "Bad community room URL: {why}; it looks like https://host/room?public_key=<64 hex>"
            );
            return self.numeric(ERR_BADCHANMASK, &[asked, &text]).await;
        }
        match self.join_room(url).await {
            Ok(room) => self.room_seen(&room, true).await,
            Err(status) => {
                let why = crate::err::status_text(&status);
                let (code, text) = match status.code() {
                    Code::InvalidArgument => (
                        ERR_BADCHANMASK,
                        format!("Bad community room URL ({why}); it looks like https://host/room?public_key=<64 hex>"),
                    ),
                    Code::NotFound => (
                        ERR_NOSUCHCHANNEL,
                        format!("No such room on that community server ({why})"),
                    ),
                    _ => (ERR_NOSUCHCHANNEL, format!("Cannot join the room: {why}")),
                };
                self.numeric(code, &[asked, &text]).await
            }
        }
    }

    async fn join_room(&self, url: &str) -> Result<Room, Status> {
        let Some(s) = &self.session else {
            return Err(Status::unavailable("not registered"));
        };
        s.client
            .communities
            .clone()
            .join_room(JoinRoomRequest {
                identity: s.identity.clone(),
                url: url.to_owned(),
            })
            .await?
            .into_inner()
            .room
            .ok_or_else(|| Status::internal("the daemon answered without the room"))
    }

    /// Leaves a room: PART, and the channel is gone.
    pub(super) async fn leave_room(&mut self, c: &Channel) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let r = s
            .client
            .communities
            .clone()
            .leave_room(LeaveRoomRequest {
                identity: s.identity.clone(),
                room_id: c.conversation.clone(),
            })
            .await;
        match r {
            Ok(_) => self.room_left(c).await,
            Err(status) => {
                let why = crate::err::status_text(&status);
                self.root_notice(&format!("{}: {why}", c.name)).await
            }
        }
    }

    async fn room_left(&mut self, c: &Channel) -> Result<(), Close> {
        let prefix = self.my_prefix();
        self.send(
            Message::new("PART", vec![c.name.clone(), "Left the room".to_owned()])
                .with_source(prefix),
        )
        .await?;
        if let Some(chans) = self.channels_mut() {
            chans.remove(&c.name);
        }
        Ok(())
    }

    /// A room's conversation changed: joined (here or elsewhere: its channel appears) or left
    /// (it goes).
    pub(super) async fn room_conversation_changed(
        &mut self,
        conv: &Conversation,
    ) -> Result<(), Close> {
        let known = self.channel_of(&conv.conversation_id);
        match (conv.left, known) {
            (true, Some(c)) => self.room_left(&c).await,
            (false, None) => {
                self.refresh_room(&conv.conversation_id).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The newest message event of post `server_id` in `room`.
    async fn post_event(&mut self, room: &str, server_id: i64) -> Option<Event> {
        let s = self.session.as_ref()?;
        let cached = s.channels.posts.get(&(room.to_owned(), server_id)).copied();
        let mut before = cached.map_or(0, |seq| seq + 1);
        for _ in 0..4 {
            let page = s
                .client
                .messages
                .clone()
                .list_events(ListEventsRequest {
                    identity: s.identity.clone(),
                    before_seq: before,
                    page_size: SCAN,
                    newest_first: true,
                    peer: room.to_owned(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            let found = page.events.iter().find(|e| match &e.kind {
                Some(event::Kind::Incoming(m)) => m.server_message_id == server_id,
                Some(event::Kind::Outgoing(m)) => m.server_message_id == server_id,
                _ => false,
            });
            if let Some(e) = found {
                return Some(e.clone());
            }
            match (page.next_page_token.is_empty(), page.events.last()) {
                (false, Some(e)) => before = e.seq,
                _ => return None,
            }
        }
        None
    }

    /// "nick's message “excerpt”" for a notice about `e`.
    async fn describe_post(&mut self, e: &Event) -> String {
        match &e.kind {
            Some(event::Kind::Incoming(m)) => {
                let nick = self.nick_of(&m.sender).await;
                format!("{nick}'s message “{}”", excerpt(&m.text))
            }
            Some(event::Kind::Outgoing(m)) => format!("your message “{}”", excerpt(&m.text)),
            _ => "a message".to_owned(),
        }
    }

    /// A post was deleted: REDACT (with draft/message-redaction) or a NOTICE.
    pub(super) async fn room_post_deleted(&mut self, d: &RoomMessageDeleted) -> Result<(), Close> {
        let Some(c) = self.channel_of(&d.conversation_id) else {
            return Ok(());
        };
        let server = self.srv.config.server_name.clone();
        let found = self
            .post_event(&d.conversation_id, d.server_message_id)
            .await;
        let line = match found {
            Some(e) if self.caps.has(Cap::MessageRedaction) => Message::new(
                "REDACT",
                vec![c.name.clone(), e.seq.to_string(), "deleted".to_owned()],
            ),
            Some(e) => {
                let what = self.describe_post(&e).await;
                Message::new("NOTICE", vec![c.name.clone(), format!("[deleted: {what}]")])
            }
            None => Message::new(
                "NOTICE",
                vec![c.name.clone(), "[a message was deleted]".to_owned()],
            ),
        };
        self.send(line.with_source(server)).await
    }

    /// A post's reactions changed: TAGMSG per emoji whose count moved (with message-tags), or a
    /// NOTICE with the counts.
    pub(super) async fn room_reactions(&mut self, r: &RoomReactionsChanged) -> Result<(), Close> {
        let Some(c) = self.channel_of(&r.conversation_id) else {
            return Ok(());
        };
        let key = (r.conversation_id.clone(), r.server_message_id);
        let now: Vec<Counted> = r
            .reactions
            .iter()
            .map(|x| (x.emoji.clone(), x.count, x.you))
            .collect();
        let before = self
            .channels_mut()
            .and_then(|chans| chans.reactions.insert(key, now.clone()))
            .unwrap_or_default();
        let Some(post) = self
            .post_event(&r.conversation_id, r.server_message_id)
            .await
        else {
            return Ok(());
        };
        let server = self.srv.config.server_name.clone();
        if self.caps.has(Cap::MessageTags) {
            let count = |list: &[Counted], emoji: &str| {
                list.iter()
                    .find(|x| x.0 == emoji)
                    .map_or((0, false), |x| (x.1, x.2))
            };
            let mut emojis: Vec<String> = before.iter().map(|x| x.0.clone()).collect();
            for x in &now {
                if !emojis.contains(&x.0) {
                    emojis.push(x.0.clone());
                }
            }
            for emoji in emojis {
                let (old, old_you) = count(&before, &emoji);
                let (new, new_you) = count(&now, &emoji);
                if old == new {
                    continue;
                }
                let key = if new > old {
                    "+draft/react"
                } else {
                    "+draft/unreact"
                };
                let source = if old_you != new_you {
                    self.my_prefix()
                } else {
                    server.clone()
                };
                let line = Message::new("TAGMSG", vec![c.name.clone()])
                    .with_tag(key, Some(emoji))
                    .with_tag("+draft/reply", Some(post.seq.to_string()))
                    .with_source(source);
                self.send(line).await?;
            }
            return Ok(());
        }
        let what = self.describe_post(&post).await;
        let counts: Vec<String> = now
            .iter()
            .map(|(e, n, you)| {
                if *you {
                    format!("{e} {n} (you too)")
                } else {
                    format!("{e} {n}")
                }
            })
            .collect();
        let text = if counts.is_empty() {
            format!("[no reactions left on {what}]")
        } else {
            format!("[reactions to {what}: {}]", counts.join(", "))
        };
        self.send(Message::new("NOTICE", vec![c.name.clone(), text]).with_source(server))
            .await
    }

    /// `&session` `rooms [list] | rooms join <URL> | rooms leave <#channel or URL>`.
    pub(super) async fn cmd_rooms(&mut self, args: &[&str]) -> Result<String, Status> {
        const USAGE: &str = "rooms [list] | rooms join <room URL with ?public_key=> | rooms leave <#channel or room URL>";
        match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
            None | Some("list") => {
                let rooms = self.list_rooms().await?;
                if rooms.is_empty() {
                    return Ok("No community rooms yet: 'rooms join <URL>' joins one.".into());
                }
                let mut out = format!("{} community rooms:", rooms.len());
                for r in rooms {
                    let chan = self
                        .channel_of(&r.room_id)
                        .map(|c| c.name)
                        .unwrap_or_default();
                    let mut flags = String::new();
                    if !r.write && !r.moderator && !r.admin {
                        flags.push_str(" (read-only)");
                    }
                    if r.moderator || r.admin {
                        flags.push_str(" (moderator)");
                    }
                    if !r.last_error.is_empty() {
                        flags.push_str(&format!(" (last poll failed: {})", r.last_error));
                    }
                    out.push_str(&format!("\n{chan} {} {}{flags}", r.name, r.join_url));
                }
                Ok(out)
            }
            Some("join") => {
                let Some(url) = args.get(1) else {
                    return Ok(USAGE.to_owned());
                };
                if let Some(why) = room_url_problem(url) {
                    return Ok(format!("That is not a community room URL: {why}."));
                }
                let room = self.join_room(url).await?;
                self.room_seen(&room, true)
                    .await
                    .map_err(|_| Status::unavailable("the connection is closing"))?;
                let chan = self
                    .channel_of(&room.room_id)
                    .map(|c| c.name)
                    .unwrap_or_default();
                Ok(format!("Joined {} as {chan}.", room.name))
            }
            Some("leave") | Some("part") => {
                let Some(which) = args.get(1) else {
                    return Ok(USAGE.to_owned());
                };
                let c = match room_url_in(which) {
                    Some(url) => {
                        let address = url.split('?').next().unwrap_or(url).to_ascii_lowercase();
                        self.session.as_ref().and_then(|s| {
                            s.channels
                                .all()
                                .find(|c| {
                                    c.is_room() && c.conversation.eq_ignore_ascii_case(&address)
                                })
                                .cloned()
                        })
                    }
                    None => self.channel(which).filter(Channel::is_room),
                };
                let Some(c) = c else {
                    return Ok(format!(
                        "You are in no room {which}: 'rooms list' shows them."
                    ));
                };
                self.leave_room(&c)
                    .await
                    .map_err(|_| Status::unavailable("the connection is closing"))?;
                Ok(format!("Left {}.", c.name))
            }
            Some(_) => Ok(USAGE.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channel_names_are_readable_and_unique() {
        let a = "http://127.0.0.1:8080/lobby";
        assert_eq!(room_channel_name("lobby", a, |_| false), "#lobby");
        assert_eq!(
            room_channel_name("lobby", a, |n| n == "#lobby"),
            "#lobby-127-0-0-1-8080"
        );
        assert_eq!(
            room_channel_name("lobby", a, |n| n == "#lobby"
                || n == "#lobby-127-0-0-1-8080"),
            "#lobby-127-0-0-1-8080-2"
        );
        assert_eq!(room_channel_name("", a, |_| false), "#room");
    }

    #[test]
    fn urls_names_and_nicks() {
        assert_eq!(
            room_url_in("#http://h/r?public_key=1"),
            Some("http://h/r?public_key=1")
        );
        assert_eq!(room_url_in("HTTPS://h/r"), Some("HTTPS://h/r"));
        assert_eq!(room_url_in("#lobby"), None);
        assert!(valid_channel_name("#lobby"));
        assert!(!valid_channel_name("lobby"));
        assert!(!valid_channel_name("#"));
        assert!(!valid_channel_name("#a\u{7}b"));
        assert!(!valid_channel_name(&format!("#{}", "a".repeat(64))));
        assert_eq!(nick_from_name("Bob Smith!").as_deref(), Some("Bob_Smith"));
        assert_eq!(nick_from_name("42 Alice").as_deref(), Some("Alice"));
        assert_eq!(nick_from_name("😀"), None);
        assert_eq!(free_nick("bob", |n| n == "bob"), "bob2");
        let key = "ab".repeat(32);
        assert_eq!(
            room_url_problem(&format!("http://h:1/lobby?public_key={key}")),
            None
        );
        assert_eq!(
            room_url_problem(&format!("#https://h/lobby?x=1&public_key={key}")),
            None
        );
        for bad in [
            "lobby".to_owned(),
            "http://h/lobby".to_owned(),
            "http://h/lobby?public_key=abcd".to_owned(),
            format!("http:///lobby?public_key={key}"),
            format!("http://h/?public_key={key}"),
            format!("http://h?public_key={key}"),
        ] {
            assert!(room_url_problem(&bad).is_some(), "{bad}");
        }
    }
}
