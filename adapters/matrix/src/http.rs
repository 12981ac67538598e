//! The HTTP side: the accept loop (connection cap, header timeout, graceful shutdown), one
//! hyper connection per client served by the axum [`Router`](crate::router), and the extractors
//! and answers every handler uses: [`Path`], [`Query`], [`Body`] (JSON with a size limit) and
//! [`Json`], all failing with Matrix errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::err::{MatrixError, ServeError};
use crate::state::{ConnChannel, Shared};

/// The largest request body accepted (`M_TOO_LARGE` above): a text message is at most a few KiB,
/// and account data and filters are small.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bodies over the limit are read and dropped up to this size (see [`read_body`]).
const DRAIN_BYTES: usize = 4 * MAX_BODY_BYTES;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight (long-polls answer at once).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Accept errors in a row after which the listener is considered broken.
const MAX_ACCEPT_ERRORS: u32 = 100;
/// What a connection over `max_connections` is told before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: application/json\r\nContent-Length: 61\r\nConnection: close\r\n\r\n\
{\"errcode\":\"M_LIMIT_EXCEEDED\",\"error\":\"Too many connections\"}";

/// Accepts connections until `shutdown`, then ends long-polls, lets requests in flight finish
/// (up to [`DRAIN_TIMEOUT`]) and returns.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    open: Arc<AtomicUsize>,
) -> Result<(), ServeError> {
    let max_connections = shared.config.max_connections;
    if max_connections == 0 {
        return Err(ServeError::ZeroLimit("max_connections"));
    }
    let app = crate::router::router(Arc::clone(&shared));
    tokio::pin!(shutdown);
    let mut conns = JoinSet::new();
    let mut errors = 0u32;
    // One permit per live connection, given back the moment its task ends (like IRC's).
    let permits = Arc::new(Semaphore::new(max_connections));
    // Warn once per stretch at the limit, not once per refused connection.
    let mut at_limit = false;
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    errors = 0;
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        // Refused without waiting: a best-effort answer, then close.
                        let _ = stream.try_write(TOO_MANY_CONNECTIONS);
                        if !at_limit {
                            tracing::warn!(
                                max_connections,
                                "matrix: connections refused: at the connection limit"
                            );
                            at_limit = true;
                        }
                        continue;
                    };
                    at_limit = false;
                    // Counted while the connection task lives.
                    open.fetch_add(1, Ordering::Relaxed);
                    // The connection's own channel to the daemon: made now, connected on the
                    // first call, closed when the last client holding it (a live subscription
                    // may outlive the connection) is gone.
                    let api = ConnChannel(shared.api.channel());
                    let conn = connection(shared.stop.clone(), app.clone(), api, stream);
                    let open = Arc::clone(&open);
                    conns.spawn(async move {
                        conn.await;
                        open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_ACCEPT_ERRORS {
                        break Err(ServeError::Accept(e));
                    }
                    // EMFILE and friends pass when connections close; don't spin.
                    tracing::warn!(cause = %e, "matrix: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    };
    stop.send_replace(true);
    shared.stop_all();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(left = conns.len(), "matrix: closing connections still busy");
        conns.shutdown().await;
    }
    result
}

/// Serves one connection with `app` until the client closes it or the server stops.
async fn connection(
    mut stop: watch::Receiver<bool>,
    app: axum::Router,
    api: ConnChannel,
    stream: TcpStream,
) {
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        crate::router::strip_trailing_slash(&mut req);
        req.extensions_mut().insert(api.clone());
        app.clone().oneshot(req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(cause = %e, "matrix: connection ended with an error");
            }
        }
        () = crate::state::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The decoded query parameters of a request, in order (`M_INVALID_PARAM` for a bad escape).
#[derive(Debug, Default)]
pub(crate) struct Query(pub Vec<(String, String)>);

impl Query {
    /// The first parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MatrixError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// axum's `Path`, percent-decoded, with a Matrix error for a parameter that is not UTF-8.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, MatrixError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| MatrixError::param("path", e.body_text()))
    }
}

/// A request body, read whole (at most [`MAX_BODY_BYTES`], `M_TOO_LARGE` above) and parsed
/// when the handler asks, so a handler checks the path and the caller before the body.
#[derive(Debug)]
pub(crate) struct Body(Bytes);

impl Body {
    /// The body as `T`: `M_NOT_JSON` if it is not JSON, `M_BAD_JSON` if it is JSON of another
    /// shape (request bodies are always objects). An empty body reads as `{}` (clients send
    /// none for POSTs without parameters).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        parse_json(&self.0)
    }
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = MatrixError;

    async fn from_request(req: Request, _: &S) -> Result<Self, MatrixError> {
        read_body(req).await.map(Body)
    }
}

