//! Joined community rooms and their poll cursors: one record per (identity, room address), one
//! per (identity, server) for the server's DM cursors. A room's message cursor moves in the same
//! transaction as the events its poll records ([`Store::record_room_poll`]), so a crash neither
//! loses nor repeats a post.

use std::collections::BTreeMap;

use rand::RngCore as _;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    book, decode, encode, require_identity, sync_copy_message_id, DeliveryState, EventKind,
    IdentityId, Log, Received, Store, StoreError, StoredEvent, TxError, SEEN_HASHES,
};

/// `community_rooms`: (identity id, room address) → JSON [`RoomRecord`].
pub(super) const ROOMS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("community_rooms");
/// `community_servers`: (identity id, canonical base URL) → JSON [`ServerCursors`].
pub(super) const SERVERS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("community_servers");

/// `community_peers`: (identity id, blinded ID `15…`) → the base URL of the server it was met
/// on (in a room or a DM), so a DM to it goes through that server.
pub(super) const PEERS: TableDefinition<'_, (u64, &str), &str> =
    TableDefinition::new("community_peers");

/// `community_accounts`: (identity id, blinded ID `15…`) → the Account ID (`05…`) behind it,
/// learnt from a DM it sent (whose key was checked against the blinded ID).
pub(super) const ACCOUNTS: TableDefinition<'_, (u64, &str), &str> =
    TableDefinition::new("community_accounts");

/// What the last successful poll said about a room and about us in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RoomState {
    /// Display name.
    pub name: String,
    /// Description (the topic).
    #[serde(default)]
    pub description: String,
    /// We may read.
    pub read: bool,
    /// We may post (false: read-only for us).
    pub write: bool,
    /// We moderate the room (room or global moderator or admin).
    #[serde(default)]
    pub moderator: bool,
    /// We administer the room.
    #[serde(default)]
    pub admin: bool,
    /// Visible moderators and admins (`15…`/`05…`).
    #[serde(default)]
    pub moderators: Vec<String>,
    /// Users active recently.
    #[serde(default)]
    pub active_users: u64,
    /// The room's `info_updates` counter.
    #[serde(default)]
    pub info_updates: i64,
}

/// A joined room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room's address: `<canonical base URL>/<lower-case token>` (the conversation).
    pub address: String,
    /// The canonical base URL.
    pub base_url: String,
    /// The room token as joined (display spelling).
    pub token: String,
    /// The server's X25519 key, hex.
    pub pubkey: String,
    /// When it was joined, ms.
    pub joined_at_ms: u64,
    /// The messages cursor: the largest seqno seen (`None` before the first poll).
    #[serde(default)]
    pub seqno: Option<i64>,
    /// What the last poll said (`None` before the first successful one).
    #[serde(default)]
    pub state: Option<RoomState>,
    /// When a poll last succeeded, ms (0: never).
    #[serde(default)]
    pub last_poll_ms: u64,
    /// Why the last poll failed (empty: it did not).
    #[serde(default)]
    pub last_error: String,
}

/// A server's DM cursors (the inbox and outbox are per server, not per room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServerCursors {
    /// The largest inbox message id handled.
    pub inbox: Option<i64>,
    /// The largest outbox message id handled.
    pub outbox: Option<i64>,
}

/// One row of a room's poll, checked (signatures verified, Content decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomItem {
    /// A post, new or edited.
    Post {
        /// The server's id.
        server_id: i64,
        /// Its event counter.
        seqno: i64,
        /// Whether the identity itself posted it (from this or another device).
        own: bool,
        /// The poster's blinded ID.
        sender: String,
        /// The text.
        text: String,
        /// The server's time, ms.
        posted_ms: u64,
        /// When edited, ms.
        edited_ms: Option<u64>,
        /// The display name in the post's profile.
        profile_name: Option<String>,
    },
    /// A post was deleted.
    Deleted {
        /// The server's id.
        server_id: i64,
        /// Its event counter.
        seqno: i64,
    },
    /// A post's reactions changed.
    Reactions {
        /// The server's id.
        server_id: i64,
        /// Its event counter.
        seqno: i64,
        /// emoji → (count, whether the identity reacted).
        reactions: BTreeMap<String, (u64, bool)>,
        /// emoji → the first reactors the server listed.
        reactors: BTreeMap<String, Vec<String>>,
    },
}

