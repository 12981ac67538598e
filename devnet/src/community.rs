//! A community server (SOGS) of the devnet: the HTTP API subset of spec
//! communities-and-files.md §2 and §4 on plain HTTP on 127.0.0.1, reachable directly and
//! through the devnet's snodes as onion v4 requests (`POST /oxen/v4/lsrpc`, encrypted to the
//! server's X25519 key).
//!
//! ```no_run
//! # async fn demo() -> Result<(), session_devnet::DevnetError> {
//! use session_devnet::community::{CommunityConfig, CommunityServer, RoomSpec};
//! let server = CommunityServer::start(CommunityConfig {
//!     rooms: vec![RoomSpec::new("lobby", "Lobby"), RoomSpec::new("news", "News").read_only()],
//!     ..Default::default()
//! }).await?;
//! println!("join {}", server.room_url("lobby"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Requests are authenticated as pysogs does (session-proto's [`parse_auth`]): all four
//! X-SOGS-* headers or none (400), blinded keys only when `require_blind` (400), timestamps
//! within 24 h (425), banned users refused before the signature check (403), a reused nonce
//! (425), then the signature over the URL-decoded path and raw query (401).
//!
//! # Layout
//! - this file: [`CommunityServer`], its config, the HTTP listener, auth and onion v4.
//! - `state`: rooms, messages, permissions, bans, DMs.
//! - `routes`: the endpoints.

mod routes;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::RngCore as _;
use session_proto::account_id::AccountId;
use session_proto::bencode::{V4Request, V4Response};
use session_proto::community::auth::{
    parse_auth, AuthHeaders, HEADER_NONCE, HEADER_PUBKEY, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use session_proto::community::url::{check_room_token, CommunityUrl, Scheme, ServerUrl};
use session_proto::onion::{open_server_request, NodeKeys};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::err::DevnetError;
use routes::{Request, Response};
use state::{ModRole, Perms, Room, State};

/// Largest request body the server reads (pysogs' upload limit is 10 MB).
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// The onion v4 endpoint.
pub const ONION_V4_PATH: &str = "/oxen/v4/lsrpc";

/// One room to create at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSpec {
    /// Token, `[A-Za-z0-9_-]{1,64}`.
    pub token: String,
    /// Display name.
    pub name: String,
    /// Description (the room's topic).
    pub description: Option<String>,
    /// Everyone may read.
    pub default_read: bool,
    /// Everyone may post (`false` = a read-only room; moderators still post).
    pub default_write: bool,
}

impl RoomSpec {
    /// A readable, writable room.
    pub fn new(token: &str, name: &str) -> RoomSpec {
        RoomSpec {
            token: token.into(),
            name: name.into(),
            description: None,
            default_read: true,
            default_write: true,
        }
    }
    /// The same room, read-only for everyone but moderators.
    pub fn read_only(mut self) -> RoomSpec {
        self.default_write = false;
        self
    }
    /// The same room with a description.
    pub fn describe(mut self, d: &str) -> RoomSpec {
        self.description = Some(d.into());
        self
    }
}

/// How to start a community server.
#[derive(Debug, Clone)]
pub struct CommunityConfig {
    /// Rooms to create.
    pub rooms: Vec<RoomSpec>,
    /// Port on 127.0.0.1; `None` = ephemeral.
    pub port: Option<u16>,
    /// The X25519 secret key; `None` = a fresh one.
    pub secret_key: Option<[u8; 32]>,
    /// Refuse unblinded (`00`) keys and advertise `blind` (default true, as pysogs).
    pub require_blind: bool,
}

impl Default for CommunityConfig {
    fn default() -> Self {
        CommunityConfig {
            rooms: Vec::new(),
            port: None,
            secret_key: None,
            require_blind: true,
        }
    }
}

/// State shared by the listener tasks and the handle.
#[derive(Debug)]
pub(crate) struct CommunityShared {
    keys: NodeKeys,
    require_blind: bool,
    // std Mutex: handlers lock, work synchronously, unlock; never held across an await.
    state: Mutex<State>,
}

impl CommunityShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("community state lock is never poisoned")
    }
}

