//! Errors of the store, each with an [`ErrorKind`] a front end maps to its protocol.

use std::path::PathBuf;

use session_proto::err::{ErrorKind, HasKind};

use super::handles::HandleError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (most likely a second daemon) has the database open.
    #[error(
        "the data dir {} is in use by another sessiond (the database {} is locked); stop it or \
         choose another --data-dir",
        dir.display(),
        file.display()
    )]
    InUse {
        /// The data dir.
        dir: PathBuf,
        /// The database file.
        file: PathBuf,
    },
    /// The database file is damaged or is not a redb file.
    #[error(
        "the database {} is damaged or not a sessiond database ({detail}); move it away to start \
         afresh, or restore it from a backup",
        file.display()
    )]
    Corrupt {
        /// The database file.
        file: PathBuf,
        /// What redb or the schema check said.
        detail: String,
    },
    /// The database is a redb file written by some other program.
    #[error(
        "the database {} was not written by sessiond (it has tables {tables:?} but no sessiond \
         schema marker); point --data-dir at a sessiond data dir",
        file.display()
    )]
    Foreign {
        /// The database file.
        file: PathBuf,
        /// The tables found in it.
        tables: Vec<String>,
    },
    /// The database was written by a newer sessiond.
    #[error(
        "the database {} has schema version {found}, newer than this sessiond's {supported}; \
         run a newer sessiond",
        file.display()
    )]
    NewerSchema {
        /// The database file.
        file: PathBuf,
        /// The version found.
        found: u64,
        /// The newest version this build understands.
        supported: u64,
    },
    /// Creating the data dir or setting its permissions failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Fs {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// redb failed during an operation.
    #[error("database error while {action}: {source}")]
    Db {
        /// What the store was doing.
        action: &'static str,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// A stored record could not be decoded.
    #[error("a stored {what} record is damaged: {detail}")]
    BadRecord {
        /// Which sort of record.
        what: &'static str,
        /// The decoding error.
        detail: String,
    },
    /// The identity name is taken.
    #[error("an identity named {name:?} exists already; choose another name")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// The Account ID is held already, under another name.
    #[error("this Account ID is held already, as identity {existing:?}")]
    AccountTaken {
        /// The name it is held under.
        existing: String,
    },
    /// No identity has this name.
    #[error("no identity named {name:?}; `sessiond identity list` shows the names")]
    UnknownIdentity {
        /// The name.
        name: String,
    },
    /// No outbox entry has this id (it was sent, failed or removed).
    #[error("no outbox entry {id}")]
    UnknownOutboxEntry {
        /// The outbox id.
        id: u64,
    },
    /// The identity has no conversation with this Account ID.
    #[error("there is no conversation with {peer}; ListConversations shows them")]
    UnknownConversation {
        /// The other side's Account ID (the caller's own input).
        peer: String,
    },
    /// A handle breaks the handle rule.
    #[error("handle {handle:?}: {reason}")]
    BadHandle {
        /// The handle.
        handle: String,
        /// What is wrong with it.
        reason: HandleError,
    },
    /// Another contact of the identity has this handle (compared case-insensitively).
    #[error("another contact has the handle {handle:?} already; choose another")]
    HandleTaken {
        /// The handle.
        handle: String,
    },
    /// The store is encrypted and has not been unlocked with its passphrase.
    #[error(
        "the store {} is encrypted: give its passphrase (SESSIOND_PASSPHRASE_FILE, a systemd \
         credential \"passphrase\", or a terminal)",
        file.display()
    )]
    Locked {
        /// The database file.
        file: PathBuf,
    },
    /// The passphrase or a sealed secret failed.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A seq beyond the newest event of the identity's log.
    #[error("seq {seq} is past the end of the event log (the newest event is {last})")]
    SeqPastEnd {
        /// The seq given.
        seq: u64,
        /// The newest seq.
        last: u64,
    },
    /// The identity has no webhook of this name.
    #[error("there is no webhook {name:?}; ListWebhooks shows them")]
    UnknownWebhook {
        /// The webhook's name.
        name: String,
    },
    /// The identity has a webhook of this name already.
    #[error("a webhook named {name:?} exists already; remove it first or choose another name")]
    WebhookTaken {
        /// The webhook's name.
        name: String,
    },
    /// No message of that author at that time in the conversation (a reaction, reply or
    /// unsend target the daemon never saw, or an unsend of someone else's message).
    #[error("no message {what} sent at {sent_at_ms} in this conversation")]
    UnknownMessage {
        /// Whose message was looked for ("of yours", "by that author").
        what: &'static str,
        /// The timestamp given.
        sent_at_ms: u64,
    },

    /// The identity has no attachment with this id.
    #[error("no attachment {id}")]
    UnknownAttachment {
        /// The attachment id (the caller's own input).
        id: String,
    },
}

impl StoreError {
    /// Wraps a redb error, saying what the store was doing.
    pub(crate) fn db(action: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
        move |source| StoreError::Db {
            action,
            source: Box::new(source),
        }
    }
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::InUse { .. } => ErrorKind::InUse,
            StoreError::Corrupt { .. }
            | StoreError::Foreign { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::BadRecord { .. } => ErrorKind::CorruptState,
            StoreError::Fs { .. } | StoreError::Db { .. } => ErrorKind::LocalIo,
            StoreError::NameTaken { .. }
            | StoreError::AccountTaken { .. }
            | StoreError::HandleTaken { .. } => ErrorKind::AlreadyExists,
            StoreError::UnknownIdentity { .. }
            | StoreError::UnknownOutboxEntry { .. }
            | StoreError::UnknownConversation { .. }
            | StoreError::UnknownMessage { .. } => ErrorKind::NotFound,
            StoreError::UnknownAttachment { .. } => ErrorKind::NotFound,
            StoreError::BadHandle { .. } | StoreError::SeqPastEnd { .. } => ErrorKind::InvalidInput,
            StoreError::Locked { .. } => ErrorKind::Unauthenticated,
            StoreError::Secrets(e) => e.kind(),
            StoreError::UnknownWebhook { .. } => ErrorKind::NotFound,
            StoreError::WebhookTaken { .. } => ErrorKind::AlreadyExists,
        }
    }
}