impl RoomItem {
    /// The row's event counter.
    pub fn seqno(&self) -> i64 {
        match self {
            RoomItem::Post { seqno, .. }
            | RoomItem::Deleted { seqno, .. }
            | RoomItem::Reactions { seqno, .. } => *seqno,
        }
    }
}

/// What one poll of a room brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPoll {
    /// The rows, oldest first.
    pub items: Vec<RoomItem>,
    /// The new cursor (the largest seqno seen, good rows or not).
    pub seqno: Option<i64>,
    /// The room's info and our permissions, when the poll read them.
    pub state: Option<RoomState>,
    /// Why part of the poll failed (404: the room is gone; 403: no access).
    pub error: Option<String>,
}

/// The dedupe key of a room post (an edit has its own).
fn post_hash(address: &str, server_id: i64, edit_seqno: Option<i64>) -> String {
    match edit_seqno {
        Some(s) => format!("sogs:{address}:{server_id}:e{s}"),
        None => format!("sogs:{address}:{server_id}"),
    }
}

/// The dedupe key of a community DM.
fn dm_hash(base_url: &str, outgoing: bool, server_id: i64) -> String {
    let way = if outgoing { "out" } else { "in" };
    format!("sogs-dm:{base_url}:{way}:{server_id}")
}

fn new_message_id() -> String {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    hex::encode(id)
}

/// Appends the `Outgoing` (and, for this daemon's own, `Delivery` SENT) events of a post or
/// DM the server accepted, marks its hash seen and updates the conversation. Returns the
/// message id and the `Outgoing` event's seq.
#[allow(clippy::too_many_arguments)]
fn record_sent(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    conversation: &str,
    hash: &str,
    message_id: String,
    server_id: i64,
    text: &str,
    sent_at_ms: u64,
    from_other_device: bool,
    now_ms: u64,
    added: &mut Vec<StoredEvent>,
) -> Result<(), TxError> {
    let mut log = Log::open(tx)?;
    let event = log.append(
        identity,
        now_ms,
        EventKind::Outgoing {
            message_id: message_id.clone(),
            recipient: conversation.to_owned(),
            text: text.to_owned(),
            sent_at_ms,
            from_other_device,
            extras: Default::default(),
            attachments: Vec::new(),
            server_id: Some(server_id),
        },
    )?;
    tx.open_table(SEEN_HASHES)?
        .insert((identity, hash), event.seq)?;
    let seq = event.seq;
    added.push(event);
    if !from_other_device {
        added.push(log.append(
            identity,
            now_ms,
            EventKind::Delivery {
                message_id,
                recipient: conversation.to_owned(),
                state: DeliveryState::Sent,
                hash: Some(server_id.to_string()),
                reason: None,
                attempts: 1,
                message_seq: None,
            },
        )?);
    }
    let mut book = book::Book::open(tx)?;
    added.extend(book.message(
        &mut log,
        identity,
        conversation,
        book::Message::Outgoing,
        seq,
        sent_at_ms,
        now_ms,
    )?);
    Ok(())
}

