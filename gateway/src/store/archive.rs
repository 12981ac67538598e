//! An identity's rows in and out of the store, as they are stored, for `sessiond export` and
//! `sessiond import` (the file format is [`crate::archive`]'s).
//!
//! Rows are copied as stored (the JSON records byte for byte, keys as they are), so an import
//! reproduces the identity's history exactly, whatever fields the records have, and the event
//! log keeps its seqs, times and log epoch (the identity keeps its store number and creation
//! time).

use redb::{ReadableTable, ReadableTableMetadata};
use zeroize::Zeroizing;

use super::{
    decode, IdentityRecord, Store, StoreError, TxError, CONFIG_DUMPS, CONTACTS, CONVERSATIONS,
    CURSORS, EVENTS, HANDLES, IDENTITIES, IDENTITY_NAMES, META, NEXT_IDENTITY_KEY, PEER_EVENTS,
    SEEDS, SEEN_HASHES,
};

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
                rows.push(Row::ConfigDump {
                    namespace: k.value().1,
                    dump: v.value().to_vec(),
                });
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
                        dumps.insert((id, *namespace), dump.as_slice())?;
                    }
                }
            }
            Ok::<(), TxError>(())
        })
    }
}
