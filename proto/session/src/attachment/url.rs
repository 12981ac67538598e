//! File server URLs of attachments: `http://filev2.getsession.org/file/<id>` with an optional
//! fragment of `&`-separated parts (spec §7.3).
//!
//! Fragment parts read: `p=<64 hex>` (the Ed25519 key of a non-default file server), `d` or
//! `d=` with any value (stream encryption; desktop writes `d=`, libsession `d`), `e=<hex>` (a
//! profile-picture key). Unknown parts are ignored. Written form: `#p=…&d`, each part only
//! when needed. The legacy `/files/<id>` path is read too and written back as it came.

use std::fmt;
use std::str::FromStr;

use crate::err::AttachmentError;
use crate::keys::ed25519_pk_to_x25519;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlScheme {
    /// Plain HTTP (the production file server; onion requests encrypt end to end anyway).
    Http,
    /// HTTPS.
    Https,
}

impl UrlScheme {
    /// `http` / `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlScheme::Http => "http",
            UrlScheme::Https => "https",
        }
    }
    /// 80 / 443.
    pub fn default_port(self) -> u16 {
        match self {
            UrlScheme::Http => 80,
            UrlScheme::Https => 443,
        }
    }
}

/// A parsed attachment URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileUrl {
    /// `http` or `https`.
    pub scheme: UrlScheme,
    /// Host name or IP (IPv6 without brackets), lower-cased.
    pub host: String,
    /// Explicit port, if the URL names one.
    pub port: Option<u16>,
    /// The file ID: a decimal number or a 44-character base64url string; opaque otherwise.
    pub id: String,
    /// Whether the path is the legacy `/files/<id>`.
    pub legacy_path: bool,
    /// The server's Ed25519 key from `p=`, when given.
    pub server_ed25519: Option<[u8; 32]>,
    /// The `d` marker: the blob uses the stream scheme.
    pub stream: bool,
    /// The `e=` value (a profile picture's key, hex), kept as text.
    pub profile_key: Option<String>,
}

const MAX_URL_LEN: usize = 2048;

impl FileUrl {
    /// A URL for `id` on a server at `base` (`http(s)://host[:port]`), with `p=` only when
    /// the server key is given, and the `d` marker for the stream scheme.
    pub fn new(
        base: &str,
        id: &str,
        server_ed25519: Option<[u8; 32]>,
        stream: bool,
    ) -> Result<FileUrl, AttachmentError> {
        let mut url: FileUrl = format!("{}/file/{id}", base.trim_end_matches('/')).parse()?;
        url.server_ed25519 = server_ed25519;
        url.stream = stream;
        Ok(url)
    }

    /// The HTTP path on the server: `/file/<id>` (or `/files/<id>`).
    pub fn endpoint(&self) -> String {
        let dir = if self.legacy_path { "files" } else { "file" };
        format!("/{dir}/{}", self.id)
    }

    /// The port to connect to (the explicit one or the scheme's default).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// `scheme://host[:port]`, the server's base URL.
    pub fn base(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{}://{host}:{p}", self.scheme.as_str()),
            None => format!("{}://{host}", self.scheme.as_str()),
        }
    }

    /// `AttachmentPointer.deprecated_id`: the ID as a number when it is one, else 0.
    pub fn deprecated_id(&self) -> u64 {
        if self.id.bytes().all(|b| b.is_ascii_digit()) {
            self.id.parse().unwrap_or(0)
        } else {
            0
        }
    }

    /// The X25519 key to encrypt the onion request's last layer to: from `p=` (converted
    /// from Ed25519) or, without one, `default_x25519` (the configured server's key).
    pub fn server_x25519(&self, default_x25519: &[u8; 32]) -> Result<[u8; 32], AttachmentError> {
        match &self.server_ed25519 {
            Some(ed) => ed25519_pk_to_x25519(ed).map_err(AttachmentError::BadServerKey),
            None => Ok(*default_x25519),
        }
    }
}

impl fmt::Display for FileUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.base(), self.endpoint())?;
        let mut sep = '#';
        if let Some(k) = &self.server_ed25519 {
            write!(f, "{sep}p={}", hex::encode(k))?;
            sep = '&';
        }
        if self.stream {
            write!(f, "{sep}d")?;
            sep = '&';
        }
        if let Some(e) = &self.profile_key {
            write!(f, "{sep}e={e}")?;
        }
        Ok(())
    }
}

impl FromStr for FileUrl {
    type Err = AttachmentError;

    fn from_str(s: &str) -> Result<FileUrl, AttachmentError> {
        if s.len() > MAX_URL_LEN {
            return Err(AttachmentError::BadUrl("longer than 2048 characters"));
        }
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(rest, "http://") {
            (UrlScheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(rest, "https://") {
            (UrlScheme::Https, r)
        } else {
            return Err(AttachmentError::BadUrl("not an http:// or https:// URL"));
        };
        if rest.contains('?') {
            return Err(AttachmentError::BadUrl("a file URL has no query"));
        }
        let (authority, path) = rest
            .split_once('/')
            .ok_or(AttachmentError::BadUrl("no path"))?;
        let (host, port) = split_host_port(authority)?;
        let (legacy_path, id) = match path.split_once('/') {
            Some(("file", id)) => (false, id),
            Some(("files", id)) => (true, id),
            _ => return Err(AttachmentError::BadUrl("the path is not /file/<id>")),
        };
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AttachmentError::BadUrl(
                "the file ID must be 1-128 characters of A-Z a-z 0-9 - _",
            ));
        }
        let mut url = FileUrl {
            scheme,
            host,
            port,
            id: id.to_string(),
            legacy_path,
            server_ed25519: None,
            stream: false,
            profile_key: None,
        };
        for part in fragment.unwrap_or("").split('&') {
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            match (k, v) {
                ("d", _) => url.stream = true,
                ("p", Some(v)) => {
                    let mut key = [0u8; 32];
                    hex::decode_to_slice(v, &mut key)
                        .map_err(|_| AttachmentError::BadUrl("p= is not 64 hex digits"))?;
                    url.server_ed25519 = Some(key);
                }
                ("e", Some(v)) if !v.is_empty() => {
                    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(AttachmentError::BadUrl("e= is not hex"));
                    }
                    url.profile_key = Some(v.to_ascii_lowercase());
                }
                _ => {}
            }
        }
        Ok(url)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), AttachmentError> {
    if authority.contains('@') {
        return Err(AttachmentError::BadUrl("user info is not allowed"));
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or(AttachmentError::BadUrl("unclosed [ in the host"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AttachmentError::BadUrl("bad IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(AttachmentError::BadUrl("junk after the IPv6 address")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if !host.contains(':')
        && (host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return Err(AttachmentError::BadUrl("bad host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(AttachmentError::BadUrl("bad port"))?,
        ),
    };
    Ok((host.to_ascii_lowercase(), port))
}
