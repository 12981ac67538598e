//! Error types of the devnet: startup and transport errors (wire-format errors are
//! session-proto's).

use std::path::PathBuf;

use session_proto::err::{ErrorKind, HasKind};

/// Errors starting, running or talking to a devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// A server beside the snodes (file server) could not bind its port.
    #[error("{server}: cannot listen on 127.0.0.1:{port}: {source}")]
    ServerBind {
        /// Which server.
        server: &'static str,
        /// The port asked for (0 = ephemeral).
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
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
            | DevnetError::ServerBind { .. }
            | DevnetError::Store { .. }
            | DevnetError::File { .. }
            | DevnetError::Http { .. }
            | DevnetError::Timeout { .. } => ErrorKind::ProtocolViolation,
        }
    }
}
