//! The daemon configuration: a TOML file, then `SESSIOND_*` environment overrides, then flags.
//!
//! Every key has a default (the `default_*` functions) and is documented in
//! `deploy/sessiond.example.toml`, which a test parses. Unknown keys are an error, so a typo is
//! reported instead of silently ignored. The configuration is immutable once loaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use session_proto::err::{ErrorKind, HasKind};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The data dir: database, `admin.token`, `sessiond.sock`. Default: `$XDG_DATA_HOME/sessiond`
    /// (else `~/.local/share/sessiond`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The gRPC listeners.
    #[serde(default)]
    pub grpc: GrpcConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The Session network to join.
    #[serde(default)]
    pub network: NetworkConfig,
    /// How often each identity's swarm is polled.
    #[serde(default)]
    pub poll: PollConfig,
    /// How queued messages are retried.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The IRC server (`sessiond-irc`).
    #[serde(default)]
    pub irc: sessiond_irc::IrcConfig,
    /// The Matrix client-server endpoint (`sessiond-matrix`).
    #[serde(default)]
    pub matrix: sessiond_matrix::MatrixConfig,
    /// The HTTP listener: health, Prometheus metrics, the status page.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Attachments: the file server, downloads and the local store.
    #[serde(default)]
    pub attachments: AttachmentsConfig,
    /// Webhooks: where they may point, how they are retried, and the ones defined here.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// How long each identity's event log keeps events.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Giving freed memory back to the system after bursts.
    #[serde(default)]
    pub memory: MemoryConfig,
}

/// `[memory]`: when freed heap memory is given back to the system (glibc only; see
/// `daemon::memory`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// How often the resident size is checked, seconds; 0 never trims.
    #[serde(default = "default_memory_trim_interval_secs")]
    pub trim_interval_secs: u64,
    /// Trim when the resident size is more than this many MiB above the lowest seen.
    #[serde(default = "default_memory_trim_growth_mib")]
    pub trim_growth_mib: u64,
}

/// `[webhooks]`: the settings every webhook shares, and `[[webhooks.endpoints]]`, the webhooks
/// defined in the config file (more can be added through the WebhookService).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Hosts (names or IP addresses, compared case-insensitively) a webhook may point at besides
    /// loopback ones.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long one delivery may take (connect, send, answer headers), ms.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Wait before the first retry, ms; doubles per retry up to `backoff_max_ms` (each wait is
    /// jittered between half and all of it).
    #[serde(default = "default_webhook_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between retries, ms.
    #[serde(default = "default_webhook_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// After the head event has failed for this long, the webhook enters the dead-letter state.
    #[serde(default = "default_webhook_dead_letter_after_secs")]
    pub dead_letter_after_secs: u64,
    /// The webhooks defined here.
    #[serde(default)]
    pub endpoints: Vec<WebhookEndpoint>,
    /// PEM file of extra CA certificates that https endpoints may chain to (a private CA),
    /// besides the public ones compiled in (Mozilla's, from webpki-roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[[webhooks.endpoints]]`: one webhook defined in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// The identity whose events it receives.
    pub identity: String,
    /// Its name, unique per identity (1 to 64 of `[A-Za-z0-9._-]`).
    pub name: String,
    /// The endpoint, `http[s]://host[:port]/path`.
    pub url: String,
    /// A file holding the signing secret (`whsec_` + base64), first line.
    pub secret_file: PathBuf,
    /// When first added: send the whole event log (true) or only events from then on (false).
    #[serde(default)]
    pub from_start: bool,
}

/// `[retention]`: how long events are kept. 0 days: forever (the default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days every identity's events are kept; 0 keeps them forever.
    #[serde(default)]
    pub keep_days: u64,
    /// Per identity (by name): days its events are kept, overriding `keep_days`; 0 forever.
    #[serde(default)]
    pub identities: std::collections::BTreeMap<String, u64>,
}

impl RetentionConfig {
    /// The days an identity's events are kept (0: forever).
    pub fn keep_days(&self, identity: &str) -> u64 {
        self.identities
            .get(identity)
            .copied()
            .unwrap_or(self.keep_days)
    }
}

