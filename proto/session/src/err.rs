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

/// Why an Account ID did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountIdError {
    /// The hex form was not 66 characters long.
    #[error("an Account ID is 66 hex characters, got {len}")]
    WrongHexLength {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The byte form was not 33 bytes long.
    #[error("an Account ID is 33 bytes, got {len}")]
    WrongByteLength {
        /// Length of the input.
        len: usize,
    },
    /// The input had a character that is not hex.
    #[error("an Account ID must be hex digits only")]
    BadHex,
    /// The first byte is not one of 05, 03, 15, 25, 00.
    #[error("unknown Account ID prefix {prefix:02x} (expected 05, 03, 15, 25 or 00)")]
    UnknownPrefix {
        /// The first byte.
        prefix: u8,
    },
}

impl HasKind for AccountIdError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Why a public key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The 32 bytes are not the encoding of a curve point.
    #[error("not a valid Ed25519 public key: not a curve point")]
    NotAPoint,
    /// The point has small order (it would give a predictable shared secret).
    #[error("not a valid Ed25519 public key: small-order point")]
    SmallOrder,
    /// The point has a torsion component (libsodium refuses to convert such keys).
    #[error("not a valid Ed25519 public key: not in the prime-order subgroup")]
    NotInPrimeSubgroup,
}

impl HasKind for KeyError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Why a recovery password (or other mnemonic) did not decode or encode.
///
/// The Display text may name a word of the phrase; like the phrase itself it must not reach a
/// log line at info or above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MnemonicError {
    /// No words at all.
    #[error("the recovery password is empty")]
    Empty,
    /// The number of words is not one the caller accepts.
    #[error("expected {expected} words, got {got}")]
    WrongWordCount {
        /// How many words there were.
        got: usize,
        /// What was expected, e.g. "13".
        expected: &'static str,
    },
    /// A word whose first three letters match no word of the list.
    #[error("unknown word \"{word}\" (word {position})")]
    UnknownWord {
        /// The word as given.
        word: String,
        /// 1-based position in the phrase.
        position: usize,
    },
    /// The last word is not the checksum of the others.
    #[error("the checksum word (word {position}) does not match the other words")]
    ChecksumMismatch {
        /// 1-based position of the checksum word.
        position: usize,
    },
    /// Three words that decode to a value above 2^32 - 1.
    #[error("words {position}-{} do not form a valid group", position + 2)]
    OverflowingTriplet {
        /// 1-based position of the first word of the group.
        position: usize,
    },
    /// Bytes to encode must be a multiple of 4 long.
    #[error("a mnemonic encodes a multiple of 4 bytes, got {len}")]
    WrongByteLength {
        /// Length of the input.
        len: usize,
    },
}

impl HasKind for MnemonicError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Why a one-to-one message could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// One-to-one messages go to standard (`05`) Account IDs only.
    #[error("cannot encrypt to an Account ID with prefix {prefix:02x}: one-to-one messages need a 05 ID")]
    RecipientNotStandard {
        /// The recipient's prefix byte.
        prefix: u8,
    },
    /// The recipient's X25519 key has small order (the shared secret would be all zeros).
    #[error("the recipient's X25519 key is a small-order point")]
    WeakRecipientKey,
    /// The stored `data` field was not valid base64.
    #[error("message data is not valid base64")]
    Base64,
    /// A "v2" (PFS + ML-KEM) message, which released clients do not send and we do not read.
    #[error("v2 (PFS) one-to-one messages are not supported")]
    V2Unsupported,
    /// A payload starting with 0x00 but not 0x00 0x02.
    #[error("unknown versioned message format 00 {version:02x}")]
    UnknownVersion {
        /// The second byte.
        version: u8,
    },
    /// The WebSocketMessage protobuf did not parse.
    #[error("malformed WebSocketMessage: {0}")]
    WebSocket(prost::DecodeError),
    /// The WebSocketMessage carries no request body.
    #[error("WebSocketMessage has no request body")]
    NoRequestBody,
    /// The Envelope protobuf did not parse.
    #[error("malformed Envelope: {0}")]
    Envelope(prost::DecodeError),
    /// The Envelope carries no content.
    #[error("Envelope has no content")]
    NoContent,
    /// Envelope `source` must be absent, empty or 66 hex characters.
    #[error("Envelope source must be empty or 66 hex characters, got {len} characters")]
    BadSource {
        /// Length of the field.
        len: usize,
    },
    /// Envelope `proSig`, when present, must be 64 bytes.
    #[error("Envelope proSig must be 64 bytes, got {len}")]
    BadProSig {
        /// Length of the field.
        len: usize,
    },
    /// The sealed box is shorter than the smallest possible message.
    #[error("ciphertext too short: {len} bytes, need at least {min}")]
    TooShort {
        /// Length of the ciphertext.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The sealed box did not open: not for this identity, or altered.
    #[error("could not decrypt the message (not for this identity, or corrupted)")]
    SealOpen,
    /// The sender's signature over the message, its key and our key did not verify.
    #[error("the sender's signature does not verify")]
    BadSignature,
    /// The sender's Ed25519 key cannot be converted to an Account ID.
    #[error("bad sender key: {0}")]
    BadSenderKey(KeyError),
    /// The decrypted Content protobuf did not parse.
    #[error("malformed Content: {0}")]
    Content(prost::DecodeError),
    /// `Content.sigTimestamp` differs from `Envelope.timestamp` (both non-zero).
    #[error("Content sigTimestamp {content} differs from Envelope timestamp {envelope}")]
    TimestampMismatch {
        /// Envelope.timestamp.
        envelope: u64,
        /// Content.sigTimestamp.
        content: u64,
    },
}

