//! History: pages of one conversation's messages from Messages.History, and the IRCv3
//! `CHATHISTORY` command (LATEST/BEFORE/AFTER/BETWEEN/TARGETS) answered in batches.
//!
//! Message references: `msgid=<seq>` (this server's msgids are event seqs, with `-n` for the
//! continuation lines of a long message) or `timestamp=<RFC 3339>`, compared with the time a
//! message is shown with (its Session timestamp).

use sessiond_api::client::Client;
use sessiond_api::v1::{event, ConversationKind, Event, ListEventsRequest};
use tonic::Status;

use super::register::CONTROL;
use super::{Close, Conn};
use crate::line::{format_time, parse_time, Message};

/// The most messages one CHATHISTORY request returns (ISUPPORT `CHATHISTORY=100`).
pub(super) const MAX_LIMIT: usize = 100;
/// Events read per History call while looking for messages.
const PAGE: i32 = 500;

/// True for an incoming or outgoing message event.
pub(super) fn is_message(e: &Event) -> bool {
    matches!(
        e.kind,
        Some(event::Kind::Incoming(_)) | Some(event::Kind::Outgoing(_))
    )
}

/// True for a conversation kind shown as a query (one-to-one, or a community DM with a blinded
/// ID); unset (an older daemon) counts as one-to-one.
pub(crate) fn is_direct(kind: i32) -> bool {
    kind == ConversationKind::Direct as i32
        || kind == ConversationKind::Unspecified as i32
        || kind == ConversationKind::CommunityDm as i32
}

/// The conversation of a message event, and whether it is shown as a channel (a group or a
/// room) rather than a query.
pub(crate) fn conversation_of(e: &Event) -> Option<(String, bool)> {
    match &e.kind {
        Some(event::Kind::Incoming(m)) if is_direct(m.conversation_kind) => {
            Some((m.sender.clone(), false))
        }
        Some(event::Kind::Outgoing(m)) if is_direct(m.conversation_kind) => {
            Some((m.recipient.clone(), false))
        }
        Some(event::Kind::Incoming(m)) => Some((m.conversation_id.clone(), true)),
        Some(event::Kind::Outgoing(m)) => Some((m.conversation_id.clone(), true)),
        _ => None,
    }
}

/// The conversation of a message event (the other side of a one-to-one one), and its shown
/// time.
fn peer_and_time(e: &Event) -> Option<(&str, u64)> {
    match &e.kind {
        Some(event::Kind::Incoming(m)) if is_direct(m.conversation_kind) => {
            Some((&m.sender, m.sent_at_ms))
        }
        Some(event::Kind::Outgoing(m)) if is_direct(m.conversation_kind) => {
            Some((&m.recipient, m.sent_at_ms))
        }
        Some(event::Kind::Incoming(m)) => Some((&m.conversation_id, m.sent_at_ms)),
        Some(event::Kind::Outgoing(m)) => Some((&m.conversation_id, m.sent_at_ms)),
        _ => None,
    }
}

