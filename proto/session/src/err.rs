//! Error types of the protocol crate, each with a [`ErrorKind`] from one shared vocabulary.
//!
//! Front ends (gRPC, IRC, Matrix, the CLI) map an [`ErrorKind`] to their own protocol in exactly
//! one function each; the variants carry the context a person needs to act.

/// What sort of failure an error is, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input was malformed: wrong length, bad encoding, unknown word, bad JSON.
    InvalidInput,
    /// A cryptographic check failed: bad signature, MAC mismatch, wrong recipient.
    BadCrypto,
    /// The input is well-formed but uses a feature or version we do not support.
    Unsupported,
    /// A peer's reply broke the protocol.
    ProtocolViolation,
}

/// Errors that can say which [`ErrorKind`] they are.
pub trait HasKind {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

// ------------------------------------------------------------------------------------------------
// Identity, recovery password and messages (account_id, keys, mnemonic, padding, message, protos)
// ------------------------------------------------------------------------------------------------

// (owned by the identity & messages work)

//
//
//
//
//
//
//
//
//
//

// ------------------------------------------------------------------------------------------------
// Network protocol (storage_rpc, swarm, onion, bencode)
// ------------------------------------------------------------------------------------------------

// (owned by the network protocol work)

/// A storage-RPC request or reply could not be parsed or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The body is not JSON of the expected shape.
    #[error("invalid request body: {0}")]
    BadJson(String),
    /// The method name is not one this crate knows.
    #[error("invalid request: unknown method {0:?}")]
    UnknownMethod(String),
    /// The params of a known method are invalid.
    #[error("invalid request: {method}: {reason}")]
    BadParams {
        /// The method.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A request signature is missing or does not verify.
    #[error("{method}: {reason}")]
    BadSignature {
        /// The method.
        method: &'static str,
        /// Why it failed.
        reason: &'static str,
    },
}

impl RpcError {
    /// The HTTP status a snode answers with: 400 for malformed requests, 401 for signatures.
    pub fn status(&self) -> u16 {
        match self {
            RpcError::BadJson(_) | RpcError::UnknownMethod(_) | RpcError::BadParams { .. } => 400,
            RpcError::BadSignature { .. } => 401,
        }
    }
}

impl HasKind for RpcError {
    fn kind(&self) -> ErrorKind {
        match self {
            RpcError::BadJson(_) | RpcError::BadParams { .. } => ErrorKind::InvalidInput,
            RpcError::UnknownMethod(_) => ErrorKind::Unsupported,
            RpcError::BadSignature { .. } => ErrorKind::BadCrypto,
        }
    }
}
