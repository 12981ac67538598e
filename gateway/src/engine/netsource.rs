//! The network client seen from the rest of the daemon: [`NetSource`] serves the Network
//! service (status, events, path rebuilds) and [`StorePoolStore`] persists the snode pool in
//! the daemon's store.

use std::sync::Arc;

use session_proto::account_id::AccountId;
use session_proto::storage_rpc::UserPubkey;
use sessiond_api::v1::{Hop, NetworkEvent, NetworkEventKind, NetworkStatus, Path};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::rpc::{now_ms, ApiError, NetworkSource, NetworkUpdates};
use crate::store::Store;
use session_net::{
    Auth, NetClient, NetError, NetEvent, NetStatus, PathStatus, PoolSnapshot, PoolStore,
    PoolStoreError,
};

/// Events buffered for Network.Watch subscribers.
const WATCH_CAPACITY: usize = 256;

/// The network client as the Network service's [`NetworkSource`].
#[derive(Debug)]
pub struct NetSource {
    client: NetClient,
    network: &'static str,
    events: broadcast::Sender<NetworkEvent>,
}

impl NetSource {
    /// Wraps `client`; `network` is "mainnet", "devnet" or "custom". Returns the source and its
    /// forwarding task ("net-events": ends when `stop` turns true or the client's channel
    /// closes), which the caller owns.
    pub fn start(
        client: NetClient,
        network: &'static str,
        mut stop: watch::Receiver<bool>,
    ) -> (Arc<NetSource>, JoinHandle<()>) {
        let (events, _) = broadcast::channel(WATCH_CAPACITY);
        let source = Arc::new(NetSource {
            client: client.clone(),
            network,
            events: events.clone(),
        });
        let mut rx = client.events();
        let task = tokio::spawn(async move {
            let mut online = !client.status().paths.is_empty();
            loop {
                let event = tokio::select! {
                    _ = stop.changed() => break,
                    r = rx.recv() => r,
                };
                let event = match event {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                // Events the API has no kind for (per-request outcomes) are not forwarded.
                let Some(mut api) = to_api_event(event) else {
                    continue;
                };
                let status = client.status();
                let now_online = !status.paths.is_empty();
                api.pool_size = u32::try_from(status.pool_size).unwrap_or(u32::MAX);
                api.online = now_online;
                let _ = events.send(api);
                if now_online != online {
                    online = now_online;
                    let _ = events.send(NetworkEvent {
                        at_ms: now_ms(),
                        kind: NetworkEventKind::OnlineChanged as i32,
                        path: None,
                        pool_size: u32::try_from(status.pool_size).unwrap_or(u32::MAX),
                        online,
                        message: if online { "online" } else { "offline" }.to_owned(),
                    });
                }
            }
        });
        (source, task)
    }
}

fn to_api_path(p: PathStatus) -> Path {
    Path {
        id: p.id,
        hops: p
            .hops
            .into_iter()
            .map(|h| Hop {
                ed25519_pubkey: h.ed25519,
                address: h.addr.to_string(),
            })
            .collect(),
        strikes: p.strikes,
        built_at_ms: p.built_at_ms,
        requests_ok: p.requests_ok,
        requests_failed: p.requests_failed,
    }
}

fn to_api_event(e: NetEvent) -> Option<NetworkEvent> {
    let (kind, path, message) = match e {
        NetEvent::PoolRefreshed { size, source } => (
            NetworkEventKind::PoolRefreshed,
            None,
            format!("{size} snodes from {source:?}"),
        ),
        NetEvent::PathBuilt { path } => (
            NetworkEventKind::PathBuilt,
            Some(to_api_path(path)),
            String::new(),
        ),
        NetEvent::PathDropped { id, reason } => (
            NetworkEventKind::PathDropped,
            Some(Path {
                id,
                ..Path::default()
            }),
            reason,
        ),
        NetEvent::PathStruck { id, strikes } => (
            NetworkEventKind::PathStrike,
            Some(Path {
                id,
                strikes,
                ..Path::default()
            }),
            format!("{strikes} strikes"),
        ),
        NetEvent::NodeStruck {
            node,
            strikes,
            dropped,
        } => (
            NetworkEventKind::Error,
            None,
            format!(
                "snode {} has {strikes} strikes{}",
                node.get(..8).unwrap_or(&node),
                if dropped { "; dropped" } else { "" }
            ),
        ),
        _ => return None,
    };
    Some(NetworkEvent {
        at_ms: now_ms(),
        kind: kind as i32,
        path,
        pool_size: 0,
        online: false,
        message,
    })
}

/// A status snapshot in the API's form.
pub fn to_api_status(network: &str, s: NetStatus) -> NetworkStatus {
    NetworkStatus {
        network: network.to_owned(),
        online: !s.paths.is_empty(),
        pool_size: u32::try_from(s.pool_size).unwrap_or(u32::MAX),
        pool_refreshed_at_ms: s.pool_fetched_at_ms.unwrap_or(0),
        paths: s.paths.into_iter().map(to_api_path).collect(),
        last_error: s.last_error.unwrap_or_default(),
        last_error_at_ms: s.last_error_at_ms.unwrap_or(0),
        swarm_cache_size: u32::try_from(s.swarms_cached).unwrap_or(u32::MAX),
    }
}

/// A network failure in the API's terms: anything that may work later is UNAVAILABLE (the
/// message was not sent); a refusal keeps its own kind.
fn net_error(e: NetError) -> ApiError {
    if e.is_retryable() || matches!(e, NetError::Shutdown) {
        ApiError::Unavailable(format!("not sent: {e}"))
    } else {
        ApiError::protocol("the network refused it", &e)
    }
}

#[tonic::async_trait]
impl NetworkSource for NetSource {
    fn status(&self) -> NetworkStatus {
        to_api_status(self.network, self.client.status())
    }

