//! The devnet's file server: the HTTP API of session-file-server (spec §7.2) on 127.0.0.1,
//! reached directly or, as clients do, through an onion request (v4) that a snode proxies to
//! `POST /oxen/v4/lsrpc`.
//!
//! Routes:
//! - `POST /file`: raw body → `{"id", "expires"}`; empty or over the size limit → 413.
//!   `X-FS-TTL: <seconds>` is honoured only when [`FileServerConfig::max_ttl`] is set.
//! - `GET /file/<id>`: the bytes (`application/octet-stream`, `Expires`); unknown or expired
//!   → 404 `{"status_code":404}`.
//! - `GET /file/<id>/info` and `POST /file/<id>/extend` → `{size, uploaded, expires}`;
//!   extend only ever moves the expiry later and refuses IDs shorter than 44 characters (404).
//! - Legacy `POST /files` (`{"file": base64}` → `{"result", "status_code"}`) and
//!   `GET /files/<id>` (`{"status_code":200,"result": base64}`).
//! - `POST /oxen/v4/lsrpc`: the onion layer encrypted to the server's X25519 key; the v4
//!   request inside runs as a subrequest and its bencoded reply goes back encrypted.
//!
//! Files live in memory. Time is the host clock plus an offset a test can move
//! ([`FileServer::set_clock_offset_ms`]), so expiry is tested without waiting three weeks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use serde_json::{json, Value};
use session_proto::attachment::hashed_file_id;
use session_proto::bencode::{V4Request, V4Response};
use session_proto::onion::open_server_request;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::err::DevnetError;
use crate::topology::NodeKeys;

/// The file server's default size limit (what clients cap uploads at).
pub const DEFAULT_MAX_FILE_SIZE: usize = 10_000_000;
/// The default expiry: three weeks.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(21 * 24 * 3600);
/// Requests kept in the log; older ones are dropped first.
pub const REQUEST_LOG_CAPACITY: usize = 1_000;
/// Room for the onion layer and v4 framing around an upload.
const ONION_OVERHEAD: usize = 64 * 1024;

/// How file IDs are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIds {
    /// `base64url(BLAKE2b-264(data, salt))`, 44 characters; identical uploads share an ID.
    Hashed,
    /// A random decimal number below 2^53 (the server's `BACKWARDS_COMPAT_IDS`).
    Numeric,
}

/// How to run a file server.
#[derive(Debug, Clone)]
pub struct FileServerConfig {
    /// Port on 127.0.0.1; `None` = ephemeral.
    pub port: Option<u16>,
    /// Largest upload in bytes (413 above; default 10,000,000).
    pub max_file_size: usize,
    /// How long an upload or an extension lasts (default three weeks).
    pub expiry: Duration,
    /// Largest `X-FS-TTL` accepted; `None` (the default) ignores the header.
    pub max_ttl: Option<Duration>,
    /// ID kind (default [`FileIds::Hashed`], the kind desktop expects since 2025-11).
    pub ids: FileIds,
    /// Ed25519 seed of the server's key; `None` = random.
    pub seed: Option<[u8; 32]>,
}

impl Default for FileServerConfig {
    fn default() -> Self {
        FileServerConfig {
            port: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            expiry: DEFAULT_EXPIRY,
            max_ttl: None,
            ids: FileIds::Hashed,
            seed: None,
        }
    }
}

/// A fault the server plays, for tests of what clients do with a bad file server
/// ([`FileServer::set_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFault {
    /// Every request: 503, as a server that is down behind its proxy.
    Unavailable,
    /// Downloads: 200 with an HTML page (a captive portal or a proxy's error page).
    Html,
    /// Downloads: one byte of the file flipped (fails the digest).
    Corrupt,
    /// Downloads: only the first half of the file.
    Truncate,
    /// Downloads: the file followed by zeros up to 10,300,000 bytes (over any blob's size).
    Oversize,
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    /// HTTP method.
    pub method: String,
    /// Path (for onion requests, the inner endpoint).
    pub path: String,
    /// Whether it came inside an onion request.
    pub via_onion: bool,
    /// Status answered.
    pub status: u16,
}

#[derive(Debug)]
struct StoredFile {
    data: Bytes,
    uploaded_ms: i64,
    expires_ms: i64,
}

#[derive(Debug)]
struct Shared {
    config: FileServerConfig,
    keys: NodeKeys,
    clock_offset_ms: AtomicI64,
    // std Mutexes: never held across an await.
    files: Mutex<HashMap<String, StoredFile>>,
    log: Mutex<VecDeque<FileRequest>>,
    fault: Mutex<Option<FileFault>>,
}

