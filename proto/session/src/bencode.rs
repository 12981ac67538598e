//! The small bencode subset onion v4 payloads use: a list of one or two byte strings, and the
//! v4 request/response built on it (network.md §5.5).
//!
//! Byte layout: `l <len>:<bytes> [<len>:<bytes>] e`, lengths in base-10 ASCII without leading
//! zeros. A v4 request is `l <json> [<body>] e` with JSON `{"method","endpoint","headers"}`;
//! a response is `l <json> <body> e` with JSON `{"code","headers"}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::err::BencodeError;

/// Longest byte string we accept (a v4 body is bounded by the onion request size anyway).
const MAX_STRING_LEN: usize = 64 * 1024 * 1024;

/// Encodes a bencode list of byte strings.
pub fn encode_list(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + items.iter().map(|i| i.len() + 12).sum::<usize>());
    out.push(b'l');
    for i in items {
        out.extend_from_slice(i.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(i);
    }
    out.push(b'e');
    out
}

/// Decodes a bencode list whose items are all byte strings; nothing may follow the `e`.
pub fn decode_list(buf: &[u8]) -> Result<Vec<&[u8]>, BencodeError> {
    let mut at = 0;
    let first = *buf.first().ok_or(BencodeError::Truncated(0))?;
    if first != b'l' {
        return Err(BencodeError::Unexpected { byte: first, at });
    }
    at += 1;
    let mut items = Vec::new();
    loop {
        let b = *buf.get(at).ok_or(BencodeError::Truncated(at))?;
        if b == b'e' {
            at += 1;
            break;
        }
        if !b.is_ascii_digit() {
            return Err(BencodeError::Unexpected { byte: b, at });
        }
        let len_start = at;
        while let Some(d) = buf.get(at).filter(|d| d.is_ascii_digit()) {
            let _ = d;
            at += 1;
        }
        let digits = &buf[len_start..at];
        if (digits.len() > 1 && digits[0] == b'0') || digits.len() > 9 {
            return Err(BencodeError::BadLength(len_start));
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l <= MAX_STRING_LEN)
            .ok_or(BencodeError::BadLength(len_start))?;
        match buf.get(at) {
            Some(b':') => at += 1,
            Some(&byte) => return Err(BencodeError::Unexpected { byte, at }),
            None => return Err(BencodeError::Truncated(at)),
        }
        let end = at
            .checked_add(len)
            .ok_or(BencodeError::BadLength(len_start))?;
        let item = buf.get(at..end).ok_or(BencodeError::Truncated(buf.len()))?;
        items.push(item);
        at = end;
    }
    if at != buf.len() {
        return Err(BencodeError::Trailing(at));
    }
    Ok(items)
}

