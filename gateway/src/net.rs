//! The network client: snode pool, swarm cache, onion paths, HTTPS transport.
