//! The seam between the network client and the wire: POST a body to a snode or seed, get the
//! status and body back. [`super::https::HttpsTransport`] is the real one.

use std::fmt;
use std::future::Future;
use std::net::SocketAddrV4;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::err::TransportError;
use super::snode::Snode;

/// A boxed future, so [`Transport`] can be used as `dyn Transport`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a request goes: scheme, host, port and path.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// HTTPS (true) or plain HTTP.
    pub tls: bool,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
}

impl HttpTarget {
    /// `https://<snode ip>:<port><path>`.
    pub fn snode(node: &Snode, path: &str) -> HttpTarget {
        HttpTarget::addr(node.addr(), path)
    }

    /// `https://<addr><path>`.
    pub fn addr(addr: SocketAddrV4, path: &str) -> HttpTarget {
        HttpTarget {
            tls: true,
            host: addr.ip().to_string(),
            port: addr.port(),
            path: path.to_string(),
        }
    }

    /// Parses a base URL `http(s)://host[:port][/base]` and appends `path` to its path.
    pub fn parse_url(url: &str, path: &str) -> Result<HttpTarget, TransportError> {
        let bad = |reason| TransportError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("scheme must be http or https"));
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || authority.starts_with('[') {
            return Err(bad("expected host[:port] (IPv4 or a name)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() || port == 0 {
            return Err(bad("empty host or port 0"));
        }
        let base = base.trim_end_matches('/');
        Ok(HttpTarget {
            tls,
            host: host.to_string(),
            port,
            path: format!("{base}{path}"),
        })
    }

    /// `host:port`, for error messages.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// An HTTP reply: status and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// POSTs bodies to snodes and seeds.
///
/// Implementations bound the exchange by `timeout`, refuse bodies over their size limit and
/// report failures as [`TransportError`]; they never judge the status code.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// POSTs `body` (JSON or binary) to `target` and returns the reply.
    fn post<'a>(
        &'a self,
        target: &'a HttpTarget,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_urls() {
        let t = HttpTarget::parse_url("https://seed1.getsession.org:4443/", "/json_rpc")
            .expect("valid");
        assert!(t.tls);
        assert_eq!(t.host, "seed1.getsession.org");
        assert_eq!(t.port, 4443);
        assert_eq!(t.path, "/json_rpc");
        let t = HttpTarget::parse_url("http://127.0.0.1:38157", "/json_rpc").expect("valid");
        assert!(!t.tls);
        assert_eq!(t.authority(), "127.0.0.1:38157");
        let t = HttpTarget::parse_url("https://h/base/", "/x").expect("valid");
        assert_eq!((t.port, t.path.as_str()), (443, "/base/x"));
        for bad in [
            "ftp://x:1",
            "https://",
            "https://:12",
            "https://h:0",
            "https://h:99999",
            "https://u@h:1",
            "https://[::1]:1",
            "seed1",
        ] {
            assert!(HttpTarget::parse_url(bad, "/").is_err(), "{bad}");
        }
    }
}
