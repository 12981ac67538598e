//! One delivery: the endpoint check (scheme, allowed hosts) and the signed POST over
//! hyper-util's client (http, or https through rustls with the compiled-in public roots and
//! `webhooks.ca_file`), with a timeout, judged into [`Attempt`].
//!
//! Redirects are never followed (a 3xx is a failed attempt naming the `Location`), so a webhook
//! cannot be bounced to a host that is not allowed. The answer's body is not read.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::sign;

/// Why an endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("{0:?} is not a URL (expected http[s]://host[:port]/path)")]
    Malformed(String),
    /// Neither `http` nor `https`.
    #[error("scheme {0:?} is not supported: webhooks go over http or https")]
    Scheme(String),
    /// The host is neither loopback nor allowed.
    #[error(
        "host {0:?} is not loopback; add it to webhooks.allowed_hosts in the config to allow it"
    )]
    HostNotAllowed(String),
    /// User info in the URL would be sent in clear and logged.
    #[error("credentials in the URL are not allowed; put them in the endpoint's path or query")]
    Credentials,
}

/// Checks a webhook URL: `http[s]://host[:port]/path`, the host loopback or in `allowed`.
pub fn check_url(url: &str, allowed: &[String]) -> Result<Uri, UrlError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| UrlError::Malformed(url.chars().take(200).collect()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(UrlError::Scheme(other.to_owned())),
        None => return Err(UrlError::Malformed(url.chars().take(200).collect())),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| UrlError::Malformed(url.to_owned()))?;
    if authority.as_str().contains('@') {
        return Err(UrlError::Credentials);
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return Err(UrlError::HostNotAllowed(host.to_owned()));
    }
    Ok(uri)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: the endpoint has the event.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Anything else; `retry` false when a retry of the same request cannot help (413).
    Failed {
        /// The HTTP status, if an answer came.
        status: Option<u16>,
        /// What happened, for a person.
        reason: String,
        /// Whether retrying may help.
        retry: bool,
    },
}

/// The HTTP client every webhook shares (HTTP/1.1, over TLS for https, pooled connections).
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// The CA certificates of a PEM file (at least one), for `webhooks.ca_file`.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// One request to make.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The endpoint.
    pub url: &'a Uri,
    /// The `webhook-id`: the event's id, the same on every attempt.
    pub id: &'a str,
    /// The signing key (the secret's bytes).
    pub key: &'a [u8],
    /// The JSON body.
    pub body: Bytes,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: u64,
}

impl Sender {
    /// A client whose attempts (connect, send, answer headers) take at most `timeout`; https
    /// endpoints must chain to a public root or to one of `extra_roots`.
    pub fn new(timeout: Duration, extra_roots: Vec<CertificateDer<'static>>) -> Sender {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let (added, ignored) = roots.add_parsable_certificates(extra_roots);
        if ignored > 0 {
            tracing::warn!(
                added,
                ignored,
                "webhooks.ca_file: some certificates are not usable CAs"
            );
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(https);
        Sender { client, timeout }
    }

    /// POSTs one signed event and judges the answer.
    pub async fn post(&self, d: Delivery<'_>) -> Attempt {
        let signature = sign::sign(d.key, d.id, d.timestamp, &d.body);
        let request = Request::builder()
            .method(Method::POST)
            .uri(d.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sessiond/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", d.id)
            .header("webhook-timestamp", d.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(d.body));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    reason: format!("cannot build the request: {e}"),
                    retry: false,
                }
            }
        };
        let answer = tokio::time::timeout(self.timeout, self.client.request(request)).await;
        let response = match answer {
            Err(_) => {
                return Attempt::Failed {
                    status: None,
                    reason: format!(
                        "no answer within {} ms (the endpoint hangs)",
                        self.timeout.as_millis()
                    ),
                    retry: true,
                }
            }
            Ok(Err(e)) => {
                let cause = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
                return Attempt::Failed {
                    status: None,
                    reason: format!("cannot reach the endpoint: {cause}"),
                    retry: true,
                };
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        // The body is not read; dropping the response closes or recycles the connection.
        judge(status, response.headers().get(header::LOCATION))
    }
}

fn judge(status: StatusCode, location: Option<&http::HeaderValue>) -> Attempt {
    let code = status.as_u16();
    if status.is_success() {
        return Attempt::Delivered { status: code };
    }
    let (reason, retry) = if status.is_redirection() {
        let to = location
            .and_then(|l| l.to_str().ok())
            .map_or("nowhere".to_owned(), |l| l.chars().take(200).collect());
        (
            format!("answered {status} (redirect to {to}): redirects are not followed; point the webhook at the final URL"),
            true,
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            format!("answered {status}: the endpoint refuses the event's size; raise its limit, then replay"),
            false,
        )
    } else {
        (format!("answered {status}"), true)
    };
    Attempt::Failed {
        status: Some(code),
        reason,
        retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_or_https_to_loopback_or_allowed_hosts() {
        let none: Vec<String> = Vec::new();
        assert!(check_url("http://127.0.0.1:8080/hook", &none).is_ok());
        assert!(check_url("http://[::1]:8080/hook", &none).is_ok());
        assert!(check_url("http://LOCALHOST/hook", &none).is_ok());
        assert_eq!(
            check_url("http://example.com/hook", &none),
            Err(UrlError::HostNotAllowed("example.com".into()))
        );
        assert!(check_url("http://Example.com/hook", &["example.com".to_owned()]).is_ok());
        assert!(check_url("https://127.0.0.1/hook", &none).is_ok());
        assert_eq!(
            check_url("https://example.com/hook", &none),
            Err(UrlError::HostNotAllowed("example.com".into()))
        );
        assert!(check_url("https://example.com/hook", &["example.com".to_owned()]).is_ok());
        assert!(matches!(
            check_url("ftp://127.0.0.1/", &none),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            check_url("not a url", &none),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            check_url("/relative", &none),
            Err(UrlError::Malformed(_))
        ));
        assert_eq!(
            check_url("http://user:pw@127.0.0.1/", &none),
            Err(UrlError::Credentials)
        );
    }

    #[test]
    fn answers_are_judged() {
        assert_eq!(
            judge(StatusCode::NO_CONTENT, None),
            Attempt::Delivered { status: 204 }
        );
        let Attempt::Failed { retry, reason, .. } = judge(StatusCode::PAYLOAD_TOO_LARGE, None)
        else {
            panic!("413 is a failure")
        };
        assert!(!retry, "{reason}");
        let loc = http::HeaderValue::from_static("http://elsewhere/");
        let Attempt::Failed { retry, reason, .. } = judge(StatusCode::FOUND, Some(&loc)) else {
            panic!("302 is a failure")
        };
        assert!(retry && reason.contains("http://elsewhere/"), "{reason}");
        assert!(matches!(
            judge(StatusCode::INTERNAL_SERVER_ERROR, None),
            Attempt::Failed {
                status: Some(500),
                retry: true,
                ..
            }
        ));
    }
}