/// `[metrics]`: the HTTP listener with `/healthz`, `/metrics` and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The address. Port 0 picks a free port (the daemon prints the one it got).
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

/// `[grpc]`: where the gRPC API listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Serve gRPC on TCP at `listen`.
    #[serde(default = "default_true")]
    pub tcp: bool,
    /// The TCP address. Port 0 picks a free port (the daemon prints the one it got).
    #[serde(default = "default_grpc_listen")]
    pub listen: SocketAddr,
    /// Serve gRPC on the Unix socket `sessiond.sock` in the data dir (what the CLI uses).
    #[serde(default = "default_true")]
    pub unix_socket: bool,
}

/// `[log]`: what is logged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or directives
    /// such as `info,session_net=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// `[network]`: which Session network to join.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Seed URLs (`https://host:port`) the snode pool is fetched from. Empty: the mainnet seeds.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Run without the network: Send queues, nothing is sent or polled, the Network service
    /// answers UNAVAILABLE. For tests and offline maintenance.
    #[serde(default)]
    pub offline: bool,
    /// Give each identity its own guards and onion paths, so no guard sees two identities'
    /// traffic. Costs `guard_count` paths per identity (README, "Path isolation").
    #[serde(default)]
    pub isolate_identities: bool,
}

/// `[poll]`: the adaptive poll interval of each identity's swarm.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// Interval while the identity is active (a message went either way recently), ms.
    #[serde(default = "default_poll_active_ms")]
    pub active_interval_ms: u64,
    /// Interval once it has been idle for `idle_after_secs`, ms.
    #[serde(default = "default_poll_idle_ms")]
    pub idle_interval_ms: u64,
    /// Seconds without messages after which the idle interval applies.
    #[serde(default = "default_poll_idle_after_secs")]
    pub idle_after_secs: u64,
    /// Interval once it has been idle for `dormant_after_secs` (an identity nobody writes to),
    /// ms.
    #[serde(default = "default_poll_dormant_ms")]
    pub dormant_interval_ms: u64,
    /// Seconds without messages after which the dormant interval applies.
    #[serde(default = "default_poll_dormant_after_secs")]
    pub dormant_after_secs: u64,
    /// Poll requests (onion requests) per second all identities together may send, at most;
    /// polls beyond it wait their turn. 0: no limit.
    #[serde(default = "default_poll_max_requests_per_sec")]
    pub max_requests_per_sec: u32,
    /// How often each joined community server is polled (one batch for all its rooms), ms;
    /// after failures the wait doubles, up to 32 times this or a minute, whichever is less.
    #[serde(default = "default_poll_community_ms")]
    pub community_interval_ms: u64,
}

/// `[outbox]`: how queued messages are sent and retried.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Attempts per message (the first included) before it is marked failed.
    #[serde(default = "default_outbox_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry, ms; doubles per retry up to `backoff_max_ms`.
    #[serde(default = "default_outbox_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between retries, ms.
    #[serde(default = "default_outbox_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// How long the recipient's swarm keeps a message, seconds (at most 14 days).
    #[serde(default = "default_message_ttl_secs")]
    pub message_ttl_secs: u64,
    /// Queued messages bound for one swarm stored with one onion request (a `batch` of
    /// stores), at most; 1 sends each alone. At most 20 (the storage server's batch limit).
    #[serde(default = "default_outbox_batch_max")]
    pub batch_max: usize,
    /// Messages an identity may have queued and not yet sent; beyond it Send answers
    /// RESOURCE_EXHAUSTED (reason `OUTBOX_FULL`) until the outbox drains: back-pressure instead
    /// of minutes of hidden latency.
    #[serde(default = "default_outbox_max_queued")]
    pub max_queued: u64,
}

