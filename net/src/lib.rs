//! session-net: network I/O for the Session protocol: snode pool, swarm cache, onion paths,
//! the HTTPS transport.
//!
//! It knows nothing of gRPC, redb or the daemon: persistence is behind [`PoolStore`].
//!
//! [`NetClient`] is the handle: it sends storage RPCs through 3-hop onion paths
//! (`store`, `retrieve`, any request to a snode), keeps a snode pool (from seeds, refreshed
//! from snodes, persisted through a [`PoolStore`]), a swarm cache per account (corrected by
//! 421 replies), two paths with strike counting and rebuilds, and the network clock offset.
//! It reports its state as a [`NetStatus`] and a stream of [`NetEvent`]s.
//!
//! # Layout
//! - [`client`]: [`NetClient`], the operations and the request flow.
//! - [`config`]: [`NetConfig`], the seeds and the path, strike, timeout and retry policy.
//! - [`err`]: [`NetError`] and [`TransportError`], each with a kind and a retry hint.
//! - [`events`]: [`NetStatus`] and [`NetEvent`].
//! - [`pool`]: the snode pool, node-list parsing and intersection, [`PoolStore`].
//! - [`path`]: onion paths and how their hops are chosen.
//! - [`state`]: the locked state: strikes, drops, swarm cache.
//! - [`clock`]: the network clock offset.
//! - [`snode`]: [`Snode`], a node's keys and address.
//! - [`transport`]: the [`Transport`] trait (POST a body, get status + body).
//! - [`https`]: [`HttpsTransport`], the real transport (rustls, kept-alive connections).

pub mod client;
mod clock;
pub mod config;
pub mod err;
pub mod events;
pub mod https;
mod path;
pub mod pool;
pub mod snode;
mod state;
pub mod transport;

pub use client::{NetClient, RpcReply, StoreOutcome};
pub use config::NetConfig;
pub use err::{NetError, TransportError};
pub use events::{HopStatus, NetEvent, NetStatus, PathStatus, PoolSource, EVENT_CAPACITY};
pub use https::HttpsTransport;
pub use pool::{MemoryPoolStore, PoolSnapshot, PoolStore, PoolStoreError};
pub use snode::Snode;
pub use transport::{HttpReply, HttpTarget, Transport};
