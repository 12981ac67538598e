//! The redb store: identities, contacts, conversations, the per-identity event log, the outbox,
//! poll cursors, tokens and the snode pool, all in one file `sessiond.redb` in the data dir.
//!
//! # Layout of the database
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64 (`sessiond_schema_version`, id counters) |
//! | `identities` | identity id | JSON [`IdentityRecord`] |
//! | `identity_names` | name | identity id |
//! | `seeds` | identity id | the 32-byte seed, or sealed with the passphrase's key (`lock`) |
//! | `events` | (identity id, seq) | JSON [`StoredEvent`] |
//! | `seen_hashes` | (identity id, message hash) | seq of the event that recorded it (for the identity's own sync copy: its message's `Outgoing` event); pruned after [`SEEN_HASH_KEEP_MS`] |
//! | `cursors` | (identity id, namespace) | `last_hash` of the poller |
//! | `outbox` | outbox id | JSON [`OutboxEntry`] |
//! | `conversations` | (identity id, conversation address) | JSON [`ConversationRecord`] |
//! | `contacts` | (identity id, Account ID) | JSON [`ContactRecord`] |
//! | `contact_handles` | (identity id, lowercase handle) | the contact's Account ID |
//! | `peer_events` | (identity id, conversation address, seq) | () — the per-conversation log index |
//! | `idempotency` | (identity id, client key) | JSON [`SentKey`] (pruned after [`IDEMPOTENCY_KEEP_MS`]) |
//! | `tokens` | SHA-256 of the token | JSON [`TokenRecord`] |
//! | `blobs` | name | bytes (the snode pool; the passphrase's lock record) |
//! | `config_dumps` | (identity id, namespace) | the config's dump (session-proto `Config::dump`) |
//! | `webhooks` | (identity id, webhook name) | JSON [`WebhookRecord`] |
//! | `webhook_cursors` | (identity id, webhook name) | seq of the last event the endpoint accepted |
//! | `community_rooms` | (identity id, room address) | JSON [`RoomRecord`]: a joined room, its cursor, what its last poll said |
//! | `community_servers` | (identity id, base URL) | JSON [`ServerCursors`]: the server's DM cursors |
//! | `community_peers` | (identity id, blinded ID) | base URL of the server it was met on |
//! | `groups` | (identity id, group `03…` ID) | JSON [`GroupRecord`] (`groups`) |
//!
//! Every operation is one redb transaction, committed with fsync before it returns, so whatever
//! a caller was told is durable survives a crash. The hot-path writes (queueing a message, a
//! send's outcome, received messages) may share that transaction with writes made at the same
//! time (group commit, `commit`): each is still answered only after it is durable. The operations that must be atomic together are
//! single methods: [`Store::queue_outgoing`] (idempotency key + outbox entry + the sync copy's
//! entry and seen hash + `Outgoing` event + conversation + contact), [`Store::record_received`]
//! (dedupe + events + `last_hash` + conversation + contact), [`Store::outbox_sent`] /
//! [`Store::outbox_failed`] (remove entry + `Delivery` event + release or drop of the held sync
//! copy), and each conversation change with its `Conversation` event (`book`).
//!
//! Schema versions: 1 had no handles, peer index or idempotency keys; opening a version-1 file
//! gives every contact (and every conversation's peer) a handle and indexes the log by peer, in
//! one transaction, then marks it version 2.
//!
//! Besides the database, the store hands out two kinds of live signals, because it is what the
//! API and the engine share: wake-ups when a log grows ([`Store::watch`]) and typing notices,
//! which are never stored ([`Store::publish_typing`], [`Store::typing_notices`]).
//!
//! redb holds an exclusive lock on the file while open, so a second daemon on the same data dir
//! fails with [`StoreError::InUse`].
//!
//! # Modules
//! - `records`: the records as JSON; `err`: [`StoreError`].
//! - `book`: conversations, contacts and handles, and the rules for ConversationChanged events.
//! - [`handles`]: the handle rule and derivation (pure).
//! - `migrate`: schema upgrades.
//! - `community`: joined community rooms, their cursors and what a room poll records.
//! - `groups`: the groups of each identity and their events.
//! - `lock`: the passphrase: sealed seeds, unlocking, set/change/remove with migration.
//! - `webhooks`: webhooks and their cursors.
//! - `retention`: forgetting old events.
//! - `archive`: an identity's records in and out, for export and import.
//! - `commit`: group commit: concurrent hot-path writes (queueing, send outcomes, received
//!   messages) share one durable transaction.

mod archive;
mod book;
mod commit;
mod community;
mod err;
mod files;
mod groups;
pub mod handles;
mod interactions;
mod lock;
mod migrate;
mod records;
mod retention;
mod sync;
mod webhooks;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableTable, TableDefinition, TableHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use zeroize::Zeroizing;

pub use archive::{IdentityRows, RecordTable, Row};
pub use community::{RoomItem, RoomPoll, RoomRecord, RoomState, ServerCursors};
pub use err::StoreError;
pub use files::{AttachmentChange, AttachmentRecord, AttachmentState, AttachmentView};
pub use groups::{member_diff, GroupChange, GroupMember, GroupRecord, GroupStatus, KeysMessage};
pub use interactions::{
    Chore, ControlOut, Due, IdentitySettings, Inbound, InboundKind, ReadEffects, SwarmChore,
};
pub use records::{
    ContactRecord, ConversationRecord, ConversationView, DeliveryState, EventKind, ExpirySetting,
    IdentityId, IdentityRecord, MessageExtras, NewOutgoing, NoticeKind, OutboxEntry, Queued,
    Received, RemovedReason, ReplyRef, SentKey, StoredEvent, SyncCopy, TokenRecord, HELD,
};
pub use sync::SyncedContact;
pub use webhooks::{DeadLetter, WebhookRecord, WebhookSource};

/// The database file's name in the data dir.
pub const DB_FILE: &str = "sessiond.redb";
/// The schema version this build writes; a database with a higher one is refused.
pub const SCHEMA_VERSION: u64 = 2;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const IDENTITIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("identities");
const IDENTITY_NAMES: TableDefinition<'_, &str, u64> = TableDefinition::new("identity_names");
const SEEDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("seeds");
const EVENTS: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("events");
const SEEN_HASHES: TableDefinition<'_, (u64, &str), u64> = TableDefinition::new("seen_hashes");
const CURSORS: TableDefinition<'_, (u64, i32), &str> = TableDefinition::new("cursors");
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");
const CONVERSATIONS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("conversations");
const CONTACTS: TableDefinition<'_, (u64, &str), &[u8]> = TableDefinition::new("contacts");
const HANDLES: TableDefinition<'_, (u64, &str), &str> = TableDefinition::new("contact_handles");
const PEER_EVENTS: TableDefinition<'_, (u64, &str, u64), ()> = TableDefinition::new("peer_events");
const IDEMPOTENCY: TableDefinition<'_, (u64, &str), &[u8]> = TableDefinition::new("idempotency");
const TOKENS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tokens");
const BLOBS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("blobs");
const CONFIG_DUMPS: TableDefinition<'_, (u64, i32), &[u8]> = TableDefinition::new("config_dumps");