/// `[attachments]`: where files are uploaded, which are downloaded at once, and how much of
/// the data dir they may take.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// The file server uploads go to, and whose files need no key in the URL
    /// (`http(s)://host[:port]`). Default: the Session file server; `run --devnet` and a
    /// `--seeds` devnet.json with a file server use the devnet's.
    #[serde(default = "default_file_server")]
    pub file_server: String,
    /// The file server's X25519 public key (64 hex characters) onion requests encrypt to.
    #[serde(default = "default_file_server_x25519")]
    pub file_server_x25519: String,
    /// The file server's Ed25519 public key (64 hex characters), written into sent URLs (`#p=`)
    /// when the server is not the Session file server, so other clients can reach it.
    #[serde(default = "default_file_server_ed25519")]
    pub file_server_ed25519: String,
    /// Incoming attachments up to this many bytes are downloaded as soon as they arrive; larger
    /// ones when a client asks (Download, or opening the local link). 0: never eagerly.
    #[serde(default = "default_eager_max_bytes")]
    pub eager_max_bytes: u64,
    /// The most bytes the local attachment store (`attachments/` in the data dir) may hold; a
    /// download or upload that would pass it fails with the reason "quota".
    #[serde(default = "default_quota_bytes")]
    pub quota_bytes: u64,
    /// Local copies older than this many days are removed (their state turns EXPIRED); 0 keeps
    /// them until the daemon's data dir is cleared. The file server keeps its copy ~3 weeks.
    #[serde(default = "default_keep_days")]
    pub keep_days: u64,
}

/// `true`, for switches that are on unless turned off.
pub fn default_true() -> bool {
    true
}
/// `127.0.0.1:50051`: loopback only; the gRPC port of the Defaults table.
pub fn default_grpc_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
/// `127.0.0.1:9464`: loopback only; the health/metrics port of the Defaults table (the
/// Prometheus exporters' customary range).
pub fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
/// 10 s: a storm's freed buffers go back to the system seconds after it ends; a check that finds
/// no growth costs one read of `/proc/self/status`.
pub fn default_memory_trim_interval_secs() -> u64 {
    10
}
/// 8 MiB: a burst of connections grows the daemon by far more; a daemon whose live memory grew
/// that much for good trims every third check (cheap, and releasing little).
pub fn default_memory_trim_growth_mib() -> u64 {
    8
}
/// `info`: lifecycle events, warnings and errors.
pub fn default_log_level() -> String {
    "info".to_owned()
}
/// 3 s while active, close to the Session clients' foreground polling.
pub fn default_poll_active_ms() -> u64 {
    3_000
}
/// 30 s once idle.
pub fn default_poll_idle_ms() -> u64 {
    30_000
}
/// Idle after 2 minutes without messages.
pub fn default_poll_idle_after_secs() -> u64 {
    120
}
/// 1000 queued messages per identity: a few minutes of sending on a slow path.
pub fn default_outbox_max_queued() -> u64 {
    1000
}

/// Community servers every 10 s, as desktop polls them.
pub fn default_poll_community_ms() -> u64 {
    10_000
}
/// 8 attempts (the first included) before a message fails.
pub fn default_outbox_max_attempts() -> u32 {
    8
}
/// 1 s before the first retry.
pub fn default_outbox_backoff_initial_ms() -> u64 {
    1_000
}
/// At most 5 minutes between retries.
pub fn default_outbox_backoff_max_ms() -> u64 {
    300_000
}
/// 14 days, the one-to-one message TTL of the Session clients (and the storage servers' max).
pub fn default_message_ttl_secs() -> u64 {
    14 * 24 * 3600
}
/// 2 minutes once dormant.
pub fn default_poll_dormant_ms() -> u64 {
    120_000
}
/// Dormant after 30 minutes without messages.
pub fn default_poll_dormant_after_secs() -> u64 {
    1_800
}
/// 50 polls per second: 1,000 idle identities at the 30 s idle interval need 33.
pub fn default_poll_max_requests_per_sec() -> u32 {
    50
}
/// 20: as many stores as one `batch` request may carry.
pub fn default_outbox_batch_max() -> usize {
    session_proto::storage_rpc::BATCH_MAX
}

