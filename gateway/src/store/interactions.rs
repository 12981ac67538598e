//! What a conversation carries besides messages, in the store: replies resolved to the quoted
//! message, reactions, unsend (the message leaves the log), read receipts (an outgoing message
//! moves to read), disappearing messages (a schedule of purges, enforced by the engine's
//! `expiry` task), the conversation's timer setting and the identity's read-receipt setting,
//! notices, and the swarm chores (expire, delete) the engine carries out for the identity's own
//! swarm.
//!
//! Every operation names a conversation by its address (a string), so groups and communities
//! use the same tables.
//!
//! | table | key | value |
//! |---|---|---|
//! | `expiries` | (identity, expires at ms, seq) | JSON [`DueRecord`]: a message's purge |
//! | `expiry_by_seq` | (identity, seq) | expires at ms (a message's timer has started) |
//! | `swarm_chores` | (identity, message hash) | JSON [`Chore`]: set its expiry, or delete it |
//! | `disappearing` | (identity, conversation) | JSON [`ExpirySetting`] (absent: off) |
//! | `identity_settings` | identity | JSON [`IdentitySettings`] |
//!
//! A message leaves the log by having its event deleted (and its conversation index entry);
//! a `Removed` event in the same transaction says so, and the message's hash stays marked seen
//! (pointing at the `Removed` event), so no re-read of the swarm brings it back.

use std::collections::HashSet;
use std::ops::ControlFlow;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use session_proto::interaction::{Expiry, ExpiryMode};

use super::records::{
    DeliveryState, EventKind, ExpirySetting, IdentityId, MessageExtras, NoticeKind, OutboxEntry,
    RemovedReason, StoredEvent,
};
use super::{
    decode, encode, next_counter, require_identity, Log, Store, StoreError, TableOpener, TxError,
    CURSORS, EVENTS, NEXT_OUTBOX_KEY, OUTBOX, PEER_EVENTS, SEEN_HASHES,
};

pub(super) const EXPIRIES: TableDefinition<'_, (u64, u64, u64), &[u8]> =
    TableDefinition::new("expiries");
pub(super) const EXPIRY_BY_SEQ: TableDefinition<'_, (u64, u64), u64> =
    TableDefinition::new("expiry_by_seq");
pub(super) const SWARM_CHORES: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("swarm_chores");
pub(super) const DISAPPEARING: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("disappearing");
pub(super) const SETTINGS: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("identity_settings");

/// How many of a conversation's newest events a lookup by (timestamp, author) reads before it
/// gives up: a reply, reaction or unsend of an older message is treated as one of an unknown
/// message.
const SCAN_LIMIT: usize = 20_000;
/// The longest excerpt of a quoted message kept with a reply, in characters.
pub const EXCERPT_CHARS: usize = 100;

/// A message's scheduled purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRecord {
    /// Its conversation.
    pub conversation: String,
}

/// Something to do to a message in the identity's own swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Chore {
    /// Shorten its expiry to this time (ms): its disappearing timer started.
    Expire {
        /// When it must be gone.
        at_ms: u64,
    },
    /// Delete it: unsent, or its timer ran out.
    Delete,
}

/// A pending [`Chore`] with the message it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmChore {
    /// The identity whose swarm holds the message.
    pub identity: IdentityId,
    /// The message's hash.
    pub hash: String,
    /// What to do.
    pub chore: Chore,
}

/// A purge that ran: a message that left the log when its timer ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The identity.
    pub identity: IdentityId,
    /// The `Removed` event.
    pub event: StoredEvent,
}

/// Per-identity settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySettings {
    /// Send read receipts when the user reads messages (on by default, as in the apps).
    #[serde(default = "default_true")]
    pub read_receipts: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            read_receipts: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// A received control message, decrypted and checked, as the poller hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The storage server's hash (the dedupe key).
    pub hash: String,
    /// The sender's Account ID.
    pub sender: String,
    /// The conversation's address.
    pub conversation: String,
    /// The sender's timestamp, ms.
    pub sent_at_ms: u64,
    /// What it is.
    pub what: InboundKind,
}

/// What an [`Inbound`] control message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundKind {
    /// A reaction added or removed.
    Reaction {
        /// The reacted-to message's timestamp.
        target_sent_at_ms: u64,
        /// Its author.
        target_author: String,
        /// The emoji.
        emoji: String,
        /// True: removed.
        remove: bool,
    },
    /// The sender unsent its message sent at this time.
    Unsend {
        /// The message's timestamp.
        target_sent_at_ms: u64,
    },
    /// In a group (groups.md §6, `DeleteMemberContent`): delete the messages with these swarm
    /// hashes, the sender's own only unless an admin signed it; with an admin's signature also
    /// every message of `members`.
    DeleteHashes {
        /// The messages' hashes.
        hashes: Vec<String>,
        /// Members whose every message goes (admin-signed only).
        members: Vec<String>,
        /// An admin of the group signed the request.
        by_admin: bool,
    },
    /// The sender read the identity's messages sent at these times.
    ReadReceipt {
        /// The messages' timestamps.
        sent_at_ms: Vec<u64>,
    },
    /// The sender changed the conversation's timer.
    Timer {
        /// The new setting (`None`: off).
        expiry: Option<ExpirySetting>,
    },
    /// A notice to show.
    Notice(NoticeKind),
}