const SCHEMA_KEY: &str = "sessiond_schema_version";
const NEXT_IDENTITY_KEY: &str = "next_identity_id";
const NEXT_OUTBOX_KEY: &str = "next_outbox_id";
const SNODE_POOL_BLOB: &str = "snode_pool";
/// Typing notices buffered for subscribers: a bounded queue; a subscriber that falls further
/// behind loses the oldest notices, which are stale by then anyway.
const TYPING_CAPACITY: usize = 256;

/// How long a received message's hash is kept for the dedupe after it was recorded: the swarm
/// keeps a message at most 14 days (the longest TTL it accepts), plus a day for clocks that
/// disagree. See [`Store::prune`].
pub const SEEN_HASH_KEEP_MS: u64 = 15 * 24 * 3600 * 1000;
/// How long an idempotency key is honoured after the message it queued was sent: a client
/// retrying a Send within 24 h gets the first message back; the daemon prunes older keys hourly.
pub const IDEMPOTENCY_KEEP_MS: u64 = 24 * 3600 * 1000;

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Hashes of received messages.
    pub seen_hashes: usize,
    /// Idempotency keys.
    pub idempotency_keys: usize,
}

/// A cheap-clone handle on the open store.
#[derive(Clone, Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Database,
    file: PathBuf,
    /// Wake-ups for event-log subscribers: identity id → the newest seq. A std `Mutex`: nothing
    /// awaits while it is held.
    watchers: Mutex<HashMap<IdentityId, watch::Sender<u64>>>,
    /// Live typing notices for every identity (subscribers filter by identity).
    typing: broadcast::Sender<TypingNotice>,
    /// The passphrase's key once unlocked (`lock`). A std Mutex: nothing awaits while it is held.
    key: Mutex<Option<Arc<crate::secrets::SealKey>>>,
    /// Writes waiting to share the next durable transaction (`commit`).
    commits: commit::CommitQueue,
}

/// Someone started or stopped typing to an identity: a live notice, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypingNotice {
    /// The identity written to.
    pub identity: IdentityId,
    /// The Account ID of whoever is typing.
    pub peer: String,
    /// True: started. False: stopped.
    pub typing: bool,
    /// When the daemon got it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Creates `dir` (and parents) with mode 0700 if missing and tightens it to 0700.
