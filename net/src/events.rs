//! What the network client tells its watchers: status snapshots and a stream of events.

use std::net::SocketAddrV4;

/// Capacity of the event channel. Events are small and rare (path and pool changes); a
/// watcher that falls this far behind gets `Lagged` and should re-read [`NetStatus`].
pub const EVENT_CAPACITY: usize = 256;

/// One hop of a path, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopStatus {
    /// Ed25519 key, hex.
    pub ed25519: String,
    /// HTTPS address.
    pub addr: SocketAddrV4,
    /// Current strikes of the node.
    pub strikes: u32,
}

/// A path, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    /// Path id (unique for the client's lifetime).
    pub id: u64,
    /// Guard first, then the relays.
    pub hops: Vec<HopStatus>,
    /// Strikes against the path.
    pub strikes: u32,
}

/// A snapshot of the network client's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetStatus {
    /// Usable snodes in the pool.
    pub pool_size: usize,
    /// When the pool's node list was fetched (ms since the Unix epoch), if ever.
    pub pool_fetched_at_ms: Option<u64>,
    /// The current paths.
    pub paths: Vec<PathStatus>,
    /// Nodes with strikes: (Ed25519 hex, strikes).
    pub struck_nodes: Vec<(String, u32)>,
    /// Accounts with a cached swarm.
    pub swarms_cached: usize,
    /// Network clock offset (snode time − local time), ms.
    pub clock_offset_ms: i64,
    /// The last failure, as text.
    pub last_error: Option<String>,
}

/// Where a pool's node list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSource {
    /// The seed nodes (`get_n_service_nodes`).
    Seeds,
    /// Several snodes that agreed (`oxend_request get_service_nodes`).
    Snodes,
    /// The pool store (a previous run).
    Store,
}

/// Something changed in the network client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// The pool was replaced.
    PoolRefreshed {
        /// Nodes now in the pool.
        size: usize,
        /// Where the list came from.
        source: PoolSource,
    },
    /// A path was built.
    PathBuilt {
        /// The new path.
        path: PathStatus,
    },
    /// A path was dropped.
    PathDropped {
        /// Its id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A node got a strike (and maybe was dropped).
    NodeStruck {
        /// Ed25519 hex.
        node: String,
        /// Its strikes now.
        strikes: u32,
        /// It reached the threshold and left the pool, swarms and paths.
        dropped: bool,
    },
    /// A path got a strike.
    PathStruck {
        /// Its id.
        id: u64,
        /// Its strikes now.
        strikes: u32,
    },
}
