//! The daemon's network side: the sender task that drains the outbox, one poller per identity,
//! the network client as the Network service's source, and the devnet echo identity.
//!
//! # Tasks (all owned by [`Engine`], all stopped by [`Engine::shutdown`])
//! - `sender` ([`sender`]): stores due outbox entries in the recipients' swarms, with retries.
//! - `pollers` ([`poller`]): a supervisor that keeps one poller task per identity, following
//!   identities added and removed at run time; each poll reads the account's configs with its
//!   messages and merges them first ([`configsync`]).
//! - `expiry` ([`expiry`]): purges disappearing messages when their timers run out and carries
//!   out the swarm chores (expire, delete) on the identities' own swarms.
//! - `bootstrap`: fetches the pool and builds the paths at start (retrying with backoff until
//!   it works), so the daemon is ready before the first message rather than at it.
//! - [`budget`]: the pollers' shared request budget and the jitter of their timers.
//! - `net-events` ([`netsource`]): forwards the client's events to Network.Watch.
//! - `communities` ([`community`]): polls every joined community server (one batch per
//!   server for its rooms and the identity's DMs there), backing off while one is down.
//! - `echo` ([`echo`], `run --devnet` only): answers every message to one identity.
//!
//! Each identity's poller also polls the groups it joined ([`groups`]) after its own swarm, and
//! hands invitations and promotions found in its one-to-one messages to [`groups`].
//!
//! Store calls block (redb commits fsync), so tasks run them through `spawn_blocking`.

pub mod budget;
pub mod community;
pub mod configsync;
pub mod echo;
pub mod expiry;
pub mod groups;
pub mod netsource;
pub mod poller;
pub mod sender;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use session_proto::err::{ErrorKind, HasKind};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{OutboxConfig, PollConfig};
use crate::metrics::Metrics;
use crate::store::{IdentityId, Store, StoreError};
use session_net::NetClient;

pub use netsource::{NetSource, StorePoolStore};

/// Why an engine task's step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking store task panicked or was cancelled.
    #[error("a store task failed: {0}")]
    Join(String),
}

impl HasKind for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Store(e) => e.kind(),
            EngineError::Join(_) => ErrorKind::LocalIo,
        }
    }
}

/// What the engine's tasks share.
#[derive(Debug)]
pub struct Ctx {
    /// The network client.
    pub net: NetClient,
    /// The store.
    pub store: Store,
    /// Outbox retry settings.
    pub outbox: OutboxConfig,
    /// Poll intervals.
    pub poll: PollConfig,
    /// Wakes the sender (Send queued something).
    pub outbox_wake: Arc<Notify>,
    /// Wakes the poller supervisor (an identity was added or removed).
    pub identities_changed: Arc<Notify>,
    /// Per-identity "activity" nudges: the sender pokes the sending identity's poller after a
    /// successful send, so it polls fast for the reply. std Mutex: short sections, no awaits.
    pub activity: Mutex<HashMap<IdentityId, Arc<Notify>>>,
    /// The Account IDs this daemon polls for, to the identity: a message sent to one of them
    /// wakes its poller at once ([`Ctx::poke_account`]). Kept by the poller supervisor. std
    /// Mutex: short sections, no awaits.
    pub local_accounts: Mutex<HashMap<String, IdentityId>>,
    /// The pollers' shared request budget (`poll.max_requests_per_sec`).
    pub poll_budget: budget::Budget,
    /// Counters for `/metrics` and the status page's recent failures.
    pub metrics: Arc<Metrics>,
    /// Config sync's queued edits and status, shared with the API.
    pub sync: Arc<configsync::SyncHub>,
    /// Attachments: eager downloads after a poll.
    pub files: Option<crate::files::Files>,
}

impl Ctx {
    /// Runs a blocking store call off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| EngineError::Join(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// Hops of the client's current paths (0 when it has none): the hop count an onion request
    /// goes over.
    pub fn hops(&self) -> usize {
        self.net.status().paths.first().map_or(0, |p| p.hops.len())
    }

    /// A message was stored in `account`'s swarm: if this daemon polls for it, its poller polls
    /// now (the message still comes through the network; this only saves the wait for the next
    /// poll).
    pub fn poke_account(&self, account: &str) {
        let local = self
            .local_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .copied();
        if let Some(identity) = local {
            self.poke(identity);
        }
    }

    /// Marks an identity active (its poller switches to the fast interval).
    pub fn poke(&self, identity: IdentityId) {
        let nudge = self
            .activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&identity)
            .cloned();
        if let Some(n) = nudge {
            n.notify_one();
        }
    }
}

/// First wait between bootstrap attempts; doubles up to [`BOOTSTRAP_RETRY_MAX`].
const BOOTSTRAP_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait between bootstrap attempts (the client's maintenance takes over later).
const BOOTSTRAP_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Bootstraps the client once at start, retrying until it works or `stop` turns true.
async fn bootstrap(net: NetClient, mut stop: watch::Receiver<bool>) {
    let mut wait = BOOTSTRAP_RETRY;
    loop {
        let done = tokio::select! {
            _ = stop.changed() => return,
            r = net.bootstrap() => r,
        };
        match done {
            Ok(()) => return,
            Err(session_net::NetError::Shutdown) => return,
            Err(e) => tracing::debug!(cause = %e, "bootstrap failed; will retry"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(BOOTSTRAP_RETRY_MAX);
    }
}

/// The running network side of the daemon.
#[derive(Debug)]
pub struct Engine {
    ctx: Arc<Ctx>,
    communities: Arc<community::Communities>,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Engine {
    /// Starts the sender and the poller supervisor over `ctx` (the client's maintenance task
    /// too).
    pub fn start(ctx: Ctx) -> Engine {
        let ctx = Arc::new(ctx);
        let (stop, _) = watch::channel(false);
        ctx.net.start_maintenance();
        let communities = community::Communities::new(
            ctx.net.clone(),
            ctx.store.clone(),
            std::time::Duration::from_millis(ctx.poll.community_interval_ms),
            Arc::clone(&ctx.sync),
        );
        let tasks = vec![
            (
                "sender",
                tokio::spawn(sender::run(Arc::clone(&ctx), stop.subscribe())),
            ),
            (
                "pollers",
                tokio::spawn(poller::supervise(Arc::clone(&ctx), stop.subscribe())),
            ),
            (
                "expiry",
                tokio::spawn(expiry::run(Arc::clone(&ctx), stop.subscribe())),
            ),
            (
                "bootstrap",
                tokio::spawn(bootstrap(ctx.net.clone(), stop.subscribe())),
            ),
            (
                "communities",
                tokio::spawn(community::supervise(
                    Arc::clone(&communities),
                    stop.subscribe(),
                )),
            ),
        ];
        Engine {
            ctx,
            communities,
            stop,
            tasks,
        }
    }

    /// The community rooms side (for the gRPC service).
    pub fn communities(&self) -> &Arc<community::Communities> {
        &self.communities
    }

    /// The shared context.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// A receiver that turns true when the engine stops (for extra tasks such as the echo).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Adds a task the engine owns and awaits on shutdown.
    pub fn own(&mut self, name: &'static str, task: JoinHandle<()>) {
        self.tasks.push((name, task));
    }

    /// Stops every task (in-flight sends and polls are abandoned: the outbox and cursors are
    /// only advanced after success) and the network client.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(task = name, cause = %e, "engine task ended abnormally");
            }
        }
        self.ctx.net.shutdown().await;
    }
}
