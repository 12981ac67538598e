//! The daemon's status at a glance: one report ([`StatusReport`]) for `sessiond status`, the
//! status page and `/healthz`, built from the store, the network client and the metrics.
//!
//! Readiness ([`Health`]): the store answers, the network is bootstrapped (a snode pool) and
//! at least one path is built. An offline daemon is never ready: it cannot deliver.
//!
//! The report is for the admin (the page and `/api/status` need the admin token): it names
//! identities, but shows Account IDs and snode keys shortened.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::metrics::{FrontEnd, Metrics, Scrape};
use crate::rpc::now_ms;
use crate::store::{Store, StoreError};
use session_net::NetClient;

/// Outbox entries listed in the report (the oldest first).
pub const OUTBOX_LISTED: usize = 50;

/// Whether the daemon can deliver, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Store open, network bootstrapped, a path built.
    pub ready: bool,
    /// Why not, one line each (empty when ready).
    pub reasons: Vec<String>,
}

/// The network side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkReport {
    /// "mainnet", "devnet", "custom" or "offline".
    pub name: String,
    /// At least one path is built.
    pub online: bool,
    /// Snodes in the pool.
    pub pool_size: u64,
    /// When the pool was fetched (ms since the Unix epoch).
    pub pool_fetched_at_ms: Option<u64>,
    /// Accounts with a cached swarm.
    pub swarms_cached: u64,
    /// Network clock offset, ms.
    pub clock_offset_ms: i64,
    /// The last network failure.
    pub last_error: Option<String>,
}

/// One onion path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathReport {
    /// The path's id.
    pub id: u64,
    /// Strikes against it.
    pub strikes: u32,
    /// When it was built (ms), if this daemon saw it built.
    pub built_at_ms: Option<u64>,
    /// Guard first.
    pub hops: Vec<HopReport>,
}

/// One hop of a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopReport {
    /// The snode's Ed25519 key, first 8 hex digits.
    pub key: String,
    /// Its address.
    pub address: String,
    /// Its strikes.
    pub strikes: u32,
}

/// One identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReport {
    /// Its name.
    pub name: String,
    /// Its Account ID, shortened (`05ab12…ef90`).
    pub account: String,
    /// Conversations with unread messages.
    pub unread: u64,
    /// Messages in the outbox.
    pub queued: u64,
    /// Messages that failed since the daemon started.
    pub failed: u64,
    /// Config sync: the account's settings were read from the network since start (until
    /// then nothing is pushed).
    #[serde(default)]
    pub configs_pulled: bool,
    /// Said plainly when it matters: another device of the account published device-group
    /// keys, so messages in the new format cannot be read here yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// What the status page and `sessiond status` say when another device of the account has
/// published device-group keys (namespace −21).
pub const DEVICE_KEYS_NOTICE: &str = "another device of this account joined the new device \
    group: messages sent to it in the new format cannot be read here yet (they show as \
    'cannot read this message here'); read them on that device";

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The sending identity's name.
    pub identity: String,
    /// The recipient, shortened.
    pub recipient: String,
    /// When it was queued (its Session timestamp, ms).
    pub queued_at_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (ms).
    pub next_try_ms: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReport {
    /// Entries.
    pub depth: u64,
    /// When the oldest was queued (ms).
    pub oldest_at_ms: Option<u64>,
    /// The oldest [`OUTBOX_LISTED`] entries.
    pub entries: Vec<OutboxItem>,
}

/// A message given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// When (ms).
    pub at_ms: u64,
    /// The sending identity's name.
    pub identity: String,
    /// The message id.
    pub message_id: String,
    /// Why.
    pub reason: String,
}

