//! Community URLs (spec §1.1): `SCHEME://HOST[:PORT]/ROOM?public_key=PK` and the newer
//! `…/r/ROOM?…` form.
//!
//! - SCHEME is `http` or `https` (any case); HOST is a DNS name, an IPv4 address or a bracketed
//!   IPv6 address; PORT is optional and dropped from the canonical form when it is the scheme's
//!   default (80, 443).
//! - ROOM is the room token, 1-64 characters of `[A-Za-z0-9_-]`; its spelling is kept for
//!   display and lower-cased for the canonical form.
//! - PK is the server's X25519 key: 64 hex characters, 43/44 base64 characters (either
//!   alphabet) or 52 z-base-32 characters.
//!
//! The canonical base URL (`https://example.com`, lower-case, no default port, no trailing `/`)
//! is what the UserGroups config keys communities by.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use crate::err::CommunityError;

/// Longest room token (libsession `ROOM_MAX_LENGTH`, pysogs `[\w-]{1,64}`).
pub const ROOM_MAX_LEN: usize = 64;
/// Longest canonical base URL (libsession `BASE_URL_MAX_LENGTH`).
pub const BASE_URL_MAX_LEN: usize = 267;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain HTTP (the onion layer still encrypts end to end to the server key).
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A community server: scheme, host and port, in canonical form.
///
/// `Display` is the canonical base URL, e.g. `http://127.0.0.1:8080` or `https://example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerUrl {
    scheme: Scheme,
    /// Lower-case host; IPv6 addresses keep their brackets.
    host: String,
    /// `None` when the port is the scheme's default.
    port: Option<u16>,
}

impl ServerUrl {
    /// A server URL from its parts (the host is checked and lower-cased).
    pub fn new(scheme: Scheme, host: &str, port: u16) -> Result<ServerUrl, CommunityError> {
        let host = parse_host(host)?;
        let port = (port != scheme.default_port()).then_some(port);
        let url = ServerUrl { scheme, host, port };
        if url.to_string().len() > BASE_URL_MAX_LEN {
            return Err(CommunityError::BadUrl(
                "base URL longer than 267 characters",
            ));
        }
        Ok(url)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The host as written in the URL (lower-case; IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The host as an onion request's `host` field wants it (IPv6 without brackets).
    pub fn host_unbracketed(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }
    /// The port only if it is not the scheme's default (what the URL shows).
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl FromStr for ServerUrl {
    type Err = CommunityError;

    /// Parses a base URL `SCHEME://HOST[:PORT]` with an optional trailing `/`.
    fn from_str(s: &str) -> Result<ServerUrl, CommunityError> {
        let (server, path) = split_server(s.trim())?;
        if !(path.is_empty() || path == "/") {
            return Err(CommunityError::BadUrl("a base URL has no path"));
        }
        Ok(server)
    }
}

/// A community room: server, room token and the server's X25519 key.
///
/// `Display` is the full URL clients share:
/// `http://host:port/room?public_key=<64 hex>` (the room as originally spelt).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommunityUrl {
    server: ServerUrl,
    room: String,
    pubkey: [u8; 32],
}

impl CommunityUrl {
    /// A community from its parts (the room token is checked).
    pub fn new(server: ServerUrl, room: &str, pubkey: [u8; 32]) -> Result<Self, CommunityError> {
        check_room_token(room)?;
        Ok(CommunityUrl {
            server,
            room: room.to_owned(),
            pubkey,
        })
    }
    /// The server.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }
    /// The room token as written (for display and for request paths).
    pub fn room(&self) -> &str {
        &self.room
    }
    /// The room token lower-cased (the key in the UserGroups config).
    pub fn canonical_room(&self) -> String {
        self.room.to_ascii_lowercase()
    }
    /// The server's X25519 public key.
    pub fn server_pubkey(&self) -> &[u8; 32] {
        &self.pubkey
    }
}

impl fmt::Display for CommunityUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}?public_key={}",
            self.server,
            self.room,
            hex::encode(self.pubkey)
        )
    }
}

impl FromStr for CommunityUrl {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<CommunityUrl, CommunityError> {
        let s = s.trim();
        let Some((before, query)) = s.split_once('?') else {
            return Err(CommunityError::BadServerKey(
                "missing ?public_key=<server key>",
            ));
        };
        let pubkey = parse_query(query)?;
        let (server, path) = split_server(before)?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let room = path
            .strip_prefix("/r/")
            .or_else(|| path.strip_prefix('/'))
            .filter(|r| !r.is_empty())
            .ok_or(CommunityError::BadUrl("missing the room after the host"))?;
        if room.contains('/') {
            return Err(CommunityError::BadUrl(
                "the path must be /ROOM or /r/ROOM, nothing more",
            ));
        }
        CommunityUrl::new(server, room, pubkey)
    }
}