/// A control message to send: the sealed bytes for the recipient's swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOut {
    /// An id for the outbox entry (32 hex characters).
    pub message_id: String,
    /// Whose swarm gets it.
    pub recipient: String,
    /// The sealed bytes.
    pub payload: Vec<u8>,
    /// Its Session timestamp, ms.
    pub sent_at_ms: u64,
    /// How long the swarm keeps it, ms.
    pub ttl_ms: u64,
    /// The swarm namespace it goes to: 0 for an account's inbox, 11 for a group's messages.
    pub namespace: i32,
}

/// What marking a conversation read started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadEffects {
    /// The timestamps of the other side's messages newly read (for a read receipt).
    pub read_sent_at_ms: Vec<u64>,
    /// After-read timers that started.
    pub timers_started: usize,
}

impl ExpirySetting {
    /// The stored form of a protocol timer.
    pub fn from_protocol(e: Expiry) -> ExpirySetting {
        ExpirySetting {
            after_read: e.mode == ExpiryMode::AfterRead,
            seconds: e.seconds,
        }
    }

    /// The protocol timer (`None` if it no longer passes the protocol's checks).
    pub fn to_protocol(self) -> Option<Expiry> {
        let mode = if self.after_read {
            ExpiryMode::AfterRead
        } else {
            ExpiryMode::AfterSend
        };
        Expiry::new(mode, self.seconds).ok()
    }
}

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), TxError> {
    tx.open_table(EXPIRIES)?;
    tx.open_table(EXPIRY_BY_SEQ)?;
    tx.open_table(SWARM_CHORES)?;
    tx.open_table(DISAPPEARING)?;
    tx.open_table(SETTINGS)?;
    Ok(())
}

pub(super) fn forget_identity(tx: &redb::WriteTransaction, id: IdentityId) -> Result<(), TxError> {
    tx.open_table(EXPIRIES)?
        .retain(|(owner, _, _), _| owner != id)?;
    tx.open_table(EXPIRY_BY_SEQ)?
        .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
    tx.open_table(SWARM_CHORES)?
        .retain(|(owner, _), _| owner != id)?;
    tx.open_table(DISAPPEARING)?
        .retain(|(owner, _), _| owner != id)?;
    tx.open_table(SETTINGS)?.remove(id)?;
    Ok(())
}

fn own_account(tx: &redb::WriteTransaction, identity: IdentityId) -> Result<String, TxError> {
    let bytes = tx
        .identity_bytes(identity)?
        .ok_or(StoreError::UnknownIdentity {
            name: format!("#{identity}"),
        })?;
    let record: super::IdentityRecord = decode("identity", &bytes)?;
    Ok(record.account_id)
}

/// The author of a message event, given the identity's own Account ID.
fn author_of<'a>(kind: &'a EventKind, own: &'a str) -> Option<(&'a str, u64)> {
    match kind {
        EventKind::Incoming(m) => Some((m.sender.as_str(), m.sent_at_ms)),
        EventKind::Outgoing { sent_at_ms, .. } => Some((own, *sent_at_ms)),
        _ => None,
    }
}

fn text_of(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::Incoming(m) => Some(&m.text),
        EventKind::Outgoing { text, .. } => Some(text),
        _ => None,
    }
}

fn extras_of(kind: &EventKind) -> Option<&MessageExtras> {
    match kind {
        EventKind::Incoming(m) => Some(&m.extras),
        EventKind::Outgoing { extras, .. } => Some(extras),
        _ => None,
    }
}