/// 10 s for one webhook delivery.
pub fn default_webhook_timeout_ms() -> u64 {
    10_000
}
/// 1 s before the first webhook retry.
pub fn default_webhook_backoff_initial_ms() -> u64 {
    1_000
}
/// At most 5 minutes between webhook retries.
pub fn default_webhook_backoff_max_ms() -> u64 {
    300_000
}
/// 3 days of failures before a webhook is dead-lettered (long enough for a weekend outage).
pub fn default_webhook_dead_letter_after_secs() -> u64 {
    3 * 24 * 3600
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allowed_hosts: Vec::new(),
            timeout_ms: default_webhook_timeout_ms(),
            backoff_initial_ms: default_webhook_backoff_initial_ms(),
            backoff_max_ms: default_webhook_backoff_max_ms(),
            dead_letter_after_secs: default_webhook_dead_letter_after_secs(),
            endpoints: Vec::new(),
            ca_file: None,
        }
    }
}

/// The Session file server.
pub fn default_file_server() -> String {
    session_proto::attachment::DEFAULT_FILE_SERVER.to_owned()
}
/// The Session file server's X25519 key.
pub fn default_file_server_x25519() -> String {
    session_proto::attachment::DEFAULT_FILE_SERVER_X25519.to_owned()
}
/// The Session file server's Ed25519 key.
pub fn default_file_server_ed25519() -> String {
    session_proto::attachment::DEFAULT_FILE_SERVER_ED25519.to_owned()
}
/// 2 MB: images and voice notes arrive with the message; videos and documents on demand.
pub fn default_eager_max_bytes() -> u64 {
    2_000_000
}
/// 1 GiB of attachments in the data dir.
pub fn default_quota_bytes() -> u64 {
    1 << 30
}
/// 21 days: as long as the file server keeps them.
pub fn default_keep_days() -> u64 {
    21
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            file_server: default_file_server(),
            file_server_x25519: default_file_server_x25519(),
            file_server_ed25519: default_file_server_ed25519(),
            eager_max_bytes: default_eager_max_bytes(),
            quota_bytes: default_quota_bytes(),
            keep_days: default_keep_days(),
        }
    }
}

/// The largest message TTL the storage servers accept, seconds.
pub const MAX_MESSAGE_TTL_SECS: u64 = 14 * 24 * 3600;

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            tcp: default_true(),
            listen: default_grpc_listen(),
            unix_socket: default_true(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: default_true(),
            listen: default_metrics_listen(),
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            trim_interval_secs: default_memory_trim_interval_secs(),
            trim_growth_mib: default_memory_trim_growth_mib(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            active_interval_ms: default_poll_active_ms(),
            idle_interval_ms: default_poll_idle_ms(),
            idle_after_secs: default_poll_idle_after_secs(),
            dormant_interval_ms: default_poll_dormant_ms(),
            dormant_after_secs: default_poll_dormant_after_secs(),
            max_requests_per_sec: default_poll_max_requests_per_sec(),
            community_interval_ms: default_poll_community_ms(),
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: default_outbox_max_attempts(),
            backoff_initial_ms: default_outbox_backoff_initial_ms(),
            backoff_max_ms: default_outbox_backoff_max_ms(),
            message_ttl_secs: default_message_ttl_secs(),
            max_queued: default_outbox_max_queued(),
            batch_max: default_outbox_batch_max(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (syntax, unknown key, wrong type).
    #[error("bad config file {}: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with the line.
        detail: String,
    },
    /// An environment override has a bad value.
    #[error("bad value {value:?} in the environment variable {var}: {detail}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        detail: String,
    },
    /// A value is out of range.
    #[error("bad config value {key}: {detail}")]
    Invalid {
        /// The key, as in the file (`outbox.max_attempts`).
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No data dir was given and none could be derived.
    #[error("no data dir: set --data-dir, SESSIOND_DATA_DIR, data_dir in the config, or HOME")]
    NoDataDir,
}

impl HasKind for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read { .. } => ErrorKind::LocalIo,
            ConfigError::Parse { .. }
            | ConfigError::Env { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::NoDataDir => ErrorKind::InvalidInput,
        }
    }
}