    fn subscribe(&self) -> NetworkUpdates {
        self.events.subscribe()
    }

    fn rebuild_paths(&self) -> u32 {
        let dropped = u32::try_from(self.client.status().paths.len()).unwrap_or(u32::MAX);
        let client = self.client.clone();
        // Short-lived task "rebuild-paths": ends when the rebuild does (or the client stops).
        tokio::spawn(async move {
            if let Err(e) = client.rebuild_paths().await {
                tracing::warn!(cause = %e, "path rebuild failed");
            }
        });
        dropped
    }

    async fn store_once(
        &self,
        recipient: &AccountId,
        namespace: i16,
        data: Vec<u8>,
        ttl_ms: u64,
    ) -> Result<String, ApiError> {
        let account = UserPubkey(*recipient.as_bytes());
        let outcome = self
            .client
            .store(&account, namespace, &data, ttl_ms, &Auth::None)
            .await
            .map_err(net_error)?;
        Ok(outcome.hash)
    }

    fn client(&self) -> Option<NetClient> {
        Some(self.client.clone())
    }
}

/// The daemon's store as the network client's [`PoolStore`] (the `snode_pool` blob).
#[derive(Debug, Clone)]
pub struct StorePoolStore(pub Store);

impl PoolStore for StorePoolStore {
    fn load(&self) -> Result<Option<PoolSnapshot>, PoolStoreError> {
        let blob = self.0.snode_pool().map_err(|e| PoolStoreError {
            reason: e.to_string(),
        })?;
        blob.map(|b| PoolSnapshot::from_bytes(&b)).transpose()
    }

    fn save(&self, snapshot: &PoolSnapshot) -> Result<(), PoolStoreError> {
        self.0
            .set_snode_pool(&snapshot.to_bytes())
            .map_err(|e| PoolStoreError {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_round_trips_through_the_store() {
        let dir = std::env::temp_dir().join(format!("sd-poolstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let ps = StorePoolStore(store);
        assert_eq!(ps.load().expect("load"), None);
        let snap = PoolSnapshot {
            nodes: Vec::new(),
            fetched_at_ms: 42,
        };
        ps.save(&snap).expect("save");
        assert_eq!(ps.load().expect("load"), Some(snap));
        ps.0.set_snode_pool(b"not json").expect("raw save");
        assert!(ps.load().is_err());
        drop(ps);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
