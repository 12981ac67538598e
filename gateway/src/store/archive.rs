//! An identity's rows in and out of the store, as they are stored, for `sessiond export` and
//! `sessiond import` (the file format is [`crate::archive`]'s).
//!
//! Rows are copied as stored (the JSON records byte for byte, keys as they are), so an import
//! reproduces the identity's history exactly, whatever fields the records have, and the event
//! log keeps its seqs, times and log epoch (the identity keeps its store number and creation
//! time).
//!
//! Besides the history, the rows carry what the identity needs to go on where it was: its
//! groups (with their keys), community rooms, servers (cursors) and the blinded IDs met there,
//! disappearing-message settings and schedules, swarm chores and settings, and its
//! attachments' records. Attachment *files* are not in the archive: an attachment that had a
//! local copy is exported as `pending` (not downloaded, its size and time of the copy cleared),
//! so the imported daemon downloads it again from its pointer on request, while the file server
//! still has it. The one exception to "as stored".

use redb::{ReadableTable, ReadableTableMetadata};
use zeroize::Zeroizing;

use super::community::{ACCOUNTS, PEERS, ROOMS, SERVERS};
use super::files::{insert_records, AttachmentRecord, AttachmentState, ATTACHMENTS};
use super::groups::GROUPS;
use super::interactions::{DISAPPEARING, EXPIRIES, EXPIRY_BY_SEQ, SETTINGS, SWARM_CHORES};
use super::{
    decode, encode, IdentityRecord, Store, StoreError, TxError, CONFIG_DUMPS, CONTACTS,
    CONVERSATIONS, CURSORS, EVENTS, HANDLES, IDENTITIES, IDENTITY_NAMES, META, NEXT_IDENTITY_KEY,
    PEER_EVENTS, SEEDS, SEEN_HASHES,
};

/// The tables of JSON records keyed by (identity, a string) that an archive carries besides
/// conversations and contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTable {
    /// `groups`: group ID → [`super::GroupRecord`] (with its admin seed or auth data and the
    /// keys messages it loaded).
    Groups,
    /// `community_rooms`: room address → [`super::RoomRecord`].
    Rooms,
    /// `community_servers`: base URL → [`super::ServerCursors`].
    Servers,
    /// `attachments`: attachment id → [`AttachmentRecord`].
    Attachments,
    /// `disappearing`: conversation → [`super::ExpirySetting`].
    Disappearing,
    /// `swarm_chores`: message hash → [`super::Chore`].
    Chores,
}

impl RecordTable {
    /// Every table, in export order.
    pub const ALL: [RecordTable; 6] = [
        RecordTable::Groups,
        RecordTable::Rooms,
        RecordTable::Servers,
        RecordTable::Attachments,
        RecordTable::Disappearing,
        RecordTable::Chores,
    ];

    /// Its name in the archive (the store's table name).
    pub fn name(self) -> &'static str {
        match self {
            RecordTable::Groups => "groups",
            RecordTable::Rooms => "community_rooms",
            RecordTable::Servers => "community_servers",
            RecordTable::Attachments => "attachments",
            RecordTable::Disappearing => "disappearing",
            RecordTable::Chores => "swarm_chores",
        }
    }

    /// The table of that name.
    pub fn from_name(name: &str) -> Option<RecordTable> {
        RecordTable::ALL.into_iter().find(|t| t.name() == name)
    }

    fn definition(self) -> redb::TableDefinition<'static, (u64, &'static str), &'static [u8]> {
        match self {
            RecordTable::Groups => GROUPS,
            RecordTable::Rooms => ROOMS,
            RecordTable::Servers => SERVERS,
            RecordTable::Attachments => ATTACHMENTS,
            RecordTable::Disappearing => DISAPPEARING,
            RecordTable::Chores => SWARM_CHORES,
        }
    }

    /// Checks that a record decodes as this build's type for the table.
    fn check(self, json: &[u8]) -> Result<(), StoreError> {
        match self {
            RecordTable::Groups => decode::<super::GroupRecord>("group", json).map(|_| ()),
            RecordTable::Rooms => decode::<super::RoomRecord>("community room", json).map(|_| ()),
            RecordTable::Servers => {
                decode::<super::ServerCursors>("community server", json).map(|_| ())
            }
            RecordTable::Attachments => decode::<AttachmentRecord>("attachment", json).map(|_| ()),
            RecordTable::Disappearing => {
                decode::<super::ExpirySetting>("disappearing setting", json).map(|_| ())
            }
            RecordTable::Chores => decode::<super::Chore>("swarm chore", json).map(|_| ()),
        }
    }
}

