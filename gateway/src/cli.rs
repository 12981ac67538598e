//! The `sessiond` command line: one clap tree, one file per command group under `cli/`.
//!
//! Adding a command group: a `cli/<group>.rs` with its clap `Subcommand` enum and a `run`
//! function, a variant in [`Command`], an arm in [`run`], and variants in [`CliError`] for its
//! failures (each with an exit status in [`CliError::exit_code`]).
//!
//! Exit statuses: 0 success; 1 the command could not do its work (I/O, daemon unreachable);
//! 2 bad input or usage (clap's own usage errors also exit 2).

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use session_proto::err::{ErrorKind, HasKind};

pub mod archive;
pub mod client;
pub mod identity;
pub mod passphrase;
pub mod run;
pub mod status;
pub mod webhook;

/// `sessiond`: a localhost gateway to the Session network.
#[derive(Debug, Parser)]
#[command(name = "sessiond", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: store, gRPC on the Unix socket and TCP, until SIGTERM or Ctrl-C.
    Run(run::RunArgs),
    /// Work with Session identities (offline, or those of the running daemon).
    Identity(IdentityArgs),
    /// Queue a message from one of the daemon's identities (prints its id and state).
    Send(client::SendArgs),
    /// Print an identity's events as JSON lines: the backlog after --from-seq, then live.
    Listen(client::ListenArgs),
    /// Show the running daemon's network, paths, identities, outbox and listeners.
    Status(status::StatusArgs),
    /// Encrypt the identity seeds with a passphrase, change it, or remove it (daemon stopped).
    Passphrase(passphrase::PassphraseArgs),
    /// Write an identity's history to a file: JSON lines (importable) or mbox (daemon stopped).
    Export(archive::ExportArgs),
    /// Create a new data dir from an export (`sessiond export --format jsonl`).
    Import(archive::ImportArgs),
    /// Add, list, remove, pause, resume webhooks and replay dead letters (running daemon).
    Webhook(webhook::WebhookArgs),
}

/// `sessiond identity …`: the offline commands and the daemon's.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// The identity command.
    #[command(subcommand)]
    pub cmd: IdentitySub,
    /// Where the daemon is (daemon commands only).
    #[command(flatten)]
    pub client: client::ClientArgs,
}

/// The identity subcommands: offline ones (`inspect`) and gRPC client ones (`new`, `list`, …).
#[derive(Debug, Subcommand)]
pub enum IdentitySub {
    /// Offline commands.
    #[command(flatten)]
    Offline(identity::IdentityCmd),
    /// Commands for the running daemon.
    #[command(flatten)]
    Daemon(client::IdentityClientCmd),
}

/// Why a command failed. Its Display is the one line printed after `error: ` on stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A problem with what the user gave an identity command.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    ReadStdin(#[source] io::Error),
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    WriteStdout(#[source] io::Error),
    /// `sessiond run` failed.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// A gRPC client command failed.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// `sessiond status` failed.
    #[error(transparent)]
    Status(#[from] status::StatusError),
    /// `sessiond passphrase` failed.
    #[error(transparent)]
    Passphrase(#[from] passphrase::PassphraseError),
    /// `sessiond export` or `import` failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveCliError),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Identity(_) => 2,
            Self::ReadStdin(_) | Self::WriteStdout(_) => 1,
            Self::Run(e) => match e.kind() {
                ErrorKind::InvalidInput => 2,
                _ => 1,
            },
            Self::Client(e) => e.exit_code(),
            Self::Status(e) => match e.kind() {
                ErrorKind::InvalidInput => 2,
                _ => 1,
            },
            Self::Passphrase(e) => match e.kind() {
                ErrorKind::InvalidInput | ErrorKind::Unauthenticated => 2,
                _ => 1,
            },
            Self::Archive(e) => match e.kind() {
                ErrorKind::InvalidInput | ErrorKind::AlreadyExists => 2,
                _ => 1,
            },
        }
    }
}

impl HasKind for CliError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Identity(e) => e.kind(),
            Self::ReadStdin(_) | Self::WriteStdout(_) => ErrorKind::LocalIo,
            Self::Run(e) => e.kind(),
            Self::Client(e) => e.kind(),
            Self::Status(e) => e.kind(),
            Self::Passphrase(e) => e.kind(),
            Self::Archive(e) => e.kind(),
        }
    }
}

/// Runs a parsed command line with the given standard input and output; `stderr` gets what
/// must not go to stdout (a new identity's recovery password).
pub fn run(
    cli: Cli,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), CliError> {
    match cli.command {
        Command::Run(args) => {
            // The banner for people; the JSON line for scripts and pipes.
            let human = !args.json && io::stdout().is_terminal();
            run::run(args, stdout, human)?
        }
        Command::Identity(IdentityArgs { cmd, client }) => match cmd {
            IdentitySub::Offline(cmd) => identity::run(cmd, stdin, stdout)?,
            IdentitySub::Daemon(cmd) => client::run_identity(cmd, &client, stdin, stdout, stderr)?,
        },
        Command::Send(args) => client::run_send(args, stdout)?,
        Command::Listen(args) => client::run_listen(args, stdout)?,
        Command::Status(args) => status::run(args, stdout)?,
        Command::Passphrase(args) => passphrase::run(args, stdout)?,
        Command::Export(args) => archive::run_export(args, stdout)?,
        Command::Import(args) => archive::run_import(args, stdout)?,
        Command::Webhook(args) => webhook::run(args, stdout)?,
    }
    Ok(())
}

/// Parses the process arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    match run(cli, &mut stdin, &mut stdout, &mut stderr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, whatever the error says.
            let msg = err.to_string().replace(['\n', '\r'], " ");
            eprintln!("error: {msg}");
            ExitCode::from(err.exit_code())
        }
    }
}
