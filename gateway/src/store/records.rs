//! The records the store keeps, as the rest of the daemon sees them (encoded as JSON in redb).

use serde::{Deserialize, Serialize};

use super::files::{AttachmentRecord, AttachmentView};

/// The store's number for an identity: allocated once, never reused, so data keyed by it cannot
/// leak into a later identity that reuses a name.
pub type IdentityId = u64;

/// An identity held by the daemon (without its seed, which is read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The store's number for it.
    pub id: IdentityId,
    /// The local name, unique in the daemon.
    pub name: String,
    /// The Account ID as 66 hex characters.
    pub account_id: String,
    /// When it was added, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The display name it announces in its outgoing messages (SetProfile); `None`: none.
    /// Absent from records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// One entry of an identity's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The sequence number: 1, 2, 3, … per identity.
    pub seq: u64,
    /// When the daemon recorded it, in milliseconds since the Unix epoch.
    pub recorded_at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What an event records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A message arrived.
    Incoming(Received),
    /// The identity queued a message.
    Outgoing {
        /// The daemon's id for the message (32 hex characters).
        message_id: String,
        /// The conversation's address (the recipient's Account ID for a one-to-one message).
        recipient: String,
        /// The text.
        text: String,
        /// The message's Session timestamp, in milliseconds.
        sent_at_ms: u64,
        /// True: sent by another device of the account (its sync copy was read from the
        /// identity's own swarm); no `Delivery` event follows. Absent (false) in older records.
        #[serde(default, skip_serializing_if = "is_false")]
        from_other_device: bool,
        /// The quote and the disappearing timer it was sent with. Absent in older records.
        #[serde(default, skip_serializing_if = "MessageExtras::is_empty")]
        extras: MessageExtras,
        /// Its attachments. Absent (none) in older records.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentView>,
        /// In a community room or DM: the server's id of the post or DM (they are sent at
        /// once, so it is known when the event is written).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_id: Option<i64>,
    },
    /// An outgoing message was stored by the swarm, or given up.
    Delivery {
        /// The id from the `Outgoing` event.
        message_id: String,
        /// The conversation's address (the recipient's Account ID for a one-to-one message).
        recipient: String,
        /// The new state.
        state: DeliveryState,
        /// For `Sent`: the storage server's message hash.
        hash: Option<String>,
        /// For `Failed`: why.
        reason: Option<String>,
        /// How many attempts were made.
        attempts: u32,
        /// For `Read`: the seq of the message's `Outgoing` event. Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_seq: Option<u64>,
    },
    /// A conversation's state or its contact's names changed (see [`ConversationView::changed`]);
    /// the conversation as it is after the change.
    Conversation(ConversationView),
    /// An attachment of a message changed state: the attachment after the change.
    Attachment(AttachmentView),
    /// A post in a community room was deleted on the server.
    RoomDeleted {
        /// The room's address.
        conversation: String,
        /// The post's server id.
        server_id: i64,
    },
    /// The reactions to a post in a community room, as they are now.
    RoomReactions {
        /// The room's address.
        conversation: String,
        /// The post's server id.
        server_id: i64,
        /// (emoji, count, whether the identity reacted), in the order first used.
        reactions: Vec<(String, u64, bool)>,
        /// emoji → the first reactors the server listed (blinded IDs), if it listed any.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        reactors: std::collections::BTreeMap<String, Vec<String>>,
    },
    /// Something happened in a group: an invitation, joining, members added or removed or
    /// promoted, a rename, being kicked, leaving, the group destroyed.
    Group(super::GroupChange),
    /// A message arrived that this daemon cannot read (the "v2" format meant for the account's
    /// device group, identity-and-messages §3.9): recorded so that it is never lost silently.
    /// Its sender is unknown (encrypted).
    Unreadable {
        /// The storage server's message hash.
        hash: String,
        /// When it was fetched, in milliseconds.
        received_at_ms: u64,
        /// Why it cannot be read (no content).
        reason: String,
    },
    /// A reaction was added or removed (by the other side, or by the identity itself).
    Reaction {
        /// The conversation's address.
        conversation: String,
        /// Who reacted (the identity's own Account ID for its own reactions).
        author: String,
        /// The timestamp of the message reacted to.
        target_sent_at_ms: u64,
        /// The author of the message reacted to.
        target_author: String,
        /// The seq of the message reacted to.
        target_seq: u64,
        /// The emoji.
        emoji: String,
        /// True: the reaction was removed.
        removed: bool,
        /// For a removal: the seq of the `Reaction` event it takes back, if the log has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removes_seq: Option<u64>,
    },
    /// A message was removed from the log: unsent by its author, or expired.
    Removed {
        /// The conversation's address.
        conversation: String,
        /// The seq of the message's event, which is gone from the log.
        removed_seq: u64,
        /// The message's timestamp.
        sent_at_ms: u64,
        /// The message's author.
        author: String,
        /// Why.
        reason: RemovedReason,
        /// How many attachments the message had. Absent (0) in older records.
        #[serde(default, skip_serializing_if = "is_zero")]
        attachments: u32,
    },
    /// The conversation's disappearing-message setting changed.
    Disappearing {
        /// The conversation's address.
        conversation: String,
        /// Who changed it (the identity's own Account ID when it did).
        author: String,
        /// The new setting; `None`: off.
        expiry: Option<ExpirySetting>,
    },
    /// Something the other side did that shows as a notice: a screenshot, saved media, an
    /// accepted message request; or a control message the daemon ignored, with the reason.
    Notice {
        /// The conversation's address.
        conversation: String,
        /// Who did it.
        author: String,
        /// What.
        notice: NoticeKind,
    },
}