/// The environment variables that override configuration keys.
pub mod env {
    /// `data_dir`.
    pub const DATA_DIR: &str = "SESSIOND_DATA_DIR";
    /// The config file to read (the `--config` flag wins).
    pub const CONFIG: &str = "SESSIOND_CONFIG";
    /// `grpc.listen`.
    pub const GRPC_LISTEN: &str = "SESSIOND_GRPC_LISTEN";
    /// `log.level`.
    pub const LOG: &str = "SESSIOND_LOG";
    /// `network.seeds`, comma-separated.
    pub const SEEDS: &str = "SESSIOND_SEEDS";
    /// `network.offline`: `1`/`true` or `0`/`false`.
    pub const OFFLINE: &str = "SESSIOND_OFFLINE";
    /// `irc.listen` (and turns the IRC server on).
    pub const IRC_LISTEN: &str = "SESSIOND_IRC_LISTEN";
    /// `matrix.listen` (and turns the Matrix endpoint on).
    pub const MATRIX_LISTEN: &str = "SESSIOND_MATRIX_LISTEN";
    /// `metrics.listen` (and turns the HTTP listener on).
    pub const METRICS_LISTEN: &str = "SESSIOND_METRICS_LISTEN";
    /// A file holding the store's passphrase (first line).
    pub const PASSPHRASE_FILE: &str = "SESSIOND_PASSPHRASE_FILE";
}

/// Parses an `ip:port` listen address from the environment variable `var`.
fn env_addr(var: &'static str, value: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e: std::net::AddrParseError| ConfigError::Env {
            var,
            value: value.to_owned(),
            detail: format!("{e} (expected ip:port, e.g. {example})"),
        })
}

impl Config {
    /// Parses TOML text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            detail: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Applies `SESSIOND_*` overrides from `vars` (normally `std::env::var`).
    pub fn apply_env(&mut self, vars: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = vars(env::DATA_DIR).filter(|v| !v.is_empty()) {
            self.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = vars(env::GRPC_LISTEN).filter(|v| !v.is_empty()) {
            self.grpc.listen = env_addr(env::GRPC_LISTEN, &v, "127.0.0.1:50051")?;
        }
        if let Some(v) = vars(env::IRC_LISTEN).filter(|v| !v.is_empty()) {
            self.irc.listen = env_addr(env::IRC_LISTEN, &v, "127.0.0.1:6667")?;
            self.irc.enabled = true;
        }
        if let Some(v) = vars(env::MATRIX_LISTEN).filter(|v| !v.is_empty()) {
            self.matrix.listen = env_addr(env::MATRIX_LISTEN, &v, "127.0.0.1:8008")?;
            self.matrix.enabled = true;
        }
        if let Some(v) = vars(env::METRICS_LISTEN).filter(|v| !v.is_empty()) {
            self.metrics.listen = env_addr(env::METRICS_LISTEN, &v, "127.0.0.1:9464")?;
            self.metrics.enabled = true;
        }
        if let Some(v) = vars(env::LOG).filter(|v| !v.is_empty()) {
            self.log.level = v;
        }
        if let Some(v) = vars(env::SEEDS) {
            self.network.seeds = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = vars(env::OFFLINE).filter(|v| !v.is_empty()) {
            self.network.offline = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(ConfigError::Env {
                        var: env::OFFLINE,
                        value: v,
                        detail: "expected 1, true, 0 or false".to_owned(),
                    })
                }
            };
        }
        self.validate()
    }

