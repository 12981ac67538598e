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
    /// The thing asked for does not exist (an unknown identity, contact or message).
    NotFound,
    /// The thing to create exists already (an identity name or Account ID that is taken).
    AlreadyExists,
    /// The caller gave no credentials, or credentials that are not valid.
    Unauthenticated,
    /// The caller is known but may not do this (a token used for another identity).
    PermissionDenied,
    /// A local resource is held by another process (a second daemon on the same data dir).
    InUse,
    /// Local state is damaged or belongs to something else (a corrupt or foreign data file,
    /// a newer schema).
    CorruptState,
    /// A local file or storage operation failed (permissions, disk full).
    LocalIo,
    /// The service asked for is not running (yet) in this daemon.
    Unavailable,
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
