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
    /// The network could not be reached at all: no seed or snode answered, no path could be built.
    NetworkUnreachable,
    /// A peer did not answer in time.
    Timeout,
    /// Our clock and the network's disagree too much for a signed request or a timestamp.
    ClockSkew,
    /// A peer understood the request and refused it (bad signature, bad parameters, forbidden).
    Rejected,
    /// A peer is busy, rate limiting or not ready; the same request may succeed later.
    Busy,
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

/// An onion request or reply could not be built, opened or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnionError {
    /// A frame is shorter than its length prefix says.
    #[error("onion frame truncated: need {needed} bytes, have {got}")]
    FrameTruncated {
        /// Bytes the prefix announces (plus the prefix).
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The JSON part of a frame is not the expected object.
    #[error("invalid onion frame JSON: {0}")]
    BadFrameJson(String),
    /// `ephemeral_key` is not 64 hex digits.
    #[error("invalid ephemeral_key")]
    BadEphemeralKey,
    /// `enc_type` names a scheme we do not speak.
    #[error("unsupported enc_type {0:?}")]
    UnknownEncType(String),
    /// An X25519 exchange gave all zeros (small-order peer key).
    #[error("invalid X25519 peer key")]
    BadPeerKey,
    /// A layer did not decrypt (short, or failed authentication).
    #[error("Invalid ciphertext")]
    Decrypt,
    /// The decrypted routing instructions are incomplete or malformed.
    #[error("invalid onion routing: {0}")]
    BadRouting(String),
    /// The request has gone through too many hops.
    #[error("too many onion hops: {0}")]
    TooManyHops(u32),
    /// A proxy target outside `/oxen/…/lsrpc`, `/loki/…/lsrpc`.
    #[error("onion proxy target not allowed: {0:?}")]
    TargetNotAllowed(String),
    /// The builder was given no path.
    #[error("an onion path needs at least one hop")]
    EmptyPath,
    /// The builder was given the wrong number of explicit layer secrets.
    #[error("expected {expected} layer secrets, got {got}")]
    LayerCount {
        /// Hops + 1.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// A reply from the destination is malformed after decryption.
    #[error("invalid onion reply: {0}")]
    BadReply(String),
    /// A v4 payload is not valid bencode of the expected shape.
    #[error("invalid v4 payload: {0}")]
    Bencode(#[from] BencodeError),
}

impl OnionError {
    /// The HTTP status a snode answers with for this error on the path (network.md §5.4):
    /// 400 for anything wrong with the request ("Invalid ciphertext" included); 502 for a
    /// malformed reply seen by a client.
    pub fn status(&self) -> u16 {
        match self {
            OnionError::BadReply(_) => 502,
            _ => 400,
        }
    }
}

impl HasKind for OnionError {
    fn kind(&self) -> ErrorKind {
        match self {
            OnionError::Decrypt | OnionError::BadPeerKey => ErrorKind::BadCrypto,
            OnionError::UnknownEncType(_) => ErrorKind::Unsupported,
            OnionError::BadReply(_) => ErrorKind::ProtocolViolation,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// A bencoded v4 payload could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// Input ended early.
    #[error("bencode truncated at byte {0}")]
    Truncated(usize),
    /// A byte that does not fit the grammar.
    #[error("unexpected byte {byte:#04x} at {at} in bencode")]
    Unexpected {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// A string length that is malformed (leading zero, too long).
    #[error("bad bencode string length at {0}")]
    BadLength(usize),
    /// Bytes after the final `e`.
    #[error("trailing bytes after bencode list at {0}")]
    Trailing(usize),
    /// The list has the wrong number of items.
    #[error("expected a list of {expected} strings, got {got}")]
    Count {
        /// Expected item count description.
        expected: &'static str,
        /// Got.
        got: usize,
    },
    /// The JSON part of a v4 request/response is invalid.
    #[error("invalid v4 JSON: {0}")]
    Json(String),
}

impl HasKind for BencodeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}
