//! [`NetClient`]: the handle to the network. Every account request leaves through a 3-hop onion
//! path; the client keeps its pool, swarm cache and paths healthy by itself.
//!
//! The handle is split by job, one file each:
//! - [`bootstrap`](self::bootstrap): the snode pool (store, seeds, refresh from snodes).
//! - [`paths`](self::paths): building, testing and choosing onion paths; direct requests.
//! - [`swarms`](self::swarms): the swarm cache, `get_swarm`, 421 corrections.
//! - [`send`](self::send): the one request loop (onion request, judging the reply, the retry
//!   policy), for snodes, swarms and servers.
//! - [`ops`](self::ops): typed storage operations, `batch` and `sequence`.
//! - [`poll`](self::poll): member-sticky retrieve with a [`Mailbox`](crate::Mailbox).
//! - [`server`](self::server): onion requests v4 to servers.
//! - [`isolation`](self::isolation): a family of clients with their own paths and disjoint
//!   guards (one per identity when the daemon isolates identities).
//!
//! The client is usable as soon as it is built: the saved pool is loaded in [`NetClient::new`],
//! and the first request fetches the pool and builds paths if needed ([`NetClient::bootstrap`]
//! only does it ahead of time).

mod bootstrap;
mod isolation;
mod ops;
mod paths;
mod poll;
mod send;
mod server;
mod swarms;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use super::clock::{local_now_ms, NetworkClock};
use super::config::NetConfig;
use super::err::NetError;
use super::events::{NetEvent, NetStatus, EVENT_CAPACITY};
use super::https::HttpsTransport;
use super::pool::PoolStore;
use super::retry::RetryPolicy;
use super::snode::Snode;
use super::state::State;
use super::transport::Transport;

pub use send::RpcReply;
pub use server::BodyWriter;

/// Extra wait per MiB of a file transfer ([`NetClient::server_transfer`]) on top of
/// `onion_timeout_ms`: 4 s, i.e. at least 256 KiB/s end to end across the three relays, so a
/// 10 MB attachment gets 40 s more than a small request.
pub const TRANSFER_ALLOWANCE_MS_PER_MIB: u64 = 4_000;

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
    retry: RetryPolicy,
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
    // The clients that must not share guards with this one (see `isolation`).
    family: Arc<isolation::Family>,
    // This client's isolation key; `None` for the root client.
    key: Option<u64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The root client's family holds its members; they go with it.
        if self.key.is_none() {
            if let Ok(mut members) = self.family.members.lock() {
                members.clear();
            }
        }
    }
}

/// A body that `t` is read from (every snode reply carries the node's clock).
#[derive(Deserialize)]
struct WithT {
    #[serde(default)]
    t: u64,
}

impl NetClient {
    /// A client over `transport`, persisting its pool in `store`. The saved pool is loaded
    /// now; nothing is contacted until the first request or [`NetClient::bootstrap`].
    pub fn new(
        config: NetConfig,
        transport: Arc<dyn Transport>,
        store: Arc<dyn PoolStore>,
    ) -> NetClient {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        let client = NetClient {
            shared: Arc::new(Shared {
                retry: RetryPolicy::from_config(&config),
                config,
                transport,
                store,
                state: Mutex::new(State::default()),
                build: tokio::sync::Mutex::new(()),
                events,
                shutdown,
                maintenance: Mutex::new(None),
                family: Arc::default(),
                key: None,
            }),
        };
        client.adopt_as_root();
        client.load_pool();
        client
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

    /// A stream of pool, path and request events (bounded: see [`EVENT_CAPACITY`]).
    pub fn events(&self) -> broadcast::Receiver<NetEvent> {
        self.shared.events.subscribe()
    }

    /// A snapshot of the pool, paths (with their request counts), strikes, clock offset and
    /// last error.
    pub fn status(&self) -> NetStatus {
        self.lock().status()
    }

    /// The network's time (local clock corrected by the offset learned from snodes), ms.
    pub fn network_now_ms(&self) -> u64 {
        let offset = self.lock().clock.offset();
        NetworkClock::apply(local_now_ms(), offset)
    }

    /// Fetches the pool if needed and builds the paths. Requests do this themselves when
    /// needed; calling it early makes the first request faster.
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

    // ------------------------------------------------------------------------------------
    // Small helpers shared by the job files
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
            let mut st = self.lock();
            st.last_error = Some(e.to_string());
            st.last_error_at_ms = Some(local_now_ms());
        }
        r
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

    /// Learns `node`'s clock from the `t` of a reply body.
    fn record_t(&self, node: &Snode, body: &[u8]) {
        if let Ok(WithT { t }) = serde_json::from_slice::<WithT>(body) {
            self.lock().clock.record(node.ed25519, t, local_now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Auth;
    use crate::mailbox::Mailbox;
    use crate::server::{Server, ServerRequest};
    use crate::storage::Op;
    use session_proto::storage_rpc::{Request, UserPubkey};

    /// The daemon spawns these futures on tokio: they must be `Send`.
    #[allow(dead_code, clippy::diverging_sub_expression)]
    fn futures_are_send(
        c: NetClient,
        a: UserPubkey,
        auth: Auth,
        n: Snode,
        mut mb: Mailbox,
        s: Server,
        r: ServerRequest,
    ) {
        fn send<T: Send>(_: T) {}
        send(c.store(&a, 0, b"", 0, &auth));
        send(c.retrieve(&a, 0, None, &auth));
        send(c.request(&a, &auth, &Op::Delete { hashes: vec![] }));
        send(c.batch(&a, &auth, &[]));
        send(c.sequence(&a, &auth, &[]));
        send(c.poll(&mut mb, &auth, &[0]));
        send(c.server_request(&s, &r));
        send(c.swarm(&a));
        send(c.onion_rpc(&n, &Request::Info));
        send(c.direct_rpc(&n, &Request::Info));
        send(c.bootstrap());
        send(c.rebuild_paths());
        send(c.shutdown());
    }
}
