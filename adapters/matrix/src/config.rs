//! `[matrix]` in the daemon's config file: where the Matrix endpoint listens, its server name and
//! its limits.

use std::net::SocketAddr;

use serde::Deserialize;

/// The Matrix adapter's settings (`[matrix]` in `sessiond.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Run the Matrix endpoint.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The TCP address; loopback by default. Port 0 picks a free port (the daemon prints it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The server name in user ids (`@name:server`) and room ids.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// The longest a `/sync` long-poll waits (its `timeout` is clamped to this), in ms.
    #[serde(default = "default_max_sync_timeout_ms")]
    pub max_sync_timeout_ms: u64,
    /// At most this many Matrix connections at once; one more is answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for MatrixConfig {
    fn default() -> MatrixConfig {
        MatrixConfig {
            enabled: true,
            listen: default_listen(),
            server_name: default_server_name(),
            max_sync_timeout_ms: default_max_sync_timeout_ms(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// `127.0.0.1:8008`: loopback, the port Matrix homeservers use for plain HTTP.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8008))
}

/// `localhost`.
pub fn default_server_name() -> String {
    "localhost".to_owned()
}

/// 60 s: clients ask for 30 s; longer waits only hold connections open.
pub fn default_max_sync_timeout_ms() -> u64 {
    60_000
}

/// 500, like IRC: far more than one person's clients (each holds one or two), and well under a
/// default limit of 1024 open files.
pub fn default_max_connections() -> usize {
    500
}
