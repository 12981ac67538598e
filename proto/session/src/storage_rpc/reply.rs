//! Storage-RPC reply bodies: what snodes send and clients parse, per method.
//!
//! Every reply from a snode carries `"t"` (the snode's clock, ms; clients derive their network
//! time offset from it) and `"hf"` (hard fork `[major, minor]`). Recursive methods (store,
//! delete…, expire…) answer with a `swarm` map from each member's Ed25519 hex to that member's
//! own result or failure, each result signed by that member (see [`super::sign`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{Base64Bytes, Ed25519Pubkey, Sig, X25519Pubkey};
use crate::swarm::SwarmId;

/// `info` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoReply {
    /// Storage server version `[major, minor, patch]`.
    pub version: Vec<u16>,
    /// The snode's clock, ms.
    pub timestamp: u64,
    /// The snode's clock, ms.
    #[serde(default)]
    pub t: u64,
    /// Hard fork `[major, minor]`.
    #[serde(default)]
    pub hf: Vec<u16>,
}

/// One swarm member in a `get_swarm` (or 421) reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmSnode {
    /// Deprecated `base32z(legacy key).snode` address.
    #[serde(default)]
    pub address: String,
    /// Deprecated legacy key (hex).
    #[serde(default)]
    pub pubkey_legacy: String,
    /// X25519 key (onion layers to this node are encrypted to it).
    pub pubkey_x25519: X25519Pubkey,
    /// Ed25519 key (its identity; relays route by it).
    pub pubkey_ed25519: Ed25519Pubkey,
    /// Deprecated: the HTTPS port as a string.
    #[serde(default)]
    pub port: String,
    /// HTTPS port (`/storage_rpc/v1`, `/onion_req/v2`).
    pub port_https: u16,
    /// OxenMQ port.
    #[serde(default)]
    pub port_omq: u16,
    /// QUIC port (same number as `port_omq`).
    #[serde(default)]
    pub port_quic: u16,
    /// IPv4 address; clients skip `"0.0.0.0"` (not contactable).
    pub ip: String,
}

/// `get_swarm` reply, also the body of a 421 (wrong swarm) reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmReply {
    /// The members of the account's swarm.
    pub snodes: Vec<SwarmSnode>,
    /// The swarm id, hex.
    pub swarm: SwarmId,
    /// The snode's clock, ms.
    #[serde(default)]
    pub t: u64,
    /// Hard fork `[major, minor]`.
    #[serde(default)]
    pub hf: Vec<u16>,
}

/// A swarm member that could not answer a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFailure {
    /// Always true.
    pub failed: bool,
    /// The member did not answer in time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timeout: bool,
    /// The member answered with an error code (string or integer on the real network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    /// The member's error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The member's answer could not be parsed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad_peer_response: bool,
    /// The member's database failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub query_failure: bool,
}

/// One member's entry in a recursive reply: its signed result, or a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeResult<T> {
    /// The member failed (has `"failed": true`).
    Failed(NodeFailure),
    /// The member's result.
    Ok(T),
}

/// The reply of a recursive method: every swarm member's result by Ed25519 hex.
///
/// HTTP status 200 if any member succeeded, else 500.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmResults<T> {
    /// Member Ed25519 hex → result.
    pub swarm: BTreeMap<String, NodeResult<T>>,
    /// `store` only: the message hash at top level too (backwards compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The entry snode's clock, ms.
    #[serde(default)]
    pub t: u64,
    /// Hard fork `[major, minor]`.
    #[serde(default)]
    pub hf: Vec<u16>,
}

impl<T> SwarmResults<T> {
    /// Whether any member succeeded (the entry snode then answers 200, else 500).
    pub fn any_ok(&self) -> bool {
        self.swarm.values().any(|r| matches!(r, NodeResult::Ok(_)))
    }
}

/// A member's `store` result. `signature` is over the hash string
/// ([`super::sign::store_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreResult {
    /// The message hash.
    pub hash: String,
    /// The member's signature over the hash.
    pub signature: Sig,
    /// The stored expiry, ms.
    pub expiry: u64,
    /// The message was already stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already: bool,
}

/// A member's `revoke_subaccount` or `unrevoke_subaccount` result
/// ([`super::sign::revocation_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationResult {
    /// `unrevoke_subaccount` only: how many tokens were on the list and are now removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The member's signature.
    pub signature: Sig,
}

/// A member's `delete` result ([`super::sign::delete_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    /// Hashes deleted, sorted.
    pub deleted: Vec<String>,
    /// The member's signature.
    pub signature: Sig,
}