/// A running file server. Dropping it without [`FileServer::shutdown`] aborts it.
#[derive(Debug)]
pub struct FileServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    purger: JoinHandle<()>,
}

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl Answer {
    fn json(status: u16, v: Value) -> Answer {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "application/json".into());
        Answer {
            status,
            headers,
            body: Bytes::from(v.to_string()),
        }
    }

    /// The server's error form: `{"status_code": N}` with status N.
    fn error(status: u16) -> Answer {
        Answer::json(status, json!({ "status_code": status }))
    }

    fn text(status: u16, s: &str) -> Answer {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "text/plain; charset=utf-8".into());
        Answer {
            status,
            headers,
            body: Bytes::from(s.to_owned()),
        }
    }

    fn into_http(self) -> hyper::Response<Full<Bytes>> {
        let mut resp = hyper::Response::new(Full::new(self.body));
        *resp.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

impl FileServer {
    /// Starts a file server on 127.0.0.1 and returns once it accepts connections.
    pub async fn start(config: FileServerConfig) -> Result<FileServer, DevnetError> {
        let port = config.port.unwrap_or(0);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|source| DevnetError::ServerBind {
                server: "file server",
                port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevnetError::ServerBind {
                server: "file server",
                port,
                source,
            })?;
        let keys = match &config.seed {
            Some(seed) => NodeKeys::from_seed(seed),
            None => NodeKeys::generate(&mut rand::rngs::OsRng),
        };
        let shared = Arc::new(Shared {
            config,
            keys,
            clock_offset_ms: AtomicI64::new(0),
            files: Mutex::default(),
            log: Mutex::default(),
            fault: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(shared.clone(), listener, stopped));
        let weak = Arc::downgrade(&shared);
        let purger = tokio::spawn(async move {
            // Expiry purge once a second, on the server's own clock.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { break };
                let now = s.now_ms();
                s.files
                    .lock()
                    .expect("files lock is never poisoned")
                    .retain(|_, f| f.expires_ms > now);
            }
        });
        Ok(FileServer {
            shared,
            addr,
            stop,
            task,
            purger,
        })
    }

    /// `http://127.0.0.1:PORT`, the base of file URLs.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Ed25519 public key (what a `p=` URL fragment names).
    pub fn ed25519(&self) -> [u8; 32] {
        self.shared.keys.ed25519
    }

    /// X25519 public key (what onion requests encrypt to).
    pub fn x25519(&self) -> [u8; 32] {
        self.shared.keys.x25519
    }

    /// Moves the server's clock by `ms` (positive = ahead): files expire by this clock.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.shared.clock_offset_ms.store(ms, Ordering::Relaxed);
    }

    /// Plays `fault` from now on (`None`: behave).
    pub fn set_fault(&self, fault: Option<FileFault>) {
        *self
            .shared
            .fault
            .lock()
            .expect("fault lock is never poisoned") = fault;
    }

    /// Number of files held (expired ones may linger up to a second).
    pub fn file_count(&self) -> usize {
        self.shared
            .files
            .lock()
            .expect("files lock is never poisoned")
            .len()
    }

    /// The requests answered so far, oldest first (last [`REQUEST_LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<FileRequest> {
        let log = self.shared.log.lock().expect("log lock is never poisoned");
        log.iter().cloned().collect()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.purger.abort();
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.purger.abort();
        self.task.abort();
    }
}

async fn serve(shared: Arc<Shared>, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
        };
        let Ok((tcp, _peer)) = accepted else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let mut conn_stopped = stopped.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(shared.route(req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_stopped.changed() => {}
            }
        });
    }
}

