//! The legacy attachment scheme, which every released client sends today: zero padding,
//! AES-256-CBC with PKCS#7, HMAC-SHA256, and a SHA-256 digest of the whole blob.
//!
//! Layout of the uploaded blob:
//!
//! ```text
//! iv(16) ‖ AES-256-CBC-PKCS7(aes_key, iv, data ‖ 0x00 × (padded_len(n) − n)) ‖ HMAC-SHA256(mac_key, iv ‖ ciphertext)(32)
//! ```
//!
//! with `key = aes_key(32) ‖ mac_key(32)` (64 random bytes) and `digest = SHA-256(blob)`; the
//! pointer's `size` is the unpadded length `n`. [`LegacyEncryptor`] and [`LegacyDecryptor`]
//! work on chunks of any size, so a file never has to be in memory whole.

use aes::Aes256;
use cbc::cipher::inout::InOutBuf;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{MAX_ATTACHMENT_SIZE, MAX_ENCRYPTED_LEN};
use crate::err::AttachmentError;

/// Key length: AES-256 key then HMAC-SHA256 key.
pub const KEY_LEN: usize = 64;
/// IV length (the AES block).
pub const IV_LEN: usize = 16;
/// HMAC length at the end of the blob.
pub const MAC_LEN: usize = 32;
/// SHA-256 digest length.
pub const DIGEST_LEN: usize = 32;
/// Padding never gives less than this many bytes.
pub const MIN_PADDED_LEN: u64 = 541;

const BLOCK: usize = 16;
/// The decryptor holds back the last ciphertext block (for PKCS#7) and the MAC.
const HOLD: usize = BLOCK + MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Desktop's attachment padding: `max(541, floor(1.05^ceil(ln n / ln 1.05)))` in IEEE
/// doubles, capped at 10,000,000 when `n` is at most that (and never below `n`).
pub fn padded_len(n: u64) -> u64 {
    let exp = ((n as f64).ln() / 1.05f64.ln()).ceil();
    // `as` saturates: n = 0 gives 1.05^-inf = 0; huge values stay huge.
    let grown = 1.05f64.powf(exp).floor() as u64;
    let mut padded = grown.max(MIN_PADDED_LEN);
    if padded > MAX_ATTACHMENT_SIZE && n <= MAX_ATTACHMENT_SIZE {
        padded = MAX_ATTACHMENT_SIZE;
    }
    padded.max(n)
}

/// Length of the blob for `n` plaintext bytes: IV, padded data plus PKCS#7, MAC.
pub fn blob_len(n: u64) -> u64 {
    let padded = padded_len(n);
    IV_LEN as u64 + (padded / BLOCK as u64 + 1) * BLOCK as u64 + MAC_LEN as u64
}

/// Incremental encryption: [`LegacyEncryptor::update`] with the data in chunks, then
/// [`LegacyEncryptor::finish`], which adds the padding and MAC and returns the digest. The
/// output is appended to a caller's buffer, which the caller drains (uploads) as it likes.
pub struct LegacyEncryptor {
    cbc: cbc::Encryptor<Aes256>,
    mac: HmacSha256,
    sha: Sha256,
    iv: [u8; IV_LEN],
    declared: u64,
    fed: u64,
    started: bool,
    pending: [u8; BLOCK],
    pending_len: usize,
}

