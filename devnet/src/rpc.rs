//! The storage RPC of a node (`POST /storage_rpc/v1`, onion final hops, swarm replication) and
//! the seed's `POST /json_rpc`.
//!
//! Requests are parsed, and their signatures checked, by [`session_proto::storage_rpc`]; reply
//! bodies and the byte strings each member signs come from there too. What stays here is the
//! snode's behaviour: each method checks in the order the real storage server does (wrong swarm
//! → TTL → clock → signature) with its status codes and texts, then applies locally; recursive
//! methods are also forwarded to every other swarm member and answered with the `swarm` map of
//! per-node results.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Map, Value};
use session_proto::err::RpcError;
use session_proto::storage_rpc::sign::{self, sign};
use session_proto::storage_rpc::{
    check_timestamp, is_public_outbox, is_unrevocable, max_ttl_ms, message_hash,
    retrieve_requires_auth, store_requires_auth, BatchReply, BatchResult, DeleteAllParams,
    DeleteAllResult, DeleteBeforeParams, DeleteParams, DeleteResult, ExpireAllParams,
    ExpireAllResult, ExpireMode, ExpireParams, ExpireResult, ExpiryValue, GetExpiriesParams,
    GetExpiriesReply, HashesByNamespace, InfoReply, NamespaceOrAll, NodeFailure, OxendReply,
    OxendRequestParams, Request, RetrieveParams, RetrieveReply, RetrievedMessage, RevocationResult,
    StoreParams, StoreResult, SubaccountToken, UserPubkey, RETRIEVE_MAX_SIZE,
    SIGNATURE_TOLERANCE_FORWARDED_MS, SIGNATURE_TOLERANCE_MS, STORE_TOLERANCE_MS,
    TTL_MAX_PRIVATE_MS, TTL_MIN_MS,
};
use session_proto::storage_rpc::{Base64Bytes, Sig};

use crate::node::{Body, NodeShared, Reply};
use crate::topology::{HARDFORK, HEIGHT, VERSION};

type R = Result<Reply, Reply>;

fn bad(msg: impl std::fmt::Display) -> Reply {
    Reply::text(400, format!("invalid request: {msg}"))
}

/// A parse error as the node answers it (400, session-proto's text).
fn rpc_error(e: &RpcError) -> Reply {
    Reply::text(e.status(), e.to_string())
}

/// A session-proto reply type as a JSON body.
fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("reply types serialize to JSON without failing")
}

/// The store keeps signed ms values; protocol values are unsigned.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ums(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ns_filter(ns: NamespaceOrAll) -> Option<i64> {
    match ns {
        NamespaceOrAll::Ns(n) => Some(i64::from(n)),
        NamespaceOrAll::All => None,
    }
}

/// A member's entry when its own step failed.
fn failure(reason: String, query_failure: bool) -> Value {
    to_json(&NodeFailure {
        failed: true,
        timeout: false,
        code: None,
        reason: Some(reason),
        bad_peer_response: false,
        query_failure,
    })
}

/// The method name of a body that did not parse, for the event log (empty if none).
fn method_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct MethodOnly {
        method: String,
    }
    serde_json::from_slice::<MethodOnly>(body)
        .map(|m| m.method.chars().take(64).collect())
        .unwrap_or_default()
}

impl NodeShared {
    fn misc(&self, mut v: Value, now: u64) -> Value {
        if let Value::Object(m) = &mut v {
            m.insert("t".into(), json!(now));
            m.insert("hf".into(), json!(HARDFORK));
        }
        v
    }

    fn now(&self) -> u64 {
        ums(self.now_ms())
    }

    fn sign(&self, msg: &[u8]) -> Sig {
        sign(&self.keys.signing, msg)
    }

    /// 421 with the account's swarm unless this node is in it.
    fn check_swarm(&self, acct: &UserPubkey) -> Result<(), Reply> {
        let topo = &self.net.topology;
        let swarm = topo.swarm_of(acct.key());
        if topo.nodes()[self.index].swarm_id == swarm {
            return Ok(());
        }
        Err(Reply::json(
            421,
            to_json(&topo.swarm_reply(swarm, self.now())),
        ))
    }

