//! Messages both ways: PRIVMSG/NOTICE to a nick or Account ID become Messages.Send (echoed with
//! echo-message), TAGMSG `+typing` becomes SendTyping; daemon events become PRIVMSG, TAGMSG,
//! NOTICE and NICK lines; and the bounded replay of missed messages at registration.

use sessiond_api::client::{looks_like_account_id, looks_like_blinded_id};
use sessiond_api::v1::{
    event, Attachment, ConversationKind, DeliveryState, Event, SendMessageRequest,
    SendTypingRequest,
};
use tracing::debug;

use super::history::{self, is_direct, is_message};
use super::register::CONTROL;
use super::{Close, Conn};
use crate::cap::Cap;
use crate::directory::{contact_user, fallback_nick, ROOT};
use crate::line::{format_time, Message};
use crate::numeric::*;
use crate::split::{split_text, text_budget};

/// One message to show: who wrote it, to whom, what, when, and its place in the log.
pub(super) struct Shown<'a> {
    /// True if the identity wrote it.
    pub from_me: bool,
    /// The other side's Account ID.
    pub peer: &'a str,
    /// The text.
    pub text: &'a str,
    /// Its time, ms since the epoch.
    pub time_ms: u64,
    /// Its seq in the event log.
    pub seq: u64,
    /// The target to show for the client's own messages, if not the peer's nick (echo-message
    /// repeats the target as the client wrote it).
    pub target: Option<&'a str>,
}

