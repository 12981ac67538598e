//! The one HTTPS transport of the tree: HTTP/1.1 over TLS (rustls) or plain HTTP, with
//! kept-alive connections per address. The network client uses it to reach snodes and seeds;
//! the devnet's nodes use it among themselves (relays, replication) and to reach loopback
//! servers.
//!
//! The certificate policy lives here and only here: snode certificates are self-signed and not
//! verified, as the real clients do: the onion encryption to the nodes' X25519 keys carries the
//! trust. The TLS handshake signature is still checked against the presented certificate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::err::TransportError;
use super::transport::{BoxFuture, HttpReply, HttpTarget, Transport};

/// Idle connections kept per address: as many as requests to one address overlap under load
/// (64 onion requests in flight through two guards, each relay and swarm peer seeing as many),
/// so a busy peer is served from kept connections. With a lower bound every burst above it
/// opened fresh TLS connections and closed them after one request: CPU per request grew with
/// concurrency and 8 or 64 requests in flight were slower than one at a time. Extra connections
/// are closed after use.
pub const MAX_IDLE_PER_ADDR: usize = 128;

/// Addresses with idle connections kept at most; beyond it the idle set is cleared (a
/// crude bound: the pool holds a few dozen snodes in practice).
pub const MAX_IDLE_ADDRS: usize = 256;

/// The User-Agent header, as Session desktop sends it to snodes.
const USER_AGENT: &str = "WhatsApp";

type ConnKey = (bool, String, u16);

/// HTTPS transport with connection reuse. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct HttpsTransport {
    inner: Arc<Inner>,
}

struct Inner {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    max_body: usize,
    // std Mutex: held only to push/pop senders, never across an await.
    idle: Mutex<HashMap<ConnKey, Vec<SendRequest<Full<Bytes>>>>>,
    // The tasks driving open connections; owned here, aborted when the transport is dropped.
    // std Mutex: held only to spawn/reap, never across an await.
    conns: Mutex<JoinSet<()>>,
    // Connections opened (TCP, and TLS where used) since the transport was made.
    opened: AtomicU64,
}

impl std::fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("max_body", &self.inner.max_body)
            .finish_non_exhaustive()
    }
}

impl Default for HttpsTransport {
    /// The [`NetConfig`](super::NetConfig) defaults: 5 s to connect, 16 MiB replies.
    fn default() -> Self {
        HttpsTransport::from_config(&super::NetConfig::default())
    }
}