impl std::fmt::Debug for LegacyEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyEncryptor")
            .field("declared", &self.declared)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl LegacyEncryptor {
    /// Starts encrypting `plaintext_len` bytes under `key` (64 random bytes) and `iv` (16
    /// random bytes); both come from the caller, who draws them from a CSPRNG.
    /// [`AttachmentError::TooLarge`] over 10,000,000 bytes.
    pub fn new(
        key: &[u8; KEY_LEN],
        iv: &[u8; IV_LEN],
        plaintext_len: u64,
    ) -> Result<LegacyEncryptor, AttachmentError> {
        if plaintext_len > MAX_ATTACHMENT_SIZE {
            return Err(AttachmentError::TooLarge {
                len: plaintext_len,
                max: MAX_ATTACHMENT_SIZE,
            });
        }
        let (aes_key, mac_key) = key.split_at(32);
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(mac_key).expect("HMAC takes a key of any length");
        mac.update(iv);
        Ok(LegacyEncryptor {
            cbc: cbc::Encryptor::<Aes256>::new(aes_key.into(), iv.into()),
            mac,
            sha: Sha256::new(),
            iv: *iv,
            declared: plaintext_len,
            fed: 0,
            started: false,
            pending: [0; BLOCK],
            pending_len: 0,
        })
    }

    /// Length of the whole blob this encryptor produces.
    pub fn blob_len(&self) -> u64 {
        blob_len(self.declared)
    }

    /// Encrypts the next `data`, appending whole ciphertext blocks to `out` (the IV first).
    /// [`AttachmentError::LengthMismatch`] if this goes past the declared length.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let got = self.fed.saturating_add(data.len() as u64);
        if got > self.declared {
            return Err(AttachmentError::LengthMismatch {
                declared: self.declared,
                got,
            });
        }
        self.fed = got;
        self.encrypt_plain(data, out);
        Ok(())
    }

    /// Pads, encrypts the rest, appends the MAC and returns `digest = SHA-256(blob)`.
    /// [`AttachmentError::LengthMismatch`] if fewer bytes came than declared.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<[u8; DIGEST_LEN], AttachmentError> {
        if self.fed != self.declared {
            return Err(AttachmentError::LengthMismatch {
                declared: self.declared,
                got: self.fed,
            });
        }
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut zeros = padded_len(self.declared) - self.declared;
        while zeros > 0 {
            let n = zeros.min(ZEROS.len() as u64) as usize;
            self.encrypt_plain(&ZEROS[..n], out);
            zeros -= n as u64;
        }
        // PKCS#7: 1-16 bytes, each the pad length; a whole block when already aligned.
        let pad = (BLOCK - self.pending_len) as u8;
        let mut last = [pad; BLOCK];
        last[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        self.pending_len = 0;
        self.encrypt_plain(&last, out);
        let tag = self.mac.finalize().into_bytes();
        out.extend_from_slice(&tag);
        self.sha.update(tag);
        Ok(self.sha.finalize().into())
    }

    fn encrypt_plain(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.extend_from_slice(&self.iv);
            self.sha.update(self.iv);
        }
        let start = out.len();
        out.extend_from_slice(&self.pending[..self.pending_len]);
        out.extend_from_slice(data);
        let whole = (out.len() - start) / BLOCK * BLOCK;
        self.pending_len = out.len() - start - whole;
        self.pending[..self.pending_len].copy_from_slice(&out[start + whole..]);
        out.truncate(start + whole);
        let (blocks, _) = InOutBuf::from(&mut out[start..]).into_chunks();
        self.cbc.encrypt_blocks_inout_mut(blocks);
        self.mac.update(&out[start..]);
        self.sha.update(&out[start..]);
    }
}

/// Incremental decryption and verification of a legacy blob.
///
/// Feed the downloaded bytes with [`LegacyDecryptor::update`] in chunks of any size; the
/// plaintext is appended to the caller's buffer as it is decrypted (at most `size` bytes in
/// all). The digest and MAC cover the whole blob, so **nothing written is authentic until
/// [`LegacyDecryptor::finish`] returns `Ok`**: write the output somewhere temporary and keep
/// it only then. `finish` checks, in order: the length, the digest
/// ([`AttachmentError::DigestMismatch`]: a corrupt or wrong download), the MAC
/// ([`AttachmentError::BadMac`]: a wrong key), PKCS#7, and that at least `size` bytes came out.
pub struct LegacyDecryptor {
    aes_key: Zeroizing<[u8; 32]>,
    cbc: Option<cbc::Decryptor<Aes256>>,
    mac: HmacSha256,
    sha: Sha256,
    digest: [u8; DIGEST_LEN],
    size: Option<u64>,
    held: Vec<u8>,
    received: u64,
    emitted: u64,
}

