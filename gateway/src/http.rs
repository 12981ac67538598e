//! The HTTP listener (`[metrics]`, default `127.0.0.1:9464`): health for supervisors,
//! Prometheus metrics, and the status page.
//!
//! | route | answer | token |
//! |---|---|---|
//! | `GET /healthz` | 200 `{"ready":true,…}`, or 503 with the reasons | none |
//! | `GET /metrics` | the text exposition format (OpenMetrics 1.0, which Prometheus reads) | none |
//! | `GET /` | the status page; a token form until the admin token is given | cookie |
//! | `GET /app.js`, `GET /style.css` | the page's script and style (no data in them) | none |
//! | `POST /login` | `{"token":"…"}` → 204 and the cookie; 401 for a wrong token | the body |
//! | `POST /logout` | 204, the cookie cleared | none |
//! | `GET /api/status` | the [`StatusReport`](crate::status::StatusReport) as JSON | cookie or `Authorization: Bearer` |
//! | `POST /upload` | `soju.im/FILEHOST`: the body becomes an uploaded attachment; 201 with its link in `Location` | `Authorization: Basic <identity:token>` (the IRC credentials) or `Bearer` (an identity's token) |
//! | `OPTIONS /upload` | 204: the methods and the CORS preflight answer for web clients | none |
//! | `GET`/`HEAD /files/<token>/<name>` | an attachment's plaintext, with its content type (downloaded first if needed) | the per-file token in the path |
//!
//! `/upload` and `/files/…` answer any origin (`Access-Control-Allow-Origin: *`, never with
//! credentials), so a browser IRC client can upload with the token it holds and read the link.
//!
//! The cookie (`HttpOnly; SameSite=Strict`) holds a hash of the admin token, not the token, so
//! it is only good for this page and dies when the token is replaced. `/healthz` and `/metrics`
//! carry no identifiers (label values are enums; see [`crate::metrics`]) and take no token, as
//! supervisors and Prometheus expect; the listener is loopback-only unless configured otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::files::Files;
use crate::rpc::auth::token_hash;
use crate::status::Sources;
use crate::store::AttachmentState;

/// The cookie's name.
pub const COOKIE_NAME: &str = "sessiond_status";
/// The largest `/login` body read.
const MAX_LOGIN_BYTES: usize = 4096;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long the cookie lasts (30 days): the token is asked for once, not per visit.
const COOKIE_MAX_AGE_SECS: u64 = 30 * 24 * 3600;

const PAGE: &str = include_str!("http/page.html");
const SCRIPT: &str = include_str!("http/app.js");
const STYLE: &str = include_str!("http/style.css");

/// What the handlers share.
#[derive(Debug)]
pub struct HttpState {
    sources: Sources,
    admin_hash: [u8; 32],
    cookie_hash: [u8; 32],
    files: Option<Files>,
}

impl HttpState {
    /// State over `sources`, for the admin token `admin_token`.
    pub fn new(sources: Sources, admin_token: &str) -> HttpState {
        HttpState {
            sources,
            admin_hash: token_hash(admin_token),
            cookie_hash: token_hash(&cookie_value(admin_token)),
            files: None,
        }
    }

    /// Serves attachments' local links from `files`.
    pub fn with_files(mut self, files: Option<Files>) -> HttpState {
        self.files = files;
        self
    }
}

/// The cookie's value for an admin token: a hash bound to its use here.
pub fn cookie_value(admin_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sessiond status page cookie\0");
    h.update(admin_token.as_bytes());
    hex::encode(h.finalize())
}

