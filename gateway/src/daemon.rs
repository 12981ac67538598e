//! `sessiond run`: opens the store, serves gRPC on the Unix socket and TCP, and shuts down
//! gracefully on SIGTERM or Ctrl-C.
//!
//! Start-up order matters for the error a user sees: the store is opened first, so a second
//! daemon on the same data dir fails on redb's lock before it touches the running daemon's
//! socket. Once listening, the daemon prints one JSON line on stdout with the addresses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_proto::err::{ErrorKind, HasKind};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;

use std::sync::{Arc, Mutex};

use session_proto::keys::IdentityKeys;

use std::sync::atomic::AtomicUsize;

use crate::config::Config;
use crate::engine::{echo, Ctx, Engine, NetSource, StorePoolStore};
use crate::files::Files;
use crate::http::HttpState;
use crate::metrics::{self, FrontEnd, Metrics};
use crate::rpc::{self, auth, ApiError, Service, State};
use crate::status;
use crate::store::{IdentityRecord, Store, StoreError};
use session_net::{NetClient, NetConfig};

mod inproc;
mod memory;

/// The Unix socket's file name in the data dir.
pub const SOCKET_FILE: &str = "sessiond.sock";
/// How long shutdown waits for open calls and streams before it closes them anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// "TCP" or "Unix socket".
        what: &'static str,
        /// The address or path.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server on {what} failed: {source}")]
    Serve {
        /// Which listener.
        what: &'static str,
        /// tonic's error.
        source: tonic::transport::Error,
    },
    /// Setting up the services failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The config's webhooks could not be applied.
    #[error(transparent)]
    Webhooks(#[from] crate::webhooks::WebhookConfigError),
    /// An adapter (IRC, Matrix) stopped with an error.
    #[error("the {what} server failed: {detail}")]
    Adapter {
        /// "IRC" or "Matrix".
        what: &'static str,
        /// Its error.
        detail: String,
    },
    /// The attachment store could not be set up.
    #[error("attachments: {0}")]
    Files(#[from] crate::files::FilesError),
}

impl HasKind for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            DaemonError::Store(e) => e.kind(),
            DaemonError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                ErrorKind::InUse
            }
            DaemonError::Bind { .. }
            | DaemonError::Serve { .. }
            | DaemonError::Signals(_)
            | DaemonError::Adapter { .. } => ErrorKind::LocalIo,
            DaemonError::Api(e) => e.kind(),
            DaemonError::Webhooks(e) => e.kind(),
            DaemonError::Files(e) => e.kind(),
        }
    }
}

/// Where a running daemon listens; printed as one JSON line at start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listening {
    /// Always "listening".
    pub event: &'static str,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The TCP address, if serving TCP.
    pub grpc_tcp: Option<SocketAddr>,
    /// The Unix socket, if serving one.
    pub grpc_unix: Option<PathBuf>,
    /// The IRC server's address, if it runs.
    pub irc: Option<SocketAddr>,
    /// The Matrix endpoint's address, if it runs.
    pub matrix: Option<SocketAddr>,
    /// The HTTP listener's address (`/healthz`, `/metrics`, the status page), if it runs.
    pub metrics: Option<SocketAddr>,
    /// The admin token's file.
    pub admin_token_file: PathBuf,
    /// Which network: "mainnet", "devnet", "custom", or "offline".
    pub network: &'static str,
    /// `run --devnet`: the identities made for trying it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<ListedIdentity>,
}

/// An identity in the start-up line (`run --devnet` only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedIdentity {
    /// Its name.
    pub name: String,
    /// Its Account ID.
    pub account_id: String,
    /// What it is for.
    pub role: &'static str,
}