/// Why a message left the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedReason {
    /// Its author unsent it ("delete for everyone").
    Unsent,
    /// Its disappearing timer ran out.
    Expired,
    /// An admin of the group deleted it.
    Deleted,
}

/// What a `Notice` event reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoticeKind {
    /// The other side took a screenshot.
    Screenshot,
    /// The other side saved an attachment.
    MediaSaved,
    /// The other side accepted the identity's message request.
    RequestAccepted,
    /// The other side declined it.
    RequestDeclined,
    /// A control message was not applied; why (a reaction to a message never seen, an unsend
    /// of an unknown message, an absurd timer…).
    Ignored {
        /// The reason, for a person to read.
        reason: String,
    },
}

/// A disappearing-message setting as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpirySetting {
    /// True: the timer starts when the message is read; false: when it is sent.
    pub after_read: bool,
    /// The timer, in seconds (1 to 14 days).
    pub seconds: u32,
}

/// What a message carries besides its text: the message it replies to and its disappearing
/// timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MessageExtras {
    /// The quoted message, if it is a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyRef>,
    /// Its disappearing timer, if it disappears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpirySetting>,
    /// When it disappears (ms), once the timer runs (at once for after-send timers and for the
    /// identity's own messages; when read for others' after-read messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl MessageExtras {
    /// True when it carries nothing.
    pub fn is_empty(&self) -> bool {
        self == &MessageExtras::default()
    }
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRef {
    /// The quoted message's timestamp.
    pub sent_at_ms: u64,
    /// Its author's Account ID.
    pub author: String,
    /// The seq of its event, if the daemon has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The start of its text, if the daemon has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

impl From<session_proto::interaction::MessageRef> for ReplyRef {
    /// The quote a received message carries; its seq and excerpt are the store's to fill in.
    fn from(r: session_proto::interaction::MessageRef) -> ReplyRef {
        ReplyRef {
            sent_at_ms: r.sent_at_ms,
            author: r.author,
            seq: None,
            excerpt: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An outbox entry's payload as base64 text: a sealed message as a JSON array of numbers was
/// four times its size and most of the time a queued Send spent in the shared commit.
mod payload_bytes {
    use base64::Engine as _;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(Payload)
    }

    struct Payload;

    impl<'de> Visitor<'de> for Payload {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 text or an array of bytes")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<u8>, E> {
            B64.decode(v)
                .map_err(|e| E::custom(format!("payload is not base64: {e}")))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

impl EventKind {
    /// The address of the conversation the event belongs to (see [`crate::address`]): the
    /// other side's Account ID for a one-to-one conversation, the group's `03…` ID, a
    /// community room's URL form, a community DM peer's blinded ID.
    pub fn conversation(&self) -> &str {
        match self {
            EventKind::Incoming(m) => m.conversation(),
            EventKind::Outgoing { recipient, .. } | EventKind::Delivery { recipient, .. } => {
                recipient
            }
            EventKind::Conversation(view) => &view.conversation.address,
            EventKind::RoomDeleted { conversation, .. }
            | EventKind::RoomReactions { conversation, .. } => conversation,
            EventKind::Group(change) => &change.group,
            EventKind::Unreadable { .. } => "",
            EventKind::Reaction { conversation, .. }
            | EventKind::Removed { conversation, .. }
            | EventKind::Disappearing { conversation, .. }
            | EventKind::Notice { conversation, .. } => conversation,
            EventKind::Attachment(a) => &a.conversation,
        }
    }
}

/// The terminal states of an outgoing message (the queued state is the `Outgoing` event itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// The recipient's swarm stored it.
    Sent,
    /// Given up after the retry budget.
    Failed,
    /// The recipient read it (its read receipt arrived).
    Read,
}

/// A received message, decrypted and verified, as a poller hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The sender's Account ID.
    pub sender: String,
    /// The conversation it was posted in, when that is not the one-to-one conversation with
    /// the sender: a group's `03…` ID, a community room (see [`crate::address`]). Absent in
    /// one-to-one messages and in records written before groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The text (empty if the message had none).
    pub text: String,
    /// The sender's timestamp, in milliseconds.
    pub sent_at_ms: u64,
    /// When it was fetched, in milliseconds.
    pub received_at_ms: u64,
    /// The storage server's message hash; the dedupe key.
    pub hash: String,
    /// The display name in the message's profile, if any.
    pub sender_profile_name: Option<String>,
    /// Set for a sync copy (identity-and-messages §3.7): a message the identity itself sent from
    /// another device of the account, read from its own swarm; the Account ID it was sent to.
    /// The store records it as an outgoing message of that conversation, not as incoming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_target: Option<String>,
    /// The quote and the disappearing timer it came with. Absent in older records.
    #[serde(default, skip_serializing_if = "MessageExtras::is_empty")]
    pub extras: MessageExtras,
    /// The message's attachments as first recorded (state pending). Absent in older records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
    /// The encoded pointers of `attachments` (hex, same order): stored in the attachments
    /// table, never in the event.
    #[serde(skip)]
    pub pointers: Vec<String>,
    /// In a community room or DM: the server's id of the post or DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<i64>,
    /// In a community room: when the post was edited, ms (an edit is recorded as a new message
    /// with the same `server_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at_ms: Option<u64>,
}

impl Received {
    /// The address of the conversation it belongs to: [`Received::conversation`] if set, else
    /// the sender.
    pub fn conversation(&self) -> &str {
        self.conversation.as_deref().unwrap_or(&self.sender)
    }

    /// The attachment records to store with this message.
    pub fn attachment_records(&self, now_ms: u64) -> Vec<AttachmentRecord> {
        self.attachments
            .iter()
            .zip(&self.pointers)
            .map(|(view, pointer)| AttachmentRecord {
                view: view.clone(),
                pointer: pointer.clone(),
                stored_bytes: 0,
                stored_at_ms: 0,
                created_at_ms: now_ms,
            })
            .collect()
    }
}

/// A message to queue: what [`super::Store::queue_outgoing`] writes to the outbox and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutgoing {
    /// The daemon's id for the message.
    pub message_id: String,
    /// The conversation's address: the recipient's Account ID, or the group whose swarm gets
    /// the payload.
    pub recipient: String,
    /// The text, for the event log.
    pub text: String,
    /// The message's Session timestamp, in milliseconds.
    pub sent_at_ms: u64,
    /// The bytes to store in the recipient's swarm (the sealed, encoded message).
    pub payload: Vec<u8>,
    /// The namespace to store it in (0 for one-to-one messages).
    pub namespace: i32,
    /// How long the swarm keeps it, in milliseconds.
    pub ttl_ms: u64,
    /// The client's idempotency key, if it gave one: a second queueing with the same key (for
    /// the same identity) writes nothing and returns the first one's [`SentKey`].
    pub idempotency_key: Option<String>,
    /// The copy for the identity's other devices, if the message gets one.
    pub sync_copy: Option<SyncCopy>,
    /// The quote and the disappearing timer it is sent with.
    pub extras: MessageExtras,
    /// Its attachments (uploaded), for the event log.
    pub attachments: Vec<AttachmentView>,
}

/// A sync copy (identity-and-messages §3.7): the same Content with `syncTarget` = the
/// recipient, sealed for the identity itself and stored in its own swarm (namespace 0), so the
/// account's other devices show the message as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCopy {
    /// The identity's own Account ID: the swarm the copy goes to.
    pub account: String,
    /// The sealed bytes for the identity's own swarm.
    pub payload: Vec<u8>,
    /// The hash the swarm will give them (known in advance: it depends only on the account,
    /// the namespace and the bytes), so the identity's own poller skips its own copy.
    pub hash: String,
}

/// What an idempotency key remembers of the message it first queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentKey {
    /// The daemon's id for the message.
    pub message_id: String,
    /// The seq of its `Outgoing` event.
    pub seq: u64,
    /// Its Session timestamp, in milliseconds.
    pub sent_at_ms: u64,
}

