//! The storage RPC of a node (`POST /storage_rpc/v1`, onion final hops, swarm replication) and
//! the seed's `POST /json_rpc`.
//!
//! Each method validates in the order the real storage server does (wrong swarm → TTL →
//! clock → signature), then applies locally; recursive methods are also forwarded to every other
//! swarm member and answered with the `swarm` map of per-node results.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde_json::{json, Map, Value};

use crate::node::{Body, NodeShared, Reply, PEER_HEADER, TOKEN_HEADER};
use crate::topology::{HARDFORK, HEIGHT, VERSION};
use crate::wire::{self, B64, B64_LAX};

/// Largest message `data`, in bytes.
pub const MAX_MESSAGE_DATA: usize = 76_800;
/// Signed-request timestamp tolerance, ms (direct).
pub const SIGNATURE_TOLERANCE_MS: i64 = 60_000;
/// Signed-request timestamp tolerance, ms (forwarded by a swarm peer).
pub const SIGNATURE_TOLERANCE_FORWARDED_MS: i64 = 70_000;
/// `store` timestamp tolerance, ms.
pub const STORE_TOLERANCE_MS: i64 = 10_000;
/// Shortest TTL, ms.
pub const TTL_MIN_MS: i64 = 10_000;
/// Longest TTL for public-inbox namespaces, ms (14 days).
pub const TTL_MAX_PUBLIC_MS: i64 = 14 * 24 * 3600 * 1000;
/// Longest TTL otherwise and for expiry updates, ms (30 days).
pub const TTL_MAX_PRIVATE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Largest aggregate `retrieve` size, bytes.
pub const RETRIEVE_MAX_SIZE: i64 = 7_800_000;
/// Most subrequests in a `batch`/`sequence`.
pub const BATCH_MAX: usize = 20;

type R = Result<Reply, Reply>;

fn bad(msg: impl std::fmt::Display) -> Reply {
    Reply::text(400, format!("invalid request: {msg}"))
}

/// Public inbox: anyone may store (ns divisible by 10).
pub fn is_public_inbox(ns: i64) -> bool {
    ns % 10 == 0
}

/// Public outbox: −(20n+1); one message, store replaces, retrieve unauthenticated.
pub fn is_public_outbox(ns: i64) -> bool {
    ns < 0 && (-ns) % 20 == 1
}

fn is_noauth_retrieve(ns: i64) -> bool {
    ns == -10 || is_public_outbox(ns)
}

/// A 33-byte account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Account([u8; 33]);

impl Account {
    fn prefix(&self) -> u8 {
        self.0[0]
    }
    fn key32(&self) -> [u8; 32] {
        self.0[1..].try_into().expect("33 - 1 = 32")
    }
    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

// ------------------------------------------------------------------------------------------------
// Parameter parsing
// ------------------------------------------------------------------------------------------------

fn get_str<'a>(p: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, Reply> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("`{k}` must be a string"))),
    }
}

fn req_str<'a>(p: &'a Map<String, Value>, k: &str) -> Result<&'a str, Reply> {
    get_str(p, k)?.ok_or_else(|| bad(format!("missing required field `{k}`")))
}

/// An integer; `lenient` also takes decimal strings (legacy `store` fields).
fn get_int(p: &Map<String, Value>, k: &str, lenient: bool) -> Result<Option<i64>, Reply> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("`{k}` must be an integer"))),
        Some(Value::String(s)) if lenient => s
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("`{k}` must be an integer"))),
        Some(_) => Err(bad(format!("`{k}` must be an integer"))),
    }
}

fn req_int(p: &Map<String, Value>, k: &str) -> Result<i64, Reply> {
    get_int(p, k, false)?.ok_or_else(|| bad(format!("missing required field `{k}`")))
}

fn get_bool(p: &Map<String, Value>, k: &str) -> Result<bool, Reply> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("`{k}` must be a boolean"))),
    }
}