    /// Checks the values that have a range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, detail: &str| {
            Err(ConfigError::Invalid {
                key,
                detail: detail.to_owned(),
            })
        };
        if self.outbox.max_attempts == 0 {
            return invalid("outbox.max_attempts", "must be at least 1");
        }
        if self.outbox.max_queued == 0 {
            return invalid("outbox.max_queued", "must be at least 1");
        }
        if self.outbox.backoff_initial_ms > self.outbox.backoff_max_ms {
            return invalid(
                "outbox.backoff_initial_ms",
                "must not exceed outbox.backoff_max_ms",
            );
        }
        if self.outbox.message_ttl_secs == 0 || self.outbox.message_ttl_secs > MAX_MESSAGE_TTL_SECS
        {
            return invalid(
                "outbox.message_ttl_secs",
                "must be between 1 and 1209600 (14 days)",
            );
        }
        if self.outbox.batch_max == 0
            || self.outbox.batch_max > session_proto::storage_rpc::BATCH_MAX
        {
            return invalid("outbox.batch_max", "must be between 1 and 20");
        }
        if self.poll.active_interval_ms == 0
            || self.poll.idle_interval_ms == 0
            || self.poll.dormant_interval_ms == 0
        {
            return invalid("poll", "intervals must be at least 1 ms");
        }
        if self.webhooks.timeout_ms == 0 || self.webhooks.backoff_initial_ms == 0 {
            return invalid(
                "webhooks",
                "timeout_ms and backoff_initial_ms must be at least 1",
            );
        }
        if self.webhooks.backoff_initial_ms > self.webhooks.backoff_max_ms {
            return invalid(
                "webhooks.backoff_initial_ms",
                "must not exceed webhooks.backoff_max_ms",
            );
        }
        if let Some(path) = &self.webhooks.ca_file {
            if let Err(why) = crate::webhooks::deliver::load_ca_file(path) {
                return invalid("webhooks.ca_file", &why);
            }
        }

        let hex32 = |v: &str| hex::decode(v).is_ok_and(|b| b.len() == 32);
        if !hex32(&self.attachments.file_server_x25519) {
            return invalid(
                "attachments.file_server_x25519",
                "must be 64 hex characters",
            );
        }
        if !hex32(&self.attachments.file_server_ed25519) {
            return invalid(
                "attachments.file_server_ed25519",
                "must be 64 hex characters",
            );
        }
        if !(self.attachments.file_server.starts_with("http://")
            || self.attachments.file_server.starts_with("https://"))
        {
            return invalid(
                "attachments.file_server",
                "must be an http:// or https:// base URL",
            );
        }
        if !self.grpc.tcp && !self.grpc.unix_socket {
            return invalid("grpc", "at least one of tcp and unix_socket must be on");
        }
        Ok(())
    }

    /// The data dir: the configured one, else `$XDG_DATA_HOME/sessiond`, else
    /// `$HOME/.local/share/sessiond`.
    pub fn resolve_data_dir(
        &self,
        vars: impl Fn(&str) -> Option<String>,
    ) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        default_data_dir(vars)
    }
}