/// Appends an `Incoming` event for a room post or DM (unless its hash was seen) and updates
/// the conversation.
fn record_incoming(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    msg: Received,
    now_ms: u64,
    added: &mut Vec<StoredEvent>,
) -> Result<(), TxError> {
    let mut seen = tx.open_table(SEEN_HASHES)?;
    if seen.get((identity, msg.hash.as_str()))?.is_some() {
        return Ok(());
    }
    let mut log = Log::open(tx)?;
    let conversation = room_conversation(&msg).to_owned();
    let (hash, at, profile) = (
        msg.hash.clone(),
        msg.sent_at_ms,
        msg.sender_profile_name.clone(),
    );
    let event = log.append(identity, now_ms, EventKind::Incoming(msg))?;
    seen.insert((identity, hash.as_str()), event.seq)?;
    drop(seen);
    let seq = event.seq;
    added.push(event);
    let mut book = book::Book::open(tx)?;
    added.extend(book.message(
        &mut log,
        identity,
        &conversation,
        book::Message::Incoming {
            profile_name: profile.as_deref(),
        },
        seq,
        at,
        now_ms,
    )?);
    Ok(())
}

/// Appends a deletion or reaction event unless its key was seen.
fn record_update(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    hash: &str,
    kind: EventKind,
    now_ms: u64,
    added: &mut Vec<StoredEvent>,
) -> Result<(), TxError> {
    let mut seen = tx.open_table(SEEN_HASHES)?;
    if seen.get((identity, hash))?.is_some() {
        return Ok(());
    }
    let mut log = Log::open(tx)?;
    let event = log.append(identity, now_ms, kind)?;
    seen.insert((identity, hash), event.seq)?;
    added.push(event);
    Ok(())
}

impl Store {
    /// Records what one poll of a room brought, in one transaction: an `Incoming` event per new
    /// post or edit (this identity's own posts from another device as `Outgoing` with
    /// `from_other_device`), a `RoomDeleted` per deletion, a `RoomReactions` per reaction
    /// change, the room's new cursor, info and error. Nothing is recorded for a room that is
    /// no longer joined. Returns the new events.
    pub fn record_room_poll(
        &self,
        identity: IdentityId,
        address: &str,
        poll: &RoomPoll,
        now_ms: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let added = self.write("recording a community room poll", |tx| {
            let mut rooms = tx.open_table(ROOMS)?;
            let Some(v) = rooms.get((identity, address))? else {
                return Ok(Vec::new());
            };
            let mut room: RoomRecord = decode("community room", v.value())?;
            drop(v);
            let mut added = Vec::new();
            for item in &poll.items {
                match item {
                    RoomItem::Post {
                        server_id,
                        seqno,
                        own,
                        sender,
                        text,
                        posted_ms,
                        edited_ms,
                        profile_name,
                    } => {
                        let hash = post_hash(address, *server_id, edited_ms.map(|_| *seqno));
                        if *own {
                            if tx
                                .open_table(SEEN_HASHES)?
                                .get((identity, hash.as_str()))?
                                .is_none()
                            {
                                record_sent(
                                    tx,
                                    identity,
                                    address,
                                    &hash,
                                    sync_copy_message_id(&hash),
                                    *server_id,
                                    text,
                                    *posted_ms,
                                    true,
                                    now_ms,
                                    &mut added,
                                )?;
                            }
                            continue;
                        }
                        tx.open_table(PEERS)?
                            .insert((identity, sender.as_str()), room.base_url.as_str())?;
                        let msg = room_received(
                            sender.clone(),
                            address.to_owned(),
                            text.clone(),
                            *posted_ms,
                            now_ms,
                            hash,
                            profile_name.clone(),
                            *server_id,
                            *edited_ms,
                        );
                        record_incoming(tx, identity, msg, now_ms, &mut added)?;
                    }
                    RoomItem::Deleted { server_id, .. } => record_update(
                        tx,
                        identity,
                        &format!("sogs:{address}:{server_id}:d"),
                        EventKind::RoomDeleted {
                            conversation: address.to_owned(),
                            server_id: *server_id,
                        },
                        now_ms,
                        &mut added,
                    )?,
                    RoomItem::Reactions {
                        server_id,
                        seqno,
                        reactions,
                        reactors,
                    } => record_update(
                        tx,
                        identity,
                        &format!("sogs:{address}:{server_id}:r{seqno}"),
                        EventKind::RoomReactions {
                            conversation: address.to_owned(),
                            server_id: *server_id,
                            reactions: reactions
                                .iter()
                                .map(|(e, (n, you))| (e.clone(), *n, *you))
                                .collect(),
                            reactors: reactors.clone(),
                        },
                        now_ms,
                        &mut added,
                    )?,
                }
            }
            if poll.seqno.is_some() {
                room.seqno = poll.seqno;
            }
            if let Some(state) = &poll.state {
                room.state = Some(state.clone());
            }
            match &poll.error {
                Some(e) => room.last_error = e.clone(),
                None => {
                    room.last_error.clear();
                    room.last_poll_ms = now_ms;
                }
            }
            rooms.insert((identity, address), encode(&room).as_slice())?;
            Ok(added)
        })?;
        if let Some(last) = added.last() {
            self.wake(identity, last.seq);
        }
        Ok(added)
    }