impl Conn {
    /// `PRIVMSG|NOTICE <target> :<text>`.
    pub(super) async fn privmsg(&mut self, msg: &Message) -> Result<(), Close> {
        let notice = msg.command == "NOTICE";
        let Some(target) = msg.param(0).filter(|t| !t.is_empty()).map(str::to_owned) else {
            if notice {
                return Ok(());
            }
            return self
                .numeric(ERR_NORECIPIENT, &["No recipient given (PRIVMSG)"])
                .await;
        };
        let Some(text) = msg.param(1).filter(|t| !t.is_empty()).map(str::to_owned) else {
            if notice {
                return Ok(());
            }
            return self.numeric(ERR_NOTEXTTOSEND, &["No text to send"]).await;
        };
        if target.contains(',') {
            if notice {
                return Ok(());
            }
            return self
                .numeric(ERR_TOOMANYTARGETS, &[&target, "One target at a time"])
                .await;
        }
        if target.eq_ignore_ascii_case(CONTROL) || target.eq_ignore_ascii_case(ROOT) {
            if notice {
                return Ok(());
            }
            let reply_to = if target.eq_ignore_ascii_case(CONTROL) {
                CONTROL.to_owned()
            } else {
                self.me()
            };
            return self.control(&text, &reply_to).await;
        }
        if target.starts_with('#') && !notice {
            let said = match ctcp(&text) {
                Ctcp::None => text.clone(),
                Ctcp::Action(action) => format!("* {action}"),
                Ctcp::Other(_) => return Ok(()),
            };
            if self.say_in_channel(&target, &said, msg).await? {
                return Ok(());
            }
        }
        if target.starts_with('&') || target.starts_with('#') {
            if notice {
                return Ok(());
            }
            return self
                .numeric(ERR_NOSUCHCHANNEL, &[&target, "No such channel"])
                .await;
        }
        let Some(account) = self.resolve(&target).await else {
            if notice {
                // RFC 2812 §3.3.2: no automatic reply to a NOTICE, errors included.
                return Ok(());
            }
            return self
                .numeric(
                    ERR_NOSUCHNICK,
                    &[
                        &target,
                        "No such nick: use a contact's nick or a full Account ID",
                    ],
                )
                .await;
        };
        let session_text = match ctcp(&text) {
            Ctcp::None => text.clone(),
            Ctcp::Action(action) => format!("* {action}"),
            Ctcp::Other(kind) => {
                if notice {
                    return Ok(());
                }
                return self
                    .root_notice(&format!("CTCP {kind} does not travel over Session"))
                    .await;
            }
        };
        if self.session.is_none() {
            return Ok(());
        }
        let reply_to = self.reply_of(msg, &account).await;
        let Some(s) = &self.session else {
            return Ok(());
        };
        // Links to files uploaded to the daemon (FILEHOST) travel as attachments.
        let (session_text, attachment_ids) = match self.srv.config.filehost.as_deref() {
            Some(upload) => match file_links(s, upload, &session_text).await {
                Ok(found) => found,
                Err(why) => {
                    return self
                        .root_notice(&format!("Your message to {target} was not sent: {why}"))
                        .await;
                }
            },
            None => (session_text, Vec::new()),
        };
        let request = SendMessageRequest {
            identity: s.identity.clone(),
            recipient: account.clone(),
            text: session_text,
            reply_to,
            attachment_ids,
            ..SendMessageRequest::default()
        };
        let sent = s.client.messages.clone().send_message(request).await;
        let sent = match sent {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let why = crate::err::status_text(&status);
                return self
                    .root_notice(&format!("Your message to {target} was not sent: {why}"))
                    .await;
            }
        };
        if let Some(s) = &mut self.session {
            s.own_sent.insert(sent.seq);
        }
        // Written to a full Account ID: the contact's nick takes over the query (see
        // `rename_query`), so the echo goes to the nick as the replies will come from it.
        let target = if looks_like_account_id(&target) || looks_like_blinded_id(&target) {
            self.rename_query(&target, &account).await?
        } else {
            target
        };
        if self.caps.has(Cap::EchoMessage) {
            let shown = Shown {
                from_me: true,
                peer: &account,
                text: &text,
                time_ms: sent.sent_at_ms,
                seq: sent.seq,
                target: Some(&target),
            };
            // The read mark waits for the message's own event (see deliver_event): events
            // before it may still be on their way to this client.
            let lines = self.message_lines(&shown, &target, None, &msg.command);
            for (line, _) in lines {
                self.out.push(&line, None).await?;
            }
        }
        Ok(())
    }

    /// One conversation, one query window: after the client wrote to a full Account ID,
    /// `:<Account ID>!<user>@session NICK <nick>` tells it the contact's nick, as if the contact
    /// had renamed itself. irssi and WeeChat rename an open query on a NICK from its nick, so
    /// the query opened with the Account ID becomes the nick's, where replies arrive. Returns
    /// the nick.
    async fn rename_query(&mut self, typed: &str, account: &str) -> Result<String, Close> {
        let nick = self.nick_of(account).await;
        if !nick.eq_ignore_ascii_case(typed) {
            let source = format!("{typed}!{}@session", contact_user(account));
            self.send(Message::new("NICK", vec![nick.clone()]).with_source(source))
                .await?;
        }
        Ok(nick)
    }

    /// `TAGMSG <target>` with `+typing=active|paused|done` (or `+draft/typing`): SendTyping
    /// (best effort). Other client tags are not relayed (ISUPPORT CLIENTTAGDENY says so).
    pub(super) async fn tagmsg(&mut self, msg: &Message) -> Result<(), Close> {
        if self.react_tagmsg(msg).await? {
            return Ok(());
        }
        let Some(typing) = msg
            .tag("+typing")
            .or_else(|| msg.tag("+draft/typing"))
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let target = msg.param(0).unwrap_or_default().to_owned();
        if target.eq_ignore_ascii_case(CONTROL)
            || target.eq_ignore_ascii_case(ROOT)
            || target.starts_with('#')
        {
            // Typing in a group or room is not sent (Session has no typing there).
            return Ok(());
        }
        let Some(account) = self.resolve(&target).await else {
            return self
                .numeric(ERR_NOSUCHNICK, &[&target, "No such nick"])
                .await;
        };
        let Some(s) = &self.session else {
            return Ok(());
        };
        let request = SendTypingRequest {
            identity: s.identity.clone(),
            recipient: account,
            typing: typing == "active",
        };
        if let Err(status) = s.client.messages.clone().send_typing(request).await {
            debug!(code = ?status.code(), "SendTyping failed (typing is best effort)");
        }
        Ok(())
    }

    /// The nick of `account`: its handle, after reloading the contacts once if unknown, else
    /// the fallback (remembered so replies to it resolve).
    pub(super) async fn nick_of(&mut self, account: &str) -> String {
        let Some(s) = &mut self.session else {
            return fallback_nick(account);
        };
        if let Some(n) = s.dir.nick(account) {
            return n.to_owned();
        }
        let changes = s.refresh_contacts().await.unwrap_or_default();
        if s.dir.nick(account).is_none() {
            s.dir.upsert(account, "", String::new(), String::new());
        }
        let nick = s
            .dir
            .nick(account)
            .map(str::to_owned)
            .unwrap_or_else(|| fallback_nick(account));
        let _ = self.announce_renames(changes).await;
        nick
    }

    /// The lines showing one message, with the read mark on the last; `batch` tags them.
    pub(super) fn message_lines(
        &self,
        m: &Shown<'_>,
        peer_nick: &str,
        batch: Option<&str>,
        command: &str,
    ) -> Vec<(Message, Option<(String, u64)>)> {
        let me = self.me();
        let (source, target) = if m.from_me {
            (self.my_prefix(), m.target.unwrap_or(peer_nick).to_owned())
        } else {
            (format!("{peer_nick}!{}@session", contact_user(m.peer)), me)
        };
        let text = if m.text.is_empty() {
            "[a message with nothing sessiond can show]"
        } else {
            m.text
        };
        let parts = split_text(text, text_budget(&source, command, &target));
        let count = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut line =
                    Message::new(command, vec![target.clone(), part]).with_source(source.clone());
                if let Some(b) = batch.filter(|_| self.caps.has(Cap::Batch)) {
                    line = line.with_tag("batch", Some(b.to_owned()));
                }
                if self.caps.has(Cap::ServerTime) {
                    line = line.with_tag("time", Some(format_time(m.time_ms)));
                }
                if self.caps.has(Cap::MessageTags) {
                    let id = if i == 0 {
                        m.seq.to_string()
                    } else {
                        format!("{}-{i}", m.seq)
                    };
                    line = line.with_tag("msgid", Some(id));
                }
                let mark = (i + 1 == count).then(|| (m.peer.to_owned(), m.seq));
                (line, mark)
            })
            .collect()
    }

    /// Shows one message event (incoming or outgoing); `batch` for history.
    pub(super) async fn show_message(
        &mut self,
        event: &Event,
        batch: Option<&str>,
    ) -> Result<(), Close> {
        let (from_me, peer, text, time_ms, files) = match &event.kind {
            Some(event::Kind::Incoming(m)) if is_direct(m.conversation_kind) => {
                (false, &m.sender, &m.text, m.sent_at_ms, &m.attachments)
            }
            Some(event::Kind::Outgoing(m)) if is_direct(m.conversation_kind) => {
                (true, &m.recipient, &m.text, m.sent_at_ms, &m.attachments)
            }
            Some(event::Kind::Incoming(_)) | Some(event::Kind::Outgoing(_)) => {
                return self.show_channel_message(event, batch).await;
            }
            _ => return Ok(()),
        };
        let nick = self.nick_of(peer).await;
        let text = with_attachments(text, files);
        let (text, reply_tag) = self.reply_decor(event, &text).await;
        let shown = Shown {
            from_me,
            peer,
            text: &text,
            time_ms,
            seq: event.seq,
            target: None,
        };
        for (i, (mut line, mark)) in self
            .message_lines(&shown, &nick, batch, "PRIVMSG")
            .into_iter()
            .enumerate()
        {
            if let (0, Some(tag)) = (i, &reply_tag) {
                line = line.with_tag("+draft/reply", Some(tag.clone()));
            }
            self.out.push(&line, mark).await?;
        }
        Ok(())
    }

    /// A live event from the subscription.
    pub(super) async fn deliver_event(&mut self, event: Event) -> Result<(), Close> {
        if self.channel_message(&event).await? {
            return Ok(());
        }
        match &event.kind {
            Some(event::Kind::Group(g)) => self.channel_group_event(g).await,
            Some(event::Kind::RoomMessageDeleted(d)) => self.room_post_deleted(d).await,
            Some(event::Kind::RoomReactions(r)) => self.room_reactions(r).await,
            Some(event::Kind::Outgoing(m)) => {
                let own = self
                    .session
                    .as_mut()
                    .is_some_and(|s| s.own_sent.remove(&event.seq));
                if own {
                    // Shown already (echo) or typed by this client: seen, once everything
                    // before it is written.
                    return self.out.push_mark(m.recipient.clone(), event.seq).await;
                }
                self.show_message(&event, None).await
            }
            Some(event::Kind::Incoming(_)) => self.show_message(&event, None).await,
            Some(event::Kind::Delivery(d))
                if d.state == DeliveryState::Failed as i32 && d.recipient.starts_with("05") =>
            {
                let nick = self.nick_of(&d.recipient).await;
                let reason = if d.reason.is_empty() {
                    "no reason given"
                } else {
                    &d.reason
                };
                self.root_notice(&format!(
                    "Your message to {nick} was not delivered after {} attempts: {reason}",
                    d.attempts
                ))
                .await
            }
            Some(event::Kind::Unreadable(u)) => {
                self.root_notice(&format!(
                    "A message arrived that cannot be read here: {}",
                    u.reason
                ))
                .await
            }
            Some(event::Kind::Typing(t)) => {
                if !self.caps.has(Cap::MessageTags) {
                    return Ok(());
                }
                let nick = self.nick_of(&t.peer).await;
                let state = if t.typing { "active" } else { "done" };
                let line = Message::new("TAGMSG", vec![self.me()])
                    .with_source(format!("{nick}!{}@session", contact_user(&t.peer)))
                    .with_tag("+typing", Some(state.to_owned()));
                self.send(line).await
            }
            Some(event::Kind::Conversation(c)) => {
                let Some(conv) = &c.conversation else {
                    return Ok(());
                };
                if conv.kind == ConversationKind::CommunityRoom as i32 {
                    return self.room_conversation_changed(conv).await;
                }
                let Some(s) = &mut self.session else {
                    return Ok(());
                };
                if conv.handle.is_empty() || !is_direct(conv.kind) {
                    return Ok(());
                }
                let (name, profile) = s
                    .dir
                    .entry(&conv.account_id)
                    .map(|e| (e.name.clone(), e.profile_name.clone()))
                    .unwrap_or_default();
                let change = s.dir.upsert(&conv.account_id, &conv.handle, name, profile);
                if conv.read_seq > 0 {
                    let peer = conv.account_id.clone();
                    self.send_markread(&peer, event.recorded_at_ms).await?;
                }
                match change {
                    Some((old, new)) => {
                        self.announce_renames(vec![(conv.account_id.clone(), old, new)])
                            .await
                    }
                    None => Ok(()),
                }
            }
            _ => match self.show_interaction(&event).await {
                Some(done) => done,
                None => Ok(()),
            },
        }
    }

    /// At registration, for a client without draft/chathistory: what it missed since each
    /// conversation was last seen (read_seq), at most `replay_lines` messages per conversation,
    /// each conversation in a `chathistory` batch.
    pub(super) async fn replay_missed(&mut self) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let (client, identity, upto) = (s.client.clone(), s.identity.clone(), s.start_seq);
        let listed = client.all_conversations(&identity).await;
        let mut conversations = match listed {
            Ok(r) => r,
            Err(status) => {
                let why = crate::err::status_text(&status);
                return self
                    .root_notice(&format!("Could not look for missed messages: {why}"))
                    .await;
            }
        };
        let channels: Vec<(String, String)> = s
            .channels
            .all()
            .filter(|c| c.joined)
            .map(|c| (c.conversation.clone(), c.name.clone()))
            .collect();
        let channel_name = |id: &str| {
            channels
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, name)| name.clone())
        };
        conversations.retain(|c| {
            c.last_seq > c.read_seq
                && (is_direct(c.kind) || channel_name(&c.conversation_id).is_some())
        });
        conversations.sort_by_key(|c| c.last_activity_ms);
        let limit = self.srv.config.replay_lines.max(1) as usize;
        for c in conversations {
            let address = if is_direct(c.kind) {
                c.account_id.clone()
            } else {
                c.conversation_id.clone()
            };
            let page = history::messages(
                &client,
                &identity,
                &address,
                c.read_seq,
                upto + 1,
                true,
                limit,
            )
            .await;
            let (events, more) = match page {
                Ok(p) => p,
                Err(status) => {
                    debug!(code = ?status.code(), "history for replay failed");
                    continue;
                }
            };
            if events.is_empty() {
                continue;
            }
            let nick = match channel_name(&address) {
                Some(name) if !is_direct(c.kind) => name,
                _ => self.nick_of(&c.account_id).await,
            };
            if more {
                self.root_notice(&format!(
                    "You missed more messages in {nick} than the {limit} shown here: \
                     say 'history {nick} 200' in {CONTROL} for older ones"
                ))
                .await?;
            }
            self.send_batch("chathistory", &nick, &events).await?;
        }
        Ok(())
    }

    /// Sends message events inside a batch (if the client has `batch`).
    pub(super) async fn send_batch(
        &mut self,
        kind: &str,
        target: &str,
        events: &[Event],
    ) -> Result<(), Close> {
        let batch = self.caps.has(Cap::Batch).then(|| self.next_batch());
        let server = self.srv.config.server_name.clone();
        if let Some(id) = &batch {
            self.send(
                Message::new("BATCH", vec![format!("+{id}"), kind.into(), target.into()])
                    .with_source(server.clone()),
            )
            .await?;
        }
        for e in events.iter().filter(|e| is_message(e)) {
            self.show_message(e, batch.as_deref()).await?;
        }
        if let Some(id) = &batch {
            self.send(Message::new("BATCH", vec![format!("-{id}")]).with_source(server))
                .await?;
        }
        Ok(())
    }
}

