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
        // Accepted on another device: the message request is a conversation here too.
        if synced.approved {
            let pending = self
                .conversation(identity, &synced.account_id)?
                .is_some_and(|v| !v.conversation.accepted && !v.conversation.left);
            if pending {
                self.edit_conversation(
                    "accepting a synced contact's conversation",
                    identity,
                    &synced.account_id,
                    now_ms,
                    |_, c| {
                        let mut c = c.ok_or_else(|| StoreError::UnknownConversation {
                            peer: synced.account_id.clone(),
                        })?;
                        c.accepted = true;
                        Ok(c)
                    },
                )?;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::tests::TempDir;
    use super::*;
    use crate::store::Received;

    const BOB: &str = "05bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const EVE: &str = "05eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    fn received(hash: &str, from: &str, at: u64) -> Received {
        Received {
            sender: from.to_owned(),
            text: format!("text {hash}"),
            sent_at_ms: at,
            received_at_ms: at + 5,
            hash: hash.to_owned(),
            sender_profile_name: None,
            sync_target: None,
            conversation: None,
            extras: Default::default(),
            attachments: Vec::new(),
            pointers: Vec::new(),
            server_id: None,
            edited_at_ms: None,
        }
    }

    fn store(dir: &TempDir) -> (Store, IdentityId) {
        std::fs::create_dir_all(dir.path()).expect("dir");
        let s = Store::open(dir.path()).expect("store");
        let id = s
            .add_identity("me", &format!("05{}", "a".repeat(64)), &[1; 32], 1)
            .expect("identity")
            .id;
        (s, id)
    }

    fn texts(s: &Store, id: IdentityId) -> Vec<String> {
        s.events(id, 0, 0, 1000, false)
            .expect("events")
            .0
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Incoming(m) => Some(m.text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_blocked_contacts_messages_stay_out_of_the_log_even_after_an_unblock() {
        let dir = TempDir::new("sync-block");
        let (s, id) = store(&dir);
        s.record_received(id, 0, &[received("h1", EVE, 10)], None, 20)
            .expect("record");
        let eve = s.set_contact_blocked(id, EVE, true, 30).expect("block");
        assert!(eve.blocked);
        s.record_received(
            id,
            0,
            &[received("h2", EVE, 40), received("h3", BOB, 41)],
            None,
            50,
        )
        .expect("record");
        assert_eq!(texts(&s, id), ["text h1", "text h3"]);
        // The ConversationChanged event says it is blocked.
        let conv = s
            .conversation(id, EVE)
            .expect("read")
            .expect("conversation");
        assert!(conv.contact.blocked);
        s.set_contact_blocked(id, EVE, false, 60).expect("unblock");
        // A re-read of the message dropped while blocked does not bring it back.
        s.record_received(
            id,
            0,
            &[received("h2", EVE, 40), received("h4", EVE, 70)],
            None,
            80,
        )
        .expect("record");
        assert_eq!(texts(&s, id), ["text h1", "text h3", "text h4"]);
    }

    #[test]
    fn synced_contacts_and_read_positions_apply_and_only_differences_write() {
        let dir = TempDir::new("sync-read");
        let (s, id) = store(&dir);
        s.record_received(
            id,
            0,
            &[
                received("a", BOB, 1_000),
                received("b", BOB, 2_000),
                received("c", BOB, 3_000),
            ],
            None,
            3_500,
        )
        .expect("record");
        let seq_of = |t: u64| {
            s.events(id, 0, 0, 100, false)
                .expect("events")
                .0
                .into_iter()
                .find(|e| matches!(&e.kind, EventKind::Incoming(m) if m.sent_at_ms == t))
                .expect("message")
                .seq
        };
        // The read time of a position is its newest message at or before it.
        assert_eq!(
            s.read_time(id, BOB, seq_of(2_000)).expect("time"),
            Some(2_000)
        );
        assert_eq!(s.read_time(id, EVE, 5).expect("time"), None);
        // Read up to 2,500 ms: the message of 2,000 is the last read.
        let v = s
            .sync_read(id, BOB, 2_500, false, 4_000)
            .expect("sync")
            .expect("conversation");
        assert_eq!(v.conversation.read_seq, seq_of(2_000));
        let last = s.last_seq(id).expect("seq");
        // The same again writes nothing; an older position never moves read_seq back.
        s.sync_read(id, BOB, 2_500, false, 4_100).expect("sync");
        s.sync_read(id, BOB, 500, false, 4_200).expect("sync");
        assert_eq!(s.last_seq(id).expect("seq"), last);
        let v = s
            .sync_read(id, BOB, 0, true, 4_300)
            .expect("sync")
            .expect("conversation");
        assert!(v.conversation.unread);
        assert_eq!(v.conversation.read_seq, seq_of(2_000));
        // No conversation: nothing.
        assert!(s
            .sync_read(id, EVE, 9_000, false, 4_400)
            .expect("sync")
            .is_none());

        let synced = SyncedContact {
            account_id: BOB.into(),
            nickname: Some("Bobby".into()),
            profile_name: Some("Robert".into()),
            approved: true,
            approved_me: true,
            blocked: false,
        };
        assert!(
            !s.conversation(id, BOB)
                .expect("read")
                .expect("conversation")
                .conversation
                .accepted
        );
        s.sync_contact(id, &synced, 5_000).expect("sync");
        // Approved on another device: no longer a message request.
        assert!(
            s.conversation(id, BOB)
                .expect("read")
                .expect("conversation")
                .conversation
                .accepted
        );
        let bob = s.contact(id, BOB).expect("contact");
        assert_eq!(
            (bob.name.as_deref(), bob.profile_name.as_deref()),
            (Some("Bobby"), Some("Robert"))
        );
        assert!(bob.approved && bob.approved_me && !bob.blocked);
        let last = s.last_seq(id).expect("seq");
        s.sync_contact(id, &synced, 5_100).expect("sync");
        assert_eq!(
            s.last_seq(id).expect("seq"),
            last,
            "nothing changed, nothing recorded"
        );
        // An empty nickname keeps the local name.
        s.sync_contact(
            id,
            &SyncedContact {
                nickname: None,
                ..synced
            },
            5_200,
        )
        .expect("sync");
        assert_eq!(
            s.contact(id, BOB).expect("contact").name.as_deref(),
            Some("Bobby")
        );
    }

    #[test]
    fn an_unreadable_message_is_recorded_once() {
        let dir = TempDir::new("sync-unreadable");
        let (s, id) = store(&dir);
        assert!(s
            .record_unreadable(id, "v2", "why", 10)
            .expect("record")
            .is_some());
        assert!(s
            .record_unreadable(id, "v2", "why", 20)
            .expect("record")
            .is_none());
        let (events, _) = s.events(id, 0, 0, 10, false).expect("events");
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0].kind, EventKind::Unreadable { hash, .. } if hash == "v2"));
        assert!(s.record_unreadable(99, "v2", "why", 20).is_err());
    }
}