impl Shared {
    fn now_ms(&self) -> i64 {
        let host = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        host + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    fn record(&self, method: &str, path: &str, via_onion: bool, status: u16) {
        let mut log = self.log.lock().expect("log lock is never poisoned");
        if log.len() == REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(FileRequest {
            method: method.to_owned(),
            path: path.chars().take(200).collect(),
            via_onion,
            status,
        });
    }

    async fn route(self: Arc<Self>, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let method = req.method().as_str().to_owned();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let headers: BTreeMap<String, String> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let limit = self.config.max_file_size.saturating_mul(2) + ONION_OVERHEAD;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let status = if e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    413
                } else {
                    400
                };
                self.record(&method, &path, false, status);
                return Answer::error(status).into_http();
            }
        };
        let answer = if method == "POST" && path == "/oxen/v4/lsrpc" {
            self.onion(&body)
        } else {
            self.handle(&method, &path, &headers, body)
        };
        self.record(&method, &path, false, answer.status);
        answer.into_http()
    }

    /// An onion request: open the layer, run the v4 request inside, seal the reply. A layer
    /// that does not open is a plain 400 (the server cannot encrypt to an unknown key).
    fn onion(&self, body: &[u8]) -> Answer {
        let Ok((plain, reply)) = open_server_request(&self.keys.onion, body) else {
            return Answer::error(400);
        };
        let response = match V4Request::decode(&plain) {
            Ok(req) => {
                let headers = req
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect();
                let body = Bytes::from(req.body.unwrap_or_default());
                let a = self.handle(&req.method, &req.endpoint, &headers, body);
                self.record(&req.method, &req.endpoint, true, a.status);
                let mut headers = a.headers;
                headers.remove("content-length");
                V4Response {
                    code: a.status,
                    headers,
                    body: a.body.to_vec(),
                }
            }
            Err(_) => {
                let a = Answer::text(400, "Invalid v4 onion request");
                V4Response {
                    code: a.status,
                    headers: a.headers,
                    body: a.body.to_vec(),
                }
            }
        };
        let sealed = reply
            .key()
            .encrypt(&mut rand::rngs::OsRng, &response.encode());
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "application/octet-stream".into());
        Answer {
            status: 200,
            headers,
            body: Bytes::from(sealed),
        }
    }

    /// One request, direct or from inside an onion request.
    fn handle(
        &self,
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: Bytes,
    ) -> Answer {
        let (path, _query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let fault = *self.fault.lock().expect("fault lock is never poisoned");
        if fault == Some(FileFault::Unavailable) {
            return Answer::error(503);
        }
        match (method, parts.as_slice()) {
            ("POST", ["file"]) => self.upload(headers, body, false),
            ("POST", ["files"]) => self.upload_legacy(&body),
            ("GET", ["file", id]) => match (fault, self.download(id)) {
                (Some(f), a) if a.status == 200 => faulty(f, a),
                (_, a) => a,
            },
            ("GET", ["files", id]) => self.download_legacy(id),
            ("GET", ["file", id, "info"]) => self.info(id),
            ("POST", ["file", id, "extend"]) => self.extend(id, headers),
            (_, ["file"] | ["files"] | ["file", _] | ["files", _])
            | (_, ["file", _, "info" | "extend"]) => Answer::error(405),
            _ => Answer::error(404),
        }
    }

    /// The TTL of an upload or extension: the default, or `X-FS-TTL` when allowed; `Err` is
    /// a 400.
    fn ttl_ms(&self, headers: &BTreeMap<String, String>) -> Result<i64, Answer> {
        let default = self.config.expiry.as_millis() as i64;
        let (Some(max), Some(v)) = (self.config.max_ttl, headers.get("x-fs-ttl")) else {
            return Ok(default);
        };
        match v.trim().parse::<u64>() {
            Ok(s) if s <= max.as_secs() => Ok((s as i64).saturating_mul(1000)),
            _ => Err(Answer::error(400)),
        }
    }

    fn upload(&self, headers: &BTreeMap<String, String>, body: Bytes, legacy: bool) -> Answer {
        if body.is_empty() || body.len() > self.config.max_file_size {
            return Answer::error(413);
        }
        let ttl = match self.ttl_ms(headers) {
            Ok(t) => t,
            Err(a) => return a,
        };
        let now = self.now_ms();
        let mut files = self.files.lock().expect("files lock is never poisoned");
        files.retain(|_, f| f.expires_ms > now);
        let (id, expires_ms) = match self.config.ids {
            FileIds::Hashed => {
                let id = hashed_file_id(&body);
                let f = files.entry(id.clone()).or_insert(StoredFile {
                    data: body,
                    uploaded_ms: now,
                    expires_ms: now + ttl,
                });
                // A repeat upload refreshes the upload time and never shortens the expiry.
                f.uploaded_ms = now;
                f.expires_ms = f.expires_ms.max(now + ttl);
                (id, f.expires_ms)
            }
            FileIds::Numeric => {
                let mut rng = rand::thread_rng();
                let id = loop {
                    let n: u64 = rng.gen_range(1..(1u64 << 53));
                    if !files.contains_key(&n.to_string()) {
                        break n.to_string();
                    }
                };
                files.insert(
                    id.clone(),
                    StoredFile {
                        data: body,
                        uploaded_ms: now,
                        expires_ms: now + ttl,
                    },
                );
                (id, now + ttl)
            }
        };
        if legacy {
            let result = match (self.config.ids, id.parse::<u64>()) {
                (FileIds::Numeric, Ok(n)) => json!(n),
                _ => json!(id),
            };
            Answer::json(200, json!({ "result": result, "status_code": 200 }))
        } else {
            Answer::json(200, json!({ "id": id, "expires": secs(expires_ms) }))
        }
    }

    fn upload_legacy(&self, body: &[u8]) -> Answer {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Answer::error(400);
        };
        let Some(b64) = v.get("file").and_then(Value::as_str) else {
            return Answer::error(400);
        };
        if b64.is_empty() || b64.len() > self.config.max_file_size.div_ceil(3) * 4 {
            return Answer::error(413);
        }
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Answer::error(400);
        };
        self.upload(&BTreeMap::new(), Bytes::from(data), true)
    }

    /// The live file `id`: (data, uploaded, expires).
    fn live(&self, id: &str) -> Option<(Bytes, i64, i64)> {
        let now = self.now_ms();
        let files = self.files.lock().expect("files lock is never poisoned");
        files
            .get(id)
            .filter(|f| f.expires_ms > now)
            .map(|f| (f.data.clone(), f.uploaded_ms, f.expires_ms))
    }

    fn download(&self, id: &str) -> Answer {
        let Some((data, _, expires_ms)) = self.live(id) else {
            return Answer::error(404);
        };
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "application/octet-stream".into());
        let expires = UNIX_EPOCH + Duration::from_millis(expires_ms.max(0) as u64);
        headers.insert("expires".into(), httpdate::fmt_http_date(expires));
        Answer {
            status: 200,
            headers,
            body: data,
        }
    }

    fn download_legacy(&self, id: &str) -> Answer {
        let Some((data, _, _)) = self.live(id) else {
            return Answer::error(404);
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        Answer::json(200, json!({ "status_code": 200, "result": b64 }))
    }

    fn info(&self, id: &str) -> Answer {
        match self.live(id) {
            Some((data, uploaded, expires)) => Answer::json(
                200,
                json!({ "size": data.len(), "uploaded": secs(uploaded), "expires": secs(expires) }),
            ),
            None => Answer::error(404),
        }
    }

    fn extend(&self, id: &str, headers: &BTreeMap<String, String>) -> Answer {
        let ttl = match self.ttl_ms(headers) {
            Ok(t) => t,
            Err(a) => return a,
        };
        // Numeric (backwards-compatible) IDs could have been reused after expiring.
        if id.len() < 44 {
            return Answer::error(404);
        }
        let now = self.now_ms();
        let mut files = self.files.lock().expect("files lock is never poisoned");
        match files.get_mut(id).filter(|f| f.expires_ms > now) {
            Some(f) => {
                f.expires_ms = f.expires_ms.max(now + ttl);
                Answer::json(
                    200,
                    json!({
                        "size": f.data.len(),
                        "uploaded": secs(f.uploaded_ms),
                        "expires": secs(f.expires_ms),
                    }),
                )
            }
            None => Answer::error(404),
        }
    }
}