/// An attachment record as exported: one with a local copy becomes `pending` (the archive has
/// no files; see the module docs).
fn without_local_copy(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut r: AttachmentRecord = decode("attachment", json)?;
    let local = r.stored_bytes > 0
        || matches!(
            r.view.state,
            AttachmentState::Downloaded | AttachmentState::Uploaded
        );
    if !local {
        return Ok(json.to_vec());
    }
    r.view.state = AttachmentState::Pending;
    r.view.reason = None;
    r.stored_bytes = 0;
    r.stored_at_ms = 0;
    Ok(encode(&r))
}

/// One row of an identity's data, as stored (the identity's id is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// `events`: seq → the event's JSON.
    Event {
        /// The seq.
        seq: u64,
        /// The stored JSON.
        json: Vec<u8>,
    },
    /// `peer_events`: the per-conversation index.
    Index {
        /// The conversation key.
        peer: String,
        /// The seq.
        seq: u64,
    },
    /// `seen_hashes`: a message hash already recorded.
    Seen {
        /// The hash.
        hash: String,
        /// The seq that recorded it.
        seq: u64,
    },
    /// `cursors`: a poller's last hash.
    Cursor {
        /// The namespace.
        namespace: i32,
        /// The last hash.
        last_hash: String,
    },
    /// `conversations`: key → the stored JSON.
    Conversation {
        /// The conversation key.
        key: String,
        /// The stored JSON.
        json: Vec<u8>,
    },
    /// `contacts`: Account ID → the stored JSON.
    Contact {
        /// The Account ID.
        key: String,
        /// The stored JSON.
        json: Vec<u8>,
    },
    /// `contact_handles`: lowercase handle → Account ID.
    Handle {
        /// The lowercase handle.
        handle: String,
        /// The Account ID.
        account_id: String,
    },
    /// `config_dumps`: a config's saved state.
    ConfigDump {
        /// The namespace.
        namespace: i32,
        /// The dump.
        dump: Vec<u8>,
    },
    /// A JSON record of one of the [`RecordTable`]s.
    Record {
        /// Its table.
        table: RecordTable,
        /// Its key (after the identity).
        key: String,
        /// The stored JSON.
        json: Vec<u8>,
    },
    /// `community_peers`: a blinded ID and the server it was met on.
    Peer {
        /// The blinded ID (`15…`).
        blinded: String,
        /// The server's base URL.
        base_url: String,
    },
    /// `community_accounts`: a blinded ID and the Account ID a DM from it revealed.
    Account {
        /// The blinded ID (`15…`).
        blinded: String,
        /// The Account ID (`05…`).
        account_id: String,
    },
    /// `identity_settings`: the identity's settings (JSON).
    Settings {
        /// The stored JSON.
        json: Vec<u8>,
    },
    /// `expiries` (and `expiry_by_seq`): a message's scheduled purge.
    Expiry {
        /// When it is due, ms.
        at_ms: u64,
        /// The message's seq.
        seq: u64,
        /// The stored JSON.
        json: Vec<u8>,
    },
}

/// An identity's record and seed, and its rows.
#[derive(Debug)]
pub struct IdentityRows {
    /// The identity record as stored (JSON).
    pub identity_json: Vec<u8>,
    /// The record, decoded.
    pub identity: IdentityRecord,
    /// The seed.
    pub seed: Zeroizing<[u8; 32]>,
    /// The rows, events in seq order first.
    pub rows: Vec<Row>,
}

