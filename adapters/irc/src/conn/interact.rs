//! Replies, reactions, unsend, read markers and disappearing timers on IRC.
//!
//! To the client:
//! - a reply carries `+draft/reply=<msgid of the quoted message>` (with `message-tags`); a
//!   client without it sees the quote as a text prefix, `[re nick: excerpt] text`;
//! - a reaction is `TAGMSG` with `+draft/react=<emoji>` (removal: `+draft/unreact=<emoji>`) and
//!   `+draft/reply=<msgid>`; without `message-tags`, a NOTICE says who reacted with what to
//!   which message;
//! - an unsent or expired message is `REDACT <target> <msgid> :<why>` (with
//!   `draft/message-redaction`); without it, a NOTICE says so;
//! - a timer change, a screenshot or saved-media notice, an accepted request and an ignored
//!   control message are NOTICEs from the contact;
//! - with `draft/read-marker`, the conversation's read mark as `MARKREAD <nick>
//!   timestamp=<time>` whenever it moves (read on another client too).
//!
//! From the client: `PRIVMSG` with `+draft/reply` is a reply; `TAGMSG` with `+draft/react` or
//! `+draft/unreact` and `+draft/reply` is a reaction; `REDACT <nick> <msgid>` unsends one of
//! the identity's own messages; `MARKREAD <nick> timestamp=…` marks the conversation read (which
//! sends a read receipt if the identity sends them); `&session` `disappear <nick> <seconds>
//! [after-read]|off` sets the timer.

use sessiond_api::v1::{
    event, DeleteRoomMessageRequest, Disappearing, DisappearingMode, Event, ListEventsRequest,
    MarkConversationReadRequest, MessageRef, NoticeKind, ReactRequest, ReactToRoomMessageRequest,
    RemovedReason, SetDisappearingRequest, UnsendRequest,
};
use tonic::Status;

use super::history::is_direct;
use super::{Close, Conn};
use crate::cap::Cap;
use crate::directory::contact_user;
use crate::line::{format_time, Message};

/// How much of a quoted message a client without `message-tags` sees.
const EXCERPT_SHOWN: usize = 40;

/// A message of the log, as an IRC msgid names it.
struct Target {
    /// The conversation: the other side's Account ID (or blinded ID), a group's or room's
    /// address.
    peer: String,
    /// The message.
    reference: MessageRef,
    /// True: the identity's own message.
    own: bool,
    /// In a community room: the server's id of the post (0 elsewhere).
    server_id: i64,
}

/// The seq an IRC msgid names (`<seq>` or `<seq>-<part>`).
pub(super) fn msgid_seq(msgid: &str) -> Option<u64> {
    let head = msgid.split('-').next()?;
    head.parse::<u64>().ok().filter(|&s| s != 0)
}

fn describe(d: &Disappearing) -> String {
    match DisappearingMode::try_from(d.mode) {
        Ok(DisappearingMode::AfterRead) if d.seconds > 0 => {
            format!("{} after reading", duration(d.seconds))
        }
        Ok(DisappearingMode::AfterSend) if d.seconds > 0 => {
            format!("{} after sending", duration(d.seconds))
        }
        _ => "off".to_owned(),
    }
}

fn duration(secs: u32) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Parses `<seconds>[s|m|h|d]`.
fn parse_duration(word: &str) -> Option<u32> {
    let (num, unit) = match word.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => word.split_at(i),
        None => (word, "s"),
    };
    let n: u32 = num.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}

impl Conn {
    /// The text a message shows with, and the `+draft/reply` tag of its first line: a reply's
    /// quote is a tag for clients with `message-tags` and a text prefix for the others.
    pub(super) async fn reply_decor(
        &mut self,
        event: &Event,
        text: &str,
    ) -> (String, Option<String>) {
        let reply = match &event.kind {
            Some(event::Kind::Incoming(m)) => m.reply_to.clone(),
            Some(event::Kind::Outgoing(m)) => m.reply_to.clone(),
            _ => None,
        };
        let Some(r) = reply else {
            return (text.to_owned(), None);
        };
        if self.caps.has(Cap::MessageTags) && r.seq != 0 {
            return (text.to_owned(), Some(r.seq.to_string()));
        }
        let own = self
            .session
            .as_ref()
            .is_some_and(|s| s.account_id == r.author);
        let who = if own {
            self.me()
        } else {
            self.nick_of(&r.author).await
        };
        let mut excerpt: String = r.excerpt.chars().take(EXCERPT_SHOWN).collect();
        if r.excerpt.chars().count() > EXCERPT_SHOWN {
            excerpt.push('…');
        }
        (format!("[re {who}: {excerpt}] {text}"), None)
    }

