//! [`NetClient`]: the daemon's handle to the network. Every account request leaves through a
//! 3-hop onion path; the client keeps its pool, swarm cache and paths healthy by itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::seq::SliceRandom;
use serde::Deserialize;
use session_proto::onion::{build_request, Destination, EncType, Hop, SnodeReply};
use session_proto::storage_rpc::sign::{retrieve_message, sign, store_message, verify};
use session_proto::storage_rpc::{
    message_hash, Base64Bytes, Ed25519Pubkey, GetServiceNodesParams, GetSwarmParams, InfoReply,
    NodeResult, OxendReply, OxendRequestParams, Request, RetrieveParams, RetrieveReply, SeedReply,
    SeedRequest, ServiceNodeFields, ServiceNodesResult, Sig, StoreParams, StoreResult,
    SubaccountAuth, SwarmReply, SwarmResults, UserPubkey,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::clock::{local_now_ms, NetworkClock};
use super::config::NetConfig;
use super::err::{reason_text, NetError, TransportError};
use super::events::{NetEvent, NetStatus, PoolSource, EVENT_CAPACITY};
use super::https::HttpsTransport;
use super::path::{choose_relays, pick_path, Path};
use super::pool::{intersect, nodes_from_states, Pool, PoolStore};
use super::snode::Snode;
use super::state::State;
use super::transport::{HttpReply, HttpTarget, Transport};

/// Guard candidates tried per path before giving up.
const GUARD_TRIES: usize = 6;

/// A storage-RPC reply from a snode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcReply {
    /// The snode that answered.
    pub node: Snode,
    /// Its storage-RPC status.
    pub status: u16,
    /// Its body (JSON text for 200).
    pub body: Vec<u8>,
}

/// What a successful `store` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The message hash (checked against our own computation).
    pub hash: String,
    /// Swarm members whose signed result we verified.
    pub stored_on: usize,
    /// Swarm members that reported a failure or an unverifiable result.
    pub failed_on: usize,
    /// The expiry the entry node reported, ms.
    pub expiry_ms: u64,
}

/// The network client. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct NetClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetClient").finish_non_exhaustive()
    }
}

struct Shared {
    config: NetConfig,
    transport: Arc<dyn Transport>,
    store: Arc<dyn PoolStore>,
    // std Mutex: every access is a short synchronous section, never across an await.
    state: Mutex<State>,
    // Serialises pool bootstrap and path building (which await replies), so concurrent
    // requests don't each build paths.
    build: tokio::sync::Mutex<()>,
    events: broadcast::Sender<NetEvent>,
    shutdown: watch::Sender<bool>,
    // std Mutex: set/taken once, never across an await.
    maintenance: Mutex<Option<JoinHandle<()>>>,
}

/// How a destination's reply is judged.
enum Outcome {
    Ok(Vec<u8>),
    WrongSwarm(Vec<u8>),
    ClockSkew(u16),
    Failed(NetError),
}

/// A body that `t` is read from (every snode reply carries the node's clock).
#[derive(Deserialize)]
struct WithT {
    #[serde(default)]
    t: u64,
}

impl NetClient {
    /// A client over `transport`, persisting its pool in `store`. Nothing is contacted until
    /// the first request or [`NetClient::bootstrap`].
    pub fn new(
        config: NetConfig,
        transport: Arc<dyn Transport>,
        store: Arc<dyn PoolStore>,
    ) -> NetClient {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        NetClient {
            shared: Arc::new(Shared {
                config,
                transport,
                store,
                state: Mutex::new(State::default()),
                build: tokio::sync::Mutex::new(()),
                events,
                shutdown,
                maintenance: Mutex::new(None),
            }),
        }
    }

    /// A client over the real HTTPS transport.
    pub fn with_https(config: NetConfig, store: Arc<dyn PoolStore>) -> NetClient {
        let transport = Arc::new(HttpsTransport::from_config(&config));
        NetClient::new(config, transport, store)
    }

    /// The settings.
    pub fn config(&self) -> &NetConfig {
        &self.shared.config
    }

    /// A stream of pool and path events (bounded: see [`EVENT_CAPACITY`]).
    pub fn events(&self) -> broadcast::Receiver<NetEvent> {
        self.shared.events.subscribe()
    }

    /// A snapshot of the pool, paths, strikes, clock offset and last error.
    pub fn status(&self) -> NetStatus {
        self.lock().status()
    }

    /// The network's time (local clock corrected by the offset learned from snodes), ms.
    pub fn network_now_ms(&self) -> u64 {
        let offset = self.lock().clock.offset();
        NetworkClock::apply(local_now_ms(), offset)
    }

