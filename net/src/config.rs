//! Settings of the network client: seeds, path policy, strike thresholds, timeouts, retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the network client. Immutable once the client is built.
///
/// Every field has a default (named `default_*` functions below) taken from the real clients'
/// policy (network spec §2.3, §5.6); tests on a loopback devnet shorten timeouts, point `seeds`
/// at the devnet and turn `distinct_subnets` off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// Seed URLs (`https://host:port`); `POST {seed}/json_rpc get_n_service_nodes` bootstraps
    /// the pool. Default: the three mainnet seeds.
    pub seeds: Vec<String>,
    /// Number of guards, and so of paths kept (one path per guard).
    pub guard_count: usize,
    /// Require the three hops of a path to be in distinct /24 subnets. Turn off for loopback
    /// devnets, where every node is on 127.0.0.1.
    pub distinct_subnets: bool,
    /// A node with this many strikes is dropped from the pool, swarm caches and paths.
    pub node_strike_threshold: u32,
    /// A path with this many strikes is dropped and rebuilt.
    pub path_strike_threshold: u32,
    /// Below this many usable nodes the pool is fetched again from the seeds.
    pub min_pool_size: usize,
    /// Below this many usable nodes the pool is refreshed from snodes.
    pub refresh_pool_below: usize,
    /// How many snodes are asked for the node list on a refresh.
    pub refresh_sources: usize,
    /// Nodes the refresh answers must have in common to be trusted (else the seeds are used).
    pub refresh_min_common: usize,
    /// The pool is refreshed when older than this (seconds).
    pub pool_max_age_secs: u64,
    /// A cached swarm with fewer usable members than this is fetched again.
    pub min_swarm_size: usize,
    /// Timeout for seed requests (ms).
    pub seed_timeout_ms: u64,
    /// Timeout for direct requests to a snode, e.g. testing a guard (ms).
    pub direct_timeout_ms: u64,
    /// Timeout for a whole onion request, guard to destination and back (ms).
    pub onion_timeout_ms: u64,
    /// Timeout for opening a TCP+TLS connection (ms).
    pub connect_timeout_ms: u64,
    /// Attempts per request (first try included) when failures are retryable.
    pub attempts: u32,
    /// First retry backoff (ms); doubles per retry up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Largest retry backoff (ms).
    pub backoff_max_ms: u64,
    /// Largest reply body accepted from a snode or seed (bytes).
    pub max_reply_bytes: usize,
    /// How often the background task checks the pool and paths (seconds).
    pub maintenance_interval_secs: u64,
}

/// The mainnet seeds (network spec §2.1).
pub fn default_seeds() -> Vec<String> {
    vec![
        "https://seed1.getsession.org:4443".into(),
        "https://seed2.getsession.org:4443".into(),
        "https://seed3.getsession.org:4443".into(),
    ]
}
/// 2 guards, as the real clients.
pub fn default_guard_count() -> usize {
    2
}
/// Subnet diversity on.
pub fn default_distinct_subnets() -> bool {
    true
}
/// 3 strikes.
pub fn default_node_strike_threshold() -> u32 {
    3
}
/// 3 strikes.
pub fn default_path_strike_threshold() -> u32 {
    3
}
/// (3 hops + destination) × 2 guards = 8.
pub fn default_min_pool_size() -> usize {
    8
}
/// 2 × 8 = 16.
pub fn default_refresh_pool_below() -> usize {
    16
}
/// 3 snodes asked.
pub fn default_refresh_sources() -> usize {
    3
}
/// 24 nodes in common.
pub fn default_refresh_min_common() -> usize {
    24
}
/// 2 hours.
pub fn default_pool_max_age_secs() -> u64 {
    2 * 60 * 60
}
/// 3 members.
pub fn default_min_swarm_size() -> usize {
    3
}
/// 5 s, as desktop.
pub fn default_seed_timeout_ms() -> u64 {
    5_000
}
/// 10 s, as desktop.
pub fn default_direct_timeout_ms() -> u64 {
    10_000
}
/// 30 s: a relay waits up to 30 s for the next hop.
pub fn default_onion_timeout_ms() -> u64 {
    30_000
}
/// 5 s.
pub fn default_connect_timeout_ms() -> u64 {
    5_000
}
/// 3 attempts.
pub fn default_attempts() -> u32 {
    3
}
/// 200 ms, as libsession.
pub fn default_backoff_initial_ms() -> u64 {
    200
}
/// 5 s, as libsession.
pub fn default_backoff_max_ms() -> u64 {
    5_000
}
/// 16 MiB: a full retrieve (7.8 MB) base64'd twice on its way back still fits.
pub fn default_max_reply_bytes() -> usize {
    16 * 1024 * 1024
}
/// 60 s.
pub fn default_maintenance_interval_secs() -> u64 {
    60
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            seeds: default_seeds(),
            guard_count: default_guard_count(),
            distinct_subnets: default_distinct_subnets(),
            node_strike_threshold: default_node_strike_threshold(),
            path_strike_threshold: default_path_strike_threshold(),
            min_pool_size: default_min_pool_size(),
            refresh_pool_below: default_refresh_pool_below(),
            refresh_sources: default_refresh_sources(),
            refresh_min_common: default_refresh_min_common(),
            pool_max_age_secs: default_pool_max_age_secs(),
            min_swarm_size: default_min_swarm_size(),
            seed_timeout_ms: default_seed_timeout_ms(),
            direct_timeout_ms: default_direct_timeout_ms(),
            onion_timeout_ms: default_onion_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            attempts: default_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_reply_bytes: default_max_reply_bytes(),
            maintenance_interval_secs: default_maintenance_interval_secs(),
        }
    }
}

impl NetConfig {
    /// Settings for a loopback devnet: its seeds, no subnet diversity, small pool thresholds
    /// and short timeouts.
    pub fn devnet(seeds: Vec<String>) -> NetConfig {
        NetConfig {
            seeds,
            distinct_subnets: false,
            min_pool_size: 6,
            refresh_pool_below: 6,
            refresh_min_common: 4,
            seed_timeout_ms: 2_000,
            direct_timeout_ms: 2_000,
            onion_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
            backoff_initial_ms: 20,
            backoff_max_ms: 200,
            ..NetConfig::default()
        }
    }

    /// Backoff before retry number `retry` (1 = first retry): initial × 2^(retry−1), capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u64 << retry.saturating_sub(1).min(20);
        Duration::from_millis(
            self.backoff_initial_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }

    /// Nodes a path needs besides the destination: guard + 2 relays.
    pub(crate) const HOPS: usize = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_real_clients() {
        let c = NetConfig::default();
        assert_eq!(c.seeds.len(), 3);
        assert!(c.seeds.iter().all(|s| s.starts_with("https://seed")));
        assert_eq!(c.guard_count, 2);
        assert_eq!(c.min_pool_size, 8);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = NetConfig::default();
        assert_eq!(c.backoff(1), Duration::from_millis(200));
        assert_eq!(c.backoff(2), Duration::from_millis(400));
        assert_eq!(c.backoff(5), Duration::from_millis(3200));
        assert_eq!(c.backoff(6), Duration::from_millis(5000));
        assert_eq!(c.backoff(u32::MAX), Duration::from_millis(5000));
    }

    #[test]
    fn toml_like_partial_and_unknown_keys() {
        let c: NetConfig =
            serde_json::from_str(r#"{"guard_count": 3}"#).expect("partial config parses");
        assert_eq!(c.guard_count, 3);
        assert_eq!(c.attempts, default_attempts());
        assert!(serde_json::from_str::<NetConfig>(r#"{"guards": 3}"#).is_err());
    }
}
