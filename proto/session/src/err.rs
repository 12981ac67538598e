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
