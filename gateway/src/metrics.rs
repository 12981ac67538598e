//! What the daemon observes of itself: Prometheus counters, gauges and histograms for
//! `/metrics`, and the recent delivery failures and path ages the status page shows.
//!
//! One [`Metrics`] per daemon (no global recorder), shared as an `Arc`. Label values are enums
//! only ([`RequestKind`], [`Outcome`], [`BuildKind`], [`FrontEnd`]) or a hop count, so no Account
//! ID, name or text can reach a label. Counters move where things happen (the sender, the
//! pollers, [`watch_network`]); gauges are set from the store and the network client when
//! `/metrics` is scraped ([`Scrape`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::rpc::now_ms;
use session_net::{NetClient, NetError, NetEvent};

/// Delivery failures kept for the status page (the newest ones).
pub const RECENT_FAILURES: usize = 20;

/// Which storage request an onion request carried.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RequestKind {
    /// `store`: a queued message to a recipient's swarm.
    Store,
    /// `retrieve`: a poll of an identity's swarm.
    Retrieve,
}

/// How an onion request ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A reply from the destination.
    Ok,
    /// Failed in a way that may work later (timeouts, a path or snode down, no pool yet).
    Unreachable,
    /// Refused for good (bad request, signature, not found).
    Rejected,
    /// The client was shutting down.
    Stopped,
}

impl Outcome {
    /// The outcome of a request that returned `result`.
    pub fn of<T>(result: &Result<T, NetError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(NetError::Shutdown) => Outcome::Stopped,
            Err(e) if e.is_retryable() => Outcome::Unreachable,
            Err(_) => Outcome::Rejected,
        }
    }
}

/// Whether a path was one of the first ones or replaced a dropped one.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BuildKind {
    /// Built while no path had been dropped before it.
    First,
    /// Built after a path was dropped.
    Rebuild,
}

/// A front end clients connect to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum FrontEnd {
    /// The IRC server.
    Irc,
    /// The Matrix client-server endpoint.
    Matrix,
}

/// Lowercase label values (`kind="store"`), from the variants' names only.
macro_rules! label_values {
    ($($ty:ident { $($variant:ident => $text:literal),* $(,)? })*) => {$(
        impl $ty {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)*
                }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )*};
}

label_values! {
    RequestKind { Store => "store", Retrieve => "retrieve" }
    Outcome { Ok => "ok", Unreachable => "unreachable", Rejected => "rejected", Stopped => "stopped" }
    BuildKind { First => "first", Rebuild => "rebuild" }
    FrontEnd { Irc => "irc", Matrix => "matrix" }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnionLabels {
    kind: RequestKind,
    outcome: Outcome,
    hops: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: RequestKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    kind: BuildKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrontEndLabels {
    front_end: FrontEnd,
}

/// A message that failed for good, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryFailure {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The sending identity's id.
    pub identity: u64,
    /// The message id.
    pub message_id: String,
    /// Why.
    pub reason: String,
}

/// The gauges' values at a scrape, read from the store and the network client.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Entries in the outbox.
    pub outbox_depth: u64,
    /// Age of the oldest outbox entry, seconds.
    pub outbox_oldest_secs: f64,
    /// Events in all event logs.
    pub event_log_events: u64,
    /// Identities.
    pub identities: u64,
    /// Snodes in the pool.
    pub pool_size: u64,
    /// Paths built.
    pub paths: u64,
    /// Connections per front end.
    pub connections: Vec<(FrontEnd, u64)>,
}

/// The daemon's metrics and recent history.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    onion_requests: Family<OnionLabels, Counter>,
    onion_seconds: Family<KindLabels, Histogram>,
    path_builds: Family<BuildLabels, Counter>,
    path_drops: Counter,
    path_strikes: Counter,
    node_strikes: Counter,
    nodes_dropped: Counter,
    messages_sent: Counter,
    messages_received: Counter,
    messages_failed: Counter,
    poll_rounds: Counter,
    poll_errors: Counter,
    connections: Family<FrontEndLabels, Gauge>,
    outbox_depth: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    event_log: Gauge,
    identities: Gauge,
    pool_size: Gauge,
    paths: Gauge,
    /// Recent failures and path birth times. A std Mutex: short sections, no awaits.
    recent: Mutex<Recent>,
    /// The webhooks' counters and per-webhook stats.
    pub webhooks: crate::webhooks::WebhookMetrics,
}

