//! sessiond-matrix: a Matrix client-server API subset (federation off) that is a client of the
//! sessiond gRPC API.
//!
//! The daemon binds the listener and hands it to [`serve`] with a gRPC channel to itself; every
//! Matrix access token stands for a sessiond token, and all calls carry it, so the daemon's own
//! authorization decides which identity a client reaches.

mod config;

pub use config::MatrixConfig;
