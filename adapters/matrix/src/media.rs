//! The media repository over Session attachments: an upload becomes an uploaded attachment of
//! the user's identity (`mxc://<server>/<attachment id>`), a download streams an attachment
//! (downloading it from the file server first when needed), and `m.image`/`m.file`/`m.audio`/
//! `m.video` events carry `mxc://` URLs both ways ([`media_content`], [`attachment_of`]).
//!
//! Endpoints (all need an access token, as authenticated media does):
//! - `POST /_matrix/media/v3/upload?filename=…` (and `r0`): the raw body → `{"content_uri"}`.
//! - `GET /_matrix/client/v1/media/config` → `{"m.upload.size"}`.
//! - `GET /_matrix/client/v1/media/download/{server}/{mediaId}[/{fileName}]`.
//! - `GET /_matrix/client/v1/media/thumbnail/{server}/{mediaId}`: the file itself (the daemon
//!   makes no thumbnails; clients scale it).

use std::sync::Arc;

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::header::{HeaderMap, HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sessiond_api::v1::{
    download_response, upload_request, Attachment, DownloadRequest, UploadMetadata, UploadRequest,
};

use crate::auth::Me;
use crate::err::MatrixError;
use crate::http::{Answer, Json, Path, Query};
use crate::state::Shared;

/// The largest file: what fits on the file server once encrypted (9,828,080 bytes).
pub const MAX_UPLOAD: u64 = 9_828_080;
/// Upload chunks passed to the daemon at a time.
const UPLOAD_BUFFER: usize = 4;

/// The media routes outside `/_matrix/client` (the upload).
pub(crate) fn upload_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_matrix/media/v3/upload", post(upload))
        .route("/_matrix/media/r0/upload", post(upload))
        .route("/_matrix/media/v1/upload", post(upload))
}

/// The media routes under `/_matrix/client/{v1,v3,r0}`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/media/config", get(config))
        .route("/media/download/:server/:media", get(download))
        .route("/media/download/:server/:media/:name", get(download_named))
        .route("/media/thumbnail/:server/:media", get(download))
}

/// `GET /_matrix/client/v1/media/config`.
pub(crate) async fn config(_me: Me) -> Json {
    Json(json!({ "m.upload.size": MAX_UPLOAD }))
}

/// The `mxc://` URI of an attachment.
pub fn mxc(server: &str, attachment_id: &str) -> String {
    format!("mxc://{server}/{attachment_id}")
}

/// The attachment id of an `mxc://` URI of this server.
pub fn attachment_of(server: &str, uri: &str) -> Result<String, MatrixError> {
    let bad = || MatrixError::param("url", "not an mxc:// URI of this server's media");
    let rest = uri.strip_prefix("mxc://").ok_or_else(bad)?;
    let (host, id) = rest.split_once('/').ok_or_else(bad)?;
    if host != server || id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(id.to_owned())
}

/// The `msgtype` for a MIME type.
pub fn msgtype(content_type: &str) -> &'static str {
    match content_type.split('/').next().unwrap_or_default() {
        "image" => "m.image",
        "video" => "m.video",
        "audio" => "m.audio",
        _ => "m.file",
    }
}

/// The content of an `m.room.message` for a message with attachments: the first one as an
/// `m.image`/`m.file`/… with its `mxc://` URL, the text as its caption (each further one is an
/// event of its own, [`file_content`]).
pub fn media_content(server: &str, text: &str, files: &[Attachment]) -> Option<Value> {
    Some(file_content(server, files.first()?, text))
}

/// The content of an `m.room.message` showing one attachment, with `caption` (none if empty).
pub fn file_content(server: &str, file: &Attachment, caption: &str) -> Value {
    let name = if file.file_name.is_empty() {
        "file"
    } else {
        &file.file_name
    };
    let body = if caption.is_empty() { name } else { caption };
    let mut info = json!({ "size": file.size });
    if !file.content_type.is_empty() {
        info["mimetype"] = json!(file.content_type);
    }
    if file.width > 0 && file.height > 0 {
        info["w"] = json!(file.width);
        info["h"] = json!(file.height);
    }
    json!({
        "msgtype": msgtype(&file.content_type),
        "body": body,
        "filename": name,
        "url": mxc(server, &file.id),
        "info": info,
    })
}