/// `$XDG_DATA_HOME/sessiond`, else `$HOME/.local/share/sessiond`.
pub fn default_data_dir(vars: impl Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(xdg) = vars("XDG_DATA_HOME").filter(|v| Path::new(v).is_absolute()) {
        return Ok(PathBuf::from(xdg).join("sessiond"));
    }
    match vars("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/sessiond")),
        None => Err(ConfigError::NoDataDir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/sessiond.example.toml");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn example_file_parses_and_matches_the_defaults() {
        let parsed =
            Config::from_toml(EXAMPLE, Path::new("sessiond.example.toml")).expect("example parses");
        // The example spells out every default (except data_dir, which is machine-specific).
        let expected = Config {
            data_dir: parsed.data_dir.clone(),
            ..Config::default()
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn a_webhook_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("sessiond-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        for path in [junk.clone(), dir.join("missing.pem")] {
            let toml = format!(
                "[webhooks]\nca_file = {:?}\n",
                path.to_str().expect("utf-8")
            );
            let err = Config::from_toml(&toml, Path::new("t.toml"))
                .and_then(|c| c.validate())
                .expect_err("no certificate")
                .to_string();
            assert!(err.contains("webhooks.ca_file"), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn webhooks_retention_and_isolation_parse() {
        let c = Config::from_toml(
            r#"
[network]
isolate_identities = true
[webhooks]
allowed_hosts = ["hooks.example"]
[[webhooks.endpoints]]
identity = "me"
name = "bot"
url = "http://127.0.0.1:8080/hook"
secret_file = "/etc/sessiond/bot.secret"
[retention]
keep_days = 90
identities = { bot = 7 }
"#,
            Path::new("x.toml"),
        )
        .expect("parses");
        assert!(c.network.isolate_identities);
        assert_eq!(c.webhooks.endpoints.len(), 1);
        assert!(!c.webhooks.endpoints[0].from_start);
        assert_eq!(c.retention.keep_days("bot"), 7);
        assert_eq!(c.retention.keep_days("me"), 90);
        assert_eq!(
            Config::default().retention.keep_days("me"),
            0,
            "forever by default"
        );
        for bad in [
            "[webhooks]\nbackoff_initial_ms = 0",
            "[webhooks]\nbackoff_initial_ms = 10\nbackoff_max_ms = 5",
            "[[webhooks.endpoints]]\nname = \"x\"",
            "[retention]\nkeep_days = -1",
        ] {
            assert!(Config::from_toml(bad, Path::new("x")).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", Path::new("x.toml")).expect("empty parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.grpc.listen.to_string(), "127.0.0.1:50051");
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        for text in ["colour = 1", "[grpc]\nlistn = \"127.0.0.1:1\"", "[nope]\n"] {
            let err = Config::from_toml(text, Path::new("x.toml")).expect_err(text);
            let msg = err.to_string();
            assert!(msg.contains("unknown"), "{msg}");
        }
    }

    #[test]
    fn wrong_types_and_ranges_are_rejected() {
        assert!(Config::from_toml("[grpc]\nlisten = 5", Path::new("x")).is_err());
        assert!(Config::from_toml("[grpc]\nlisten = \"nope\"", Path::new("x")).is_err());
        assert!(matches!(
            Config::from_toml("[outbox]\nmax_attempts = 0", Path::new("x")),
            Err(ConfigError::Invalid {
                key: "outbox.max_attempts",
                ..
            })
        ));
        assert!(matches!(
            Config::from_toml("[outbox]\nmessage_ttl_secs = 9999999", Path::new("x")),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::from_toml("[grpc]\ntcp = false\nunix_socket = false", Path::new("x")),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = Config::from_toml("data_dir = \"/from/file\"", Path::new("x")).expect("ok");
        c.apply_env(|k| match k {
            env::DATA_DIR => Some("/from/env".into()),
            env::GRPC_LISTEN => Some("127.0.0.1:6000".into()),
            env::LOG => Some("debug".into()),
            env::SEEDS => Some("https://a:1, https://b:2,".into()),
            env::METRICS_LISTEN => Some("127.0.0.1:9999".into()),
            _ => None,
        })
        .expect("env ok");
        assert_eq!(c.metrics.listen.port(), 9999);
        assert!(c.metrics.enabled);
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/from/env")));
        assert_eq!(c.grpc.listen.port(), 6000);
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.network.seeds, vec!["https://a:1", "https://b:2"]);

        let err = c
            .apply_env(|k| (k == env::GRPC_LISTEN).then(|| "localhost".to_owned()))
            .expect_err("bad address");
        assert!(err.to_string().contains(env::GRPC_LISTEN));
    }

    #[test]
    fn data_dir_defaults_follow_xdg() {
        let c = Config::default();
        let dir = c
            .resolve_data_dir(|k| match k {
                "XDG_DATA_HOME" => Some("/x/data".into()),
                "HOME" => Some("/home/u".into()),
                _ => None,
            })
            .expect("dir");
        assert_eq!(dir, Path::new("/x/data/sessiond"));
        let dir = c
            .resolve_data_dir(|k| (k == "HOME").then(|| "/home/u".to_owned()))
            .expect("dir");
        assert_eq!(dir, Path::new("/home/u/.local/share/sessiond"));
        assert!(matches!(
            c.resolve_data_dir(no_env),
            Err(ConfigError::NoDataDir)
        ));
    }
}
