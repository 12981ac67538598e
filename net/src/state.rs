//! The client's mutable state behind one lock: pool, strikes, paths, swarm cache, clock.
//! Every method is synchronous; callers never hold the lock across an await.

use std::collections::HashMap;

use tokio::sync::broadcast;
use tracing::{debug, info};

use super::clock::NetworkClock;
use super::config::NetConfig;
use super::events::{HopStatus, NetEvent, NetStatus, PathStatus};
use super::path::Path;
use super::pool::Pool;
use super::snode::Snode;

/// Swarm caches kept at most; the cache is cleared when full (the daemon has a few identities
/// and contacts; this bounds memory against a flood of recipients).
const MAX_SWARMS: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) pool: Pool,
    pub(crate) pool_loaded: bool,
    pub(crate) strikes: HashMap<[u8; 32], u32>,
    pub(crate) paths: Vec<Path>,
    pub(crate) swarms: HashMap<[u8; 33], Vec<Snode>>,
    pub(crate) clock: NetworkClock,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at_ms: Option<u64>,
    // Test fixtures number their paths here; clients number them per family
    // (`client::isolation`).
    #[cfg(test)]
    next_path_id: u64,
}

impl State {
    #[cfg(test)]
    pub(crate) fn next_path_id(&mut self) -> u64 {
        self.next_path_id += 1;
        self.next_path_id
    }

    pub(crate) fn path_status(&self, p: &Path) -> PathStatus {
        PathStatus {
            id: p.id,
            hops: p
                .nodes
                .iter()
                .map(|n| HopStatus {
                    ed25519: n.ed25519_hex(),
                    addr: n.addr(),
                    strikes: self.strikes.get(&n.ed25519).copied().unwrap_or(0),
                })
                .collect(),
            strikes: p.strikes,
            built_at_ms: p.built_at_ms,
            requests_ok: p.requests_ok,
            requests_failed: p.requests_failed,
        }
    }

    pub(crate) fn status(&self) -> NetStatus {
        let mut struck_nodes: Vec<(String, u32)> = self
            .strikes
            .iter()
            .filter(|(_, s)| **s > 0)
            .map(|(k, s)| (hex::encode(k), *s))
            .collect();
        struck_nodes.sort();
        NetStatus {
            pool_size: self.pool.len(),
            pool_fetched_at_ms: self.pool.fetched_at_ms(),
            paths: self.paths.iter().map(|p| self.path_status(p)).collect(),
            struck_nodes,
            swarms_cached: self.swarms.len(),
            clock_offset_ms: self.clock.offset(),
            last_error: self.last_error.clone(),
            last_error_at_ms: self.last_error_at_ms,
        }
    }

    /// One strike against a node; at the threshold it is dropped everywhere. Returns whether it
    /// was dropped.
    pub(crate) fn strike_node(
        &mut self,
        node: &[u8; 32],
        cfg: &NetConfig,
        events: &broadcast::Sender<NetEvent>,
        why: &str,
    ) -> bool {
        let s = self.strikes.entry(*node).or_insert(0);
        *s += 1;
        let strikes = *s;
        let dropped = strikes >= cfg.node_strike_threshold;
        debug!(node = %short(node), strikes, why, "snode struck");
        let _ = events.send(NetEvent::NodeStruck {
            node: hex::encode(node),
            strikes,
            dropped,
        });
        if dropped {
            self.drop_node(node, events, why);
        }
        dropped
    }

    /// Removes a node from the pool, every swarm cache and every path (those paths are dropped).
    pub(crate) fn drop_node(
        &mut self,
        node: &[u8; 32],
        events: &broadcast::Sender<NetEvent>,
        why: &str,
    ) {
        self.pool.remove(node);
        self.strikes.remove(node);
        for members in self.swarms.values_mut() {
            members.retain(|m| &m.ed25519 != node);
        }
        let reason = format!("node {} dropped: {why}", short(node));
        self.drop_paths_where(|p| p.contains(node), &reason, events);
    }

    pub(crate) fn drop_paths_where(
        &mut self,
        mut pred: impl FnMut(&Path) -> bool,
        reason: &str,
        events: &broadcast::Sender<NetEvent>,
    ) {
        let mut kept = Vec::with_capacity(self.paths.len());
        for p in std::mem::take(&mut self.paths) {
            if pred(&p) {
                info!(path = p.id, guard = %p.guard().short(), reason, "path dropped");
                let _ = events.send(NetEvent::PathDropped {
                    id: p.id,
                    reason: reason.to_string(),
                });
            } else {
                kept.push(p);
            }
        }
        self.paths = kept;
    }

