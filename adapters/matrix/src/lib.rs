//! sessiond-matrix: a Matrix client-server API subset (federation off) that is a client of the
//! sessiond gRPC API.
//!
//! The daemon binds the listener and hands it to [`serve`] with a gRPC channel to itself; every
//! Matrix access token is a sessiond identity-scoped token, and all calls carry it, so the
//! daemon's own authorization decides which identity a client reaches.
//!
//! # Layout
//! - [`config`](MatrixConfig): the `[matrix]` section.
//! - `http`: the accept loop (connection cap, header timeout) serving the axum router, and the
//!   extractors and answers of every handler (`Path`, `Query`, `Body` with its limit, `Json`).
//! - `router`: the axum routes, one line per path, under the r0/v3/v1 prefixes; Matrix errors for
//!   unknown paths and methods; CORS.
//! - `auth`: login, logout, whoami and the auth extractor (`Me`: a handler taking it needs a token).
//! - `sync`: `/sync`, initial and incremental from the event log, long-polls.
//! - `rooms`: conversations as rooms: createRoom/join/leave, send, typing, receipts, state,
//!   members, `/messages`.
//! - `kinds`: groups and community rooms as rooms (their state, timeline and operations).
//! - `account`: discovery, capabilities, filters, account data, profiles, push rules, devices.
//! - `events`: the mapping of conversations and event-log entries to Matrix events.
//! - `media`: the media repository over Session attachments (`mxc://` both ways).
//! - `ids`: Matrix ids for sessiond things, made and read back without storage.
//! - `state`: what is kept in memory per identity (live subscription, typing, filters).
//! - [`err`](MatrixError): errors and their one mapping to Matrix `errcode`s.

mod account;
mod auth;
mod config;
mod err;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod ids;
mod ignored;
mod interact;
mod kinds;
mod media;
mod rooms;
mod router;
mod state;
mod sync;

use std::sync::Arc;

pub use config::MatrixConfig;
pub use err::{ErrorParts, MatrixError, ServeError};

/// Serves the Matrix client-server API on `listener` until `shutdown` resolves, calling the
/// daemon through `api` with each client's own token (a channel all HTTP connections share, or
/// a [`sessiond_api::client::Connector`] that gives each its own). At shutdown, long-polling
/// `/sync`s answer at once, requests in flight finish (for up to 5 s) and connections close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MatrixConfig,
    api: impl Into<sessiond_api::client::Connector>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_counted(listener, config, api, shutdown, Arc::default()).await
}

/// [`serve`], keeping the number of open connections in `open` (for the daemon's metrics).
pub async fn serve_counted(
    listener: tokio::net::TcpListener,
    config: MatrixConfig,
    api: impl Into<sessiond_api::client::Connector>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    open: Arc<std::sync::atomic::AtomicUsize>,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(state::Shared::new(config, api.into(), stop_rx));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, server_name = %shared.config.server_name, "matrix: listening");
    }
    http::run(listener, shared, stop_tx, shutdown, open).await
}
