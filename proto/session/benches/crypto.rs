//! Benchmarks of the protocol crate against the bare primitives (filled in with the crypto work).
fn main() {}
