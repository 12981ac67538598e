//! One snode: its HTTPS server and routes, its observable request log and its fault knobs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::err::DevnetError;
use crate::revocations::Revocations;
use crate::store::Store;
use crate::topology::{NodeKeys, Topology};

/// Largest request body a node reads (413 above it).
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// How much of an oversized body a node still reads (and drops) before it answers 413, so a
/// client that is still writing gets the 413 rather than a reset connection; a larger body is
/// cut off at this point.
const DRAIN_LIMIT: usize = 4 * MAX_REQUEST_BODY;
/// Events kept per node; older ones are dropped first.
pub const EVENT_LOG_CAPACITY: usize = 10_000;
/// Header carrying the sending node's Ed25519 key on devnet-internal routes.
pub(crate) const PEER_HEADER: &str = "x-devnet-peer";
/// Header carrying the devnet's shared secret on devnet-internal routes.
pub(crate) const TOKEN_HEADER: &str = "x-devnet-token";

/// Where an onion request came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// From outside the devnet (a client) on `/onion_req/v2`.
    Client,
    /// Relayed by the devnet node with this Ed25519 key (hex).
    Node(String),
}

/// What a node saw, in order. Full Account IDs (only their first 10 hex characters, in
/// [`Event::OnionTraced`]), keys of clients and message bodies are never
/// recorded; node keys (public, part of the topology) are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// A direct `POST /storage_rpc/v1` call.
    DirectRpc {
        /// The method (`batch` for a batch; the subrequests are not listed).
        method: String,
    },
    /// An onion request arrived (before decryption).
    OnionArrived {
        /// Who sent it.
        from: Origin,
    },
    /// This node relayed an onion layer to the next node.
    OnionRelayed {
        /// Ed25519 (hex) of the next node.
        to: String,
    },
    /// This node was the final hop and ran a storage RPC.
    OnionFinal {
        /// The method (empty if the body had none).
        method: String,
    },
    /// This node proxied an onion request to a server.
    OnionProxied {
        /// `host:port` of the server.
        target: String,
    },
    /// An onion request was rejected with a plain-text error at this node.
    OnionRejected {
        /// HTTP status returned.
        status: u16,
    },
    /// A swarm peer forwarded a recursive method (store, delete, expire, …) here.
    Replicated {
        /// The method.
        method: String,
        /// Ed25519 (hex) of the entry node.
        from: String,
    },
    /// A JSON-RPC call on the seed endpoint `/json_rpc`.
    SeedRpc {
        /// The method.
        method: String,
    },
    /// This node was a guard: a client connection from `client` sent it an onion request.
    OnionEntered {
        /// The client connection's address (ip:port: one TCP connection).
        client: std::net::SocketAddr,
    },
    /// This node was the final hop of an onion request and ran a storage RPC for `accounts`;
    /// the request entered the devnet at `guard` from the client connection `client`. The
    /// devnet's record of which guard carried whose traffic.
    OnionTraced {
        /// Ed25519 (hex) of the guard it entered through.
        guard: String,
        /// The client connection the guard got it on.
        client: std::net::SocketAddr,
        /// The storage RPC's method (`batch` for a batch).
        method: String,
        /// The accounts the request names (each shortened to its first 10 hex characters).
        accounts: Vec<String>,
    },
}

/// Bounded in-order log of a node's events.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    // std Mutex: push/clone only, never held across an await.
    events: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub(crate) fn push(&self, e: Event) {
        let mut ev = self.events.lock().expect("event lock is never poisoned");
        if ev.len() == EVENT_LOG_CAPACITY {
            ev.pop_front();
        }
        ev.push_back(e);
    }

    pub(crate) fn snapshot(&self) -> Vec<Event> {
        let ev = self.events.lock().expect("event lock is never poisoned");
        ev.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.events
            .lock()
            .expect("event lock is never poisoned")
            .clear();
    }
}

/// Fault knobs of a node, changeable at any time.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) clock_offset_ms: AtomicI64,
    pub(crate) drop_replies: AtomicBool,
    pub(crate) delay_ms: AtomicU64,
    /// An HTTP status every request is answered with (0: off).
    pub(crate) fail_status: AtomicU16,
}

/// Devnet-wide settings every node shares.
#[derive(Debug)]
pub(crate) struct NetShared {
    pub(crate) topology: Topology,
    pub(crate) client: session_net::HttpsTransport,
    /// Shared secret that marks devnet-internal requests (relay, replication).
    pub(crate) token: String,
    pub(crate) relay_timeout: Duration,
    pub(crate) replication_timeout: Duration,
    pub(crate) proxy_timeout: Duration,
}

