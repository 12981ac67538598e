//! `sessiond status`: the running daemon's status report, from its HTTP listener with the
//! admin token: a summary for people, or the report as JSON (`--json`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use session_proto::err::{ErrorKind, HasKind};

use super::client::ClientArgs;
use super::run::load_config;
use crate::config::{env, ConfigError};
use crate::rpc::auth::ADMIN_TOKEN_FILE;
use crate::status::{render_human, StatusReport};

/// The largest report read.
const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;

/// Arguments of `sessiond status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's HTTP listener (default: the config's metrics.listen, else
    /// SESSIOND_METRICS_LISTEN, else 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Where the daemon is.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Why `sessiond status` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin token could not be read.
    #[error("cannot read the admin token {}: {source}; is sessiond running with this --data-dir?", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP listener is turned off in the configuration.
    #[error("the daemon's HTTP listener is off ([metrics] enabled = false); status needs it")]
    Disabled,
    /// The daemon could not be reached or answered badly.
    #[error("cannot get the status from sessiond at http://{addr}/: {detail}; is it running (`sessiond run`)?")]
    Fetch {
        /// Where.
        addr: SocketAddr,
        /// What failed.
        detail: String,
    },
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
}

impl HasKind for StatusError {
    fn kind(&self) -> ErrorKind {
        match self {
            StatusError::Config(e) => e.kind(),
            StatusError::Token { .. } | StatusError::Fetch { .. } => ErrorKind::Unavailable,
            StatusError::Disabled => ErrorKind::InvalidInput,
            StatusError::Stdout(_) => ErrorKind::LocalIo,
        }
    }
}

/// Runs `sessiond status`.
pub fn run(args: StatusArgs, stdout: &mut dyn Write) -> Result<(), StatusError> {
    let (config, dir) = load_config(args.client.config.clone(), args.client.data_dir.clone())?;
    let mut addr = match args.metrics_listen {
        Some(a) => a,
        None if config.metrics.enabled
            || std::env::var(env::METRICS_LISTEN).is_ok_and(|v| !v.is_empty()) =>
        {
            config.metrics.listen
        }
        None => return Err(StatusError::Disabled),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token_path = dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_path).map_err(|source| StatusError::Token {
        path: token_path,
        source,
    })?;
    let fetch_err = |detail: String| StatusError::Fetch { addr, detail };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fetch_err(e.to_string()))?;
    let body = runtime
        .block_on(fetch(addr, token.trim()))
        .map_err(fetch_err)?;
    let out = if args.json {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| fetch_err(format!("bad JSON: {e}")))?;
        format!("{value}\n")
    } else {
        let report: StatusReport = serde_json::from_slice(&body)
            .map_err(|e| fetch_err(format!("unexpected report: {e}")))?;
        render_human(&report)
    };
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(StatusError::Stdout)
}

/// `GET /api/status` with the admin token; the body of a 200.
async fn fetch(addr: SocketAddr, token: &str) -> Result<Bytes, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Task "status-conn": drives the one connection; ends with it.
    tokio::spawn(conn);
    let req = http::Request::get("/api/status")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = Limited::new(res.into_body(), MAX_REPORT_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("HTTP {status}: {}", text.trim()));
    }
    Ok(body)
}