/// Up to `limit` messages with `peer` whose seq is in (`after`, `before`) (`before` 0: no
/// bound), the newest ones if `newest_first`, else the oldest; returned oldest first, with
/// whether more messages are in the range.
pub(crate) async fn messages(
    client: &Client,
    identity: &str,
    peer: &str,
    mut after: u64,
    mut before: u64,
    newest_first: bool,
    limit: usize,
) -> Result<(Vec<Event>, bool), Status> {
    let mut out = Vec::new();
    loop {
        let page = client
            .messages
            .clone()
            .list_events(ListEventsRequest {
                identity: identity.to_owned(),
                after_seq: after,
                before_seq: before,
                page_size: PAGE,
                newest_first,
                peer: peer.to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let Some(last) = page.events.last().map(|e| e.seq) else {
            break;
        };
        for e in page.events {
            // The daemon filters by peer; checking again costs nothing.
            if peer_and_time(&e).is_some_and(|(p, _)| p == peer) {
                if out.len() == limit {
                    if newest_first {
                        out.reverse();
                    }
                    return Ok((out, true));
                }
                out.push(e);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if newest_first {
            before = last;
        } else {
            after = last;
        }
    }
    if newest_first {
        out.reverse();
    }
    Ok((out, false))
}

/// A CHATHISTORY message reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ref {
    /// `*`: no bound.
    Star,
    /// `msgid=`: an event seq.
    Seq(u64),
    /// `timestamp=`: ms since the epoch.
    Time(u64),
}

/// Parses `*`, `msgid=…` or `timestamp=…`.
pub(super) fn parse_ref(s: &str) -> Option<Ref> {
    if s == "*" {
        return Some(Ref::Star);
    }
    if let Some(id) = s.strip_prefix("msgid=") {
        let seq = id.split('-').next()?;
        return seq.parse().ok().filter(|&n| n > 0).map(Ref::Seq);
    }
    s.strip_prefix("timestamp=")
        .and_then(parse_time)
        .map(Ref::Time)
}

impl Conn {
    /// The seq after which messages are "after" `r` (0: from the start).
    async fn after_bound(&self, peer: &str, r: Ref) -> Result<u64, Status> {
        match r {
            Ref::Star => Ok(0),
            Ref::Seq(n) => Ok(n),
            // The newest message at or before the time.
            Ref::Time(t) => self.scan_back(peer, |time| time <= t, true).await,
        }
    }

    /// The seq before which messages are "before" `r` (0: to the end).
    async fn before_bound(&self, peer: &str, r: Ref) -> Result<u64, Status> {
        match r {
            Ref::Star => Ok(0),
            Ref::Seq(n) => Ok(n),
            // The oldest message at or after the time.
            Ref::Time(t) => self.scan_back(peer, |time| time < t, false).await,
        }
    }

    /// Walks the conversation newest first until `stop(time)`; returns the seq of the message
    /// that stopped it (`take_stopper`) or of the last one before it, 0 if none.
    async fn scan_back(
        &self,
        peer: &str,
        stop: impl Fn(u64) -> bool,
        take_stopper: bool,
    ) -> Result<u64, Status> {
        let Some(s) = &self.session else {
            return Ok(0);
        };
        let mut before = 0;
        let mut last_newer = 0;
        loop {
            let page = s
                .client
                .messages
                .clone()
                .list_events(ListEventsRequest {
                    identity: s.identity.clone(),
                    after_seq: 0,
                    before_seq: before,
                    page_size: PAGE,
                    newest_first: true,
                    peer: peer.to_owned(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            for e in &page.events {
                let Some((p, time)) = peer_and_time(e) else {
                    continue;
                };
                if p != peer {
                    continue;
                }
                if stop(time) {
                    return Ok(if take_stopper { e.seq } else { last_newer });
                }
                last_newer = e.seq;
            }
            match (!page.next_page_token.is_empty(), page.events.last()) {
                (true, Some(e)) => before = e.seq,
                _ => return Ok(if take_stopper { 0 } else { last_newer }),
            }
        }
    }

    /// `CHATHISTORY <subcommand> …`.
    pub(super) async fn chathistory(&mut self, msg: &Message) -> Result<(), Close> {
        let sub = msg.param(0).unwrap_or_default().to_ascii_uppercase();
        let args: Vec<String> = msg.params.iter().skip(1).cloned().collect();
        let need = match sub.as_str() {
            "LATEST" | "BEFORE" | "AFTER" | "TARGETS" => 3,
            "BETWEEN" => 4,
            _ => {
                return self
                    .fail(
                        "CHATHISTORY",
                        "INVALID_PARAMS",
                        &[&sub],
                        "Unknown subcommand",
                    )
                    .await;
            }
        };
        if args.len() < need {
            return self
                .fail(
                    "CHATHISTORY",
                    "INVALID_PARAMS",
                    &[&sub],
                    "Not enough parameters",
                )
                .await;
        }
        let limit = match args[need - 1].parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_LIMIT),
            _ => {
                return self
                    .fail("CHATHISTORY", "INVALID_PARAMS", &[&sub], "Bad limit")
                    .await;
            }
        };
        if sub == "TARGETS" {
            return self.chathistory_targets(&args[0], &args[1], limit).await;
        }
        let target = args[0].clone();
        let refs: Option<Vec<Ref>> = args[1..need - 1].iter().map(|r| parse_ref(r)).collect();
        let Some(refs) = refs else {
            return self
                .fail(
                    "CHATHISTORY",
                    "INVALID_PARAMS",
                    &[&sub, &target],
                    "Bad message reference",
                )
                .await;
        };
        if target.eq_ignore_ascii_case(CONTROL) {
            return self.send_batch("chathistory", CONTROL, &[]).await;
        }
        let channel = target
            .starts_with('#')
            .then(|| self.channel(&target))
            .flatten();
        let peer = match channel {
            Some(c) => Some(c.conversation),
            None if target.starts_with('#') => None,
            None => self.resolve(&target).await,
        };
        let Some(peer) = peer else {
            return self
                .fail(
                    "CHATHISTORY",
                    "INVALID_TARGET",
                    &[&sub, &target],
                    "No such nick or channel",
                )
                .await;
        };
        let result = self.chathistory_range(&sub, &peer, &refs, limit).await;
        match result {
            Ok(events) => self.send_batch("chathistory", &target, &events).await,
            Err(status) => {
                let why = crate::err::status_text(&status);
                self.fail("CHATHISTORY", "MESSAGE_ERROR", &[&sub, &target], &why)
                    .await
            }
        }
    }

    /// The messages a LATEST/BEFORE/AFTER/BETWEEN request asks for, oldest first.
    async fn chathistory_range(
        &self,
        sub: &str,
        peer: &str,
        refs: &[Ref],
        limit: usize,
    ) -> Result<Vec<Event>, Status> {
        let Some(s) = &self.session else {
            return Ok(Vec::new());
        };
        let (after, before, newest) = match (sub, refs) {
            ("LATEST", [r]) => (self.after_bound(peer, *r).await?, 0, true),
            ("BEFORE", [r]) => (0, self.before_bound(peer, *r).await?, true),
            ("AFTER", [r]) => (self.after_bound(peer, *r).await?, 0, false),
            ("BETWEEN", [a, b]) => {
                let forward = match (a, b) {
                    (Ref::Seq(x), Ref::Seq(y)) | (Ref::Time(x), Ref::Time(y)) => x <= y,
                    (Ref::Star, _) => true,
                    (_, Ref::Star) => false,
                    // Mixed references: compare them as seqs.
                    _ => self.after_bound(peer, *a).await? <= self.after_bound(peer, *b).await?,
                };
                let (lo, hi) = if forward { (a, b) } else { (b, a) };
                let after = self.after_bound(peer, *lo).await?;
                let before = self.before_bound(peer, *hi).await?;
                if before != 0 && before <= after + 1 {
                    return Ok(Vec::new());
                }
                (after, before, !forward)
            }
            _ => return Ok(Vec::new()),
        };
        let (events, _) =
            messages(&s.client, &s.identity, peer, after, before, newest, limit).await?;
        Ok(events)
    }

    /// `CHATHISTORY TARGETS <from> <to> <limit>`: conversations active in the time range.
    async fn chathistory_targets(&mut self, a: &str, b: &str, limit: usize) -> Result<(), Close> {
        let (Some(Ref::Time(a)), Some(Ref::Time(b))) = (parse_ref(a), parse_ref(b)) else {
            return self
                .fail(
                    "CHATHISTORY",
                    "INVALID_PARAMS",
                    &["TARGETS"],
                    "TARGETS takes two timestamps",
                )
                .await;
        };
        let (lo, hi) = (a.min(b), a.max(b));
        let Some(s) = &self.session else {
            return Ok(());
        };
        let listed = s.client.all_conversations(&s.identity).await;
        let mut conversations = match listed {
            Ok(r) => r,
            Err(status) => {
                let why = crate::err::status_text(&status);
                return self
                    .fail("CHATHISTORY", "MESSAGE_ERROR", &["TARGETS"], &why)
                    .await;
            }
        };
        conversations
            .retain(|c| is_direct(c.kind) && c.last_activity_ms > lo && c.last_activity_ms < hi);
        conversations.sort_by_key(|c| c.last_activity_ms);
        conversations.truncate(limit);
        let server = self.srv.config.server_name.clone();
        let batch = self
            .caps
            .has(crate::cap::Cap::Batch)
            .then(|| self.next_batch());
        if let Some(id) = &batch {
            self.send(
                Message::new(
                    "BATCH",
                    vec![format!("+{id}"), "draft/chathistory-targets".into()],
                )
                .with_source(server.clone()),
            )
            .await?;
        }
        for c in conversations {
            let nick = self.nick_of(&c.account_id).await;
            let mut line = Message::new(
                "CHATHISTORY",
                vec!["TARGETS".into(), nick, format_time(c.last_activity_ms)],
            )
            .with_source(server.clone());
            if let Some(id) = &batch {
                line = line.with_tag("batch", Some(id.clone()));
            }
            self.send(line).await?;
        }
        if let Some(id) = &batch {
            self.send(Message::new("BATCH", vec![format!("-{id}")]).with_source(server))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_ref("*"), Some(Ref::Star));
        assert_eq!(parse_ref("msgid=42"), Some(Ref::Seq(42)));
        assert_eq!(parse_ref("msgid=42-3"), Some(Ref::Seq(42)));
        assert_eq!(parse_ref("msgid=0"), None);
        assert_eq!(parse_ref("msgid=abc"), None);
        assert_eq!(
            parse_ref("timestamp=1970-01-01T00:00:01.000Z"),
            Some(Ref::Time(1000))
        );
        assert_eq!(parse_ref("timestamp=yesterday"), None);
        assert_eq!(parse_ref("42"), None);
    }
}
