//! `sessiond run`: loads the configuration and runs the daemon until SIGTERM or Ctrl-C; with
//! `--devnet` inside an in-process local network, with `--seeds` on a given one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use session_devnet::{
    CommunityConfig, Devnet, DevnetConfig, DevnetError, FileServerConfig, Manifest, ManifestServer,
    RoomSpec,
};

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, DaemonError, Listening, RunOptions};

/// The room of the devnet's community server that `run --devnet` joins its identity "me" to.
pub const DEMO_ROOM: &str = "lobby";
/// The manifest `run --devnet` writes into the data dir.
pub const DEVNET_MANIFEST: &str = "devnet.json";

/// Arguments of `sessiond run`.
/// Threads that run blocking work (store transactions, file I/O) at most; more calls wait their
/// turn. Tokio's default (512) let a storm of 2,000 IRC logins start 100 of them; a store
/// transaction is short or waits on the disk, so on a few cores more threads add nothing.
const BLOCKING_THREADS: usize = 32;
/// How long an idle blocking thread lives. Tokio wakes idle threads in turn, so under a trickle
/// of blocking calls every thread of a large pool is woken before its idle time is up and none
/// ever exits: with tokio's 10 s, the 56 threads a storm left stayed for good. With 2 s the pool
/// shrinks to about what the trickle needs.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The TOML configuration file (see deploy/sessiond.example.toml). Also SESSIOND_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data dir (database, admin.token, sessiond.sock); overrides the config and
    /// SESSIOND_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start a local Session network (devnet) inside the daemon and join it; writes
    /// devnet.json into the data dir, creates an identity "me" and an echo identity "echo".
    #[arg(long, conflicts_with = "seeds")]
    pub devnet: bool,
    /// Nodes of the `--devnet` network (swarms of 3).
    #[arg(long, value_name = "N", default_value_t = 9, requires = "devnet")]
    pub devnet_nodes: usize,
    /// Join the network at these seeds: a seed URL (https://host:port, repeatable or
    /// comma-separated) or a devnet.json written by `session-devnet --out`. Overrides the config.
    #[arg(long, value_name = "URL|FILE", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Serve IRC on this address (default 127.0.0.1:6667; port 0 picks a free one). Overrides
    /// the config and SESSIOND_IRC_LISTEN, and turns the IRC server on.
    #[arg(long, value_name = "ADDR")]
    pub irc_listen: Option<std::net::SocketAddr>,
    /// Serve the Matrix client-server API on this address (default 127.0.0.1:8008; port 0 picks
    /// a free one). Overrides the config and SESSIOND_MATRIX_LISTEN, and turns it on.
    #[arg(long, value_name = "ADDR")]
    pub matrix_listen: Option<std::net::SocketAddr>,
    /// Serve /healthz, /metrics and the status page on this address (default 127.0.0.1:9464;
    /// port 0 picks a free one). Overrides the config and SESSIOND_METRICS_LISTEN, and turns it
    /// on.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Print the start-up line as JSON even on a terminal (it always is when stdout is not a
    /// terminal).
    #[arg(long)]
    pub json: bool,
}

