//! Conversations and contacts: the address book of each identity, its handle index, and every
//! change to a conversation together with the `Conversation` event that records it.
//!
//! The rules, in one place:
//! - A contact gets a handle when it first appears (a message either way, SetContactName,
//!   SetContactHandle, Open), derived as `handles` says, and keeps it until SetContactHandle.
//! - A conversation created by an outgoing message or by Open is accepted; one created by an
//!   incoming message is a message request (not accepted). Writing in it or opening it accepts
//!   it and clears `left`; an incoming message in a left conversation makes it a message
//!   request again.
//! - A `Conversation` event is appended, in the same transaction, whenever an existing
//!   conversation's accepted, left, read_seq, display name or handle changes, whatever changed
//!   it ([`ConversationView::changed`]), and when Open creates one. A conversation created by a
//!   message gets none: the message's own event announces it.

use redb::{ReadableTable, Table};

use super::handles;
use super::{
    decode, encode, require_identity, ContactRecord, ConversationRecord, ConversationView,
    EventKind, IdentityId, Log, Store, StoreError, StoredEvent, TxError, CONTACTS, CONVERSATIONS,
    HANDLES,
};
use crate::address::Kind;

/// The address-book tables of one write transaction.
pub(super) struct Book<'t> {
    conversations: Table<'t, (u64, &'static str), &'static [u8]>,
    contacts: Table<'t, (u64, &'static str), &'static [u8]>,
    handles: Table<'t, (u64, &'static str), &'static str>,
}

/// Which way a message went, for [`Book::message`].
pub(super) enum Message<'a> {
    /// Received, with the profile name it carried.
    Incoming {
        /// The display name in the message's profile.
        profile_name: Option<&'a str>,
    },
    /// Queued by the identity.
    Outgoing,
}

/// Whether the conversation at `address` is with one person, whose contact record it shares
/// (one-to-one, community DM); groups and rooms have no contact of their own.
pub(super) fn is_person(address: &str) -> bool {
    Kind::of(address).is_none_or(Kind::is_person)
}

/// The contact record a group or room shows with its conversation: never stored, no names.
pub(super) fn placeholder(address: &str) -> ContactRecord {
    new_contact(address)
}

fn new_contact(account_id: &str) -> ContactRecord {
    ContactRecord {
        account_id: account_id.to_owned(),
        ..ContactRecord::default()
    }
}