/// A v4 request to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Request {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path starting with `/`, e.g. `/room/lobby`.
    pub endpoint: String,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
    /// Optional body.
    pub body: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct V4RequestMeta {
    method: String,
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl V4Request {
    /// `l <json> [<body>] e`.
    pub fn encode(&self) -> Vec<u8> {
        let meta = V4RequestMeta {
            method: self.method.clone(),
            endpoint: self.endpoint.clone(),
            headers: self.headers.clone(),
        };
        let json = serde_json::to_vec(&meta).expect("string fields serialize");
        match &self.body {
            Some(b) => encode_list(&[&json, b]),
            None => encode_list(&[&json]),
        }
    }
    /// The encoding around a body of `body_len` bytes that is written separately (an
    /// upload streamed into its onion buffer): `(head, tail)` with `head = l <json> <len>:`
    /// and `tail = e`; `head ‖ body ‖ tail` equals [`V4Request::encode`] with that body.
    /// `self.body` is ignored.
    pub fn encode_around(&self, body_len: usize) -> (Vec<u8>, &'static [u8]) {
        let meta = V4RequestMeta {
            method: self.method.clone(),
            endpoint: self.endpoint.clone(),
            headers: self.headers.clone(),
        };
        let json = serde_json::to_vec(&meta).expect("string fields serialize");
        let mut head = encode_list(&[&json]);
        head.pop();
        head.extend_from_slice(body_len.to_string().as_bytes());
        head.push(b':');
        (head, b"e")
    }
    /// Parses `l <json> [<body>] e`; the endpoint must start with `/`.
    pub fn decode(buf: &[u8]) -> Result<V4Request, BencodeError> {
        let items = decode_list(buf)?;
        if items.is_empty() || items.len() > 2 {
            return Err(BencodeError::Count {
                expected: "1 or 2",
                got: items.len(),
            });
        }
        let meta: V4RequestMeta =
            serde_json::from_slice(items[0]).map_err(|e| BencodeError::Json(e.to_string()))?;
        if !meta.endpoint.starts_with('/') {
            return Err(BencodeError::Json("endpoint must start with /".into()));
        }
        Ok(V4Request {
            method: meta.method,
            endpoint: meta.endpoint,
            headers: meta.headers,
            body: items.get(1).map(|b| b.to_vec()),
        })
    }
}

/// A v4 response from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Response {
    /// HTTP status.
    pub code: u16,
    /// Response headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct V4ResponseMeta {
    code: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl V4Response {
    /// `l <json> <body> e`.
    pub fn encode(&self) -> Vec<u8> {
        let meta = V4ResponseMeta {
            code: self.code,
            headers: self.headers.clone(),
        };
        let json = serde_json::to_vec(&meta).expect("plain fields serialize");
        encode_list(&[&json, &self.body])
    }
    /// Parses `l <json> [<body>] e` (a missing body is empty).
    pub fn decode(buf: &[u8]) -> Result<V4Response, BencodeError> {
        let (meta, body) = V4Response::parse(buf)?;
        Ok(V4Response {
            code: meta.code,
            headers: meta.headers,
            body: body.map(|r| buf[r].to_vec()).unwrap_or_default(),
        })
    }
    /// [`V4Response::decode`] of an owned buffer: the body keeps the buffer's allocation
    /// (moved to its front), so a large body is not copied.
    pub fn decode_owned(mut buf: Vec<u8>) -> Result<V4Response, BencodeError> {
        let (meta, body) = V4Response::parse(&buf)?;
        match body {
            Some(r) => {
                buf.truncate(r.end);
                buf.drain(..r.start);
            }
            None => buf.clear(),
        }
        Ok(V4Response {
            code: meta.code,
            headers: meta.headers,
            body: buf,
        })
    }
    /// The metadata and where the body lies in `buf`.
    fn parse(buf: &[u8]) -> Result<(V4ResponseMeta, Option<std::ops::Range<usize>>), BencodeError> {
        let items = decode_list(buf)?;
        if items.is_empty() || items.len() > 2 {
            return Err(BencodeError::Count {
                expected: "1 or 2",
                got: items.len(),
            });
        }
        let meta: V4ResponseMeta =
            serde_json::from_slice(items[0]).map_err(|e| BencodeError::Json(e.to_string()))?;
        // Items are subslices of `buf`: their offsets follow from the addresses.
        let body = items.get(1).map(|b| {
            let start = b.as_ptr() as usize - buf.as_ptr() as usize;
            start..start + b.len()
        });
        Ok((meta, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../tests/data/network-onion-v4-bencode.json");

    #[test]
    fn v4_vectors() {
        let v: Value = serde_json::from_str(VECTORS).expect("json");
        let ex = v["examples"].as_array().expect("examples");
        assert_eq!(ex.len(), 3);
        for e in ex {
            let enc = e["encoded"].as_str().expect("encoded").as_bytes();
            let items = decode_list(enc).expect("decodes");
            assert_eq!(encode_list(&items), enc);
            match e["kind"].as_str().expect("kind") {
                "request GET" => {
                    let r = V4Request::decode(enc).expect("request");
                    assert_eq!(r.method, "GET");
                    assert_eq!(r.endpoint, "/room/some-room");
                    assert_eq!(r.headers["Some-Header"], "12345");
                    assert_eq!(r.body, None);
                    // Our JSON writes fields in the same order, so bytes match.
                    assert_eq!(r.encode(), enc);
                }
                "request POST" => {
                    let r = V4Request::decode(enc).expect("request");
                    assert_eq!(r.method, "POST");
                    assert_eq!(r.body.as_deref(), Some(&b"post body here"[..]));
                    assert_eq!(r.encode(), enc);
                }
                "response" => {
                    let r = V4Response::decode(enc).expect("response");
                    assert_eq!(r.code, 200);
                    assert_eq!(r.headers["content-type"], "application/json");
                    assert_eq!(r.body, b"{\"id\": 123}");
                    assert_eq!(r.encode(), enc);
                }
                other => panic!("unknown kind {other}"),
            }
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            &b""[..],
            b"l",
            b"le ",
            b"d3:abce",
            b"l3:ab",
            b"l03:abce",
            b"l3abce",
            b"l99999999999:e",
            b"li3ee",
            b"l3:abc",
        ] {
            assert!(
                decode_list(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(V4Request::decode(b"le").is_err());
        assert!(V4Request::decode(b"l2:{}e").is_err());
        assert!(
            V4Request::decode(br#"l39:{"method":"GET","endpoint":"x","headers":{}}e"#).is_err()
        );
        assert_eq!(decode_list(b"l0:e").expect("empty string"), vec![&b""[..]]);
    }

    #[test]
    fn a_body_written_around_its_head_and_tail_encodes_like_the_whole() {
        let mut r = V4Request {
            method: "POST".into(),
            endpoint: "/file".into(),
            headers: [(
                "Content-Type".to_owned(),
                "application/octet-stream".to_owned(),
            )]
            .into(),
            body: None,
        };
        for body in [Vec::new(), b"x".to_vec(), vec![9u8; 12_345]] {
            let (head, tail) = r.encode_around(body.len());
            let joined = [head.as_slice(), &body, tail].concat();
            r.body = Some(body);
            assert_eq!(joined, r.encode());
            r.body = None;
        }
    }

    #[test]
    fn responses_decode_in_place_as_by_copy() {
        for enc in [
            &b"l12:{\"code\":200}5:helloe"[..],
            b"l12:{\"code\":404}e",
            b"l12:{\"code\":200}0:e",
        ] {
            assert_eq!(
                V4Response::decode_owned(enc.to_vec()).expect("owned"),
                V4Response::decode(enc).expect("copied")
            );
        }
        for bad in [&b"l12:{\"code\":200}5:hele"[..], b"le", b"l3:abce", b""] {
            assert!(V4Response::decode_owned(bad.to_vec()).is_err());
        }
    }
}