/// The outcome of [`super::Store::queue_outgoing`].
// Returned once per Send and consumed at once, never stored or moved around: boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Queued now: the `Outgoing` event and the outbox entry.
    New {
        /// The `Outgoing` event.
        event: StoredEvent,
        /// The outbox entry.
        entry: OutboxEntry,
    },
    /// The idempotency key was used before: nothing was written; the first message's facts.
    Duplicate(SentKey),
}

/// An outbox entry: a queued message waiting for the sender task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The outbox's own number for the entry (global, increasing).
    pub id: u64,
    /// The sending identity.
    pub identity: IdentityId,
    /// The daemon's id for the message.
    pub message_id: String,
    /// The conversation's address (the recipient's Account ID for a one-to-one message).
    pub recipient: String,
    /// The bytes to store in the recipient's swarm (base64 in the record; a JSON array of
    /// numbers in older ones, which read as well).
    #[serde(with = "payload_bytes")]
    pub payload: Vec<u8>,
    /// The namespace to store them in.
    pub namespace: i32,
    /// The message's Session timestamp, in milliseconds.
    pub sent_at_ms: u64,
    /// How long the swarm keeps it, in milliseconds.
    pub ttl_ms: u64,
    /// How many attempts were made so far.
    pub attempts: u32,
    /// Not before this time (milliseconds since the Unix epoch) is the next attempt due.
    pub next_try_ms: u64,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// The seq of the `Outgoing` event that recorded it.
    pub event_seq: u64,
    /// True: the message's sync copy, stored in the identity's own swarm (`recipient` is the
    /// identity itself); its outcome records no `Delivery` event (the message's own entry
    /// does). It is held (`next_try_ms` = [`HELD`]) until the message is sent. Absent (false)
    /// in older records.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_copy: bool,
    /// The outbox id of this message's held sync copy, if it has one: released (due at once)
    /// in the transaction that records this entry sent, removed in the one that records it
    /// failed, as the Session apps send the sync copy only after the message itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_copy: Option<u64>,
    /// True: a control message (a reaction, an unsend request, a receipt, a timer update, a
    /// request response, a notice) whose outcome records no `Delivery` event and is not counted
    /// as a message. Absent (false) in older records.
    #[serde(default, skip_serializing_if = "is_false")]
    pub control: bool,
}