/// A listener clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// "gRPC (TCP)", "gRPC (Unix socket)", "IRC", "Matrix", "HTTP (status, metrics)".
    pub name: String,
    /// Where it listens.
    pub listen: String,
    /// Open connections, where counted.
    pub connections: Option<u64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// sessiond's version.
    pub version: String,
    /// When the daemon started (ms).
    pub started_at_ms: u64,
    /// When the report was made (ms).
    pub now_ms: u64,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The admin token's file.
    pub admin_token_file: PathBuf,
    /// Seeds sealed with a passphrase.
    pub encrypted: bool,
    /// Readiness.
    pub health: Health,
    /// The network.
    pub network: NetworkReport,
    /// The paths.
    pub paths: Vec<PathReport>,
    /// The identities.
    pub identities: Vec<IdentityReport>,
    /// The outbox.
    pub outbox: OutboxReport,
    /// The newest delivery failures, newest first.
    pub recent_failures: Vec<FailureReport>,
    /// The listeners.
    pub adapters: Vec<AdapterReport>,
    /// The webhooks with their delivery state (absent from older daemons' reports).
    #[serde(default)]
    pub webhooks: Vec<crate::webhooks::WebhookView>,
}

/// A listener as the daemon bound it, with its connection count if it keeps one.
#[derive(Debug, Clone)]
pub struct Listener {
    /// See [`AdapterReport::name`].
    pub name: &'static str,
    /// The address or socket path.
    pub listen: String,
    /// The front end, for the metrics' label.
    pub front_end: Option<FrontEnd>,
    /// Open connections.
    pub open: Option<Arc<AtomicUsize>>,
}

/// What the report is made from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The store.
    pub store: Store,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The network client (none when offline).
    pub net: Option<NetClient>,
    /// The network's name.
    pub network: &'static str,
    /// The listeners.
    pub listeners: Vec<Listener>,
    /// When the daemon started (ms).
    pub started_at_ms: u64,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Config sync's per-identity status.
    pub sync: Arc<crate::engine::configsync::SyncHub>,
}

/// Shortens an Account ID or key for display: `05ab12…ef90`.
pub fn short(id: &str) -> String {
    match (id.get(..6), id.get(id.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) if id.len() > 12 => format!("{head}…{tail}"),
        _ => id.to_owned(),
    }
}