impl HasKind for MessageError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::RecipientNotStandard { .. }
            | Self::WeakRecipientKey
            | Self::Base64
            | Self::WebSocket(_)
            | Self::NoRequestBody
            | Self::Envelope(_)
            | Self::NoContent
            | Self::BadSource { .. }
            | Self::BadProSig { .. }
            | Self::TooShort { .. }
            | Self::Content(_)
            | Self::TimestampMismatch { .. } => ErrorKind::InvalidInput,
            Self::V2Unsupported | Self::UnknownVersion { .. } => ErrorKind::Unsupported,
            Self::SealOpen | Self::BadSignature | Self::BadSenderKey(_) => ErrorKind::BadCrypto,
        }
    }
}

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
    /// A payload too large for the 4-byte length prefixes of the onion frames.
    #[error("an onion payload of {0} bytes is too large")]
    TooLarge(usize),
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

// ------------------------------------------------------------------------------------------------
// Config messages (config): bt data, merge, encryption, wrapping, multipart, typed views
// ------------------------------------------------------------------------------------------------

/// A config message, its encryption or one of its parts could not be used.
///
/// Variants name what was wrong and where, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The bt-encoding is malformed at byte `at`.
    #[error("malformed bt-encoding at byte {at}: {reason}")]
    Bt {
        /// Offset of the problem.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The bt-encoding is well-formed but the message breaks a config rule.
    #[error("invalid config message: {0}")]
    Invalid(&'static str),
    /// A signature is required and missing.
    #[error("config message has no signature")]
    MissingSignature,
    /// The signature does not verify.
    #[error("config message signature does not verify")]
    BadSignature,
    /// The ciphertext did not decrypt with any key (wrong key, wrong domain, or altered).
    #[error("config message did not decrypt (wrong key or domain, or corrupted)")]
    Decrypt,
    /// The ciphertext is shorter than the encryption overhead.
    #[error("config ciphertext of {len} bytes is shorter than the {min}-byte overhead")]
    TooShort {
        /// Length of the ciphertext.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The decrypted plaintext is all padding.
    #[error("config plaintext is empty")]
    Empty,
    /// The plaintext starts with a type byte we do not know (not `d`, `z` or `m`).
    #[error("config plaintext has unknown type byte {0:#04x}")]
    UnknownType(u8),
    /// zstd decompression failed or the result is too large.
    #[error("config decompression failed: {0}")]
    Decompress(&'static str),
    /// A config is larger than we accept or can send.
    #[error("config of {size} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// The size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A multipart part is malformed or does not fit its set.
    #[error("invalid multipart config part: {0}")]
    Multipart(&'static str),
    /// The legacy protobuf wrapper is malformed, not ours, or of the wrong kind.
    #[error("invalid legacy config wrapper: {0}")]
    Wrapper(&'static str),
    /// A saved config state (dump) does not parse.
    #[error("invalid config dump: {0}")]
    Dump(&'static str),
    /// A value given to a typed view is out of range (a name too long, a bad ID).
    #[error("invalid config value: {0}")]
    Value(&'static str),
    /// A read-only config (no signing key) cannot be changed.
    #[error("this config is read-only")]
    ReadOnly,
}

impl HasKind for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingSignature | Self::BadSignature | Self::Decrypt => ErrorKind::BadCrypto,
            Self::UnknownType(_) => ErrorKind::Unsupported,
            Self::Dump(_) => ErrorKind::CorruptState,
            Self::ReadOnly => ErrorKind::PermissionDenied,
            _ => ErrorKind::InvalidInput,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Communities (community): URLs, blinding, X-SOGS auth, room messages, blinded DMs
// ------------------------------------------------------------------------------------------------

/// A community URL, blinded key, request signature, room message or community DM was
/// malformed or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommunityError {
    /// The community URL does not have the `SCHEME://HOST[:PORT]/ROOM?public_key=PK` form.
    #[error("invalid community URL: {0}")]
    BadUrl(&'static str),
    /// The URL has no `public_key`, or one that is not 64 hex, 43/44 base64 or 52 z-base-32
    /// characters.
    #[error("invalid community URL: {0}")]
    BadServerKey(&'static str),
    /// A room token that is empty, longer than 64 characters, or has characters outside
    /// `[A-Za-z0-9_-]`.
    #[error("invalid room token: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    BadRoomToken,
    /// A blinded ID was asked of an ID that is not a standard (`05`) Account ID.
    #[error("expected a standard (05) Account ID, got prefix {prefix:02x}")]
    NotStandard {
        /// The prefix byte given.
        prefix: u8,
    },
    /// A community ID with a prefix other than the one this operation needs.
    #[error("expected a {expected} community ID, got prefix {prefix:02x}")]
    WrongPrefix {
        /// What was expected, e.g. "15 (blinded)".
        expected: &'static str,
        /// The prefix byte given.
        prefix: u8,
    },
    /// 32 bytes that are not a usable Ed25519 point (not on the curve, small order or with a
    /// torsion component).
    #[error("{what} is not a valid Ed25519 point")]
    BadPoint {
        /// Which key, e.g. "the recipient's blinded key".
        what: &'static str,
    },
    /// The X-SOGS-* headers were only partly present (all four or none are allowed).
    #[error("incomplete X-SOGS-* headers: {missing} is missing")]
    PartialAuth {
        /// The first header name that is missing.
        missing: &'static str,
    },
    /// An X-SOGS-* header value is malformed.
    #[error("invalid {header}: {reason}")]
    BadAuthHeader {
        /// The header name.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The server requires blinded (`15`) keys and the request used an unblinded one.
    #[error("Invalid authentication: this server requires the use of blinded ids")]
    BlindingRequired,
    /// The X-SOGS-Timestamp is too far from the server's clock.
    #[error("X-SOGS-Timestamp is {skew_secs} s away from the server's clock (at most {max_secs} s allowed)")]
    TimestampSkew {
        /// How far off, in seconds.
        skew_secs: u64,
        /// The allowed window.
        max_secs: u64,
    },
    /// The request signature, or a room message signature, does not verify.
    #[error("{what} signature does not verify")]
    BadSignature {
        /// Whose signature: "request", "message".
        what: &'static str,
    },
    /// A field of a room message or DM was not valid base64, or had the wrong length.
    #[error("invalid {field}: {reason}")]
    BadField {
        /// The JSON field, e.g. "data", "signature".
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A room message's Content (after unpadding) did not parse.
    #[error("malformed Content in a community message: {0}")]
    Content(prost::DecodeError),
    /// `Content.sigTimestamp` is more than 6 h from the server's `posted` time.
    #[error("sigTimestamp {sig_timestamp_ms} ms is more than 6 h from posted {posted_ms} ms")]
    StaleTimestamp {
        /// Content.sigTimestamp.
        sig_timestamp_ms: u64,
        /// The server's posted time in ms.
        posted_ms: u64,
    },
    /// A community DM with a version byte other than 0.
    #[error("unknown community DM version {0:#04x}")]
    DmVersion(u8),
    /// A community DM shorter than version + tag + nonce + sender key.
    #[error("community DM too short: {len} bytes, need at least {min}")]
    DmTooShort {
        /// Length given.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A community DM that does not decrypt (not for this key pair, or altered).
    #[error("could not decrypt the community DM (not for this identity, or corrupted)")]
    DmDecrypt,
    /// The Ed25519 key inside a community DM does not blind to the claimed sender.
    #[error("the community DM's sender key does not match its blinded sender ID")]
    DmSenderMismatch,
    /// Neither the sender nor the recipient of a community DM is this identity.
    #[error("the community DM is neither from nor to this identity's blinded ID")]
    DmNotOurs,
}

impl HasKind for CommunityError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadUrl(_)
            | Self::BadServerKey(_)
            | Self::BadRoomToken
            | Self::NotStandard { .. }
            | Self::WrongPrefix { .. }
            | Self::BadPoint { .. }
            | Self::PartialAuth { .. }
            | Self::BadAuthHeader { .. }
            | Self::BadField { .. }
            | Self::Content(_)
            | Self::StaleTimestamp { .. }
            | Self::DmTooShort { .. } => ErrorKind::InvalidInput,
            Self::BlindingRequired | Self::DmVersion(_) => ErrorKind::Unsupported,
            Self::TimestampSkew { .. } => ErrorKind::ClockSkew,
            Self::BadSignature { .. }
            | Self::DmDecrypt
            | Self::DmSenderMismatch
            | Self::DmNotOurs => ErrorKind::BadCrypto,
        }
    }
}

impl CommunityError {
    /// The status a community server answers with for a request that fails this way
    /// (pysogs `routes/auth.py`): 400 for malformed auth, 401 for a bad signature, 425 for
    /// clock skew.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadSignature { .. } => 401,
            Self::TimestampSkew { .. } => 425,
            _ => 400,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Attachments (attachment)
// ------------------------------------------------------------------------------------------------

/// An attachment could not be encrypted, decrypted, described or located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The file is larger than the scheme allows for sending.
    #[error("attachment of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Plaintext length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The encryptor was fed a different number of bytes than it was told at the start.
    #[error("attachment data was declared as {declared} bytes but {got} were given")]
    LengthMismatch {
        /// Bytes declared.
        declared: u64,
        /// Bytes given (so far, when over).
        got: u64,
    },
    /// The pointer carries no key.
    #[error("the attachment has no key")]
    MissingKey,
    /// The key has the wrong length for its scheme.
    #[error("an attachment key for the {scheme} scheme is {expected} bytes, got {len}")]
    BadKeyLength {
        /// `legacy` or `stream`.
        scheme: &'static str,
        /// Expected length.
        expected: usize,
        /// Given length.
        len: usize,
    },
    /// A legacy attachment without a digest (released clients refuse these too).
    #[error("the attachment has no digest")]
    MissingDigest,
    /// The digest is not 32 bytes.
    #[error("an attachment digest is 32 bytes, got {len}")]
    BadDigestLength {
        /// Given length.
        len: usize,
    },
    /// More encrypted bytes arrived than any attachment may have.
    #[error("encrypted attachment is over the {max}-byte limit")]
    Oversized {
        /// The limit.
        max: u64,
    },
    /// The encrypted data ended early or has an impossible length.
    #[error("encrypted attachment is truncated or malformed ({len} bytes): {reason}")]
    Truncated {
        /// Bytes received.
        len: u64,
        /// What is missing.
        reason: &'static str,
    },
    /// SHA-256 of the downloaded blob is not the pointer's digest: the download is corrupt or
    /// is not this attachment.
    #[error("the downloaded attachment does not match its digest")]
    DigestMismatch,
    /// The HMAC of a legacy blob does not verify: wrong key, or altered data.
    #[error("the attachment's MAC does not verify (wrong key or altered data)")]
    BadMac,
    /// A stream chunk did not authenticate: wrong key, or altered data.
    #[error("attachment chunk {chunk} does not authenticate (wrong key or altered data)")]
    ChunkAuth {
        /// 0-based chunk index.
        chunk: u64,
    },
    /// The decrypted padding is malformed (PKCS#7, or the stream's zero run and 0x01 marker).
    #[error("the attachment's padding is malformed")]
    BadPadding,
    /// The decrypted data is shorter than the pointer's `size`.
    #[error("the attachment decrypted to {got} bytes, its pointer says {size}")]
    ShortPlaintext {
        /// The pointer's size.
        size: u64,
        /// Bytes decrypted.
        got: u64,
    },
    /// A stream-scheme blob does not start with `S` (0x53).
    #[error("not a stream-encrypted attachment: first byte {first:#04x}, expected 0x53")]
    NotStreamFormat {
        /// The first byte.
        first: u8,
    },
    /// Data after the stream's final chunk.
    #[error("data after the final chunk of the attachment")]
    TrailingData,
    /// The attachment URL is malformed.
    #[error("invalid attachment URL: {0}")]
    BadUrl(&'static str),
    /// The URL's `p=` server key is not a usable Ed25519 key.
    #[error("invalid file server key in the attachment URL: {0}")]
    BadServerKey(KeyError),
    /// The file server answered with an error status (404: unknown or expired; 413: too
    /// large or empty).
    #[error("the file server answered {status}")]
    ServerStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The file server's answer is not what its API gives.
    #[error("unexpected file server reply: {0}")]
    BadServerReply(&'static str),
}

impl HasKind for AttachmentError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::DigestMismatch | Self::BadMac | Self::ChunkAuth { .. } | Self::BadPadding => {
                ErrorKind::BadCrypto
            }
            Self::ServerStatus { status: 404 } => ErrorKind::NotFound,
            Self::ServerStatus { status: 413 } => ErrorKind::Rejected,
            Self::ServerStatus { status: 429 | 503 } => ErrorKind::Busy,
            Self::ServerStatus { .. } | Self::BadServerReply(_) => ErrorKind::ProtocolViolation,
            _ => ErrorKind::InvalidInput,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Groups v2 (groups): keys messages, group messages, subaccounts, kicked notices, control messages
// ------------------------------------------------------------------------------------------------

/// A group keys message, group message, subaccount credential, kicked notice or control message
/// could not be built or was refused.
///
/// Variants say what was wrong, never the content (no keys, no message bodies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The bt-encoding is malformed at byte `at`.
    #[error("malformed bt-encoding at byte {at}: {reason}")]
    Bt {
        /// Offset of the problem.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Well-formed bt, but a field is missing or has the wrong type or size.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which structure (e.g. "keys message").
        what: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A signature by the group key (or the sender) is missing or does not verify.
    #[error("{what}: signature does not verify")]
    BadSignature {
        /// What was signed (e.g. "keys message", "group message").
        what: &'static str,
    },
    /// No known key decrypts the ciphertext (not for us, or altered).
    #[error("{what}: could not decrypt with any known key")]
    Decrypt {
        /// What did not decrypt.
        what: &'static str,
    },
    /// The ciphertext is shorter than its overhead.
    #[error("{what} of {len} bytes is shorter than the {min}-byte minimum")]
    TooShort {
        /// What was short.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The plaintext is too large to send, or decompresses to more than the limit.
    #[error("{what} is larger than {max} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// An ID that should be a group's (`03…`) has another prefix.
    #[error("not a group ID: prefix {prefix:02x} (groups have 03)")]
    NotAGroupId {
        /// The prefix byte.
        prefix: u8,
    },
    /// The group's Ed25519 key is not a usable point.
    #[error("bad group key: {0}")]
    BadGroupKey(KeyError),
    /// A member's Account ID is not a usable `05` ID.
    #[error("bad member Account ID: {reason}")]
    BadMember {
        /// What was wrong.
        reason: &'static str,
    },
    /// The operation needs the group's secret key (an admin) and we only have member keys.
    #[error("{what} needs the group admin key")]
    NotAdmin {
        /// What was attempted.
        what: &'static str,
    },
    /// We hold no group key yet, so nothing can be encrypted.
    #[error("no group encryption key is known yet")]
    NoKey,
    /// The subaccount credential (memberAuthData or token) is malformed or refused.
    #[error("bad subaccount credential: {reason}")]
    Subaccount {
        /// What was wrong.
        reason: &'static str,
    },
    /// A zstd-compressed payload did not decompress.
    #[error("{what}: compressed data does not decompress")]
    Decompress {
        /// What did not decompress.
        what: &'static str,
    },
    /// A protobuf inside a group message did not parse.
    #[error("malformed {what}: {reason}")]
    Protobuf {
        /// Which message (Envelope, Content).
        what: &'static str,
        /// prost's description.
        reason: String,
    },
    /// A message of a retired legacy (`05`-keyed) closed group.
    #[error("legacy closed group ({what}): unsupported, only groups with 03 IDs are")]
    LegacyGroup {
        /// What was recognised.
        what: &'static str,
    },
}

impl HasKind for GroupError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Bt { .. }
            | Self::Invalid { .. }
            | Self::TooShort { .. }
            | Self::TooLarge { .. }
            | Self::NotAGroupId { .. }
            | Self::BadMember { .. }
            | Self::Decompress { .. }
            | Self::Protobuf { .. } => ErrorKind::InvalidInput,
            Self::BadSignature { .. }
            | Self::Decrypt { .. }
            | Self::BadGroupKey(_)
            | Self::Subaccount { .. } => ErrorKind::BadCrypto,
            Self::NotAdmin { .. } => ErrorKind::PermissionDenied,
            Self::NoKey => ErrorKind::NotFound,
            Self::LegacyGroup { .. } => ErrorKind::Unsupported,
        }
    }
}
