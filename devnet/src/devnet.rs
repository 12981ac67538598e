//! The devnet as a whole: start N nodes in swarms, hand out [`NodeHandle`]s for tests, write
//! `devnet.json`, stop everything.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::community::{CommunityConfig, CommunityServer};
use crate::err::DevnetError;
use crate::file_server::{FileServer, FileServerConfig};
use crate::https::server_tls_config;
use crate::node::{self, Event, EventLog, Faults, NetShared, NodeShared, Running};
use crate::revocations::Revocations;
use crate::store::Store;
use crate::topology::{assign_swarms, NodeInfo, NodeKeys, Topology};

/// How to build a devnet.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Number of nodes (default 12).
    pub nodes: usize,
    /// Target swarm size (default 4): `nodes / swarm_size` swarms, leftovers dealt round-robin.
    pub swarm_size: usize,
    /// First HTTPS port (node i listens on `base_port + i`); `None` = ephemeral ports.
    pub base_port: Option<u16>,
    /// Keep node keys and messages here (one subfolder per node); `None` = in memory.
    pub data_dir: Option<PathBuf>,
    /// How long a relay waits for the next hop (default 30 s, as the real network).
    pub relay_timeout: Duration,
    /// How long an entry node waits for swarm peers (default 5 s).
    pub replication_timeout: Duration,
    /// How long a proxy waits for a server (default 25 s).
    pub proxy_timeout: Duration,
    /// A community server to start beside the nodes (default none).
    pub community: Option<CommunityConfig>,
    /// Run a file server beside the nodes (default: none).
    pub file_server: Option<FileServerConfig>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        DevnetConfig {
            nodes: 12,
            swarm_size: 4,
            base_port: None,
            data_dir: None,
            relay_timeout: Duration::from_secs(30),
            replication_timeout: Duration::from_secs(5),
            proxy_timeout: Duration::from_secs(25),
            community: None,
            file_server: None,
        }
    }
}

/// `devnet.json`: where to find the devnet.
///
/// ```json
/// {"seeds": ["https://127.0.0.1:PORT", …],
///  "nodes": [{"ed25519": hex, "x25519": hex, "ip": "127.0.0.1", "port": PORT, "swarm_id": u64}, …]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Seed URLs (every node serves `POST /json_rpc`; the first three are listed).
    pub seeds: Vec<String>,
    /// Every node.
    pub nodes: Vec<ManifestNode>,
    /// The file server, when one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_server: Option<ManifestServer>,
}

/// A server beside the nodes in `devnet.json`: `{"url": "http://127.0.0.1:PORT", "ed25519":
/// hex, "x25519": hex}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestServer {
    /// Base URL.
    pub url: String,
    /// Ed25519 public key, hex.
    pub ed25519: String,
    /// X25519 public key, hex (onion requests encrypt to it).
    pub x25519: String,
}

/// One node in `devnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestNode {
    /// Ed25519 public key, hex.
    pub ed25519: String,
    /// X25519 public key, hex.
    pub x25519: String,
    /// Always `127.0.0.1`.
    pub ip: String,
    /// HTTPS port.
    pub port: u16,
    /// Swarm id.
    pub swarm_id: u64,
}

/// A running local Session network. Dropping it without [`Devnet::shutdown`] aborts the nodes.
#[derive(Debug)]
pub struct Devnet {
    nodes: Vec<NodeHandle>,
    net: Arc<NetShared>,
    purger: JoinHandle<()>,
    community: Option<CommunityServer>,
    file_server: Option<FileServer>,
}

/// Control of one node: identity, request log, faults, stop/restart.
#[derive(Debug)]
pub struct NodeHandle {
    shared: Arc<NodeShared>,
    tls: Arc<rustls::ServerConfig>,
    // std Mutex: only swapped, never held across an await.
    running: Mutex<Option<Running>>,
}

