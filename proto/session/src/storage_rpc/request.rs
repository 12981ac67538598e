//! Storage-RPC requests: one params struct per method and the [`Request`] enum parsed from
//! `{"method": …, "params": …}`.
//!
//! The structs are the JSON wire form (both directions): clients build and serialize them,
//! snodes parse them with [`Request::from_json`]. Unknown fields are ignored, as the storage
//! server does. Checks that need no clock (exactly one of `ttl`/`expiry`, data size, hash
//! shapes, batch size) happen at parse time; clock checks are the snode's, with the tolerances
//! in [`super`].

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::wire::{
    num, Base64Bytes, Ed25519Pubkey, NamespaceOrAll, OneOrMany, Sig, SubaccountToken, UserPubkey,
};
use super::{is_valid_hash, BATCH_MAX, MAX_MESSAGE_BODY};
use crate::err::RpcError;

fn is_zero(ns: &i16) -> bool {
    *ns == 0
}

/// The optional subaccount authorisation carried by signed requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubaccountAuth {
    /// The 36-byte token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<SubaccountToken>,
    /// The account key's signature over the token bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subaccount_sig: Option<Sig>,
}

impl SubaccountAuth {
    /// The token and its signature, if a token is present; an error if only one half is.
    pub fn pair(&self) -> Result<Option<(&SubaccountToken, &Sig)>, &'static str> {
        match (&self.subaccount, &self.subaccount_sig) {
            (None, None) => Ok(None),
            (Some(t), Some(s)) => Ok(Some((t, s))),
            (Some(_), None) => Err("subaccount_sig is required when using subaccount"),
            (None, Some(_)) => Err("subaccount_sig given without subaccount"),
        }
    }
}

/// `get_swarm` (alias `get_snodes_for_pubkey`): which snodes store this account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSwarmParams {
    /// The account (alias `pubKey`).
    #[serde(alias = "pubKey")]
    pub pubkey: UserPubkey,
}

/// `store`: store one message. Authenticated unless the namespace is a public inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreParams {
    /// The recipient account (alias `pubKey`).
    #[serde(alias = "pubKey")]
    pub pubkey: UserPubkey,
    /// Namespace, default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub namespace: i16,
    /// Message timestamp, ms (integer or legacy decimal string).
    #[serde(deserialize_with = "num::timestamp_or_string")]
    pub timestamp: u64,
    /// Time to live, ms (integer or legacy decimal string); exactly one of `ttl`/`expiry`.
    #[serde(
        default,
        deserialize_with = "num::opt_u64_or_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<u64>,
    /// Absolute expiry, ms; exactly one of `ttl`/`expiry`.
    #[serde(
        default,
        deserialize_with = "num::opt_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry: Option<u64>,
    /// The message bytes (base64 in JSON), at most [`MAX_MESSAGE_BODY`].
    pub data: Base64Bytes,
    /// Signature over [`super::sign::store_message`]; required for non-public-inbox namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
    /// Timestamp that was signed, ms; defaults to `timestamp`.
    #[serde(
        default,
        deserialize_with = "num::opt_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub sig_timestamp: Option<u64>,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

impl StoreParams {
    /// The absolute expiry, ms: `expiry`, or `timestamp + ttl`.
    pub fn expiry_ms(&self) -> u64 {
        match (self.expiry, self.ttl) {
            (Some(e), _) => e,
            (None, Some(ttl)) => self.timestamp.saturating_add(ttl),
            (None, None) => self.timestamp,
        }
    }
    /// The timestamp the signature covers.
    pub fn sig_timestamp_ms(&self) -> u64 {
        self.sig_timestamp.unwrap_or(self.timestamp)
    }
    fn check(&self) -> Result<(), String> {
        match (self.ttl, self.expiry) {
            (Some(_), Some(_)) => return Err("Cannot specify both 'expiry' and 'ttl'".into()),
            (None, None) => return Err("Required field 'expiry' or 'ttl' missing".into()),
            _ => {}
        }
        if self.data.0.len() > MAX_MESSAGE_BODY {
            return Err(format!(
                "Message body exceeds maximum allowed length of {MAX_MESSAGE_BODY} bytes"
            ));
        }
        self.sub.pair()?;
        if self.pubkey_ed25519.is_some() && self.pubkey.prefix() != 0x05 {
            return Err("pubkey_ed25519 is only permitted for 05[...] pubkeys".into());
        }
        Ok(())
    }
}