/// Extras of `sessiond run` beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Create an identity "me" if there is none, and an identity "echo" that answers every
    /// message (for `run --devnet`).
    pub demo_identities: bool,
    /// Forget the saved snode pool (an in-process devnet has new ports every run).
    pub forget_pool: bool,
    /// Print the network's start-up progress (pool, paths) on stdout: for a terminal.
    pub progress: bool,
    /// A community room (full join URL) the echo identity posts a few welcome posts in and
    /// "me" joins (`run --devnet`, with `demo_identities`).
    pub demo_room: Option<String>,
}

/// The name of the echo identity `run --devnet` creates.
pub const ECHO_IDENTITY: &str = "echo";
/// The name of the first identity `run --devnet` creates.
pub const FIRST_IDENTITY: &str = "me";

/// Which network the seeds point at, and the client settings for it: no seeds is mainnet;
/// only loopback seeds is a devnet (distinct /24s relaxed, short timeouts).
pub fn net_config(seeds: &[String]) -> (&'static str, NetConfig) {
    if seeds.is_empty() {
        return ("mainnet", NetConfig::default());
    }
    if seeds.iter().all(|s| is_loopback_url(s)) {
        return ("devnet", NetConfig::devnet(seeds.to_vec()));
    }
    (
        "custom",
        NetConfig {
            seeds: seeds.to_vec(),
            ..NetConfig::default()
        },
    )
}

/// Whether a URL's host is a loopback address (or `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Binds a TCP listener (gRPC, an adapter, HTTP); warns when it is reachable beyond loopback.
async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    // A listen backlog of 1024 (TcpListener::bind uses 128): hundreds of clients connecting at
    // once (a bouncer or a bot farm reconnecting, a burst of gRPC clients) would overflow 128 and
    // be dropped or reset.
    let bind = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    let listener = bind().map_err(|source| DaemonError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "{what} listens beyond loopback: bearer tokens cross the network unencrypted"
        );
    }
    Ok(listener)
}

/// Adds `name` with a fresh identity unless it exists; returns its record.
fn ensure_identity(store: &Store, name: &str) -> Result<IdentityRecord, StoreError> {
    match store.identity(name) {
        Ok(r) => Ok(r),
        Err(StoreError::UnknownIdentity { .. }) => {
            let keys = IdentityKeys::generate(&mut rand::rngs::OsRng);
            store.add_identity(
                name,
                &keys.account_id().to_string(),
                keys.seed(),
                rpc::now_ms(),
            )
        }
        Err(e) => Err(e),
    }
}

/// A demo identity of `run --devnet`: made if missing, and announcing its name as its display
/// name (so the other side's clients show "echo", not the start of an Account ID).
fn demo_identity(store: &Store, name: &str) -> Result<IdentityRecord, StoreError> {
    let record = ensure_identity(store, name)?;
    if record.display_name.is_some() {
        return Ok(record);
    }
    store.set_display_name(name, Some(name))
}

/// Installs the log subscriber (stderr) with the config's filter.
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// A future that resolves on SIGTERM or Ctrl-C (SIGINT).
pub fn termination_signal() -> Result<impl std::future::Future<Output = ()>, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