    /// Checks the request signature (session-proto's verification; 401 on failure). A revoked
    /// subaccount fails like a bad signature, except for `retrieve` from an unrevocable
    /// namespace (−11, −111, …).
    fn check_sig(&self, req: &Request, what: &str) -> Result<(), Reply> {
        if let (Some(token), Some(account)) = (req.subaccount(), req.account()) {
            let exempt = matches!(req, Request::Retrieve(p) if is_unrevocable(p.namespace));
            if !exempt && self.revoked.is_revoked(&account.0, token) {
                return Err(Reply::text(
                    401,
                    format!("{what} signature verification failed"),
                ));
            }
        }
        req.verify_signature().map_err(|e| match e {
            RpcError::BadSignature { .. } => {
                Reply::text(401, format!("{what} signature verification failed"))
            }
            other => rpc_error(&other),
        })
    }

    /// Parses a storage-RPC body `{"method","params"}` and runs it. Returns the method name
    /// (for the event log) and the reply.
    pub(crate) async fn handle_rpc_body(
        self: Arc<Self>,
        body: &[u8],
        recurse: bool,
    ) -> (String, Reply) {
        let req = match Request::from_json(body) {
            Ok(r) => r,
            Err(e) => return (method_of(body), rpc_error(&e)),
        };
        let method = req.method().to_string();
        if !recurse && !req.is_recursive() {
            return (
                method,
                bad("received invalid forwarded non-forwardable request"),
            );
        }
        let reply = match &req {
            Request::Batch(subs) => self.batch(subs, false).await,
            Request::Sequence(subs) => self.batch(subs, true).await,
            single => self.single(single, recurse).await,
        };
        (method, reply.unwrap_or_else(|e| e))
    }

    async fn single(self: &Arc<Self>, req: &Request, recurse: bool) -> R {
        match req {
            Request::Info => {
                let now = self.now();
                Ok(Reply::json(
                    200,
                    to_json(&InfoReply {
                        version: VERSION.to_vec(),
                        timestamp: now,
                        t: now,
                        hf: HARDFORK.to_vec(),
                    }),
                ))
            }
            Request::GetSwarm(p) => {
                let topo = &self.net.topology;
                let reply = topo.swarm_reply(topo.swarm_of(p.pubkey.key()), self.now());
                Ok(Reply::json(200, to_json(&reply)))
            }
            Request::Store(p) => self.store(req, p, recurse).await,
            Request::Retrieve(p) => self.retrieve(req, p),
            Request::Delete(p) => self.delete(req, p, recurse).await,
            Request::DeleteAll(p) => self.delete_all(req, p, recurse).await,
            Request::DeleteBefore(p) => self.delete_before(req, p, recurse).await,
            Request::Expire(p) => self.expire(req, p, recurse).await,
            Request::ExpireAll(p) => self.expire_all(req, p, recurse).await,
            Request::GetExpiries(p) => self.get_expiries(req, p),
            Request::OxendRequest(p) => self.oxend_request(p),
            Request::RevokeSubaccount(p) => {
                let (pk, ts, tokens) = (p.pubkey, p.timestamp, p.revoke.0.clone());
                self.revocation(req, recurse, "revoke_subaccount", pk, ts, tokens)
                    .await
            }
            Request::UnrevokeSubaccount(p) => {
                let (pk, ts, tokens) = (p.pubkey, p.timestamp, p.unrevoke.0.clone());
                self.revocation(req, recurse, "unrevoke_subaccount", pk, ts, tokens)
                    .await
            }
            Request::Batch(_) | Request::Sequence(_) => {
                Err(bad("batch/sequence subrequests cannot nest"))
            }
            other => Err(Reply::text(
                400,
                format!("no method {} on the devnet", other.method()),
            )),
        }
    }