/// `retrieve`: messages stored after `last_hash` in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveParams {
    /// The account (alias `pubKey`).
    #[serde(alias = "pubKey")]
    pub pubkey: UserPubkey,
    /// Namespace, default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub namespace: i16,
    /// Hash of the last message already seen (alias `lastHash`); empty or absent = from the start.
    #[serde(default, alias = "lastHash", skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// Maximum number of messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i64>,
    /// Maximum total size in bytes; −k means 1/k of [`super::RETRIEVE_MAX_SIZE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    /// Signature timestamp, ms.
    #[serde(
        default,
        deserialize_with = "num::opt_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<u64>,
    /// Signature over [`super::sign::retrieve_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Sig>,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

impl RetrieveParams {
    /// `last_hash` with the empty string treated as absent.
    pub fn last_hash(&self) -> Option<&str> {
        self.last_hash.as_deref().filter(|h| !h.is_empty())
    }
    /// Whether the request carries (and so must pass) a signature check.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some() || self.timestamp.is_some() || self.pubkey_ed25519.is_some()
    }
    fn check(&self) -> Result<(), String> {
        if let Some(h) = self.last_hash() {
            if !is_valid_hash(h) {
                return Err("Invalid last_hash: expected base64 (43 chars)".into());
            }
        }
        // A request that carries any auth field must carry all of them (400). One that carries
        // none parses; a namespace that needs auth then fails `verify_signature` (401, "request
        // signature required"), as the storage server answers an unsigned retrieve. (The server
        // also makes it a 400 when `namespace` is given explicitly; the params keep no record of
        // that, and both statuses make clients stop.)
        if self.is_signed() && self.signature.is_none() {
            return Err("Required field 'signature' missing".into());
        }
        if self.is_signed() && self.timestamp.is_none() {
            return Err("Required field 'timestamp' missing".into());
        }
        self.sub.pair()?;
        check_ed_prefix(&self.pubkey, &self.pubkey_ed25519)
    }
}

fn check_ed_prefix(pk: &UserPubkey, ed: &Option<Ed25519Pubkey>) -> Result<(), String> {
    if ed.is_some() && pk.prefix() != 0x05 {
        return Err("pubkey_ed25519 is only permitted for 05[...] pubkeys".into());
    }
    Ok(())
}

fn check_hashes(hashes: &[String]) -> Result<(), String> {
    if hashes.is_empty() {
        return Err("messages does not contain any message hashes".into());
    }
    match hashes.iter().find(|h| !is_valid_hash(h)) {
        Some(h) => Err(format!("invalid message hash: {h}")),
        None => Ok(()),
    }
}

/// `delete`: delete messages by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Hashes to delete (one string or a list).
    pub messages: OneOrMany<String>,
    /// If true, reply 404 when no swarm member deleted anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Signature over [`super::sign::delete_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

/// `delete_all`: delete every message in a namespace (or all namespaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAllParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Namespace or `"all"`, default 0.
    #[serde(default)]
    pub namespace: NamespaceOrAll,
    /// Signature timestamp, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub timestamp: u64,
    /// Signature over [`super::sign::delete_all_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

/// `delete_before`: delete messages with timestamps before `before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBeforeParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Namespace or `"all"`, default 0.
    #[serde(default)]
    pub namespace: NamespaceOrAll,
    /// Cut-off, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub before: u64,
    /// Signature over [`super::sign::delete_before_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

