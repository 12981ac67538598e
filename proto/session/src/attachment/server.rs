//! The file server's requests and replies as v4 onion-request payloads (spec §7.2): what a
//! client puts inside the onion to upload or download an attachment, and how it reads the
//! answer. Sending them through a path is the network layer's job.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{FileUrl, MAX_ENCRYPTED_LEN};
use crate::bencode::{V4Request, V4Response};
use crate::err::AttachmentError;

/// `POST /file` with the encrypted blob; `ttl` (seconds) goes in `X-FS-TTL`, which servers
/// honour only when configured to. Headers as libsession sends them.
pub fn upload_request(blob: Vec<u8>, ttl: Option<u64>) -> V4Request {
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".into(), "application/octet-stream".into());
    headers.insert("Content-Disposition".into(), "attachment".into());
    if let Some(t) = ttl {
        headers.insert("X-FS-TTL".into(), t.to_string());
    }
    V4Request {
        method: "POST".into(),
        endpoint: "/file".into(),
        headers,
        body: Some(blob),
    }
}

/// `GET /file/<id>` (or `/files/<id>`) for the file `url` names.
pub fn download_request(url: &FileUrl) -> V4Request {
    V4Request {
        method: "GET".into(),
        endpoint: url.endpoint(),
        headers: BTreeMap::new(),
        body: None,
    }
}

/// What `POST /file` answered.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadReply {
    /// The file ID (a numeric ID from an older server is given as its decimal text).
    pub id: String,
    /// Expiry, seconds since the epoch, when the server says.
    pub expires: Option<f64>,
}

fn status_error(resp: &V4Response) -> Result<(), AttachmentError> {
    if resp.code == 200 {
        Ok(())
    } else {
        Err(AttachmentError::ServerStatus { status: resp.code })
    }
}

/// Reads `{"id": …, "expires": …}`; a non-200 code is [`AttachmentError::ServerStatus`].
pub fn parse_upload_reply(resp: &V4Response) -> Result<UploadReply, AttachmentError> {
    status_error(resp)?;
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| AttachmentError::BadServerReply("the upload reply is not JSON"))?;
    let id = match &v["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => {
            return Err(AttachmentError::BadServerReply(
                "the upload reply has no id",
            ))
        }
    };
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AttachmentError::BadServerReply(
            "the upload reply's id is not a file ID",
        ));
    }
    Ok(UploadReply {
        id,
        expires: v["expires"].as_f64(),
    })
}

/// The blob of a `GET /file/<id>` reply: 404 and other codes are
/// [`AttachmentError::ServerStatus`]; an HTML page (a proxy's error page) or a body over
/// [`MAX_ENCRYPTED_LEN`] is refused.
pub fn download_body(resp: &V4Response) -> Result<&[u8], AttachmentError> {
    status_error(resp)?;
    let html = resp
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("text/html"));
    if html {
        return Err(AttachmentError::BadServerReply(
            "the file server answered with an HTML page",
        ));
    }
    if resp.body.len() as u64 > MAX_ENCRYPTED_LEN {
        return Err(AttachmentError::Oversized {
            max: MAX_ENCRYPTED_LEN,
        });
    }
    Ok(&resp.body)
}