/// A node's state, shared by its server tasks and its [`crate::NodeHandle`].
#[derive(Debug)]
pub(crate) struct NodeShared {
    pub(crate) index: usize,
    pub(crate) keys: NodeKeys,
    pub(crate) ed_hex: String,
    pub(crate) net: Arc<NetShared>,
    pub(crate) store: Store,
    pub(crate) revoked: Revocations,
    pub(crate) faults: Faults,
    pub(crate) events: EventLog,
    pub(crate) replicator: crate::replication::Replicator,
}

/// A reply body: JSON or plain text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Json(Value),
    Text(String),
}

/// A reply: HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Body,
}

impl Reply {
    pub(crate) fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            body: Body::Json(v),
        }
    }

    pub(crate) fn text(status: u16, s: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Body::Text(s.into()),
        }
    }

    /// A raw-bytes reply (onion ciphertext, relayed bodies) is carried as text when UTF-8 and
    /// otherwise through [`RawReply`].
    fn into_http(self) -> hyper::Response<Full<Bytes>> {
        let (ctype, bytes) = match self.body {
            Body::Json(v) => ("application/json", Bytes::from(v.to_string())),
            Body::Text(s) => ("text/plain; charset=utf-8", Bytes::from(s)),
        };
        http_response(self.status, ctype, bytes)
    }
}

fn http_response(status: u16, ctype: &str, body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(body));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// A reply whose body is raw bytes (onion replies, bodies passed back from the next hop).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl From<Reply> for RawReply {
    fn from(r: Reply) -> RawReply {
        let body = match r.body {
            Body::Json(v) => Bytes::from(v.to_string()),
            Body::Text(s) => Bytes::from(s),
        };
        RawReply {
            status: r.status,
            body,
        }
    }
}

impl NodeShared {
    /// This node's clock: the host clock plus the fault offset, in ms since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let host = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        host + self.faults.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Whether a request carries the devnet token; returns the peer's key (hex) if so.
    fn internal_peer(&self, req: &hyper::Request<Incoming>) -> Option<String> {
        let h = req.headers();
        let token = h.get(TOKEN_HEADER)?.to_str().ok()?;
        if token != self.net.token {
            return None;
        }
        let peer = h.get(PEER_HEADER)?.to_str().ok()?;
        let key = session_proto::storage_rpc::Ed25519Pubkey::from_hex(peer)?;
        self.net.topology.find_ed25519(&key.0)?;
        Some(peer.to_string())
    }

    async fn route(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        from: std::net::SocketAddr,
    ) -> Result<hyper::Response<Full<Bytes>>, DropReply> {
        let delay = self.faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.faults.drop_replies.load(Ordering::Relaxed) {
            return Err(DropReply);
        }
        let fail = self.faults.fail_status.load(Ordering::Relaxed);
        if fail != 0 {
            return Ok(Reply::text(fail, format!("devnet fault: status {fail}")).into_http());
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let post = method == http::Method::POST;
        let internal_peer = self.internal_peer(&req);
        // Where a relayed onion request entered the devnet (set by its guard; trusted only on
        // the token-checked internal route).
        let entry = internal_peer
            .as_ref()
            .and_then(|_| req.headers().get(crate::onion::ENTRY_HEADER))
            .and_then(|v| v.to_str().ok())
            .and_then(crate::onion::Entry::decode);
        let long_poll = req
            .headers()
            .get("x-loki-long-poll")
            .is_some_and(|v| !v.is_empty());
        let known_route = matches!(
            (post, path.as_str()),
            (true, "/storage_rpc/v1")
                | (true, "/onion_req/v2")
                | (true, "/json_rpc")
                | (true, "/ping_test/v1")
                | (true, "/devnet/v1/onion_relay")
                | (true, "/devnet/v1/storage_cc")
                | (true, crate::replication::MANY_ROUTE)
        ) || (method == http::Method::GET && path == "/get_stats/v1");
        if !known_route {
            return Ok(Reply::text(404, format!("{method} {path} Not Found")).into_http());
        }
        if path == "/get_stats/v1" {
            let v = crate::topology::VERSION;
            let version = format!("{}.{}.{}", v[0], v[1], v[2]);
            return Ok(Reply::json(200, serde_json::json!({ "version": version })).into_http());
        }
        if path == "/storage_rpc/v1" && long_poll {
            return Ok(Reply::text(
                410,
                "long polling is no longer supported, client upgrade required",
            )
            .into_http());
        }
        let body = match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return Ok(Reply::text(413, "Request body too large").into_http())
            }
            Err(BodyError::Unreadable) => {
                return Ok(Reply::text(400, "could not read request body").into_http())
            }
        };
        let reply: RawReply = match path.as_str() {
            "/storage_rpc/v1" => {
                let (method, reply) = self.clone().handle_rpc_body(&body, true).await;
                self.events.push(Event::DirectRpc { method });
                reply.into()
            }
            "/onion_req/v2" => {
                let entry = crate::onion::Entry {
                    guard: self.ed_hex.clone(),
                    client: from,
                };
                self.clone()
                    .handle_onion(&body, Origin::Client, Some(entry))
                    .await
            }
            "/json_rpc" => self.handle_seed(&body).into(),
            "/ping_test/v1" => Reply::text(200, "").into(),
            "/devnet/v1/onion_relay" => match internal_peer {
                Some(peer) => {
                    self.clone()
                        .handle_onion(&body, Origin::Node(peer), entry)
                        .await
                }
                None => Reply::text(403, "devnet-internal route").into(),
            },
            "/devnet/v1/storage_cc" => match internal_peer {
                Some(peer) => {
                    let (method, reply) = self.clone().handle_rpc_body(&body, false).await;
                    self.events.push(Event::Replicated { method, from: peer });
                    reply.into()
                }
                None => Reply::text(403, "devnet-internal route").into(),
            },
            crate::replication::MANY_ROUTE => match internal_peer {
                Some(peer) => self.clone().handle_forwarded_many(&body, peer).await,
                None => Reply::text(403, "devnet-internal route").into(),
            },
            _ => Reply::text(404, format!("{method} {path} Not Found")).into(),
        };
        let ctype = if reply.body.first() == Some(&b'{') {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        Ok(http_response(reply.status, ctype, reply.body))
    }
}

