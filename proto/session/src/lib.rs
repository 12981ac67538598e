//! The Session wire protocol as pure code: bytes in, bytes out, time and randomness as arguments.
//!
//! Nothing here opens a socket, spawns a task or reads the clock, so the same code serves the
//! daemon, the devnet's snodes and the tests.
//!
//! # Layout
//! - [`account_id`]: Account IDs (`05…`, `03…`, `15…`, `25…`, `00…`) and their parsing.
//! - [`keys`]: identity keys from a 32-byte seed (Ed25519 and the X25519 conversion).
//! - [`mnemonic`]: the 13-word recovery password (English list, checksum word).
//! - [`padding`]: the 160-byte message padding and its tolerant removal.
//! - [`protos`]: the Session protobufs (`SessionProtos.proto`, `WebSocketResources.proto`) via prost.
//! - [`message`]: one-to-one messages, v1: sign, seal, Envelope, WebSocketMessage, base64; and back.
//! - [`interaction`]: replies, reactions, unsend, read receipts, disappearing timers, request
//!   responses, data-extraction notices: builders and the receiver's reading of them.
//! - [`storage_rpc`]: storage-server RPC bodies, signed byte strings, the message hash, 421 replies.
//! - [`swarm`]: swarm space of an Account ID and the closest-swarm rule.
//! - [`onion`]: onion requests: per-hop encryption, the frame, the client builder, the relay peel,
//!   reply encryption.
//! - [`bencode`]: the small bencode subset onion v4 requests use.
//! - [`groups`]: groups v2 (`03…`): keys messages, group messages, subaccounts, kicked notices,
//!   control messages; legacy groups recognised and refused.
//! - [`config`]: account and group config messages: format, merge, encryption, typed views.
//! - [`community`]: communities (SOGS): URLs, blinded keys, X-SOGS auth, room messages, DMs.
//! - [`attachment`]: attachment encryption (legacy AES-CBC + HMAC, libsession's stream),
//!   pointers and file server URLs.
//! - [`err`]: the error types, each with a [`err::ErrorKind`].

pub mod account_id;
pub mod attachment;
pub mod bencode;
pub mod community;
pub mod config;
pub mod err;
pub mod groups;
pub mod interaction;
pub mod keys;
pub mod message;
pub mod mnemonic;
pub mod onion;
pub mod padding;
pub mod protos;
pub mod storage_rpc;
pub mod swarm;