    /// Records a post this daemon made and the server accepted: `Outgoing` (with the server's
    /// id) and `Delivery` SENT, in one transaction; the poll that reads the post back skips it.
    /// Returns the message id and the `Outgoing` event's seq.
    pub fn record_community_sent(
        &self,
        identity: IdentityId,
        address: &str,
        server_id: i64,
        text: &str,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<(String, u64), StoreError> {
        let hash = post_hash(address, server_id, None);
        self.record_server_sent(
            "recording a community post",
            identity,
            address,
            None,
            &hash,
            server_id,
            text,
            sent_at_ms,
            now_ms,
        )
    }

    /// [`Store::record_community_sent`] for a community DM to `peer` (`15…`) through the server
    /// at `base_url`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_community_dm_sent(
        &self,
        identity: IdentityId,
        base_url: &str,
        peer: &str,
        server_id: i64,
        text: &str,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<(String, u64), StoreError> {
        let hash = dm_hash(base_url, true, server_id);
        self.record_server_sent(
            "recording a community DM",
            identity,
            peer,
            Some(base_url),
            &hash,
            server_id,
            text,
            sent_at_ms,
            now_ms,
        )
    }

    /// Records what this identity sent through a community server (a room post, or a DM when
    /// `dm_server` names the server the `15…` peer is reached through) and wakes the readers;
    /// returns the new message id and its event's seq.
    #[allow(clippy::too_many_arguments)]
    fn record_server_sent(
        &self,
        what: &'static str,
        identity: IdentityId,
        conversation: &str,
        dm_server: Option<&str>,
        hash: &str,
        server_id: i64,
        text: &str,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<(String, u64), StoreError> {
        let message_id = new_message_id();
        let added = self.write(what, |tx| {
            require_identity(tx, identity)?;
            if let Some(base_url) = dm_server {
                tx.open_table(PEERS)?
                    .insert((identity, conversation), base_url)?;
            }
            let mut added = Vec::new();
            record_sent(
                tx,
                identity,
                conversation,
                hash,
                message_id.clone(),
                server_id,
                text,
                sent_at_ms,
                false,
                now_ms,
                &mut added,
            )?;
            Ok(added)
        })?;
        let seq = added.first().map_or(0, |e| e.seq);
        if let Some(last) = added.last() {
            self.wake(identity, last.seq);
        }
        Ok((message_id, seq))
    }

    /// Records the community DMs of one poll of a server (incoming as `Incoming` in the
    /// conversation with the sender's blinded ID; outgoing ones another device sent as
    /// `Outgoing` with `from_other_device`) and the server's new DM cursors, in one
    /// transaction.
    pub fn record_community_dms(
        &self,
        identity: IdentityId,
        base_url: &str,
        dms: &crate::engine::community::DmPoll,
        now_ms: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let added = self.write("recording community DMs", |tx| {
            require_identity(tx, identity)?;
            let mut added = Vec::new();
            for dm in &dms.items {
                tx.open_table(PEERS)?
                    .insert((identity, dm.peer.as_str()), base_url)?;
                let hash = dm_hash(base_url, dm.outgoing, dm.server_id);
                if dm.outgoing {
                    if tx
                        .open_table(SEEN_HASHES)?
                        .get((identity, hash.as_str()))?
                        .is_none()
                    {
                        record_sent(
                            tx,
                            identity,
                            &dm.peer,
                            &hash,
                            sync_copy_message_id(&hash),
                            dm.server_id,
                            &dm.text,
                            dm.posted_ms,
                            true,
                            now_ms,
                            &mut added,
                        )?;
                    }
                    continue;
                }
                if !dm.sender_account.is_empty() {
                    tx.open_table(ACCOUNTS)?
                        .insert((identity, dm.peer.as_str()), dm.sender_account.as_str())?;
                }
                let msg = dm_received(
                    dm.peer.clone(),
                    dm.text.clone(),
                    dm.posted_ms,
                    now_ms,
                    hash,
                    dm.profile_name.clone(),
                    dm.server_id,
                );
                record_incoming(tx, identity, msg, now_ms, &mut added)?;
            }
            let mut servers = tx.open_table(SERVERS)?;
            let mut cursors: ServerCursors = match servers.get((identity, base_url))? {
                Some(v) => decode("community server", v.value())?,
                None => ServerCursors::default(),
            };
            cursors.inbox = dms.inbox.max(cursors.inbox);
            cursors.outbox = dms.outbox.max(cursors.outbox);
            servers.insert((identity, base_url), encode(&cursors).as_slice())?;
            Ok(added)
        })?;
        if let Some(last) = added.last() {
            self.wake(identity, last.seq);
        }
        Ok(added)
    }

    /// The base URL of the server a blinded ID was met on, if it was.
    pub fn community_peer(
        &self,
        identity: IdentityId,
        blinded: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read("reading a community peer", |tx| {
            let t = tx.open_table(PEERS)?;
            let v = t.get((identity, blinded))?;
            Ok(v.map(|v| v.value().to_owned()))
        })
    }

    /// The Account ID behind a blinded ID, if a DM from it revealed it.
    pub fn community_account(
        &self,
        identity: IdentityId,
        blinded: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read("reading a community account", |tx| {
            let t = tx.open_table(ACCOUNTS)?;
            let v = t.get((identity, blinded))?;
            Ok(v.map(|v| v.value().to_owned()))
        })
    }

    /// The identity's joined rooms, by address.
    pub fn community_rooms(&self, identity: IdentityId) -> Result<Vec<RoomRecord>, StoreError> {
        self.read("listing community rooms", |tx| {
            let t = tx.open_table(ROOMS)?;
            let mut out = Vec::new();
            for row in t.range((identity, "")..)? {
                let (k, v) = row?;
                if k.value().0 != identity {
                    break;
                }
                out.push(decode("community room", v.value())?);
            }
            Ok(out)
        })
    }

    /// One joined room, if joined.
    pub fn community_room(
        &self,
        identity: IdentityId,
        address: &str,
    ) -> Result<Option<RoomRecord>, StoreError> {
        self.read("reading a community room", |tx| {
            let t = tx.open_table(ROOMS)?;
            let v = t.get((identity, address))?;
            Ok(match v {
                Some(v) => Some(decode("community room", v.value())?),
                None => None,
            })
        })
    }

    /// Adds a room unless joined already; true if it was added.
    pub fn join_community_room(
        &self,
        identity: IdentityId,
        room: &RoomRecord,
    ) -> Result<bool, StoreError> {
        self.write("joining a community room", |tx| {
            require_identity(tx, identity)?;
            let mut t = tx.open_table(ROOMS)?;
            if t.get((identity, room.address.as_str()))?.is_some() {
                return Ok(false);
            }
            t.insert((identity, room.address.as_str()), encode(room).as_slice())?;
            Ok(true)
        })
    }

    /// Removes a room (its events stay); true if it was joined. The server's DM cursors go
    /// with its last room.
    pub fn leave_community_room(
        &self,
        identity: IdentityId,
        address: &str,
    ) -> Result<bool, StoreError> {
        self.write("leaving a community room", |tx| {
            let mut t = tx.open_table(ROOMS)?;
            let old: RoomRecord = match t.remove((identity, address))? {
                Some(v) => decode("community room", v.value())?,
                None => return Ok(false),
            };
            let mut others = false;
            for row in t.range((identity, "")..)? {
                let (k, v) = row?;
                if k.value().0 != identity {
                    break;
                }
                let r: RoomRecord = decode("community room", v.value())?;
                others |= r.base_url == old.base_url;
            }
            if !others {
                tx.open_table(SERVERS)?
                    .remove((identity, old.base_url.as_str()))?;
            }
            Ok(true)
        })
    }

    /// Changes a joined room's record with `f` (nothing if it is not joined); returns the new
    /// record.
    pub fn update_community_room(
        &self,
        identity: IdentityId,
        address: &str,
        f: impl FnOnce(&mut RoomRecord),
    ) -> Result<Option<RoomRecord>, StoreError> {
        self.write("updating a community room", |tx| {
            let mut t = tx.open_table(ROOMS)?;
            let old = match t.get((identity, address))? {
                Some(v) => decode::<RoomRecord>("community room", v.value())?,
                None => return Ok(None),
            };
            let mut new = old.clone();
            f(&mut new);
            if new != old {
                t.insert((identity, address), encode(&new).as_slice())?;
            }
            Ok(Some(new))
        })
    }

    /// A server's DM cursors (default: none yet).
    pub fn community_server(
        &self,
        identity: IdentityId,
        base_url: &str,
    ) -> Result<ServerCursors, StoreError> {
        self.read("reading community DM cursors", |tx| {
            let t = tx.open_table(SERVERS)?;
            let v = t.get((identity, base_url))?;
            Ok(match v {
                Some(v) => decode("community server", v.value())?,
                None => ServerCursors::default(),
            })
        })
    }
}

/// Removes every room and server record of an identity (part of removing it).
pub(super) fn forget_identity(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
) -> Result<(), TxError> {
    tx.open_table(ROOMS)?
        .retain(|(owner, _), _| owner != identity)?;
    tx.open_table(SERVERS)?
        .retain(|(owner, _), _| owner != identity)?;
    tx.open_table(PEERS)?
        .retain(|(owner, _), _| owner != identity)?;
    tx.open_table(ACCOUNTS)?
        .retain(|(owner, _), _| owner != identity)?;
    Ok(())
}

/// The conversation a room post or DM belongs to.
fn room_conversation(msg: &Received) -> &str {
    msg.conversation()
}

/// A room post as a received message in the room's conversation.
#[allow(clippy::too_many_arguments)]
fn room_received(
    sender: String,
    room: String,
    text: String,
    posted_ms: u64,
    now_ms: u64,
    hash: String,
    profile_name: Option<String>,
    server_id: i64,
    edited_at_ms: Option<u64>,
) -> Received {
    Received {
        sender,
        conversation: Some(room),
        text,
        sent_at_ms: posted_ms,
        received_at_ms: now_ms,
        hash,
        sender_profile_name: profile_name,
        sync_target: None,
        server_id: Some(server_id),
        edited_at_ms,
        extras: Default::default(),
        attachments: Vec::new(),
        pointers: Vec::new(),
    }
}

/// A community DM as a received message in the conversation with its sender (`15…`).
fn dm_received(
    sender: String,
    text: String,
    posted_ms: u64,
    now_ms: u64,
    hash: String,
    profile_name: Option<String>,
    server_id: i64,
) -> Received {
    Received {
        sender,
        conversation: None,
        text,
        sent_at_ms: posted_ms,
        received_at_ms: now_ms,
        hash,
        sender_profile_name: profile_name,
        sync_target: None,
        server_id: Some(server_id),
        edited_at_ms: None,
        extras: Default::default(),
        attachments: Vec::new(),
        pointers: Vec::new(),
    }
}