/// Why `sessiond run` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The in-process devnet failed to start.
    #[error("cannot start the devnet: {0}")]
    Devnet(#[from] DevnetError),
    /// A `--seeds` manifest could not be read.
    #[error("cannot read the devnet manifest {}: {detail}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl session_proto::err::HasKind for RunError {
    fn kind(&self) -> session_proto::err::ErrorKind {
        use session_proto::err::ErrorKind;
        match self {
            RunError::Config(e) => e.kind(),
            RunError::Daemon(e) => e.kind(),
            RunError::Runtime(_) | RunError::Devnet(_) => ErrorKind::LocalIo,
            RunError::Manifest { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// Loads the configuration: file (flag, else SESSIOND_CONFIG, else defaults), environment,
/// flags. Returns it with the resolved data dir.
pub fn load_config(
    config_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> Result<(Config, PathBuf), ConfigError> {
    let env = |k: &str| std::env::var(k).ok();
    let file = config_file.or_else(|| env(config::env::CONFIG).map(PathBuf::from));
    let mut config = match file {
        Some(path) => Config::from_file(&path)?,
        None => Config::default(),
    };
    config.apply_env(env)?;
    if let Some(dir) = data_dir {
        config.data_dir = Some(dir);
    }
    let dir = config.resolve_data_dir(env)?;
    Ok((config, dir))
}

/// The seeds of a `--seeds` value: URLs as given, a file (`….json` or an existing path) read
/// as a devnet manifest.
pub fn resolve_seeds(values: &[String]) -> Result<Vec<String>, RunError> {
    Ok(resolve_network(values)?.0)
}

/// The seeds of a `--seeds` value (see [`resolve_seeds`]) and the file server of the first
/// manifest that names one.
pub fn resolve_network(
    values: &[String],
) -> Result<(Vec<String>, Option<ManifestServer>), RunError> {
    let mut out = Vec::new();
    let mut file_server = None;
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if v.contains("://") {
            out.push(v.to_owned());
            continue;
        }
        let path = Path::new(v);
        let bad = |detail: String| RunError::Manifest {
            path: path.to_owned(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if manifest.seeds.is_empty() {
            return Err(bad("it lists no seeds".to_owned()));
        }
        out.extend(manifest.seeds);
        if file_server.is_none() {
            file_server = manifest.file_server;
        }
    }
    Ok((out, file_server))
}

/// Points `[attachments]` at a devnet's file server.
fn use_file_server(config: &mut Config, server: &ManifestServer) {
    config.attachments.file_server = server.url.clone();
    config.attachments.file_server_x25519 = server.x25519.clone();
    config.attachments.file_server_ed25519 = server.ed25519.clone();
}

/// Runs `sessiond run`: prints the listening addresses on stdout (a banner for a person when
/// `human`, else one JSON line), logs to stderr, returns on SIGTERM or Ctrl-C after a graceful
/// shutdown.
pub fn run(args: RunArgs, stdout: &mut dyn Write, human: bool) -> Result<(), RunError> {
    let (mut config, data_dir) = load_config(args.config, args.data_dir)?;
    if let Some(addr) = args.irc_listen {
        config.irc.listen = addr;
        config.irc.enabled = true;
    }
    if let Some(addr) = args.matrix_listen {
        config.matrix.listen = addr;
        config.matrix.enabled = true;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics.listen = addr;
        config.metrics.enabled = true;
    }
    if !args.seeds.is_empty() {
        let (seeds, file_server) = resolve_network(&args.seeds)?;
        config.network.seeds = seeds;
        config.network.offline = false;
        if let Some(server) = &file_server {
            use_file_server(&mut config, server);
        }
    }
    daemon::init_logging(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let stop = daemon::termination_signal()?;
        let mut opts = RunOptions {
            progress: human,
            ..RunOptions::default()
        };
        let devnet = if args.devnet {
            crate::store::prepare_dir(&data_dir).map_err(DaemonError::from)?;
            if human {
                let _ = writeln!(
                    stdout,
                    "Starting a local Session network (devnet) of {} snodes…",
                    args.devnet_nodes.max(3)
                );
                let _ = stdout.flush();
            }
            let devnet = Devnet::start(DevnetConfig {
                nodes: args.devnet_nodes.max(3),
                swarm_size: 3,
                relay_timeout: Duration::from_secs(5),
                replication_timeout: Duration::from_secs(2),
                file_server: Some(FileServerConfig::default()),
                community: Some(CommunityConfig {
                    rooms: vec![RoomSpec::new(DEMO_ROOM, "Lobby")
                        .describe("sessiond's demo community room: say hello")],
                    ..CommunityConfig::default()
                }),
                ..DevnetConfig::default()
            })
            .await?;
            opts.demo_room = devnet
                .community()
                .map(|c| c.room_url(DEMO_ROOM).to_string());
            devnet.write_manifest(&data_dir.join(DEVNET_MANIFEST))?;
            if let Some(server) = devnet.manifest().file_server {
                use_file_server(&mut config, &server);
            }
            config.network.seeds = devnet.seeds();
            config.network.offline = false;
            opts.demo_identities = true;
            opts.forget_pool = true;
            Some(devnet)
        } else {
            None
        };
        let result = daemon::run(&config, &data_dir, &opts, stop, |listening| {
            let text = if human {
                banner(listening)
            } else {
                let line = serde_json::to_string(listening).unwrap_or_default();
                format!("{line}\n")
            };
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        })
        .await;
        if let Some(devnet) = devnet {
            devnet.shutdown().await;
        }
        result.map_err(RunError::from)
    })
}

/// The start-up banner for a person: where to connect, where the token is.
pub fn banner(l: &Listening) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "sessiond is running (network: {}).", l.network);
    let mut row = |what: &str, value: String| {
        let _ = writeln!(out, "  {what:<14}{value}");
    };
    row("data dir", l.data_dir.display().to_string());
    row("admin token", l.admin_token_file.display().to_string());
    if let Some(a) = l.grpc_tcp {
        row("gRPC", format!("{a} (Authorization: Bearer <token>)"));
    }
    if let Some(p) = &l.grpc_unix {
        row("gRPC socket", format!("{} (the CLI uses it)", p.display()));
    }
    if let Some(a) = l.irc {
        row(
            "IRC",
            format!("{} port {} (PASS <token>, or SASL PLAIN)", a.ip(), a.port()),
        );
    }
    if let Some(a) = l.matrix {
        row(
            "Matrix",
            format!("http://{a} (user: an identity's name, password: a token)"),
        );
    }
    if let Some(a) = l.metrics {
        row(
            "status page",
            format!("http://{a}/ (asks for the admin token once)"),
        );
        row(
            "health",
            format!("http://{a}/healthz, metrics http://{a}/metrics"),
        );
    }
    for i in &l.identities {
        row(
            &format!("identity {}", i.name),
            format!("{} — {}", i.account_id, i.role),
        );
    }
    let _ = writeln!(
        out,
        "Stop with Ctrl-C. `sessiond status` shows how it is doing."
    );
    out
}
