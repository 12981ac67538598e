//! `sessiond passphrase set|change|remove`: seal the store's identity seeds with a passphrase,
//! change it, or store them in plain again. Run with the daemon stopped (the store is locked
//! while it runs). Each migrates every seed in one transaction, then rewrites the file so the
//! old form is not left in freed pages.
//!
//! The current passphrase comes as for `sessiond run` (SESSIOND_PASSPHRASE_FILE, the systemd
//! credential, a prompt); the new one from `--new-passphrase-file`, else a prompt (twice).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use session_proto::err::{ErrorKind, HasKind};
use zeroize::Zeroizing;

use super::run::load_config;
use crate::config::ConfigError;
use crate::secrets::{self, SecretsError};
use crate::store::{Store, StoreError};

/// Arguments of `sessiond passphrase`.
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: PassphraseCmd,
    /// A file whose first line is the new passphrase (set, change); without it, asked on the
    /// terminal.
    #[arg(long, value_name = "FILE", global = true)]
    pub new_passphrase_file: Option<PathBuf>,
    /// The data dir; default as for `sessiond run`.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The configuration file (only its data_dir is used).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The passphrase subcommands.
#[derive(Debug, Subcommand)]
pub enum PassphraseCmd {
    /// Encrypt the identity seeds of an unencrypted store with a new passphrase.
    Set,
    /// Change the passphrase of an encrypted store.
    Change,
    /// Decrypt the identity seeds and stop asking for a passphrase.
    Remove,
}

/// Why a passphrase command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed (in use, wrong passphrase, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A passphrase could not be had.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// `set` on an encrypted store.
    #[error("the store is encrypted already; use `sessiond passphrase change`")]
    AlreadySet,
    /// `change`/`remove` on an unencrypted store.
    #[error("the store is not encrypted; use `sessiond passphrase set`")]
    NotSet,
    /// No new passphrase: no file and no terminal.
    #[error("no new passphrase: give --new-passphrase-file FILE, or run on a terminal")]
    NoNewPassphrase,
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
}

impl HasKind for PassphraseError {
    fn kind(&self) -> ErrorKind {
        match self {
            PassphraseError::Config(e) => e.kind(),
            PassphraseError::Store(e) => e.kind(),
            PassphraseError::Secrets(e) => e.kind(),
            PassphraseError::AlreadySet
            | PassphraseError::NotSet
            | PassphraseError::NoNewPassphrase => ErrorKind::InvalidInput,
            PassphraseError::Stdout(_) => ErrorKind::LocalIo,
        }
    }
}

fn new_passphrase(file: Option<&PathBuf>) -> Result<Zeroizing<String>, PassphraseError> {
    if let Some(path) = file {
        return Ok(secrets::read_passphrase_file(path)?);
    }
    if !std::io::stdin().is_terminal() {
        return Err(PassphraseError::NoNewPassphrase);
    }
    let first = secrets::ask("New passphrase: ")?;
    let second = secrets::ask("The new passphrase again: ")?;
    if *first != *second {
        return Err(SecretsError::Mismatch.into());
    }
    Ok(first)
}

/// Runs a passphrase command.
pub fn run(args: PassphraseArgs, stdout: &mut dyn Write) -> Result<(), PassphraseError> {
    let (_, dir) = load_config(args.config.clone(), args.data_dir.clone())?;
    let store = Store::open(&dir)?;
    let encrypted = store.is_encrypted()?;
    let done = match args.cmd {
        PassphraseCmd::Set => {
            if encrypted {
                return Err(PassphraseError::AlreadySet);
            }
            let new = new_passphrase(args.new_passphrase_file.as_ref())?;
            store.set_passphrase(&new)?;
            "set"
        }
        PassphraseCmd::Change | PassphraseCmd::Remove if !encrypted => {
            return Err(PassphraseError::NotSet)
        }
        PassphraseCmd::Change => {
            let current = secrets::obtain_passphrase("Current passphrase: ")?;
            store.unlock(&current)?;
            let new = new_passphrase(args.new_passphrase_file.as_ref())?;
            store.set_passphrase(&new)?;
            "changed"
        }
        PassphraseCmd::Remove => {
            let current = secrets::obtain_passphrase("Current passphrase: ")?;
            store.unlock(&current)?;
            store.remove_passphrase()?;
            "removed"
        }
    };
    let identities = store.identities()?.len();
    store.scrub()?;
    let line = json!({ "passphrase": done, "identities": identities, "data_dir": dir });
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(PassphraseError::Stdout)
}
