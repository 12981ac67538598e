//! Errors of the IRC adapter, and the one place a daemon error becomes words for an IRC user.

use tonic::{Code, Status};

/// Why the IRC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum IrcError {
    /// `server_name` must be one word of printable ASCII (it is the prefix of every reply).
    #[error("irc.server_name {0:?} must be one word of printable ASCII")]
    BadServerName(String),
    /// `max_connections`, `sendq_lines` or `flood_burst` is zero.
    #[error("irc.{0} must be at least 1")]
    ZeroLimit(&'static str),
}

/// A daemon error as a sentence for the person at the IRC client (the gRPC status codes are the
/// daemon's error kinds, so this is the single mapping from kinds to IRC words).
pub fn status_text(status: &Status) -> String {
    let what = match status.code() {
        Code::InvalidArgument => "not accepted",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "not allowed with this login",
        Code::Unauthenticated => "your token is no longer valid",
        Code::Unavailable => "the daemon cannot do that right now",
        Code::Unimplemented => "this daemon does not support that yet",
        Code::ResourceExhausted => "the daemon is busy",
        Code::DeadlineExceeded => "the daemon did not answer in time",
        _ => "the daemon failed",
    };
    let detail = status.message().trim();
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}