    /// Runs `local` here and, when `recurse`, forwards the request to every other swarm member;
    /// answers `{"swarm": {ed: result}, "t", "hf", extra…}`, 200 if any member succeeded.
    async fn recursive(
        self: &Arc<Self>,
        req: &Request,
        recurse: bool,
        now: u64,
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
        let peers = self.replicate(req);
        let mut mine = local();
        if let Value::Object(m) = &mut mine {
            if matches!(req, Request::Store(_)) {
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

    /// Forwards `req` to every other member of this node's swarm (coalesced with whatever
    /// else goes to the same peer: [`crate::replication`]).
    fn replicate(self: &Arc<Self>, req: &Request) -> tokio::task::JoinSet<(String, Value)> {
        let mut set = tokio::task::JoinSet::new();
        let topo = &self.net.topology;
        let body = req.to_json();
        for i in topo.members(topo.nodes()[self.index].swarm_id) {
            if i == self.index {
                continue;
            }
            let ed = hex::encode(topo.nodes()[i].ed25519);
            let me = self.clone();
            let body = body.clone();
            set.spawn(async move {
                let mut fail = NodeFailure {
                    failed: true,
                    timeout: false,
                    code: None,
                    reason: None,
                    bad_peer_response: false,
                    query_failure: false,
                };
                let result = match me.forward(i, body).await {
                    Some((200, body)) => {
                        match serde_json::from_slice::<Value>(&body)
                            .ok()
                            .filter(Value::is_object)
                        {
                            Some(v) => v,
                            None => {
                                fail.bad_peer_response = true;
                                to_json(&fail)
                            }
                        }
                    }
                    Some((status, body)) => {
                        fail.code = Some(json!(status.to_string()));
                        fail.reason = Some(String::from_utf8_lossy(&body).into_owned());
                        to_json(&fail)
                    }
                    None => {
                        fail.timeout = true;
                        to_json(&fail)
                    }
                };
                (ed, result)
            });
        }
        set
    }

    /// The signature-timestamp tolerance: wider for requests a swarm peer forwarded.
    fn sig_tolerance(recurse: bool) -> u64 {
        if recurse {
            SIGNATURE_TOLERANCE_MS
        } else {
            SIGNATURE_TOLERANCE_FORWARDED_MS
        }
    }

    /// `revoke_subaccount` / `unrevoke_subaccount`: swarm → clock (±60 s, 406) → signature by
    /// the account key (401) → apply on every member. Each member signs
    /// [`sign::revocation_result_message`]; unrevoke also reports how many were listed.
    async fn revocation(
        self: &Arc<Self>,
        req: &Request,
        recurse: bool,
        method: &'static str,
        account: UserPubkey,
        timestamp: u64,
        tokens: Vec<SubaccountToken>,
    ) -> R {
        self.check_swarm(&account)?;
        let now = self.now();
        if !check_timestamp(timestamp, now, Self::sig_tolerance(recurse)) {
            return Err(Reply::text(
                406,
                format!("{method} timestamp too far from current time"),
            ));
        }
        self.check_sig(req, method)?;
        let me = self.clone();
        self.recursive(req, recurse, now, vec![], move || {
            let count = if method == "revoke_subaccount" {
                me.revoked.revoke(&account.0, &tokens);
                None
            } else {
                Some(me.revoked.unrevoke(&account.0, &tokens))
            };
            let signed = sign::revocation_result_message(&account, timestamp, &tokens);
            to_json(&RevocationResult {
                count,
                signature: me.sign(&signed),
            })
        })
        .await
    }

    async fn store(self: &Arc<Self>, req: &Request, p: &StoreParams, recurse: bool) -> R {
        self.check_swarm(&p.pubkey)?;
        let ns = p.namespace;
        let (timestamp, expiry) = (p.timestamp, p.expiry_ms());
        let ttl_ok = expiry
            .checked_sub(timestamp)
            .is_some_and(|ttl| (TTL_MIN_MS..=max_ttl_ms(ns)).contains(&ttl));
        if !ttl_ok {
            return Err(Reply::text(403, "Provided expiry/TTL is not valid."));
        }
        let now = self.now();
        if timestamp > now + STORE_TOLERANCE_MS || expiry.saturating_add(STORE_TOLERANCE_MS) < now {
            return Err(Reply::text(406, "Timestamp error: check your clock"));
        }
        if store_requires_auth(ns) {
            if p.signature.is_none() {
                return Err(Reply::text(
                    401,
                    format!("store: signature required to store to namespace {ns}"),
                ));
            }
            if !check_timestamp(p.sig_timestamp_ms(), now, Self::sig_tolerance(recurse)) {
                return Err(Reply::text(
                    406,
                    "store signature timestamp too far from current time",
                ));
            }
            self.check_sig(req, "store")?;
        }
        let hash = message_hash(&p.pubkey.0, ns, &p.data.0);
        let me = self.clone();
        let h = hash.clone();
        let account = p.pubkey.to_hex();
        let data = p.data.0.clone();
        self.recursive(req, recurse, now, vec![("hash", json!(hash))], move || {
            if is_public_outbox(ns) {
                let _ = me
                    .store
                    .delete_where(&account, Some(i64::from(ns)), |m| m.hash != h);
            }
            let stored = me.store.insert(
                &account,
                i64::from(ns),
                &h,
                ms(timestamp),
                ms(expiry),
                &data,
            );
            match stored {
                Ok(ins) => to_json(&StoreResult {
                    signature: me.sign(&sign::store_result_message(&h)),
                    hash: h,
                    expiry: ums(ins.expiry),
                    already: !ins.new,
                }),
                Err(e) => failure(e.to_string(), true),
            }
        })
        .await
    }

    fn retrieve(&self, req: &Request, p: &RetrieveParams) -> R {
        self.check_swarm(&p.pubkey)?;
        let ns = p.namespace;
        let now = self.now();
        if retrieve_requires_auth(ns) && !p.is_signed() {
            return Err(Reply::text(401, "retrieve: request signature required"));
        }
        if p.is_signed() {
            // Parsing made sure a signed request has its timestamp.
            let ts = p.timestamp.unwrap_or(0);
            if !check_timestamp(ts, now, SIGNATURE_TOLERANCE_MS) {
                return Err(Reply::text(
                    406,
                    "retrieve timestamp too far from current time",
                ));
            }
            self.check_sig(req, "retrieve")?;
        }
        let max_count = p.max_count.filter(|c| *c != 0);
        let mut max_size = p.max_size.filter(|s| *s != 0);
        if max_count.is_none() && max_size.is_none() {
            max_size = Some(-5);
        }
        let cap = ms(RETRIEVE_MAX_SIZE);
        let max_size = match max_size {
            Some(s) if s < 0 => cap / -s.max(-cap),
            Some(s) => s.min(cap),
            None => cap,
        };
        let max_count = max_count.map(|c| usize::try_from(c.max(1)).unwrap_or(usize::MAX));
        let (msgs, more) = self.store.retrieve(
            &p.pubkey.to_hex(),
            i64::from(ns),
            p.last_hash().unwrap_or(""),
            max_count,
            usize::try_from(max_size).unwrap_or(0),
            ms(now),
        );
        let reply = RetrieveReply {
            messages: msgs
                .into_iter()
                .map(|m| RetrievedMessage {
                    hash: m.hash,
                    timestamp: ums(m.timestamp),
                    expiration: ums(m.expiry),
                    data: Base64Bytes(m.data),
                })
                .collect(),
            more,
            t: now,
            hf: HARDFORK.to_vec(),
        };
        Ok(Reply::json(200, to_json(&reply)))
    }

    async fn delete(self: &Arc<Self>, req: &Request, p: &DeleteParams, recurse: bool) -> R {
        self.check_swarm(&p.pubkey)?;
        self.check_sig(req, "delete_msgs")?;
        let now = self.now();
        let me = self.clone();
        let (pk, hashes) = (p.pubkey, p.messages.0.clone());
        let reply = self
            .recursive(req, recurse, now, vec![], move || {
                match me.store.delete_hashes(&pk.to_hex(), &hashes) {
                    Ok(mut deleted) => {
                        deleted.sort();
                        let msg = sign::delete_result_message(&pk, &hashes, &deleted);
                        to_json(&DeleteResult {
                            signature: me.sign(&msg),
                            deleted,
                        })
                    }
                    Err(e) => failure(e.to_string(), false),
                }
            })
            .await?;
        if p.required && recurse && reply.status == 200 {
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

    /// The affected hashes of delete_all / delete_before / expire_all, sorted, and as the
    /// reply lists them (a list for one namespace, by namespace for `all`).
    fn affected(
        all_ns: bool,
        mut affected: Vec<(i64, String)>,
    ) -> (Vec<String>, HashesByNamespace) {
        affected.sort_by(|a, b| a.1.cmp(&b.1));
        let sorted: Vec<String> = affected.iter().map(|(_, h)| h.clone()).collect();
        let listed = if all_ns {
            let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (ns, h) in affected {
                by_ns.entry(ns.to_string()).or_default().push(h);
            }
            HashesByNamespace::All(by_ns)
        } else {
            HashesByNamespace::One(sorted.clone())
        };
        (sorted, listed)
    }

    /// A member's delete_all / delete_before result, signed over `sig_value` (the timestamp
    /// or the cut-off) and the deleted hashes.
    fn deleted_result(
        &self,
        pk: &UserPubkey,
        sig_value: u64,
        ns: NamespaceOrAll,
        res: Result<Vec<(i64, String)>, crate::err::DevnetError>,
    ) -> Value {
        match res {
            Ok(d) => {
                let (sorted, deleted) = Self::affected(ns == NamespaceOrAll::All, d);
                let msg = sign::delete_all_result_message(pk, sig_value, &sorted);
                to_json(&DeleteAllResult {
                    deleted,
                    signature: self.sign(&msg),
                })
            }
            Err(e) => failure(e.to_string(), false),
        }
    }

    async fn delete_all(self: &Arc<Self>, req: &Request, p: &DeleteAllParams, recurse: bool) -> R {
        self.check_swarm(&p.pubkey)?;
        let now = self.now();
        let ts = p.timestamp;
        if !check_timestamp(ts, now, Self::sig_tolerance(recurse)) {
            return Err(Reply::text(
                406,
                "delete_all timestamp too far from current time",
            ));
        }
        self.check_sig(req, "delete_all")?;
        let me = self.clone();
        let (pk, ns) = (p.pubkey, p.namespace);
        self.recursive(req, recurse, now, vec![], move || {
            let res = me.store.delete_where(&pk.to_hex(), ns_filter(ns), |_| true);
            me.deleted_result(&pk, ts, ns, res)
        })
        .await
    }

    async fn delete_before(
        self: &Arc<Self>,
        req: &Request,
        p: &DeleteBeforeParams,
        recurse: bool,
    ) -> R {
        self.check_swarm(&p.pubkey)?;
        let now = self.now();
        let before = p.before;
        if before > now + SIGNATURE_TOLERANCE_MS {
            return Err(Reply::text(
                401,
                "delete_before timestamp too far in the future",
            ));
        }
        self.check_sig(req, "delete_before")?;
        let me = self.clone();
        let (pk, ns) = (p.pubkey, p.namespace);
        self.recursive(req, recurse, now, vec![], move || {
            let cut = ms(before);
            let res = me
                .store
                .delete_where(&pk.to_hex(), ns_filter(ns), |m| m.timestamp <= cut);
            me.deleted_result(&pk, before, ns, res)
        })
        .await
    }

    async fn expire_all(self: &Arc<Self>, req: &Request, p: &ExpireAllParams, recurse: bool) -> R {
        self.check_swarm(&p.pubkey)?;
        let now = self.now();
        let expiry = p.expiry;
        if expiry.saturating_add(Self::sig_tolerance(recurse)) < now {
            return Err(Reply::text(
                406,
                "expire_all timestamp should be >= current time",
            ));
        }
        self.check_sig(req, "expire_all")?;
        let me = self.clone();
        let (pk, ns) = (p.pubkey, p.namespace);
        self.recursive(req, recurse, now, vec![], move || {
            match me
                .store
                .shorten_all(&pk.to_hex(), ns_filter(ns), ms(expiry))
            {
                Ok(u) => {
                    let (sorted, updated) = Self::affected(ns == NamespaceOrAll::All, u);
                    let msg = sign::expire_all_result_message(&pk, expiry, &sorted);
                    to_json(&ExpireAllResult {
                        updated,
                        signature: me.sign(&msg),
                    })
                }
                Err(e) => failure(e.to_string(), false),
            }
        })
        .await
    }

    async fn expire(self: &Arc<Self>, req: &Request, p: &ExpireParams, recurse: bool) -> R {
        self.check_swarm(&p.pubkey)?;
        let requested = &p.expiry.0;
        let now = self.now();
        if requested
            .iter()
            .any(|e| e.saturating_add(SIGNATURE_TOLERANCE_MS) < now)
        {
            return Err(Reply::text(
                401,
                "expire: timestamp should be >= current time",
            ));
        }
        let capped: Vec<u64> = requested
            .iter()
            .map(|e| (*e).min(now + TTL_MAX_PRIVATE_MS))
            .collect();
        self.check_sig(req, "expire:")?;
        let me = self.clone();
        let multi = requested.len() > 1;
        let (pk, hashes, mode) = (p.pubkey, p.messages.0.clone(), p.mode());
        let (shorten, extend) = (mode == ExpireMode::Shorten, mode == ExpireMode::Extend);
        self.recursive(req, recurse, now, vec![], move || {
            let account = pk.to_hex();
            let capped_ms: Vec<i64> = capped.iter().copied().map(ms).collect();
            let mut updated = match me
                .store
                .update_expiry(&account, &hashes, &capped_ms, extend, shorten)
            {
                Ok(u) => u,
                Err(e) => return failure(e.to_string(), false),
            };
            updated.sort();
            let unchanged: BTreeMap<String, u64> = if shorten || extend {
                let rest: Vec<String> = hashes
                    .iter()
                    .filter(|h| !updated.iter().any(|(u, _)| u == *h))
                    .cloned()
                    .collect();
                me.store
                    .expiries(&account, &rest)
                    .into_iter()
                    .map(|(h, e)| (h, ums(e)))
                    .collect()
            } else {
                BTreeMap::new()
            };
            let expiry = if multi {
                ExpiryValue::Many(updated.iter().map(|(_, e)| ums(*e)).collect())
            } else {
                ExpiryValue::One(capped[0])
            };
            let updated: Vec<String> = updated.into_iter().map(|(h, _)| h).collect();
            let msg =
                sign::expire_result_message(&pk, expiry.as_slice(), &hashes, &updated, &unchanged);
            to_json(&ExpireResult {
                updated,
                unchanged: (shorten || extend).then_some(unchanged),
                expiry,
                signature: me.sign(&msg),
            })
        })
        .await
    }

    fn get_expiries(&self, req: &Request, p: &GetExpiriesParams) -> R {
        self.check_swarm(&p.pubkey)?;
        let now = self.now();
        if !check_timestamp(p.timestamp, now, SIGNATURE_TOLERANCE_MS) {
            return Err(Reply::text(
                406,
                "get_expiries timestamp too far from current time",
            ));
        }
        self.check_sig(req, "get_expiries")?;
        let expiries = self
            .store
            .expiries(&p.pubkey.to_hex(), &p.messages.0)
            .into_iter()
            .map(|(h, e)| (h, ums(e)))
            .collect();
        let reply = to_json(&GetExpiriesReply { expiries });
        Ok(Reply::json(200, self.misc(reply, now)))
    }

    fn oxend_request(&self, p: &OxendRequestParams) -> R {
        let params = match p.as_get_service_nodes() {
            Some(Ok(params)) => params,
            Some(Err(e)) => return Err(rpc_error(&e)),
            None => {
                return Err(bad(format!(
                    "oxend_request: endpoint {:?} is not available on the devnet",
                    p.endpoint
                )))
            }
        };
        let fields = to_json(&params.fields);
        let states = self.net.topology.service_node_states(fields.as_object());
        let now = self.now();
        let reply = OxendReply {
            result: json!({"service_node_states": states, "height": HEIGHT, "status": "OK"}),
            t: now,
            hf: HARDFORK.to_vec(),
        };
        Ok(Reply::json(200, to_json(&reply)))
    }

    async fn batch(self: &Arc<Self>, subs: &[Request], sequential: bool) -> R {
        let to_result = |r: Reply| BatchResult {
            code: r.status,
            body: match r.body {
                Body::Json(v) => v,
                Body::Text(s) => Value::String(s),
            },
        };
        let mut results = Vec::with_capacity(subs.len());
        if sequential {
            for sub in subs {
                let r = self.single(sub, true).await.unwrap_or_else(|e| e);
                let stop = !(200..300).contains(&r.status);
                results.push(to_result(r));
                if stop {
                    break;
                }
            }
        } else {
            let mut set = tokio::task::JoinSet::new();
            for (i, sub) in subs.iter().cloned().enumerate() {
                let me = self.clone();
                set.spawn(async move { (i, me.single(&sub, true).await.unwrap_or_else(|e| e)) });
            }
            let mut done: Vec<(usize, Reply)> = set.join_all().await;
            done.sort_by_key(|(i, _)| *i);
            results = done.into_iter().map(|(_, r)| to_result(r)).collect();
        }
        let reply = to_json(&BatchReply { results });
        Ok(Reply::json(200, self.misc(reply, self.now())))
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