    /// Shows a reaction, removal, timer change or notice event; `None` if `event` is none of
    /// them.
    pub(super) async fn show_interaction(&mut self, event: &Event) -> Option<Result<(), Close>> {
        let kind = event.kind.as_ref()?;
        let (conversation, author) = match kind {
            event::Kind::Reaction(r) => (r.conversation.clone(), r.author.clone()),
            event::Kind::Removed(r) => (
                r.conversation.clone(),
                r.message.clone().unwrap_or_default().author,
            ),
            event::Kind::Disappearing(d) => (d.conversation.clone(), d.author.clone()),
            event::Kind::Notice(n) => (n.conversation.clone(), n.author.clone()),
            _ => return None,
        };
        let me = self.me();
        let own = self
            .session
            .as_ref()
            .is_some_and(|s| s.account_id == author);
        let (source, target) = if conversation.starts_with("03") {
            // In a group only reactions and deletions (community rooms have their own events):
            // in its channel, from the member who did it.
            let (event::Kind::Reaction(_) | event::Kind::Removed(_), Some(c)) =
                (kind, self.channel_of(&conversation))
            else {
                return Some(Ok(()));
            };
            let source = if own {
                self.my_prefix()
            } else {
                self.member_prefix(&author).await
            };
            (source, c.name)
        } else if conversation.starts_with("05") || conversation.starts_with("15") {
            let nick = self.nick_of(&conversation).await;
            // Lines appear in the query with the contact: from it, or (own actions) from the
            // client to it.
            if own {
                (self.my_prefix(), nick)
            } else {
                (
                    format!("{nick}!{}@session", contact_user(&conversation)),
                    me,
                )
            }
        } else {
            return Some(Ok(()));
        };
        let tags = self.caps.has(Cap::MessageTags);
        let time = |line: Message, caps: &crate::cap::CapSet| {
            if caps.has(Cap::ServerTime) {
                line.with_tag("time", Some(format_time(event.recorded_at_ms)))
            } else {
                line
            }
        };
        let notice = |text: String| Message::new("NOTICE", vec![target.clone(), text]);
        let line = match kind {
            event::Kind::Reaction(r) => {
                if tags {
                    let key = if r.removed {
                        "+draft/unreact"
                    } else {
                        "+draft/react"
                    };
                    Message::new("TAGMSG", vec![target.clone()])
                        .with_tag(key, Some(r.emoji.clone()))
                        .with_tag("+draft/reply", Some(r.target_seq.to_string()))
                        .with_tag("msgid", Some(event.seq.to_string()))
                } else if own {
                    // The client did it itself; nothing to tell a client without tags.
                    return Some(Ok(()));
                } else {
                    let verb = if r.removed { "removed" } else { "reacted" };
                    notice(format!("* {verb} {} on message {}", r.emoji, r.target_seq))
                }
            }
            event::Kind::Removed(r) => {
                let why = match RemovedReason::try_from(r.reason) {
                    Ok(RemovedReason::Expired) => "disappeared",
                    Ok(RemovedReason::Deleted) => "deleted by an admin",
                    _ => "unsent",
                };
                if self.caps.has(Cap::MessageRedaction) {
                    Message::new(
                        "REDACT",
                        vec![target.clone(), r.removed_seq.to_string(), why.to_owned()],
                    )
                } else {
                    notice(format!("[message {} {why}]", r.removed_seq))
                }
            }
            event::Kind::Disappearing(d) => notice(format!(
                "[disappearing messages: {}]",
                describe(&d.disappearing.unwrap_or_default())
            )),
            event::Kind::Notice(n) => {
                let text = match NoticeKind::try_from(n.kind) {
                    Ok(NoticeKind::Screenshot) => "[took a screenshot]".to_owned(),
                    Ok(NoticeKind::MediaSaved) => "[saved an attachment]".to_owned(),
                    Ok(NoticeKind::RequestAccepted) => "[accepted your message request]".into(),
                    Ok(NoticeKind::RequestDeclined) => "[declined your message request]".into(),
                    _ => format!("[sessiond ignored a control message: {}]", n.reason),
                };
                notice(text)
            }
            _ => return None,
        };
        let line = time(line.with_source(source), &self.caps);
        Some(self.send(line).await)
    }

