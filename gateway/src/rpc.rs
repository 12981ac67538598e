//! The gRPC services of `sessiond.v1`.