impl NodeShared {
    /// Several requests a swarm peer forwarded in one exchange ([`crate::replication`]):
    /// each applied in order as a single forwarded request, each answered.
    async fn handle_forwarded_many(self: Arc<Self>, body: &[u8], peer: String) -> RawReply {
        let Some(bodies) = crate::replication::decode_bodies(body) else {
            return Reply::text(400, "malformed forwarded requests").into();
        };
        let mut answers = Vec::with_capacity(bodies.len());
        for sub in bodies {
            let (method, reply) = self.clone().handle_rpc_body(sub, false).await;
            self.events.push(Event::Replicated {
                method,
                from: peer.clone(),
            });
            let raw = RawReply::from(reply);
            answers.push((raw.status, raw.body));
        }
        RawReply {
            status: 200,
            body: Bytes::from(crate::replication::encode_answers(&answers)),
        }
    }
}

/// The "drop replies" fault: the service fails, so hyper closes the connection unanswered.
#[derive(Debug)]
pub(crate) struct DropReply;

impl std::fmt::Display for DropReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply dropped by fault injection")
    }
}

impl std::error::Error for DropReply {}

/// A running server: stop it by sending on `stop` and awaiting `task`.
#[derive(Debug)]
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds 127.0.0.1:`port` (0 = ephemeral).
pub(crate) async fn bind(index: usize, port: u16) -> Result<TcpListener, DevnetError> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|source| DevnetError::Bind {
            node: index,
            port,
            source,
        })
}

/// Serves a node on `listener` until stopped. Each connection is a task that ends when the
/// client closes it or the node stops.
pub(crate) fn serve(
    node: Arc<NodeShared>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> Running {
    let (stop, mut stopped) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let Ok((tcp, peer)) = accepted else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let node = node.clone();
            let acceptor = acceptor.clone();
            let mut conn_stopped = stopped.clone();
            tokio::spawn(async move {
                let serve_conn = async {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| node.clone().route(req, peer));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                };
                tokio::select! {
                    _ = serve_conn => {}
                    _ = conn_stopped.changed() => {}
                }
            });
        }
    });
    Running { stop, task }
}

/// Why a request body was not read.
#[derive(Debug)]
enum BodyError {
    /// Over [`MAX_REQUEST_BODY`].
    TooLarge,
    /// The connection failed mid-body.
    Unreadable,
}

/// Reads a request body of at most [`MAX_REQUEST_BODY`] bytes. An oversized one is read on and
/// dropped up to [`DRAIN_LIMIT`], so the 413 reaches a client that is still sending.
async fn read_body(mut body: Incoming) -> Result<Bytes, BodyError> {
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if seen <= MAX_REQUEST_BODY {
            kept.extend_from_slice(&data);
        }
    }
    if seen > MAX_REQUEST_BODY {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
}