/// Checks a room token: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn check_room_token(room: &str) -> Result<(), CommunityError> {
    let ok = !room.is_empty()
        && room.len() <= ROOM_MAX_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CommunityError::BadRoomToken)
    }
}

/// Splits `SCHEME://HOST[:PORT]PATH` into the server and the path (empty or starting `/`).
fn split_server(s: &str) -> Result<(ServerUrl, &str), CommunityError> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or(CommunityError::BadUrl("missing http:// or https://"))?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err(CommunityError::BadUrl("the scheme must be http or https"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(CommunityError::BadUrl("user names in URLs are not allowed"));
    }
    // The port is after the last ':' unless that ':' is inside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CommunityError::BadUrl("the port must be a number 1-65535"));
            }
            let port: u32 = port
                .parse()
                .map_err(|_| CommunityError::BadUrl("the port must be a number 1-65535"))?;
            let port = u16::try_from(port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or(CommunityError::BadUrl("the port must be a number 1-65535"))?;
            (&authority[..i], port)
        }
        _ => (authority, scheme.default_port()),
    };
    Ok((ServerUrl::new(scheme, host, port)?, path))
}

/// Lower-cases and checks a host: a DNS name or IPv4 address of `[a-z0-9.-]`, or `[IPv6]`.
fn parse_host(host: &str) -> Result<String, CommunityError> {
    if host.is_empty() {
        return Err(CommunityError::BadUrl("missing the host"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(host.to_ascii_lowercase()),
            Err(_) => Err(CommunityError::BadUrl("invalid IPv6 address")),
        };
    }
    let ok = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-'])
        && !host.contains("..");
    if ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(CommunityError::BadUrl(
            "the host must be a DNS name, an IPv4 address or [IPv6]",
        ))
    }
}

/// Finds `public_key` in the query string and decodes it.
fn parse_query(query: &str) -> Result<[u8; 32], CommunityError> {
    let mut found = None;
    for param in query.split('&') {
        match param.split_once('=') {
            Some(("public_key", v)) => {
                if found.is_some() {
                    return Err(CommunityError::BadServerKey("public_key given twice"));
                }
                found = Some(v);
            }
            _ => {
                return Err(CommunityError::BadUrl(
                    "the only query parameter allowed is public_key",
                ))
            }
        }
    }
    parse_server_pubkey(found.ok_or(CommunityError::BadServerKey(
        "missing ?public_key=<server key>",
    ))?)
}

/// Decodes a server key written as 64 hex, 43/44 base64 (standard or URL-safe alphabet) or 52
/// z-base-32 characters.
pub fn parse_server_pubkey(s: &str) -> Result<[u8; 32], CommunityError> {
    let mut out = [0u8; 32];
    match s.len() {
        64 => hex::decode_to_slice(s, &mut out)
            .map_err(|_| CommunityError::BadServerKey("public_key is not valid hex"))?,
        43 | 44 => {
            let trimmed = if s.len() == 44 {
                s.strip_suffix('=').ok_or(CommunityError::BadServerKey(
                    "44-character public_key must end with =",
                ))?
            } else {
                s
            };
            let standard: String = trimmed
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(standard)
                .map_err(|_| CommunityError::BadServerKey("public_key is not valid base64"))?;
            out = bytes
                .try_into()
                .map_err(|_| CommunityError::BadServerKey("public_key is not 32 bytes"))?;
        }
        52 => out = decode_base32z(s)?,
        _ => {
            return Err(CommunityError::BadServerKey(
                "public_key must be 64 hex, 43/44 base64 or 52 z-base-32 characters",
            ))
        }
    }
    Ok(out)
}

/// The z-base-32 alphabet (oxenc).
const BASE32Z: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Decodes 52 z-base-32 characters to 32 bytes (the 4 spare bits must be zero).
fn decode_base32z(s: &str) -> Result<[u8; 32], CommunityError> {
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    for c in s.bytes() {
        let v = BASE32Z
            .iter()
            .position(|&a| a == c.to_ascii_lowercase())
            .ok_or(CommunityError::BadServerKey(
                "public_key is not valid z-base-32",
            ))?;
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            let byte = (acc >> bits) as u8;
            *out.get_mut(n)
                .ok_or(CommunityError::BadServerKey("public_key is not 32 bytes"))? = byte;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    if n != 32 || acc != 0 {
        return Err(CommunityError::BadServerKey(
            "public_key is not 32 bytes of z-base-32",
        ));
    }
    Ok(out)
}