    /// With `draft/read-marker`: tells the client the conversation with `peer` is read up to
    /// `seq` (at `at_ms`).
    pub(super) async fn send_markread(&mut self, peer: &str, at_ms: u64) -> Result<(), Close> {
        if !self.caps.has(Cap::ReadMarker) {
            return Ok(());
        }
        let nick = self.nick_of(peer).await;
        let line = Message::new(
            "MARKREAD",
            vec![nick, format!("timestamp={}", format_time(at_ms))],
        )
        .with_source(self.srv.config.server_name.clone());
        self.send(line).await
    }

    /// The message an IRC msgid names, in the conversation with `peer` if given.
    async fn target_of(&mut self, msgid: &str) -> Result<Option<Target>, Status> {
        let Some(seq) = msgid_seq(msgid) else {
            return Ok(None);
        };
        let Some(s) = &self.session else {
            return Ok(None);
        };
        let page = s
            .client
            .messages
            .clone()
            .list_events(ListEventsRequest {
                identity: s.identity.clone(),
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
                Some(event::Kind::Incoming(m)) => Some(Target {
                    peer: if is_direct(m.conversation_kind) {
                        m.sender.clone()
                    } else {
                        m.conversation_id
                    },
                    reference: MessageRef {
                        sent_at_ms: m.sent_at_ms,
                        author: m.sender,
                    },
                    own: false,
                    server_id: m.server_message_id,
                }),
                Some(event::Kind::Outgoing(m)) => Some(Target {
                    peer: m.recipient,
                    reference: MessageRef {
                        sent_at_ms: m.sent_at_ms,
                        author: s.account_id.clone(),
                    },
                    own: true,
                    server_id: m.server_message_id,
                }),
                _ => None,
            }))
    }

    /// The `reply_to` of a PRIVMSG with `+draft/reply` (`None` without one, or for a msgid of
    /// no message in the conversation with `peer`).
    pub(super) async fn reply_of(&mut self, msg: &Message, peer: &str) -> Option<MessageRef> {
        let msgid = msg.tag("+draft/reply")?.to_owned();
        match self.target_of(&msgid).await {
            Ok(Some(t)) if t.peer == peer => Some(t.reference),
            _ => None,
        }
    }

    /// `TAGMSG <nick>` with `+draft/react` or `+draft/unreact` and `+draft/reply`: React.
    /// Returns false if the TAGMSG is not a reaction.
    pub(super) async fn react_tagmsg(&mut self, msg: &Message) -> Result<bool, Close> {
        let (emoji, remove) = match (msg.tag("+draft/react"), msg.tag("+draft/unreact")) {
            (Some(e), _) => (e.to_owned(), false),
            (None, Some(e)) => (e.to_owned(), true),
            (None, None) => return Ok(false),
        };
        let target = msg.param(0).unwrap_or_default().to_owned();
        let Some(msgid) = msg.tag("+draft/reply").map(str::to_owned) else {
            self.fail(
                "TAGMSG",
                "INVALID_REFERENCE",
                &[],
                "A reaction needs +draft/reply",
            )
            .await?;
            return Ok(true);
        };
        if target.starts_with('#') {
            self.react_in_channel(&target, &msgid, emoji, remove)
                .await?;
            return Ok(true);
        }
        let Some(account) = self.resolve(&target).await else {
            self.fail("TAGMSG", "INVALID_TARGET", &[], "No such nick")
                .await?;
            return Ok(true);
        };
        let found = match self.target_of(&msgid).await {
            Ok(Some(t)) if t.peer == account => t,
            _ => {
                self.fail(
                    "TAGMSG",
                    "UNKNOWN_MSGID",
                    &[],
                    "No such message in this conversation",
                )
                .await?;
                return Ok(true);
            }
        };
        let Some(s) = &self.session else {
            return Ok(true);
        };
        let sent = s
            .client
            .interactions
            .clone()
            .react(ReactRequest {
                identity: s.identity.clone(),
                conversation: account,
                target: Some(found.reference),
                emoji,
                remove,
            })
            .await;
        if let Err(status) = sent {
            let why = crate::err::status_text(&status);
            self.fail("TAGMSG", "REACT_FAILED", &[], &why).await?;
        }
        Ok(true)
    }

    /// A reaction to a message of channel `chan`: ReactToRoomMessage in a room, React in a
    /// group.
    async fn react_in_channel(
        &mut self,
        chan: &str,
        msgid: &str,
        emoji: String,
        remove: bool,
    ) -> Result<(), Close> {
        let Some(c) = self.channel(chan) else {
            return self
                .fail("TAGMSG", "INVALID_TARGET", &[chan], "No such channel")
                .await;
        };
        let found = match self.target_of(msgid).await {
            Ok(Some(t)) if t.peer == c.conversation => t,
            _ => {
                return self
                    .fail(
                        "TAGMSG",
                        "UNKNOWN_MSGID",
                        &[chan],
                        "No such message in this channel",
                    )
                    .await;
            }
        };
        let Some(s) = &self.session else {
            return Ok(());
        };
        let sent = if found.server_id == 0 {
            // A group's message (room posts have the server's id).
            s.client
                .interactions
                .clone()
                .react(ReactRequest {
                    identity: s.identity.clone(),
                    conversation: c.conversation.clone(),
                    target: Some(found.reference),
                    emoji,
                    remove,
                })
                .await
                .map(|_| ())
        } else {
            s.client
                .communities
                .clone()
                .react_to_room_message(ReactToRoomMessageRequest {
                    identity: s.identity.clone(),
                    room_id: c.conversation.clone(),
                    server_message_id: found.server_id,
                    emoji,
                    remove,
                })
                .await
                .map(|_| ())
        };
        if let Err(status) = sent {
            let why = crate::err::status_text(&status);
            self.fail("TAGMSG", "REACT_FAILED", &[chan], &why).await?;
        }
        Ok(())
    }

    /// `REDACT #room <msgid>`: deletes a post (the identity's own, or anyone's for a
    /// moderator).
    async fn redact_in_channel(&mut self, chan: &str, msgid: &str) -> Result<(), Close> {
        let Some(c) = self.channel(chan) else {
            return self
                .fail("REDACT", "INVALID_TARGET", &[chan], "No such channel")
                .await;
        };
        let found = match self.target_of(msgid).await {
            Ok(Some(t)) if t.peer == c.conversation => t,
            _ => {
                return self
                    .fail("REDACT", "UNKNOWN_MSGID", &[chan, msgid], "No such message")
                    .await
            }
        };
        if found.server_id == 0 {
            // A group's message: its author deletes it for everyone.
            return self.unsend_own(chan, msgid, &found).await;
        }
        let Some(s) = &self.session else {
            return Ok(());
        };
        let done = s
            .client
            .communities
            .clone()
            .delete_room_message(DeleteRoomMessageRequest {
                identity: s.identity.clone(),
                room_id: c.conversation.clone(),
                server_message_id: found.server_id,
            })
            .await;
        match done {
            // The RoomMessageDeleted event shows it (REDACT echoed, or a notice).
            Ok(_) => Ok(()),
            Err(status) => {
                let why = if status.code() == tonic::Code::PermissionDenied {
                    "Only the author or a moderator can delete a post".to_owned()
                } else {
                    crate::err::status_text(&status)
                };
                self.fail("REDACT", "REDACT_FORBIDDEN", &[chan, msgid], &why)
                    .await
            }
        }
    }

    /// `REDACT <nick> <msgid> [:<reason>]`: unsends one of the identity's own messages.
    pub(super) async fn redact(&mut self, msg: &Message) -> Result<(), Close> {
        let target = msg.param(0).unwrap_or_default().to_owned();
        let msgid = msg.param(1).unwrap_or_default().to_owned();
        if target.starts_with('#') {
            return self.redact_in_channel(&target, &msgid).await;
        }
        let Some(account) = self.resolve(&target).await else {
            return self
                .fail("REDACT", "INVALID_TARGET", &[&target], "No such nick")
                .await;
        };
        let found = match self.target_of(&msgid).await {
            Ok(Some(t)) if t.peer == account => t,
            _ => {
                return self
                    .fail(
                        "REDACT",
                        "UNKNOWN_MSGID",
                        &[&target, &msgid],
                        "No such message",
                    )
                    .await
            }
        };
        self.unsend_own(&target, &msgid, &found).await
    }

    /// Unsends the identity's own message `found` (named `msgid` in `target`, a query or a
    /// group's channel); anyone else's is REDACT_FORBIDDEN.
    async fn unsend_own(&mut self, target: &str, msgid: &str, found: &Target) -> Result<(), Close> {
        if !found.own {
            return self
                .fail(
                    "REDACT",
                    "REDACT_FORBIDDEN",
                    &[target, msgid],
                    "Only the author can unsend a message",
                )
                .await;
        }
        let Some(s) = &self.session else {
            return Ok(());
        };
        let sent = s
            .client
            .interactions
            .clone()
            .unsend(UnsendRequest {
                identity: s.identity.clone(),
                conversation: found.peer.clone(),
                sent_at_ms: found.reference.sent_at_ms,
            })
            .await;
        match sent {
            // The MessageRemoved event shows it (REDACT echoed, or a notice).
            Ok(_) => Ok(()),
            Err(status) => {
                let why = crate::err::status_text(&status);
                self.fail("REDACT", "REDACT_FORBIDDEN", &[target, msgid], &why)
                    .await
            }
        }
    }

    /// `MARKREAD <nick> [timestamp=…]`: without a timestamp, answers with the read mark; with
    /// one, marks the conversation read up to its newest event.
    pub(super) async fn markread(&mut self, msg: &Message) -> Result<(), Close> {
        let target = msg.param(0).unwrap_or_default().to_owned();
        let Some(account) = self.resolve(&target).await else {
            return self
                .fail("MARKREAD", "INVALID_PARAMS", &[&target], "No such nick")
                .await;
        };
        let Some(s) = &self.session else {
            return Ok(());
        };
        let (client, identity) = (s.client.clone(), s.identity.clone());
        if msg.param(1).is_none() {
            let line = Message::new("MARKREAD", vec![target, "*".to_owned()])
                .with_source(self.srv.config.server_name.clone());
            return self.send(line).await;
        }
        let last = client
            .messages
            .clone()
            .list_events(ListEventsRequest {
                identity: identity.clone(),
                page_size: 1,
                newest_first: true,
                peer: account.clone(),
                ..ListEventsRequest::default()
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().events.first().map(|e| e.seq))
            .unwrap_or(0);
        if last == 0 {
            return Ok(());
        }
        let marked = client
            .conversations
            .clone()
            .mark_conversation_read(MarkConversationReadRequest {
                identity,
                account_id: account,
                seq: last,
            })
            .await;
        if let Err(status) = marked {
            let why = crate::err::status_text(&status);
            return self
                .fail("MARKREAD", "INTERNAL_ERROR", &[&target], &why)
                .await;
        }
        Ok(())
    }

    /// `&session` `disappear <nick> <duration> [after-read|after-send] | disappear <nick> off`.
    pub(super) async fn cmd_disappear(&mut self, args: &[&str]) -> Result<String, Status> {
        const USAGE: &str = "disappear <nick> <duration: 30s, 5m, 12h, 1d> [after-read|after-send] | disappear <nick> off";
        let (Some(nick), Some(when)) = (args.first(), args.get(1)) else {
            return Ok(USAGE.to_owned());
        };
        let Some(account) = self.resolve(nick).await else {
            return Ok(format!("No contact {nick}."));
        };
        let disappearing = if when.eq_ignore_ascii_case("off") {
            Disappearing::default()
        } else {
            let Some(seconds) = parse_duration(when) else {
                return Ok(USAGE.to_owned());
            };
            let mode = match args.get(2).map(|m| m.to_ascii_lowercase()).as_deref() {
                None | Some("after-send") => DisappearingMode::AfterSend,
                Some("after-read") => DisappearingMode::AfterRead,
                Some(_) => return Ok(USAGE.to_owned()),
            };
            Disappearing {
                mode: mode as i32,
                seconds,
            }
        };
        let Some(s) = &self.session else {
            return Ok(String::new());
        };
        s.client
            .interactions
            .clone()
            .set_disappearing(SetDisappearingRequest {
                identity: s.identity.clone(),
                conversation: account,
                disappearing: Some(disappearing),
            })
            .await?;
        Ok(format!(
            "Disappearing messages with {nick}: {}.",
            describe(&disappearing)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgids_durations_and_timers() {
        assert_eq!(msgid_seq("42"), Some(42));
        assert_eq!(msgid_seq("42-1"), Some(42));
        assert_eq!(msgid_seq("0"), None);
        assert_eq!(msgid_seq("x"), None);
        assert_eq!(parse_duration("10"), Some(10));
        assert_eq!(parse_duration("10s"), Some(10));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_duration("99999999999d"), None);
        let ten = Disappearing {
            mode: DisappearingMode::AfterSend as i32,
            seconds: 10,
        };
        assert_eq!(describe(&ten), "10 s after sending");
        assert_eq!(describe(&Disappearing::default()), "off");
    }
}
