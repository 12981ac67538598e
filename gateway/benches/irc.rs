//! IRC adapter benchmark (work in progress).
fn main() {}