impl Devnet {
    /// Starts a devnet and returns once every node is accepting connections.
    pub async fn start(config: DevnetConfig) -> Result<Devnet, DevnetError> {
        if config.nodes == 0 || config.swarm_size == 0 {
            return Err(DevnetError::Config(
                "nodes and swarm size must be at least 1".into(),
            ));
        }
        if let Some(base) = config.base_port {
            if usize::from(base) + config.nodes > usize::from(u16::MAX) + 1 || base == 0 {
                return Err(DevnetError::Config(
                    "base port + nodes exceeds 65535".into(),
                ));
            }
        }
        let swarm_ids = assign_swarms(config.nodes, config.swarm_size);
        let mut keys = Vec::with_capacity(config.nodes);
        let mut listeners = Vec::with_capacity(config.nodes);
        let mut infos = Vec::with_capacity(config.nodes);
        for (i, &swarm_id) in swarm_ids.iter().enumerate() {
            let k = match &config.data_dir {
                Some(dir) => load_or_create_keys(&node_dir(dir, i))?,
                None => NodeKeys::generate(&mut rand::rngs::OsRng),
            };
            let port = config.base_port.map_or(0, |b| b + i as u16);
            let listener = node::bind(i, port).await?;
            let port = listener
                .local_addr()
                .map_err(|source| DevnetError::Bind {
                    node: i,
                    port,
                    source,
                })?
                .port();
            infos.push(NodeInfo {
                ed25519: k.ed25519,
                x25519: k.x25519,
                port,
                swarm_id,
            });
            keys.push(k);
            listeners.push(listener);
        }
        let mut token = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let net = Arc::new(NetShared {
            topology: Topology::new(infos),
            client: session_net::HttpsTransport::default(),
            token: hex::encode(token),
            relay_timeout: config.relay_timeout,
            replication_timeout: config.replication_timeout,
            proxy_timeout: config.proxy_timeout,
        });
        let mut nodes = Vec::with_capacity(config.nodes);
        for (i, (k, listener)) in keys.into_iter().zip(listeners).enumerate() {
            let store = match &config.data_dir {
                Some(dir) => Store::open(&node_dir(dir, i).join("messages.redb"))?,
                None => Store::memory(),
            };
            let shared = Arc::new(NodeShared {
                index: i,
                ed_hex: hex::encode(k.ed25519),
                keys: k,
                net: net.clone(),
                store,
                revoked: Revocations::default(),
                faults: Faults::default(),
                events: EventLog::default(),
                replicator: Default::default(),
            });
            let tls = server_tls_config()?;
            let running = node::serve(shared.clone(), listener, tls.clone());
            nodes.push(NodeHandle {
                shared,
                tls,
                running: Mutex::new(Some(running)),
            });
        }
        let stores: Vec<Arc<NodeShared>> = nodes.iter().map(|n| n.shared.clone()).collect();
        let purger = tokio::spawn(async move {
            // Expiry purge: once a second, every node drops expired messages.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for n in &stores {
                    if let Err(e) = n.store.purge(n.now_ms()) {
                        tracing::warn!(node = n.index, cause = %e, "expiry purge failed");
                    }
                }
            }
        });
        let community = match config.community {
            Some(c) => Some(CommunityServer::start(c).await?),
            None => None,
        };
        let file_server = match config.file_server {
            Some(fs) => Some(FileServer::start(fs).await?),
            None => None,
        };
        Ok(Devnet {
            nodes,
            net,
            purger,
            community,
            file_server,
        })
    }

    /// The nodes' HTTPS client (relays, replication, proxying; a clone sharing its
    /// connections), e.g. for its [`connections_opened`](session_net::HttpsTransport::connections_opened).
    pub fn nodes_transport(&self) -> session_net::HttpsTransport {
        self.net.client.clone()
    }

    /// All nodes, by index.
    pub fn nodes(&self) -> &[NodeHandle] {
        &self.nodes
    }

    /// The community server, if the config asked for one. Its onion v4 endpoint is reached
    /// through any node (the last relay proxies to loopback hosts).
    pub fn community(&self) -> Option<&CommunityServer> {
        self.community.as_ref()
    }

    /// Node `i`. Panics if out of range (a test bug).
    pub fn node(&self, i: usize) -> &NodeHandle {
        &self.nodes[i]
    }

    /// The file server, when [`DevnetConfig::file_server`] asked for one.
    pub fn file_server(&self) -> Option<&FileServer> {
        self.file_server.as_ref()
    }

    /// The topology (swarms and node list).
    pub fn topology(&self) -> &Topology {
        &self.net.topology
    }

    /// Seed URLs (the first three nodes; every node answers `/json_rpc`).
    pub fn seeds(&self) -> Vec<String> {
        (0..self.nodes.len().min(3))
            .map(|i| self.net.topology.url(i))
            .collect()
    }

    /// The swarm id of an account (33 bytes, or 32 key bytes) and its members' indices.
    pub fn swarm_for(&self, account: &[u8]) -> Option<(u64, Vec<usize>)> {
        let key: [u8; 32] = match account.len() {
            33 => account[1..].try_into().ok()?,
            32 => account.try_into().ok()?,
            _ => return None,
        };
        let id = self.net.topology.swarm_of(&key);
        Some((id, self.net.topology.members(id)))
    }

    /// What `devnet.json` holds.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            seeds: self.seeds(),
            nodes: self
                .net
                .topology
                .nodes()
                .iter()
                .map(|n| ManifestNode {
                    ed25519: hex::encode(n.ed25519),
                    x25519: hex::encode(n.x25519),
                    ip: "127.0.0.1".into(),
                    port: n.port,
                    swarm_id: n.swarm_id,
                })
                .collect(),
            file_server: self.file_server.as_ref().map(|f| ManifestServer {
                url: f.url(),
                ed25519: hex::encode(f.ed25519()),
                x25519: hex::encode(f.x25519()),
            }),
        }
    }

    /// Writes `devnet.json` to `path`.
    pub fn write_manifest(&self, path: &Path) -> Result<(), DevnetError> {
        let text = serde_json::to_string_pretty(&self.manifest())
            .expect("the manifest is plain data and always serialises");
        std::fs::write(path, text + "\n").map_err(|source| DevnetError::File {
            what: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Stops every node and waits for them.
    pub async fn shutdown(mut self) {
        self.purger.abort();
        if let Some(c) = self.community.take() {
            c.shutdown().await;
        }
        if let Some(fs) = self.file_server.take() {
            fs.shutdown().await;
        }
        for n in &self.nodes {
            n.stop().await;
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.purger.abort();
    }
}

impl NodeHandle {
    /// Index of this node.
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// Ed25519 public key.
    pub fn ed25519(&self) -> [u8; 32] {
        self.shared.keys.ed25519
    }

    /// X25519 public key.
    pub fn x25519(&self) -> [u8; 32] {
        self.shared.keys.x25519
    }

    /// HTTPS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.net.topology.nodes()[self.shared.index].port
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.net.topology.url(self.shared.index)
    }

    /// The node's swarm id.
    pub fn swarm_id(&self) -> u64 {
        self.shared.net.topology.nodes()[self.shared.index].swarm_id
    }

    /// Everything the node saw, oldest first (last [`node::EVENT_LOG_CAPACITY`] events).
    pub fn events(&self) -> Vec<Event> {
        self.shared.events.snapshot()
    }

    /// Forgets the events seen so far.
    pub fn clear_events(&self) {
        self.shared.events.clear()
    }

    /// Number of messages the node holds.
    pub fn message_count(&self) -> usize {
        self.shared.store.len()
    }

    /// True if the node holds the message with this hash (a test's look at replication).
    pub fn holds(&self, hash: &str) -> bool {
        self.shared.store.holds(hash)
    }

    /// (hash, sender's timestamp, expiry) in ms of the messages the node holds for `account`
    /// (66 hex characters) in `namespace`, oldest first (a test's look at TTLs and renewals).
    pub fn stamps(&self, account: &str, namespace: i16) -> Vec<(String, i64, i64)> {
        self.shared.store.stamps(account, i64::from(namespace))
    }

    /// Skews the node's clock by `ms` (positive = ahead).
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.shared
            .faults
            .clock_offset_ms
            .store(ms, Ordering::Relaxed);
    }

    /// When on, the node reads each request and closes the connection without replying.
    pub fn set_drop_replies(&self, on: bool) {
        self.shared.faults.drop_replies.store(on, Ordering::Relaxed);
    }

    /// Answers every request with HTTP `status` (a 5xx, say) instead of serving it; `None` to
    /// serve again.
    pub fn set_fail_status(&self, status: Option<u16>) {
        self.shared
            .faults
            .fail_status
            .store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// Delays every reply by `d` (zero to stop).
    pub fn set_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.shared.faults.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the node is serving.
    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .expect("lock is never poisoned")
            .is_some()
    }

    /// Stops the node: closes its port and every open connection. Messages stay (in memory or
    /// in redb) for a restart.
    pub async fn stop(&self) {
        let running = self.running.lock().expect("lock is never poisoned").take();
        if let Some(r) = running {
            r.shutdown().await;
        }
    }

    /// Starts a stopped node again on the same port (no-op if running).
    pub async fn restart(&self) -> Result<(), DevnetError> {
        if self.is_running() {
            return Ok(());
        }
        let listener = node::bind(self.shared.index, self.port()).await?;
        let running = node::serve(self.shared.clone(), listener, self.tls.clone());
        let mut slot = self.running.lock().expect("lock is never poisoned");
        match slot.as_ref() {
            // Another restart won the race; ours stops when dropped with its listener.
            Some(_) => drop(running),
            None => *slot = Some(running),
        }
        Ok(())
    }
}

fn node_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("node-{i:02}"))
}

/// Loads `ed25519.key` (hex seed) from `dir`, creating dir and key on first use.
fn load_or_create_keys(dir: &Path) -> Result<NodeKeys, DevnetError> {
    let path = dir.join("ed25519.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| DevnetError::Store {
                path: path.clone(),
                reason: "key file is not 64 hex characters".into(),
            })?;
            Ok(NodeKeys::from_seed(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|source| DevnetError::File {
                what: "create",
                path: dir.to_path_buf(),
                source,
            })?;
            let keys = NodeKeys::generate(&mut rand::rngs::OsRng);
            std::fs::write(&path, hex::encode(keys.seed())).map_err(|source| {
                DevnetError::File {
                    what: "write",
                    path: path.clone(),
                    source,
                }
            })?;
            Ok(keys)
        }
        Err(source) => Err(DevnetError::File {
            what: "read",
            path,
            source,
        }),
    }
}
