//! sessiond: the daemon that holds Session identities and onion paths and opens the network to
//! standard protocols.
//!
//! # Layout
//! - [`address`]: conversation addresses (one-to-one, group, community room, community DM).
//! - [`cli`]: the `sessiond` command line (offline commands and gRPC client commands).
//! - [`store`]: the redb store: identities, contacts, event log, outbox, poll cursors, snode pool.
//! - [`config`]: the TOML configuration.
//! - [`rpc`]: the gRPC services (`sessiond.v1`): auth, errors, one file per service.
//! - [`daemon`]: `sessiond run`: store + gRPC listeners + graceful shutdown.
//! - [`engine`]: the sender, the pollers, the devnet echo; the network client ([`session_net`])
//!   behind the API.
//! - [`metrics`]: the Prometheus metrics and recent history the daemon keeps of itself.
//! - [`http`]: the HTTP listener: `/healthz`, `/metrics`, the status page.
//! - [`status`]: the status report (`sessiond status`, the status page) and its health verdict.
//! - [`secrets`]: the store's passphrase: key derivation and sealing of seeds.

pub mod address;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod rpc;
pub mod secrets;
pub mod status;
pub mod store;