impl Sources {
    /// Readiness alone (cheap: one read transaction and the client's status).
    pub fn health(&self) -> Health {
        let mut reasons = Vec::new();
        if let Err(e) = self.store.is_encrypted() {
            reasons.push(format!("store: {e}"));
        }
        match &self.net {
            None => reasons.push("network: offline (network.offline is set)".to_owned()),
            Some(net) => {
                let s = net.status();
                if s.pool_size == 0 {
                    let why = s.last_error.map_or(String::new(), |e| format!(": {e}"));
                    reasons.push(format!(
                        "network: not bootstrapped (no snode pool yet){why}"
                    ));
                }
                if s.paths.is_empty() {
                    reasons.push("network: no onion path built yet".to_owned());
                }
            }
        }
        Health {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// The gauges for `/metrics`. Blocking (store reads).
    pub fn scrape(&self) -> Result<Scrape, StoreError> {
        let outbox = messages_queued(&self.store)?;
        let now = now_ms();
        let oldest = outbox.iter().map(|e| e.sent_at_ms).min();
        let (pool_size, paths) = self.net.as_ref().map_or((0, 0), |n| {
            let s = n.status();
            (s.pool_size as u64, s.paths.len() as u64)
        });
        Ok(Scrape {
            outbox_depth: outbox.len() as u64,
            outbox_oldest_secs: oldest.map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0),
            event_log_events: self.store.event_count()?,
            identities: self.store.identities()?.len() as u64,
            pool_size,
            paths,
            connections: self
                .listeners
                .iter()
                .filter_map(|l| {
                    let open = l.open.as_ref()?.load(Ordering::Relaxed) as u64;
                    Some((l.front_end?, open))
                })
                .collect(),
        })
    }

    /// The whole report. Blocking (store reads).
    pub fn report(&self) -> Result<StatusReport, StoreError> {
        let now = now_ms();
        let identities = self.store.identities()?;
        let name_of = |id: u64| {
            identities
                .iter()
                .find(|r| r.id == id)
                .map_or_else(|| format!("#{id}"), |r| r.name.clone())
        };
        let outbox = messages_queued(&self.store)?;
        let failures = self.metrics.recent_failures();
        let mut ids = Vec::new();
        for r in &identities {
            let unread = self
                .store
                .conversations(r.id)?
                .iter()
                .filter(|c| {
                    c.conversation.last_seq > c.conversation.read_seq || c.conversation.unread
                })
                .count() as u64;
            let sync = self.sync.status(r.id);
            ids.push(IdentityReport {
                configs_pulled: sync.pulled,
                notice: sync
                    .other_device_keys
                    .then(|| DEVICE_KEYS_NOTICE.to_owned()),
                name: r.name.clone(),
                account: short(&r.account_id),
                unread,
                queued: outbox.iter().filter(|e| e.identity == r.id).count() as u64,
                failed: failures.iter().filter(|f| f.identity == r.id).count() as u64,
            });
        }
        let mut entries: Vec<_> = outbox.iter().collect();
        entries.sort_by_key(|e| (e.sent_at_ms, e.id));
        let (network, paths) = match &self.net {
            None => (
                NetworkReport {
                    name: self.network.to_owned(),
                    online: false,
                    pool_size: 0,
                    pool_fetched_at_ms: None,
                    swarms_cached: 0,
                    clock_offset_ms: 0,
                    last_error: None,
                },
                Vec::new(),
            ),
            Some(net) => {
                let s = net.status();
                let paths = s
                    .paths
                    .iter()
                    .map(|p| PathReport {
                        id: p.id,
                        strikes: p.strikes,
                        built_at_ms: self.metrics.path_built_at(p.id),
                        hops: p
                            .hops
                            .iter()
                            .map(|h| HopReport {
                                key: h.ed25519.get(..8).unwrap_or(&h.ed25519).to_owned(),
                                address: h.addr.to_string(),
                                strikes: h.strikes,
                            })
                            .collect(),
                    })
                    .collect();
                (
                    NetworkReport {
                        name: self.network.to_owned(),
                        online: !s.paths.is_empty(),
                        pool_size: s.pool_size as u64,
                        pool_fetched_at_ms: s.pool_fetched_at_ms,
                        swarms_cached: s.swarms_cached as u64,
                        clock_offset_ms: s.clock_offset_ms,
                        last_error: s.last_error,
                    },
                    paths,
                )
            }
        };
        Ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            now_ms: now,
            data_dir: self.data_dir.clone(),
            admin_token_file: self.data_dir.join(crate::rpc::auth::ADMIN_TOKEN_FILE),
            encrypted: self.store.is_encrypted()?,
            health: self.health(),
            network,
            paths,
            identities: ids,
            outbox: OutboxReport {
                depth: outbox.len() as u64,
                oldest_at_ms: entries.first().map(|e| e.sent_at_ms),
                entries: entries
                    .iter()
                    .take(OUTBOX_LISTED)
                    .map(|e| OutboxItem {
                        identity: name_of(e.identity),
                        recipient: short(&e.recipient),
                        queued_at_ms: e.sent_at_ms,
                        attempts: e.attempts,
                        next_try_ms: e.next_try_ms,
                        last_error: e.last_error.clone(),
                    })
                    .collect(),
            },
            recent_failures: failures
                .iter()
                .rev()
                .map(|f| FailureReport {
                    at_ms: f.at_ms,
                    identity: name_of(f.identity),
                    message_id: f.message_id.clone(),
                    reason: f.reason.clone(),
                })
                .collect(),
            webhooks: self.metrics.webhooks.views(&self.store)?,
            adapters: self
                .listeners
                .iter()
                .map(|l| AdapterReport {
                    name: l.name.to_owned(),
                    listen: l.listen.clone(),
                    connections: l.open.as_ref().map(|o| o.load(Ordering::Relaxed) as u64),
                })
                .collect(),
        })
    }
}

