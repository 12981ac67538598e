//! `sessiond run`: loads the configuration and runs the daemon until SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, DaemonError};

/// Arguments of `sessiond run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The TOML configuration file (see deploy/sessiond.example.toml). Also SESSIOND_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data dir (database, admin.token, sessiond.sock); overrides the config and
    /// SESSIOND_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
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
}

impl session_proto::err::HasKind for RunError {
    fn kind(&self) -> session_proto::err::ErrorKind {
        match self {
            RunError::Config(e) => e.kind(),
            RunError::Daemon(e) => e.kind(),
            RunError::Runtime(_) => session_proto::err::ErrorKind::LocalIo,
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

/// Runs `sessiond run`: prints one JSON line with the listening addresses on stdout, logs to
/// stderr, returns on SIGTERM or Ctrl-C after a graceful shutdown.
pub fn run(args: RunArgs, stdout: &mut dyn Write) -> Result<(), RunError> {
    let (config, data_dir) = load_config(args.config, args.data_dir)?;
    daemon::init_logging(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let stop = daemon::termination_signal()?;
        daemon::run(&config, &data_dir, stop, |listening| {
            let line = serde_json::to_string(listening).unwrap_or_default();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        })
        .await
    })?;
    Ok(())
}
