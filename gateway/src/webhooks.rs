//! Webhooks: every event of an identity's log POSTed to an HTTP endpoint, one per request, in
//! order, signed, retried until the endpoint takes it.
//!
//! Each webhook has its own durable cursor in the store (`webhook_cursors`): the seq of the last
//! event its endpoint accepted. One task per webhook reads the event after the cursor, POSTs it
//! ([`deliver`]), and on a 2xx moves the cursor in one transaction; on anything else it waits
//! (exponential backoff with jitter) and sends the same event again. No later event goes out
//! before it, so none is skipped and the order is the log's. A crash after the endpoint
//! answered but before the cursor moved sends the event again with the same `webhook-id`
//! (`evt_<log_epoch>_<seq>`): delivery is at least once, and the receiver drops repeats by id.
//!
//! When the head event has failed for `dead_letter_after_secs` (or the endpoint answered 413,
//! which a retry of the same body cannot fix), the webhook enters the dead-letter state (stored
//! in its record): it stops trying, keeps its cursor, and `ReplayDeadLetters` resumes it.
//!
//! # Layout
//! - [`sign`]: secrets and the Standard Webhooks signature.
//! - [`deliver`]: the URL check and one signed POST, judged.
//! - this file: the [`Hub`] the API and the tasks share, the supervisor (one task per webhook,
//!   following webhooks added and removed), the delivery loop, the stats for status and
//!   metrics.

pub mod deliver;
pub mod sign;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::WebhooksConfig;
use crate::rpc::now_ms;
use crate::store::{
    DeadLetter, IdentityId, IdentityRecord, Store, StoreError, StoredEvent, WebhookRecord,
    WebhookSource,
};
use deliver::{Attempt, Delivery, Sender};

/// The longest webhook name.
pub const MAX_NAME: usize = 64;

/// A webhook is known by its identity and name.
type Key = (IdentityId, String);

/// Checks a webhook name: 1 to [`MAX_NAME`] of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a webhook name has 1 to {MAX_NAME} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("a webhook name holds only A-Z, a-z, 0-9, '.', '_' and '-'".to_owned());
    }
    Ok(())
}

/// The `webhook-id` of an event: the same for every attempt and every restart.
pub fn event_id(log_epoch: u64, seq: u64) -> String {
    format!("evt_{log_epoch}_{seq}")
}

/// The JSON body for one event: the line `sessiond listen` prints for it (with `log_epoch`).
pub fn event_body(identity: &IdentityRecord, event: StoredEvent) -> Bytes {
    let epoch = crate::rpc::log_epoch(identity);
    let mut v = crate::cli::client::event_json(&crate::rpc::event_to_api(&identity.name, event));
    v["log_epoch"] = serde_json::json!(epoch);
    Bytes::from(v.to_string())
}

/// What the daemon counts of one webhook since it started (not stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failed_attempts: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// The last answer's status.
    pub last_status: Option<u16>,
    /// When the next attempt is due (ms), while retrying.
    pub next_attempt_at_ms: Option<u64>,
    /// Since when the head event has been failing (ms).
    pub failing_since_ms: Option<u64>,
}

/// The webhooks' Prometheus counters and per-webhook stats: shared by the daemon's metrics
/// (registered there), the delivery tasks and the status report. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WebhookMetrics {
    delivered: Counter,
    failed: Counter,
    dead_lettered: Counter,
    /// std Mutex: short sections, no awaits.
    stats: Arc<Mutex<HashMap<Key, Stats>>>,
}