/// The `next_try_ms` of a held outbox entry (a sync copy waiting for its message): never due.
pub const HELD: u64 = u64::MAX;

/// A conversation of an identity: one-to-one, group, community room or community DM (its kind
/// follows from its address, [`crate::address::Kind::of`]).
///
/// Records written before `accepted`, `left` and `read_seq` existed read as: accepted if the
/// identity ever wrote in it, not left, never marked read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(from = "ConversationJson")]
pub struct ConversationRecord {
    /// The conversation's address (stored as `peer`, its name from when every conversation
    /// was one-to-one).
    #[serde(rename = "peer")]
    pub address: String,
    /// The newest message event (incoming or outgoing) of this conversation.
    pub last_seq: u64,
    /// The newest message time either way, in milliseconds.
    pub last_activity_ms: u64,
    /// Messages received.
    pub incoming_count: u64,
    /// Messages queued.
    pub outgoing_count: u64,
    /// False for a message request: the other side wrote, the identity neither wrote back nor
    /// opened it (or it wrote again after the identity left).
    pub accepted: bool,
    /// The identity left it (Leave) and has not opened it or written in it since.
    pub left: bool,
    /// The seq up to which the user has read it; 0 if never marked.
    pub read_seq: u64,
    /// Explicitly marked unread (on another device of the account: its ConvoInfoVolatile
    /// `u` flag).
    pub unread: bool,
    /// The conversation's own name, for the kinds that have one (a group's name, a community
    /// room's name); `None` for person-to-person conversations, whose name is the contact's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// [`ConversationRecord`] as stored, with the fields later versions added made optional.
#[derive(Deserialize)]
struct ConversationJson {
    peer: String,
    last_seq: u64,
    last_activity_ms: u64,
    incoming_count: u64,
    outgoing_count: u64,
    #[serde(default)]
    accepted: Option<bool>,
    #[serde(default)]
    left: bool,
    #[serde(default)]
    read_seq: u64,
    #[serde(default)]
    unread: bool,
    title: Option<String>,
}

impl From<ConversationJson> for ConversationRecord {
    fn from(j: ConversationJson) -> Self {
        ConversationRecord {
            accepted: j.accepted.unwrap_or(j.outgoing_count > 0),
            address: j.peer,
            last_seq: j.last_seq,
            last_activity_ms: j.last_activity_ms,
            incoming_count: j.incoming_count,
            outgoing_count: j.outgoing_count,
            left: j.left,
            read_seq: j.read_seq,
            unread: j.unread,
            title: j.title,
        }
    }
}

/// A contact of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContactRecord {
    /// The contact's Account ID.
    pub account_id: String,
    /// The name the user gave it.
    pub name: Option<String>,
    /// The display name it announced.
    pub profile_name: Option<String>,
    /// Its handle, unique per identity case-insensitively (see `store::handles`). `None` only in
    /// records written before handles existed, until the store assigns one when it opens.
    #[serde(default)]
    pub handle: Option<String>,
    /// Blocked: its messages are kept out of the log (Block, or another device of the account
    /// through the Contacts config).
    #[serde(default, skip_serializing_if = "is_false")]
    pub blocked: bool,
    /// The account accepted it (the Contacts config's `a`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub approved: bool,
    /// It accepted the account (the Contacts config's `A`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub approved_me: bool,
}

