//! What config sync writes to the address book: blocking, the contacts' fields that the
//! account's other devices set (Contacts config), read positions (ConvoInfoVolatile), and the
//! messages this daemon cannot read. Each change goes through `book`, so it records its
//! `Conversation` event like any other.

use redb::ReadableTable;

use super::{
    require_identity, ConversationRecord, EventKind, IdentityId, Log, Store, StoreError,
    StoredEvent, EVENTS, PEER_EVENTS, SEEN_HASHES,
};
use crate::store::{decode, ContactRecord, ConversationView};

/// A contact as the account's Contacts config has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncedContact {
    /// Its Account ID.
    pub account_id: String,
    /// The nickname the user gave it (becomes the local name when not empty).
    pub nickname: Option<String>,
    /// The name it announced (becomes the profile name when not empty).
    pub profile_name: Option<String>,
    /// The account accepted it.
    pub approved: bool,
    /// It accepted the account.
    pub approved_me: bool,
    /// Blocked.
    pub blocked: bool,
}

/// The time (ms) of a message event, if it is one.
fn message_time(kind: &EventKind) -> Option<u64> {
    match kind {
        EventKind::Incoming(m) => Some(m.sent_at_ms),
        EventKind::Outgoing { sent_at_ms, .. } => Some(*sent_at_ms),
        _ => None,
    }
}

impl Store {
    /// Blocks or unblocks a contact (creating it if needed). A blocked contact's messages are
    /// kept out of the log from then on.
    pub fn set_contact_blocked(
        &self,
        identity: IdentityId,
        account_id: &str,
        blocked: bool,
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        self.edit_contact(
            "blocking a contact",
            identity,
            account_id,
            now_ms,
            |_, c| {
                c.blocked = blocked;
                Ok(())
            },
        )
    }

    /// Applies a contact from the account's Contacts config, writing only if something
    /// differs: the nickname as the local name and the announced name as the profile name (each
    /// only when not empty), approved, approved_me and blocked.
    pub fn sync_contact(
        &self,
        identity: IdentityId,
        synced: &SyncedContact,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let current = self.contact(identity, &synced.account_id)?;
        let mut next = current.clone();
        if let Some(n) = synced.nickname.as_deref().filter(|n| !n.is_empty()) {
            next.name = Some(n.to_owned());
        }
        if let Some(n) = synced.profile_name.as_deref().filter(|n| !n.is_empty()) {
            next.profile_name = Some(n.to_owned());
        }
        next.approved = synced.approved;
        next.approved_me = synced.approved_me;
        next.blocked = synced.blocked;
        if next == current {
            return Ok(());
        }
        self.edit_contact(
            "applying a synced contact",
            identity,
            &synced.account_id,
            now_ms,
            |_, c| {
                c.name = next.name;
                c.profile_name = next.profile_name;
                c.approved = next.approved;
                c.approved_me = next.approved_me;
                c.blocked = next.blocked;
                Ok(())
            },
        )?;
        Ok(())
    }

    /// The time (ms) of the newest message of the conversation with `peer` at or before
    /// `seq`: what a read position at `seq` means to the account's other devices (the
    /// ConvoInfoVolatile `r`). `None` if there is none.
    pub fn read_time(
        &self,
        identity: IdentityId,
        peer: &str,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.read("reading a read position", |tx| {
            let index = tx.open_table(PEER_EVENTS)?;
            let events = tx.open_table(EVENTS)?;
            for row in index
                .range((identity, peer, 0)..=(identity, peer, seq))?
                .rev()
            {
                let (k, _) = row?;
                let s = k.value().2;
                if let Some(v) = events.get((identity, s))? {
                    let e: StoredEvent = decode("event", v.value())?;
                    if let Some(t) = message_time(&e.kind) {
                        return Ok(Some(t));
                    }
                }
            }
            Ok(None)
        })
    }

    /// Applies a read position from the account's ConvoInfoVolatile config to the conversation
    /// with `peer` (if the identity has one): read_seq moves forward to the newest message sent
    /// at or before `read_ms`, and `unread` is set as given. Records a `Conversation` event if
    /// either changed.
    pub fn sync_read(
        &self,
        identity: IdentityId,
        peer: &str,
        read_ms: u64,
        unread: bool,
        now_ms: u64,
    ) -> Result<Option<ConversationView>, StoreError> {
        let Some(view) = self.conversation(identity, peer)? else {
            return Ok(None);
        };
        let mut seq = 0;
        let (events, _) = self.peer_events(identity, peer, 0, 0, usize::MAX, true)?;
        for e in events {
            if message_time(&e.kind).is_some_and(|t| t <= read_ms) {
                seq = e.seq;
                break;
            }
        }
        let c = &view.conversation;
        if c.read_seq >= seq && c.unread == unread {
            return Ok(Some(view));
        }
        let view = self.edit_conversation(
            "applying a synced read position",
            identity,
            peer,
            now_ms,
            |_, c| {
                let mut c: ConversationRecord =
                    c.ok_or_else(|| StoreError::UnknownConversation {
                        peer: peer.to_owned(),
                    })?;
                c.read_seq = c.read_seq.max(seq);
                c.unread = unread;
                Ok(c)
            },
        )?;
        Ok(Some(view))
    }

    /// Records an `Unreadable` event for a message that cannot be read here, once per hash
    /// (a re-read of the same message records nothing). Returns the event if one was recorded.
    pub fn record_unreadable(
        &self,
        identity: IdentityId,
        hash: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let event = self.write("recording an unreadable message", |tx| {
            require_identity(tx, identity)?;
            let mut seen = tx.open_table(SEEN_HASHES)?;
            if seen.get((identity, hash))?.is_some() {
                return Ok(None);
            }
            let mut log = Log::open(tx)?;
            let event = log.append(
                identity,
                now_ms,
                EventKind::Unreadable {
                    hash: hash.to_owned(),
                    received_at_ms: now_ms,
                    reason: reason.to_owned(),
                },
            )?;
            seen.insert((identity, hash), event.seq)?;
            Ok(Some(event))
        })?;
        if let Some(e) = &event {
            self.wake(identity, e.seq);
        }
        Ok(event)
    }
}
