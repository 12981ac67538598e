//! Servers reached by onion requests v4 (network.md §5.3, §5.5): community servers and the file
//! server. The last relay of a path POSTs the request to `protocol://host:port/oxen/v4/lsrpc`;
//! only the server, holding the X25519 key, can read it.

use std::fmt;

use session_proto::onion::{PeerKey, ServerDestination};

use super::err::NetError;
use super::transport::HttpTarget;

pub use session_proto::bencode::{V4Request as ServerRequest, V4Response as ServerResponse};

/// The endpoint servers take onion requests v4 on.
pub const V4_TARGET: &str = "/oxen/v4/lsrpc";

/// A server: its base URL and its X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    target: HttpTarget,
    x25519: [u8; 32],
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Server({})", self.authority())
    }
}

impl Server {
    /// A server at `base_url` (`http(s)://host[:port]`, as community URLs give it) with X25519
    /// key `x25519`. An unusable URL is [`NetError::BadRequest`].
    pub fn new(base_url: &str, x25519: [u8; 32]) -> Result<Server, NetError> {
        let target = HttpTarget::parse_url(base_url, "").map_err(|e| NetError::BadRequest {
            reason: e.to_string(),
        })?;
        Ok(Server { target, x25519 })
    }

    /// `host:port`, for logs and errors.
    pub fn authority(&self) -> String {
        self.target.authority()
    }

    /// The X25519 key.
    pub fn x25519(&self) -> &[u8; 32] {
        &self.x25519
    }

    /// Where the last relay sends the request.
    pub(crate) fn destination(&self) -> ServerDestination {
        ServerDestination {
            key: PeerKey::new(self.x25519),
            host: self.target.host.clone(),
            target: V4_TARGET.to_owned(),
            method: "POST".to_owned(),
            protocol: if self.target.tls { "https" } else { "http" }.to_owned(),
            port: Some(self.target.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_from_urls() {
        let s = Server::new("http://127.0.0.1:8080", [1; 32]).expect("valid");
        let d = s.destination();
        assert_eq!(
            (d.host.as_str(), d.protocol.as_str(), d.port),
            ("127.0.0.1", "http", Some(8080))
        );
        assert_eq!(d.target, V4_TARGET);
        let s = Server::new("https://open.getsession.org", [1; 32]).expect("valid");
        assert_eq!(s.destination().port, Some(443));
        assert_eq!(s.authority(), "open.getsession.org:443");
        assert!(Server::new("open.getsession.org", [1; 32]).is_err());
    }
}
