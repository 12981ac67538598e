//! The snode pool: the snodes the client knows, how node lists from seeds and snodes become
//! pool members, and the [`PoolStore`] that persists the pool between runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use session_proto::err::{ErrorKind, HasKind};
use session_proto::storage_rpc::ServiceNodeState;

use super::snode::Snode;

/// The pool as persisted: its nodes and when they were fetched (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The nodes.
    pub nodes: Vec<Snode>,
    /// When the node list was fetched, ms since the Unix epoch.
    pub fetched_at_ms: u64,
}

impl PoolSnapshot {
    /// The snapshot as a JSON blob, for stores that keep bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot of plain fields serializes")
    }

    /// Parses a blob written by [`PoolSnapshot::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PoolSnapshot, PoolStoreError> {
        serde_json::from_slice(bytes).map_err(|e| PoolStoreError {
            reason: format!("corrupt snode pool blob: {e}"),
        })
    }
}

/// A pool store could not load or save.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snode pool store: {reason}")]
pub struct PoolStoreError {
    /// What went wrong.
    pub reason: String,
}

impl HasKind for PoolStoreError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Persistence of the snode pool. The daemon's store implements it; [`MemoryPoolStore`] keeps
/// it in memory. Calls are short and synchronous (the network client calls them outside any
/// lock, at most once per pool change).
pub trait PoolStore: Send + Sync + fmt::Debug + 'static {
    /// The last saved pool, if any.
    fn load(&self) -> Result<Option<PoolSnapshot>, PoolStoreError>;
    /// Replaces the saved pool.
    fn save(&self, snapshot: &PoolSnapshot) -> Result<(), PoolStoreError>;
}

/// A [`PoolStore`] in memory (tests, and runs that don't persist).
#[derive(Debug, Default)]
pub struct MemoryPoolStore {
    // std Mutex: held for a clone, never across an await.
    saved: Mutex<Option<PoolSnapshot>>,
}

impl MemoryPoolStore {
    /// An empty store.
    pub fn new() -> MemoryPoolStore {
        MemoryPoolStore::default()
    }
}

impl PoolStore for MemoryPoolStore {
    fn load(&self) -> Result<Option<PoolSnapshot>, PoolStoreError> {
        Ok(self.saved.lock().expect("pool store lock poisoned").clone())
    }

    fn save(&self, snapshot: &PoolSnapshot) -> Result<(), PoolStoreError> {
        *self.saved.lock().expect("pool store lock poisoned") = Some(snapshot.clone());
        Ok(())
    }
}

/// The live pool: nodes by Ed25519 key.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    nodes: HashMap<[u8; 32], Snode>,
    fetched_at_ms: Option<u64>,
}

impl Pool {
    pub(crate) fn from_snapshot(s: &PoolSnapshot) -> Pool {
        let mut pool = Pool::default();
        pool.replace(s.nodes.clone(), s.fetched_at_ms);
        pool
    }

    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        let mut nodes: Vec<Snode> = self.nodes.values().cloned().collect();
        nodes.sort_by_key(|n| n.ed25519);
        PoolSnapshot {
            nodes,
            fetched_at_ms: self.fetched_at_ms.unwrap_or(0),
        }
    }

    /// Replaces every node with `nodes` (duplicates by key collapse to the last).
    pub(crate) fn replace(&mut self, nodes: Vec<Snode>, fetched_at_ms: u64) {
        self.nodes = nodes.into_iter().map(|n| (n.ed25519, n)).collect();
        self.fetched_at_ms = Some(fetched_at_ms);
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn fetched_at_ms(&self) -> Option<u64> {
        self.fetched_at_ms
    }

    pub(crate) fn contains(&self, ed25519: &[u8; 32]) -> bool {
        self.nodes.contains_key(ed25519)
    }

    pub(crate) fn remove(&mut self, ed25519: &[u8; 32]) -> bool {
        self.nodes.remove(ed25519).is_some()
    }

    /// All nodes, in no particular order.
    pub(crate) fn nodes(&self) -> Vec<Snode> {
        self.nodes.values().cloned().collect()
    }
}

