//! Storage-server RPC (network.md §4): request and reply bodies, namespace rules, the message
//! hash, and the byte strings that request and result signatures cover.
//!
//! Used on both sides: the gateway builds [`Request`]s and parses replies; the devnet's snodes
//! parse [`Request::from_json`], check [`Request::verify_signature`] and the clock tolerances
//! here, and build replies with per-member signatures from [`sign`].
//!
//! # Layout
//! - [`wire`]: JSON encodings of field types (hex account ids, base64 signatures and data…).
//! - [`request`]: params structs per method and the [`Request`] enum.
//! - [`reply`]: reply bodies, including the recursive `swarm` map and the 421 body.
//! - [`sign`]: signed byte strings, signing and snode-side verification.

pub mod reply;
pub mod request;
pub mod sign;
pub mod wire;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

pub use reply::*;
pub use request::*;
pub use wire::{
    Base64Bytes, Ed25519Pubkey, NamespaceOrAll, OneOrMany, Sig, SubaccountToken, UserPubkey,
    X25519Pubkey,
};

/// Maximum message `data` size in bytes.
pub const MAX_MESSAGE_BODY: usize = 76_800;
/// Maximum message `data` size as base64 characters.
pub const MAX_MESSAGE_BODY_BASE64: usize = MAX_MESSAGE_BODY / 3 * 4;
/// Minimum TTL, ms (10 s).
pub const TTL_MIN_MS: u64 = 10_000;
/// Maximum TTL for public-inbox namespaces (ns % 10 == 0), ms (14 days).
pub const TTL_MAX_PUBLIC_MS: u64 = 14 * 24 * 3600 * 1000;
/// Maximum TTL for other namespaces and for expiry updates, ms (30 days).
pub const TTL_MAX_PRIVATE_MS: u64 = 30 * 24 * 3600 * 1000;
/// Maximum subrequests in a `batch` or `sequence`.
pub const BATCH_MAX: usize = 20;
/// Signed-request timestamp tolerance, ms (±60 s).
pub const SIGNATURE_TOLERANCE_MS: u64 = 60_000;
/// Signed-request timestamp tolerance for requests forwarded inside a swarm, ms (±70 s).
pub const SIGNATURE_TOLERANCE_FORWARDED_MS: u64 = 70_000;
/// `store`: `timestamp` may be at most this far ahead and expiry this far behind, ms (10 s).
pub const STORE_TOLERANCE_MS: u64 = 10_000;
/// `retrieve`: maximum aggregate size of the returned messages, bytes.
pub const RETRIEVE_MAX_SIZE: u64 = 7_800_000;
/// Length of a message hash (unpadded base64 of 32 bytes).
pub const HASH_LEN: usize = 43;

/// A namespace's part of signed messages and of the message hash: empty for 0, else base-10.
pub fn ns_str(ns: i16) -> String {
    if ns == 0 {
        String::new()
    } else {
        ns.to_string()
    }
}

/// Public inbox (anyone may store, TTL ≤ 14 days): namespaces divisible by 10.
pub fn is_public_inbox(ns: i16) -> bool {
    ns % 10 == 0
}

/// Public outbox: `−(20n+1)` (−1, −21, …): one message, a store replaces it, unauthenticated
/// retrieve.
pub fn is_public_outbox(ns: i16) -> bool {
    ns < 0 && (-i32::from(ns)) % 20 == 1
}

/// Namespaces `−(100n+11)` (−11, −111, …): a revoked subaccount may still retrieve.
pub fn is_unrevocable(ns: i16) -> bool {
    ns < 0 && (-i32::from(ns)) % 100 == 11
}

/// Whether `store` to `ns` needs a signature (all but public inboxes).
pub fn store_requires_auth(ns: i16) -> bool {
    !is_public_inbox(ns)
}

/// Whether `retrieve` from `ns` needs a signature (all but −10 and public outboxes).
pub fn retrieve_requires_auth(ns: i16) -> bool {
    !(ns == -10 || is_public_outbox(ns))
}

/// The longest TTL a store to `ns` may have, ms.
pub fn max_ttl_ms(ns: i16) -> u64 {
    if is_public_inbox(ns) {
        TTL_MAX_PUBLIC_MS
    } else {
        TTL_MAX_PRIVATE_MS
    }
}

/// Whether `ts` is within `tolerance` of `now` (all ms).
pub fn check_timestamp(ts: u64, now: u64, tolerance: u64) -> bool {
    ts.abs_diff(now) <= tolerance
}

/// Whether `s` has the shape of a message hash (43 base64 characters).
pub fn is_valid_hash(s: &str) -> bool {
    s.len() == HASH_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The message hash snodes give a stored message (network.md §4.4, §10): unpadded standard
/// base64 of BLAKE2b-256(`account33 ‖ ns_str ‖ data`), where `data` is the decoded bytes.
pub fn message_hash(account: &[u8; 33], ns: i16, data: &[u8]) -> String {
    use base64::Engine as _;
    let mut h = Blake2b::<U32>::new();
    h.update(account);
    h.update(ns_str(ns).as_bytes());
    h.update(data);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finalize())
}

#[cfg(test)]
mod tests;