/// A running community server. Dropping it without [`CommunityServer::shutdown`] aborts it.
#[derive(Debug)]
pub struct CommunityServer {
    shared: Arc<CommunityShared>,
    addr: SocketAddr,
    // std Mutex: only swapped, never held across an await.
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl CommunityServer {
    /// Starts the server and returns once it accepts connections.
    pub async fn start(config: CommunityConfig) -> Result<CommunityServer, DevnetError> {
        let mut state = State::default();
        let now = now_secs();
        for r in &config.rooms {
            check_room_token(&r.token)
                .map_err(|e| DevnetError::Config(format!("room {:?}: {e}", r.token)))?;
            if state.rooms.contains_key(&r.token) {
                return Err(DevnetError::Config(format!("room {:?} twice", r.token)));
            }
            let perms = Perms {
                read: r.default_read,
                write: r.default_write,
                upload: r.default_write,
                accessible: true,
            };
            state.rooms.insert(
                r.token.clone(),
                Room::new(&r.token, &r.name, r.description.clone(), perms, now),
            );
        }
        let secret = config.secret_key.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut s);
            s
        });
        let shared = Arc::new(CommunityShared {
            keys: NodeKeys::new(secret),
            require_blind: config.require_blind,
            state: Mutex::new(state),
        });
        let listener = bind(config.port.unwrap_or(0)).await?;
        let addr = listener.local_addr().map_err(|source| DevnetError::Bind {
            node: usize::MAX,
            port: config.port.unwrap_or(0),
            source,
        })?;
        let running = serve(shared.clone(), listener);
        Ok(CommunityServer {
            shared,
            addr,
            running: Mutex::new(Some(running)),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> ServerUrl {
        ServerUrl::new(Scheme::Http, "127.0.0.1", self.addr.port())
            .expect("a loopback IP and port make a valid server URL")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's X25519 public key (the URL's `public_key`, the onion v4 destination).
    pub fn pubkey(&self) -> [u8; 32] {
        *self.shared.keys.public()
    }

    /// The join URL of a room (whether or not it exists).
    pub fn room_url(&self, token: &str) -> CommunityUrl {
        CommunityUrl::new(self.url(), token, self.pubkey())
            .expect("room tokens are checked when rooms are created")
    }

    /// Room tokens.
    pub fn rooms(&self) -> Vec<String> {
        self.shared.lock().rooms.keys().cloned().collect()
    }

    /// Creates a room at run time (like `sogs --add-room`).
    pub fn add_room(&self, spec: &RoomSpec) -> Result<(), DevnetError> {
        check_room_token(&spec.token).map_err(|e| DevnetError::Config(e.to_string()))?;
        let perms = Perms {
            read: spec.default_read,
            write: spec.default_write,
            upload: spec.default_write,
            accessible: true,
        };
        let mut st = self.shared.lock();
        if st.rooms.contains_key(&spec.token) {
            return Err(DevnetError::Config(format!("room {:?} exists", spec.token)));
        }
        let room = Room::new(
            &spec.token,
            &spec.name,
            spec.description.clone(),
            perms,
            now_secs(),
        );
        st.rooms.insert(spec.token.clone(), room);
        Ok(())
    }

    /// Deletes a room and everything in it (clients then get 404).
    pub fn delete_room(&self, token: &str) -> bool {
        self.shared.lock().rooms.remove(token).is_some()
    }

    /// Makes `id` (`15…` or `05…`) a moderator, or an admin, of a room; `None` = globally
    /// (like `sogs --add-moderators`).
    pub fn add_moderator(
        &self,
        room: Option<&str>,
        id: &AccountId,
        admin: bool,
    ) -> Result<(), DevnetError> {
        let role = ModRole {
            admin,
            visible: true,
        };
        let mut st = self.shared.lock();
        match room {
            None => {
                st.global_mods.insert(*id, role);
            }
            Some(t) => {
                let r = st
                    .rooms
                    .get_mut(t)
                    .ok_or_else(|| DevnetError::Config(format!("no room {t:?}")))?;
                r.mods.insert(*id, role);
                r.info_updates += 1;
            }
        }
        Ok(())
    }

    /// The number of live (not deleted) posts in a room.
    pub fn post_count(&self, token: &str) -> usize {
        self.shared.lock().rooms.get(token).map_or(0, |r| {
            r.messages.values().filter(|m| m.data.is_some()).count()
        })
    }

    /// Stops accepting connections (state is kept; [`CommunityServer::restart`] resumes).
    pub async fn stop(&self) {
        let running = self.running.lock().expect("lock is never poisoned").take();
        if let Some(r) = running {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
    }

    /// Listens again on the same port with the same state.
    pub async fn restart(&self) -> Result<(), DevnetError> {
        self.stop().await;
        let listener = bind(self.addr.port()).await?;
        let running = serve(self.shared.clone(), listener);
        *self.running.lock().expect("lock is never poisoned") = Some(running);
        Ok(())
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.stop().await;
    }
}

impl Drop for CommunityServer {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            if let Some(r) = r.take() {
                r.task.abort();
            }
        }
    }
}

