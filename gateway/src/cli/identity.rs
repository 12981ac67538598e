//! `sessiond identity …`: offline commands on Session identities.
//!
//! `identity inspect` reads a recovery password from standard input (never from the command
//! line, where other users could see it) and prints one JSON line with the Account ID and the
//! Ed25519 public key.

use std::io::{Read, Write};

use clap::{Args, Subcommand};
use session_proto::err::{ErrorKind, HasKind, MnemonicError};
use session_proto::keys::IdentityKeys;
use zeroize::Zeroizing;

use super::CliError;

/// The largest standard input `inspect` reads; a 13-word phrase is about 100 bytes.
const MAX_INPUT: u64 = 4096;

/// `sessiond identity` subcommands.
#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// Read a recovery password on standard input and print its Account ID and Ed25519 key as
    /// one JSON line.
    Inspect(InspectArgs),
}

/// Arguments of `sessiond identity inspect` (none yet: the phrase comes on standard input).
#[derive(Debug, Args)]
pub struct InspectArgs {}

/// Why an identity command refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The recovery password did not decode.
    #[error("{0}")]
    RecoveryPassword(#[from] MnemonicError),
    /// Standard input was not UTF-8.
    #[error("the recovery password is not valid UTF-8")]
    NotUtf8,
    /// Standard input was longer than any recovery password.
    #[error("standard input is too long for a recovery password (more than {MAX_INPUT} bytes)")]
    TooLong,
}

impl HasKind for IdentityError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::RecoveryPassword(e) => e.kind(),
            Self::NotUtf8 | Self::TooLong => ErrorKind::InvalidInput,
        }
    }
}

/// Runs an identity subcommand.
pub fn run(cmd: IdentityCmd, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        IdentityCmd::Inspect(InspectArgs {}) => inspect(stdin, stdout),
    }
}

/// `identity inspect`: phrase on stdin → `{"account_id":"05…","ed25519_pubkey":"…"}`.
fn inspect(stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), CliError> {
    let phrase = read_secret(stdin)?;
    let keys = IdentityKeys::from_recovery_password(&phrase).map_err(IdentityError::from)?;
    let line = serde_json::json!({
        "account_id": keys.account_id().to_string(),
        "ed25519_pubkey": hex::encode(keys.ed25519_public()),
    });
    writeln!(stdout, "{line}").map_err(CliError::WriteStdout)?;
    stdout.flush().map_err(CliError::WriteStdout)
}

/// Reads all of standard input (bounded) as UTF-8 into a buffer that is wiped on drop.
fn read_secret(stdin: &mut dyn Read) -> Result<Zeroizing<String>, CliError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    stdin
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(CliError::ReadStdin)?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(IdentityError::TooLong.into());
    }
    let text = std::str::from_utf8(&buf).map_err(|_| IdentityError::NotUtf8)?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_str(input: &[u8]) -> Result<String, CliError> {
        let mut out = Vec::new();
        inspect(&mut &input[..], &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn prints_one_json_line() {
        let out = inspect_str(
            b"puffin luxury annoyed rustled memoir faxed smidgen puddle kiwi nylon utopia zinger kiwi\n",
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"account_id\":\"054830367d369d94605247999a375dbd0a0f65fdec5de1535612bcb6d4de452c69\",\
             \"ed25519_pubkey\":\"f661a69453ef81a3b75bfcf954eb1f439d4d74edcab0e72a5c435ee418a907be\"}\n"
        );
    }

    #[test]
    fn refuses_bad_input() {
        let err = inspect_str(&[0xff, 0xfe]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.to_string(), "the recovery password is not valid UTF-8");
        let err = inspect_str(&vec![b'a'; 5000]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