/// Whether an `expire` may only shorten, only extend, or set expiries either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireMode {
    /// Set the expiry whatever it was.
    #[default]
    Set,
    /// Only make expiries earlier (`"shorten": true`).
    Shorten,
    /// Only make expiries later (`"extend": true`).
    Extend,
}

impl ExpireMode {
    /// The mode's part of the signed message: `"shorten"`, `"extend"` or empty.
    pub fn sig_str(self) -> &'static str {
        match self {
            ExpireMode::Set => "",
            ExpireMode::Shorten => "shorten",
            ExpireMode::Extend => "extend",
        }
    }
}

/// `expire`: change the expiry of messages by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Hashes to update.
    pub messages: OneOrMany<String>,
    /// New expiry, ms: one value, or one per message.
    #[serde(deserialize_with = "num::timestamps")]
    pub expiry: OneOrMany<u64>,
    /// Only shorten.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shorten: bool,
    /// Only extend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extend: bool,
    /// Signature over [`super::sign::expire_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

impl ExpireParams {
    /// The mode given by the `shorten`/`extend` flags (checked exclusive at parse time).
    pub fn mode(&self) -> ExpireMode {
        if self.shorten {
            ExpireMode::Shorten
        } else if self.extend {
            ExpireMode::Extend
        } else {
            ExpireMode::Set
        }
    }
}

/// `expire_all`: shorten the expiry of every message in a namespace (or all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireAllParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Namespace or `"all"`, default 0.
    #[serde(default)]
    pub namespace: NamespaceOrAll,
    /// New expiry, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub expiry: u64,
    /// Signature over [`super::sign::expire_all_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

/// `get_expiries`: current expiries of messages by hash (answered locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetExpiriesParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// Hashes to look up.
    pub messages: OneOrMany<String>,
    /// Signature timestamp, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub timestamp: u64,
    /// Signature over [`super::sign::get_expiries_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
    /// Optional subaccount authorisation.
    #[serde(flatten)]
    pub sub: SubaccountAuth,
}

/// `oxend_request`: a pass-through to the snode's oxend (`get_service_nodes`, `ons_resolve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OxendRequestParams {
    /// The oxend RPC endpoint, e.g. `get_service_nodes`.
    pub endpoint: String,
    /// Its params, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// The `fields` selector of `get_service_nodes` / `get_n_service_nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNodeFields {
    /// Request `public_ip`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_ip: bool,
    /// Request `storage_port`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub storage_port: bool,
    /// Request `storage_lmq_port`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub storage_lmq_port: bool,
    /// Request `pubkey_x25519`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pubkey_x25519: bool,
    /// Request `pubkey_ed25519`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pubkey_ed25519: bool,
    /// Request `swarm_id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub swarm_id: bool,
    /// Request `requested_unlock_height`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requested_unlock_height: bool,
    /// Request `height`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub height: bool,
}

impl ServiceNodeFields {
    /// The fields desktop asks a seed for: ip, storage port, both keys, unlock height, height.
    pub fn seed_default() -> ServiceNodeFields {
        ServiceNodeFields {
            public_ip: true,
            storage_port: true,
            pubkey_x25519: true,
            pubkey_ed25519: true,
            requested_unlock_height: true,
            height: true,
            ..ServiceNodeFields::default()
        }
    }
}

/// Params of `get_service_nodes` (via `oxend_request`) and of the seed's `get_n_service_nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetServiceNodesParams {
    /// Only active (not decommissioned) nodes.
    #[serde(default)]
    pub active_only: bool,
    /// Which fields to return.
    #[serde(default)]
    pub fields: ServiceNodeFields,
}