async fn bind(port: u16) -> Result<TcpListener, DevnetError> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|source| DevnetError::Bind {
            node: usize::MAX,
            port,
            source,
        })
}

fn serve(shared: Arc<CommunityShared>, listener: TcpListener) -> Running {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let _ = tcp.set_nodelay(true);
            let shared = shared.clone();
            let mut conn_stopped = stopped.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(http(shared, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = conn_stopped.changed() => {}
                }
            });
        }
    });
    Running { stop, task }
}

fn to_http(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(r.code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(r.content_type),
    );
    resp
}

/// One HTTP request: the onion v4 endpoint, or an API call.
async fn http(
    shared: Arc<CommunityShared>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_ascii_lowercase(), v.to_owned());
        }
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return to_http(Response::text(413, "Request body too large")),
    };
    if path == ONION_V4_PATH && method == "POST" {
        return onion_v4(&shared, &body);
    }
    to_http(serve_request(
        &shared, &method, &path, &query, &headers, &body,
    ))
}

/// `POST /oxen/v4/lsrpc`: open the layer, run the inner request, encrypt the bencoded reply.
fn onion_v4(shared: &CommunityShared, body: &[u8]) -> hyper::Response<Full<Bytes>> {
    let Ok((plaintext, reply)) = open_server_request(&shared.keys, body) else {
        return to_http(Response::text(400, "Invalid ciphertext"));
    };
    let resp = match V4Request::decode(&plaintext) {
        Ok(v4) => {
            let (path, query) = v4.endpoint.split_once('?').unwrap_or((&v4.endpoint, ""));
            let headers: BTreeMap<String, String> = v4
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            serve_request(
                shared,
                &v4.method,
                path,
                query,
                &headers,
                v4.body.as_deref().unwrap_or_default(),
            )
        }
        Err(e) => Response::text(400, &format!("Invalid v4 request: {e}")),
    };
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_string(), resp.content_type.to_string());
    let plain = V4Response {
        code: resp.code,
        headers,
        body: resp.body,
    }
    .encode();
    let sealed = reply.key().encrypt(&mut rand::rngs::OsRng, &plain);
    let mut out = hyper::Response::new(Full::new(Bytes::from(sealed)));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    out
}

/// Authenticates and dispatches one API request (`path` as sent, possibly %-encoded).
fn serve_request(
    shared: &CommunityShared,
    method: &str,
    raw_path: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let Some(path) = percent_decode(raw_path) else {
        return Response::text(400, "Invalid path encoding");
    };
    let now = now_secs();
    let h = |name: &str| headers.get(&name.to_ascii_lowercase()).map(String::as_str);
    let auth = AuthHeaders {
        pubkey: h(HEADER_PUBKEY),
        nonce: h(HEADER_NONCE),
        timestamp: h(HEADER_TIMESTAMP),
        signature: h(HEADER_SIGNATURE),
    };
    let user = match parse_auth(&auth, now as u64, shared.require_blind) {
        Err(e) => return Response::text(e.status(), &e.to_string()),
        Ok(None) => None,
        Ok(Some(parsed)) => {
            let signer = parsed.signer;
            {
                let mut st = shared.lock();
                if st.global_bans.contains(&signer) {
                    return Response::text(403, "Banned");
                }
                if !st.use_nonce(&signer, parsed.nonce) {
                    return Response::text(425, "Invalid authentication: nonce already used");
                }
            }
            let signed_path = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            };
            if let Err(e) = parsed.verify(shared.keys.public(), method, &signed_path, body) {
                return Response::text(e.status(), &e.to_string());
            }
            shared.lock().users.insert(signer);
            Some(signer)
        }
    };
    let json = h("content-type").is_some_and(|c| c.starts_with("application/json"));
    routes::handle(
        shared,
        user.as_ref(),
        &Request {
            method,
            path: &path,
            query,
            body,
            json,
        },
        now,
    )
}

/// Decodes `%XX` escapes (the path as Flask sees it); `None` for bad escapes or non-UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(
            percent_decode("/room/x/reaction/1/%F0%9F%91%8D").as_deref(),
            Some("/room/x/reaction/1/👍")
        );
        assert_eq!(percent_decode("/%4"), None);
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }
}