/// "3 s", "4 min", "2 h", "5 d": how long ago `then_ms` was at `now_ms`.
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// The report for a person: a few aligned sections.
pub fn render_human(r: &StatusReport) -> String {
    let mut out = String::new();
    let state = if r.health.ready { "ready" } else { "not ready" };
    let _ = writeln!(
        out,
        "sessiond {} — {state}, up {}",
        r.version,
        age(r.now_ms, r.started_at_ms)
    );
    for reason in &r.health.reasons {
        let _ = writeln!(out, "  ! {reason}");
    }
    let _ = writeln!(out, "\nNetwork   {}", r.network.name);
    if r.network.name != "offline" {
        let fetched = r
            .network
            .pool_fetched_at_ms
            .map_or("never".to_owned(), |t| format!("{} ago", age(r.now_ms, t)));
        let _ = writeln!(
            out,
            "  pool {} snodes (fetched {fetched}), {} swarms cached, clock offset {} ms",
            r.network.pool_size, r.network.swarms_cached, r.network.clock_offset_ms
        );
        if let Some(e) = &r.network.last_error {
            let _ = writeln!(out, "  last error: {e}");
        }
    }
    let _ = writeln!(out, "\nPaths     {}", r.paths.len());
    for p in &r.paths {
        let hops: Vec<String> = p.hops.iter().map(|h| h.key.clone()).collect();
        let built = p.built_at_ms.map_or("age unknown".to_owned(), |t| {
            format!("built {} ago", age(r.now_ms, t))
        });
        let _ = writeln!(
            out,
            "  #{:<4} {}  ({built}, {} strikes)",
            p.id,
            hops.join(" → "),
            p.strikes
        );
    }
    let _ = writeln!(out, "\nIdentities {}", r.identities.len());
    for i in &r.identities {
        let _ = writeln!(
            out,
            "  {:<16} {}  unread {}, queued {}, failed {}{}",
            i.name,
            i.account,
            i.unread,
            i.queued,
            i.failed,
            if i.configs_pulled {
                ""
            } else {
                ", settings not synced yet"
            }
        );
        if let Some(n) = &i.notice {
            let _ = writeln!(out, "    note: {n}");
        }
    }
    let oldest = r.outbox.oldest_at_ms.map_or(String::new(), |t| {
        format!(", oldest {} old", age(r.now_ms, t))
    });
    let _ = writeln!(out, "\nOutbox    {} queued{oldest}", r.outbox.depth);
    if !r.recent_failures.is_empty() {
        let _ = writeln!(out, "\nRecent failures");
        for f in r.recent_failures.iter().take(5) {
            let _ = writeln!(
                out,
                "  {} ago  {}  {}",
                age(r.now_ms, f.at_ms),
                f.identity,
                f.reason
            );
        }
    }
    if !r.webhooks.is_empty() {
        let _ = writeln!(out, "\nWebhooks  {}", r.webhooks.len());
        for w in &r.webhooks {
            let state = match w.state {
                crate::webhooks::WebhookState::Active => "active",
                crate::webhooks::WebhookState::Retrying => "retrying",
                crate::webhooks::WebhookState::Paused => "paused",
                crate::webhooks::WebhookState::DeadLetter => "DEAD LETTER",
            };
            let _ = writeln!(
                out,
                "  {}/{:<16} {state}, at seq {}, {} pending, {} delivered, {} failed attempts",
                w.identity, w.name, w.cursor_seq, w.pending, w.delivered, w.failed_attempts
            );
            if let Some(e) = &w.last_error {
                let _ = writeln!(out, "    last error: {e}");
            }
        }
    }
    let _ = writeln!(out, "\nListeners");
    for a in &r.adapters {
        let conns = a
            .connections
            .map_or(String::new(), |n| format!("  ({n} connected)"));
        let _ = writeln!(out, "  {:<24} {}{conns}", a.name, a.listen);
    }
    let _ = writeln!(
        out,
        "\nData dir  {}{}",
        r.data_dir.display(),
        if r.encrypted {
            " (seeds encrypted)"
        } else {
            ""
        }
    );
    out
}

/// The outbox as a user counts it: messages. A message's sync copy (for the account's other
/// devices) is part of its message, not a second message.
fn messages_queued(store: &Store) -> Result<Vec<crate::store::OutboxEntry>, StoreError> {
    Ok(store
        .outbox()?
        .into_iter()
        .filter(|e| !e.sync_copy)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_short_ids_read_well() {
        assert_eq!(age(10_000, 7_000), "3 s");
        assert_eq!(age(600_000, 0), "10 min");
        assert_eq!(age(10_800_000, 0), "3 h");
        assert_eq!(age(0, 5), "0 s");
        assert_eq!(short(&format!("05{}", "ab".repeat(32))), "05abab…abab");
        assert_eq!(short("short"), "short");
    }
}
