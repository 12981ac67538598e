//! Attachments in the store: one record per attachment of a message (incoming or outgoing) or
//! per upload, and the index of their local-link tokens.
//!
//! | table | key | value |
//! |---|---|---|
//! | `attachments` | (identity id, attachment id) | JSON [`AttachmentRecord`] |
//! | `attachment_tokens` | link token | (identity id, attachment id) |
//!
//! A record holds the pointer (URL, key, digest) the message carried or the upload produced;
//! the plaintext itself lives in a file named after the id under `attachments/` in the data dir
//! (the daemon's `files` module). A change of state that belongs to a conversation is recorded
//! as an [`EventKind::Attachment`] event in the same transaction.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{decode, encode, require_identity, IdentityId, Log, Store, StoreError, StoredEvent};
use crate::store::EventKind;

pub(super) const ATTACHMENTS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("attachments");
pub(super) const ATTACHMENT_TOKENS: TableDefinition<'_, &str, (u64, &str)> =
    TableDefinition::new("attachment_tokens");

/// Where an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentState {
    /// Received, not downloaded yet.
    Pending,
    /// Downloaded and checked; the plaintext is in the local store.
    Downloaded,
    /// The download failed (the reason says why).
    Failed,
    /// The file server no longer has it, or the local copy was removed after its keep time.
    Expired,
    /// Uploaded by this daemon; the plaintext is in the local store.
    Uploaded,
}

/// What a client sees of an attachment; also what events record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    /// The daemon's id (32 hex characters).
    pub id: String,
    /// The conversation (empty for an upload not yet sent).
    pub conversation: String,
    /// Sent by this identity.
    pub outgoing: bool,
    /// The file name given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The MIME type given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Plaintext size (from the pointer; 0 unknown).
    pub size: u64,
    /// A voice note.
    #[serde(default)]
    pub voice_message: bool,
    /// Image or video dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image or video dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Where it is.
    pub state: AttachmentState,
    /// For `Failed`/`Expired`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 of the plaintext, hex, once here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The local link's token (64 hex characters): the HTTP listener serves the file at
    /// `/files/<token>/<name>` once it is here.
    pub token: String,
}

/// An attachment as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// What clients see.
    #[serde(flatten)]
    pub view: AttachmentView,
    /// The encoded `AttachmentPointer` (URL, key, digest…), hex.
    pub pointer: String,
    /// Bytes of the local copy (0: none).
    #[serde(default)]
    pub stored_bytes: u64,
    /// When the local copy was written, ms.
    #[serde(default)]
    pub stored_at_ms: u64,
    /// When the record was made, ms.
    pub created_at_ms: u64,
}

/// A change of an attachment's state (see [`Store::set_attachment_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentChange {
    /// The new state.
    pub state: AttachmentState,
    /// Why (failed, expired).
    pub reason: Option<String>,
    /// SHA-256 of the plaintext, once here.
    pub sha256: Option<String>,
    /// Bytes of the local copy (0: none).
    pub stored_bytes: u64,
}

/// Inserts records (inside another operation's transaction): the record and its token.
pub(super) fn insert_records(
    tx: &redb::WriteTransaction,
    identity: IdentityId,
    records: &[AttachmentRecord],
) -> Result<(), super::TxError> {
    let mut table = tx.open_table(ATTACHMENTS)?;
    let mut tokens = tx.open_table(ATTACHMENT_TOKENS)?;
    for r in records {
        table.insert((identity, r.view.id.as_str()), encode(r).as_slice())?;
        tokens.insert(r.view.token.as_str(), (identity, r.view.id.as_str()))?;
    }
    Ok(())
}

impl Store {
    /// Stores a new attachment record (an upload).
    pub fn put_attachment(
        &self,
        identity: IdentityId,
        record: &AttachmentRecord,
    ) -> Result<(), StoreError> {
        self.write("storing an attachment", |tx| {
            require_identity(tx, identity)?;
            insert_records(tx, identity, std::slice::from_ref(record))
        })
    }

    /// One attachment of an identity.
    pub fn attachment(
        &self,
        identity: IdentityId,
        id: &str,
    ) -> Result<AttachmentRecord, StoreError> {
        self.read("reading an attachment", |tx| {
            let table = tx.open_table(ATTACHMENTS)?;
            let v = table
                .get((identity, id))?
                .ok_or_else(|| StoreError::UnknownAttachment { id: id.to_owned() })?;
            Ok(decode("attachment", v.value())?)
        })
    }