    /// One strike against a path and, if `relays`, against its non-guard nodes; `guard` also
    /// strikes the guard. At the threshold the path is dropped.
    pub(crate) fn strike_path(
        &mut self,
        id: u64,
        relays: bool,
        guard: bool,
        cfg: &NetConfig,
        events: &broadcast::Sender<NetEvent>,
        why: &str,
    ) {
        let Some(p) = self.paths.iter_mut().find(|p| p.id == id) else {
            return;
        };
        p.strikes += 1;
        p.requests_failed += 1;
        let strikes = p.strikes;
        let nodes = p.nodes.clone();
        let _ = events.send(NetEvent::PathStruck { id, strikes });
        debug!(path = id, strikes, why, "path struck");
        if guard {
            self.strike_node(&nodes[0].ed25519, cfg, events, why);
        }
        if relays {
            for n in &nodes[1..] {
                self.strike_node(&n.ed25519, cfg, events, why);
            }
        }
        if strikes >= cfg.path_strike_threshold {
            self.drop_paths_where(|p| p.id == id, &format!("{strikes} strikes: {why}"), events);
        }
    }

    /// A request through path `id` reached its destination: its strikes and its nodes'
    /// strikes are cleared (strikes count consecutive failures).
    pub(crate) fn path_succeeded(&mut self, id: u64) {
        if let Some(p) = self.paths.iter_mut().find(|p| p.id == id) {
            p.strikes = 0;
            p.requests_ok += 1;
            for n in &p.nodes {
                self.strikes.remove(&n.ed25519);
            }
        }
    }

    pub(crate) fn set_swarm(&mut self, account: [u8; 33], members: Vec<Snode>) {
        if self.swarms.len() >= MAX_SWARMS && !self.swarms.contains_key(&account) {
            self.swarms.clear();
        }
        self.swarms.insert(account, members);
    }
}

pub(crate) fn short(node: &[u8; 32]) -> String {
    hex::encode(&node[..4])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snode::testing::node;

    fn state_with_paths() -> State {
        let mut s = State::default();
        s.pool.replace((1..=8).map(|i| node(i, 0)).collect(), 1);
        let id = s.next_path_id();
        s.paths
            .push(Path::new(id, [node(1, 0), node(2, 0), node(3, 0)], 0));
        let id = s.next_path_id();
        s.paths
            .push(Path::new(id, [node(4, 0), node(5, 0), node(6, 0)], 0));
        s.set_swarm([5; 33], vec![node(3, 0), node(7, 0), node(8, 0)]);
        s
    }

    #[test]
    fn node_dropped_at_threshold_everywhere() {
        let cfg = NetConfig::default();
        let (tx, mut rx) = broadcast::channel(64);
        let mut s = state_with_paths();
        assert!(!s.strike_node(&[3; 32], &cfg, &tx, "test"));
        assert!(!s.strike_node(&[3; 32], &cfg, &tx, "test"));
        assert!(s.strike_node(&[3; 32], &cfg, &tx, "test"));
        assert!(!s.pool.contains(&[3; 32]));
        assert_eq!(s.paths.len(), 1);
        assert_eq!(s.paths[0].id, 2);
        assert_eq!(s.swarms[&[5; 33]].len(), 2);
        let mut dropped_path = false;
        while let Ok(e) = rx.try_recv() {
            if let NetEvent::PathDropped { id, .. } = e {
                assert_eq!(id, 1);
                dropped_path = true;
            }
        }
        assert!(dropped_path);
    }

    #[test]
    fn path_strikes_hit_relays_and_rebuild_at_threshold() {
        let cfg = NetConfig::default();
        let (tx, _rx) = broadcast::channel(64);
        let mut s = state_with_paths();
        s.strike_path(1, true, false, &cfg, &tx, "502");
        s.strike_path(1, true, false, &cfg, &tx, "502");
        assert_eq!(s.strikes.get(&[2; 32]), Some(&2));
        assert_eq!(
            s.strikes.get(&[1; 32]),
            None,
            "guard not struck for relay errors"
        );
        s.path_succeeded(1);
        assert_eq!(s.paths[0].strikes, 0);
        assert_eq!(s.strikes.get(&[2; 32]), None);
        for _ in 0..3 {
            s.strike_path(2, false, false, &cfg, &tx, "timeout");
        }
        assert_eq!(s.paths.len(), 1);
        assert_eq!(s.paths[0].id, 1);
        // Striking a path that is gone is a no-op.
        s.strike_path(2, true, true, &cfg, &tx, "late");
        let st = s.status();
        assert_eq!(st.paths.len(), 1);
        assert_eq!(st.pool_size, 8);
    }
}