impl Log<'_> {
    /// Walks `conversation`'s events from seq `from` on (newest first, or oldest first), at
    /// most [`SCAN_LIMIT`] of them, until `f` breaks with a value.
    fn scan<T>(
        &self,
        identity: IdentityId,
        conversation: &str,
        from: u64,
        newest_first: bool,
        mut f: impl FnMut(StoredEvent) -> ControlFlow<T>,
    ) -> Result<Option<T>, TxError> {
        let range = self
            .peers
            .range((identity, conversation, from)..=(identity, conversation, u64::MAX))?;
        let rows: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for row in rows.take(SCAN_LIMIT) {
            let (k, _) = row?;
            let Some(v) = self.events.get((identity, k.value().2))? else {
                continue;
            };
            if let ControlFlow::Break(t) = f(decode("event", v.value())?) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// The newest message of `conversation` sent at `sent_at_ms` by `author` (`own` is the
    /// identity's own Account ID, the author of its outgoing messages), looking at most
    /// [`SCAN_LIMIT`] events back.
    fn find_message(
        &self,
        identity: IdentityId,
        conversation: &str,
        sent_at_ms: u64,
        author: &str,
        own: &str,
    ) -> Result<Option<StoredEvent>, TxError> {
        self.scan(identity, conversation, 0, true, |event| {
            if author_of(&event.kind, own) == Some((author, sent_at_ms)) {
                ControlFlow::Break(event)
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// The identity's own message of `conversation` sent at `sent_at_ms`
    /// ([`StoreError::UnknownMessage`] if there is none).
    fn own_message(
        &self,
        identity: IdentityId,
        conversation: &str,
        sent_at_ms: u64,
        own: &str,
    ) -> Result<StoredEvent, TxError> {
        Ok(self
            .find_message(identity, conversation, sent_at_ms, own, own)?
            .ok_or(StoreError::UnknownMessage {
                what: "of yours",
                sent_at_ms,
            })?)
    }

    /// The swarm hash the delivery of the identity's message `target` reported (`None` while it
    /// is not stored yet), looking at most [`SCAN_LIMIT`] events past it.
    fn delivered_hash(
        &self,
        identity: IdentityId,
        conversation: &str,
        target: &StoredEvent,
    ) -> Result<Option<String>, TxError> {
        let EventKind::Outgoing { message_id, .. } = &target.kind else {
            return Ok(None);
        };
        self.scan(
            identity,
            conversation,
            target.seq,
            false,
            |event| match event.kind {
                EventKind::Delivery {
                    message_id: m,
                    hash: Some(hash),
                    ..
                } if m == *message_id && !hash.is_empty() => ControlFlow::Break(hash),
                _ => ControlFlow::Continue(()),
            },
        )
    }

    /// The received messages of `conversation` from any of `senders`, looking at most
    /// [`SCAN_LIMIT`] events back.
    fn messages_from(
        &self,
        identity: IdentityId,
        conversation: &str,
        senders: &[String],
    ) -> Result<Vec<StoredEvent>, TxError> {
        let mut out = Vec::new();
        self.scan(identity, conversation, 0, true, |event| {
            if matches!(&event.kind, EventKind::Incoming(m) if senders.contains(&m.sender)) {
                out.push(event);
            }
            ControlFlow::<()>::Continue(())
        })?;
        Ok(out)
    }

    /// The identity's own messages of `conversation` that were stored under one of `hashes`
    /// (their deliveries name the hash), and with `every` all of its own messages that were
    /// stored (a queued one is not: its sender still holds it), looking at most
    /// [`SCAN_LIMIT`] events back.
    fn own_stored(
        &self,
        identity: IdentityId,
        conversation: &str,
        hashes: &[String],
        every: bool,
    ) -> Result<Vec<StoredEvent>, TxError> {
        // Newest first: a message's delivery comes before the message itself.
        let (mut named, mut stored) = (HashSet::new(), HashSet::new());
        let mut out = Vec::new();
        self.scan(identity, conversation, 0, true, |event| {
            match &event.kind {
                EventKind::Delivery {
                    message_id,
                    hash: Some(hash),
                    ..
                } if !hash.is_empty() => {
                    if hashes.contains(hash) {
                        named.insert(message_id.clone());
                    }
                    stored.insert(message_id.clone());
                }
                EventKind::Outgoing { message_id, .. }
                    if named.contains(message_id) || (every && stored.contains(message_id)) =>
                {
                    out.push(event);
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        })?;
        Ok(out)
    }

    /// The message of `conversation` whose swarm hash is `hash`, if the store recorded one
    /// (`seen_hashes` names its event).
    fn message_by_hash(
        &self,
        tx: &redb::WriteTransaction,
        identity: IdentityId,
        conversation: &str,
        hash: &str,
    ) -> Result<Option<StoredEvent>, TxError> {
        let seen = tx.open_table(SEEN_HASHES)?;
        let Some(seq) = seen.get((identity, hash))?.map(|s| s.value()) else {
            return Ok(None);
        };
        let Some(v) = self.events.get((identity, seq))? else {
            return Ok(None);
        };
        let event: StoredEvent = decode("event", v.value())?;
        Ok(match &event.kind {
            EventKind::Incoming(m)
                if m.hash == hash && m.conversation.as_deref() == Some(conversation) =>
            {
                Some(event)
            }
            _ => None,
        })
    }

    /// The newest reaction by `author` with `emoji` to the message at `target_seq` that is
    /// still in place (for a removal to name), looking at most [`SCAN_LIMIT`] events back.
    fn find_reaction(
        &self,
        identity: IdentityId,
        conversation: &str,
        author: &str,
        target_seq: u64,
        emoji: &str,
    ) -> Result<Option<u64>, TxError> {
        let found = self.scan(
            identity,
            conversation,
            target_seq,
            true,
            |event| match &event.kind {
                EventKind::Reaction {
                    author: a,
                    target_seq: t,
                    emoji: e,
                    removed,
                    ..
                } if a == author && *t == target_seq && e == emoji => {
                    ControlFlow::Break((!removed).then_some(event.seq))
                }
                _ => ControlFlow::Continue(()),
            },
        )?;
        Ok(found.flatten())
    }

    /// Deletes an event and its conversation index entry.
    fn remove(&mut self, identity: IdentityId, event: &StoredEvent) -> Result<(), TxError> {
        self.events.remove((identity, event.seq))?;
        self.peers
            .remove((identity, event.kind.conversation(), event.seq))?;
        Ok(())
    }
}

/// Fills in what the store knows of a message about to be recorded: the quoted message's seq
/// and excerpt, and when it disappears if its timer runs already (after send; and always for
/// the identity's own messages, which it has read).
pub(super) fn prepare(
    log: &Log<'_>,
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    mut kind: EventKind,
) -> Result<EventKind, TxError> {
    let own = own_account(tx, identity)?;
    let conversation = kind.conversation().to_owned();
    let (extras, sent_at_ms, outgoing) = match &mut kind {
        EventKind::Incoming(m) => (&mut m.extras, m.sent_at_ms, false),
        EventKind::Outgoing {
            extras, sent_at_ms, ..
        } => (extras, *sent_at_ms, true),
        _ => return Ok(kind),
    };
    if let Some(reply) = extras.reply_to.as_mut() {
        if let Some(quoted) = log.find_message(
            identity,
            &conversation,
            reply.sent_at_ms,
            &reply.author,
            &own,
        )? {
            reply.seq = Some(quoted.seq);
            reply.excerpt = text_of(&quoted.kind).map(|t| t.chars().take(EXCERPT_CHARS).collect());
        }
    }
    if let Some(e) = extras.expiry {
        if outgoing || !e.after_read {
            extras.expires_at_ms =
                Some(sent_at_ms.saturating_add(u64::from(e.seconds).saturating_mul(1000)));
        }
    }
    Ok(kind)
}

/// Schedules the purge of a message just recorded whose timer runs, and the expiry of its copy
/// in the identity's own swarm (`own_hash`: an incoming message's hash, or an outgoing
/// message's sync copy's).
pub(super) fn schedule(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    event: &StoredEvent,
    own_hash: Option<&str>,
) -> Result<(), TxError> {
    let Some(at_ms) = extras_of(&event.kind).and_then(|x| x.expires_at_ms) else {
        return Ok(());
    };
    start_timer(tx, identity, event, at_ms, own_hash)
}

fn start_timer(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    event: &StoredEvent,
    at_ms: u64,
    own_hash: Option<&str>,
) -> Result<(), TxError> {
    let due = DueRecord {
        conversation: event.kind.conversation().to_owned(),
    };
    tx.open_table(EXPIRIES)?
        .insert((identity, at_ms, event.seq), encode(&due).as_slice())?;
    tx.open_table(EXPIRY_BY_SEQ)?
        .insert((identity, event.seq), at_ms)?;
    if let Some(hash) = own_hash {
        add_chore(tx, identity, hash, Chore::Expire { at_ms })?;
    }
    Ok(())
}

fn add_chore(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    hash: &str,
    chore: Chore,
) -> Result<(), TxError> {
    tx.open_table(SWARM_CHORES)?
        .insert((identity, hash), encode(&chore).as_slice())?;
    Ok(())
}

/// The hashes of a message in the identity's own swarm: an incoming message's own hash; an
/// outgoing message's sync copy (the seen hash that points at its event).
fn own_hashes(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    event: &StoredEvent,
) -> Result<Vec<String>, TxError> {
    if let EventKind::Incoming(m) = &event.kind {
        return Ok(vec![m.hash.clone()]);
    }
    let seen = tx.open_table(SEEN_HASHES)?;
    let mut out = Vec::new();
    for row in seen.range((identity, "")..)? {
        let (k, v) = row?;
        let (owner, hash) = k.value();
        if owner != identity {
            break;
        }
        if v.value() == event.seq {
            out.push(hash.to_owned());
        }
    }
    Ok(out)
}

/// Takes a message out of the log: deletes its event, appends the `Removed` event, points its
/// seen hashes at that event, drops its scheduled purge and queues the deletion of its copy in
/// the identity's own swarm. Returns the `Removed` event.
fn take_out(
    tx: &redb::WriteTransaction,
    log: &mut Log<'_>,
    identity: IdentityId,
    own: &str,
    event: &StoredEvent,
    reason: RemovedReason,
    now_ms: u64,
) -> Result<StoredEvent, TxError> {
    let hashes = own_hashes(tx, identity, event)?;
    let (author, sent_at_ms) = author_of(&event.kind, own)
        .map(|(a, t)| (a.to_owned(), t))
        .unwrap_or_default();
    let attachments = match &event.kind {
        EventKind::Incoming(m) => m.attachments.len(),
        EventKind::Outgoing { attachments, .. } => attachments.len(),
        _ => 0,
    };
    // Append first: the log's end is its newest seq, so removing the newest event before
    // appending would hand its seq out again.
    let removed = log.append(
        identity,
        now_ms,
        EventKind::Removed {
            conversation: event.kind.conversation().to_owned(),
            removed_seq: event.seq,
            sent_at_ms,
            author,
            reason,
            attachments: u32::try_from(attachments).unwrap_or(u32::MAX),
        },
    )?;
    log.remove(identity, event)?;
    let mut seen = tx.open_table(SEEN_HASHES)?;
    for hash in &hashes {
        seen.insert((identity, hash.as_str()), removed.seq)?;
    }
    drop(seen);
    if let Some(at) = tx
        .open_table(EXPIRY_BY_SEQ)?
        .remove((identity, event.seq))?
    {
        tx.open_table(EXPIRIES)?
            .remove((identity, at.value(), event.seq))?;
    }
    for hash in &hashes {
        add_chore(tx, identity, hash, Chore::Delete)?;
    }
    Ok(removed)
}

fn queue_control_entry(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    control: ControlOut,
    event_seq: u64,
    now_ms: u64,
) -> Result<(), TxError> {
    let id = next_counter(tx, NEXT_OUTBOX_KEY)?;
    let entry = OutboxEntry {
        id,
        identity,
        message_id: control.message_id,
        recipient: control.recipient,
        payload: control.payload,
        namespace: control.namespace,
        sent_at_ms: control.sent_at_ms,
        ttl_ms: control.ttl_ms,
        attempts: 0,
        next_try_ms: now_ms,
        last_error: None,
        event_seq,
        sync_copy: false,
        held_copy: None,
        control: true,
    };
    tx.open_table(OUTBOX)?
        .insert(id, encode(&entry).as_slice())?;
    Ok(())
}

impl Store {
    /// Records received control messages in one transaction (each once, by hash: the hash is
    /// marked seen), then sets the poll cursor of `namespace` to `last_hash` (if given).
    /// Reactions to messages the store does not have, unsend requests for unknown messages and
    /// receipts for messages the identity never sent are recorded as `Ignored` notices; nothing
    /// ever removes a message of another author than the unsend's sender. Returns the new
    /// events.
    pub fn record_inbound(
        &self,
        identity: IdentityId,
        items: &[Inbound],
        cursor: Option<(i32, &str)>,
        now_ms: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let added = self.write("recording received control messages", |tx| {
            require_identity(tx, identity)?;
            let own = own_account(tx, identity)?;
            let mut added: Vec<StoredEvent> = Vec::new();
            let mut log = Log::open(tx)?;
            for item in items {
                if tx
                    .open_table(SEEN_HASHES)?
                    .get((identity, item.hash.as_str()))?
                    .is_some()
                {
                    continue;
                }
                let before = added.len();
                apply(tx, &mut log, identity, &own, item, now_ms, &mut added)?;
                // The seq marks when the hash was recorded (for pruning): its newest event, or
                // the log's end if it recorded none.
                let seq = match added.get(before..).and_then(|a| a.last()) {
                    Some(e) => e.seq,
                    None => log.last_seq(identity)?,
                };
                tx.open_table(SEEN_HASHES)?
                    .insert((identity, item.hash.as_str()), seq)?;
            }
            if let Some((namespace, hash)) = cursor {
                tx.open_table(CURSORS)?
                    .insert((identity, namespace), hash)?;
            }
            Ok(added)
        })?;
        if let Some(last) = added.last() {
            self.wake(identity, last.seq);
        }
        Ok(added)
    }

    /// Queues a control message the identity sends, with the event that records it (if any),
    /// in one transaction. Returns the event.
    pub fn queue_control(
        &self,
        identity: IdentityId,
        control: ControlOut,
        event: Option<EventKind>,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let event = self.write("queueing a control message", |tx| {
            require_identity(tx, identity)?;
            let mut log = Log::open(tx)?;
            let event = match event {
                Some(kind) => Some(log.append(identity, now_ms, kind)?),
                None => None,
            };
            let seq = match &event {
                Some(e) => e.seq,
                None => log.last_seq(identity)?,
            };
            queue_control_entry(tx, identity, control, seq, now_ms)?;
            Ok(event)
        })?;
        if let Some(e) = &event {
            self.wake(identity, e.seq);
        }
        Ok(event)
    }

    /// The identity reacts to (or removes its reaction from) the message of `target_author`
    /// sent at `target_sent_at_ms` in `conversation`: records the `Reaction` event and queues
    /// `control`. [`StoreError::UnknownMessage`] if the store has no such message.
    #[allow(clippy::too_many_arguments)] // the reaction's fields, each named at the call site
    pub fn react(
        &self,
        identity: IdentityId,
        conversation: &str,
        target_sent_at_ms: u64,
        target_author: &str,
        emoji: &str,
        removed: bool,
        control: ControlOut,
        now_ms: u64,
    ) -> Result<StoredEvent, StoreError> {
        let event = self.write("recording a reaction", |tx| {
            require_identity(tx, identity)?;
            let own = own_account(tx, identity)?;
            let mut log = Log::open(tx)?;
            let target = log
                .find_message(
                    identity,
                    conversation,
                    target_sent_at_ms,
                    target_author,
                    &own,
                )?
                .ok_or(StoreError::UnknownMessage {
                    what: "by that author",
                    sent_at_ms: target_sent_at_ms,
                })?;
            let removes_seq = match removed {
                true => log.find_reaction(identity, conversation, &own, target.seq, emoji)?,
                false => None,
            };
            let event = log.append(
                identity,
                now_ms,
                EventKind::Reaction {
                    conversation: conversation.to_owned(),
                    author: own,
                    target_sent_at_ms,
                    target_author: target_author.to_owned(),
                    target_seq: target.seq,
                    emoji: emoji.to_owned(),
                    removed,
                    removes_seq,
                },
            )?;
            queue_control_entry(tx, identity, control, event.seq, now_ms)?;
            Ok(event)
        })?;
        self.wake(identity, event.seq);
        Ok(event)
    }

    /// The identity unsends its message sent at `sent_at_ms` in `conversation`: the message
    /// leaves the log (a `Removed` event), its sync copy is queued for deletion from the
    /// identity's own swarm, and `control` (the unsend request) is queued, in one transaction.
    /// [`StoreError::UnknownMessage`] if the identity sent no such message there.
    pub fn unsend(
        &self,
        identity: IdentityId,
        conversation: &str,
        sent_at_ms: u64,
        control: ControlOut,
        now_ms: u64,
    ) -> Result<StoredEvent, StoreError> {
        let event = self.write("unsending a message", |tx| {
            require_identity(tx, identity)?;
            let own = own_account(tx, identity)?;
            let mut log = Log::open(tx)?;
            let target = log.own_message(identity, conversation, sent_at_ms, &own)?;
            let removed = take_out(
                tx,
                &mut log,
                identity,
                &own,
                &target,
                RemovedReason::Unsent,
                now_ms,
            )?;
            queue_control_entry(tx, identity, control, removed.seq, now_ms)?;
            Ok(removed)
        })?;
        self.wake(identity, event.seq);
        Ok(event)
    }

    /// The conversation's disappearing setting (`None`: off).
    pub fn disappearing(
        &self,
        identity: IdentityId,
        conversation: &str,
    ) -> Result<Option<ExpirySetting>, StoreError> {
        self.read("reading a disappearing setting", |tx| {
            let table = tx.open_table(DISAPPEARING)?;
            let v = table.get((identity, conversation))?;
            Ok(match v {
                Some(v) => Some(decode("disappearing setting", v.value())?),
                None => None,
            })
        })
    }

    /// The identity sets the conversation's disappearing setting: records the `Disappearing`
    /// event and queues `control` (the timer update) in one transaction.
    pub fn set_disappearing(
        &self,
        identity: IdentityId,
        conversation: &str,
        expiry: Option<ExpirySetting>,
        control: ControlOut,
        now_ms: u64,
    ) -> Result<StoredEvent, StoreError> {
        let event = self.write("setting a disappearing timer", |tx| {
            require_identity(tx, identity)?;
            let own = own_account(tx, identity)?;
            put_setting(tx, identity, conversation, expiry)?;
            let event = Log::open(tx)?.append(
                identity,
                now_ms,
                EventKind::Disappearing {
                    conversation: conversation.to_owned(),
                    author: own,
                    expiry,
                },
            )?;
            queue_control_entry(tx, identity, control, event.seq, now_ms)?;
            Ok(event)
        })?;
        self.wake(identity, event.seq);
        Ok(event)
    }

    /// The identity's settings (defaults if never set).
    pub fn identity_settings(&self, identity: IdentityId) -> Result<IdentitySettings, StoreError> {
        self.read("reading identity settings", |tx| {
            let v = tx.open_table(SETTINGS)?.get(identity)?;
            Ok(match v {
                Some(v) => decode("identity settings", v.value())?,
                None => IdentitySettings::default(),
            })
        })
    }

    /// Saves the identity's settings.
    pub fn set_identity_settings(
        &self,
        identity: IdentityId,
        settings: IdentitySettings,
    ) -> Result<(), StoreError> {
        self.write("saving identity settings", |tx| {
            require_identity(tx, identity)?;
            tx.open_table(SETTINGS)?
                .insert(identity, encode(&settings).as_slice())?;
            Ok(())
        })
    }

    /// The user read `conversation` from after `from_seq` up to `to_seq`: starts the after-read
    /// timers of the other side's messages in that range (their purge and their expiry in the
    /// identity's own swarm) and returns the timestamps of those messages (for a read receipt).
    pub fn messages_read(
        &self,
        identity: IdentityId,
        conversation: &str,
        from_seq: u64,
        to_seq: u64,
        now_ms: u64,
    ) -> Result<ReadEffects, StoreError> {
        if to_seq <= from_seq {
            return Ok(ReadEffects::default());
        }
        self.write("starting read timers", |tx| {
            require_identity(tx, identity)?;
            let mut effects = ReadEffects::default();
            let mut started: Vec<(StoredEvent, u64)> = Vec::new();
            {
                let index = tx.open_table(PEER_EVENTS)?;
                let events = tx.open_table(EVENTS)?;
                let by_seq = tx.open_table(EXPIRY_BY_SEQ)?;
                let range = index.range(
                    (identity, conversation, from_seq.saturating_add(1))
                        ..=(identity, conversation, to_seq),
                )?;
                for row in range {
                    let (k, _) = row?;
                    let seq = k.value().2;
                    let Some(v) = events.get((identity, seq))? else {
                        continue;
                    };
                    let event: StoredEvent = decode("event", v.value())?;
                    let EventKind::Incoming(m) = &event.kind else {
                        continue;
                    };
                    effects.read_sent_at_ms.push(m.sent_at_ms);
                    if let Some(e) = m.extras.expiry.filter(|e| e.after_read) {
                        if by_seq.get((identity, seq))?.is_none() {
                            let at = now_ms.saturating_add(u64::from(e.seconds) * 1000);
                            started.push((event.clone(), at));
                        }
                    }
                }
            }
            for (event, at) in &started {
                let hash = match &event.kind {
                    EventKind::Incoming(m) => Some(m.hash.as_str()),
                    _ => None,
                };
                start_timer(tx, identity, event, *at, hash)?;
            }
            effects.timers_started = started.len();
            Ok(effects)
        })
    }

    /// When the next purge is due (ms), if any is scheduled.
    pub fn next_purge(&self) -> Result<Option<u64>, StoreError> {
        self.read("reading the purge schedule", |tx| {
            let table = tx.open_table(EXPIRIES)?;
            let mut earliest: Option<u64> = None;
            for row in table.iter()? {
                let (k, _) = row?;
                let at = k.value().1;
                earliest = Some(earliest.map_or(at, |e: u64| e.min(at)));
            }
            Ok(earliest)
        })
    }

    /// Purges every message whose timer ran out by `now_ms`: each leaves the log (a `Removed`
    /// event, reason expired) and its copy in the identity's own swarm is queued for deletion.
    pub fn purge_expired(&self, now_ms: u64) -> Result<Vec<Due>, StoreError> {
        let done = self.write("purging expired messages", |tx| {
            let mut due: Vec<(u64, u64, u64)> = Vec::new();
            for row in tx.open_table(EXPIRIES)?.iter()? {
                let (k, _) = row?;
                let (identity, at, seq) = k.value();
                if at <= now_ms {
                    due.push((identity, at, seq));
                }
            }
            let mut done = Vec::new();
            let mut log = Log::open(tx)?;
            for (identity, at, seq) in due {
                tx.open_table(EXPIRIES)?.remove((identity, at, seq))?;
                tx.open_table(EXPIRY_BY_SEQ)?.remove((identity, seq))?;
                let event: Option<StoredEvent> = match log.events.get((identity, seq))? {
                    Some(v) => Some(decode("event", v.value())?),
                    None => None,
                };
                let Some(event) = event else { continue };
                let own = own_account(tx, identity)?;
                let removed = take_out(
                    tx,
                    &mut log,
                    identity,
                    &own,
                    &event,
                    RemovedReason::Expired,
                    now_ms,
                )?;
                done.push(Due {
                    identity,
                    event: removed,
                });
            }
            Ok(done)
        })?;
        for d in &done {
            self.wake(d.identity, d.event.seq);
        }
        Ok(done)
    }

    /// The pending swarm chores, oldest identity first.
    pub fn swarm_chores(&self) -> Result<Vec<SwarmChore>, StoreError> {
        self.read("reading swarm chores", |tx| {
            let mut out = Vec::new();
            for row in tx.open_table(SWARM_CHORES)?.iter()? {
                let (k, v) = row?;
                let (identity, hash) = k.value();
                out.push(SwarmChore {
                    identity,
                    hash: hash.to_owned(),
                    chore: decode("swarm chore", v.value())?,
                });
            }
            Ok(out)
        })
    }

    /// Forgets a chore once done (or given up); a newer chore for the same hash stays.
    pub fn chore_done(&self, chore: &SwarmChore) -> Result<(), StoreError> {
        self.write("finishing a swarm chore", |tx| {
            let mut table = tx.open_table(SWARM_CHORES)?;
            let current: Option<Chore> = match table.get((chore.identity, chore.hash.as_str()))? {
                Some(v) => Some(decode("swarm chore", v.value())?),
                None => None,
            };
            if current == Some(chore.chore) {
                table.remove((chore.identity, chore.hash.as_str()))?;
            }
            Ok(())
        })
    }

    /// The swarm hash of the identity's own message of `conversation` sent at `sent_at_ms`:
    /// `None` while it is not stored yet, [`StoreError::UnknownMessage`] if there is no such
    /// message.
    pub fn sent_hash(
        &self,
        identity: IdentityId,
        conversation: &str,
        sent_at_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        // A write transaction so the lookup shares `Log`'s code; it writes nothing.
        self.write("looking up a sent message", |tx| {
            let own = own_account(tx, identity)?;
            let log = Log::open(tx)?;
            let target = log.own_message(identity, conversation, sent_at_ms, &own)?;
            log.delivered_hash(identity, conversation, &target)
        })
    }

    /// Whether the identity has a message in `conversation` with this timestamp and author.
    pub fn has_message(
        &self,
        identity: IdentityId,
        conversation: &str,
        sent_at_ms: u64,
        author: &str,
    ) -> Result<bool, StoreError> {
        // A write transaction so the lookup shares `Log`'s code; it writes nothing.
        self.write("looking up a message", |tx| {
            let own = own_account(tx, identity)?;
            let log = Log::open(tx)?;
            Ok(log
                .find_message(identity, conversation, sent_at_ms, author, &own)?
                .is_some())
        })
    }
}

fn put_setting(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    conversation: &str,
    expiry: Option<ExpirySetting>,
) -> Result<(), TxError> {
    let mut table = tx.open_table(DISAPPEARING)?;
    match expiry {
        Some(e) => {
            table.insert((identity, conversation), encode(&e).as_slice())?;
        }
        None => {
            table.remove((identity, conversation))?;
        }
    }
    Ok(())
}

fn ignored(conversation: &str, author: &str, reason: &str) -> EventKind {
    EventKind::Notice {
        conversation: conversation.to_owned(),
        author: author.to_owned(),
        notice: NoticeKind::Ignored {
            reason: reason.to_owned(),
        },
    }
}

/// Applies one received control message, pushing the events it recorded.
fn apply(
    tx: &redb::WriteTransaction,
    log: &mut Log<'_>,
    identity: IdentityId,
    own: &str,
    item: &Inbound,
    now_ms: u64,
    added: &mut Vec<StoredEvent>,
) -> Result<(), TxError> {
    let conv = item.conversation.as_str();
    match &item.what {
        InboundKind::Reaction {
            target_sent_at_ms,
            target_author,
            emoji,
            remove,
        } => {
            let kind =
                match log.find_message(identity, conv, *target_sent_at_ms, target_author, own)? {
                    Some(target) => EventKind::Reaction {
                        conversation: conv.to_owned(),
                        author: item.sender.clone(),
                        target_sent_at_ms: *target_sent_at_ms,
                        target_author: target_author.clone(),
                        target_seq: target.seq,
                        emoji: emoji.clone(),
                        removed: *remove,
                        removes_seq: match remove {
                            true => {
                                log.find_reaction(identity, conv, &item.sender, target.seq, emoji)?
                            }
                            false => None,
                        },
                    },
                    None => ignored(
                        conv,
                        &item.sender,
                        "a reaction to a message this daemon does not have",
                    ),
                };
            added.push(log.append(identity, now_ms, kind)?);
        }
        InboundKind::Unsend { target_sent_at_ms } => {
            // Only the sender's own message: the lookup is by (time, sender).
            match log.find_message(identity, conv, *target_sent_at_ms, &item.sender, own)? {
                Some(target) if item.sender != own => {
                    let removed = take_out(
                        tx,
                        log,
                        identity,
                        own,
                        &target,
                        RemovedReason::Unsent,
                        now_ms,
                    )?;
                    added.push(removed);
                }
                _ => added.push(log.append(
                    identity,
                    now_ms,
                    ignored(
                        conv,
                        &item.sender,
                        "an unsend request for a message this daemon does not have from its sender",
                    ),
                )?),
            }
        }
        InboundKind::DeleteHashes {
            hashes,
            members,
            by_admin,
        } => {
            let mut targets = Vec::new();
            for hash in hashes {
                if let Some(target) = log.message_by_hash(tx, identity, conv, hash)? {
                    targets.push(target);
                }
            }
            if *by_admin && !members.is_empty() {
                targets.extend(log.messages_from(identity, conv, members)?);
            }
            // The identity's own posts: only an admin deletes them (the engine drops the
            // identity's own deletions, from its other devices).
            if *by_admin {
                let every = members.iter().any(|m| m == own);
                targets.extend(log.own_stored(identity, conv, hashes, every)?);
            }
            targets.sort_by_key(|t| t.seq);
            targets.dedup_by_key(|t| t.seq);
            let mut gone = 0usize;
            for target in targets {
                let author = match &target.kind {
                    EventKind::Incoming(m) => m.sender.as_str(),
                    EventKind::Outgoing { .. } => own,
                    _ => continue,
                };
                // The sender's own messages; anyone's only with an admin's signature.
                let reason = if author == item.sender {
                    RemovedReason::Unsent
                } else if *by_admin {
                    RemovedReason::Deleted
                } else {
                    continue;
                };
                added.push(take_out(tx, log, identity, own, &target, reason, now_ms)?);
                gone += 1;
            }
            if gone == 0 {
                added.push(log.append(
                    identity,
                    now_ms,
                    ignored(
                        conv,
                        &item.sender,
                        "a request to delete group messages this daemon does not have from its sender",
                    ),
                )?);
            }
        }
        InboundKind::ReadReceipt { sent_at_ms } => {
            let mut found = 0usize;
            for ts in sent_at_ms {
                let Some(target) = log.find_message(identity, conv, *ts, own, own)? else {
                    continue;
                };
                let EventKind::Outgoing { message_id, .. } = &target.kind else {
                    continue;
                };
                found += 1;
                added.push(log.append(
                    identity,
                    now_ms,
                    EventKind::Delivery {
                        message_id: message_id.clone(),
                        recipient: conv.to_owned(),
                        state: DeliveryState::Read,
                        hash: None,
                        reason: None,
                        attempts: 0,
                        message_seq: Some(target.seq),
                    },
                )?);
            }
            if found == 0 {
                added.push(log.append(
                    identity,
                    now_ms,
                    ignored(
                        conv,
                        &item.sender,
                        "a read receipt for messages this identity did not send",
                    ),
                )?);
            }
        }
        InboundKind::Timer { expiry } => {
            put_setting(tx, identity, conv, *expiry)?;
            added.push(log.append(
                identity,
                now_ms,
                EventKind::Disappearing {
                    conversation: conv.to_owned(),
                    author: item.sender.clone(),
                    expiry: *expiry,
                },
            )?);
        }
        InboundKind::Notice(notice) => {
            added.push(log.append(
                identity,
                now_ms,
                EventKind::Notice {
                    conversation: conv.to_owned(),
                    author: item.sender.clone(),
                    notice: notice.clone(),
                },
            )?);
        }
    }
    Ok(())
}
