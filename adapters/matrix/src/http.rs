//! The HTTP side: the accept loop, one hyper connection per client, reading a request (body
//! limit, path and query decoding), and writing JSON answers with CORS headers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::err::{MatrixError, ServeError};
use crate::router;
use crate::state::Shared;

/// The largest request body accepted (`M_TOO_LARGE` above): a text message is at most a few KiB,
/// and account data and filters are small.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bodies over the limit are read and dropped up to this size (see [`read`]).
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
                    let conn = connection(Arc::clone(&shared), stream);
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

/// Serves one connection until the client closes it or the server stops.
async fn connection(shared: Arc<Shared>, stream: TcpStream) {
    let mut stop = shared.stop.clone();
    let svc_shared = Arc::clone(&shared);
    let svc = service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
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

/// A request, read whole, with its path split and decoded.
#[derive(Debug)]
pub(crate) struct Req {
    /// The method.
    pub method: Method,
    /// The decoded path segments (after the leading `/`).
    pub segments: Vec<String>,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Req {
    /// The first query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as `T`: `M_NOT_JSON` if it is not JSON, `M_BAD_JSON` if it is JSON of another
    /// shape (request bodies are always objects). An empty body reads as `{}` (clients send none
    /// for POSTs without parameters).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        let value: Value = if self.body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&self.body).map_err(|e| MatrixError::NotJson(e.to_string()))?
        };
        if !value.is_object() {
            return Err(MatrixError::BadJson(
                "the body must be a JSON object".into(),
            ));
        }
        serde_json::from_value(value).map_err(|e| MatrixError::BadJson(e.to_string()))
    }

    /// The access token: `Authorization: Bearer …`, else the `access_token` query parameter.
    pub fn token(&self) -> Option<&str> {
        if let Some(v) = self.headers.get(http::header::AUTHORIZATION) {
            let v = v.to_str().ok()?;
            let (scheme, token) = v.split_once(' ')?;
            return scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty());
        }
        self.query("access_token").filter(|t| !t.is_empty())
    }

    /// The `Host` header (for `.well-known`).
    pub fn host(&self) -> Option<&str> {
        self.headers.get(http::header::HOST)?.to_str().ok()
    }
}

/// One request → one response; every failure becomes a Matrix error here.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    if method == Method::OPTIONS {
        // CORS preflight: any path, no auth.
        return respond(StatusCode::OK, &Value::Object(Default::default()));
    }
    let result = async {
        let req = read(req).await?;
        router::dispatch(shared, &req).await
    }
    .await;
    match result {
        Ok(value) => {
            tracing::debug!(%method, ms = started.elapsed().as_millis() as u64, "matrix: ok");
            respond(StatusCode::OK, &value)
        }
        Err(err) => {
            let parts = err.response_parts();
            tracing::debug!(
                %method,
                status = parts.status.as_u16(),
                errcode = parts.errcode,
                cause = %err,
                "matrix: error"
            );
            respond(
                parts.status,
                &serde_json::json!({ "errcode": parts.errcode, "error": parts.message }),
            )
        }
    }
}

/// Reads the body (at most [`MAX_BODY_BYTES`]) and decodes the path and query. A body over the
/// limit is still read and dropped up to [`DRAIN_BYTES`], so the client gets its 413 on a clean
/// connection; beyond that the connection is closed after the answer.
async fn read(req: Request<Incoming>) -> Result<Req, MatrixError> {
    let (parts, mut body) = req.into_parts();
    let too_large = || MatrixError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    if let Some(len) = parts.headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| MatrixError::param("Content-Length", "not a number"))?;
        if len > DRAIN_BYTES as u64 {
            return Err(too_large());
        }
    }
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
    let body = buf.freeze();
    let path = parts.uri.path();
    let segments = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| percent_decode(s, false).ok_or_else(|| MatrixError::param("path", "bad escape")))
        .collect::<Result<Vec<_>, _>>()?;
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    Ok(Req {
        method: parts.method,
        segments,
        query,
        headers: parts.headers,
        body,
    })
}

/// `a=1&b=x%20y` → pairs; `+` is a space in queries.
pub(crate) fn parse_query(q: &str) -> Result<Vec<(String, String)>, MatrixError> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (percent_decode(k, true), percent_decode(v, true)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(MatrixError::param("query", "bad escape")),
            }
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space if `plus`); `None` for a bad escape or bytes that
/// are not UTF-8.
pub(crate) fn percent_decode(s: &str, plus: bool) -> Option<String> {
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
            b'+' if plus => {
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

/// A JSON response with the CORS headers Matrix web clients need.
fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization, Date"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("%21abc%3Alocalhost", false).as_deref(),
            Some("!abc:localhost")
        );
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("%", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
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

    fn req(body: &str) -> Req {
        Req {
            method: Method::POST,
            segments: vec![],
            query: vec![],
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn json_errors_tell_syntax_from_shape() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        assert!(matches!(req("{").json::<T>(), Err(MatrixError::NotJson(_))));
        assert!(matches!(
            req("nope").json::<T>(),
            Err(MatrixError::NotJson(_))
        ));
        assert!(matches!(
            req(r#"{"a":"x"}"#).json::<T>(),
            Err(MatrixError::BadJson(_))
        ));
        assert!(matches!(
            req("[1]").json::<T>(),
            Err(MatrixError::BadJson(_))
        ));
        assert!(matches!(req(r#"{"a":1}"#).json::<T>(), Ok(T { a: 1 })));
    }
}
