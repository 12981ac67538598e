//! The `sessiond` command line: one clap tree, one file per command group under `cli/`.
//!
//! Adding a command group: a `cli/<group>.rs` with its clap `Subcommand` enum and a `run`
//! function, a variant in [`Command`], an arm in [`run`], and variants in [`CliError`] for its
//! failures (each with an exit status in [`CliError::exit_code`]).
//!
//! Exit statuses: 0 success; 1 the command could not do its work (I/O); 2 bad input or usage
//! (clap's own usage errors also exit 2).

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use session_proto::err::{ErrorKind, HasKind};

pub mod identity;

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
    /// Work with Session identities.
    #[command(subcommand)]
    Identity(identity::IdentityCmd),
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
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Identity(_) => 2,
            Self::ReadStdin(_) | Self::WriteStdout(_) => 1,
        }
    }
}

impl HasKind for CliError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Identity(e) => e.kind(),
            // ErrorKind has no I/O kind yet; a broken stdin/stdout is closest to bad input from
            // the caller's side, and the CLI maps errors to exit codes, not kinds.
            Self::ReadStdin(_) | Self::WriteStdout(_) => ErrorKind::InvalidInput,
        }
    }
}

/// Runs a parsed command line with the given standard input and output.
pub fn run(cli: Cli, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Identity(cmd) => identity::run(cmd, stdin, stdout),
    }
}

/// Parses the process arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    match run(cli, &mut stdin, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, whatever the error says.
            let msg = err.to_string().replace(['\n', '\r'], " ");
            eprintln!("error: {msg}");
            ExitCode::from(err.exit_code())
        }
    }
}
