//! The server-side TLS configuration of a devnet node (a fresh self-signed certificate). The
//! client side (the nodes' requests to each other and to loopback servers) is session-net's
//! [`HttpsTransport`](session_net::HttpsTransport), the one HTTPS client of the tree.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::err::DevnetError;

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
