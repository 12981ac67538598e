//! Onion paths: building them (a tested guard and two relays), choosing one per request, and
//! the direct requests that need no path (guard tests, node lists, benchmarks' baseline).

use std::collections::HashSet;

use rand::seq::SliceRandom;
use session_proto::storage_rpc::{InfoReply, Request};
use tracing::{debug, info};

use super::send::RpcReply;
use super::NetClient;
use crate::clock::local_now_ms;
use crate::config::NetConfig;
use crate::err::{reason_text, NetError};
use crate::events::NetEvent;
use crate::path::{choose_relays, pick_path, Path};
use crate::snode::Snode;
use crate::transport::HttpTarget;

/// Guard candidates tried per path before giving up.
const GUARD_TRIES: usize = 6;

impl NetClient {
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

    /// A path for a request to `dest` (a snode, which the path must not contain; `None` for a
    /// server), building paths if none fits. Paths in `tried` are avoided while others exist.
    pub(super) async fn path_for(
        &self,
        dest: Option<&Snode>,
        tried: &HashSet<u64>,
    ) -> Result<Path, NetError> {
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
            if let Err(e) = self.ensure_paths(dest).await {
                debug!(error = %e, "path rebuild failed; using the paths left");
            }
        }
        for _ in 0..2 {
            {
                let st = self.lock();
                let mut rng = rand::thread_rng();
                let avoid = dest.map(|d| &d.ed25519);
                if let Some(i) = pick_path(&mut rng, &st.paths, avoid, tried) {
                    return Ok(st.paths[i].clone());
                }
            }
            self.ensure_paths(dest).await?;
        }
        Err(NetError::NoPath {
            reason: "no path avoids the destination".into(),
        })
    }

    /// Makes sure the pool is usable and `guard_count` paths exist (plus one avoiding `avoid`
    /// if every path contains it).
    pub(super) async fn ensure_paths(&self, avoid: Option<&Snode>) -> Result<(), NetError> {
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
            // Isolation: other clients' guards are never this client's guards.
            drop(st);
            let others = self.family_guards();
            let st = self.lock();
            let in_paths: HashSet<[u8; 32]> = st
                .paths
                .iter()
                .flat_map(|p| p.nodes.iter().map(|n| n.ed25519))
                .collect();
            let mut g: Vec<Snode> = st
                .pool
                .nodes()
                .into_iter()
                .filter(|n| {
                    !exclude.contains(&n.ed25519)
                        && !in_paths.contains(&n.ed25519)
                        && !others.contains(&n.ed25519)
                })
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
            // The family's lock is held from the last guard check to the path's addition, so
            // two clients building at once cannot both take this guard.
            let family = std::sync::Arc::clone(&self.shared.family);
            let _committing = family.commit.lock().expect("family lock");
            if self.family_guards().contains(&guard.ed25519) {
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
            let id = self.next_path_id();
            let path = Path::new(id, [guard, r1, r2], local_now_ms());
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
}