/// Serves until `shutdown`; open connections are closed then (requests here are short).
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => match accepted {
                Ok((stream, _)) => {
                    let state = Arc::clone(&state);
                    conns.spawn(async move {
                        let svc = service_fn(move |req| {
                            let state = Arc::clone(&state);
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let served = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                        if let Err(e) = served {
                            tracing::debug!(cause = %e, "status HTTP connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "status HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.shutdown().await;
    Ok(())
}

type Reply = Response<BoxBody<Bytes, std::io::Error>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

/// Whether the request carries the admin token: the cookie, or a bearer token.
fn authorized(state: &HttpState, req: &Request<Incoming>) -> bool {
    let headers = req.headers();
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if bearer.is_some_and(|t| token_hash(t) == state.admin_hash) {
        return true;
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE_NAME && token_hash(value) == state.cookie_hash)
}

async fn handle(state: &Arc<HttpState>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            let sources = state.sources.clone();
            let health = tokio::task::spawn_blocking(move || sources.health()).await;
            match health {
                Ok(h) => {
                    let status = if h.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    json(
                        status,
                        &serde_json::json!({ "ready": h.ready, "reasons": h.reasons }),
                    )
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::GET, "/metrics") => {
            let sources = state.sources.clone();
            let scraped = tokio::task::spawn_blocking(move || {
                sources.scrape().map(|s| sources.metrics.render(&s))
            })
            .await;
            match scraped {
                Ok(Ok(text)) => reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::GET, "/") => {
            let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            let h = r.headers_mut();
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                     frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
                ),
            );
            h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            r
        }
        (&Method::GET, "/app.js") => {
            reply(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
        }
        (&Method::GET, "/style.css") => reply(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        (&Method::POST, "/login") => login(state, req).await,
        (&Method::POST, "/logout") => {
            let mut r = reply(StatusCode::NO_CONTENT, "text/plain", "");
            let cookie = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        (&Method::GET, "/api/status") => {
            if !authorized(state, &req) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "the admin token is required (the cookie from /login, or Authorization: Bearer)",
                );
            }
            let sources = state.sources.clone();
            match tokio::task::spawn_blocking(move || sources.report()).await {
                Ok(Ok(report)) => match serde_json::to_value(&report) {
                    Ok(v) => json(StatusCode::OK, &v),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/files/") => {
            cross_origin(file(state, p).await)
        }
        (&Method::OPTIONS, "/upload") => upload_preflight(),
        (&Method::POST, "/upload") => cross_origin(upload(state, req).await),
        (
            _,
            "/healthz" | "/metrics" | "/" | "/app.js" | "/style.css" | "/login" | "/logout"
            | "/api/status" | "/upload",
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such page"),
    }
}

/// Lets a web page of any origin read this answer (`/upload`, `/files/…`). Credentials are
/// never allowed cross-origin: a browser client (gamja, a Matrix web client's FILEHOST flow)
/// sends the identity's token in `Authorization` itself, so a page without the token gets
/// nothing, and a browser's remembered Basic credentials are never sent for another origin.
fn cross_origin(mut r: Reply) -> Reply {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    // The upload's answer is its Location; a script reads only exposed headers.
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Location, Content-Length, Content-Disposition"),
    );
    r
}

/// `OPTIONS /upload`: what FILEHOST asks servers to accept, and the CORS preflight a browser
/// sends before a POST with `Authorization` or `Content-Disposition` from another origin.
fn upload_preflight() -> Reply {
    let mut r = reply(StatusCode::NO_CONTENT, "text/plain", "");
    let h = r.headers_mut();
    h.insert(
        http::header::ALLOW,
        HeaderValue::from_static("OPTIONS, POST"),
    );
    h.insert("accept-post", HeaderValue::from_static("*/*"));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Authorization, Content-Type, Content-Disposition"),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    r
}

/// Bytes per chunk of a served file; chunks buffered per response.
const FILE_CHUNK: usize = 64 * 1024;
const FILE_BUFFER: usize = 4;

/// `GET /files/<token>/<name>`: the attachment the token names (the name is only for the
/// person and their client). Downloads it first if it is not here; a failed download is a 502
/// with the reason. Streams from disk: the file is never held whole.
async fn file(state: &HttpState, path: &str) -> Reply {
    let not_found = || error(StatusCode::NOT_FOUND, "no such file");
    let Some(files) = state.files.clone() else {
        return not_found();
    };
    let token = path
        .trim_start_matches("/files/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let store = state.sources.store.clone();
    let found = tokio::task::spawn_blocking(move || store.attachment_by_token(&token)).await;
    let (identity, mut record) = match found {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return not_found(),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let here = |r: &crate::store::AttachmentRecord| {
        matches!(
            r.view.state,
            AttachmentState::Downloaded | AttachmentState::Uploaded
        ) && files.path(&r.view.id).exists()
    };
    if !here(&record) {
        record = match files.download(identity, &record.view.id).await {
            Ok(r) => r,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        if !here(&record) {
            let why = record.view.reason.as_deref().unwrap_or("it is not here");
            return error(
                StatusCode::BAD_GATEWAY,
                &format!("the file could not be downloaded: {why}"),
            );
        }
    }
    let mut f = match tokio::fs::File::open(files.path(&record.view.id)).await {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel(FILE_BUFFER);
    // Owned by the response body: ends at the end of the file or when the client goes away.
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; FILE_CHUNK];
        loop {
            let item = match f.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))),
                Err(e) => Err(e),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(BodyExt::boxed(body));
    let content_type = record
        .view
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, content_type);
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Shown, never run: a sandboxed document if a browser renders it (an SVG or HTML file).
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The identity an upload's `Authorization` reaches: `Basic identity:token` (what IRC clients
/// send, their SASL PLAIN or PASS credentials) or `Bearer token` (an identity-scoped token).
fn upload_identity(
    state: &HttpState,
    req: &Request<Incoming>,
) -> Result<crate::store::IdentityRecord, &'static str> {
    use base64::Engine as _;
    const NO: &str = "the IRC credentials are required: Authorization: Basic <identity:token>";
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(NO)?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(NO)?;
    let (name, token) = if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| NO)?;
        let text = String::from_utf8(raw).map_err(|_| NO)?;
        let (n, t) = text.split_once(':').ok_or(NO)?;
        (Some(n.to_owned()), t.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (None, rest.trim().to_owned())
    } else {
        return Err(NO);
    };
    let store = &state.sources.store;
    let hash = token_hash(&token);
    let bad = "unknown identity or token";
    if hash == state.admin_hash {
        let name = name.filter(|n| !n.is_empty()).ok_or(
            "with the admin token, say the identity: Authorization: Basic <identity:token>",
        )?;
        return store.identity(&name).map_err(|_| bad);
    }
    let record = store.token(&hash).ok().flatten().ok_or(bad)?;
    let identity = store.identity_by_id(record.identity).map_err(|_| bad)?;
    match name.filter(|n| !n.is_empty()) {
        Some(n) if n != identity.name => Err(bad),
        _ => Ok(identity),
    }
}

/// The `filename` of a `Content-Disposition` header, if any.
fn disposition_name(v: &str) -> Option<String> {
    let (_, rest) = v.split_once("filename=")?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    let name = name.rsplit(['/', '\\']).next()?.trim();
    (!name.is_empty() && name.len() <= 255 && !name.contains('\0')).then(|| name.to_owned())
}

/// `POST /upload`: the body (at most the largest attachment) goes into a temporary file, is
/// encrypted and uploaded to the file server; 201 with the file's local link in `Location`
/// (and `{"url", "id"}`), which a PRIVMSG can then carry to send it.
async fn upload(state: &HttpState, req: Request<Incoming>) -> Reply {
    let Some(files) = state.files.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is offline: uploads need the file server",
        );
    };
    let identity = {
        // Two point reads of the store: short enough for the async thread.
        match upload_identity(state, &req) {
            Ok(i) => i,
            Err(why) => {
                let mut r = error(StatusCode::UNAUTHORIZED, why);
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"sessiond\""),
                );
                return r;
            }
        }
    };
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let file_name = header(http::header::CONTENT_DISPOSITION)
        .as_deref()
        .and_then(disposition_name);
    let content_type = header(CONTENT_TYPE)
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|t| !t.is_empty() && t != "application/octet-stream" && t.len() <= 255);
    let (path, file) = match files.temp_file() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let max = crate::files::max_plaintext();
    let mut file = tokio::fs::File::from_std(file);
    let mut body = req.into_body();
    let mut len = 0u64;
    let written: Result<(), Reply> = async {
        use tokio::io::AsyncWriteExt;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            len += data.len() as u64;
            if len > max {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the largest file the file server takes is {max} bytes"),
                ));
            }
            file.write_all(&data)
                .await
                .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
    }
    .await;
    drop(file);
    if let Err(r) = written {
        let _ = std::fs::remove_file(&path);
        return r;
    }
    let meta = crate::files::UploadMeta {
        file_name,
        content_type,
        ..Default::default()
    };
    match files.upload(identity.id, path, len, meta).await {
        Ok(record) => {
            let url = crate::files::local_url(&record.view).unwrap_or_default();
            let mut r = json(
                StatusCode::CREATED,
                &serde_json::json!({ "url": url, "id": record.view.id }),
            );
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        Err(e) => {
            use session_proto::err::{ErrorKind, HasKind};
            let status = match e.kind() {
                ErrorKind::InvalidInput => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Busy => StatusCode::INSUFFICIENT_STORAGE,
                ErrorKind::NetworkUnreachable => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
    }
}

/// `POST /login`: `{"token": "…"}`; the admin token gets the cookie.
async fn login(state: &HttpState, req: Request<Incoming>) -> Reply {
    let body = match Limited::new(req.into_body(), MAX_LOGIN_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
    };
    #[derive(serde::Deserialize)]
    struct Login {
        token: String,
    }
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"token\": \"…\"}",
        );
    };
    let token = login.token.trim();
    if token_hash(token) != state.admin_hash {
        return error(StatusCode::UNAUTHORIZED, "that is not the admin token");
    }
    let mut r = reply(StatusCode::NO_CONTENT, "text/plain", "");
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_SECS}",
        cookie_value(token)
    );
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            r.headers_mut().insert(SET_COOKIE, v);
            r
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot set the cookie"),
    }
}
