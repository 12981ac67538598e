//! `[irc]` in the daemon's config file: where the IRC server listens, what it calls itself, and
//! the limits that keep one client from hurting the others.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// The IRC adapter's settings (`[irc]` in `sessiond.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// Run the IRC server.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The TCP address; loopback by default. Port 0 picks a free port (the daemon prints it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The server name clients see as the prefix of server messages.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// At most this many IRC connections at once; one more gets `ERROR` and is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that has not registered (PASS/SASL, NICK, USER) within this many seconds is
    /// closed.
    #[serde(default = "default_registration_timeout_secs")]
    pub registration_timeout_secs: u64,
    /// The outbound queue of a connection, in lines. Lines wait there while the client's socket
    /// is full; see `sendq_timeout_ms`.
    #[serde(default = "default_sendq_lines")]
    pub sendq_lines: usize,
    /// A line that finds the outbound queue full waits at most this long for room; then the
    /// client is dropped with `ERROR :SendQ exceeded` (it is not reading). Other connections are
    /// never slowed by it.
    #[serde(default = "default_sendq_timeout_ms")]
    pub sendq_timeout_ms: u64,
    /// Flood control, a token bucket over the lines a client sends: it may send this many lines
    /// in a burst...
    #[serde(default = "default_flood_burst")]
    pub flood_burst: u32,
    /// ...and this many lines per second after that. A client over the limit is disconnected
    /// with `ERROR :Excess Flood`.
    #[serde(default = "default_flood_lines_per_sec")]
    pub flood_lines_per_sec: u32,
    /// A client without draft/chathistory gets at most this many missed messages per
    /// conversation replayed when it connects (with a notice saying how to get older ones).
    #[serde(default = "default_replay_lines")]
    pub replay_lines: u32,
    /// Where clients upload files (`soju.im/FILEHOST`): set by the daemon to its HTTP
    /// listener's `/upload` when it runs; not a config key.
    #[serde(skip)]
    pub filehost: Option<String>,
}

impl Default for IrcConfig {
    fn default() -> IrcConfig {
        IrcConfig {
            enabled: true,
            listen: default_listen(),
            server_name: default_server_name(),
            max_connections: default_max_connections(),
            registration_timeout_secs: default_registration_timeout_secs(),
            sendq_lines: default_sendq_lines(),
            sendq_timeout_ms: default_sendq_timeout_ms(),
            flood_burst: default_flood_burst(),
            flood_lines_per_sec: default_flood_lines_per_sec(),
            replay_lines: default_replay_lines(),
            filehost: None,
        }
    }
}

impl IrcConfig {
    /// The registration timeout as a duration.
    pub fn registration_timeout(&self) -> Duration {
        Duration::from_secs(self.registration_timeout_secs)
    }

    /// The send-queue timeout as a duration.
    pub fn sendq_timeout(&self) -> Duration {
        Duration::from_millis(self.sendq_timeout_ms)
    }
}

fn default_true() -> bool {
    true
}

/// `127.0.0.1:6667`: loopback, the usual plain-text IRC port.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6667))
}

/// `sessiond`.
pub fn default_server_name() -> String {
    "sessiond".to_owned()
}

/// 500: far more than one person's clients, and well under a default limit of 1024 open files.
pub fn default_max_connections() -> usize {
    500
}

/// 60 seconds, like most IRC servers.
pub fn default_registration_timeout_secs() -> u64 {
    60
}

/// 1024 lines: at most about 1 MiB per connection (a line is at most 512 bytes plus tags).
pub fn default_sendq_lines() -> usize {
    1024
}

/// 30 seconds.
pub fn default_sendq_timeout_ms() -> u64 {
    30_000
}

/// 60 lines: a client's registration, its joins and history requests fit in one burst.
pub fn default_flood_burst() -> u32 {
    60
}

/// 10 lines per second: faster than anyone types or any client pastes by default.
pub fn default_flood_lines_per_sec() -> u32 {
    10
}

/// 50 messages per conversation.
pub fn default_replay_lines() -> u32 {
    50
}
