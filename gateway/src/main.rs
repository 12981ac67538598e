//! The `sessiond` binary.
fn main() {}
