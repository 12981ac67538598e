//! Config encryption: zstd, prefix padding, deterministic XChaCha20-Poly1305, and multipart
//! splitting.
//!
//! ```text
//! key    = BLAKE2b-256(key_base(32) || u64_be(len(plaintext)) || domain)        unkeyed
//! nonce  = BLAKE2b-192(plaintext, key = "libsessionutil-config-encrypted-" || domain)
//! out    = XChaCha20-Poly1305(plaintext, no AD) [ct || tag16] || nonce24       (+40 bytes)
//! plain  = 00… || ('d' bt-dict | 'z' zstd-frame | 'm' multipart-part)
//! part   = 'm' l 32:<BLAKE2b-256 of the whole padded plaintext> 1:<index> 1:<count> <len>:<chunk> e
//! ```
//!
//! The same plaintext always gives the same ciphertext, so two devices that compute the same
//! merged config store byte-identical messages, which the storage server de-duplicates.

use std::io::Read as _;

use blake2::digest::consts::{U24, U32};
use blake2::digest::{FixedOutput, Mac};
use blake2::{Blake2b, Blake2bMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::bt::{encode_bytes, Reader};
use super::message::{hash_bytes, Hash};
use crate::err::ConfigError;

/// Bytes encryption adds: the 16-byte tag and the 24-byte nonce.
pub const ENCRYPT_OVERHEAD: usize = 16 + 24;
/// The largest message a storage server keeps (`MAX_MESSAGE_SIZE`).
pub const MAX_MESSAGE_SIZE: usize = 76_800;
/// Bytes a multipart part adds around its chunk (`m`, the list, the hash, index, count, length).
pub const MULTIPART_OVERHEAD: usize = 1 + 2 + 3 + 32 + 2 + 1 + 2 + 1 + 6;
/// The largest chunk of one multipart part.
pub const MAX_CHUNK: usize = MAX_MESSAGE_SIZE - MULTIPART_OVERHEAD - ENCRYPT_OVERHEAD;
/// The largest padded (compressed) config we produce (libsession's `MAX_MULTIPART_SIZE`).
pub const MAX_MULTIPART_SIZE: usize = 5_000_000;
/// The largest config we decompress to: far above any real account (2,000 contacts are about
/// 250 KB), low enough that a zstd bomb cannot exhaust memory.
pub const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;
/// libsession's default compression level.
pub const COMPRESSION_LEVEL: i32 = 1;
/// Key prefix of the nonce hash.
const NONCE_KEY_PREFIX: &[u8] = b"libsessionutil-config-encrypted-";

fn cipher_key(key_base: &[u8; 32], len: usize, domain: &str) -> Zeroizing<[u8; 32]> {
    let mut h = Blake2b::<U32>::new();
    Digest::update(&mut h, key_base);
    Digest::update(&mut h, (len as u64).to_be_bytes());
    Digest::update(&mut h, domain.as_bytes());
    Zeroizing::new(h.finalize().into())
}

/// The longest domain: the nonce key (prefix + domain) must fit BLAKE2b's 64-byte key.
pub const MAX_DOMAIN_LEN: usize = 64 - NONCE_KEY_PREFIX.len();

/// The deterministic nonce of `plaintext` in `domain` (at most [`MAX_DOMAIN_LEN`] bytes; every
/// domain is a constant of its config type).
pub fn nonce(plaintext: &[u8], domain: &str) -> [u8; 24] {
    let mut key = Vec::with_capacity(NONCE_KEY_PREFIX.len() + domain.len());
    key.extend_from_slice(NONCE_KEY_PREFIX);
    key.extend_from_slice(domain.as_bytes());
    let mut mac = <Blake2bMac<U24> as Mac>::new_from_slice(&key)
        .expect("config domains are constants of at most MAX_DOMAIN_LEN bytes");
    Mac::update(&mut mac, plaintext);
    mac.finalize_fixed().into()
}

/// Encrypts `plaintext` (already compressed and padded) with `key_base` in `domain`.
pub fn encrypt(plaintext: &[u8], key_base: &[u8; 32], domain: &str) -> Vec<u8> {
    let n = nonce(plaintext, domain);
    let key = cipher_key(key_base, plaintext.len(), domain);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let mut out = Vec::with_capacity(plaintext.len() + ENCRYPT_OVERHEAD);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&n), b"", &mut out)
        .expect("XChaCha20 encrypts messages far longer than any Vec");
    out.extend_from_slice(&tag);
    out.extend_from_slice(&n);
    out
}

/// Decrypts a ciphertext made by [`encrypt`] with the same key base and domain.
pub fn decrypt(
    ciphertext: &[u8],
    key_base: &[u8; 32],
    domain: &str,
) -> Result<Vec<u8>, ConfigError> {
    if ciphertext.len() < ENCRYPT_OVERHEAD {
        return Err(ConfigError::TooShort {
            len: ciphertext.len(),
            min: ENCRYPT_OVERHEAD,
        });
    }
    let len = ciphertext.len() - ENCRYPT_OVERHEAD;
    let (body, rest) = ciphertext.split_at(len);
    let (tag, n) = rest.split_at(16);
    let key = cipher_key(key_base, len, domain);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let mut out = body.to_vec();
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(n), b"", &mut out, tag.into())
        .map_err(|_| ConfigError::Decrypt)?;
    Ok(out)
}