impl<'t> Book<'t> {
    pub(super) fn open(tx: &'t redb::WriteTransaction) -> Result<Book<'t>, TxError> {
        Ok(Book {
            conversations: tx.open_table(CONVERSATIONS)?,
            contacts: tx.open_table(CONTACTS)?,
            handles: tx.open_table(HANDLES)?,
        })
    }

    pub(super) fn contact(
        &self,
        identity: IdentityId,
        account_id: &str,
    ) -> Result<Option<ContactRecord>, TxError> {
        match self.contacts.get((identity, account_id))? {
            Some(v) => Ok(Some(decode("contact", v.value())?)),
            None => Ok(None),
        }
    }

    pub(super) fn conversation(
        &self,
        identity: IdentityId,
        peer: &str,
    ) -> Result<Option<ConversationRecord>, TxError> {
        match self.conversations.get((identity, peer))? {
            Some(v) => Ok(Some(decode("conversation", v.value())?)),
            None => Ok(None),
        }
    }

    fn put_contact(&mut self, identity: IdentityId, c: &ContactRecord) -> Result<(), TxError> {
        self.contacts
            .insert((identity, c.account_id.as_str()), encode(c).as_slice())?;
        Ok(())
    }

    /// Saves the conversation of a group or room (whose changes its own code records).
    pub(super) fn put_shared(
        &mut self,
        identity: IdentityId,
        c: &ConversationRecord,
    ) -> Result<(), TxError> {
        self.put_conversation(identity, c)
    }

    fn put_conversation(
        &mut self,
        identity: IdentityId,
        c: &ConversationRecord,
    ) -> Result<(), TxError> {
        self.conversations
            .insert((identity, c.address.as_str()), encode(c).as_slice())?;
        Ok(())
    }

    /// The contact, created if missing, with a handle (assigned now if it has none), saved.
    pub(super) fn ensure_contact(
        &mut self,
        identity: IdentityId,
        account_id: &str,
        profile_name: Option<&str>,
    ) -> Result<ContactRecord, TxError> {
        let mut contact = match self.contact(identity, account_id)? {
            Some(c) if c.handle.is_some() => return Ok(c),
            Some(c) => c,
            None => ContactRecord {
                profile_name: profile_name.map(str::to_owned),
                ..new_contact(account_id)
            },
        };
        self.assign_handle(identity, &mut contact)?;
        self.put_contact(identity, &contact)?;
        Ok(contact)
    }

    /// Gives `contact` the first free handle derived from its names or Account ID and enters it
    /// in the index (the caller saves the contact).
    fn assign_handle(
        &mut self,
        identity: IdentityId,
        contact: &mut ContactRecord,
    ) -> Result<(), TxError> {
        let base = handles::base(
            contact.name.as_deref(),
            contact.profile_name.as_deref(),
            &contact.account_id,
        );
        for n in 1..=u32::MAX {
            let candidate = handles::candidate(&base, n);
            if handles::is_reserved(&candidate) {
                continue;
            }
            let key = handles::index_key(&candidate);
            if self.handles.get((identity, key.as_str()))?.is_some() {
                continue;
            }
            self.handles
                .insert((identity, key.as_str()), contact.account_id.as_str())?;
            contact.handle = Some(candidate);
            return Ok(());
        }
        Err(StoreError::BadRecord {
            what: "contact handle",
            detail: format!("no free handle derived from {base:?}"),
        }
        .into())
    }

    /// Appends a `Conversation` event if `after` differs from `before` (or, with `announce_new`,
    /// if there was no conversation before).
    fn record_change(
        log: &mut Log<'_>,
        identity: IdentityId,
        before: Option<&ConversationView>,
        after: &ConversationView,
        announce_new: bool,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, TxError> {
        let due = match before {
            Some(before) => after.changed(before),
            None => announce_new,
        };
        if !due {
            return Ok(None);
        }
        Ok(Some(log.append(
            identity,
            now_ms,
            EventKind::Conversation(after.clone()),
        )?))
    }

    /// Records a message (event `seq`, message time `at_ms`) in its conversation and contact:
    /// counts, last seq and activity; accepted/left as the module doc says; the sender's profile
    /// name. Returns the `Conversation` event, if one was due.
    #[allow(clippy::too_many_arguments)] // one call site each in queue_outgoing/record_received
    pub(super) fn message(
        &mut self,
        log: &mut Log<'_>,
        identity: IdentityId,
        peer: &str,
        msg: Message<'_>,
        seq: u64,
        at_ms: u64,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, TxError> {
        let profile_name = match msg {
            Message::Incoming { profile_name } => profile_name.filter(|p| !p.is_empty()),
            Message::Outgoing => None,
        };
        if !is_person(peer) {
            return self.shared_message(log, identity, peer, msg, seq, at_ms, now_ms);
        }
        let existing = self.conversation(identity, peer)?;
        let mut contact = self.ensure_contact(identity, peer, profile_name)?;
        let before = existing.clone().map(|conversation| ConversationView {
            conversation,
            contact: contact.clone(),
        });
        if let Some(p) = profile_name {
            if contact.profile_name.as_deref() != Some(p) {
                contact.profile_name = Some(p.to_owned());
                self.put_contact(identity, &contact)?;
            }
        }
        let mut conv = existing.unwrap_or_else(|| ConversationRecord {
            address: peer.to_owned(),
            accepted: matches!(msg, Message::Outgoing),
            ..ConversationRecord::default()
        });
        conv.last_seq = seq;
        conv.last_activity_ms = conv.last_activity_ms.max(at_ms);
        match msg {
            Message::Incoming { .. } => {
                conv.incoming_count += 1;
                if conv.left {
                    conv.left = false;
                    conv.accepted = false;
                }
            }
            Message::Outgoing => {
                conv.outgoing_count += 1;
                conv.accepted = true;
                conv.left = false;
            }
        }
        self.put_conversation(identity, &conv)?;
        let after = ConversationView {
            conversation: conv,
            contact,
        };
        Book::record_change(log, identity, before.as_ref(), &after, false, now_ms)
    }

    /// [`Book::message`] for a conversation of many (a group, a room): counts and activity.
    /// Whether it is accepted or left is up to its own operations (join, leave), not to the
    /// messages in it; one created by a message is accepted (the identity polls only what it
    /// joined).
    #[allow(clippy::too_many_arguments)]
    fn shared_message(
        &mut self,
        log: &mut Log<'_>,
        identity: IdentityId,
        address: &str,
        msg: Message<'_>,
        seq: u64,
        at_ms: u64,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, TxError> {
        let existing = self.conversation(identity, address)?;
        let before = existing.clone().map(|conversation| ConversationView {
            conversation,
            contact: new_contact(address),
        });
        let mut conv = existing.unwrap_or_else(|| ConversationRecord {
            address: address.to_owned(),
            accepted: true,
            ..ConversationRecord::default()
        });
        conv.last_seq = seq;
        conv.last_activity_ms = conv.last_activity_ms.max(at_ms);
        match msg {
            Message::Incoming { .. } => conv.incoming_count += 1,
            Message::Outgoing => conv.outgoing_count += 1,
        }
        self.put_conversation(identity, &conv)?;
        let after = ConversationView {
            conversation: conv,
            contact: new_contact(address),
        };
        Book::record_change(log, identity, before.as_ref(), &after, false, now_ms)
    }

    /// Notes the sender of a message posted in a group or room: its contact (created with a
    /// handle if new, so front ends can name it) takes the profile name the message carried.
    /// If that renames the one-to-one conversation with the sender, its `Conversation` event.
    pub(super) fn note_sender(
        &mut self,
        log: &mut Log<'_>,
        identity: IdentityId,
        sender: &str,
        profile_name: Option<&str>,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, TxError> {
        let profile_name = profile_name.filter(|p| !p.is_empty());
        let before = self.ensure_contact(identity, sender, profile_name)?;
        let Some(p) = profile_name else {
            return Ok(None);
        };
        if before.profile_name.as_deref() == Some(p) {
            return Ok(None);
        }
        let mut contact = before.clone();
        contact.profile_name = Some(p.to_owned());
        self.put_contact(identity, &contact)?;
        let Some(conversation) = self.conversation(identity, sender)? else {
            return Ok(None);
        };
        let before = ConversationView {
            conversation: conversation.clone(),
            contact: before,
        };
        let after = ConversationView {
            conversation,
            contact,
        };
        Book::record_change(log, identity, Some(&before), &after, false, now_ms)
    }
}

impl Store {
    /// An identity's conversations with their contacts, most recent activity first.
    pub fn conversations(&self, identity: IdentityId) -> Result<Vec<ConversationView>, StoreError> {
        let mut out: Vec<ConversationView> = self.read("listing conversations", |tx| {
            let table = tx.open_table(CONVERSATIONS)?;
            let contacts = tx.open_table(CONTACTS)?;
            let mut out = Vec::new();
            for row in table.range((identity, "")..)? {
                let (k, v) = row?;
                if k.value().0 != identity {
                    break;
                }
                let conversation: ConversationRecord = decode("conversation", v.value())?;
                let contact = match contacts.get((identity, conversation.address.as_str()))? {
                    Some(c) => decode("contact", c.value())?,
                    None => new_contact(&conversation.address),
                };
                out.push(ConversationView {
                    conversation,
                    contact,
                });
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| {
            let key =
                |v: &ConversationView| (v.conversation.last_activity_ms, v.conversation.last_seq);
            key(b).cmp(&key(a))
        });
        Ok(out)
    }

    /// One conversation with its contact, if the identity has it.
    pub fn conversation(
        &self,
        identity: IdentityId,
        peer: &str,
    ) -> Result<Option<ConversationView>, StoreError> {
        self.read("reading a conversation", |tx| {
            let table = tx.open_table(CONVERSATIONS)?;
            let Some(v) = table.get((identity, peer))? else {
                return Ok(None);
            };
            let conversation: ConversationRecord = decode("conversation", v.value())?;
            let contact = match tx.open_table(CONTACTS)?.get((identity, peer))? {
                Some(c) => decode("contact", c.value())?,
                None => new_contact(peer),
            };
            Ok(Some(ConversationView {
                conversation,
                contact,
            }))
        })
    }

    /// An identity's contacts, sorted by Account ID.
    pub fn contacts(&self, identity: IdentityId) -> Result<Vec<ContactRecord>, StoreError> {
        self.read("listing contacts", |tx| {
            let table = tx.open_table(CONTACTS)?;
            let mut out = Vec::new();
            for row in table.range((identity, "")..)? {
                let (k, v) = row?;
                if k.value().0 != identity {
                    break;
                }
                out.push(decode("contact", v.value())?);
            }
            Ok(out)
        })
    }

    /// One contact (a default, nameless, handleless one if unknown).
    pub fn contact(
        &self,
        identity: IdentityId,
        account_id: &str,
    ) -> Result<ContactRecord, StoreError> {
        self.read("reading a contact", |tx| {
            let table = tx.open_table(CONTACTS)?;
            let v = table.get((identity, account_id))?;
            Ok(match v {
                Some(v) => decode("contact", v.value())?,
                None => new_contact(account_id),
            })
        })
    }

    /// The Account ID of the contact with this handle (compared case-insensitively), if any.
    pub fn contact_by_handle(
        &self,
        identity: IdentityId,
        handle: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read("looking up a handle", |tx| {
            let table = tx.open_table(HANDLES)?;
            let key = handles::index_key(handle);
            let v = table.get((identity, key.as_str()))?;
            Ok(v.map(|v| v.value().to_owned()))
        })
    }

    /// Sets (`Some`) or clears (`None`) a contact's local name, creating the contact (with a
    /// handle derived from the new name) if needed.
    pub fn set_contact_name(
        &self,
        identity: IdentityId,
        account_id: &str,
        name: Option<&str>,
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        self.edit_contact("naming a contact", identity, account_id, now_ms, |_, c| {
            c.name = name.map(str::to_owned);
            Ok(())
        })
    }

    /// Sets a contact's handle, creating the contact if needed. Fails with
    /// [`StoreError::BadHandle`] for a handle against the rule and [`StoreError::HandleTaken`]
    /// if another contact of the identity has it (case-insensitively).
    pub fn set_contact_handle(
        &self,
        identity: IdentityId,
        account_id: &str,
        handle: &str,
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        handles::validate(handle).map_err(|reason| StoreError::BadHandle {
            handle: handle.to_owned(),
            reason,
        })?;
        self.edit_contact(
            "setting a contact's handle",
            identity,
            account_id,
            now_ms,
            |book, c| {
                let key = handles::index_key(handle);
                if let Some(owner) = book.handles.get((identity, key.as_str()))? {
                    if owner.value() != account_id {
                        return Err(StoreError::HandleTaken {
                            handle: handle.to_owned(),
                        }
                        .into());
                    }
                }
                if let Some(old) = c.handle.as_deref() {
                    let old_key = handles::index_key(old);
                    if old_key != key {
                        book.handles.remove((identity, old_key.as_str()))?;
                    }
                }
                book.handles.insert((identity, key.as_str()), account_id)?;
                c.handle = Some(handle.to_owned());
                Ok(())
            },
        )
    }

    /// Changes a contact with `f` (creating it if needed, with a handle if it has none after
    /// `f`), and records a `Conversation` event if the identity has a conversation with it and
    /// it changed.
    pub(super) fn edit_contact(
        &self,
        action: &'static str,
        identity: IdentityId,
        account_id: &str,
        now_ms: u64,
        f: impl FnOnce(&mut Book<'_>, &mut ContactRecord) -> Result<(), TxError>,
    ) -> Result<ContactRecord, StoreError> {
        let (contact, event) = self.write(action, |tx| {
            require_identity(tx, identity)?;
            let mut log = Log::open(tx)?;
            let mut book = Book::open(tx)?;
            let before = book.contact(identity, account_id)?;
            let mut contact = before.clone().unwrap_or_else(|| new_contact(account_id));
            f(&mut book, &mut contact)?;
            if contact.handle.is_none() {
                book.assign_handle(identity, &mut contact)?;
            }
            book.put_contact(identity, &contact)?;
            let mut event = None;
            if let Some(conversation) = book.conversation(identity, account_id)? {
                let before = ConversationView {
                    conversation: conversation.clone(),
                    contact: before.unwrap_or_else(|| new_contact(account_id)),
                };
                let after = ConversationView {
                    conversation,
                    contact: contact.clone(),
                };
                event =
                    Book::record_change(&mut log, identity, Some(&before), &after, false, now_ms)?;
            }
            Ok((contact, event))
        })?;
        if let Some(e) = event {
            self.wake(identity, e.seq);
        }
        Ok(contact)
    }

    /// Opens the conversation with `peer`, creating it (and the contact) if needed: accepted,
    /// not left. Records a `Conversation` event if it was created or changed.
    pub fn open_conversation(
        &self,
        identity: IdentityId,
        peer: &str,
        now_ms: u64,
    ) -> Result<ConversationView, StoreError> {
        self.edit_conversation("opening a conversation", identity, peer, now_ms, |_, c| {
            let mut c = c.unwrap_or_else(|| ConversationRecord {
                address: peer.to_owned(),
                ..ConversationRecord::default()
            });
            c.accepted = true;
            c.left = false;
            Ok(c)
        })
    }

    /// Leaves the conversation with `peer` ([`StoreError::UnknownConversation`] if there is
    /// none). Records a `Conversation` event if it was not left already.
    pub fn leave_conversation(
        &self,
        identity: IdentityId,
        peer: &str,
        now_ms: u64,
    ) -> Result<ConversationView, StoreError> {
        self.edit_conversation("leaving a conversation", identity, peer, now_ms, |_, c| {
            let mut c = c.ok_or_else(|| StoreError::UnknownConversation {
                peer: peer.to_owned(),
            })?;
            c.left = true;
            Ok(c)
        })
    }

    /// Marks the conversation with `peer` read up to `seq`: read_seq only moves forward.
    /// [`StoreError::UnknownConversation`] if there is none, [`StoreError::SeqPastEnd`] if
    /// `seq` is past the end of the identity's log. Records a `Conversation` event if read_seq
    /// moved.
    pub fn mark_read(
        &self,
        identity: IdentityId,
        peer: &str,
        seq: u64,
        now_ms: u64,
    ) -> Result<ConversationView, StoreError> {
        self.edit_conversation(
            "marking a conversation read",
            identity,
            peer,
            now_ms,
            |log, c| {
                let mut c = c.ok_or_else(|| StoreError::UnknownConversation {
                    peer: peer.to_owned(),
                })?;
                let last = log.last_seq(identity)?;
                if seq > last {
                    return Err(StoreError::SeqPastEnd { seq, last }.into());
                }
                c.read_seq = c.read_seq.max(seq);
                Ok(c)
            },
        )
    }

    /// Changes (or, if `f` allows, creates) a conversation and records a `Conversation` event
    /// if it was created or changed. The contact is created (with a handle) only once `f` has
    /// accepted the change.
    /// Opens (creates if needed) the conversation of a group or community room with its own
    /// name as the title, and clears `left`; a `Conversation` event if that changed it.
    pub fn open_shared_conversation(
        &self,
        identity: IdentityId,
        address: &str,
        title: Option<&str>,
        now_ms: u64,
    ) -> Result<ConversationView, StoreError> {
        self.edit_conversation(
            "opening a conversation",
            identity,
            address,
            now_ms,
            |_, c| {
                let mut c = c.unwrap_or_else(|| ConversationRecord {
                    address: address.to_owned(),
                    ..ConversationRecord::default()
                });
                c.accepted = true;
                c.left = false;
                if let Some(t) = title.filter(|t| !t.is_empty()) {
                    c.title = Some(t.to_owned());
                }
                Ok(c)
            },
        )
    }

    pub(super) fn edit_conversation(
        &self,
        action: &'static str,
        identity: IdentityId,
        peer: &str,
        now_ms: u64,
        f: impl FnOnce(&Log<'_>, Option<ConversationRecord>) -> Result<ConversationRecord, TxError>,
    ) -> Result<ConversationView, StoreError> {
        let (view, event) = self.write(action, |tx| {
            require_identity(tx, identity)?;
            let mut log = Log::open(tx)?;
            let mut book = Book::open(tx)?;
            let existing = book.conversation(identity, peer)?;
            let before = match &existing {
                Some(conversation) => Some(ConversationView {
                    conversation: conversation.clone(),
                    contact: book
                        .contact(identity, peer)?
                        .unwrap_or_else(|| new_contact(peer)),
                }),
                None => None,
            };
            let conversation = f(&log, existing)?;
            let contact = if is_person(peer) {
                book.ensure_contact(identity, peer, None)?
            } else {
                new_contact(peer)
            };
            book.put_conversation(identity, &conversation)?;
            let after = ConversationView {
                conversation,
                contact,
            };
            let event =
                Book::record_change(&mut log, identity, before.as_ref(), &after, true, now_ms)?;
            Ok((after, event))
        })?;
        if let Some(e) = event {
            self.wake(identity, e.seq);
        }
        Ok(view)
    }
}