impl Store {
    /// Reads an identity's record, seed and rows in one read transaction. `keep_event` decides
    /// which events (by their stored JSON) are included; the index rows follow the events.
    pub fn identity_rows(
        &self,
        name: &str,
        keep_event: impl Fn(&[u8]) -> bool,
    ) -> Result<IdentityRows, StoreError> {
        let record = self.identity(name)?;
        let seed = self.identity_seed(name)?;
        let id = record.id;
        self.read("reading an identity for export", |tx| {
            let identity_json = tx
                .open_table(IDENTITIES)?
                .get(id)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| StoreError::UnknownIdentity {
                    name: name.to_owned(),
                })?;
            let mut rows = Vec::new();
            let mut kept = std::collections::HashSet::new();
            for row in tx.open_table(EVENTS)?.range((id, 0)..=(id, u64::MAX))? {
                let (k, v) = row?;
                if keep_event(v.value()) {
                    kept.insert(k.value().1);
                    rows.push(Row::Event {
                        seq: k.value().1,
                        json: v.value().to_vec(),
                    });
                }
            }
            for row in tx.open_table(PEER_EVENTS)?.iter()? {
                let (k, _) = row?;
                let (owner, peer, seq) = k.value();
                if owner == id && kept.contains(&seq) {
                    rows.push(Row::Index {
                        peer: peer.to_owned(),
                        seq,
                    });
                }
            }
            for row in tx.open_table(SEEN_HASHES)?.iter()? {
                let (k, v) = row?;
                let (owner, hash) = k.value();
                if owner == id {
                    rows.push(Row::Seen {
                        hash: hash.to_owned(),
                        seq: v.value(),
                    });
                }
            }
            for row in tx
                .open_table(CURSORS)?
                .range((id, i32::MIN)..=(id, i32::MAX))?
            {
                let (k, v) = row?;
                rows.push(Row::Cursor {
                    namespace: k.value().1,
                    last_hash: v.value().to_owned(),
                });
            }
            for row in tx.open_table(CONVERSATIONS)?.iter()? {
                let (k, v) = row?;
                if k.value().0 == id {
                    rows.push(Row::Conversation {
                        key: k.value().1.to_owned(),
                        json: v.value().to_vec(),
                    });
                }
            }
            for row in tx.open_table(CONTACTS)?.iter()? {
                let (k, v) = row?;
                if k.value().0 == id {
                    rows.push(Row::Contact {
                        key: k.value().1.to_owned(),
                        json: v.value().to_vec(),
                    });
                }
            }
            for row in tx.open_table(HANDLES)?.iter()? {
                let (k, v) = row?;
                if k.value().0 == id {
                    rows.push(Row::Handle {
                        handle: k.value().1.to_owned(),
                        account_id: v.value().to_owned(),
                    });
                }
            }
            for row in tx
                .open_table(CONFIG_DUMPS)?
                .range((id, i32::MIN)..=(id, i32::MAX))?
            {
                let (k, v) = row?;
                // In plain: the importing store seals them its own way.
                let aad = super::lock::dump_record(id, k.value().1);
                rows.push(Row::ConfigDump {
                    namespace: k.value().1,
                    dump: self.open_record(&aad, v.value())?,
                });
            }
            for table in RecordTable::ALL {
                for row in tx.open_table(table.definition())?.range((id, "")..)? {
                    let (k, v) = row?;
                    if k.value().0 != id {
                        break;
                    }
                    let json = match table {
                        RecordTable::Attachments => without_local_copy(v.value())?,
                        RecordTable::Groups => {
                            let aad = super::lock::group_record(id, k.value().1);
                            self.open_record(&aad, v.value())?
                        }
                        _ => v.value().to_vec(),
                    };
                    rows.push(Row::Record {
                        table,
                        key: k.value().1.to_owned(),
                        json,
                    });
                }
            }
            for row in tx.open_table(PEERS)?.range((id, "")..)? {
                let (k, v) = row?;
                if k.value().0 != id {
                    break;
                }
                rows.push(Row::Peer {
                    blinded: k.value().1.to_owned(),
                    base_url: v.value().to_owned(),
                });
            }
            for row in tx.open_table(ACCOUNTS)?.range((id, "")..)? {
                let (k, v) = row?;
                if k.value().0 != id {
                    break;
                }
                rows.push(Row::Account {
                    blinded: k.value().1.to_owned(),
                    account_id: v.value().to_owned(),
                });
            }
            if let Some(v) = tx.open_table(SETTINGS)?.get(id)? {
                rows.push(Row::Settings {
                    json: v.value().to_vec(),
                });
            }
            for row in tx
                .open_table(EXPIRIES)?
                .range((id, 0, 0)..=(id, u64::MAX, u64::MAX))?
            {
                let (k, v) = row?;
                let (_, at_ms, seq) = k.value();
                if kept.contains(&seq) {
                    rows.push(Row::Expiry {
                        at_ms,
                        seq,
                        json: v.value().to_vec(),
                    });
                }
            }
            Ok(IdentityRows {
                identity_json,
                identity: record,
                seed,
                rows,
            })
        })
    }

    /// Writes an exported identity into this store, which must hold no identity yet, in one
    /// transaction: the identity keeps its number, so its log keeps its epoch.
    pub fn import_identity(&self, data: &IdentityRows) -> Result<(), StoreError> {
        let id = data.identity.id;
        self.write("importing an identity", |tx| {
            if tx.open_table(IDENTITIES)?.len()? > 0 {
                return Err(StoreError::BadRecord {
                    what: "import",
                    detail: "the store holds identities already; import into a fresh data dir"
                        .to_owned(),
                }
                .into());
            }
            // The record must decode as this build's identity record.
            let _: IdentityRecord = decode("identity", &data.identity_json)?;
            tx.open_table(IDENTITY_NAMES)?
                .insert(data.identity.name.as_str(), id)?;
            tx.open_table(IDENTITIES)?
                .insert(id, data.identity_json.as_slice())?;
            let sealed = self.seal_seed(tx, id, &data.seed)?;
            tx.open_table(SEEDS)?.insert(id, sealed.as_slice())?;
            tx.open_table(META)?
                .insert(NEXT_IDENTITY_KEY, id.saturating_add(1))?;
            let mut events = tx.open_table(EVENTS)?;
            let mut index = tx.open_table(PEER_EVENTS)?;
            let mut seen = tx.open_table(SEEN_HASHES)?;
            let mut cursors = tx.open_table(CURSORS)?;
            let mut conversations = tx.open_table(CONVERSATIONS)?;
            let mut contacts = tx.open_table(CONTACTS)?;
            let mut handles = tx.open_table(HANDLES)?;
            let mut dumps = tx.open_table(CONFIG_DUMPS)?;
            let mut peers = tx.open_table(PEERS)?;
            let mut accounts = tx.open_table(ACCOUNTS)?;
            let mut settings = tx.open_table(SETTINGS)?;
            let mut expiries = tx.open_table(EXPIRIES)?;
            let mut by_seq = tx.open_table(EXPIRY_BY_SEQ)?;
            for row in &data.rows {
                match row {
                    Row::Event { seq, json } => {
                        events.insert((id, *seq), json.as_slice())?;
                    }
                    Row::Index { peer, seq } => {
                        index.insert((id, peer.as_str(), *seq), ())?;
                    }
                    Row::Seen { hash, seq } => {
                        seen.insert((id, hash.as_str()), *seq)?;
                    }
                    Row::Cursor {
                        namespace,
                        last_hash,
                    } => {
                        cursors.insert((id, *namespace), last_hash.as_str())?;
                    }
                    Row::Conversation { key, json } => {
                        conversations.insert((id, key.as_str()), json.as_slice())?;
                    }
                    Row::Contact { key, json } => {
                        contacts.insert((id, key.as_str()), json.as_slice())?;
                    }
                    Row::Handle { handle, account_id } => {
                        handles.insert((id, handle.as_str()), account_id.as_str())?;
                    }
                    Row::ConfigDump { namespace, dump } => {
                        let aad = super::lock::dump_record(id, *namespace);
                        let value = self.seal_record(tx, &aad, dump)?;
                        dumps.insert((id, *namespace), value.as_slice())?;
                    }
                    Row::Record { table, key, json } => {
                        table.check(json)?;
                        if *table == RecordTable::Attachments {
                            // With its local-link token.
                            let r: AttachmentRecord = decode("attachment", json)?;
                            if r.view.id != *key {
                                return Err(StoreError::BadRecord {
                                    what: "import",
                                    detail: "an attachment's key is not its id".to_owned(),
                                }
                                .into());
                            }
                            insert_records(tx, id, std::slice::from_ref(&r))?;
                        } else {
                            let value = match table {
                                RecordTable::Groups => {
                                    self.seal_record(tx, &super::lock::group_record(id, key), json)?
                                }
                                _ => json.clone(),
                            };
                            tx.open_table(table.definition())?
                                .insert((id, key.as_str()), value.as_slice())?;
                        }
                    }
                    Row::Peer { blinded, base_url } => {
                        peers.insert((id, blinded.as_str()), base_url.as_str())?;
                    }
                    Row::Account {
                        blinded,
                        account_id,
                    } => {
                        accounts.insert((id, blinded.as_str()), account_id.as_str())?;
                    }
                    Row::Settings { json } => {
                        decode::<super::IdentitySettings>("identity settings", json)?;
                        settings.insert(id, json.as_slice())?;
                    }
                    Row::Expiry { at_ms, seq, json } => {
                        decode::<super::interactions::DueRecord>("purge", json)?;
                        expiries.insert((id, *at_ms, *seq), json.as_slice())?;
                        by_seq.insert((id, *seq), *at_ms)?;
                    }
                }
            }
            Ok::<(), TxError>(())
        })
    }
}
