//! session-net: network I/O for the Session protocol: snode pool, swarm cache, onion paths,
//! the HTTPS transport.
//!
//! It knows nothing of gRPC, redb or the daemon: persistence is behind [`PoolStore`].
//!
//! [`NetClient`] is the handle. Every request to an account's swarm or to a server crosses a
//! 3-hop onion path; the client keeps a snode pool (from seeds, refreshed from snodes,
//! persisted through a [`PoolStore`]), a swarm cache per account (corrected by every 421), two
//! paths with strike counting and rebuilds, and the network clock offset. It reports its state
//! as a [`NetStatus`] and a stream of [`NetEvent`]s (including one per request attempt, for
//! metrics).
//!
//! What it sends:
//! - storage operations on any namespace with the right [`Auth`] (own key, group admin key,
//!   group subaccount): [`NetClient::store`], [`retrieve`](NetClient::retrieve),
//!   [`delete`](NetClient::delete), [`expire`](NetClient::expire), any [`Op`] with
//!   [`request`](NetClient::request);
//! - several ops in one request: [`NetClient::batch`] and [`NetClient::sequence`], a result
//!   per op;
//! - member-sticky polling with a [`Mailbox`]: [`NetClient::poll`] (one namespace, or several
//!   in one batch) — nothing skipped or repeated when the member changes;
//! - onion requests v4 to servers: [`NetClient::server_request`] with a [`Server`] and a
//!   [`ServerRequest`].
//!
//! ```no_run
//! # async fn demo(seeds: Vec<String>, key: ed25519_dalek::SigningKey,
//! #     account: session_proto::storage_rpc::UserPubkey) -> Result<(), session_net::NetError> {
//! use std::sync::Arc;
//! use session_net::{Auth, Mailbox, MemoryPoolStore, NetClient, NetConfig};
//!
//! let net = NetClient::with_https(NetConfig::devnet(seeds), Arc::new(MemoryPoolStore::new()));
//! let auth = Auth::Account(key);
//! let mut mailbox = Mailbox::new(account);
//! // The account's inbox and its four config namespaces in one round trip.
//! let poll = net.poll(&mut mailbox, &auth, &[0, 2, 3, 4, 5]).await?;
//! for ns in &poll.namespaces {
//!     if let Ok(fetched) = &ns.result {
//!         println!("ns {}: {} new", ns.namespace, fetched.messages.len());
//!     }
//! }
//! mailbox.advance(&poll);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`NetClient`], one file per job (pool, paths, swarms, sending, ops, polling,
//!   servers).
//! - [`auth`]: [`Auth`] and [`Signer`]: how requests are signed.
//! - [`storage`]: [`Op`] and [`OpOutcome`]: typed storage operations and their checked results.
//! - [`mailbox`]: [`Mailbox`]: member-sticky cursors.
//! - [`server`]: [`Server`], v4 requests and responses.
//! - [`retry`]: [`RetryPolicy`]: the one retry policy (budget, backoff with jitter).
//! - [`config`]: [`NetConfig`], the seeds and the path, strike, timeout and retry settings.
//! - [`err`]: [`NetError`] and [`TransportError`], each with a kind and a retry hint.
//! - [`events`]: [`NetStatus`] and [`NetEvent`].
//! - [`pool`]: the snode pool, node-list parsing and intersection, [`PoolStore`].
//! - [`path`]: onion paths and how their hops are chosen.
//! - [`state`]: the locked state: strikes, drops, swarm cache.
//! - [`clock`]: the network clock offset.
//! - [`snode`]: [`Snode`], a node's keys and address.
//! - [`transport`]: the [`Transport`] trait (POST a body, get status + body).
//! - [`https`]: [`HttpsTransport`], the one HTTPS transport of the tree and its certificate
//!   policy (the devnet's nodes use it too).

pub mod auth;
pub mod client;
mod clock;
pub mod config;
pub mod err;
pub mod events;
pub mod https;
pub mod mailbox;
mod path;
pub mod pool;
pub mod retry;
pub mod server;
pub mod snode;
mod state;
pub mod storage;
pub mod transport;

pub use auth::{Auth, Signer};
pub use client::{BodyWriter, NetClient, RpcReply, TRANSFER_ALLOWANCE_MS_PER_MIB};
pub use config::NetConfig;
pub use err::{NetError, TransportError};
pub use events::{
    HopStatus, NetEvent, NetStatus, PathStatus, PoolSource, RequestOutcome, RequestTarget,
    EVENT_CAPACITY,
};
pub use https::HttpsTransport;
pub use mailbox::{Fetched, Mailbox, NamespacePoll, Poll};
pub use pool::{MemoryPoolStore, PoolSnapshot, PoolStore, PoolStoreError};
pub use retry::RetryPolicy;
pub use server::{Server, ServerRequest, ServerResponse};
pub use snode::Snode;
pub use storage::{DeleteOutcome, ExpireOutcome, Op, OpOutcome, StoreOutcome};
pub use transport::{HttpReply, HttpTarget, Transport};
