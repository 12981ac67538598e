//! sessiond-irc: an IRC server (RFC 1459/2812 + IRCv3) that is a client of the sessiond gRPC API.
//!
//! The daemon binds the listener and hands it to [`serve`] with a gRPC channel to itself; every
//! IRC connection authenticates with a sessiond token (`PASS` or SASL PLAIN) and all its calls
//! carry that token, so the daemon's own authorization decides what it may reach.

mod config;

pub use config::IrcConfig;