/// The padded size of `size` bytes: `size + overhead` rounded up to 256-byte steps below 5 KiB,
/// 1 KiB below 20 KiB, 2 KiB below 40 KiB and 5 KiB above, minus `overhead`.
pub fn padded_size(size: usize, overhead: usize) -> usize {
    let s2 = size + overhead;
    let chunk = if s2 < 5120 {
        256
    } else if s2 < 20480 {
        1024
    } else if s2 < 40960 {
        2048
    } else {
        5120
    };
    s2.div_ceil(chunk) * chunk - overhead
}

/// Prepends zero bytes up to [`padded_size`]`(len, 40)`.
pub fn pad(msg: Vec<u8>) -> Vec<u8> {
    let target = padded_size(msg.len(), ENCRYPT_OVERHEAD);
    if target <= msg.len() {
        return msg;
    }
    let mut out = vec![0u8; target - msg.len()];
    out.extend_from_slice(&msg);
    out
}

/// `'z' || zstd(msg, level)` when that is strictly shorter than `msg`, else `msg`.
pub fn compress(msg: Vec<u8>, level: i32) -> Vec<u8> {
    match zstd::bulk::compress(&msg, level) {
        Ok(c) if c.len() + 1 < msg.len() => {
            let mut out = Vec::with_capacity(c.len() + 1);
            out.push(b'z');
            out.extend_from_slice(&c);
            out
        }
        _ => msg,
    }
}

/// Decompresses a zstd frame (without the `z`), refusing output above [`MAX_DECOMPRESSED`].
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>, ConfigError> {
    let decoder = zstd::stream::read::Decoder::new(frame)
        .map_err(|_| ConfigError::Decompress("cannot start a zstd decoder"))?;
    let mut out = Vec::new();
    decoder
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| ConfigError::Decompress("not a valid zstd frame"))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(ConfigError::TooLarge {
            size: out.len(),
            max: MAX_DECOMPRESSED,
        });
    }
    if out.is_empty() {
        return Err(ConfigError::Decompress("empty output"));
    }
    Ok(out)
}

/// Removes the leading zero bytes of a decrypted plaintext.
pub fn strip_padding(plain: &[u8]) -> &[u8] {
    let start = plain.iter().position(|&b| b != 0).unwrap_or(plain.len());
    &plain[start..]
}

/// A decrypted plaintext, classified by its first byte after the padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plaintext {
    /// A whole config message (decompressed when it came as `z`).
    Message(Vec<u8>),
    /// One part of a multipart set.
    Part(Part),
}

/// Strips the padding and decodes a decrypted single message or part.
pub fn classify(plain: &[u8]) -> Result<Plaintext, ConfigError> {
    let p = strip_padding(plain);
    match p.first() {
        None => Err(ConfigError::Empty),
        Some(b'm') => Ok(Plaintext::Part(Part::parse(p)?)),
        Some(_) => Ok(Plaintext::Message(unpack(p)?)),
    }
}

/// `d…` as is, `z…` decompressed; anything else is refused.
pub fn unpack(p: &[u8]) -> Result<Vec<u8>, ConfigError> {
    let msg = match p.first() {
        None => return Err(ConfigError::Empty),
        Some(b'z') => decompress(&p[1..])?,
        Some(_) => p.to_vec(),
    };
    match msg.first() {
        Some(b'd') => Ok(msg),
        Some(&b) => Err(ConfigError::UnknownType(b)),
        None => Err(ConfigError::Empty),
    }
}

/// One part of a multipart config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// BLAKE2b-256 of the whole padded plaintext the parts make up.
    pub set_hash: Hash,
    /// This part's index, from 0.
    pub index: u8,
    /// How many parts there are (2..=255).
    pub count: u8,
    /// The chunk.
    pub chunk: Vec<u8>,
}

impl Part {
    /// Parses `m l 32:<hash> 1:<index> 1:<count> <len>:<chunk> e`.
    pub fn parse(p: &[u8]) -> Result<Part, ConfigError> {
        if p.len() > MAX_MESSAGE_SIZE {
            return Err(ConfigError::Multipart(
                "part exceeds the message size limit",
            ));
        }
        if p.first() != Some(&b'm') {
            return Err(ConfigError::Multipart("missing 'm'"));
        }
        let mut r = Reader::new(&p[1..]);
        r.enter()?;
        let set_hash: Hash = r
            .bytes()?
            .try_into()
            .map_err(|_| ConfigError::Multipart("set hash is not 32 bytes"))?;
        let index = one_byte(r.bytes()?)?;
        let count = one_byte(r.bytes()?)?;
        if count <= 1 || index >= count {
            return Err(ConfigError::Multipart("bad part numbering"));
        }
        let chunk = r.bytes()?.to_vec();
        if chunk.is_empty() {
            return Err(ConfigError::Multipart("empty chunk"));
        }
        if !r.end()? {
            return Err(ConfigError::Multipart("elements after the chunk"));
        }
        r.leave();
        r.finish()?;
        Ok(Part {
            set_hash,
            index,
            count,
            chunk,
        })
    }