/// The words of `text` that link to files of this daemon (`<base>/files/<token>/…`, `base`
/// being where FILEHOST uploads go, without `/upload`) become attachment ids; the text keeps
/// the other words. A link the identity does not own is an error.
async fn file_links(
    s: &super::session::Session,
    upload: &str,
    text: &str,
) -> Result<(String, Vec<String>), String> {
    let files = format!("{}/files/", upload.trim_end_matches("/upload"));
    if !text.contains(&files) {
        return Ok((text.to_owned(), Vec::new()));
    }
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for word in text.split(' ') {
        if !word.starts_with(&files) {
            kept.push(word);
            continue;
        }
        let found = s
            .client
            .attachments
            .clone()
            .get_attachment(sessiond_api::v1::GetAttachmentRequest {
                identity: s.identity.clone(),
                link: word.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|st| format!("{word}: {}", crate::err::status_text(&st)))?;
        if let Some(a) = found.into_inner().attachment {
            ids.push(a.id);
        }
    }
    Ok((kept.join(" ").trim().to_owned(), ids))
}

/// A message's text followed by one line per attachment: `[file] name (size, type) link`.
pub(super) fn with_attachments(text: &str, files: &[Attachment]) -> String {
    let mut out = text.to_owned();
    for a in files {
        if !out.is_empty() {
            out.push('\n');
        }
        let name = if a.file_name.is_empty() {
            "unnamed"
        } else {
            &a.file_name
        };
        let kind = if a.content_type.is_empty() {
            String::new()
        } else {
            format!(", {}", a.content_type)
        };
        out.push_str(&format!("[file] {name} ({}{kind})", human_size(a.size)));
        if !a.local_url.is_empty() {
            out.push(' ');
            out.push_str(&a.local_url);
        }
        if !a.reason.is_empty() {
            out.push_str(&format!(" — {}", a.reason));
        }
    }
    out
}

/// `512 B`, `2.9 kB`, `5.0 MB` (decimal units, as file managers show them).
pub(super) fn human_size(n: u64) -> String {
    match n {
        0 => "size unknown".to_owned(),
        n if n < 1_000 => format!("{n} B"),
        n if n < 1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// What CTCP a PRIVMSG text carries.
enum Ctcp<'a> {
    /// Plain text.
    None,
    /// `\x01ACTION text\x01`: sent as `* text`.
    Action(&'a str),
    /// Any other CTCP (VERSION, PING, …): not sent.
    Other(&'a str),
}

fn ctcp(text: &str) -> Ctcp<'_> {
    let Some(inner) = text.strip_prefix('\u{1}') else {
        return Ctcp::None;
    };
    let inner = inner.strip_suffix('\u{1}').unwrap_or(inner);
    match inner.split_once(' ') {
        Some(("ACTION", rest)) => Ctcp::Action(rest),
        Some((kind, _)) => Ctcp::Other(kind),
        None if inner == "ACTION" => Ctcp::Action(""),
        None => Ctcp::Other(inner),
    }
}
