//! The snode pool: loaded from the [`PoolStore`](crate::PoolStore), fetched from the seeds,
//! refreshed from snodes (the nodes several of them agree on), persisted on every change.

use rand::seq::SliceRandom;
use session_proto::storage_rpc::{
    GetServiceNodesParams, OxendReply, OxendRequestParams, Request, SeedReply, SeedRequest,
    ServiceNodeFields, ServiceNodesResult,
};
use tracing::{debug, info, warn};

use super::NetClient;
use crate::clock::local_now_ms;
use crate::config::NetConfig;
use crate::err::{reason_text, NetError};
use crate::events::{NetEvent, PoolSource};
use crate::pool::{intersect, nodes_from_states, Pool};
use crate::snode::Snode;
use crate::state::State;
use crate::transport::HttpTarget;

impl NetClient {
    /// Loads the saved pool, once (the first call; later calls do nothing).
    pub(super) fn load_pool(&self) {
        if std::mem::replace(&mut self.lock().pool_loaded, true) {
            return;
        }
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

    /// Fetches the pool from seeds when too small; refreshes it from snodes when below the
    /// refresh size or too old.
    pub(super) async fn ensure_pool(&self) -> Result<(), NetError> {
        self.load_pool();
        let cfg = &self.shared.config;
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

    /// A random pool node, one not in `avoid` if there is any.
    pub(super) fn random_pool_node(
        &self,
        avoid: &std::collections::HashSet<[u8; 32]>,
    ) -> Result<Snode, NetError> {
        let st = self.lock();
        let nodes = st.pool.nodes();
        let fresh: Vec<&Snode> = nodes
            .iter()
            .filter(|n| !avoid.contains(&n.ed25519))
            .collect();
        let mut rng = rand::thread_rng();
        fresh
            .choose(&mut rng)
            .copied()
            .or_else(|| nodes.choose(&mut rng))
            .cloned()
            .ok_or(NetError::PoolTooSmall { have: 0, need: 1 })
    }
}