fn req_str_list(p: &Map<String, Value>, k: &str) -> Result<Vec<String>, Reply> {
    let list = match p.get(k) {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad(format!("`{k}` must be a list of strings"))),
        None => return Err(bad(format!("missing required field `{k}`"))),
    };
    if list.is_empty() {
        return Err(bad(format!("`{k}` must not be empty")));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .filter(|s| s.len() <= 128)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{k}` must be a list of strings")))
        })
        .collect()
}

fn parse_account(p: &Map<String, Value>) -> Result<Account, Reply> {
    let s = match get_str(p, "pubkey")? {
        Some(s) => s,
        None => get_str(p, "pubKey")?.ok_or_else(|| bad("missing required field `pubkey`"))?,
    };
    let mut out = [0u8; 33];
    hex::decode_to_slice(s, &mut out).map_err(|_| bad("`pubkey` must be 66 hex characters"))?;
    Ok(Account(out))
}

fn parse_ns(p: &Map<String, Value>) -> Result<i64, Reply> {
    let ns = get_int(p, "namespace", false)?.unwrap_or(0);
    if i16::try_from(ns).is_err() {
        return Err(bad("`namespace` must be a 16-bit integer"));
    }
    Ok(ns)
}

/// `namespace` that may also be `"all"` (→ `None`).
fn parse_ns_or_all(p: &Map<String, Value>) -> Result<Option<i64>, Reply> {
    if p.get("namespace").and_then(Value::as_str) == Some("all") {
        return Ok(None);
    }
    parse_ns(p).map(Some)
}

fn ns_sig_value(ns: Option<i64>) -> String {
    ns.map(wire::ns_str).unwrap_or_else(|| "all".into())
}

fn parse_signature(p: &Map<String, Value>) -> Result<Signature, Reply> {
    let s = req_str(p, "signature")?;
    let raw = if s.len() == 128 {
        hex::decode(s).ok()
    } else {
        B64_LAX.decode(s).ok()
    };
    let bytes: [u8; 64] = raw
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| bad("`signature` must be 64 bytes, base64 or hex"))?;
    Ok(Signature::from_bytes(&bytes))
}

fn ts_ok(t: i64, now: i64, tol: i64) -> bool {
    t >= now - tol && t <= now + tol
}

// ------------------------------------------------------------------------------------------------
// Methods
// ------------------------------------------------------------------------------------------------

/// Methods applied on every swarm member.
fn is_recursive(method: &str) -> bool {
    matches!(
        method,
        "store" | "delete" | "delete_all" | "delete_before" | "expire" | "expire_all"
    )
}

impl NodeShared {
    fn misc(&self, mut v: Value, now: i64) -> Value {
        if let Value::Object(m) = &mut v {
            m.insert("t".into(), json!(now));
            m.insert("hf".into(), json!(HARDFORK));
        }
        v
    }

    fn sign_b64(&self, msg: &[u8]) -> String {
        B64.encode(self.keys.signing.sign(msg).to_bytes())
    }

    /// 421 with the account's swarm unless this node is in it.
    fn check_swarm(&self, acct: &Account) -> Result<(), Reply> {
        let topo = &self.net.topology;
        let swarm = topo.swarm_of(&acct.key32());
        if topo.nodes()[self.index].swarm_id == swarm {
            return Ok(());
        }
        Err(Reply::json(
            421,
            self.misc(topo.swarm_json(swarm), self.now_ms()),
        ))
    }

    /// Checks the request signature over `msg` (401 on failure).
    fn check_sig(&self, acct: &Account, p: &Map<String, Value>, what: &str, msg: &[u8]) -> R {
        if p.contains_key("subaccount") {
            return Err(Reply::text(
                401,
                format!("{what}: subaccount authentication is not supported by the devnet"),
            ));
        }
        let sig = parse_signature(p)?;
        let key = match get_str(p, "pubkey_ed25519")? {
            Some(ed_hex) => {
                if acct.prefix() != 0x05 {
                    return Err(bad("pubkey_ed25519 is only permitted for 05 pubkeys"));
                }
                let ed = wire::key_from_hex("pubkey_ed25519", ed_hex)
                    .map_err(|_| bad("`pubkey_ed25519` must be 64 hex characters"))?;
                if wire::ed25519_to_x25519(&ed) != Some(acct.key32()) {
                    return Err(Reply::text(
                        401,
                        format!("{what} signature verification failed"),
                    ));
                }
                ed
            }
            None => acct.key32(),
        };
        let ok = VerifyingKey::from_bytes(&key)
            .map(|vk| vk.verify_strict(msg, &sig).is_ok())
            .unwrap_or(false);
        if ok {
            Ok(Reply::text(200, ""))
        } else {
            Err(Reply::text(
                401,
                format!("{what} signature verification failed"),
            ))
        }
    }

    /// Parses a storage-RPC body `{"method","params"}` and runs it. Returns the method name
    /// (for the event log) and the reply.
    pub(crate) async fn handle_rpc_body(
        self: Arc<Self>,
        body: &[u8],
        recurse: bool,
    ) -> (String, Reply) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return (String::new(), Reply::text(400, "invalid json"));
        };
        let Some(method) = v.get("method").and_then(Value::as_str) else {
            return (
                String::new(),
                Reply::text(400, "invalid json: no `method` field"),
            );
        };
        let method: String = method.chars().take(64).collect();
        let Some(Value::Object(params)) = v.get("params") else {
            return (method, Reply::text(400, "invalid json: no `params` field"));
        };
        if !recurse && !is_recursive(&method) {
            return (
                method,
                bad("received invalid forwarded non-forwardable request"),
            );
        }
        let reply = match method.as_str() {
            "batch" => self.batch(params, false).await,
            "sequence" => self.batch(params, true).await,
            _ => self.single(&method, params, recurse).await,
        };
        (method, reply.unwrap_or_else(|e| e))
    }

    async fn single(self: &Arc<Self>, method: &str, p: &Map<String, Value>, recurse: bool) -> R {
        match method {
            "info" => {
                let now = self.now_ms();
                Ok(Reply::json(
                    200,
                    self.misc(json!({"version": VERSION, "timestamp": now}), now),
                ))
            }
            "get_swarm" | "get_snodes_for_pubkey" => {
                let acct = parse_account(p)?;
                let topo = &self.net.topology;
                let swarm = topo.swarm_json(topo.swarm_of(&acct.key32()));
                Ok(Reply::json(200, self.misc(swarm, self.now_ms())))
            }
            "store" => self.store(p, recurse).await,
            "retrieve" => self.retrieve(p),
            "delete" => self.delete(p, recurse).await,
            "delete_all" => self.delete_all(p, recurse).await,
            "delete_before" => self.delete_before(p, recurse).await,
            "expire" => self.expire(p, recurse).await,
            "expire_all" => self.expire_all(p, recurse).await,
            "get_expiries" => self.get_expiries(p),
            "oxend_request" => self.oxend_request(p),
            "batch" | "sequence" => Err(bad("batch/sequence subrequests cannot nest")),
            other => Err(Reply::text(400, format!("no method {other}"))),
        }
    }

    /// Runs `local` here and, when `recurse`, forwards the request to every other swarm member;
    /// answers `{"swarm": {ed: result}, "t", "hf", extra…}`, 200 if any member succeeded.
    async fn recursive(
        self: &Arc<Self>,
        method: &str,
        p: &Map<String, Value>,
        recurse: bool,
        now: i64,
        extra: Vec<(&str, Value)>,
        local: impl FnOnce() -> Value,
    ) -> R {
        if !recurse {
            let mine = local();
            let status = if mine.get("failed").is_some() {
                500
            } else {
                200
            };
            return Ok(Reply::json(status, mine));
        }
        let peers = self.replicate(method, p);
        let mut mine = local();
        if let Value::Object(m) = &mut mine {
            if method == "store" {
                m.insert("t".into(), json!(now));
            }
        }
        let mut swarm = Map::new();
        swarm.insert(self.ed_hex.clone(), mine);
        for (ed, result) in peers.join_all().await {
            swarm.insert(ed, result);
        }
        let ok = swarm.values().any(|r| r.get("failed").is_none());
        let mut top = Map::new();
        top.insert("swarm".into(), Value::Object(swarm));
        for (k, v) in extra {
            top.insert(k.into(), v);
        }
        let top = self.misc(Value::Object(top), now);
        Ok(Reply::json(if ok { 200 } else { 500 }, top))
    }

    /// Forwards `method(params)` to every other member of this node's swarm.
    fn replicate(
        self: &Arc<Self>,
        method: &str,
        p: &Map<String, Value>,
    ) -> tokio::task::JoinSet<(String, Value)> {
        let mut set = tokio::task::JoinSet::new();
        let topo = &self.net.topology;
        let body = json!({"method": method, "params": p})
            .to_string()
            .into_bytes();
        for i in topo.members(topo.nodes()[self.index].swarm_id) {
            if i == self.index {
                continue;
            }
            let url = format!("{}/devnet/v1/storage_cc", topo.url(i));
            let ed = hex::encode(topo.nodes()[i].ed25519);
            let net = self.net.clone();
            let me = self.ed_hex.clone();
            let body = body.clone();
            set.spawn(async move {
                let headers = [
                    (PEER_HEADER, me.as_str()),
                    (TOKEN_HEADER, net.token.as_str()),
                ];
                let res = net
                    .client
                    .post(&url, &headers, body, net.replication_timeout)
                    .await;
                let result = match res {
                    Ok(r) if r.status == 200 => r
                        .json()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({"failed": true, "bad_peer_response": true})),
                    Ok(r) => {
                        json!({"failed": true, "code": r.status.to_string(), "reason": r.text()})
                    }
                    Err(_) => json!({"failed": true, "timeout": true}),
                };
                (ed, result)
            });
        }
        set
    }

    async fn store(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let ns = parse_ns(p)?;
        let timestamp = get_int(p, "timestamp", true)?
            .ok_or_else(|| bad("missing required field `timestamp`"))?;
        let expiry = match (get_int(p, "ttl", true)?, get_int(p, "expiry", false)?) {
            (Some(ttl), None) => timestamp.saturating_add(ttl),
            (None, Some(e)) => e,
            _ => return Err(bad("store: exactly one of `ttl` and `expiry` is required")),
        };
        let data = B64_LAX
            .decode(req_str(p, "data")?)
            .map_err(|_| bad("`data` is not valid base64"))?;
        if data.len() > MAX_MESSAGE_DATA {
            return Err(bad(format!(
                "`data` is larger than {MAX_MESSAGE_DATA} bytes"
            )));
        }
        let public = is_public_inbox(ns);
        let ttl = expiry.saturating_sub(timestamp);
        let max_ttl = if public {
            TTL_MAX_PUBLIC_MS
        } else {
            TTL_MAX_PRIVATE_MS
        };
        if !(TTL_MIN_MS..=max_ttl).contains(&ttl) {
            return Err(Reply::text(403, "Provided expiry/TTL is not valid."));
        }
        let now = self.now_ms();
        if timestamp > now + STORE_TOLERANCE_MS || expiry < now - STORE_TOLERANCE_MS {
            return Err(Reply::text(406, "Timestamp error: check your clock"));
        }
        if !public {
            if !p.contains_key("signature") {
                return Err(Reply::text(
                    401,
                    format!("store: signature required to store to namespace {ns}"),
                ));
            }
            let sig_ts = get_int(p, "sig_timestamp", false)?.unwrap_or(timestamp);
            let tol = if recurse {
                SIGNATURE_TOLERANCE_MS
            } else {
                SIGNATURE_TOLERANCE_FORWARDED_MS
            };
            if !ts_ok(sig_ts, now, tol) {
                return Err(Reply::text(
                    406,
                    "store signature timestamp too far from current time",
                ));
            }
            let msg = format!("store{}{sig_ts}", wire::ns_str(ns));
            self.check_sig(&acct, p, "store", msg.as_bytes())?;
        }
        let hash = wire::message_hash(acct.prefix(), &acct.key32(), ns, &data);
        let me = self.clone();
        let h = hash.clone();
        self.recursive(
            "store",
            p,
            recurse,
            now,
            vec![("hash", json!(hash))],
            move || {
                let account = acct.hex();
                if is_public_outbox(ns) {
                    let _ = me.store.delete_where(&account, Some(ns), |m| m.hash != h);
                }
                match me.store.insert(&account, ns, &h, timestamp, expiry, &data) {
                    Ok(ins) => {
                        let mut mine = json!({
                            "hash": h,
                            "signature": me.sign_b64(h.as_bytes()),
                            "expiry": ins.expiry,
                        });
                        if !ins.new {
                            mine["already"] = json!(true);
                        }
                        mine
                    }
                    Err(e) => {
                        json!({"failed": true, "query_failure": true, "reason": e.to_string()})
                    }
                }
            },
        )
        .await
    }

    fn retrieve(&self, p: &Map<String, Value>) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let ns = parse_ns(p)?;
        let now = self.now_ms();
        let has_sig = p.get("signature").is_some_and(|v| !v.is_null());
        if !is_noauth_retrieve(ns) && !has_sig {
            return Err(Reply::text(401, "retrieve: request signature required"));
        }
        if has_sig {
            let ts = req_int(p, "timestamp")?;
            if !ts_ok(ts, now, SIGNATURE_TOLERANCE_MS) {
                return Err(Reply::text(
                    406,
                    "retrieve timestamp too far from current time",
                ));
            }
            let msg = format!("retrieve{}{ts}", wire::ns_str(ns));
            self.check_sig(&acct, p, "retrieve", msg.as_bytes())?;
        }
        let last_hash = match get_str(p, "last_hash")? {
            Some(h) => h,
            None => get_str(p, "lastHash")?.unwrap_or(""),
        };
        if !last_hash.is_empty() && (last_hash.len() != 43 || B64_LAX.decode(last_hash).is_err()) {
            return Err(bad("`last_hash` must be a 43-character message hash"));
        }
        let max_count = get_int(p, "max_count", false)?.filter(|c| *c != 0);
        let mut max_size = get_int(p, "max_size", false)?.filter(|s| *s != 0);
        if max_count.is_none() && max_size.is_none() {
            max_size = Some(-5);
        }
        let max_size = match max_size {
            Some(s) if s < 0 => RETRIEVE_MAX_SIZE / -s.max(-RETRIEVE_MAX_SIZE),
            Some(s) => s.min(RETRIEVE_MAX_SIZE),
            None => RETRIEVE_MAX_SIZE,
        };
        let max_count = max_count.map(|c| usize::try_from(c.max(1)).unwrap_or(usize::MAX));
        let (msgs, more) = self.store.retrieve(
            &acct.hex(),
            ns,
            last_hash,
            max_count,
            usize::try_from(max_size).unwrap_or(0),
            now,
        );
        let messages: Vec<Value> = msgs
            .into_iter()
            .map(|m| {
                json!({
                    "hash": m.hash,
                    "timestamp": m.timestamp,
                    "expiration": m.expiry,
                    "data": B64.encode(&m.data),
                })
            })
            .collect();
        Ok(Reply::json(
            200,
            self.misc(json!({"messages": messages, "more": more}), now),
        ))
    }

    async fn delete(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let hashes = req_str_list(p, "messages")?;
        let required = get_bool(p, "required")?;
        let msg = format!("delete{}", hashes.concat());
        self.check_sig(&acct, p, "delete_msgs", msg.as_bytes())?;
        let now = self.now_ms();
        let me = self.clone();
        let reply = self
            .recursive("delete", p, recurse, now, vec![], move || {
                let account = acct.hex();
                match me.store.delete_hashes(&account, &hashes) {
                    Ok(mut deleted) => {
                        deleted.sort();
                        let sig = format!("{account}{}{}", hashes.concat(), deleted.concat());
                        json!({"deleted": deleted, "signature": me.sign_b64(sig.as_bytes())})
                    }
                    Err(e) => json!({"failed": true, "reason": e.to_string()}),
                }
            })
            .await?;
        if required && recurse && reply.status == 200 {
            if let Body::Json(v) = &reply.body {
                let any = v["swarm"].as_object().is_some_and(|s| {
                    s.values()
                        .any(|r| r["deleted"].as_array().is_some_and(|d| !d.is_empty()))
                });
                if !any {
                    return Ok(Reply {
                        status: 404,
                        ..reply
                    });
                }
            }
        }
        Ok(reply)
    }

    /// Shared tail of delete_all / delete_before / expire_all: sign and list affected hashes.
    fn action_result(
        &self,
        key: &str,
        account: &str,
        sig_value: &str,
        all_ns: bool,
        mut affected: Vec<(i64, String)>,
    ) -> Value {
        affected.sort_by(|a, b| a.1.cmp(&b.1));
        let hashes: String = affected.iter().map(|(_, h)| h.as_str()).collect();
        let sig = self.sign_b64(format!("{account}{sig_value}{hashes}").as_bytes());
        let list = if all_ns {
            let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (ns, h) in affected {
                by_ns.entry(ns.to_string()).or_default().push(h);
            }
            json!(by_ns)
        } else {
            json!(affected.into_iter().map(|(_, h)| h).collect::<Vec<_>>())
        };
        json!({ key: list, "signature": sig })
    }

    async fn delete_all(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let ns = parse_ns_or_all(p)?;
        let ts = req_int(p, "timestamp")?;
        let now = self.now_ms();
        let tol = if recurse {
            SIGNATURE_TOLERANCE_MS
        } else {
            SIGNATURE_TOLERANCE_FORWARDED_MS
        };
        if !ts_ok(ts, now, tol) {
            return Err(Reply::text(
                406,
                "delete_all timestamp too far from current time",
            ));
        }
        let msg = format!("delete_all{}{ts}", ns_sig_value(ns));
        self.check_sig(&acct, p, "delete_all", msg.as_bytes())?;
        let me = self.clone();
        self.recursive("delete_all", p, recurse, now, vec![], move || {
            let account = acct.hex();
            match me.store.delete_where(&account, ns, |_| true) {
                Ok(d) => me.action_result("deleted", &account, &ts.to_string(), ns.is_none(), d),
                Err(e) => json!({"failed": true, "reason": e.to_string()}),
            }
        })
        .await
    }

    async fn delete_before(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let ns = parse_ns_or_all(p)?;
        let before = req_int(p, "before")?;
        let now = self.now_ms();
        if before > now + 60_000 {
            return Err(Reply::text(
                401,
                "delete_before timestamp too far in the future",
            ));
        }
        let msg = format!("delete_before{}{before}", ns_sig_value(ns));
        self.check_sig(&acct, p, "delete_before", msg.as_bytes())?;
        let me = self.clone();
        self.recursive("delete_before", p, recurse, now, vec![], move || {
            let account = acct.hex();
            match me
                .store
                .delete_where(&account, ns, |m| m.timestamp <= before)
            {
                Ok(d) => {
                    me.action_result("deleted", &account, &before.to_string(), ns.is_none(), d)
                }
                Err(e) => json!({"failed": true, "reason": e.to_string()}),
            }
        })
        .await
    }

    async fn expire_all(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let ns = parse_ns_or_all(p)?;
        let expiry = req_int(p, "expiry")?;
        let now = self.now_ms();
        let tol = if recurse {
            SIGNATURE_TOLERANCE_MS
        } else {
            SIGNATURE_TOLERANCE_FORWARDED_MS
        };
        if expiry < now - tol {
            return Err(Reply::text(
                406,
                "expire_all timestamp should be >= current time",
            ));
        }
        let msg = format!("expire_all{}{expiry}", ns_sig_value(ns));
        self.check_sig(&acct, p, "expire_all", msg.as_bytes())?;
        let me = self.clone();
        self.recursive("expire_all", p, recurse, now, vec![], move || {
            let account = acct.hex();
            match me.store.shorten_all(&account, ns, expiry) {
                Ok(u) => {
                    me.action_result("updated", &account, &expiry.to_string(), ns.is_none(), u)
                }
                Err(e) => json!({"failed": true, "reason": e.to_string()}),
            }
        })
        .await
    }

    async fn expire(self: &Arc<Self>, p: &Map<String, Value>, recurse: bool) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let hashes = req_str_list(p, "messages")?;
        let requested: Vec<i64> = match p.get("expiry") {
            Some(Value::Number(n)) => vec![n
                .as_i64()
                .ok_or_else(|| bad("`expiry` must be an integer"))?],
            Some(Value::Array(a)) if a.len() == hashes.len() => a
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| bad("`expiry` must be integers")))
                .collect::<Result<_, _>>()?,
            Some(Value::Array(_)) => return Err(bad("`expiry` list must match `messages`")),
            Some(_) => return Err(bad("`expiry` must be an integer or a list")),
            None => return Err(bad("missing required field `expiry`")),
        };
        let shorten = get_bool(p, "shorten")?;
        let extend = get_bool(p, "extend")?;
        if shorten && extend {
            return Err(bad("cannot specify both `shorten` and `extend`"));
        }
        let now = self.now_ms();
        if requested.iter().any(|e| *e < now - 60_000) {
            return Err(Reply::text(
                401,
                "expire: timestamp should be >= current time",
            ));
        }
        let capped: Vec<i64> = requested
            .iter()
            .map(|e| (*e).min(now + TTL_MAX_PRIVATE_MS))
            .collect();
        let mode = if shorten {
            "shorten"
        } else if extend {
            "extend"
        } else {
            ""
        };
        let exp_str: String = requested.iter().map(i64::to_string).collect();
        let msg = format!("expire{mode}{exp_str}{}", hashes.concat());
        self.check_sig(&acct, p, "expire:", msg.as_bytes())
            .map_err(|e| {
                if e.status == 401 {
                    Reply::text(401, "expire: signature verification failed")
                } else {
                    e
                }
            })?;
        let me = self.clone();
        let multi = requested.len() > 1;
        self.recursive("expire", p, recurse, now, vec![], move || {
            let account = acct.hex();
            let mut updated = match me
                .store
                .update_expiry(&account, &hashes, &capped, extend, shorten)
            {
                Ok(u) => u,
                Err(e) => return json!({"failed": true, "reason": e.to_string()}),
            };
            updated.sort();
            let unchanged: BTreeMap<String, i64> = if shorten || extend {
                let done: Vec<&String> = updated.iter().map(|(h, _)| h).collect();
                let rest: Vec<String> = hashes
                    .iter()
                    .filter(|h| !done.contains(h))
                    .cloned()
                    .collect();
                me.store.expiries(&account, &rest)
            } else {
                BTreeMap::new()
            };
            let exps: Vec<i64> = if multi {
                updated.iter().map(|(_, e)| *e).collect()
            } else {
                vec![capped[0]]
            };
            let sig_msg = format!(
                "{account}{}{}{}{}",
                exps.iter().map(i64::to_string).collect::<String>(),
                hashes.concat(),
                updated.iter().map(|(h, _)| h.as_str()).collect::<String>(),
                unchanged
                    .iter()
                    .map(|(h, e)| format!("{h}{e}"))
                    .collect::<String>(),
            );
            let mut mine = json!({
                "expiry": if multi { json!(exps) } else { json!(capped[0]) },
                "updated": updated.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
                "signature": me.sign_b64(sig_msg.as_bytes()),
            });
            if shorten || extend {
                mine["unchanged"] = json!(unchanged);
            }
            mine
        })
        .await
    }

    fn get_expiries(&self, p: &Map<String, Value>) -> R {
        let acct = parse_account(p)?;
        self.check_swarm(&acct)?;
        let hashes = req_str_list(p, "messages")?;
        let ts = req_int(p, "timestamp")?;
        let now = self.now_ms();
        if !ts_ok(ts, now, SIGNATURE_TOLERANCE_MS) {
            return Err(Reply::text(
                406,
                "get_expiries timestamp too far from current time",
            ));
        }
        let msg = format!("get_expiries{ts}{}", hashes.concat());
        self.check_sig(&acct, p, "get_expiries", msg.as_bytes())?;
        let exp = self.store.expiries(&acct.hex(), &hashes);
        Ok(Reply::json(200, self.misc(json!({"expiries": exp}), now)))
    }

    fn oxend_request(&self, p: &Map<String, Value>) -> R {
        let endpoint = req_str(p, "endpoint")?;
        if endpoint != "get_service_nodes" {
            return Err(bad(format!(
                "oxend_request: endpoint {endpoint:?} is not available on the devnet"
            )));
        }
        let params = match p.get("params") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => return Err(bad("oxend_request: `params` must be an object")),
        };
        let fields = params
            .and_then(|o| o.get("fields"))
            .and_then(Value::as_object);
        let states = self.net.topology.service_node_states(fields);
        let result = json!({"service_node_states": states, "height": HEIGHT, "status": "OK"});
        Ok(Reply::json(
            200,
            self.misc(json!({"result": result}), self.now_ms()),
        ))
    }

    async fn batch(self: &Arc<Self>, p: &Map<String, Value>, sequential: bool) -> R {
        let Some(Value::Array(reqs)) = p.get("requests") else {
            return Err(bad("`requests` must be a list"));
        };
        if reqs.is_empty() || reqs.len() > BATCH_MAX {
            return Err(bad(format!(
                "`requests` must hold 1 to {BATCH_MAX} subrequests"
            )));
        }
        let mut subs = Vec::with_capacity(reqs.len());
        for r in reqs {
            let method = r.get("method").and_then(Value::as_str);
            let params = r.get("params").and_then(Value::as_object);
            match (method, params) {
                (Some("batch" | "sequence"), _) => {
                    return Err(bad("batch/sequence subrequests cannot nest"))
                }
                (Some(m), Some(p)) => subs.push((m.to_string(), p.clone())),
                _ => return Err(bad("each subrequest needs `method` and object `params`")),
            }
        }
        let to_result = |r: Reply| match r.body {
            Body::Json(v) => json!({"code": r.status, "body": v}),
            Body::Text(s) => json!({"code": r.status, "body": s}),
        };
        let mut results = Vec::with_capacity(subs.len());
        if sequential {
            for (m, sp) in subs {
                let r = self.single(&m, &sp, true).await.unwrap_or_else(|e| e);
                let stop = !(200..300).contains(&r.status);
                results.push(to_result(r));
                if stop {
                    break;
                }
            }
        } else {
            let mut set = tokio::task::JoinSet::new();
            for (i, (m, sp)) in subs.into_iter().enumerate() {
                let me = self.clone();
                set.spawn(async move { (i, me.single(&m, &sp, true).await.unwrap_or_else(|e| e)) });
            }
            let mut done: Vec<(usize, Reply)> = set.join_all().await;
            done.sort_by_key(|(i, _)| *i);
            results = done.into_iter().map(|(_, r)| to_result(r)).collect();
        }
        Ok(Reply::json(
            200,
            self.misc(json!({"results": results}), self.now_ms()),
        ))
    }

    /// The seed role: `POST /json_rpc` with `get_n_service_nodes` (or `get_service_nodes`).
    pub(crate) fn handle_seed(&self, body: &[u8]) -> Reply {
        let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
            return Reply::text(400, "invalid json");
        };
        let id = v.get("id").cloned().unwrap_or(json!(0));
        let method = v.get("method").and_then(Value::as_str).unwrap_or("");
        self.events.push(crate::node::Event::SeedRpc {
            method: method.chars().take(64).collect(),
        });
        if method != "get_n_service_nodes" && method != "get_service_nodes" {
            return Reply::json(
                200,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
            );
        }
        let params = v.get("params").and_then(Value::as_object);
        let fields = params
            .and_then(|p| p.get("fields"))
            .and_then(Value::as_object);
        let mut states = self.net.topology.service_node_states(fields);
        if let Some(limit) = params.and_then(|p| p.get("limit")).and_then(Value::as_u64) {
            if limit > 0 {
                states.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
        }
        Reply::json(
            200,
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "service_node_states": states, "height": HEIGHT, "status": "OK",
            }}),
        )
    }
}
