//! Errors of the network client: what failed, at which snode, its kind, and whether to retry.

use session_proto::err::{ErrorKind, HasKind};

/// Why an HTTP exchange with a snode or seed failed, before any reply could be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL could not be used (not `http(s)://host:port/…`).
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("{target}: host does not resolve")]
    Resolve {
        /// `host:port`.
        target: String,
    },
    /// TCP or TLS connection failed.
    #[error("{target}: cannot connect: {reason}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The underlying error, as text.
        reason: String,
    },
    /// The exchange did not finish within its timeout.
    #[error("{target}: no reply within {timeout_ms} ms")]
    Timeout {
        /// `host:port`.
        target: String,
        /// The timeout that ran out.
        timeout_ms: u64,
    },
    /// The HTTP exchange failed after connecting (reset, bad HTTP).
    #[error("{target}: HTTP exchange failed: {reason}")]
    Http {
        /// `host:port`.
        target: String,
        /// The underlying error, as text.
        reason: String,
    },
    /// The reply body was larger than the configured limit.
    #[error("{target}: reply body larger than {limit} bytes")]
    BodyTooLarge {
        /// `host:port`.
        target: String,
        /// The limit in bytes.
        limit: usize,
    },
}

impl HasKind for TransportError {
    fn kind(&self) -> ErrorKind {
        match self {
            TransportError::BadUrl { .. } => ErrorKind::InvalidInput,
            TransportError::Resolve { .. } | TransportError::Connect { .. } => {
                ErrorKind::NetworkUnreachable
            }
            TransportError::Timeout { .. } => ErrorKind::Timeout,
            TransportError::Http { .. } | TransportError::BodyTooLarge { .. } => {
                ErrorKind::ProtocolViolation
            }
        }
    }
}

/// Why a network-client operation failed.
///
/// Snode identities in messages are short Ed25519 prefixes (public keys, not secrets); account
/// ids never appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// No seed answered with a usable node list.
    #[error("no seed answered with a usable node list (tried {tried}): {last}")]
    SeedsUnreachable {
        /// How many seed URLs were tried.
        tried: usize,
        /// The last failure, as text.
        last: String,
    },
    /// The snode pool is too small to build paths.
    #[error("snode pool too small: {have} usable nodes, need {need}")]
    PoolTooSmall {
        /// Usable nodes.
        have: usize,
        /// Nodes needed.
        need: usize,
    },
    /// No onion path could be built or chosen.
    #[error("no onion path available: {reason}")]
    NoPath {
        /// Why.
        reason: String,
    },
    /// Talking to a snode failed at the transport level.
    #[error("snode {node}: {source}")]
    Transport {
        /// Short Ed25519 hex of the snode.
        node: String,
        /// What failed.
        #[source]
        source: TransportError,
    },
    /// The onion path failed before reaching the destination (a non-200 from the guard).
    #[error("path via guard {guard} failed with HTTP {status}: {reason}")]
    PathFailed {
        /// Short Ed25519 hex of the guard.
        guard: String,
        /// HTTP status the guard returned.
        status: u16,
        /// The (plain-text, truncated) body.
        reason: String,
    },
    /// A reply could not be decoded (bad base64, failed decryption, garbage JSON, wrong shape).
    #[error("snode {node} sent a bad reply: {reason}")]
    BadReply {
        /// Short Ed25519 hex of the snode judged responsible.
        node: String,
        /// What was wrong.
        reason: String,
    },
    /// The destination said our clock is off (406/425) even after correcting for its time.
    #[error("snode {node} rejected our timestamp (HTTP {status}): clock out of sync")]
    ClockSkew {
        /// Short Ed25519 hex of the destination.
        node: String,
        /// 406 or 425.
        status: u16,
    },
    /// The destination refused the request (400, 401, 403, 404 …).
    #[error("snode {node} rejected the request (HTTP {status}): {reason}")]
    Rejected {
        /// Short Ed25519 hex of the destination.
        node: String,
        /// HTTP status.
        status: u16,
        /// The reply body, truncated.
        reason: String,
    },
    /// The destination is busy, rate limiting or failing (429, 5xx).
    #[error("snode {node} could not serve the request (HTTP {status}): {reason}")]
    Busy {
        /// Short Ed25519 hex of the destination.
        node: String,
        /// HTTP status.
        status: u16,
        /// The reply body, truncated.
        reason: String,
    },
    /// The swarm kept redirecting (421) after the allowed retry.
    #[error("swarm redirect (421) repeated after refreshing the swarm")]
    SwarmRedirectLoop,
    /// The account's swarm is unknown or has no usable member.
    #[error("no usable swarm member for the account: {reason}")]
    NoSwarm {
        /// Why.
        reason: String,
    },
    /// Building the onion request failed (bad destination key, …).
    #[error("cannot build onion request: {reason}")]
    Onion {
        /// Why.
        reason: String,
    },
    /// The client is shutting down.
    #[error("network client is shut down")]
    Shutdown,
}

impl NetError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::SeedsUnreachable { .. }
            | NetError::PoolTooSmall { .. }
            | NetError::NoPath { .. }
            | NetError::Transport { .. }
            | NetError::PathFailed { .. }
            | NetError::BadReply { .. }
            | NetError::Busy { .. }
            | NetError::SwarmRedirectLoop
            | NetError::NoSwarm { .. } => true,
            NetError::ClockSkew { .. }
            | NetError::Rejected { .. }
            | NetError::Onion { .. }
            | NetError::Shutdown => false,
        }
    }
}

impl HasKind for NetError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetError::SeedsUnreachable { .. }
            | NetError::PoolTooSmall { .. }
            | NetError::NoPath { .. }
            | NetError::NoSwarm { .. }
            | NetError::Shutdown => ErrorKind::NetworkUnreachable,
            NetError::Transport { source, .. } => source.kind(),
            NetError::PathFailed { status, .. } => {
                if *status == 504 {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::NetworkUnreachable
                }
            }
            NetError::BadReply { .. } | NetError::SwarmRedirectLoop => ErrorKind::ProtocolViolation,
            NetError::ClockSkew { .. } => ErrorKind::ClockSkew,
            NetError::Rejected { .. } => ErrorKind::Rejected,
            NetError::Busy { .. } => ErrorKind::Busy,
            NetError::Onion { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// At most this many characters of a peer's error body are kept in an error.
pub(crate) const MAX_REASON_CHARS: usize = 200;

/// A peer's body as short, printable text for an error message.
pub(crate) fn reason_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retry() {
        let e = NetError::ClockSkew {
            node: "abcd".into(),
            status: 406,
        };
        assert_eq!(e.kind(), ErrorKind::ClockSkew);
        assert!(!e.is_retryable());
        let e = NetError::Transport {
            node: "abcd".into(),
            source: TransportError::Timeout {
                target: "127.0.0.1:1".into(),
                timeout_ms: 5,
            },
        };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_retryable());
        let e = NetError::SeedsUnreachable {
            tried: 3,
            last: "x".into(),
        };
        assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
    }

    #[test]
    fn reason_text_is_bounded_and_printable() {
        let body = vec![b'\n'; 10_000];
        let t = reason_text(&body);
        assert_eq!(t.chars().count(), MAX_REASON_CHARS);
        assert!(t.chars().all(|c| c == ' '));
        assert_eq!(reason_text(&[0xff, b'a']), "\u{fffd}a");
    }
}
