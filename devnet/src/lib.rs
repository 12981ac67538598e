//! A local Session network (devnet): snodes on 127.0.0.1 that speak the real client-facing
//! protocol (HTTPS `/storage_rpc/v1`, `/onion_req/v2`, seed `/json_rpc`), in swarms, with
//! replication, fault injection and an observable request log per node.
//!
//! ```no_run
//! # async fn demo() -> Result<(), session_devnet::DevnetError> {
//! let devnet = session_devnet::Devnet::start(session_devnet::DevnetConfig {
//!     nodes: 6, swarm_size: 3, ..Default::default()
//! }).await?;
//! println!("seed: {}", devnet.seeds()[0]);
//! devnet.node(2).stop().await;
//! devnet.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`community`]: a community server (SOGS API subset) on loopback HTTP and onion v4.
//! - [`devnet`]: [`Devnet`], [`DevnetConfig`], [`NodeHandle`], `devnet.json` ([`Manifest`]).
//! - [`node`]: one snode's HTTPS routes, [`Event`] log and fault knobs.
//! - [`rpc`]: the storage RPC methods, replication to swarm peers, the seed's `/json_rpc`.
//! - [`onion`]: onion layers at a node: final hop, proxy, relay.
//! - [`store`]: a node's messages (memory, optionally redb).
//! - `replication`: forwarding to swarm peers, coalesced per peer.
//! - `revocations`: a node's subaccount revocation lists.
//! - [`topology`]: node keys, swarms and the JSON that describes them.
//! - [`file_server`]: [`FileServer`], the file server's HTTP API (uploads, downloads, expiry),
//!   direct and through onion requests.
//! - [`https`]: the node TLS config (the client side is session-net's transport).
//! - [`err`]: [`DevnetError`], startup and transport errors.
//!
//! Every wire format and crypto step (storage-RPC bodies and signatures, message hashes, swarm
//! math, onion layers) is [`session_proto`]'s; the devnet holds only the snode behaviour.

pub mod community;
pub mod devnet;
pub mod err;
pub mod file_server;
pub mod https;
pub mod node;
pub mod onion;
mod replication;
mod revocations;
pub mod rpc;
pub mod store;
pub mod topology;

pub use community::{CommunityConfig, CommunityServer, RoomSpec};
pub use devnet::{Devnet, DevnetConfig, Manifest, ManifestNode, ManifestServer, NodeHandle};
pub use err::DevnetError;
pub use file_server::{FileFault, FileServer, FileServerConfig};
pub use node::{Event, Origin};