/// Hashes affected in one namespace (a list) or in all of them (namespace string → list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HashesByNamespace {
    /// One namespace was named: the sorted hashes.
    One(Vec<String>),
    /// `"all"` was named: namespace (base-10 string) → hashes.
    All(BTreeMap<String, Vec<String>>),
}

impl HashesByNamespace {
    /// Every hash, sorted (the order the member signed them in).
    pub fn sorted_hashes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = match self {
            HashesByNamespace::One(l) => l.iter().map(String::as_str).collect(),
            HashesByNamespace::All(m) => m.values().flatten().map(String::as_str).collect(),
        };
        v.sort_unstable();
        v
    }
}

/// A member's `delete_all` / `delete_before` result
/// ([`super::sign::delete_all_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAllResult {
    /// Hashes deleted.
    pub deleted: HashesByNamespace,
    /// The member's signature.
    pub signature: Sig,
}

/// `expiry` in an `expire` result: the single expiry tried, or the applied ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpiryValue {
    /// One expiry was requested: the (capped) expiry tried, ms.
    One(u64),
    /// One expiry per message was requested: the applied expiries, in `updated` order.
    Many(Vec<u64>),
}

impl ExpiryValue {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[u64] {
        match self {
            ExpiryValue::One(v) => std::slice::from_ref(v),
            ExpiryValue::Many(v) => v,
        }
    }
}

/// A member's `expire` result ([`super::sign::expire_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireResult {
    /// Hashes whose expiry changed, sorted.
    pub updated: Vec<String>,
    /// With shorten/extend: hashes left as they were → their expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<BTreeMap<String, u64>>,
    /// The expiry or expiries.
    pub expiry: ExpiryValue,
    /// The member's signature.
    pub signature: Sig,
}

/// A member's `expire_all` result ([`super::sign::expire_all_result_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireAllResult {
    /// Hashes whose expiry changed.
    pub updated: HashesByNamespace,
    /// The member's signature.
    pub signature: Sig,
}

/// One message in a `retrieve` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrievedMessage {
    /// The message hash (next `last_hash` if it is the last one).
    pub hash: String,
    /// Stored timestamp, ms.
    pub timestamp: u64,
    /// Expiry, ms (the key is `expiration` here, not `expiry`).
    pub expiration: u64,
    /// The message bytes.
    pub data: Base64Bytes,
}

/// `retrieve` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveReply {
    /// Messages after `last_hash`, oldest first.
    pub messages: Vec<RetrievedMessage>,
    /// More messages are waiting.
    #[serde(default)]
    pub more: bool,
    /// The snode's clock, ms.
    #[serde(default)]
    pub t: u64,
    /// Hard fork `[major, minor]`.
    #[serde(default)]
    pub hf: Vec<u16>,
}

/// `get_expiries` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetExpiriesReply {
    /// Hash → expiry, ms (unknown hashes are left out).
    pub expiries: BTreeMap<String, u64>,
}

/// One subrequest result in a `batch`/`sequence` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// The HTTP status the subrequest would have had.
    pub code: u16,
    /// Its body: the JSON reply, or a string for plain-text errors.
    pub body: Value,
}

/// `batch` / `sequence` reply (HTTP 200 even when subrequests fail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReply {
    /// One result per subrequest, in order (`sequence` stops early after a non-2xx).
    pub results: Vec<BatchResult>,
}

/// `oxend_request` reply: oxend's JSON under `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OxendReply {
    /// oxend's result (for `get_service_nodes`: a [`ServiceNodesResult`]).
    pub result: Value,
    /// The snode's clock, ms.
    #[serde(default)]
    pub t: u64,
    /// Hard fork `[major, minor]`.
    #[serde(default)]
    pub hf: Vec<u16>,
}

/// One snode in `get_service_nodes` / `get_n_service_nodes` results; only the requested fields
/// are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNodeState {
    /// IPv4 address; `""`/`"0.0.0.0"` mean not contactable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// HTTPS port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_port: Option<u16>,
    /// OxenMQ/QUIC port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_lmq_port: Option<u16>,
    /// X25519 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_x25519: Option<X25519Pubkey>,
    /// Ed25519 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Swarm id (2^64−1 = in no swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_id: Option<u64>,
    /// Unlock height requested by the operator (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_unlock_height: Option<u64>,
    /// Storage server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_server_version: Option<Vec<u16>>,
}

/// oxend's `get_service_nodes` / `get_n_service_nodes` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNodesResult {
    /// The snodes.
    pub service_node_states: Vec<ServiceNodeState>,
    /// Chain height, if requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
}

/// The seed's JSON-RPC reply to `get_n_service_nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedReply {
    /// `"2.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonrpc: Option<String>,
    /// Echoed request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The nodes.
    pub result: ServiceNodesResult,
}