#[derive(Debug, Default)]
struct Recent {
    failures: VecDeque<DeliveryFailure>,
    /// Path id → when it was built (ms).
    path_built_at: HashMap<u64, u64>,
    /// Drops not yet followed by a build.
    drops_pending: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, all at zero, registered under `sessiond_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sessiond");
        let onion_requests = Family::<OnionLabels, Counter>::default();
        registry.register(
            "onion_requests",
            "Onion requests by storage request, outcome and path length (hops)",
            onion_requests.clone(),
        );
        let onion_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "onion_request_duration_seconds",
            "Onion request latency, from the call to the reply or the error",
            onion_seconds.clone(),
        );
        let path_builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "path_builds",
            "Onion paths built: first ones, and rebuilds after a drop",
            path_builds.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let path_drops = counter(&mut registry, "path_drops", "Onion paths dropped");
        let path_strikes = counter(
            &mut registry,
            "path_strikes",
            "Strikes against onion paths (failed requests)",
        );
        let node_strikes = counter(&mut registry, "node_strikes", "Strikes against snodes");
        let nodes_dropped = counter(
            &mut registry,
            "nodes_dropped",
            "Snodes dropped from the pool at the strike threshold",
        );
        let messages_sent = counter(
            &mut registry,
            "messages_sent",
            "Messages stored in their recipients' swarms",
        );
        let messages_received = counter(
            &mut registry,
            "messages_received",
            "Messages received and recorded (duplicates not counted)",
        );
        let messages_failed = counter(
            &mut registry,
            "messages_failed",
            "Messages given up on (retry budget spent or refused)",
        );
        let poll_rounds = counter(&mut registry, "poll_rounds", "Polls of identities' swarms");
        let poll_errors = counter(&mut registry, "poll_errors", "Polls that failed");
        let connections = Family::<FrontEndLabels, Gauge>::default();
        registry.register(
            "adapter_connections",
            "Open client connections per front end",
            connections.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let outbox_depth = gauge(&mut registry, "outbox_depth", "Messages in the outbox");
        let outbox_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest message in the outbox (0 when empty)",
            outbox_oldest.clone(),
        );
        let event_log = gauge(
            &mut registry,
            "event_log_events",
            "Events in all identities' event logs",
        );
        let identities = gauge(&mut registry, "identities", "Identities held");
        let pool_size = gauge(&mut registry, "snode_pool_size", "Snodes in the pool");
        let paths = gauge(&mut registry, "paths", "Onion paths built and usable");
        let webhooks = crate::webhooks::WebhookMetrics::default();
        webhooks.register(&mut registry);
        Metrics {
            registry,
            onion_requests,
            onion_seconds,
            path_builds,
            path_drops,
            path_strikes,
            node_strikes,
            nodes_dropped,
            messages_sent,
            messages_received,
            messages_failed,
            poll_rounds,
            poll_errors,
            connections,
            outbox_depth,
            outbox_oldest,
            event_log,
            identities,
            pool_size,
            paths,
            recent: Mutex::new(Recent::default()),
            webhooks,
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an onion request that started at `started` and returned `result`, over a path of
    /// `hops` hops (0: none was available).
    pub fn onion_request<T>(
        &self,
        kind: RequestKind,
        hops: usize,
        started: Instant,
        result: &Result<T, NetError>,
    ) {
        let labels = OnionLabels {
            kind,
            outcome: Outcome::of(result),
            hops: u32::try_from(hops).unwrap_or(u32::MAX),
        };
        self.onion_requests.get_or_create(&labels).inc();
        self.onion_seconds
            .get_or_create(&KindLabels { kind })
            .observe(started.elapsed().as_secs_f64());
    }

    /// A message was stored in its recipient's swarm.
    pub fn message_sent(&self) {
        self.messages_sent.inc();
    }

    /// `n` new messages were received.
    pub fn messages_received(&self, n: usize) {
        self.messages_received.inc_by(n as u64);
    }

    /// A message failed for good.
    pub fn message_failed(&self, failure: DeliveryFailure) {
        self.messages_failed.inc();
        let mut recent = self.recent();
        if recent.failures.len() == RECENT_FAILURES {
            recent.failures.pop_front();
        }
        recent.failures.push_back(failure);
    }

    /// A poll round ended; `ok` false if it failed.
    pub fn poll_round(&self, ok: bool) {
        self.poll_rounds.inc();
        if !ok {
            self.poll_errors.inc();
        }
    }

    /// The newest delivery failures, oldest first.
    pub fn recent_failures(&self) -> Vec<DeliveryFailure> {
        self.recent().failures.iter().cloned().collect()
    }

    /// When the path `id` was built (ms since the Unix epoch), if this daemon saw it built.
    pub fn path_built_at(&self, id: u64) -> Option<u64> {
        self.recent().path_built_at.get(&id).copied()
    }

    /// Updates the counters for one network event.
    pub fn network_event(&self, event: &NetEvent) {
        match event {
            NetEvent::PathBuilt { path } => {
                let mut recent = self.recent();
                recent.path_built_at.insert(path.id, now_ms());
                let kind = if recent.drops_pending > 0 {
                    recent.drops_pending -= 1;
                    BuildKind::Rebuild
                } else {
                    BuildKind::First
                };
                self.path_builds.get_or_create(&BuildLabels { kind }).inc();
            }
            NetEvent::PathDropped { id, .. } => {
                let mut recent = self.recent();
                recent.path_built_at.remove(id);
                recent.drops_pending += 1;
                self.path_drops.inc();
            }
            NetEvent::PathStruck { .. } => {
                self.path_strikes.inc();
            }
            NetEvent::NodeStruck { dropped, .. } => {
                self.node_strikes.inc();
                if *dropped {
                    self.nodes_dropped.inc();
                }
            }
            _ => {}
        }
    }

    /// The registry in the text exposition format, the gauges set from `scrape` first.
    pub fn render(&self, scrape: &Scrape) -> String {
        let gauge = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.outbox_depth, scrape.outbox_depth);
        self.outbox_oldest.set(scrape.outbox_oldest_secs);
        gauge(&self.event_log, scrape.event_log_events);
        gauge(&self.identities, scrape.identities);
        gauge(&self.pool_size, scrape.pool_size);
        gauge(&self.paths, scrape.paths);
        for (front_end, n) in &scrape.connections {
            gauge(
                &self.connections.get_or_create(&FrontEndLabels {
                    front_end: *front_end,
                }),
                *n,
            );
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts the network client's events into `metrics` until `stop` turns true or the client's
/// channel closes. The caller owns the task ("net-metrics").
pub fn watch_network(
    client: &NetClient,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut rx = client.events();
    // Paths built before this task subscribed (none in practice: it starts with the client).
    for path in client.status().paths {
        metrics.network_event(&NetEvent::PathBuilt { path });
    }
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.changed() => break,
                r = rx.recv() => r,
            };
            match event {
                Ok(e) => metrics.network_event(&e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "network metrics missed events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_net::{HopStatus, PathStatus};

    fn path(id: u64) -> PathStatus {
        PathStatus {
            id,
            hops: vec![HopStatus {
                ed25519: "ab".repeat(32),
                addr: "127.0.0.1:1".parse().expect("addr"),
                strikes: 0,
            }],
            strikes: 0,
            built_at_ms: 0,
            requests_ok: 0,
            requests_failed: 0,
        }
    }

    #[test]
    fn builds_after_a_drop_count_as_rebuilds_and_failures_are_bounded() {
        let m = Metrics::new();
        m.network_event(&NetEvent::PathBuilt { path: path(1) });
        m.network_event(&NetEvent::PathDropped {
            id: 1,
            reason: "strikes".into(),
        });
        m.network_event(&NetEvent::PathBuilt { path: path(2) });
        assert!(m.path_built_at(1).is_none());
        assert!(m.path_built_at(2).is_some());
        let text = m.render(&Scrape::default());
        assert!(
            text.contains("sessiond_path_builds_total{kind=\"first\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sessiond_path_builds_total{kind=\"rebuild\"} 1"),
            "{text}"
        );
        assert!(text.contains("sessiond_path_drops_total 1"), "{text}");
        for i in 0..(RECENT_FAILURES + 5) {
            m.message_failed(DeliveryFailure {
                at_ms: i as u64,
                identity: 1,
                message_id: format!("m{i}"),
                reason: "gone".into(),
            });
        }
        let recent = m.recent_failures();
        assert_eq!(recent.len(), RECENT_FAILURES);
        assert_eq!(recent[0].message_id, "m5");
        let text = m.render(&Scrape::default());
        assert!(text.contains("sessiond_messages_failed_total 25"), "{text}");
    }
}