impl OxendRequestParams {
    /// `oxend_request` for `get_service_nodes` with the given params.
    pub fn get_service_nodes(params: &GetServiceNodesParams) -> OxendRequestParams {
        OxendRequestParams {
            endpoint: "get_service_nodes".to_owned(),
            params: Some(serde_json::to_value(params).expect("plain struct serializes")),
        }
    }
    /// The params as `get_service_nodes` params, if this is that endpoint.
    pub fn as_get_service_nodes(&self) -> Option<Result<GetServiceNodesParams, RpcError>> {
        if self.endpoint != "get_service_nodes" {
            return None;
        }
        Some(match &self.params {
            None => Ok(GetServiceNodesParams::default()),
            Some(v) => GetServiceNodesParams::deserialize(v).map_err(|e| RpcError::BadParams {
                method: "oxend_request",
                reason: e.to_string(),
            }),
        })
    }
}

/// Most tokens one `revoke_subaccount` may carry, and most revocations a snode keeps per account
/// (older ones are forgotten, so their tokens work again).
pub const MAX_SUBACCOUNT_REVOCATIONS: usize = 50;

/// `revoke_subaccount`: add subaccount tokens to the account's revocation list. Signed by the
/// account key itself (no subaccount may revoke).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeSubaccountParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// The tokens to revoke (one or a list; base64 or hex), at most
    /// [`MAX_SUBACCOUNT_REVOCATIONS`].
    pub revoke: OneOrMany<SubaccountToken>,
    /// Signature timestamp, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub timestamp: u64,
    /// Signature over [`super::sign::revoke_subaccount_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
}

/// `unrevoke_subaccount`: remove subaccount tokens from the account's revocation list (before
/// re-inviting a removed group member). Signed by the account key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrevokeSubaccountParams {
    /// The account.
    pub pubkey: UserPubkey,
    /// The tokens to unrevoke (one or a list; base64 or hex).
    pub unrevoke: OneOrMany<SubaccountToken>,
    /// Signature timestamp, ms.
    #[serde(deserialize_with = "num::timestamp")]
    pub timestamp: u64,
    /// Signature over [`super::sign::unrevoke_subaccount_message`].
    pub signature: Sig,
    /// Ed25519 key that signed, for `05` accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey_ed25519: Option<Ed25519Pubkey>,
}

/// The seed node's JSON-RPC 2.0 request body (`POST /json_rpc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRequest {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// `get_n_service_nodes`.
    pub method: String,
    /// What to return.
    #[serde(default)]
    pub params: GetServiceNodesParams,
}

impl SeedRequest {
    /// The request desktop sends to a seed: active nodes, [`ServiceNodeFields::seed_default`].
    pub fn get_n_service_nodes() -> SeedRequest {
        SeedRequest {
            jsonrpc: "2.0".to_owned(),
            method: "get_n_service_nodes".to_owned(),
            params: GetServiceNodesParams {
                active_only: true,
                fields: ServiceNodeFields::seed_default(),
            },
        }
    }
    /// Parses a seed request body; an error for bad JSON or another method.
    pub fn from_json(body: &[u8]) -> Result<SeedRequest, RpcError> {
        let req: SeedRequest =
            serde_json::from_slice(body).map_err(|e| RpcError::BadJson(e.to_string()))?;
        if req.method != "get_n_service_nodes" {
            return Err(RpcError::UnknownMethod(req.method));
        }
        Ok(req)
    }
}

/// Every storage-RPC request this crate understands, parsed from `{"method","params"}`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `info`.
    Info,
    /// `get_swarm` / `get_snodes_for_pubkey`.
    GetSwarm(GetSwarmParams),
    /// `store`.
    Store(StoreParams),
    /// `retrieve`.
    Retrieve(RetrieveParams),
    /// `delete`.
    Delete(DeleteParams),
    /// `delete_all`.
    DeleteAll(DeleteAllParams),
    /// `delete_before`.
    DeleteBefore(DeleteBeforeParams),
    /// `expire`.
    Expire(ExpireParams),
    /// `expire_all`.
    ExpireAll(ExpireAllParams),
    /// `get_expiries`.
    GetExpiries(GetExpiriesParams),
    /// `oxend_request`.
    OxendRequest(OxendRequestParams),
    /// `revoke_subaccount`.
    RevokeSubaccount(RevokeSubaccountParams),
    /// `unrevoke_subaccount`.
    UnrevokeSubaccount(UnrevokeSubaccountParams),
    /// `batch`: 1–[`BATCH_MAX`] subrequests run in parallel (no nesting).
    Batch(Vec<Request>),
    /// `sequence`: like batch, run in order, stopping after the first non-2xx.
    Sequence(Vec<Request>),
}