pub fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fs_err = |source| StoreError::Fs {
        path: dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fs_err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fs_err)
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: the dir gets mode 0700, the file 0600.
    ///
    /// Fails with [`StoreError::InUse`] if another process has it open, [`StoreError::Corrupt`]
    /// for a damaged file, [`StoreError::Foreign`] for another program's redb file and
    /// [`StoreError::NewerSchema`] for a newer sessiond's.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        prepare_dir(data_dir)?;
        let file = data_dir.join(DB_FILE);
        let fs_err = |source| StoreError::Fs {
            path: file.clone(),
            source,
        };
        // Create the file ourselves so it is 0600 from the first byte; redb initialises an empty
        // file as a new database.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .map_err(fs_err)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).map_err(fs_err)?;
        // Set if redb finds the file was not closed cleanly (a crash, a SIGKILL) and repairs it.
        let repaired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&repaired);
        let db = Database::builder()
            .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
            .create(&file)
            .map_err(|e| match redb::Error::from(e) {
                redb::Error::DatabaseAlreadyOpen => StoreError::InUse {
                    dir: data_dir.to_owned(),
                    file: file.clone(),
                },
                redb::Error::Corrupted(detail) => StoreError::Corrupt {
                    file: file.clone(),
                    detail,
                },
                redb::Error::UpgradeRequired(v) => StoreError::Corrupt {
                    file: file.clone(),
                    detail: format!("redb file format {v} needs an upgrade"),
                },
                redb::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    StoreError::Corrupt {
                        file: file.clone(),
                        detail: "the file is truncated".to_owned(),
                    }
                }
                other => StoreError::Corrupt {
                    file: file.clone(),
                    detail: other.to_string(),
                },
            })?;
        let store = Store {
            shared: Arc::new(Shared {
                db,
                file,
                watchers: Mutex::new(HashMap::new()),
                typing: broadcast::channel(TYPING_CAPACITY).0,
                key: Mutex::new(None),
                commits: commit::CommitQueue::default(),
            }),
        };
        store.check_schema()?;
        let mut store = store;
        store.compact(repaired.load(Ordering::Relaxed));
        Ok(store)
    }

    /// Gives the file's free pages back at start-up: the pages prune freed while the daemon ran
    /// (redb reuses them, but the file keeps its size) and the extra a file repaired after a
    /// crash carries (a data dir SIGKILLed again and again grew to 1.5-1.8× a clean one's).
    /// Only this open handle exists here, so no transaction is live. A failure is logged, not
    /// fatal: the store works uncompacted.
    fn compact(&mut self, repaired: bool) {
        let Some(shared) = Arc::get_mut(&mut self.shared) else {
            return;
        };
        let size = |f: &Path| fs::metadata(f).map_or(0, |m| m.len());
        let before = size(&shared.file);
        match shared.db.compact() {
            Ok(_) => {
                let after = size(&shared.file);
                if repaired {
                    tracing::info!(
                        before,
                        after,
                        "store: the last run did not close the store cleanly; repaired and compacted"
                    );
                } else if after < before {
                    tracing::info!(before, after, "store: compacted");
                }
            }
            Err(e) => tracing::warn!(cause = %e, "store: compaction failed; going on uncompacted"),
        }
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let db = &self.shared.db;
        let rtx = db
            .begin_read()
            .map_err(|e| StoreError::db("reading the schema")(e.into()))?;
        let tables: Vec<String> = rtx
            .list_tables()
            .map_err(|e| StoreError::db("listing tables")(e.into()))?
            .map(|t| t.name().to_owned())
            .collect();
        let version = if tables.iter().any(|t| t == META.name()) {
            let meta = rtx
                .open_table(META)
                .map_err(|e| self.corrupt_or_db("opening meta", e.into()))?;
            let v = meta
                .get(SCHEMA_KEY)
                .map_err(|e| StoreError::db("reading the schema")(e.into()))?
                .map(|v| v.value());
            match v {
                Some(v) => Some(v),
                None => {
                    return Err(StoreError::Foreign {
                        file: self.shared.file.clone(),
                        tables,
                    })
                }
            }
        } else if tables.is_empty() {
            None
        } else {
            return Err(StoreError::Foreign {
                file: self.shared.file.clone(),
                tables,
            });
        };
        drop(rtx);
        if let Some(found) = version {
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    file: self.shared.file.clone(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        // Create every table (a no-op for existing ones) so read transactions find them all, and
        // check their key/value types on an existing file.
        self.write("initialising the schema", |tx| {
            let mut meta = tx.open_table(META)?;
            if version.is_none() {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
            drop(meta);
            tx.open_table(IDENTITIES)?;
            tx.open_table(IDENTITY_NAMES)?;
            tx.open_table(SEEDS)?;
            tx.open_table(EVENTS)?;
            tx.open_table(SEEN_HASHES)?;
            tx.open_table(CURSORS)?;
            tx.open_table(OUTBOX)?;
            tx.open_table(CONVERSATIONS)?;
            tx.open_table(CONTACTS)?;
            tx.open_table(HANDLES)?;
            tx.open_table(PEER_EVENTS)?;
            tx.open_table(IDEMPOTENCY)?;
            tx.open_table(TOKENS)?;
            tx.open_table(BLOBS)?;
            tx.open_table(CONFIG_DUMPS)?;
            tx.open_table(webhooks::WEBHOOKS)?;
            tx.open_table(webhooks::WEBHOOK_CURSORS)?;
            tx.open_table(community::ROOMS)?;
            tx.open_table(community::SERVERS)?;
            tx.open_table(community::PEERS)?;
            tx.open_table(community::ACCOUNTS)?;
            tx.open_table(groups::GROUPS)?;
            interactions::create_tables(tx)?;
            tx.open_table(files::ATTACHMENTS)?;
            tx.open_table(files::ATTACHMENT_TOKENS)?;
            if let Some(found) = version.filter(|&v| v < SCHEMA_VERSION) {
                migrate::upgrade(tx, found)?;
                tx.open_table(META)?.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            StoreError::Db { source, .. }
                if matches!(
                    *source,
                    redb::Error::TableTypeMismatch { .. } | redb::Error::TableIsMultimap(_)
                ) =>
            {
                StoreError::Corrupt {
                    file: self.shared.file.clone(),
                    detail: source.to_string(),
                }
            }
            other => other,
        })
    }

    fn corrupt_or_db(&self, action: &'static str, e: redb::Error) -> StoreError {
        match e {
            redb::Error::TableTypeMismatch { .. } | redb::Error::Corrupted(_) => {
                StoreError::Corrupt {
                    file: self.shared.file.clone(),
                    detail: e.to_string(),
                }
            }
            other => StoreError::db(action)(other),
        }
    }

    /// Runs `f` in one write transaction and commits it (durably) if `f` succeeds.
    fn write<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .shared
            .db
            .begin_write()
            .map_err(|e| StoreError::db(action)(e.into()))?;
        let out = f(&tx).map_err(|e| e.into_store(action))?;
        tx.commit().map_err(|e| StoreError::db(action)(e.into()))?;
        Ok(out)
    }

    /// Runs `f` in one read transaction.
    fn read<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .shared
            .db
            .begin_read()
            .map_err(|e| StoreError::db(action)(e.into()))?;
        f(&tx).map_err(|e| e.into_store(action))
    }

    /// Events in all identities' event logs.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        self.read("counting events", |tx| Ok(tx.open_table(EVENTS)?.len()?))
    }

    // --------------------------------------------------------------------------------------------
    // Identities
    // --------------------------------------------------------------------------------------------

    /// Adds an identity. Fails with [`StoreError::NameTaken`] or [`StoreError::AccountTaken`].
    pub fn add_identity(
        &self,
        name: &str,
        account_id: &str,
        seed: &[u8; 32],
        now_ms: u64,
    ) -> Result<IdentityRecord, StoreError> {
        self.write("adding an identity", |tx| {
            let mut names = tx.open_table(IDENTITY_NAMES)?;
            if names.get(name)?.is_some() {
                return Err(StoreError::NameTaken {
                    name: name.to_owned(),
                }
                .into());
            }
            let identities = tx.open_table(IDENTITIES)?;
            for row in identities.iter()? {
                let (_, v) = row?;
                let existing: IdentityRecord = decode("identity", v.value())?;
                if existing.account_id == account_id {
                    return Err(StoreError::AccountTaken {
                        existing: existing.name,
                    }
                    .into());
                }
            }
            drop(identities);
            let id = next_counter(tx, NEXT_IDENTITY_KEY)?;
            let record = IdentityRecord {
                id,
                name: name.to_owned(),
                account_id: account_id.to_owned(),
                created_at_ms: now_ms,
                display_name: None,
            };
            names.insert(name, id)?;
            tx.open_table(IDENTITIES)?
                .insert(id, encode(&record).as_slice())?;
            let stored = self.seal_seed(tx, id, seed)?;
            tx.open_table(SEEDS)?.insert(id, stored.as_slice())?;
            Ok(record)
        })
    }

    /// All identities, sorted by name.
    pub fn identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        self.read("listing identities", |tx| {
            let names = tx.open_table(IDENTITY_NAMES)?;
            let identities = tx.open_table(IDENTITIES)?;
            let mut out = Vec::new();
            for row in names.iter()? {
                let (_, id) = row?;
                if let Some(v) = identities.get(id.value())? {
                    out.push(decode("identity", v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// The identity with this name.
    pub fn identity(&self, name: &str) -> Result<IdentityRecord, StoreError> {
        self.read("reading an identity", |tx| identity_by_name(tx, name))
    }

    /// The identity with this id.
    pub fn identity_by_id(&self, id: IdentityId) -> Result<IdentityRecord, StoreError> {
        self.read("reading an identity", |tx| {
            let identities = tx.open_table(IDENTITIES)?;
            let v = identities
                .get(id)?
                .ok_or_else(|| StoreError::UnknownIdentity {
                    name: format!("#{id}"),
                })?;
            Ok(decode("identity", v.value())?)
        })
    }

    /// The seed of the identity with this name.
    pub fn identity_seed(&self, name: &str) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        self.read("reading a seed", |tx| {
            let record = identity_by_name(tx, name)?;
            let seeds = tx.open_table(SEEDS)?;
            let v = seeds.get(record.id)?.ok_or(StoreError::BadRecord {
                what: "seed",
                detail: format!("identity {name:?} has no seed"),
            })?;
            Ok(self.open_seed(record.id, v.value())?)
        })
    }

    /// Sets (`Some`) or clears (`None`) the display name an identity announces.
    pub fn set_display_name(
        &self,
        name: &str,
        display_name: Option<&str>,
    ) -> Result<IdentityRecord, StoreError> {
        self.write("setting a display name", |tx| {
            let mut record = identity_by_name(tx, name)?;
            record.display_name = display_name.map(str::to_owned);
            tx.open_table(IDENTITIES)?
                .insert(record.id, encode(&record).as_slice())?;
            Ok(record)
        })
    }

    /// Removes an identity and everything kept for it: seed, events and their peer index, seen
    /// hashes, cursors, outbox entries, conversations, contacts and their handles, idempotency
    /// keys and tokens. Its subscribers' streams end.
    pub fn remove_identity(&self, name: &str) -> Result<IdentityRecord, StoreError> {
        let record = self.write("removing an identity", |tx| {
            let record = identity_by_name(tx, name)?;
            let id = record.id;
            tx.open_table(IDENTITY_NAMES)?.remove(name)?;
            tx.open_table(IDENTITIES)?.remove(id)?;
            tx.open_table(SEEDS)?.remove(id)?;
            tx.open_table(EVENTS)?
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            tx.open_table(SEEN_HASHES)?
                .retain(|(owner, _), _| owner != id)?;
            tx.open_table(CURSORS)?
                .retain_in((id, i32::MIN)..=(id, i32::MAX), |_, _| false)?;
            tx.open_table(CONVERSATIONS)?
                .retain(|(owner, _), _| owner != id)?;
            tx.open_table(CONTACTS)?
                .retain(|(owner, _), _| owner != id)?;
            tx.open_table(HANDLES)?
                .retain(|(owner, _), _| owner != id)?;
            tx.open_table(PEER_EVENTS)?
                .retain(|(owner, _, _), ()| owner != id)?;
            tx.open_table(IDEMPOTENCY)?
                .retain(|(owner, _), _| owner != id)?;
            tx.open_table(CONFIG_DUMPS)?
                .retain_in((id, i32::MIN)..=(id, i32::MAX), |_, _| false)?;
            webhooks::remove_all(tx, id)?;
            community::forget_identity(tx, id)?;
            tx.open_table(groups::GROUPS)?
                .retain(|(owner, _), _| owner != id)?;
            interactions::forget_identity(tx, id)?;
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut doomed = Vec::new();
            for row in outbox.iter()? {
                let (k, v) = row?;
                let entry: OutboxEntry = decode("outbox", v.value())?;
                if entry.identity == id {
                    doomed.push(k.value());
                }
            }
            for k in doomed {
                outbox.remove(k)?;
            }
            let mut tokens = tx.open_table(TOKENS)?;
            let mut doomed = Vec::new();
            for row in tokens.iter()? {
                let (k, v) = row?;
                let token: TokenRecord = decode("token", v.value())?;
                if token.identity == id {
                    doomed.push(k.value().to_vec());
                }
            }
            for k in doomed {
                tokens.remove(k.as_slice())?;
            }
            Ok(record)
        })?;
        // Dropping the sender ends the subscribers' waits.
        self.lock_watchers().remove(&record.id);
        Ok(record)
    }

    // --------------------------------------------------------------------------------------------
    // Tokens
    // --------------------------------------------------------------------------------------------

    /// Stores an identity-scoped token under its hash.
    pub fn add_token(&self, hash: &[u8; 32], token: &TokenRecord) -> Result<(), StoreError> {
        self.write("adding a token", |tx| {
            if tx.open_table(IDENTITIES)?.get(token.identity)?.is_none() {
                return Err(StoreError::UnknownIdentity {
                    name: format!("#{}", token.identity),
                }
                .into());
            }
            tx.open_table(TOKENS)?
                .insert(hash.as_slice(), encode(token).as_slice())?;
            Ok(())
        })
    }

    /// The token stored under this hash, if any.
    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.read("checking a token", |tx| {
            let tokens = tx.open_table(TOKENS)?;
            let v = tokens.get(hash.as_slice())?;
            Ok(match v {
                Some(v) => Some(decode("token", v.value())?),
                None => None,
            })
        })
    }

    /// Removes the token stored under `hash`, if it reaches `scope` (any identity's when
    /// `scope` is `None`), in one transaction.
    pub fn revoke_token(
        &self,
        hash: &[u8; 32],
        scope: Option<IdentityId>,
    ) -> Result<Revoked, StoreError> {
        self.write("revoking a token", |tx| {
            let mut tokens = tx.open_table(TOKENS)?;
            let record: TokenRecord = match tokens.get(hash.as_slice())? {
                Some(v) => decode("token", v.value())?,
                None => return Ok(Revoked::Unknown),
            };
            if scope.is_some_and(|id| id != record.identity) {
                return Ok(Revoked::OtherIdentity);
            }
            tokens.remove(hash.as_slice())?;
            Ok(Revoked::Revoked(record))
        })
    }

    // --------------------------------------------------------------------------------------------
    // Event log
    // --------------------------------------------------------------------------------------------

    /// The newest seq of an identity's log (0 if empty).
    pub fn last_seq(&self, identity: IdentityId) -> Result<u64, StoreError> {
        self.read("reading the event log", |tx| {
            last_seq(&tx.open_table(EVENTS)?, identity)
        })
    }

    /// Events of an identity with `after < seq < before` (`before` 0: no bound), at most `limit`,
    /// oldest first or newest first; and whether the range holds more.
    pub fn events(
        &self,
        identity: IdentityId,
        after: u64,
        before: u64,
        limit: usize,
        newest_first: bool,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        self.read("reading the event log", |tx| {
            let events = tx.open_table(EVENTS)?;
            let lo = after.saturating_add(1);
            let hi = if before == 0 {
                u64::MAX
            } else {
                before.saturating_sub(1)
            };
            if lo > hi {
                return Ok((Vec::new(), false));
            }
            let range = events.range((identity, lo)..=(identity, hi))?;
            let mut out = Vec::new();
            let mut more = false;
            let mut take = |row: Result<_, redb::StorageError>| -> Result<bool, TxError> {
                let (_, v): (_, redb::AccessGuard<'_, &[u8]>) = row?;
                if out.len() == limit {
                    more = true;
                    return Ok(false);
                }
                out.push(decode("event", v.value())?);
                Ok(true)
            };
            if newest_first {
                for row in range.rev() {
                    if !take(row)? {
                        break;
                    }
                }
            } else {
                for row in range {
                    if !take(row)? {
                        break;
                    }
                }
            }
            Ok((out, more))
        })
    }

    /// Like [`Store::events`], but only the events of the conversation at address `peer`
    /// (messages either way, their delivery updates and its `Conversation` events), through
    /// the `peer_events` index.
    pub fn peer_events(
        &self,
        identity: IdentityId,
        peer: &str,
        after: u64,
        before: u64,
        limit: usize,
        newest_first: bool,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        self.read("reading a conversation's events", |tx| {
            let index = tx.open_table(PEER_EVENTS)?;
            let events = tx.open_table(EVENTS)?;
            let lo = after.saturating_add(1);
            let hi = if before == 0 {
                u64::MAX
            } else {
                before.saturating_sub(1)
            };
            if lo > hi {
                return Ok((Vec::new(), false));
            }
            let range = index.range((identity, peer, lo)..=(identity, peer, hi))?;
            let mut seqs = Vec::new();
            let mut more = false;
            let mut take = |row: Result<_, redb::StorageError>| -> Result<bool, TxError> {
                let (k, _): (redb::AccessGuard<'_, (u64, &str, u64)>, _) = row?;
                if seqs.len() == limit {
                    more = true;
                    return Ok(false);
                }
                seqs.push(k.value().2);
                Ok(true)
            };
            if newest_first {
                for row in range.rev() {
                    if !take(row)? {
                        break;
                    }
                }
            } else {
                for row in range {
                    if !take(row)? {
                        break;
                    }
                }
            }
            let mut out = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let v = events.get((identity, seq))?.ok_or(StoreError::BadRecord {
                    what: "peer index",
                    detail: format!("it lists event {seq}, which is missing"),
                })?;
                out.push(decode("event", v.value())?);
            }
            Ok((out, more))
        })
    }

    /// A receiver that changes whenever an identity's log grows (its value is the newest seq).
    ///
    /// Subscribe first, then read the log after your cursor, then wait for a change and read
    /// again: no append is missed. The receiver closes when the identity is removed.
    pub fn watch(&self, identity: IdentityId) -> watch::Receiver<u64> {
        let mut watchers = self.lock_watchers();
        watchers
            .entry(identity)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, HashMap<IdentityId, watch::Sender<u64>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.shared
            .watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self, identity: IdentityId, seq: u64) {
        let mut watchers = self.lock_watchers();
        if let Some(tx) = watchers.get(&identity) {
            if tx.receiver_count() == 0 {
                watchers.remove(&identity);
            } else {
                tx.send_replace(seq);
            }
        }
    }

    /// Passes a typing notice to the current [`Store::typing_notices`] receivers (nothing is
    /// stored; without receivers it is dropped).
    pub fn publish_typing(&self, notice: TypingNotice) {
        let _ = self.shared.typing.send(notice);
    }

    /// Typing notices from now on, for every identity (filter by [`TypingNotice::identity`]).
    pub fn typing_notices(&self) -> broadcast::Receiver<TypingNotice> {
        self.shared.typing.subscribe()
    }

    // --------------------------------------------------------------------------------------------
    // Sending: outbox
    // --------------------------------------------------------------------------------------------

    /// The message an idempotency key first queued, if the identity used the key before.
    pub fn sent_key(&self, identity: IdentityId, key: &str) -> Result<Option<SentKey>, StoreError> {
        self.read("reading an idempotency key", |tx| {
            let keys = tx.open_table(IDEMPOTENCY)?;
            let v = keys.get((identity, key))?;
            Ok(match v {
                Some(v) => Some(decode("idempotency key", v.value())?),
                None => None,
            })
        })
    }

    /// Remembers that idempotency key `key` sent `first` (for sends that do not go through the
    /// outbox: community posts and DMs, sent at once); a key used already keeps its first.
    pub fn remember_sent_key(
        &self,
        identity: IdentityId,
        key: &str,
        first: &SentKey,
    ) -> Result<(), StoreError> {
        self.write("remembering an idempotency key", |tx| {
            let mut keys = tx.open_table(IDEMPOTENCY)?;
            if keys.get((identity, key))?.is_none() {
                keys.insert((identity, key), encode(first).as_slice())?;
            }
            Ok(())
        })
    }

    /// Queues a message: writes the outbox entry, the `Outgoing` event, the conversation (now
    /// accepted and not left; a `Conversation` event if that changed it), the contact (with a
    /// handle, if new) and the idempotency key in one transaction. The entry is due at once. If
    /// the identity used the idempotency key before, nothing is written.
    pub fn queue_outgoing(
        &self,
        identity: IdentityId,
        msg: NewOutgoing,
        now_ms: u64,
    ) -> Result<Queued, StoreError> {
        let (queued, last) = self.write_grouped("queueing a message", move |tx| {
            // A job may run again (group commit): each run starts from the caller's message.
            let msg = msg.clone();
            require_identity(tx, identity)?;
            let mut keys = tx.open_table(IDEMPOTENCY)?;
            if let Some(key) = msg.idempotency_key.as_deref() {
                if let Some(v) = keys.get((identity, key))? {
                    let first: SentKey = decode("idempotency key", v.value())?;
                    return Ok((Queued::Duplicate(first), None));
                }
            }
            let mut log = Log::open(tx)?;
            let kind = interactions::prepare(
                &log,
                tx,
                identity,
                EventKind::Outgoing {
                    message_id: msg.message_id.clone(),
                    recipient: msg.recipient.clone(),
                    text: msg.text.clone(),
                    sent_at_ms: msg.sent_at_ms,
                    from_other_device: false,
                    extras: msg.extras.clone(),
                    attachments: msg.attachments.clone(),
                    server_id: None,
                },
            )?;
            let event = log.append(identity, now_ms, kind)?;
            let own_hash = msg.sync_copy.as_ref().map(|c| c.hash.as_str());
            interactions::schedule(tx, identity, &event, own_hash)?;
            let id = next_counter(tx, NEXT_OUTBOX_KEY)?;
            let copy_id = match msg.sync_copy {
                Some(_) => Some(next_counter(tx, NEXT_OUTBOX_KEY)?),
                None => None,
            };
            let entry = OutboxEntry {
                id,
                identity,
                message_id: msg.message_id,
                recipient: msg.recipient,
                payload: msg.payload,
                namespace: msg.namespace,
                sent_at_ms: msg.sent_at_ms,
                ttl_ms: msg.ttl_ms,
                attempts: 0,
                next_try_ms: now_ms,
                last_error: None,
                event_seq: event.seq,
                sync_copy: false,
                held_copy: copy_id,
                control: false,
            };
            let mut outbox = tx.open_table(OUTBOX)?;
            outbox.insert(id, encode(&entry).as_slice())?;
            if let (Some(copy), Some(copy_id)) = (msg.sync_copy, copy_id) {
                // In the same transaction as the message, held until the message is sent: a
                // queued message always has its copy queued too, and a crash loses neither. Its
                // hash is marked seen now, so the identity's own poller skips the copy when it
                // reads it back.
                let copy_entry = OutboxEntry {
                    id: copy_id,
                    recipient: copy.account,
                    payload: copy.payload,
                    next_try_ms: HELD,
                    sync_copy: true,
                    held_copy: None,
                    ..entry.clone()
                };
                outbox.insert(copy_id, encode(&copy_entry).as_slice())?;
                tx.open_table(SEEN_HASHES)?
                    .insert((identity, copy.hash.as_str()), event.seq)?;
            }
            drop(outbox);
            let mut book = book::Book::open(tx)?;
            let change = book.message(
                &mut log,
                identity,
                &entry.recipient,
                book::Message::Outgoing,
                event.seq,
                msg.sent_at_ms,
                now_ms,
            )?;
            if let Some(key) = msg.idempotency_key.as_deref() {
                let first = SentKey {
                    message_id: entry.message_id.clone(),
                    seq: event.seq,
                    sent_at_ms: entry.sent_at_ms,
                };
                keys.insert((identity, key), encode(&first).as_slice())?;
            }
            let last = change.map_or(event.seq, |c| c.seq);
            Ok((Queued::New { event, entry }, Some(last)))
        })?;
        if let Some(last) = last {
            self.wake(identity, last);
        }
        Ok(queued)
    }

    /// All outbox entries, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read("reading the outbox", |tx| {
            let outbox = tx.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for row in outbox.iter()? {
                let (_, v) = row?;
                out.push(decode("outbox", v.value())?);
            }
            Ok(out)
        })
    }

    /// How many messages `identity` has queued and not yet sent or failed (sync copies, which
    /// follow their message, are not counted): what `outbox.max_queued` bounds. `None` when the
    /// whole outbox holds fewer than `below` entries, which is known without reading them (a
    /// Send checks this on every call, so it must not cost a scan of a long outbox).
    pub fn outbox_depth(
        &self,
        identity: IdentityId,
        below: u64,
    ) -> Result<Option<u64>, StoreError> {
        /// The two fields the count needs; the payload is skipped, not decoded.
        #[derive(serde::Deserialize)]
        struct Head {
            identity: IdentityId,
            #[serde(default)]
            sync_copy: bool,
        }
        self.read("counting the outbox", |tx| {
            let outbox = tx.open_table(OUTBOX)?;
            // The table's length is kept by redb; no identity can have more than all.
            if redb::ReadableTableMetadata::len(&outbox)? < below {
                return Ok(None);
            }
            let mut depth = 0;
            for row in outbox.iter()? {
                let (_, v) = row?;
                let head: Head = decode("outbox", v.value())?;
                if head.identity == identity && !head.sync_copy {
                    depth += 1;
                }
            }
            Ok(Some(depth))
        })
    }

    /// The outbox entries due at `now_ms`, earliest `next_try_ms` first.
    pub fn outbox_due(&self, now_ms: u64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<OutboxEntry> = self
            .outbox()?
            .into_iter()
            .filter(|e| e.next_try_ms <= now_ms)
            .collect();
        due.sort_by_key(|e| (e.next_try_ms, e.id));
        Ok(due)
    }

    /// Records a failed attempt: one more attempt, the next not before `next_try_ms`.
    pub fn outbox_retry(
        &self,
        id: u64,
        next_try_ms: u64,
        error: &str,
    ) -> Result<OutboxEntry, StoreError> {
        let error = error.to_owned();
        self.write_grouped("rescheduling an outbox entry", move |tx| {
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut entry: OutboxEntry = match outbox.get(id)? {
                Some(v) => decode("outbox", v.value())?,
                None => return Err(StoreError::UnknownOutboxEntry { id }.into()),
            };
            entry.attempts = entry.attempts.saturating_add(1);
            entry.next_try_ms = next_try_ms;
            entry.last_error = Some(error.clone());
            outbox.insert(id, encode(&entry).as_slice())?;
            Ok(entry)
        })
    }

    /// Records success: removes the entry and appends a `Sent` delivery event, in one
    /// transaction. `attempts` counts this successful one too. A sync copy's entry is only
    /// removed (`None`).
    pub fn outbox_sent(
        &self,
        id: u64,
        hash: &str,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.finish_outbox(id, now_ms, DeliveryState::Sent, Some(hash), None)
    }

    /// Records giving up: removes the entry and appends a `Failed` delivery event with the
    /// reason, in one transaction. A sync copy's entry is only removed (`None`): the message
    /// itself was not affected, only the account's other devices miss it.
    pub fn outbox_failed(
        &self,
        id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.finish_outbox(id, now_ms, DeliveryState::Failed, None, Some(reason))
    }

    fn finish_outbox(
        &self,
        id: u64,
        now_ms: u64,
        state: DeliveryState,
        hash: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let hash = hash.map(str::to_owned);
        let reason = reason.map(str::to_owned);
        let (identity, event) = self.write_grouped("finishing an outbox entry", move |tx| {
            let mut outbox = tx.open_table(OUTBOX)?;
            let entry: OutboxEntry = match outbox.remove(id)? {
                Some(v) => decode("outbox", v.value())?,
                None => return Err(StoreError::UnknownOutboxEntry { id }.into()),
            };
            if entry.sync_copy || entry.control {
                return Ok((entry.identity, None));
            }
            if let Some(copy_id) = entry.held_copy {
                // Sent: the copy is due now. Failed: the other devices must not show it as sent.
                let copy: Option<OutboxEntry> = match outbox.remove(copy_id)? {
                    Some(v) => Some(decode("outbox", v.value())?),
                    None => None,
                };
                if let (Some(mut copy), DeliveryState::Sent) = (copy, state) {
                    copy.next_try_ms = now_ms;
                    outbox.insert(copy_id, encode(&copy).as_slice())?;
                }
            }
            drop(outbox);
            let attempts = match state {
                DeliveryState::Sent => entry.attempts.saturating_add(1),
                DeliveryState::Failed | DeliveryState::Read => entry.attempts,
            };
            let event = Log::open(tx)?.append(
                entry.identity,
                now_ms,
                EventKind::Delivery {
                    message_id: entry.message_id,
                    recipient: entry.recipient,
                    state,
                    hash: hash.clone(),
                    reason: reason.clone(),
                    attempts,
                    message_seq: None,
                },
            )?;
            Ok((entry.identity, Some(event)))
        })?;
        if let Some(event) = &event {
            self.wake(identity, event.seq);
        }
        Ok(event)
    }

    // --------------------------------------------------------------------------------------------
    // Receiving: events, dedupe, cursors
    // --------------------------------------------------------------------------------------------

    /// The poller's `last_hash` for an identity and namespace.
    pub fn last_hash(
        &self,
        identity: IdentityId,
        namespace: i32,
    ) -> Result<Option<String>, StoreError> {
        self.read("reading a poll cursor", |tx| {
            let cursors = tx.open_table(CURSORS)?;
            let v = cursors.get((identity, namespace))?;
            Ok(v.map(|v| v.value().to_owned()))
        })
    }

    /// The saved state of an identity's config in `namespace`, if any.
    pub fn config_dump(
        &self,
        identity: IdentityId,
        namespace: i32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("reading a config dump", |tx| {
            let dumps = tx.open_table(CONFIG_DUMPS)?;
            let Some(v) = dumps.get((identity, namespace))? else {
                return Ok(None);
            };
            let aad = lock::dump_record(identity, namespace);
            Ok(Some(self.open_record(&aad, v.value())?))
        })
    }

    /// Saves the state of an identity's config in `namespace`.
    pub fn set_config_dump(
        &self,
        identity: IdentityId,
        namespace: i32,
        dump: &[u8],
    ) -> Result<(), StoreError> {
        self.write("saving a config dump", |tx| {
            require_identity(tx, identity)?;
            let value = self.seal_record(tx, &lock::dump_record(identity, namespace), dump)?;
            tx.open_table(CONFIG_DUMPS)?
                .insert((identity, namespace), value.as_slice())?;
            Ok(())
        })
    }

    /// Records a poll result in one transaction: appends an `Incoming` event for every message
    /// whose hash was not seen before (in order; for a sync copy from another device of the
    /// account, an `Outgoing` event with `from_other_device` in the conversation with its
    /// target), updates conversations (a `Conversation` event after a message that changed one,
    /// e.g. made a left conversation a message request again) and the senders' contacts
    /// (profile name; a handle for a new one), and sets the cursor to `last_hash` (if given).
    /// Returns the new events.
    pub fn record_received(
        &self,
        identity: IdentityId,
        namespace: i32,
        messages: &[Received],
        last_hash: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let messages = messages.to_vec();
        let last_hash = last_hash.map(str::to_owned);
        let added = self.write_grouped("recording received messages", move |tx| {
            require_identity(tx, identity)?;
            let mut added = Vec::new();
            let mut seen = tx.open_table(SEEN_HASHES)?;
            let mut log = Log::open(tx)?;
            let mut book = book::Book::open(tx)?;
            for msg in &messages {
                if seen.get((identity, msg.hash.as_str()))?.is_some() {
                    continue;
                }
                // A blocked contact's messages are kept out of the log (remembered as seen, so
                // a re-read after an unblock does not bring them back).
                if msg.sync_target.is_none()
                    && book
                        .contact(identity, &msg.sender)?
                        .is_some_and(|c| c.blocked)
                {
                    let last = log.last_seq(identity)?;
                    seen.insert((identity, msg.hash.as_str()), last)?;
                    continue;
                }
                let (kind, peer, way) = match &msg.sync_target {
                    // Sent by another device of the account: an outgoing message of the
                    // conversation with its target.
                    Some(target) => (
                        EventKind::Outgoing {
                            message_id: sync_copy_message_id(&msg.hash),
                            recipient: target.clone(),
                            text: msg.text.clone(),
                            sent_at_ms: msg.sent_at_ms,
                            from_other_device: true,
                            extras: msg.extras.clone(),
                            attachments: msg.attachments.clone(),
                            server_id: None,
                        },
                        target.as_str(),
                        book::Message::Outgoing,
                    ),
                    None => (
                        EventKind::Incoming(msg.clone()),
                        msg.conversation(),
                        book::Message::Incoming {
                            profile_name: msg.sender_profile_name.as_deref(),
                        },
                    ),
                };
                let kind = interactions::prepare(&log, tx, identity, kind)?;
                let event = log.append(identity, now_ms, kind)?;
                seen.insert((identity, msg.hash.as_str()), event.seq)?;
                interactions::schedule(tx, identity, &event, Some(&msg.hash))?;
                // Posted in a group or room: the sender is someone to name, too.
                let renamed = match (&msg.sync_target, book::is_person(peer)) {
                    (None, false) => book.note_sender(
                        &mut log,
                        identity,
                        &msg.sender,
                        msg.sender_profile_name.as_deref(),
                        now_ms,
                    )?,
                    _ => None,
                };
                files::insert_records(tx, identity, &msg.attachment_records(now_ms))?;
                let change = book.message(
                    &mut log,
                    identity,
                    peer,
                    way,
                    event.seq,
                    msg.sent_at_ms,
                    now_ms,
                )?;
                added.push(event);
                added.extend(change);
                added.extend(renamed);
            }
            if let Some(hash) = last_hash.as_deref() {
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

    // --------------------------------------------------------------------------------------------
    // Bounded state
    // --------------------------------------------------------------------------------------------

    /// Forgets what can no longer matter at `now_ms`, in one transaction: the hashes of received
    /// messages recorded more than [`SEEN_HASH_KEEP_MS`] ago (the swarm has dropped them, so no
    /// re-read can return them) and idempotency keys of messages sent more than
    /// [`IDEMPOTENCY_KEEP_MS`] ago (a retry after that queues a new message). The events stay.
    pub fn prune(&self, now_ms: u64) -> Result<Pruned, StoreError> {
        let seen_before = now_ms.saturating_sub(SEEN_HASH_KEEP_MS);
        let keys_before = now_ms.saturating_sub(IDEMPOTENCY_KEEP_MS);
        self.write("pruning old message hashes and idempotency keys", |tx| {
            let events = tx.open_table(EVENTS)?;
            let mut seen = tx.open_table(SEEN_HASHES)?;
            let mut old_hashes: Vec<(u64, String)> = Vec::new();
            for row in seen.iter()? {
                let (k, v) = row?;
                let (identity, hash) = k.value();
                // A hash whose event is missing has nothing left to protect.
                let recorded = match events.get((identity, v.value()))? {
                    Some(e) => decode::<StoredEvent>("event", e.value())?.recorded_at_ms,
                    None => 0,
                };
                if recorded < seen_before {
                    old_hashes.push((identity, hash.to_owned()));
                }
            }
            for (identity, hash) in &old_hashes {
                seen.remove((*identity, hash.as_str()))?;
            }
            let mut keys = tx.open_table(IDEMPOTENCY)?;
            let mut old_keys: Vec<(u64, String)> = Vec::new();
            for row in keys.iter()? {
                let (k, v) = row?;
                let (identity, key) = k.value();
                let first: SentKey = decode("idempotency key", v.value())?;
                if first.sent_at_ms < keys_before {
                    old_keys.push((identity, key.to_owned()));
                }
            }
            for (identity, key) in &old_keys {
                keys.remove((*identity, key.as_str()))?;
            }
            Ok(Pruned {
                seen_hashes: old_hashes.len(),
                idempotency_keys: old_keys.len(),
            })
        })
    }

    // --------------------------------------------------------------------------------------------
    // Snode pool
    // --------------------------------------------------------------------------------------------

    /// The saved snode pool (an opaque blob the network client writes).
    pub fn snode_pool(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("reading the snode pool", |tx| {
            let blobs = tx.open_table(BLOBS)?;
            let v = blobs.get(SNODE_POOL_BLOB)?;
            Ok(v.map(|v| v.value().to_vec()))
        })
    }

    /// Saves the snode pool blob.
    pub fn set_snode_pool(&self, blob: &[u8]) -> Result<(), StoreError> {
        self.write("saving the snode pool", |tx| {
            tx.open_table(BLOBS)?.insert(SNODE_POOL_BLOB, blob)?;
            Ok(())
        })
    }
}

/// An error inside a transaction: ours, or redb's (converted with context on the way out).
#[derive(Debug)]
enum TxError {
    Store(StoreError),
    Redb(Box<redb::Error>),
}

impl TxError {
    fn into_store(self, action: &'static str) -> StoreError {
        match self {
            TxError::Store(e) => e,
            TxError::Redb(e) => StoreError::db(action)(*e),
        }
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

macro_rules! redb_into_tx {
    ($($t:ty),*) => {$(
        impl From<$t> for TxError {
            fn from(e: $t) -> Self {
                TxError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
redb_into_tx!(redb::StorageError, redb::TableError);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data that always serialise")
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadRecord {
        what,
        detail: e.to_string(),
    })
}

/// The message id of a message another device of the account sent, from its sync copy's hash:
/// 32 hex characters like the daemon's own ids, the same whenever the copy is read.
fn sync_copy_message_id(hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(hash.as_bytes());
    hex::encode(&digest[..16])
}

fn next_counter(tx: &redb::WriteTransaction, key: &str) -> Result<u64, TxError> {
    let mut meta = tx.open_table(META)?;
    let current = meta.get(key)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(key, current.saturating_add(1))?;
    Ok(current)
}

fn identity_by_name(tx: &impl TableOpener, name: &str) -> Result<IdentityRecord, TxError> {
    let id = tx
        .identity_id(name)?
        .ok_or_else(|| StoreError::UnknownIdentity {
            name: name.to_owned(),
        })?;
    let v = tx.identity_bytes(id)?.ok_or(StoreError::BadRecord {
        what: "identity",
        detail: format!("the name {name:?} points at a missing identity"),
    })?;
    Ok(decode("identity", &v)?)
}

/// Read access shared by read and write transactions, for the helpers used by both.
trait TableOpener {
    fn identity_id(&self, name: &str) -> Result<Option<u64>, TxError>;
    fn identity_bytes(&self, id: u64) -> Result<Option<Vec<u8>>, TxError>;
}

impl TableOpener for redb::ReadTransaction {
    fn identity_id(&self, name: &str) -> Result<Option<u64>, TxError> {
        Ok(self
            .open_table(IDENTITY_NAMES)?
            .get(name)?
            .map(|v| v.value()))
    }
    fn identity_bytes(&self, id: u64) -> Result<Option<Vec<u8>>, TxError> {
        Ok(self
            .open_table(IDENTITIES)?
            .get(id)?
            .map(|v| v.value().to_vec()))
    }
}

impl TableOpener for redb::WriteTransaction {
    fn identity_id(&self, name: &str) -> Result<Option<u64>, TxError> {
        Ok(self
            .open_table(IDENTITY_NAMES)?
            .get(name)?
            .map(|v| v.value()))
    }
    fn identity_bytes(&self, id: u64) -> Result<Option<Vec<u8>>, TxError> {
        Ok(self
            .open_table(IDENTITIES)?
            .get(id)?
            .map(|v| v.value().to_vec()))
    }
}

fn require_identity(tx: &redb::WriteTransaction, identity: IdentityId) -> Result<(), TxError> {
    if tx.open_table(IDENTITIES)?.get(identity)?.is_none() {
        return Err(StoreError::UnknownIdentity {
            name: format!("#{identity}"),
        }
        .into());
    }
    Ok(())
}

fn last_seq(
    events: &impl ReadableTable<(u64, u64), &'static [u8]>,
    identity: IdentityId,
) -> Result<u64, TxError> {
    let last = events
        .range((identity, 0)..=(identity, u64::MAX))?
        .next_back()
        .transpose()?;
    Ok(last.map(|(k, _)| k.value().1).unwrap_or(0))
}

/// The event log inside a write transaction: the events table and its per-peer index, kept in
/// step by [`Log::append`].
struct Log<'t> {
    events: redb::Table<'t, (u64, u64), &'static [u8]>,
    peers: redb::Table<'t, (u64, &'static str, u64), ()>,
}

impl<'t> Log<'t> {
    fn open(tx: &'t redb::WriteTransaction) -> Result<Log<'t>, TxError> {
        Ok(Log {
            events: tx.open_table(EVENTS)?,
            peers: tx.open_table(PEER_EVENTS)?,
        })
    }

    /// The newest seq of an identity's log (0 if empty).
    fn last_seq(&self, identity: IdentityId) -> Result<u64, TxError> {
        last_seq(&self.events, identity)
    }

    /// Appends an event with the next seq and indexes it under its peer.
    fn append(
        &mut self,
        identity: IdentityId,
        now_ms: u64,
        kind: EventKind,
    ) -> Result<StoredEvent, TxError> {
        let seq = self.last_seq(identity)?.saturating_add(1);
        let event = StoredEvent {
            seq,
            recorded_at_ms: now_ms,
            kind,
        };
        self.events
            .insert((identity, seq), encode(&event).as_slice())?;
        self.peers
            .insert((identity, event.kind.conversation(), seq), ())?;
        Ok(event)
    }
}

/// The outcome of [`Store::revoke_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The token existed and is gone; what it was.
    Revoked(TokenRecord),
    /// No such token.
    Unknown,
    /// The token reaches another identity than the one allowed; it was left alone.
    OtherIdentity,
}

#[cfg(test)]
pub(crate) mod tests;