impl std::fmt::Debug for LegacyDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyDecryptor")
            .field("size", &self.size)
            .field("received", &self.received)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl LegacyDecryptor {
    /// Starts decrypting an attachment with the pointer's `key` (64 bytes), `digest` (32
    /// bytes, required) and `size` (the unpadded length; without it, as desktop does, the
    /// padding is kept).
    pub fn new(
        key: &[u8],
        digest: &[u8],
        size: Option<u64>,
    ) -> Result<LegacyDecryptor, AttachmentError> {
        let key: &[u8; KEY_LEN] = key.try_into().map_err(|_| AttachmentError::BadKeyLength {
            scheme: "legacy",
            expected: KEY_LEN,
            len: key.len(),
        })?;
        let digest: [u8; DIGEST_LEN] = match digest.len() {
            0 => return Err(AttachmentError::MissingDigest),
            DIGEST_LEN => digest.try_into().expect("length checked"),
            len => return Err(AttachmentError::BadDigestLength { len }),
        };
        if size.is_some_and(|s| s > MAX_ENCRYPTED_LEN) {
            return Err(AttachmentError::Oversized {
                max: MAX_ENCRYPTED_LEN,
            });
        }
        let mut aes_key = Zeroizing::new([0u8; 32]);
        aes_key.copy_from_slice(&key[..32]);
        Ok(LegacyDecryptor {
            aes_key,
            cbc: None,
            mac: <HmacSha256 as Mac>::new_from_slice(&key[32..])
                .expect("HMAC takes a key of any length"),
            sha: Sha256::new(),
            digest,
            size,
            held: Vec::new(),
            received: 0,
            emitted: 0,
        })
    }

    /// Takes the next downloaded bytes, appending decrypted (not yet authenticated) plaintext
    /// to `out`. [`AttachmentError::Oversized`] past the largest possible attachment.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        self.received = self.received.saturating_add(data.len() as u64);
        if self.received > MAX_ENCRYPTED_LEN {
            return Err(AttachmentError::Oversized {
                max: MAX_ENCRYPTED_LEN,
            });
        }
        self.sha.update(data);
        self.held.extend_from_slice(data);
        if self.cbc.is_none() {
            if self.held.len() < IV_LEN {
                return Ok(());
            }
            let iv: [u8; IV_LEN] = self.held[..IV_LEN].try_into().expect("16 bytes");
            self.mac.update(&iv);
            self.cbc = Some(cbc::Decryptor::<Aes256>::new(
                (&self.aes_key[..]).into(),
                (&iv).into(),
            ));
            self.held.drain(..IV_LEN);
        }
        let ready = self.held.len().saturating_sub(HOLD) / BLOCK * BLOCK;
        if ready > 0 {
            self.mac.update(&self.held[..ready]);
            let mut buf = std::mem::take(&mut self.held);
            self.decrypt_into(&mut buf[..ready], out);
            buf.drain(..ready);
            self.held = buf;
        }
        Ok(())
    }

    /// Verifies the blob and appends the last plaintext bytes; see the type's docs.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let min = (IV_LEN + BLOCK + MAC_LEN) as u64;
        if self.received < min {
            return Err(AttachmentError::Truncated {
                len: self.received,
                reason: "shorter than an IV, one AES block and the MAC",
            });
        }
        if self.held.len() != HOLD {
            return Err(AttachmentError::Truncated {
                len: self.received,
                reason: "the ciphertext is not a whole number of AES blocks",
            });
        }
        let sha = std::mem::take(&mut self.sha).finalize();
        if sha.as_slice() != self.digest {
            return Err(AttachmentError::DigestMismatch);
        }
        let (last, tag) = self.held.split_at(BLOCK);
        self.mac.update(last);
        let mac = std::mem::replace(
            &mut self.mac,
            <HmacSha256 as Mac>::new_from_slice(&[]).expect("any key length"),
        );
        mac.verify_slice(tag).map_err(|_| AttachmentError::BadMac)?;
        let mut block: [u8; BLOCK] = last.try_into().expect("16 bytes");
        let cbc = self.cbc.as_mut().expect("set once 16 bytes arrived");
        cbc.decrypt_block_mut((&mut block).into());
        let pad = block[BLOCK - 1];
        if pad == 0
            || usize::from(pad) > BLOCK
            || block[BLOCK - usize::from(pad)..].iter().any(|&b| b != pad)
        {
            return Err(AttachmentError::BadPadding);
        }
        let plain = &block[..BLOCK - usize::from(pad)];
        let total = self.received - (IV_LEN + MAC_LEN) as u64 - u64::from(pad);
        if let Some(size) = self.size.filter(|&s| total < s) {
            return Err(AttachmentError::ShortPlaintext { size, got: total });
        }
        self.emit(plain, out);
        Ok(())
    }

    fn decrypt_into(&mut self, ct: &mut [u8], out: &mut Vec<u8>) {
        let cbc = self.cbc.as_mut().expect("set before any ciphertext");
        let (blocks, _) = InOutBuf::from(&mut *ct).into_chunks();
        cbc.decrypt_blocks_inout_mut(blocks);
        self.emit(ct, out);
    }

    /// Appends plaintext up to the pointer's size; the rest is padding.
    fn emit(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        let limit = self.size.unwrap_or(u64::MAX);
        let room = (limit - self.emitted).min(plain.len() as u64) as usize;
        out.extend_from_slice(&plain[..room]);
        self.emitted += room as u64;
    }
}

/// Encrypts `data` whole: `(blob, digest)`. For small files and tests; large files go through
/// [`LegacyEncryptor`] in chunks.
pub fn encrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
    data: &[u8],
) -> Result<(Vec<u8>, [u8; DIGEST_LEN]), AttachmentError> {
    let mut enc = LegacyEncryptor::new(key, iv, data.len() as u64)?;
    let mut out = Vec::with_capacity(enc.blob_len() as usize);
    enc.update(data, &mut out)?;
    let digest = enc.finish(&mut out)?;
    Ok((out, digest))
}

/// Decrypts and verifies a whole blob.
pub fn decrypt(
    key: &[u8],
    digest: &[u8],
    size: Option<u64>,
    blob: &[u8],
) -> Result<Vec<u8>, AttachmentError> {
    let mut dec = LegacyDecryptor::new(key, digest, size)?;
    let mut out = Vec::with_capacity(blob.len());
    dec.update(blob, &mut out)?;
    dec.finish(&mut out)?;
    Ok(out)
}