#[derive(Deserialize)]
struct RawRequest {
    method: String,
    #[serde(default)]
    params: Value,
}

#[derive(Deserialize)]
struct RawBatch {
    requests: Vec<RawRequest>,
}

fn params<T: DeserializeOwned>(method: &'static str, v: Value) -> Result<T, RpcError> {
    let v = if v.is_null() {
        Value::Object(Default::default())
    } else {
        v
    };
    T::deserialize(v).map_err(|e| RpcError::BadParams {
        method,
        reason: e.to_string(),
    })
}

fn checked(method: &'static str, r: Result<(), String>) -> Result<(), RpcError> {
    r.map_err(|reason| RpcError::BadParams { method, reason })
}

impl Request {
    /// Parses a request body `{"method": …, "params": …}` (a `"jsonrpc"` key is ignored).
    pub fn from_json(body: &[u8]) -> Result<Request, RpcError> {
        let raw: RawRequest =
            serde_json::from_slice(body).map_err(|e| RpcError::BadJson(e.to_string()))?;
        Request::from_parts(&raw.method, raw.params, true)
    }

    /// Parses a request from its method name and params value.
    pub fn from_method_params(method: &str, params: Value) -> Result<Request, RpcError> {
        Request::from_parts(method, params, true)
    }

    fn from_parts(method: &str, p: Value, allow_batch: bool) -> Result<Request, RpcError> {
        Ok(match method {
            "info" => Request::Info,
            "get_swarm" | "get_snodes_for_pubkey" => Request::GetSwarm(params("get_swarm", p)?),
            "store" => {
                let s: StoreParams = params("store", p)?;
                checked("store", s.check())?;
                Request::Store(s)
            }
            "retrieve" => {
                let r: RetrieveParams = params("retrieve", p)?;
                checked("retrieve", r.check())?;
                Request::Retrieve(r)
            }
            "delete" => {
                let d: DeleteParams = params("delete", p)?;
                checked("delete", check_hashes(&d.messages.0))?;
                checked("delete", d.sub.pair().map(drop).map_err(String::from))?;
                checked("delete", check_ed_prefix(&d.pubkey, &d.pubkey_ed25519))?;
                Request::Delete(d)
            }
            "delete_all" => {
                let d: DeleteAllParams = params("delete_all", p)?;
                checked("delete_all", d.sub.pair().map(drop).map_err(String::from))?;
                checked("delete_all", check_ed_prefix(&d.pubkey, &d.pubkey_ed25519))?;
                Request::DeleteAll(d)
            }
            "delete_before" => {
                let d: DeleteBeforeParams = params("delete_before", p)?;
                checked(
                    "delete_before",
                    d.sub.pair().map(drop).map_err(String::from),
                )?;
                checked(
                    "delete_before",
                    check_ed_prefix(&d.pubkey, &d.pubkey_ed25519),
                )?;
                Request::DeleteBefore(d)
            }
            "expire" => {
                let e: ExpireParams = params("expire", p)?;
                checked("expire", check_hashes(&e.messages.0))?;
                if e.shorten && e.extend {
                    return Err(RpcError::BadParams {
                        method: "expire",
                        reason: "cannot specify both 'shorten' and 'extend'".into(),
                    });
                }
                let n = e.expiry.0.len();
                if n == 0 || (n != 1 && n != e.messages.0.len()) {
                    return Err(RpcError::BadParams {
                        method: "expire",
                        reason: "expiry must be one value or one per message".into(),
                    });
                }
                checked("expire", e.sub.pair().map(drop).map_err(String::from))?;
                checked("expire", check_ed_prefix(&e.pubkey, &e.pubkey_ed25519))?;
                Request::Expire(e)
            }
            "expire_all" => {
                let e: ExpireAllParams = params("expire_all", p)?;
                checked("expire_all", e.sub.pair().map(drop).map_err(String::from))?;
                checked("expire_all", check_ed_prefix(&e.pubkey, &e.pubkey_ed25519))?;
                Request::ExpireAll(e)
            }
            "get_expiries" => {
                let g: GetExpiriesParams = params("get_expiries", p)?;
                checked("get_expiries", check_hashes(&g.messages.0))?;
                checked("get_expiries", g.sub.pair().map(drop).map_err(String::from))?;
                checked(
                    "get_expiries",
                    check_ed_prefix(&g.pubkey, &g.pubkey_ed25519),
                )?;
                Request::GetExpiries(g)
            }
            "oxend_request" => Request::OxendRequest(params("oxend_request", p)?),
            "revoke_subaccount" => {
                let r: RevokeSubaccountParams = params("revoke_subaccount", p)?;
                if r.revoke.0.is_empty() || r.revoke.0.len() > MAX_SUBACCOUNT_REVOCATIONS {
                    return Err(RpcError::BadParams {
                        method: "revoke_subaccount",
                        reason: format!(
                            "invalid revoke: expected 1 to {MAX_SUBACCOUNT_REVOCATIONS} subaccount tokens"
                        ),
                    });
                }
                checked(
                    "revoke_subaccount",
                    check_ed_prefix(&r.pubkey, &r.pubkey_ed25519),
                )?;
                Request::RevokeSubaccount(r)
            }
            "unrevoke_subaccount" => {
                let r: UnrevokeSubaccountParams = params("unrevoke_subaccount", p)?;
                if r.unrevoke.0.is_empty() {
                    return Err(RpcError::BadParams {
                        method: "unrevoke_subaccount",
                        reason: "invalid unrevoke: no subaccount tokens".into(),
                    });
                }
                checked(
                    "unrevoke_subaccount",
                    check_ed_prefix(&r.pubkey, &r.pubkey_ed25519),
                )?;
                Request::UnrevokeSubaccount(r)
            }
            "batch" | "sequence" => {
                let name: &'static str = if method == "batch" {
                    "batch"
                } else {
                    "sequence"
                };
                if !allow_batch {
                    return Err(RpcError::BadParams {
                        method: name,
                        reason: "batch/sequence cannot be nested".into(),
                    });
                }
                let raw: RawBatch = params(name, p)?;
                if raw.requests.is_empty() || raw.requests.len() > BATCH_MAX {
                    return Err(RpcError::BadParams {
                        method: name,
                        reason: format!("expected 1 to {BATCH_MAX} subrequests"),
                    });
                }
                let mut subs = Vec::with_capacity(raw.requests.len());
                for (i, r) in raw.requests.into_iter().enumerate() {
                    let sub = Request::from_parts(&r.method, r.params, false).map_err(|e| {
                        RpcError::BadParams {
                            method: name,
                            reason: format!("subrequest {i}: {e}"),
                        }
                    })?;
                    subs.push(sub);
                }
                if name == "batch" {
                    Request::Batch(subs)
                } else {
                    Request::Sequence(subs)
                }
            }
            other => return Err(RpcError::UnknownMethod(other.to_owned())),
        })
    }

    /// The canonical method name (aliases map to their main name).
    pub fn method(&self) -> &'static str {
        match self {
            Request::Info => "info",
            Request::GetSwarm(_) => "get_swarm",
            Request::Store(_) => "store",
            Request::Retrieve(_) => "retrieve",
            Request::Delete(_) => "delete",
            Request::DeleteAll(_) => "delete_all",
            Request::DeleteBefore(_) => "delete_before",
            Request::Expire(_) => "expire",
            Request::ExpireAll(_) => "expire_all",
            Request::GetExpiries(_) => "get_expiries",
            Request::OxendRequest(_) => "oxend_request",
            Request::RevokeSubaccount(_) => "revoke_subaccount",
            Request::UnrevokeSubaccount(_) => "unrevoke_subaccount",
            Request::Batch(_) => "batch",
            Request::Sequence(_) => "sequence",
        }
    }

    /// The account the request is about, for methods that have one (swarm routing, 421s).
    pub fn account(&self) -> Option<&UserPubkey> {
        match self {
            Request::GetSwarm(p) => Some(&p.pubkey),
            Request::Store(p) => Some(&p.pubkey),
            Request::Retrieve(p) => Some(&p.pubkey),
            Request::Delete(p) => Some(&p.pubkey),
            Request::DeleteAll(p) => Some(&p.pubkey),
            Request::DeleteBefore(p) => Some(&p.pubkey),
            Request::Expire(p) => Some(&p.pubkey),
            Request::ExpireAll(p) => Some(&p.pubkey),
            Request::GetExpiries(p) => Some(&p.pubkey),
            Request::RevokeSubaccount(p) => Some(&p.pubkey),
            Request::UnrevokeSubaccount(p) => Some(&p.pubkey),
            Request::Info | Request::OxendRequest(_) | Request::Batch(_) | Request::Sequence(_) => {
                None
            }
        }
    }

    /// Whether the entry snode forwards this method to the rest of the swarm (network.md §3).
    pub fn is_recursive(&self) -> bool {
        matches!(
            self,
            Request::Store(_)
                | Request::Delete(_)
                | Request::DeleteAll(_)
                | Request::DeleteBefore(_)
                | Request::Expire(_)
                | Request::ExpireAll(_)
                | Request::RevokeSubaccount(_)
                | Request::UnrevokeSubaccount(_)
        )
    }

    /// The subaccount token the request is authenticated with, if any (a snode checks it
    /// against the account's revocation list).
    pub fn subaccount(&self) -> Option<&SubaccountToken> {
        let sub = match self {
            Request::Store(p) => &p.sub,
            Request::Retrieve(p) => &p.sub,
            Request::Delete(p) => &p.sub,
            Request::DeleteAll(p) => &p.sub,
            Request::DeleteBefore(p) => &p.sub,
            Request::Expire(p) => &p.sub,
            Request::ExpireAll(p) => &p.sub,
            Request::GetExpiries(p) => &p.sub,
            _ => return None,
        };
        sub.subaccount.as_ref()
    }

    /// The JSON body `{"method": …, "params": …}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("request types serialize to JSON without failing")
    }
}

struct ParamsOf<'a>(&'a Request);

impl Serialize for ParamsOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Request::Info => s.serialize_map(Some(0))?.end(),
            Request::GetSwarm(p) => p.serialize(s),
            Request::Store(p) => p.serialize(s),
            Request::Retrieve(p) => p.serialize(s),
            Request::Delete(p) => p.serialize(s),
            Request::DeleteAll(p) => p.serialize(s),
            Request::DeleteBefore(p) => p.serialize(s),
            Request::Expire(p) => p.serialize(s),
            Request::ExpireAll(p) => p.serialize(s),
            Request::GetExpiries(p) => p.serialize(s),
            Request::OxendRequest(p) => p.serialize(s),
            Request::RevokeSubaccount(p) => p.serialize(s),
            Request::UnrevokeSubaccount(p) => p.serialize(s),
            Request::Batch(subs) | Request::Sequence(subs) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("requests", subs)?;
                m.end()
            }
        }
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("method", self.method())?;
        m.serialize_entry("params", &ParamsOf(self))?;
        m.end()
    }
}