impl WebhookMetrics {
    /// Registers the counters (`sessiond_webhook_*`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhook_deliveries",
            "Events webhook endpoints accepted (2xx)",
            self.delivered.clone(),
        );
        registry.register(
            "webhook_failed_attempts",
            "Webhook delivery attempts that failed (refused, timed out, non-2xx)",
            self.failed.clone(),
        );
        registry.register(
            "webhook_dead_letters",
            "Times a webhook entered the dead-letter state",
            self.dead_lettered.clone(),
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Stats>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stats of one webhook.
    pub fn stats(&self, identity: IdentityId, name: &str) -> Stats {
        self.lock()
            .get(&(identity, name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    fn update(&self, key: &Key, f: impl FnOnce(&mut Stats)) {
        f(self.lock().entry(key.clone()).or_default());
    }

    fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

/// A webhook's delivery state, as the API and the status report show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Up to date or delivering.
    Active,
    /// The head event failed and is retried.
    Retrying,
    /// Paused by the user.
    Paused,
    /// Given up; waiting for a replay.
    DeadLetter,
}

/// A webhook with its cursor, backlog and stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    /// The identity's name.
    pub identity: String,
    /// The webhook's name.
    pub name: String,
    /// The endpoint.
    pub url: String,
    /// The state.
    pub state: WebhookState,
    /// The last accepted seq.
    pub cursor_seq: u64,
    /// Events after the cursor.
    pub pending: u64,
    /// Delivered since start.
    pub delivered: u64,
    /// Failed attempts since start.
    pub failed_attempts: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The last answer's status.
    pub last_status: Option<u16>,
    /// The next attempt, ms.
    pub next_attempt_at_ms: Option<u64>,
    /// Failing since, ms.
    pub failing_since_ms: Option<u64>,
    /// Dead-lettered since, ms.
    pub dead_since_ms: Option<u64>,
    /// "config" or "api".
    pub source: String,
}

impl WebhookMetrics {
    /// The view of a stored webhook: `identity` is its identity's name, `last_seq` the newest
    /// seq of its log.
    pub fn view(
        &self,
        identity: &str,
        record: &WebhookRecord,
        cursor: u64,
        last_seq: u64,
    ) -> WebhookView {
        let stats = self.stats(record.identity, &record.name);
        let state = if record.dead.is_some() {
            WebhookState::DeadLetter
        } else if record.paused {
            WebhookState::Paused
        } else if stats.failing_since_ms.is_some() {
            WebhookState::Retrying
        } else {
            WebhookState::Active
        };
        WebhookView {
            identity: identity.to_owned(),
            name: record.name.clone(),
            url: record.url.clone(),
            state,
            cursor_seq: cursor,
            pending: last_seq.saturating_sub(cursor),
            delivered: stats.delivered,
            failed_attempts: stats.failed_attempts,
            last_error: stats
                .last_error
                .or_else(|| record.dead.as_ref().map(|d| d.reason.clone())),
            last_status: stats.last_status,
            next_attempt_at_ms: stats
                .next_attempt_at_ms
                .filter(|_| state == WebhookState::Retrying),
            failing_since_ms: stats.failing_since_ms,
            dead_since_ms: record.dead.as_ref().map(|d| d.since_ms),
            source: record.source.as_str().to_owned(),
        }
    }

    /// Every webhook of the store, viewed (for the status report). Blocking.
    pub fn views(&self, store: &Store) -> Result<Vec<WebhookView>, StoreError> {
        let identities = store.identities()?;
        let mut out = Vec::new();
        for (record, cursor) in store.webhooks(None)? {
            let Some(identity) = identities.iter().find(|i| i.id == record.identity) else {
                continue;
            };
            let last = store.last_seq(identity.id)?;
            out.push(self.view(&identity.name, &record, cursor, last));
        }
        Ok(out)
    }
}

/// What the API and the delivery tasks share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    config: WebhooksConfig,
    metrics: WebhookMetrics,
    /// Bumped when a webhook is added, removed or changed: the supervisor and the tasks reload.
    changes: watch::Sender<u64>,
}

impl Hub {
    /// A hub with these settings, counting into `metrics`.
    pub fn new(config: WebhooksConfig, metrics: WebhookMetrics) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config,
                metrics,
                changes: watch::channel(0).0,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &WebhooksConfig {
        &self.inner.config
    }

    /// The stats.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.inner.metrics
    }

    /// Tells the tasks that webhooks changed in the store.
    pub fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}

/// Why the config's webhooks could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// An entry is wrong.
    #[error("webhooks.endpoints {name:?} of identity {identity:?}: {detail}")]
    Entry {
        /// The identity named.
        identity: String,
        /// The webhook's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl session_proto::err::HasKind for WebhookConfigError {
    fn kind(&self) -> session_proto::err::ErrorKind {
        match self {
            WebhookConfigError::Entry { .. } => session_proto::err::ErrorKind::InvalidInput,
            WebhookConfigError::Store(e) => e.kind(),
        }
    }
}

/// Brings the config file's `[[webhooks.endpoints]]` into the store (blocking): reads each
/// secret file, checks names and URLs, adds new ones and updates changed ones. Returns the
/// names skipped because an API webhook has them.
pub fn apply_config(
    store: &Store,
    config: &WebhooksConfig,
) -> Result<Vec<String>, WebhookConfigError> {
    let mut wanted = Vec::new();
    for e in &config.endpoints {
        let entry = |detail: String| WebhookConfigError::Entry {
            identity: e.identity.clone(),
            name: e.name.clone(),
            detail,
        };
        check_name(&e.name).map_err(entry)?;
        deliver::check_url(&e.url, &config.allowed_hosts).map_err(|x| entry(x.to_string()))?;
        let text = std::fs::read_to_string(&e.secret_file).map_err(|x| {
            entry(format!(
                "cannot read secret_file {}: {x}",
                e.secret_file.display()
            ))
        })?;
        let secret = text.lines().next().unwrap_or("").trim().to_owned();
        sign::secret_bytes(&secret)
            .map_err(|x| entry(format!("secret_file {}: {x}", e.secret_file.display())))?;
        let identity = match store.identity(&e.identity) {
            Ok(r) => r,
            Err(StoreError::UnknownIdentity { .. }) => {
                return Err(entry("no identity of that name".to_owned()))
            }
            Err(x) => return Err(x.into()),
        };
        wanted.push((
            WebhookRecord {
                identity: identity.id,
                name: e.name.clone(),
                url: e.url.clone(),
                secret,
                source: WebhookSource::Config,
                paused: false,
                dead: None,
                created_at_ms: now_ms(),
            },
            e.from_start,
        ));
    }
    Ok(store.sync_config_webhooks(&wanted)?)
}

