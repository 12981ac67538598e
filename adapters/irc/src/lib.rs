//! sessiond-irc: an IRC server (RFC 1459/2812 + IRCv3) that is a client of the sessiond gRPC API.
//!
//! The daemon binds the listener and hands it to [`serve`] with a gRPC channel to itself; every
//! IRC connection authenticates with a sessiond token (`PASS` or SASL PLAIN) and all its calls
//! carry that token, so the daemon's own authorization decides what it may reach.
//!
//! # Layout
//! - [`config`]: `[irc]` settings.
//! - [`line`]: framing, parsing and formatting IRC lines (pure).
//! - [`split`]: long and multi-line messages into valid lines (pure).
//! - [`cap`], [`command`], [`numeric`], [`sasl`]: capabilities, the command table, numerics,
//!   SASL PLAIN (pure).
//! - [`flood`]: the token bucket of flood control (pure).
//! - [`directory`]: contacts as nicks.
//! - `conn`: one connection: registration, chat, history, the control channel.
//! - [`err`]: errors, and daemon errors in words.

pub mod cap;
pub mod command;
mod config;
mod conn;
pub mod directory;
pub mod err;
pub mod flood;
pub mod line;
pub mod numeric;
pub mod sasl;
pub mod split;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sessiond_api::client::Connector;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use config::IrcConfig;
pub use err::IrcError;

/// How long connections get to say goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves IRC on `listener` until `shutdown` resolves, then sends every client
/// `ERROR :Closing link: the server is shutting down` and returns once they are closed (or after
/// a grace period of 5 s). `api` is a channel to the daemon that all connections share, or a
/// [`Connector`] that gives each its own.
pub async fn serve(
    listener: TcpListener,
    config: IrcConfig,
    api: impl Into<Connector>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IrcError> {
    serve_counted(listener, config, api, shutdown, Arc::default()).await
}

/// [`serve`], keeping the number of open connections in `open` (for the daemon's metrics).
pub async fn serve_counted(
    listener: TcpListener,
    config: IrcConfig,
    api: impl Into<Connector>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    open: Arc<AtomicUsize>,
) -> Result<(), IrcError> {
    check(&config)?;
    let max_connections = config.max_connections;
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let srv = Arc::new(conn::Server {
        config,
        api: api.into(),
        started: line::format_time(started_ms),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    // One permit per live connection, given back the moment its task ends: the limit counts
    // exactly the connections that are open, however long ago the loop last reaped tasks.
    let permits = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    // Warn once per stretch at the limit, not once per refused connection.
    let mut at_limit = false;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "IRC server listening");
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Ended connections are reaped as they end, not at the next accept: after a storm
            // their tasks' memory would otherwise stay until somebody connects again.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        // Refused without waiting: a best-effort line, then close.
                        let _ = stream.try_write(b"ERROR :Closing link: too many connections\r\n");
                        if !at_limit {
                            warn!(max_connections, "IRC connections refused: at the connection limit");
                            at_limit = true;
                        }
                        continue;
                    };
                    at_limit = false;
                    let _ = stream.set_nodelay(true);
                    let counted = Counted::new(&open);
                    let run = conn::run(srv.clone(), stream, peer, stop_rx.clone());
                    connections.spawn(async move {
                        run.await;
                        drop(permit);
                        drop(counted);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(error = %e, "IRC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    info!("IRC server stopped");
    Ok(())
}

/// One open connection in a count: counted while alive.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(open))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn check(config: &IrcConfig) -> Result<(), IrcError> {
    let name = &config.server_name;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) || name.starts_with(':') {
        return Err(IrcError::BadServerName(name.clone()));
    }
    for (key, value) in [
        ("max_connections", config.max_connections),
        ("sendq_lines", config.sendq_lines),
        ("flood_burst", config.flood_burst as usize),
    ] {
        if value == 0 {
            return Err(IrcError::ZeroLimit(key));
        }
    }
    Ok(())
}