    /// The encoding of this part (before encryption).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunk.len() + MULTIPART_OVERHEAD);
        out.push(b'm');
        out.push(b'l');
        encode_bytes(&self.set_hash, &mut out);
        encode_bytes(&[self.index], &mut out);
        encode_bytes(&[self.count], &mut out);
        encode_bytes(&self.chunk, &mut out);
        out.push(b'e');
        out
    }
}

fn one_byte(b: &[u8]) -> Result<u8, ConfigError> {
    match b {
        [x] => Ok(*x),
        _ => Err(ConfigError::Multipart("part number is not 1 byte")),
    }
}

/// Splits a padded plaintext into parts of at most [`MAX_CHUNK`] bytes.
pub fn split(padded: &[u8]) -> Result<Vec<Part>, ConfigError> {
    if padded.len() > MAX_MULTIPART_SIZE {
        return Err(ConfigError::TooLarge {
            size: padded.len(),
            max: MAX_MULTIPART_SIZE,
        });
    }
    let set_hash = hash_bytes(padded);
    let count = padded.len().div_ceil(MAX_CHUNK);
    let count = u8::try_from(count).map_err(|_| ConfigError::TooLarge {
        size: padded.len(),
        max: MAX_MULTIPART_SIZE,
    })?;
    Ok(padded
        .chunks(MAX_CHUNK)
        .enumerate()
        .map(|(i, c)| Part {
            set_hash,
            index: i as u8,
            count,
            chunk: c.to_vec(),
        })
        .collect())
}

/// Joins a complete, ordered set of parts and checks the set hash; returns the config message
/// (unpadded, decompressed).
pub fn join(parts: &[&Part]) -> Result<Vec<u8>, ConfigError> {
    let first = parts.first().ok_or(ConfigError::Multipart("no parts"))?;
    let mut whole = Vec::with_capacity(parts.iter().map(|p| p.chunk.len()).sum());
    for (i, p) in parts.iter().enumerate() {
        if p.index as usize != i || p.count != first.count || p.set_hash != first.set_hash {
            return Err(ConfigError::Multipart("parts do not form one set"));
        }
        whole.extend_from_slice(&p.chunk);
    }
    if parts.len() != first.count as usize {
        return Err(ConfigError::Multipart("set is incomplete"));
    }
    if hash_bytes(&whole) != first.set_hash {
        return Err(ConfigError::Multipart(
            "joined parts do not match the set hash",
        ));
    }
    unpack(strip_padding(&whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_join_round_trip() {
        let msg: Vec<u8> = (0..200_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>();
        let mut bt = b"d1:#i1e1:&d1:x".to_vec();
        encode_bytes(&msg, &mut bt);
        bt.extend_from_slice(b"e1:<le1:=dee");
        let padded = pad(bt.clone());
        let parts = split(&padded).expect("splits");
        assert!(parts.len() > 2);
        for p in &parts {
            let enc = p.encode();
            assert!(enc.len() + ENCRYPT_OVERHEAD <= MAX_MESSAGE_SIZE);
            assert_eq!(&Part::parse(&enc).expect("parses"), p);
        }
        let refs: Vec<&Part> = parts.iter().collect();
        assert_eq!(join(&refs).expect("joins"), bt);
        let mut wrong = parts.clone();
        wrong[1].chunk[0] ^= 1;
        let refs: Vec<&Part> = wrong.iter().collect();
        assert!(join(&refs).is_err());
        assert!(join(&refs[..1]).is_err());
    }

    #[test]
    fn bad_parts() {
        for bad in [
            &b"m"[..],
            b"mle",
            b"ml32:0123456789abcdef0123456789abcdef1:\x001:\x011:xe",
            b"ml32:0123456789abcdef0123456789abcdef1:\x021:\x021:xe",
            b"ml32:0123456789abcdef0123456789abcdef1:\x001:\x020:e",
            b"ml32:0123456789abcdef0123456789abcdef1:\x001:\x021:x1:ye",
            b"ml31:0123456789abcdef0123456789abcde1:\x001:\x021:xe",
        ] {
            assert!(
                Part::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Part::parse(b"ml32:0123456789abcdef0123456789abcdef1:\x001:\x021:xe").is_ok());
    }

    #[test]
    fn zstd_bomb_refused() {
        let big = vec![0u8; MAX_DECOMPRESSED + 10];
        let frame = zstd::bulk::compress(&big, 1).expect("compresses");
        assert!(matches!(
            decompress(&frame),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(decompress(b"not zstd").is_err());
    }
}