impl HttpsTransport {
    /// A transport with the given TCP+TLS connect timeout and reply size limit.
    pub fn new(connect_timeout: Duration, max_body: usize) -> HttpsTransport {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnySnodeCertificate(provider)))
            .with_no_client_auth();
        HttpsTransport {
            inner: Arc::new(Inner {
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                connect_timeout,
                max_body,
                idle: Mutex::default(),
                conns: Mutex::new(JoinSet::new()),
                opened: AtomicU64::new(0),
            }),
        }
    }

    /// Posts `body` to `url` (`http(s)://host[:port]/path`) with extra request `headers`,
    /// within `timeout`. For callers that hold URLs rather than [`HttpTarget`]s (the devnet).
    pub async fn post_url(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpReply, TransportError> {
        let target = HttpTarget::parse_url(url, "")?;
        self.post_with(&target, headers, body, timeout).await
    }

    /// Posts `body` to `target` with extra request `headers`, within `timeout`.
    pub async fn post_with(
        &self,
        target: &HttpTarget,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpReply, TransportError> {
        tokio::time::timeout(timeout, self.exchange(target, headers, body))
            .await
            .map_err(|_| TransportError::Timeout {
                target: target.authority(),
                timeout_ms: duration_ms(timeout),
            })?
    }

    /// A transport configured from [`super::NetConfig`].
    pub fn from_config(config: &super::NetConfig) -> HttpsTransport {
        HttpsTransport::new(
            Duration::from_millis(config.connect_timeout_ms),
            config.max_reply_bytes,
        )
    }

    /// Idle connections currently kept (for tests and status).
    pub fn idle_connections(&self) -> usize {
        self.inner
            .idle
            .lock()
            .expect("idle map lock poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Connections opened since the transport was made (each a TCP connect and, for HTTPS,
    /// a TLS handshake): with kept-alive connections this stays flat under steady load.
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    async fn exchange(
        &self,
        target: &HttpTarget,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpReply, TransportError> {
        let key: ConnKey = (target.tls, target.host.clone(), target.port);
        let body = Bytes::from(body);
        // A kept-alive connection may have been closed by the peer; then try a fresh one once.
        if let Some(sender) = self.take_idle(&key) {
            match self.send(target, headers, sender, body.clone()).await {
                Ok((reply, sender)) => {
                    self.put_idle(key, sender);
                    return Ok(reply);
                }
                Err(SendError::BeforeReply) => {}
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        let sender = self.connect(target).await?;
        match self.send(target, headers, sender, body).await {
            Ok((reply, sender)) => {
                self.put_idle(key, sender);
                Ok(reply)
            }
            Err(SendError::BeforeReply) => Err(TransportError::Http {
                target: target.authority(),
                reason: "connection closed before the reply".into(),
            }),
            Err(SendError::Failed(e)) => Err(e),
        }
    }

    async fn send(
        &self,
        target: &HttpTarget,
        headers: &[(&str, &str)],
        mut sender: SendRequest<Full<Bytes>>,
        body: Bytes,
    ) -> Result<(HttpReply, SendRequest<Full<Bytes>>), SendError> {
        let http_err = |reason: String| {
            SendError::Failed(TransportError::Http {
                target: target.authority(),
                reason,
            })
        };
        if sender.ready().await.is_err() {
            return Err(SendError::BeforeReply);
        }
        let mut request = http::Request::post(target.path.as_str())
            .header(http::header::HOST, target.authority())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| http_err(format!("bad request: {e}")))?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            // Closed before any reply byte: a kept-alive connection the peer closed (e.g. after
            // refusing an oversized body). Storage RPCs and onion requests are safe to repeat,
            // so the caller tries once more on a fresh connection.
            Err(e) if e.is_canceled() || e.is_closed() || e.is_incomplete_message() => {
                return Err(SendError::BeforeReply)
            }
            Err(e) => return Err(http_err(e.to_string())),
        };
        let status = response.status().as_u16();
        let limit = self.inner.max_body;
        let too_large = || {
            SendError::Failed(TransportError::BodyTooLarge {
                target: target.authority(),
                limit,
            })
        };
        // One buffer sized from Content-Length (within the limit) and filled frame by frame:
        // a large reply (a downloaded file) is held once, not as its frames plus their copy.
        let mut body = response.into_body();
        let hint = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
        if hint > limit {
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(hint);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| http_err(format!("reading body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if data.len() > limit - buf.len() {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok((
            HttpReply {
                status,
                body: Bytes::from(buf),
            },
            sender,
        ))
    }

    async fn connect(
        &self,
        target: &HttpTarget,
    ) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let authority = target.authority();
        let connect = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| TransportError::Connect {
                    target: authority.clone(),
                    reason: e.to_string(),
                })?;
            // Small request/reply exchanges: don't wait to coalesce segments.
            let _ = tcp.set_nodelay(true);
            if target.tls {
                let name = ServerName::try_from(target.host.clone()).map_err(|_| {
                    TransportError::Connect {
                        target: authority.clone(),
                        reason: "host is not a valid TLS server name".into(),
                    }
                })?;
                let tls = self.inner.tls.connect(name, tcp).await.map_err(|e| {
                    TransportError::Connect {
                        target: authority.clone(),
                        reason: format!("TLS: {e}"),
                    }
                })?;
                self.handshake(tls, &authority).await
            } else {
                self.handshake(tcp, &authority).await
            }
        };
        tokio::time::timeout(self.inner.connect_timeout, connect)
            .await
            .map_err(|_| TransportError::Timeout {
                target: authority.clone(),
                timeout_ms: duration_ms(self.inner.connect_timeout),
            })?
    }

    async fn handshake<S>(
        &self,
        stream: S,
        authority: &str,
    ) -> Result<SendRequest<Full<Bytes>>, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Connect {
                target: authority.to_string(),
                reason: format!("HTTP handshake: {e}"),
            })?;
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.inner.conns.lock().expect("conns lock poisoned");
        while conns.try_join_next().is_some() {}
        // Task "https-conn": drives one connection until either side closes it.
        conns.spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn take_idle(&self, key: &ConnKey) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.inner.idle.lock().expect("idle map lock poisoned");
        let list = idle.get_mut(key)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, key: ConnKey, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.inner.idle.lock().expect("idle map lock poisoned");
        if idle.len() >= MAX_IDLE_ADDRS && !idle.contains_key(&key) {
            idle.clear();
        }
        let list = idle.entry(key).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < MAX_IDLE_PER_ADDR {
            list.push(sender);
        }
    }
}

enum SendError {
    /// The connection was closed before a reply came: retried once on a new one.
    BeforeReply,
    Failed(TransportError),
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Transport for HttpsTransport {
    fn post<'a>(
        &'a self,
        target: &'a HttpTarget,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(self.post_with(target, &[], body, timeout))
    }
}

/// Accepts any certificate (snodes' are self-signed), but checks the handshake signature
/// with the certificate's key so the peer at least holds that key.
#[derive(Debug)]
struct AnySnodeCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnySnodeCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
