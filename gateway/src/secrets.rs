//! Secrets at rest: a key derived from the store's passphrase (Argon2id) seals identity seeds
//! (XChaCha20-Poly1305), and where the daemon finds the passphrase.
//!
//! The lock record ([`Lock`], JSON in the store's `blobs` table) holds the salt, the Argon2id
//! cost and a sealed check value; it holds nothing that would let anyone test a guess faster
//! than Argon2id allows. A sealed value is laid out as
//!
//! ```text
//! 0x01 (version) | 24-byte random nonce | ciphertext + 16-byte Poly1305 tag
//! ```
//!
//! and bound to what it is (the AAD names the record, e.g. `seed/<identity id>`), so sealed
//! values cannot be swapped between records.
//!
//! The passphrase comes from, in order: the file `SESSIOND_PASSPHRASE_FILE` names, the systemd
//! credential `passphrase` (`$CREDENTIALS_DIRECTORY/passphrase`, from `LoadCredential=` or
//! `LoadCredentialEncrypted=`), or a prompt when standard input is a terminal. Its first line
//! is the passphrase (a trailing newline is not part of it).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use session_proto::err::{ErrorKind, HasKind};
use zeroize::Zeroizing;

use crate::config::env;

/// The systemd credential's name.
pub const CREDENTIAL: &str = "passphrase";
/// The sealed-value format version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Bytes a sealed value adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;
/// What the check value seals (its AAD is "check").
const CHECK: &[u8] = b"sessiond store passphrase";
/// The longest passphrase file read (a passphrase is one line).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why a secret could not be sealed, opened or found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The passphrase does not open the store.
    #[error("wrong passphrase for this data dir's store")]
    WrongPassphrase,
    /// A sealed value is damaged (or sealed for another record).
    #[error("a sealed {what} cannot be opened: it is damaged or was moved from another record")]
    Damaged {
        /// Which record.
        what: String,
    },
    /// The store is encrypted and no passphrase was given.
    #[error(
        "the store is encrypted and no passphrase was given: set SESSIOND_PASSPHRASE_FILE, pass \
         a systemd credential named \"passphrase\", or run on a terminal to be asked"
    )]
    NoPassphrase,
    /// The passphrase source could not be read.
    #[error("cannot read the passphrase from {}: {detail}", path.display())]
    Read {
        /// The file (or the terminal).
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// An empty passphrase was given.
    #[error("the passphrase is empty")]
    Empty,
    /// The two entries of a new passphrase differ.
    #[error("the two passphrases differ")]
    Mismatch,
    /// The lock record is malformed, or its parameters are unusable.
    #[error("the store's passphrase record is damaged: {0}")]
    BadLock(String),
}

impl HasKind for SecretsError {
    fn kind(&self) -> ErrorKind {
        match self {
            SecretsError::WrongPassphrase | SecretsError::NoPassphrase => {
                ErrorKind::Unauthenticated
            }
            SecretsError::Damaged { .. } | SecretsError::BadLock(_) => ErrorKind::CorruptState,
            SecretsError::Read { .. } => ErrorKind::LocalIo,
            SecretsError::Empty | SecretsError::Mismatch => ErrorKind::InvalidInput,
        }
    }
}

/// The store's lock record: the key's derivation and a check value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Argon2id salt, hex.
    pub salt: String,
    /// Memory cost, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// [`CHECK`] sealed with the key, hex.
    pub check: String,
}