/// Milliseconds since the epoch as the server's float seconds.
/// A download answer with `fault` played on it.
fn faulty(fault: FileFault, mut a: Answer) -> Answer {
    match fault {
        FileFault::Unavailable => Answer::error(503),
        FileFault::Html => {
            a.headers
                .insert("content-type".into(), "text/html; charset=utf-8".into());
            a.body =
                Bytes::from_static(b"<html><body>Service temporarily unavailable</body></html>");
            a
        }
        FileFault::Corrupt => {
            let mut v = a.body.to_vec();
            let mid = v.len() / 2;
            if let Some(b) = v.get_mut(mid) {
                *b ^= 0x01;
            }
            a.body = Bytes::from(v);
            a
        }
        FileFault::Truncate => {
            a.body = a.body.slice(..a.body.len() / 2);
            a
        }
        FileFault::Oversize => {
            let mut v = a.body.to_vec();
            v.resize(v.len().max(10_300_000), 0);
            a.body = Bytes::from(v);
            a
        }
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_have_the_servers_shape() {
        let a = Answer::error(404);
        assert_eq!(a.status, 404);
        assert_eq!(&a.body[..], br#"{"status_code":404}"#);
        let t = Answer::text(400, "x");
        assert_eq!(t.headers["content-type"], "text/plain; charset=utf-8");
    }
}
