//! Error types of the devnet: startup and transport errors, and wire-format errors.

use std::path::PathBuf;

use session_proto::err::{ErrorKind, HasKind};

/// Errors starting, running or talking to a devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// The configuration cannot describe a network.
    #[error("bad devnet configuration: {0}")]
    Config(String),
    /// A node could not bind its HTTPS port.
    #[error("node {node}: cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// Index of the node.
        node: usize,
        /// The port asked for (0 = ephemeral).
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Building a TLS configuration or certificate failed.
    #[error("TLS setup failed ({what}): {reason}")]
    Tls {
        /// Which step.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The message store (redb) failed.
    #[error("message store at {path:?} failed: {reason}")]
    Store {
        /// The file or directory involved.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file (keys, devnet.json) could not be read or written.
    #[error("cannot {what} {path:?}: {source}")]
    File {
        /// What we were doing ("read", "write", "create").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An HTTPS request to a node could not be made or answered.
    #[error("HTTPS request to {url} failed: {reason}")]
    Http {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// An HTTPS request to a node timed out.
    #[error("HTTPS request to {url} timed out")]
    Timeout {
        /// The URL asked.
        url: String,
    },
}

impl HasKind for DevnetError {
    fn kind(&self) -> ErrorKind {
        match self {
            DevnetError::Config(_) => ErrorKind::InvalidInput,
            DevnetError::Tls { .. } => ErrorKind::Unsupported,
            // ErrorKind has no I/O or "unavailable" kind yet; these are failures of the
            // environment or of a peer, the closest being ProtocolViolation.
            DevnetError::Bind { .. }
            | DevnetError::Store { .. }
            | DevnetError::File { .. }
            | DevnetError::Http { .. }
            | DevnetError::Timeout { .. } => ErrorKind::ProtocolViolation,
        }
    }
}

/// Errors decoding the onion and storage-RPC wire formats the devnet handles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// An onion frame `u32_le(len) || blob || json` is malformed.
    #[error("bad onion frame: {0}")]
    Frame(&'static str),
    /// A key has the wrong length or is not a valid point.
    #[error("bad {what}: {reason}")]
    BadKey {
        /// Which key.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An onion layer or reply did not decrypt (MAC mismatch, too short).
    #[error("decryption failed")]
    Decrypt,
    /// An `enc_type` we do not know.
    #[error("unknown enc_type {0:?}")]
    UnknownEncType(String),
    /// Bad JSON in an onion layer.
    #[error("bad onion JSON: {0}")]
    Json(String),
}

impl HasKind for WireError {
    fn kind(&self) -> ErrorKind {
        match self {
            WireError::Frame(_) | WireError::BadKey { .. } | WireError::Json(_) => {
                ErrorKind::InvalidInput
            }
            WireError::Decrypt => ErrorKind::BadCrypto,
            WireError::UnknownEncType(_) => ErrorKind::Unsupported,
        }
    }
}