/// `POST /_matrix/media/v3/upload?filename=…`: the body (up to [`MAX_UPLOAD`] bytes) streams
/// into AttachmentService.Upload, which encrypts it and puts it on the file server.
pub(crate) async fn upload(
    State(s): State<Arc<Shared>>,
    me: Me,
    query: Query,
    headers: HeaderMap,
    body: RawBody,
) -> Answer {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|t| t.len() <= 255)
        .unwrap_or_default();
    let file_name = query.get("filename").map(str::to_owned).unwrap_or_default();
    if file_name.len() > 255 || file_name.contains(['/', '\\', '\0']) {
        return Err(MatrixError::param(
            "filename",
            "a file name of at most 255 bytes, no / or \\",
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(UPLOAD_BUFFER);
    let first = UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            identity: me.name().to_owned(),
            file_name,
            content_type,
            ..Default::default()
        })),
    };
    let _ = tx.send(first).await;
    // Owned by this request: feeds the upload until the body ends, is too large or fails.
    let feeder = tokio::spawn(async move {
        let mut body = body;
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(MatrixError::param("body", "the upload was cut off"));
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            len += data.len() as u64;
            if len > MAX_UPLOAD {
                return Err(MatrixError::TooLarge {
                    limit: MAX_UPLOAD as usize,
                });
            }
            let chunk = UploadRequest {
                part: Some(upload_request::Part::Chunk(data.to_vec())),
            };
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    let uploaded = me
        .client
        .attachments
        .clone()
        .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    match feeder.await {
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(MatrixError::param("body", "the upload failed")),
        Ok(Ok(())) => {}
    }
    let attachment = uploaded
        .map_err(MatrixError::from)?
        .into_inner()
        .attachment
        .ok_or_else(|| MatrixError::NotFound("the daemon answered without the file".into()))?;
    Ok(Json(json!({
        "content_uri": mxc(&s.config.server_name, &attachment.id),
    })))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}` (and the thumbnail).
pub(crate) async fn download(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((server, media)): Path<(String, String)>,
) -> Result<Response, MatrixError> {
    serve(&s, &me, &server, &media).await
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`.
pub(crate) async fn download_named(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((server, media, _name)): Path<(String, String, String)>,
) -> Result<Response, MatrixError> {
    serve(&s, &me, &server, &media).await
}

async fn serve(s: &Shared, me: &Me, server: &str, media: &str) -> Result<Response, MatrixError> {
    let not_found = || MatrixError::NotFound("no such media".into());
    let id = attachment_of(&s.config.server_name, &mxc(server, media)).map_err(|_| not_found())?;
    let mut stream = me
        .client
        .attachments
        .clone()
        .download(DownloadRequest {
            identity: me.name().to_owned(),
            attachment_id: id,
            offset: 0,
        })
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound | tonic::Code::InvalidArgument => not_found(),
            _ => MatrixError::from(status),
        })?
        .into_inner();
    let first = stream.message().await.map_err(MatrixError::from)?;
    let Some(download_response::Part::Attachment(a)) = first.and_then(|m| m.part) else {
        return Err(not_found());
    };
    let body = RawBody::from_stream(futures_lite_stream(stream));
    let mut r = body.into_response();
    let h = r.headers_mut();
    let ct = if a.content_type.is_empty() {
        "application/octet-stream"
    } else {
        &a.content_type
    };
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(CONTENT_TYPE, v);
    }
    let name: String = a
        .file_name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let disposition =
        if ct.starts_with("image/") || ct.starts_with("video/") || ct.starts_with("audio/") {
            format!("inline; filename=\"{name}\"")
        } else {
            format!("attachment; filename=\"{name}\"")
        };
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"),
    );
    Ok(r)
}

/// The Download stream's bytes as a body stream.
fn futures_lite_stream(
    stream: tonic::Streaming<sessiond_api::v1::DownloadResponse>,
) -> impl tokio_stream::Stream<Item = Result<bytes::Bytes, tonic::Status>> + Send + 'static {
    use tokio_stream::StreamExt;
    stream.filter_map(|m| match m {
        Ok(m) => match m.part {
            Some(download_response::Part::Chunk(b)) => Some(Ok(bytes::Bytes::from(b))),
            _ => None,
        },
        Err(e) => Some(Err(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mxc_uris_name_attachments_of_this_server_only() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(attachment_of("s", &mxc("s", id)).expect("ours"), id);
        for bad in [
            format!("mxc://other/{id}"),
            "mxc://s/short".to_owned(),
            format!("https://s/{id}"),
            "mxc://s".to_owned(),
        ] {
            assert!(attachment_of("s", &bad).is_err(), "{bad}");
        }
        assert_eq!(msgtype("image/png"), "m.image");
        assert_eq!(msgtype("application/pdf"), "m.file");
        assert_eq!(msgtype(""), "m.file");
    }
}