/// Starts the supervisor ("webhooks"): one delivery task per webhook in the store, following
/// the hub's changes, until `stop` turns true (then it waits for the tasks to end).
pub fn start(hub: Hub, store: Store, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(supervise(hub, store, stop))
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::BadRecord {
                what: "webhook task",
                detail: e.to_string(),
            })
        })
}

async fn supervise(hub: Hub, store: Store, mut stop: watch::Receiver<bool>) {
    // The CA file was checked when the config was read; if it went away since, say so and go on
    // with the public roots.
    let extra_roots = match &hub.config().ca_file {
        Some(path) => deliver::load_ca_file(path).unwrap_or_else(|why| {
            tracing::warn!(%why, "webhooks.ca_file not used");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let sender = Sender::new(Duration::from_millis(hub.config().timeout_ms), extra_roots);
    let mut changes = hub.subscribe();
    let mut running: HashMap<Key, JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, task| !task.is_finished());
        match blocking(&store, |s| s.webhooks(None)).await {
            Ok(list) => {
                for (record, _) in list {
                    let key = (record.identity, record.name.clone());
                    if running.contains_key(&key) {
                        continue;
                    }
                    let task = Task {
                        hub: hub.clone(),
                        store: store.clone(),
                        sender: sender.clone(),
                        key: key.clone(),
                    };
                    // Task "webhook": owned by this supervisor (in `running`), ended by `stop`.
                    running.insert(key, tokio::spawn(task.run(hub.subscribe(), stop.clone())));
                }
            }
            Err(e) => tracing::warn!(cause = %e, "cannot list webhooks"),
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            _ = stop.wait_for(|&s| s) => break,
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

/// One webhook's delivery loop.
struct Task {
    hub: Hub,
    store: Store,
    sender: Sender,
    key: Key,
}

/// What the loop does next.
enum Next {
    /// Wait for a change of the webhook (paused, dead-lettered).
    Idle,
    /// Wait for the log to grow.
    UpToDate,
    /// Try again after this long.
    Backoff(Duration),
    /// Go on at once.
    Go,
}

impl Task {
    async fn run(self, mut changes: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        let (identity, name) = (self.key.0, self.key.1.clone());
        let Ok(record) = blocking(&self.store, move |s| s.identity_by_id(identity)).await else {
            return;
        };
        let mut log = self.store.watch(identity);
        // The head event's failures: its seq and how many attempts failed.
        let mut head: Option<(u64, u32)> = None;
        loop {
            changes.borrow_and_update();
            log.borrow_and_update();
            let next = match self.step(&record, &name, &mut head).await {
                Ok(Some(next)) => next,
                // The webhook (or its identity) is gone.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(webhook = %name, cause = %e, "webhook step failed");
                    Next::Backoff(Duration::from_secs(5))
                }
            };
            let wait = async {
                match next {
                    Next::Go => {}
                    Next::Backoff(d) => {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = changes.changed() => {}
                        }
                    }
                    Next::Idle => {
                        let _ = changes.changed().await;
                    }
                    Next::UpToDate => {
                        // An error means the identity was removed (its webhooks with it, in the
                        // same transaction): the next step finds the webhook gone and ends.
                        tokio::select! {
                            _ = log.changed() => {}
                            _ = changes.changed() => {}
                        }
                    }
                }
            };
            tokio::select! {
                () = wait => {}
                _ = stop.wait_for(|&s| s) => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        self.hub
            .metrics()
            .update(&self.key, |s| s.next_attempt_at_ms = None);
    }

    /// One step: `None` when the webhook is gone.
    async fn step(
        &self,
        identity: &IdentityRecord,
        name: &str,
        head: &mut Option<(u64, u32)>,
    ) -> Result<Option<Next>, StoreError> {
        let id = identity.id;
        let owned = name.to_owned();
        let found = blocking(&self.store, move |s| s.webhook(id, &owned)).await;
        let (record, cursor) = match found {
            Ok(v) => v,
            Err(StoreError::UnknownWebhook { .. }) => {
                self.hub.metrics().forget(&self.key);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let metrics = self.hub.metrics();
        if record.paused || record.dead.is_some() {
            *head = None;
            metrics.update(&self.key, |s| {
                s.next_attempt_at_ms = None;
                s.failing_since_ms = None;
            });
            return Ok(Some(Next::Idle));
        }
        let (events, _) = blocking(&self.store, move |s| s.events(id, cursor, 0, 1, false)).await?;
        let Some(event) = events.into_iter().next() else {
            return Ok(Some(Next::UpToDate));
        };
        let seq = event.seq;
        let url = match deliver::check_url(&record.url, &self.hub.config().allowed_hosts) {
            Ok(u) => u,
            Err(e) => {
                // The config no longer allows its host: hold it with the reason showing.
                self.fail(head, &record, seq, None, e.to_string(), true)
                    .await?;
                return Ok(Some(self.backoff(head)));
            }
        };
        let key = match sign::secret_bytes(&record.secret) {
            Ok(k) => k,
            Err(e) => {
                self.fail(head, &record, seq, None, e.to_string(), false)
                    .await?;
                return Ok(Some(Next::Idle));
            }
        };
        let event_id = event_id(crate::rpc::log_epoch(identity), seq);
        let body = event_body(identity, event);
        let attempt = self
            .sender
            .post(Delivery {
                url: &url,
                id: &event_id,
                key: &key,
                body,
                timestamp: now_ms() / 1000,
            })
            .await;
        match attempt {
            Attempt::Delivered { status } => {
                let owned = name.to_owned();
                blocking(&self.store, move |s| {
                    s.advance_webhook_cursor(id, &owned, seq)
                })
                .await?;
                *head = None;
                metrics.delivered.inc();
                metrics.update(&self.key, |s| {
                    s.delivered += 1;
                    s.last_status = Some(status);
                    s.last_error = None;
                    s.failing_since_ms = None;
                    s.next_attempt_at_ms = None;
                });
                Ok(Some(Next::Go))
            }
            Attempt::Failed {
                status,
                reason,
                retry,
            } => {
                let dead = self.fail(head, &record, seq, status, reason, retry).await?;
                Ok(Some(if dead { Next::Idle } else { self.backoff(head) }))
            }
        }
    }

    /// Records a failed attempt at event `seq`; dead-letters the webhook when the failure is
    /// final or the head has failed for the dead-letter age. Returns whether it did.
    async fn fail(
        &self,
        head: &mut Option<(u64, u32)>,
        record: &WebhookRecord,
        seq: u64,
        status: Option<u16>,
        reason: String,
        retry: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let metrics = self.hub.metrics();
        metrics.failed.inc();
        let attempts = match *head {
            Some((s, n)) if s == seq => n.saturating_add(1),
            _ => 1,
        };
        *head = Some((seq, attempts));
        let mut since = now;
        metrics.update(&self.key, |s| {
            s.failed_attempts += 1;
            s.last_status = status;
            s.last_error = Some(reason.clone());
            since = *s.failing_since_ms.get_or_insert(now);
        });
        let age_ms = now.saturating_sub(since);
        let limit_ms = self
            .hub
            .config()
            .dead_letter_after_secs
            .saturating_mul(1000);
        tracing::debug!(webhook = %record.name, seq, attempts, %reason, "webhook delivery failed");
        if retry && age_ms < limit_ms {
            return Ok(false);
        }
        let why = if retry {
            format!("failing for {} s: {reason}", age_ms / 1000)
        } else {
            reason
        };
        tracing::warn!(webhook = %record.name, seq, reason = %why, "webhook dead-lettered");
        let (id, name) = (record.identity, record.name.clone());
        let dead = DeadLetter {
            since_ms: now,
            seq,
            reason: why,
        };
        blocking(&self.store, move |s| {
            s.update_webhook(id, &name, |r| r.dead = Some(dead))
        })
        .await?;
        metrics.dead_lettered.inc();
        metrics.update(&self.key, |s| {
            s.next_attempt_at_ms = None;
            s.failing_since_ms = None;
        });
        *head = None;
        Ok(true)
    }

    /// The wait before the next attempt at the head: `backoff_initial_ms` doubled per failed
    /// attempt up to `backoff_max_ms`, then a random point between half and all of it.
    fn backoff(&self, head: &Option<(u64, u32)>) -> Next {
        let cfg = self.hub.config();
        let attempts = head.map_or(1, |(_, n)| n.max(1));
        let doubled = cfg
            .backoff_initial_ms
            .saturating_mul(1u64 << (attempts - 1).min(30));
        let base = doubled.min(cfg.backoff_max_ms).max(1);
        let wait = base / 2 + rand::thread_rng().gen_range(0..=base - base / 2);
        let at = now_ms().saturating_add(wait);
        self.hub
            .metrics()
            .update(&self.key, |s| s.next_attempt_at_ms = Some(at));
        Next::Backoff(Duration::from_millis(wait))
    }
}