/// Runs the daemon until `stop` resolves; `on_listening` gets the addresses once bound.
pub async fn run(
    config: &Config,
    data_dir: &Path,
    opts: &RunOptions,
    stop: impl std::future::Future<Output = ()>,
    on_listening: impl FnOnce(&Listening),
) -> Result<(), DaemonError> {
    let store = Store::open(data_dir)?;
    if store.is_encrypted()? {
        // A prompt blocks: off the async threads.
        let passphrase = tokio::task::spawn_blocking(|| {
            crate::secrets::obtain_passphrase("Passphrase of the sessiond store: ")
        })
        .await
        .map_err(|e| DaemonError::Api(ApiError::Internal(format!("passphrase task: {e}"))))?
        .map_err(StoreError::from)?;
        store.unlock(&passphrase)?;
    }
    let started_at_ms = rpc::now_ms();
    let metrics = Arc::new(Metrics::new());
    let admin_token = auth::load_or_create_admin_token(data_dir)?;
    if opts.forget_pool {
        let empty = session_net::PoolSnapshot {
            nodes: Vec::new(),
            fetched_at_ms: 0,
        };
        store.set_snode_pool(&empty.to_bytes())?;
    }
    let mut identities = Vec::new();
    let mut echo_record = None;
    if opts.demo_identities {
        let me = demo_identity(&store, FIRST_IDENTITY)?;
        let echo = demo_identity(&store, ECHO_IDENTITY)?;
        // "me" knows echo by the nick echo from the start (IRC nicks and Matrix names come
        // from the contact's handle before its first message arrives).
        if store.contact(me.id, &echo.account_id)?.handle.is_none() {
            let named =
                store.set_contact_handle(me.id, &echo.account_id, ECHO_IDENTITY, rpc::now_ms());
            if let Err(e) = named {
                // Another contact of "me" has it: echo keeps the handle the daemon gives it.
                tracing::warn!(cause = %e, "cannot give the echo contact the handle echo");
            }
        }
        identities.push(ListedIdentity {
            name: me.name.clone(),
            account_id: me.account_id.clone(),
            role: "yours: send from it",
        });
        identities.push(ListedIdentity {
            name: echo.name.clone(),
            account_id: echo.account_id.clone(),
            role: "answers every message with \"echo: <text>\"",
        });
        echo_record = Some(echo);
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (banner_tx, banner_rx) = watch::channel(false);
    let mut state = State::new(store.clone(), &admin_token, config, shutdown_rx.clone());
    state.webhooks = crate::webhooks::Hub::new(config.webhooks.clone(), metrics.webhooks.clone());
    let skipped = crate::webhooks::apply_config(&store, &config.webhooks)?;
    for name in skipped {
        tracing::warn!(
            webhook = %name,
            "a webhook of the config has the name of one added through the API; the config's is skipped"
        );
    }
    // Task "retention": owned here, ended by the shutdown signal (or aborted at the end).
    let retention = tokio::spawn(crate::archive::retention_task(
        store.clone(),
        config.retention.clone(),
        shutdown_rx.clone(),
    ));
    // Task "memory": gives freed heap back after bursts; ends with the shutdown signal.
    let trimmer = tokio::spawn(memory::trim_task(
        config.memory.clone(),
        shutdown_rx.clone(),
    ));
    // Task "webhooks": delivery runs offline too (the log grows with queued messages).
    let webhook_task =
        crate::webhooks::start(state.webhooks.clone(), store.clone(), shutdown_rx.clone());
    let (network_name, mut engine, net) = if config.network.offline {
        tracing::info!("offline: nothing is sent or polled");
        ("offline", None, None)
    } else {
        let (name, net_config) = net_config(&config.network.seeds);
        let client = NetClient::with_https(net_config, Arc::new(StorePoolStore(store.clone())));
        // Path isolation: each identity's requests go through its own family member.
        client.set_isolation(config.network.isolate_identities);
        let counting = metrics::watch_network(&client, Arc::clone(&metrics), shutdown_rx.clone());
        // Subscribed now so no step is missed; it prints once the banner is out.
        let progress = opts.progress.then(|| {
            let events = client.events();
            tokio::spawn(show_progress(
                client.clone(),
                events,
                banner_rx.clone(),
                shutdown_rx.clone(),
            ))
        });
        let (files, eager) =
            Files::new(data_dir, store.clone(), client.clone(), &config.attachments)?;
        state.files = Some(files.clone());
        let mut engine = Engine::start(Ctx {
            net: client.clone(),
            store: store.clone(),
            outbox: config.outbox.clone(),
            poll: config.poll.clone(),
            outbox_wake: Arc::clone(&state.outbox_wake),
            identities_changed: Arc::clone(&state.identities_changed),
            activity: Mutex::new(Default::default()),
            local_accounts: Mutex::new(Default::default()),
            poll_budget: crate::engine::budget::Budget::new(config.poll.max_requests_per_sec),
            metrics: Arc::clone(&metrics),
            sync: Arc::clone(&state.sync),
            files: Some(files.clone()),
        });
        let attachments = tokio::spawn(files.run(eager, engine.stopping()));
        engine.own("attachments", attachments);
        engine.own("net-metrics", counting);
        if let Some(task) = progress {
            engine.own("progress", task);
        }
        let names = Some(store.clone());
        let (source, forwarder) =
            NetSource::start_named(client.clone(), name, names, engine.stopping());
        engine.own("net-events", forwarder);
        state.network = Some(source);
        state.communities = Some(Arc::clone(engine.communities()));
        tracing::info!(network = name, "network client started");
        (name, Some(engine), Some(client))
    };
    if let (Some(engine), Some(record)) = (engine.as_mut(), echo_record) {
        let name = record.name.clone();
        let seed = store.identity_seed(&name)?;
        let keys = IdentityKeys::from_seed(&seed);
        let task = tokio::spawn(echo::run(
            Arc::clone(engine.ctx()),
            record,
            keys,
            state.message_ttl_ms,
            engine.stopping(),
        ));
        engine.own("echo", task);
    }
    let files = state.files.clone();
    if let (Some(engine), Some(url), true) = (
        engine.as_mut(),
        opts.demo_room.clone(),
        opts.demo_identities,
    ) {
        let task = tokio::spawn(crate::engine::community::demo(
            Arc::clone(engine.communities()),
            url,
            FIRST_IDENTITY,
            ECHO_IDENTITY,
            engine.stopping(),
        ));
        engine.own("demo-room", task);
    }
    let service = Service::new(state);

    let socket_path = data_dir.join(SOCKET_FILE);
    let unix = if config.grpc.unix_socket {
        Some(bind_unix(&socket_path)?)
    } else {
        None
    };
    let tcp = if config.grpc.tcp {
        Some(bind_tcp("gRPC", config.grpc.listen).await?)
    } else {
        None
    };
    let irc = if config.irc.enabled {
        Some(bind_tcp("IRC", config.irc.listen).await?)
    } else {
        None
    };
    let matrix = if config.matrix.enabled {
        Some(bind_tcp("Matrix", config.matrix.listen).await?)
    } else {
        None
    };
    let http = if config.metrics.enabled {
        Some(bind_tcp("HTTP (status, metrics)", config.metrics.listen).await?)
    } else {
        None
    };
    if let Some(addr) = http.as_ref().and_then(|l| l.local_addr().ok()) {
        crate::files::set_link_base(addr);
    }
    let listening = Listening {
        event: "listening",
        data_dir: data_dir.to_owned(),
        grpc_tcp: tcp.as_ref().and_then(|l| l.local_addr().ok()),
        grpc_unix: unix.as_ref().map(|_| socket_path.clone()),
        irc: irc.as_ref().and_then(|l| l.local_addr().ok()),
        matrix: matrix.as_ref().and_then(|l| l.local_addr().ok()),
        metrics: http.as_ref().and_then(|l| l.local_addr().ok()),
        admin_token_file: data_dir.join(auth::ADMIN_TOKEN_FILE),
        network: network_name,
        identities,
    };
    tracing::info!(
        tcp = ?listening.grpc_tcp,
        unix = ?listening.grpc_unix,
        irc = ?listening.irc,
        matrix = ?listening.matrix,
        metrics = ?listening.metrics,
        "sessiond listening"
    );
    let irc_open = Arc::new(AtomicUsize::new(0));
    let matrix_open = Arc::new(AtomicUsize::new(0));
    let mut listeners = Vec::new();
    let mut listed = |name, addr: Option<String>, front_end, open: Option<&Arc<AtomicUsize>>| {
        if let Some(listen) = addr {
            listeners.push(status::Listener {
                name,
                listen,
                front_end,
                open: open.cloned(),
            });
        }
    };
    let text = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    listed("gRPC (TCP)", text(listening.grpc_tcp), None, None);
    let unix_path = listening
        .grpc_unix
        .as_ref()
        .map(|p| p.display().to_string());
    listed("gRPC (Unix socket)", unix_path, None, None);
    listed(
        "IRC",
        text(listening.irc),
        Some(FrontEnd::Irc),
        Some(&irc_open),
    );
    listed(
        "Matrix",
        text(listening.matrix),
        Some(FrontEnd::Matrix),
        Some(&matrix_open),
    );
    listed(
        "HTTP (status, metrics)",
        text(listening.metrics),
        None,
        None,
    );
    let sources = status::Sources {
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        net,
        network: network_name,
        listeners,
        started_at_ms,
        data_dir: data_dir.to_owned(),
        sync: Arc::clone(&service.state().sync),
    };
    on_listening(&listening);
    banner_tx.send_replace(true);

    let until_shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&down| down).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    if let Some(listener) = unix {
        let router = rpc::router(&service).await?;
        let signal = until_shutdown(shutdown_rx.clone());
        servers.spawn(async move {
            router
                .serve_with_incoming_shutdown(
                    // Stock clients send the socket path as :authority; see AuthorityFix.
                    UnixListenerStream::new(listener).map(|c| c.map(rpc::wire::AuthorityFix::new)),
                    signal,
                )
                .await
                .map_err(|source| DaemonError::Serve {
                    what: "the Unix socket",
                    source,
                })
        });
    }
    if irc.is_some() || matrix.is_some() {
        // The adapters are clients of the gRPC API like any other program; in-process they
        // reach it over in-memory pipes.
        let router = rpc::router_on(&service, inproc::server()).await?;
        let (channel, server) = inproc::connector(router, until_shutdown(shutdown_rx.clone()));
        servers.spawn(async move {
            match server.await {
                Ok(served) => served.map_err(|source| DaemonError::Serve {
                    what: "the in-process channel",
                    source,
                }),
                Err(joined) => Err(DaemonError::Adapter {
                    what: "in-process gRPC",
                    detail: joined.to_string(),
                }),
            }
        });
        if let Some(listener) = irc {
            let (mut config, channel) = (config.irc.clone(), channel.clone());
            config.filehost = listening.metrics.map(|a| format!("http://{a}/upload"));
            let signal = until_shutdown(shutdown_rx.clone());
            let open = Arc::clone(&irc_open);
            servers.spawn(async move {
                sessiond_irc::serve_counted(listener, config, channel, signal, open)
                    .await
                    .map_err(|e| DaemonError::Adapter {
                        what: "IRC",
                        detail: e.to_string(),
                    })
            });
        }
        if let Some(listener) = matrix {
            let (config, channel) = (config.matrix.clone(), channel.clone());
            let signal = until_shutdown(shutdown_rx.clone());
            let open = Arc::clone(&matrix_open);
            servers.spawn(async move {
                sessiond_matrix::serve_counted(listener, config, channel, signal, open)
                    .await
                    .map_err(|e| DaemonError::Adapter {
                        what: "Matrix",
                        detail: e.to_string(),
                    })
            });
        }
    }
    if let Some(listener) = http {
        let state = Arc::new(HttpState::new(sources, &admin_token).with_files(files.clone()));
        let signal = until_shutdown(shutdown_rx.clone());
        servers.spawn(async move {
            crate::http::serve(listener, state, signal)
                .await
                .map_err(|e| DaemonError::Adapter {
                    what: "HTTP (status, metrics)",
                    detail: e.to_string(),
                })
        });
    }
    if let Some(listener) = tcp {
        let router = rpc::router(&service).await?;
        let signal = until_shutdown(shutdown_rx.clone());
        // tonic sets TCP_NODELAY only for listeners it binds itself; without it, small replies
        // wait for Nagle and delayed ACKs (tens of ms per call).
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(cause = %e, "cannot set TCP_NODELAY");
                }
            })
        });
        servers.spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, signal)
                .await
                .map_err(|source| DaemonError::Serve {
                    what: "TCP",
                    source,
                })
        });
    }

    let mut result = Ok(());
    tokio::select! {
        () = stop => {}
        Some(joined) = servers.join_next() => {
            result = flatten(joined);
        }
    }
    // Stop accepting, end the streams, let calls in flight (and their transactions) finish.
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = servers.join_next().await {
            if let Err(e) = flatten(joined) {
                tracing::warn!(cause = %e, "server stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some calls did not finish within the shutdown grace period");
        servers.shutdown().await;
    }
    if let Some(engine) = engine.take() {
        engine.shutdown().await;
    }
    let _ = retention.await;
    let _ = trimmer.await;
    if tokio::time::timeout(SHUTDOWN_GRACE, webhook_task)
        .await
        .is_err()
    {
        tracing::warn!("webhook deliveries did not stop within the shutdown grace period");
    }
    if listening.grpc_unix.is_some() {
        let _ = std::fs::remove_file(&socket_path);
    }
    tracing::info!("sessiond stopped");
    result
}

