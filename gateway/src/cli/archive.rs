//! `sessiond export` and `sessiond import` (the daemon stopped: they open the store
//! themselves). The file format is [`crate::archive`]'s.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use session_proto::err::{ErrorKind, HasKind};

use super::run::load_config;
use crate::archive::{self, ArchiveError};
use crate::config::ConfigError;
use crate::store::{Store, StoreError};

/// The export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON lines: everything, importable with `sessiond import`.
    Jsonl,
    /// An mbox of the messages, for mail readers (not importable).
    Mbox,
}

/// Arguments of `sessiond export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The identity's name.
    pub identity: String,
    /// Only events recorded since: a date (2026-01-31), a UTC time (2026-01-31T12:00:00Z), a Unix
    /// time in ms, or an age (30d, 12h).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// The format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Write here (created with mode 0600; never overwritten) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The data dir; default as for `sessiond run`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The configuration file (only its data_dir is used).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `sessiond import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive (`sessiond export --format jsonl`).
    pub file: PathBuf,
    /// The data dir to create; it must not exist or be empty. Default as for `sessiond run`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The configuration file (only its data_dir is used).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Why export or import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveCliError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The archive work failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// `--since` is not understood.
    #[error(
        "--since {0:?}: expected a date (2026-01-31), a Unix time in ms, or an age (30d, 12h)"
    )]
    Since(String),
    /// The output file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl HasKind for ArchiveCliError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveCliError::Config(e) => e.kind(),
            ArchiveCliError::Archive(e) => e.kind(),
            ArchiveCliError::Since(_) => ErrorKind::InvalidInput,
            ArchiveCliError::Output { source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                ErrorKind::AlreadyExists
            }
            ArchiveCliError::Output { .. } => ErrorKind::LocalIo,
        }
    }
}

/// Parses `--since` at `now_ms`.
pub fn parse_since(text: &str, now_ms: u64) -> Result<u64, ArchiveCliError> {
    let err = || ArchiveCliError::Since(text.to_owned());
    let t = text.trim();
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(ms);
    }
    for (suffix, unit) in [("d", 86_400_000u64), ("h", 3_600_000)] {
        if let Some(n) = t.strip_suffix(suffix) {
            let n: u64 = n.parse().map_err(|_| err())?;
            return Ok(now_ms.saturating_sub(n.saturating_mul(unit)));
        }
    }
    // A date (midnight UTC) or an RFC 3339 time in UTC.
    let stamp = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_owned()
    };
    // The RFC 3339 parser of the IRC adapter's server-time tags: the one date parser in the tree.
    sessiond_irc::line::parse_time(&stamp).ok_or_else(err)
}

/// Runs `sessiond export`.
pub fn run_export(args: ExportArgs, stdout: &mut dyn Write) -> Result<(), ArchiveCliError> {
    let (_, dir) = load_config(args.config.clone(), args.data_dir.clone())?;
    let now = crate::rpc::now_ms();
    let since = match &args.since {
        Some(s) => parse_since(s, now)?,
        None => 0,
    };
    let store = Store::open(&dir).map_err(ArchiveError::from)?;
    if store.is_encrypted().map_err(ArchiveError::from)? {
        let pass = crate::secrets::obtain_passphrase("Passphrase of the sessiond store: ")
            .map_err(|e| ArchiveError::from(StoreError::from(e)))?;
        store.unlock(&pass).map_err(ArchiveError::from)?;
    }
    let mut file;
    let out: &mut dyn Write = match &args.output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            file = std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| ArchiveCliError::Output {
                        path: path.clone(),
                        source,
                    })?,
            );
            &mut file
        }
        None => stdout,
    };
    let written = match args.format {
        Format::Jsonl => archive::export_jsonl(&store, &args.identity, since, now, out),
        Format::Mbox => archive::export_mbox(&store, &args.identity, since, out),
    };
    if written.is_err() {
        if let Some(path) = &args.output {
            // No half-written export left behind.
            let _ = std::fs::remove_file(path);
        }
    }
    let n = written?;
    if args.output.is_some() {
        let line = json!({"identity": args.identity, "events": n, "format": match args.format {
            Format::Jsonl => "jsonl",
            Format::Mbox => "mbox",
        }});
        writeln!(stdout, "{line}").map_err(ArchiveError::Write)?;
    }
    Ok(())
}

/// Runs `sessiond import`.
pub fn run_import(args: ImportArgs, stdout: &mut dyn Write) -> Result<(), ArchiveCliError> {
    let (_, dir) = load_config(args.config.clone(), args.data_dir.clone())?;
    let bytes = std::fs::read(&args.file).map_err(|source| ArchiveError::Read {
        path: args.file.clone(),
        source,
    })?;
    let record = archive::import(&bytes, &dir)?;
    let line = json!({"imported": record.name, "data_dir": dir});
    writeln!(stdout, "{line}").map_err(ArchiveError::Write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_ages() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_since("1700000000000", now).expect("ms"),
            1_700_000_000_000
        );
        assert_eq!(parse_since("2d", now).expect("age"), now - 2 * 86_400_000);
        assert_eq!(parse_since("1970-01-02", now).expect("date"), 86_400_000);
        assert_eq!(
            parse_since("1970-01-02T00:00:01Z", now).expect("time"),
            86_401_000
        );
        for bad in ["", "yesterday", "2026-13-01", "x d", "2026-01"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
