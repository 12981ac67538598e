//! A small HTTPS client for snodes (any certificate accepted, as Session clients do: the onion
//! encryption carries the trust) with a per-address connection pool, and the server-side TLS
//! configuration of a devnet node (a fresh self-signed certificate).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use crate::err::DevnetError;

/// Idle connections kept per address. Enough for the parallelism of tests and the benchmark;
/// beyond it, connections are closed after use.
const MAX_IDLE_PER_ADDR: usize = 16;

/// An HTTP reply: status and the whole body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl HttpReply {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Idle connections by (TLS?, address).
type Pool = HashMap<(bool, SocketAddr), Vec<SendRequest<Full<Bytes>>>>;

/// An HTTPS (or plain HTTP) client that keeps connections open per address.
///
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
    // std Mutex: held only to push/pop senders, never across an await.
    idle: Arc<Mutex<Pool>>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl Default for HttpsClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsClient {
    /// A client that accepts any server certificate (but still checks the handshake signature).
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        HttpsClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            idle: Arc::default(),
        }
    }

    /// POSTs `body` to `url` (`https://IP:PORT/path` or `http://host:port/path`).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpReply, DevnetError> {
        let parsed = ParsedUrl::parse(url).ok_or_else(|| DevnetError::Http {
            url: url.to_string(),
            reason: "not an http(s)://host:port/path URL".into(),
        })?;
        let fut = async {
            let addr = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| DevnetError::Http {
                    url: url.to_string(),
                    reason: "host does not resolve".into(),
                })?;
            self.post_addr(parsed.tls, addr, &parsed.host, &parsed.path, headers, body)
                .await
                .map_err(|reason| DevnetError::Http {
                    url: url.to_string(),
                    reason,
                })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| DevnetError::Timeout {
                url: url.to_string(),
            })?
    }

    async fn post_addr(
        &self,
        tls: bool,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpReply, String> {
        let body = Bytes::from(body);
        // A pooled connection may have been closed by the server meanwhile; then try once more
        // on a fresh one (devnet requests are safe to repeat: stores are idempotent by hash).
        if let Some(sender) = self.take_idle(tls, addr) {
            if let Ok(reply) = self
                .send(tls, addr, sender, host, path, headers, body.clone())
                .await
            {
                return Ok(reply);
            }
        }
        let sender = self.connect(tls, addr, host).await?;
        self.send(tls, addr, sender, host, path, headers, body)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        tls: bool,
        addr: SocketAddr,
        mut sender: SendRequest<Full<Bytes>>,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<HttpReply, String> {
        let mut req = http::Request::post(path)
            .header(http::header::HOST, format!("{host}:{}", addr.port()))
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("bad request: {e}"))?;
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.put_idle(tls, addr, sender);
        Ok(HttpReply { status, body })
    }

    async fn connect(
        &self,
        tls: bool,
        addr: SocketAddr,
        host: &str,
    ) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if tls {
            let name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.to_string())
                    .map_err(|e| format!("bad host name: {e}"))?,
            };
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            handshake(TokioIo::new(stream)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }

    fn take_idle(&self, tls: bool, addr: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock is never poisoned");
        let list = idle.get_mut(&(tls, addr))?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, tls: bool, addr: SocketAddr, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock is never poisoned");
        let list = idle.entry((tls, addr)).or_default();
        if list.len() < MAX_IDLE_PER_ADDR {
            list.push(sender);
        }
    }

    /// Drops every pooled connection (e.g. after restarting nodes).
    pub fn clear_pool(&self) {
        self.idle
            .lock()
            .expect("pool lock is never poisoned")
            .clear();
    }
}

async fn handshake<S>(io: TokioIo<S>) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        // Ends when the connection closes or the sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

struct ParsedUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl ParsedUrl {
    fn parse(url: &str) -> Option<ParsedUrl> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return None;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h, p.parse().ok()?),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return None;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(ParsedUrl {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// Accepts any certificate; handshake signatures are still verified with the ring provider.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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

/// A server TLS configuration with a fresh self-signed certificate for 127.0.0.1/localhost.
pub fn server_tls_config() -> Result<Arc<rustls::ServerConfig>, DevnetError> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| DevnetError::Tls {
                what: "self-signed certificate",
                reason: e.to_string(),
            })?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DevnetError::Tls {
            what: "protocol versions",
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| DevnetError::Tls {
            what: "server certificate",
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}