    /// Fetches the pool if needed and builds the paths.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        let r = self.ensure_paths(None).await;
        self.note(r)
    }

    /// Drops every path and builds new ones.
    pub async fn rebuild_paths(&self) -> Result<(), NetError> {
        {
            let events = self.shared.events.clone();
            self.lock()
                .drop_paths_where(|_| true, "rebuild requested", &events);
        }
        self.bootstrap().await
    }

    /// Starts the background task that keeps the pool fresh and the paths built, every
    /// `maintenance_interval_secs`. It stops on [`NetClient::shutdown`] or when the last
    /// handle is dropped. Calling it again does nothing.
    pub fn start_maintenance(&self) {
        let mut slot = self
            .shared
            .maintenance
            .lock()
            .expect("maintenance lock poisoned");
        if slot.is_some() {
            return;
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let mut stop = self.shared.shutdown.subscribe();
        let every = Duration::from_secs(self.shared.config.maintenance_interval_secs.max(1));
        // Task "net-maintenance": owned by the client (handle in `maintenance`), stopped by
        // `shutdown`; holds only a weak reference so dropping the client ends it too.
        *slot = Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
                let Some(shared) = weak.upgrade() else { break };
                let client = NetClient { shared };
                if let Err(e) = client.bootstrap().await {
                    warn!(error = %e, "network maintenance failed");
                }
            }
        }));
    }

    /// Stops the background task and fails later requests with [`NetError::Shutdown`].
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let task = self
            .shared
            .maintenance
            .lock()
            .expect("maintenance lock poisoned")
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Sends a storage RPC to `dest` through an onion path (retrying on other paths when the
    /// path fails). A 2xx reply is returned; other statuses become errors.
    pub async fn onion_rpc(&self, dest: &Snode, request: &Request) -> Result<RpcReply, NetError> {
        let r = self.onion_rpc_inner(dest, request).await;
        self.note(r)
    }

    /// Sends a storage RPC straight to `dest`'s `/storage_rpc/v1`, without a path. This shows
    /// our address to the node: used to test guards, and by benchmarks as a baseline.
    pub async fn direct_rpc(&self, dest: &Snode, request: &Request) -> Result<RpcReply, NetError> {
        self.check_running()?;
        let target = HttpTarget::snode(dest, "/storage_rpc/v1");
        let reply = self
            .shared
            .transport
            .post(
                &target,
                request.to_json(),
                self.ms(self.shared.config.direct_timeout_ms),
            )
            .await
            .map_err(|source| NetError::Transport {
                node: dest.short(),
                source,
            })?;
        self.record_t(dest, &reply.body);
        Ok(RpcReply {
            node: dest.clone(),
            status: reply.status,
            body: reply.body.to_vec(),
        })
    }

    /// The members of `account`'s swarm: from the cache, else asked (through a path) of a
    /// random snode.
    pub async fn swarm(&self, account: &UserPubkey) -> Result<Vec<Snode>, NetError> {
        let r = self.swarm_inner(account).await;
        self.note(r)
    }

    /// The cached swarm of `account`, if any.
    pub fn cached_swarm(&self, account: &UserPubkey) -> Option<Vec<Snode>> {
        self.lock().swarms.get(&account.0).cloned()
    }

    /// Puts `members` in the swarm cache for `account` (e.g. a swarm saved by a previous run).
    /// A wrong one is corrected by the first 421 reply.
    pub fn remember_swarm(&self, account: &UserPubkey, members: Vec<Snode>) {
        self.lock().set_swarm(account.0, members);
    }

    /// Stores `data` for `account` in `namespace` with a time to live, through a path to a
    /// member of the account's swarm. Namespaces other than public inboxes (ns % 10 == 0) need
    /// `signer`: the account's Ed25519 key.
    pub async fn store(
        &self,
        account: &UserPubkey,
        namespace: i16,
        data: &[u8],
        ttl_ms: u64,
        signer: Option<&SigningKey>,
    ) -> Result<StoreOutcome, NetError> {
        let r = self
            .store_inner(account, namespace, data, ttl_ms, signer)
            .await;
        self.note(r)
    }

    /// Retrieves `account`'s messages in `namespace` after `last_hash`, signed with the
    /// account's Ed25519 key `signer`, through a path to a member of its swarm. Every returned
    /// message's hash is checked against its data.
    pub async fn retrieve(
        &self,
        account: &UserPubkey,
        namespace: i16,
        last_hash: Option<&str>,
        signer: &SigningKey,
    ) -> Result<RetrieveReply, NetError> {
        let r = self
            .retrieve_inner(account, namespace, last_hash, signer)
            .await;
        self.note(r)
    }

    // ------------------------------------------------------------------------------------
    // Swarm operations
    // ------------------------------------------------------------------------------------

    async fn store_inner(
        &self,
        account: &UserPubkey,
        namespace: i16,
        data: &[u8],
        ttl_ms: u64,
        signer: Option<&SigningKey>,
    ) -> Result<StoreOutcome, NetError> {
        let expected = message_hash(&account.0, namespace, data);
        let ed = ed_for(account, signer);
        let mut make = |ts: u64| {
            let signature = signer.map(|k| sign(k, &store_message(namespace, ts)));
            Request::Store(StoreParams {
                pubkey: *account,
                namespace,
                timestamp: ts,
                ttl: Some(ttl_ms),
                expiry: None,
                data: Base64Bytes(data.to_vec()),
                signature,
                sig_timestamp: None,
                pubkey_ed25519: ed,
                sub: SubaccountAuth::default(),
            })
            .to_json()
        };
        let (dest, body) = self.swarm_request(account, &mut make).await?;
        let parsed: SwarmResults<StoreResult> = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return Err(self.bad_reply(&dest, format!("store reply: {e}"))),
        };
        let mut stored_on = 0;
        let mut failed_on = 0;
        let mut expiry_ms = 0;
        for (member, result) in &parsed.swarm {
            match result {
                NodeResult::Ok(r) if r.hash == expected && member_signed(member, r) => {
                    stored_on += 1;
                    if member == &dest.ed25519_hex() || expiry_ms == 0 {
                        expiry_ms = r.expiry;
                    }
                }
                _ => failed_on += 1,
            }
        }
        if stored_on == 0 {
            return Err(self.bad_reply(&dest, "no verifiable store result in the reply".into()));
        }
        Ok(StoreOutcome {
            hash: expected,
            stored_on,
            failed_on,
            expiry_ms,
        })
    }

    async fn retrieve_inner(
        &self,
        account: &UserPubkey,
        namespace: i16,
        last_hash: Option<&str>,
        signer: &SigningKey,
    ) -> Result<RetrieveReply, NetError> {
        let ed = ed_for(account, Some(signer));
        let mut make = |ts: u64| {
            Request::Retrieve(RetrieveParams {
                pubkey: *account,
                namespace,
                last_hash: last_hash.map(str::to_owned),
                max_count: None,
                max_size: None,
                timestamp: Some(ts),
                signature: Some(sign(signer, &retrieve_message(namespace, ts))),
                pubkey_ed25519: ed,
                sub: SubaccountAuth::default(),
            })
            .to_json()
        };
        let (dest, body) = self.swarm_request(account, &mut make).await?;
        let reply: RetrieveReply = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return Err(self.bad_reply(&dest, format!("retrieve reply: {e}"))),
        };
        if let Some(m) = reply
            .messages
            .iter()
            .find(|m| m.hash != message_hash(&account.0, namespace, &m.data.0))
        {
            let why = format!(
                "retrieved message hash {:.8}… does not match its data",
                m.hash
            );
            return Err(self.bad_reply(&dest, why));
        }
        Ok(reply)
    }

    /// Sends a per-account request to a swarm member, handling 421 (replace the swarm, retry
    /// once), clock skew (learn the node's time, retry once) and busy members (try another).
    /// `make` builds the body for a given network timestamp.
    async fn swarm_request(
        &self,
        account: &UserPubkey,
        make: &mut (dyn FnMut(u64) -> Vec<u8> + Send),
    ) -> Result<(Snode, Vec<u8>), NetError> {
        let mut redirected = false;
        let mut skew_retried: HashSet<[u8; 32]> = HashSet::new();
        let mut tried: HashSet<[u8; 32]> = HashSet::new();
        let mut failures = 0u32;
        loop {
            self.check_running()?;
            let members = self.swarm_inner(account).await?;
            let dest = {
                let fresh: Vec<&Snode> = members
                    .iter()
                    .filter(|m| !tried.contains(&m.ed25519))
                    .collect();
                let pick = if fresh.is_empty() {
                    members.choose(&mut rand::thread_rng())
                } else {
                    fresh.choose(&mut rand::thread_rng()).copied()
                };
                pick.cloned().ok_or_else(|| NetError::NoSwarm {
                    reason: "the swarm has no usable member".into(),
                })?
            };
            let outcome = match self.onion_request(&dest, make).await {
                Ok(reply) => self.judge(&dest, reply),
                Err(e) => Outcome::Failed(e),
            };
            let err = match outcome {
                Outcome::Ok(body) => return Ok((dest, body)),
                Outcome::WrongSwarm(body) => {
                    if redirected {
                        return Err(NetError::SwarmRedirectLoop);
                    }
                    redirected = true;
                    let new_members = self.parse_swarm(&dest, &body)?;
                    debug!(node = %dest.short(), members = new_members.len(), "421: swarm replaced");
                    self.lock().set_swarm(account.0, new_members);
                    tried.clear();
                    continue;
                }
                Outcome::ClockSkew(status) => {
                    if skew_retried.insert(dest.ed25519) {
                        self.sync_clock(&dest).await?;
                        continue;
                    }
                    NetError::ClockSkew {
                        node: dest.short(),
                        status,
                    }
                }
                Outcome::Failed(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            failures += 1;
            if failures >= self.shared.config.attempts.max(1) {
                return Err(err);
            }
            tried.insert(dest.ed25519);
            tokio::time::sleep(self.shared.config.backoff(failures)).await;
        }
    }

    async fn swarm_inner(&self, account: &UserPubkey) -> Result<Vec<Snode>, NetError> {
        {
            let st = self.lock();
            if let Some(m) = st.swarms.get(&account.0) {
                if m.len() >= self.shared.config.min_swarm_size {
                    return Ok(m.clone());
                }
            }
        }
        let request = Request::GetSwarm(GetSwarmParams { pubkey: *account });
        let mut last = None;
        for attempt in 1..=self.shared.config.attempts.max(1) {
            let node = self.random_pool_node()?;
            let result = match self.onion_rpc_inner(&node, &request).await {
                Ok(reply) => self.parse_swarm(&node, &reply.body),
                Err(e) => Err(e),
            };
            match result {
                Ok(members) => {
                    self.lock().set_swarm(account.0, members.clone());
                    return Ok(members);
                }
                Err(e) if e.is_retryable() => {
                    last = Some(e);
                    tokio::time::sleep(self.shared.config.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(NetError::NoSwarm {
            reason: "no snode answered get_swarm".into(),
        }))
    }

    /// Parses a `get_swarm` / 421 body from `from`; an unusable one strikes `from`.
    fn parse_swarm(&self, from: &Snode, body: &[u8]) -> Result<Vec<Snode>, NetError> {
        let reply: SwarmReply = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Err(self.bad_reply(from, format!("swarm reply: {e}"))),
        };
        let members: Vec<Snode> = reply
            .snodes
            .iter()
            .filter_map(|s| {
                Snode::from_parts(
                    &s.pubkey_ed25519.to_hex(),
                    &s.pubkey_x25519.to_hex(),
                    &s.ip,
                    s.port_https,
                )
            })
            .collect();
        if members.is_empty() {
            return Err(self.bad_reply(from, "swarm reply lists no usable snode".into()));
        }
        Ok(members)
    }

    /// Learns `node`'s clock with an `info` request through a path.
    async fn sync_clock(&self, node: &Snode) -> Result<(), NetError> {
        let reply = self.onion_rpc_inner(node, &Request::Info).await?;
        let info: InfoReply = serde_json::from_slice(&reply.body)
            .map_err(|e| self.bad_reply(node, format!("info reply: {e}")))?;
        let t = if info.t != 0 { info.t } else { info.timestamp };
        self.lock().clock.record(node.ed25519, t, local_now_ms());
        debug!(node = %node.short(), "clock offset learned after a timestamp rejection");
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Onion requests
    // ------------------------------------------------------------------------------------

    async fn onion_rpc_inner(&self, dest: &Snode, request: &Request) -> Result<RpcReply, NetError> {
        let body = request.to_json();
        let reply = self.onion_request(dest, &mut |_| body.clone()).await?;
        let status = reply.status;
        match self.judge(dest, reply) {
            Outcome::Ok(body) => Ok(RpcReply {
                node: dest.clone(),
                status,
                body,
            }),
            Outcome::WrongSwarm(body) => Err(NetError::Rejected {
                node: dest.short(),
                status: 421,
                reason: reason_text(&body),
            }),
            Outcome::ClockSkew(status) => Err(NetError::ClockSkew {
                node: dest.short(),
                status,
            }),
            Outcome::Failed(e) => Err(e),
        }
    }

    /// One onion request to `dest`, retried on other paths while the path is what fails.
    /// Returns the destination's reply whatever its status.
    async fn onion_request(
        &self,
        dest: &Snode,
        make: &mut (dyn FnMut(u64) -> Vec<u8> + Send),
    ) -> Result<SnodeReply, NetError> {
        let mut tried: HashSet<u64> = HashSet::new();
        let mut attempt = 0u32;
        loop {
            self.check_running()?;
            attempt += 1;
            let now = {
                let offset = self.lock().clock.offset_for(&dest.ed25519);
                NetworkClock::apply(local_now_ms(), offset)
            };
            let body = make(now);
            match self.onion_once(dest, &body, &mut tried).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let path_level = matches!(
                        e,
                        NetError::Transport { .. }
                            | NetError::PathFailed { .. }
                            | NetError::BadReply { .. }
                    );
                    if !path_level || attempt >= self.shared.config.attempts.max(1) {
                        return Err(e);
                    }
                    debug!(error = %e, attempt, "onion request failed; trying another path");
                    tokio::time::sleep(self.shared.config.backoff(attempt)).await;
                }
            }
        }
    }

    async fn onion_once(
        &self,
        dest: &Snode,
        body: &[u8],
        tried: &mut HashSet<u64>,
    ) -> Result<SnodeReply, NetError> {
        let path = self.path_for(dest, tried).await?;
        tried.insert(path.id);
        let request = {
            let destination = Destination::Snode(Hop::new(dest.x25519, dest.ed25519));
            let mut rng = rand::thread_rng();
            build_request(&mut rng, EncType::AesGcm, &path.hops, &destination, body).map_err(
                |e| NetError::Onion {
                    reason: e.to_string(),
                },
            )?
        };
        let guard = path.guard().clone();
        let target = HttpTarget::snode(&guard, "/onion_req/v2");
        let timeout = self.ms(self.shared.config.onion_timeout_ms);
        let result = self
            .shared
            .transport
            .post(&target, request.body, timeout)
            .await;
        let cfg = &self.shared.config;
        let events = &self.shared.events;
        let reply: HttpReply = match result {
            Ok(r) => r,
            Err(source) => {
                // Cannot reach the guard: the guard's fault. A timeout: somewhere on the path.
                let (blame_guard, blame_relays) = match source {
                    TransportError::Timeout { .. } => (false, true),
                    _ => (true, false),
                };
                self.lock().strike_path(
                    path.id,
                    blame_relays,
                    blame_guard,
                    cfg,
                    events,
                    "transport failure",
                );
                return Err(NetError::Transport {
                    node: guard.short(),
                    source,
                });
            }
        };
        if reply.status != 200 {
            let reason = reason_text(&reply.body);
            let missing = reason.strip_prefix("Next node not found: ").and_then(|h| {
                let mut k = [0u8; 32];
                hex::decode_to_slice(h.trim(), &mut k).ok().map(|_| k)
            });
            {
                let mut st = self.lock();
                match missing {
                    // A relay does not know the named node: drop it at once (desktop does).
                    Some(k) => st.drop_node(&k, events, "next node not found"),
                    None => st.strike_path(path.id, true, false, cfg, events, "path error"),
                }
            }
            return Err(NetError::PathFailed {
                guard: guard.short(),
                status: reply.status,
                reason,
            });
        }
        match request.reply.open_snode_reply(&reply.body) {
            Ok(r) => {
                self.lock().path_succeeded(path.id);
                self.record_t(dest, &r.body);
                Ok(r)
            }
            Err(e) => {
                self.lock()
                    .strike_path(path.id, true, false, cfg, events, "undecryptable reply");
                Err(NetError::BadReply {
                    node: dest.short(),
                    reason: format!("onion reply: {e}"),
                })
            }
        }
    }

    /// Judges a destination's reply by its storage-RPC status; failures of the destination
    /// strike it.
    fn judge(&self, dest: &Snode, reply: SnodeReply) -> Outcome {
        let status = reply.status;
        match status {
            200..=299 => Outcome::Ok(reply.body),
            421 => Outcome::WrongSwarm(reply.body),
            406 | 425 => Outcome::ClockSkew(status),
            429 => Outcome::Failed(NetError::Busy {
                node: dest.short(),
                status,
                reason: reason_text(&reply.body),
            }),
            500..=599 => {
                let events = &self.shared.events;
                self.lock().strike_node(
                    &dest.ed25519,
                    &self.shared.config,
                    events,
                    "destination error",
                );
                Outcome::Failed(NetError::Busy {
                    node: dest.short(),
                    status,
                    reason: reason_text(&reply.body),
                })
            }
            _ => Outcome::Failed(NetError::Rejected {
                node: dest.short(),
                status,
                reason: reason_text(&reply.body),
            }),
        }
    }

    /// A reply from `node` was unusable: strike it and make the error.
    fn bad_reply(&self, node: &Snode, reason: String) -> NetError {
        let events = &self.shared.events;
        self.lock()
            .strike_node(&node.ed25519, &self.shared.config, events, "bad reply");
        NetError::BadReply {
            node: node.short(),
            reason,
        }
    }

    fn record_t(&self, node: &Snode, body: &[u8]) {
        if let Ok(WithT { t }) = serde_json::from_slice::<WithT>(body) {
            self.lock().clock.record(node.ed25519, t, local_now_ms());
        }
    }

    // ------------------------------------------------------------------------------------
    // Paths and pool
    // ------------------------------------------------------------------------------------

    /// A path for a request to `dest`, building paths if none fits.
    async fn path_for(&self, dest: &Snode, tried: &HashSet<u64>) -> Result<Path, NetError> {
        // Paths dropped since the last request are rebuilt first; a failed rebuild only
        // matters if no path is left.
        let (short_of, none) = {
            let st = self.lock();
            (
                st.paths.len() < self.shared.config.guard_count,
                st.paths.is_empty(),
            )
        };
        if short_of && !none {
            if let Err(e) = self.ensure_paths(Some(dest)).await {
                debug!(error = %e, "path rebuild failed; using the paths left");
            }
        }
        for _ in 0..2 {
            {
                let st = self.lock();
                let mut rng = rand::thread_rng();
                if let Some(i) = pick_path(&mut rng, &st.paths, Some(&dest.ed25519), tried) {
                    return Ok(st.paths[i].clone());
                }
            }
            self.ensure_paths(Some(dest)).await?;
        }
        Err(NetError::NoPath {
            reason: "no path avoids the destination".into(),
        })
    }

    /// Makes sure the pool is usable and `guard_count` paths exist (plus one avoiding `avoid`
    /// if every path contains it).
    async fn ensure_paths(&self, avoid: Option<&Snode>) -> Result<(), NetError> {
        self.check_running()?;
        let _building = self.shared.build.lock().await;
        self.ensure_pool().await?;
        for _ in 0..self.shared.config.guard_count + 2 {
            let missing = {
                let st = self.lock();
                let short_of = st.paths.len() < self.shared.config.guard_count;
                let avoided =
                    avoid.is_some_and(|d| st.paths.iter().all(|p| p.contains(&d.ed25519)));
                short_of || avoided
            };
            if !missing {
                return Ok(());
            }
            self.build_path(avoid).await?;
        }
        Ok(())
    }

    async fn build_path(&self, avoid: Option<&Snode>) -> Result<(), NetError> {
        let cfg = &self.shared.config;
        let mut exclude: HashSet<[u8; 32]> = avoid.map(|d| d.ed25519).into_iter().collect();
        let guards: Vec<Snode> = {
            let st = self.lock();
            if st.pool.len() < NetConfig::HOPS + usize::from(avoid.is_some()) {
                return Err(NetError::PoolTooSmall {
                    have: st.pool.len(),
                    need: NetConfig::HOPS + 1,
                });
            }
            for p in &st.paths {
                exclude.insert(p.guard().ed25519);
            }
            let in_paths: HashSet<[u8; 32]> = st
                .paths
                .iter()
                .flat_map(|p| p.nodes.iter().map(|n| n.ed25519))
                .collect();
            let mut g: Vec<Snode> = st
                .pool
                .nodes()
                .into_iter()
                .filter(|n| !exclude.contains(&n.ed25519) && !in_paths.contains(&n.ed25519))
                .collect();
            g.shuffle(&mut rand::thread_rng());
            g.truncate(GUARD_TRIES);
            g
        };
        let mut last_err = None;
        for guard in guards {
            if let Err(e) = self.test_guard(&guard).await {
                debug!(node = %guard.short(), error = %e, "guard candidate failed");
                let events = &self.shared.events;
                self.lock()
                    .strike_node(&guard.ed25519, cfg, events, "guard test failed");
                last_err = Some(e);
                continue;
            }
            let mut st = self.lock();
            if !st.pool.contains(&guard.ed25519) {
                continue;
            }
            let in_use: HashSet<[u8; 32]> = st
                .paths
                .iter()
                .flat_map(|p| p.nodes.iter().map(|n| n.ed25519))
                .collect();
            let candidates = st.pool.nodes();
            let relays = choose_relays(
                &mut rand::thread_rng(),
                &guard,
                &candidates,
                &exclude,
                &in_use,
                cfg.distinct_subnets,
            );
            let Some([r1, r2]) = relays else {
                return Err(NetError::NoPath {
                    reason: if cfg.distinct_subnets {
                        "the pool has too few nodes in distinct /24 subnets".into()
                    } else {
                        "the pool has too few nodes".into()
                    },
                });
            };
            let id = st.next_path_id();
            let path = Path::new(id, [guard, r1, r2]);
            let status = st.path_status(&path);
            info!(
                path = id,
                guard = %path.nodes[0].short(),
                relays = %format!("{},{}", path.nodes[1].short(), path.nodes[2].short()),
                "path built"
            );
            st.paths.push(path);
            let _ = self
                .shared
                .events
                .send(NetEvent::PathBuilt { path: status });
            return Ok(());
        }
        Err(NetError::NoPath {
            reason: match last_err {
                Some(e) => format!("no guard candidate answered (last: {e})"),
                None => "no guard candidate left in the pool".into(),
            },
        })
    }

    /// A guard is tested with a direct `info`: it sees our address anyway, and `info` names no
    /// account.
    async fn test_guard(&self, guard: &Snode) -> Result<(), NetError> {
        let reply = self.direct_rpc(guard, &Request::Info).await?;
        if reply.status != 200 {
            return Err(NetError::Busy {
                node: guard.short(),
                status: reply.status,
                reason: reason_text(&reply.body),
            });
        }
        serde_json::from_slice::<InfoReply>(&reply.body)
            .map_err(|e| NetError::BadReply {
                node: guard.short(),
                reason: format!("info reply: {e}"),
            })
            .map(|_| ())
    }

    /// Loads the pool from the store once; fetches it from seeds when too small; refreshes it
    /// from snodes when below the refresh size or too old.
    async fn ensure_pool(&self) -> Result<(), NetError> {
        let cfg = &self.shared.config;
        let load = !std::mem::replace(&mut self.lock().pool_loaded, true);
        if load {
            match self.shared.store.load() {
                Ok(Some(snap)) if !snap.nodes.is_empty() => {
                    let size = {
                        let mut st = self.lock();
                        st.pool = Pool::from_snapshot(&snap);
                        st.pool.len()
                    };
                    let _ = self.shared.events.send(NetEvent::PoolRefreshed {
                        size,
                        source: PoolSource::Store,
                    });
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "cannot load the saved snode pool; using seeds"),
            }
        }
        let (len, fetched) = {
            let st = self.lock();
            (st.pool.len(), st.pool.fetched_at_ms())
        };
        if len < cfg.min_pool_size.max(NetConfig::HOPS + 1) {
            return self.pool_from_seeds().await;
        }
        let age_ms = fetched.map(|f| local_now_ms().saturating_sub(f));
        let stale = age_ms.is_none_or(|a| a > cfg.pool_max_age_secs.saturating_mul(1000));
        if len < cfg.refresh_pool_below || stale {
            if let Err(e) = self.pool_from_snodes().await {
                debug!(error = %e, "pool refresh from snodes failed; falling back to seeds");
                if let Err(e) = self.pool_from_seeds().await {
                    warn!(error = %e, "pool refresh failed; keeping the current pool");
                }
            }
        }
        Ok(())
    }

    async fn pool_from_seeds(&self) -> Result<(), NetError> {
        let cfg = &self.shared.config;
        let mut seeds = cfg.seeds.clone();
        seeds.shuffle(&mut rand::thread_rng());
        let body = serde_json::to_vec(&SeedRequest::get_n_service_nodes())
            .expect("the seed request serializes");
        let mut last = String::from("no seeds configured");
        for seed in &seeds {
            let target = match HttpTarget::parse_url(seed, "/json_rpc") {
                Ok(t) => t,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let reply = match self
                .shared
                .transport
                .post(&target, body.clone(), self.ms(cfg.seed_timeout_ms))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    debug!(seed = %seed, error = %e, "seed failed");
                    last = e.to_string();
                    continue;
                }
            };
            if reply.status != 200 {
                last = format!(
                    "{seed}: HTTP {}: {}",
                    reply.status,
                    reason_text(&reply.body)
                );
                continue;
            }
            let nodes = match serde_json::from_slice::<SeedReply>(&reply.body) {
                Ok(r) => nodes_from_states(&r.result.service_node_states),
                Err(e) => {
                    last = format!("{seed}: bad node list: {e}");
                    continue;
                }
            };
            if nodes.len() < NetConfig::HOPS + 1 {
                last = format!("{seed}: only {} usable nodes", nodes.len());
                continue;
            }
            self.replace_pool(nodes, PoolSource::Seeds);
            return Ok(());
        }
        Err(NetError::SeedsUnreachable {
            tried: seeds.len(),
            last,
        })
    }

    /// Asks `refresh_sources` pool nodes (directly: the node list names no account) and keeps
    /// the nodes all answers agree on.
    async fn pool_from_snodes(&self) -> Result<(), NetError> {
        let cfg = &self.shared.config;
        let sources: Vec<Snode> = {
            let st = self.lock();
            let mut n = st.pool.nodes();
            n.shuffle(&mut rand::thread_rng());
            n.truncate(cfg.refresh_sources.max(1));
            n
        };
        let request = Request::OxendRequest(OxendRequestParams::get_service_nodes(
            &GetServiceNodesParams {
                active_only: true,
                fields: ServiceNodeFields {
                    public_ip: true,
                    storage_port: true,
                    pubkey_x25519: true,
                    pubkey_ed25519: true,
                    ..ServiceNodeFields::default()
                },
            },
        ));
        let mut answers = Vec::new();
        for node in &sources {
            let reply = match self.direct_rpc(node, &request).await {
                Ok(r) if r.status == 200 => r,
                Ok(r) => {
                    debug!(node = %node.short(), status = r.status, "node list refused");
                    continue;
                }
                Err(e) => {
                    debug!(node = %node.short(), error = %e, "node list failed");
                    continue;
                }
            };
            let parsed = serde_json::from_slice::<OxendReply>(&reply.body)
                .ok()
                .and_then(|r| serde_json::from_value::<ServiceNodesResult>(r.result).ok());
            match parsed {
                Some(r) => answers.push(nodes_from_states(&r.service_node_states)),
                None => {
                    let _ = self.bad_reply(node, "unparsable node list".into());
                }
            }
        }
        if answers.len() < sources.len() || answers.is_empty() {
            return Err(NetError::PoolTooSmall {
                have: answers.len(),
                need: sources.len(),
            });
        }
        let common = intersect(&answers);
        if common.len() < cfg.refresh_min_common {
            return Err(NetError::PoolTooSmall {
                have: common.len(),
                need: cfg.refresh_min_common,
            });
        }
        self.replace_pool(common, PoolSource::Snodes);
        Ok(())
    }

    fn replace_pool(&self, nodes: Vec<Snode>, source: PoolSource) {
        let snapshot = {
            let mut st = self.lock();
            st.pool.replace(nodes, local_now_ms());
            let State { pool, strikes, .. } = &mut *st;
            strikes.retain(|k, _| pool.contains(k));
            let gone: Vec<u64> = st
                .paths
                .iter()
                .filter(|p| p.nodes.iter().any(|n| !st.pool.contains(&n.ed25519)))
                .map(|p| p.id)
                .collect();
            let events = self.shared.events.clone();
            st.drop_paths_where(|p| gone.contains(&p.id), "a hop left the pool", &events);
            st.pool.snapshot()
        };
        info!(size = snapshot.nodes.len(), ?source, "snode pool refreshed");
        let _ = self.shared.events.send(NetEvent::PoolRefreshed {
            size: snapshot.nodes.len(),
            source,
        });
        if let Err(e) = self.shared.store.save(&snapshot) {
            warn!(error = %e, "cannot save the snode pool");
        }
    }

    fn random_pool_node(&self) -> Result<Snode, NetError> {
        let st = self.lock();
        let nodes = st.pool.nodes();
        nodes
            .choose(&mut rand::thread_rng())
            .cloned()
            .ok_or(NetError::PoolTooSmall { have: 0, need: 1 })
    }

    // ------------------------------------------------------------------------------------
    // Small helpers
    // ------------------------------------------------------------------------------------

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .expect("network state lock poisoned")
    }

    fn ms(&self, ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn check_running(&self) -> Result<(), NetError> {
        if *self.shared.shutdown.borrow() {
            Err(NetError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Records a failure as the status's last error.
    fn note<T>(&self, r: Result<T, NetError>) -> Result<T, NetError> {
        if let Err(e) = &r {
            self.lock().last_error = Some(e.to_string());
        }
        r
    }
}

/// The Ed25519 key to name in a request for a `05` account signed by `signer`.
fn ed_for(account: &UserPubkey, signer: Option<&SigningKey>) -> Option<Ed25519Pubkey> {
    match signer {
        Some(k) if account.prefix() == 0x05 => Some(Ed25519Pubkey(k.verifying_key().to_bytes())),
        _ => None,
    }
}

/// Whether a store result is signed by the member its key names.
fn member_signed(member_hex: &str, r: &StoreResult) -> bool {
    let mut key = [0u8; 32];
    if hex::decode_to_slice(member_hex, &mut key).is_err() {
        return false;
    }
    let msg = session_proto::storage_rpc::sign::store_result_message(&r.hash);
    verify(&key, &msg, &Sig(r.signature.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_signature_checked() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let hash = "a".repeat(43);
        let msg = session_proto::storage_rpc::sign::store_result_message(&hash);
        let good = StoreResult {
            hash: hash.clone(),
            signature: sign(&key, &msg),
            expiry: 1,
            already: false,
        };
        let member = hex::encode(key.verifying_key().to_bytes());
        assert!(member_signed(&member, &good));
        assert!(!member_signed(&hex::encode([1u8; 32]), &good));
        assert!(!member_signed("zz", &good));
        let forged = StoreResult {
            hash: "b".repeat(43),
            ..good
        };
        assert!(!member_signed(&member, &forged));
    }

    /// The daemon spawns these futures on tokio: they must be `Send`.
    #[allow(dead_code, clippy::diverging_sub_expression)]
    fn futures_are_send(c: NetClient, a: UserPubkey, k: SigningKey, n: Snode) {
        fn send<T: Send>(_: T) {}
        send(c.store(&a, 0, b"", 0, Some(&k)));
        send(c.retrieve(&a, 0, None, &k));
        send(c.swarm(&a));
        send(c.onion_rpc(&n, &Request::Info));
        send(c.direct_rpc(&n, &Request::Info));
        send(c.bootstrap());
        send(c.rebuild_paths());
        send(c.shutdown());
    }

    #[test]
    fn ed_named_only_for_05_accounts() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut a = [0u8; 33];
        a[0] = 0x05;
        assert!(ed_for(&UserPubkey(a), Some(&key)).is_some());
        a[0] = 0x03;
        assert!(ed_for(&UserPubkey(a), Some(&key)).is_none());
        a[0] = 0x05;
        assert!(ed_for(&UserPubkey(a), None).is_none());
    }
}
