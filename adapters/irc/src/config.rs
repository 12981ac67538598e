//! `[irc]` in the daemon's config file: where the IRC server listens and what it calls itself.

use std::net::SocketAddr;

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
}

impl Default for IrcConfig {
    fn default() -> IrcConfig {
        IrcConfig {
            enabled: true,
            listen: default_listen(),
            server_name: default_server_name(),
        }
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