/// Prints the network's start-up steps (from `rx`, subscribed before the client started) once
/// `banner` turns true, until the paths are built or the daemon stops: for a person at a
/// terminal, who would otherwise wait without knowing for what.
async fn show_progress(
    client: NetClient,
    mut rx: tokio::sync::broadcast::Receiver<session_net::NetEvent>,
    mut banner: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    use session_net::NetEvent;
    use std::io::Write;
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    tokio::select! {
        _ = stop.changed() => return,
        r = banner.wait_for(|&out| out) => if r.is_err() { return },
    }
    say("  … fetching the snode pool and building onion paths".to_owned());
    let mut paths = 0;
    loop {
        let event = tokio::select! {
            _ = stop.changed() => return,
            r = rx.recv() => r,
        };
        match event {
            Ok(NetEvent::PoolRefreshed { size, .. }) => {
                say(format!("  ✓ snode pool: {size} snodes"));
            }
            Ok(NetEvent::PathBuilt { path }) => {
                paths += 1;
                let hops: Vec<&str> = path
                    .hops
                    .iter()
                    .map(|h| h.ed25519.get(..8).unwrap_or(&h.ed25519))
                    .collect();
                say(format!("  ✓ path {paths} built: {}", hops.join(" → ")));
                if paths >= client.config().guard_count {
                    say("  ✓ online: messages go out and come in".to_owned());
                    return;
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn flatten(
    joined: Result<Result<(), DaemonError>, tokio::task::JoinError>,
) -> Result<(), DaemonError> {
    joined.map_err(|e| DaemonError::Api(ApiError::Internal(format!("server task: {e}"))))?
}

/// Binds the Unix socket (0600), replacing a stale socket file. Safe because the caller holds
/// the store's lock: no other daemon serves this data dir.
fn bind_unix(path: &Path) -> Result<UnixListener, DaemonError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let bind_err = |source| DaemonError::Bind {
        what: "Unix socket",
        addr: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        Ok(_) => {
            return Err(bind_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way; remove it",
            )))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 600 clients connecting at once, none accepted yet, all get through the handshake: the
    /// backlog holds them (with 128, the rest would wait for SYN retries and time out).
    #[tokio::test]
    async fn tcp_listeners_queue_a_burst_of_connections() {
        let listener = bind_tcp("gRPC", "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..600 {
            connects.spawn(tokio::time::timeout(
                Duration::from_millis(1500),
                tokio::net::TcpStream::connect(addr),
            ));
        }
        let mut open = Vec::new();
        while let Some(done) = connects.join_next().await {
            match done.expect("task") {
                Ok(Ok(stream)) => open.push(stream),
                Ok(Err(e)) => panic!("connect failed after {}: {e}", open.len()),
                Err(_) => panic!("connect timed out after {} got through", open.len()),
            }
        }
        assert_eq!(open.len(), 600);
        drop(listener);
    }
}