/// The JSON answer of a successful request.
#[derive(Debug)]
pub(crate) struct Json(pub Value);

/// What every handler answers: JSON, or a Matrix error.
pub(crate) type Answer = Result<Json, MatrixError>;

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self.0)
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        let parts = self.response_parts();
        tracing::debug!(
            status = parts.status.as_u16(),
            errcode = parts.errcode,
            cause = %self,
            "matrix: error"
        );
        json_response(
            parts.status,
            &serde_json::json!({ "errcode": parts.errcode, "error": parts.message }),
        )
    }
}

/// `body` as `T` (see [`Body::json`]).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, MatrixError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| MatrixError::NotJson(e.to_string()))?
    };
    if !value.is_object() {
        return Err(MatrixError::BadJson(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| MatrixError::BadJson(e.to_string()))
}

/// Reads the body (at most [`MAX_BODY_BYTES`]). A body over the limit is still read and dropped
/// up to [`DRAIN_BYTES`], so the client gets its 413 on a clean connection; beyond that the
/// connection is closed after the answer.
async fn read_body(req: Request) -> Result<Bytes, MatrixError> {
    let too_large = || MatrixError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| MatrixError::param("Content-Length", "not a number"))?;
        if len > DRAIN_BYTES as u64 {
            return Err(too_large());
        }
    }
    let mut body = req.into_body();
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| MatrixError::param("body", format!("could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > DRAIN_BYTES {
                return Err(too_large());
            }
            if total <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// `a=1&b=x%20y` → pairs; `+` is a space in queries.
pub(crate) fn parse_query(q: &str) -> Result<Vec<(String, String)>, MatrixError> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (percent_decode(k), percent_decode(v)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(MatrixError::param("query", "bad escape")),
            }
        })
        .collect()
}

/// Decodes a query's `%XX` escapes and `+` as a space; `None` for a bad escape or bytes that are
/// not UTF-8 (strict, where form decoders pass bad escapes through).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON response (the CORS headers are added for every response by the router).
fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
    let mut resp = Response::new(axum::body::Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("%21abc%3Alocalhost").as_deref(),
            Some("!abc:localhost")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        let q = parse_query("since=s1_2&timeout=0&filter=%7B%7D&x").expect("parses");
        assert_eq!(
            q,
            vec![
                ("since".into(), "s1_2".into()),
                ("timeout".into(), "0".into()),
                ("filter".into(), "{}".into()),
                ("x".into(), String::new()),
            ]
        );
        assert!(parse_query("a=%").is_err());
    }

    #[test]
    fn json_errors_tell_syntax_from_shape() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        assert!(matches!(
            parse_json::<T>(b"{"),
            Err(MatrixError::NotJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"nope"),
            Err(MatrixError::NotJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(br#"{"a":"x"}"#),
            Err(MatrixError::BadJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"[1]"),
            Err(MatrixError::BadJson(_))
        ));
        assert!(matches!(parse_json::<T>(br#"{"a":1}"#), Ok(T { a: 1 })));
    }

    /// Sends `GET path` with a bearer token on `conn` and reads the whole answer; its status.
    async fn get(conn: &mut TcpStream, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\r\n");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the connection closed before a whole answer");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("a length"));
            if buf.len() >= end + 4 + len {
                return head[9..12].parse().expect("a status");
            }
        }
    }

    #[tokio::test]
    async fn each_connection_calls_the_daemon_on_a_channel_of_its_own() {
        use std::sync::atomic::AtomicUsize;
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let api = sessiond_api::client::Connector::per_client(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            // Nothing listens there: calls fail, which is all this test needs.
            tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, Default::default(), api, async {
            let _ = stopped.await;
        }));
        let mut first = TcpStream::connect(addr).await.expect("connect");
        // Two authenticated requests on one keep-alive connection: one channel.
        for _ in 0..2 {
            let status = get(&mut first, "/_matrix/client/v3/account/whoami").await;
            assert!(status >= 500, "the daemon is not there: {status}");
        }
        assert_eq!(
            made.load(Ordering::Relaxed),
            1,
            "one channel per connection"
        );
        // Another connection, another channel.
        let mut second = TcpStream::connect(addr).await.expect("connect");
        get(&mut second, "/_matrix/client/v3/account/whoami").await;
        assert_eq!(made.load(Ordering::Relaxed), 2, "a channel per connection");
        stop.send(()).expect("server running");
        server.await.expect("join").expect("clean stop");
    }
}