/// The usable snodes of a `get_n_service_nodes` / `get_service_nodes` result: entries with both
/// keys, a routable IPv4 address and a port. Everything else is skipped.
pub(crate) fn nodes_from_states(states: &[ServiceNodeState]) -> Vec<Snode> {
    states
        .iter()
        .filter_map(|s| {
            let ip: std::net::Ipv4Addr = s.public_ip.as_deref()?.parse().ok()?;
            let port = s.storage_port?;
            if ip.is_unspecified() || port == 0 {
                return None;
            }
            Some(Snode {
                ed25519: s.pubkey_ed25519.as_ref()?.0,
                x25519: s.pubkey_x25519.as_ref()?.0,
                ip,
                port,
            })
        })
        .collect()
}

/// The nodes every answer agrees on (same keys, IP and port), in the first answer's order.
/// An empty slice of answers gives no nodes.
pub(crate) fn intersect(answers: &[Vec<Snode>]) -> Vec<Snode> {
    let Some((first, rest)) = answers.split_first() else {
        return Vec::new();
    };
    let others: Vec<HashMap<[u8; 32], &Snode>> = rest
        .iter()
        .map(|a| a.iter().map(|n| (n.ed25519, n)).collect())
        .collect();
    let mut seen = std::collections::HashSet::new();
    first
        .iter()
        .filter(|n| seen.insert(n.ed25519))
        .filter(|n| others.iter().all(|o| o.get(&n.ed25519) == Some(n)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snode::testing::node;
    use session_proto::storage_rpc::{Ed25519Pubkey, X25519Pubkey};

    #[test]
    fn states_are_filtered() {
        let good = ServiceNodeState {
            public_ip: Some("1.2.3.4".into()),
            storage_port: Some(22100),
            pubkey_ed25519: Some(Ed25519Pubkey([1; 32])),
            pubkey_x25519: Some(X25519Pubkey([2; 32])),
            ..ServiceNodeState::default()
        };
        let unroutable = ServiceNodeState {
            public_ip: Some("0.0.0.0".into()),
            ..good.clone()
        };
        let no_key = ServiceNodeState {
            pubkey_x25519: None,
            ..good.clone()
        };
        let bad_ip = ServiceNodeState {
            public_ip: Some("not an ip".into()),
            ..good.clone()
        };
        let no_port = ServiceNodeState {
            storage_port: Some(0),
            ..good.clone()
        };
        let nodes = nodes_from_states(&[good, unroutable, no_key, bad_ip, no_port]);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].port, 22100);
        assert_eq!(nodes[0].x25519, [2; 32]);
    }

    #[test]
    fn intersection_needs_identical_entries() {
        let a = vec![node(1, 1), node(2, 1), node(3, 2), node(1, 1)];
        let mut moved = node(2, 1);
        moved.port += 1;
        let b = vec![node(3, 2), moved, node(1, 1)];
        let c = vec![node(1, 1), node(3, 2), node(4, 4)];
        let common = intersect(&[a.clone(), b, c]);
        assert_eq!(common, vec![node(1, 1), node(3, 2)]);
        assert_eq!(intersect(std::slice::from_ref(&a)).len(), 3);
        assert!(intersect(&[]).is_empty());
    }

    #[test]
    fn pool_replace_and_snapshot_round_trip() {
        let mut pool = Pool::default();
        pool.replace(vec![node(2, 1), node(1, 1), node(2, 1)], 77);
        assert_eq!(pool.len(), 2);
        let snap = pool.snapshot();
        assert_eq!(snap.nodes, vec![node(1, 1), node(2, 1)]);
        let back = PoolSnapshot::from_bytes(&snap.to_bytes()).expect("round trip");
        assert_eq!(back, snap);
        let again = Pool::from_snapshot(&back);
        assert_eq!(again.fetched_at_ms(), Some(77));
        assert!(again.contains(&[1; 32]));
        assert!(PoolSnapshot::from_bytes(b"{\"nodes\":3}").is_err());
    }

    #[test]
    fn memory_store_keeps_the_last_save() {
        let store = MemoryPoolStore::new();
        assert_eq!(store.load().expect("load"), None);
        let s = PoolSnapshot {
            nodes: vec![node(1, 1)],
            fetched_at_ms: 5,
        };
        store.save(&s).expect("save");
        assert_eq!(store.load().expect("load"), Some(s));
    }
}