    /// The attachment a local-link token names, with its identity.
    pub fn attachment_by_token(
        &self,
        token: &str,
    ) -> Result<Option<(IdentityId, AttachmentRecord)>, StoreError> {
        self.read("reading an attachment", |tx| {
            let tokens = tx.open_table(ATTACHMENT_TOKENS)?;
            let Some(v) = tokens.get(token)? else {
                return Ok(None);
            };
            let (identity, id) = v.value();
            let table = tx.open_table(ATTACHMENTS)?;
            let Some(r) = table.get((identity, id))? else {
                return Ok(None);
            };
            Ok(Some((identity, decode("attachment", r.value())?)))
        })
    }

    /// Bytes of all local copies (every identity): what counts against the quota.
    pub fn attachment_bytes(&self) -> Result<u64, StoreError> {
        self.read("summing attachment sizes", |tx| {
            let table = tx.open_table(ATTACHMENTS)?;
            let mut total = 0u64;
            for row in table.iter()? {
                let (_, v) = row?;
                let r: AttachmentRecord = decode("attachment", v.value())?;
                total = total.saturating_add(r.stored_bytes);
            }
            Ok(total)
        })
    }

    /// Local copies written before `before_ms`: (identity, attachment id).
    pub fn attachments_stored_before(
        &self,
        before_ms: u64,
    ) -> Result<Vec<(IdentityId, String)>, StoreError> {
        self.read("listing old attachments", |tx| {
            let table = tx.open_table(ATTACHMENTS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let r: AttachmentRecord = decode("attachment", v.value())?;
                if r.stored_bytes > 0 && r.stored_at_ms < before_ms {
                    out.push((k.value().0, k.value().1.to_owned()));
                }
            }
            Ok(out)
        })
    }

    /// Pending attachments of every identity whose size is known and at most `max_bytes`,
    /// oldest first: what to fetch again after a restart.
    pub fn pending_attachments(
        &self,
        max_bytes: u64,
    ) -> Result<Vec<(IdentityId, String)>, StoreError> {
        if max_bytes == 0 {
            return Ok(Vec::new());
        }
        self.read("listing pending attachments", |tx| {
            let table = tx.open_table(ATTACHMENTS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let r: AttachmentRecord = decode("attachment", v.value())?;
                let small = r.view.size > 0 && r.view.size <= max_bytes;
                if r.view.state == AttachmentState::Pending && small {
                    out.push((r.created_at_ms, k.value().0, k.value().1.to_owned()));
                }
            }
            out.sort();
            Ok(out.into_iter().map(|(_, i, id)| (i, id)).collect())
        })
    }

    /// Sets an attachment's state in one transaction, with an [`EventKind::Attachment`] event
    /// in its conversation when it has one. Returns the record after the change and the event.
    pub fn set_attachment_state(
        &self,
        identity: IdentityId,
        id: &str,
        change: AttachmentChange,
        now_ms: u64,
    ) -> Result<(AttachmentRecord, Option<StoredEvent>), StoreError> {
        let (record, event) = self.write("updating an attachment", |tx| {
            require_identity(tx, identity)?;
            let mut table = tx.open_table(ATTACHMENTS)?;
            let mut record: AttachmentRecord = match table.get((identity, id))? {
                Some(v) => decode("attachment", v.value())?,
                None => return Err(StoreError::UnknownAttachment { id: id.to_owned() }.into()),
            };
            record.view.state = change.state;
            record.view.reason = change.reason;
            if change.sha256.is_some() {
                record.view.sha256 = change.sha256;
            }
            record.stored_bytes = change.stored_bytes;
            record.stored_at_ms = if change.stored_bytes > 0 { now_ms } else { 0 };
            table.insert((identity, id), encode(&record).as_slice())?;
            drop(table);
            let event = if record.view.conversation.is_empty() {
                None
            } else {
                let mut log = Log::open(tx)?;
                Some(log.append(identity, now_ms, EventKind::Attachment(record.view.clone()))?)
            };
            Ok((record, event))
        })?;
        if let Some(e) = &event {
            self.wake(identity, e.seq);
        }
        Ok((record, event))
    }
}