/// A key that seals and opens the store's secrets; zeroed on drop.
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Argon2id parameters: OWASP's first recommended set (19 MiB, 2 passes, 1 lane), about 50 ms
/// here; paid once at start-up.
const M_KIB: u32 = 19 * 1024;
const T: u32 = 2;
const P: u32 = 1;

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
) -> Result<SealKey, SecretsError> {
    let params =
        Params::new(m_kib, t, p, Some(32)).map_err(|e| SecretsError::BadLock(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| SecretsError::BadLock(e.to_string()))?;
    Ok(SealKey(key))
}

impl SealKey {
    /// A new lock for `passphrase` (fresh salt) and its key.
    pub fn create(passphrase: &str) -> Result<(Lock, SealKey), SecretsError> {
        if passphrase.is_empty() {
            return Err(SecretsError::Empty);
        }
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let key = derive(passphrase.as_bytes(), &salt, M_KIB, T, P)?;
        let lock = Lock {
            salt: hex::encode(salt),
            m_kib: M_KIB,
            t: T,
            p: P,
            check: hex::encode(key.seal("check", CHECK)),
        };
        Ok((lock, key))
    }

    /// The key `passphrase` gives for `lock`; [`SecretsError::WrongPassphrase`] if it is not
    /// the one the lock was made with.
    pub fn unlock(lock: &Lock, passphrase: &str) -> Result<SealKey, SecretsError> {
        let bad = |what: &str| SecretsError::BadLock(format!("{what} is not hex"));
        let salt = hex::decode(&lock.salt).map_err(|_| bad("the salt"))?;
        let check = hex::decode(&lock.check).map_err(|_| bad("the check value"))?;
        let key = derive(passphrase.as_bytes(), &salt, lock.m_kib, lock.t, lock.p)?;
        match key.open("check", &check) {
            Ok(plain) if plain.as_slice() == CHECK => Ok(key),
            _ => Err(SecretsError::WrongPassphrase),
        }
    }

    /// Seals `plain` as the record `what` (the AAD).
    pub fn seal(&self, what: &str, plain: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: what.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed as the record `what`.
    pub fn open(&self, what: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let damaged = || SecretsError::Damaged {
            what: what.to_owned(),
        };
        if sealed.len() < OVERHEAD || sealed[0] != VERSION {
            return Err(damaged());
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: what.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| damaged())
    }
}

/// The first line of a passphrase file.
pub fn read_passphrase_file(path: &Path) -> Result<Zeroizing<String>, SecretsError> {
    use std::io::Read;
    let err = |detail: String| SecretsError::Read {
        path: path.to_owned(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| err(e.to_string()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(SecretsError::Empty);
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// The passphrase from the environment (`vars`): `SESSIOND_PASSPHRASE_FILE`, then the systemd
/// credential. `None` if neither is set.
pub fn passphrase_from_env(
    vars: impl Fn(&str) -> Option<String>,
) -> Option<Result<Zeroizing<String>, SecretsError>> {
    if let Some(file) = vars(env::PASSPHRASE_FILE).filter(|v| !v.is_empty()) {
        return Some(read_passphrase_file(Path::new(&file)));
    }
    let dir = vars("CREDENTIALS_DIRECTORY").filter(|v| !v.is_empty())?;
    let path = Path::new(&dir).join(CREDENTIAL);
    path.exists().then(|| read_passphrase_file(&path))
}

/// The store's passphrase: from the environment, else asked on the terminal (`prompt`), else
/// [`SecretsError::NoPassphrase`].
pub fn obtain_passphrase(prompt: &str) -> Result<Zeroizing<String>, SecretsError> {
    if let Some(found) = passphrase_from_env(|k| std::env::var(k).ok()) {
        return found;
    }
    if !std::io::stdin().is_terminal() {
        return Err(SecretsError::NoPassphrase);
    }
    ask(prompt)
}

/// Asks on the terminal, without echo.
pub fn ask(prompt: &str) -> Result<Zeroizing<String>, SecretsError> {
    let answer = rpassword::prompt_password(prompt).map_err(|e| SecretsError::Read {
        path: PathBuf::from("/dev/tty"),
        detail: e.to_string(),
    })?;
    let answer = Zeroizing::new(answer);
    if answer.is_empty() {
        return Err(SecretsError::Empty);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_passphrase_opens_and_a_wrong_one_is_refused() {
        let (lock, key) = SealKey::create("correct horse").expect("create");
        let sealed = key.seal("seed/1", &[7u8; 32]);
        assert_eq!(sealed.len(), 32 + OVERHEAD);
        assert!(!sealed.windows(32).any(|w| w == [7u8; 32]));
        let again = SealKey::unlock(&lock, "correct horse").expect("unlock");
        assert_eq!(
            again.open("seed/1", &sealed).expect("open").as_slice(),
            &[7u8; 32]
        );
        assert!(matches!(
            SealKey::unlock(&lock, "wrong horse"),
            Err(SecretsError::WrongPassphrase)
        ));
        // Bound to its record, and tamper-evident.
        assert!(again.open("seed/2", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(again.open("seed/1", &flipped).is_err());
        assert!(again.open("seed/1", &sealed[..10]).is_err());
        assert!(SealKey::create("").is_err());
    }

    #[test]
    fn a_damaged_lock_is_an_error_not_a_panic() {
        let (mut lock, _) = SealKey::create("x").expect("create");
        lock.salt = "zz".into();
        assert!(matches!(
            SealKey::unlock(&lock, "x"),
            Err(SecretsError::BadLock(_))
        ));
        let (mut lock, _) = SealKey::create("x").expect("create");
        lock.m_kib = 0;
        assert!(matches!(
            SealKey::unlock(&lock, "x"),
            Err(SecretsError::BadLock(_))
        ));
    }

    #[test]
    fn the_passphrase_comes_from_the_file_then_the_credential() {
        let dir = std::env::temp_dir().join(format!("sd-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("pp");
        std::fs::write(&file, "from file\nignored\n").expect("write");
        std::fs::write(dir.join(CREDENTIAL), "from credential\n").expect("write");
        let f = file.to_string_lossy().to_string();
        let d = dir.to_string_lossy().to_string();
        let got = passphrase_from_env(|k| match k {
            env::PASSPHRASE_FILE => Some(f.clone()),
            "CREDENTIALS_DIRECTORY" => Some(d.clone()),
            _ => None,
        });
        assert_eq!(got.expect("some").expect("ok").as_str(), "from file");
        let got = passphrase_from_env(|k| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone()));
        assert_eq!(got.expect("some").expect("ok").as_str(), "from credential");
        assert!(passphrase_from_env(|_| None).is_none());
        std::fs::write(&file, "\n").expect("write");
        let got = passphrase_from_env(|k| (k == env::PASSPHRASE_FILE).then(|| f.clone()));
        assert!(matches!(got, Some(Err(SecretsError::Empty))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