/// A conversation joined with its contact (for a group or a room, a contact record of its
/// address that is never stored: no names, no handle): what the API shows as a
/// `Conversation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: ConversationRecord,
    /// Its contact.
    pub contact: ContactRecord,
}

impl ConversationView {
    /// The best name to show: the conversation's own name (a group's, a room's), else the
    /// contact's local name, else its profile name.
    pub fn display_name(&self) -> Option<&str> {
        self.conversation
            .title
            .as_deref()
            .or(self.contact.name.as_deref())
            .or(self.contact.profile_name.as_deref())
    }

    /// Whether a `ConversationChanged` event is due going from `before` to `self`: one of
    /// accepted, left, read_seq, the display name or the handle differs. (Message counts and
    /// times change with every message, whose own events say so.)
    pub fn changed(&self, before: &ConversationView) -> bool {
        let key = |v: &ConversationView| {
            (
                v.conversation.accepted,
                v.conversation.left,
                v.conversation.read_seq,
                v.display_name().map(str::to_owned),
                v.contact.handle.clone(),
                v.conversation.unread,
                v.contact.blocked,
            )
        };
        key(self) != key(before)
    }
}

/// An identity-scoped token, stored under the SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The identity it reaches.
    pub identity: IdentityId,
    /// The user's note.
    pub label: String,
    /// When it was made, in milliseconds.
    pub created_at_ms: u64,
}
