//! libsession's stream attachment scheme ("deterministic encryption"): an XChaCha20-Poly1305
//! secret stream over padded data, with key and header derived from the data itself, so the
//! same file from the same sender encrypts to the same blob.
//!
//! Layout of the uploaded blob:
//!
//! ```text
//! 'S'(0x53) ‖ header(24) ‖ secretstream chunks of ≤ 32,768 plaintext bytes (+17 each), the last tagged FINAL
//! plaintext stream = 0x00 × (P − 1) ‖ 0x01 ‖ data
//! ```
//!
//! P ≥ 1 is chosen ([`encrypted_padding`]) so that the whole blob is a multiple of
//! `bit_floor(max(raw, 131072)) / 32` bytes. The pointer carries the 32-byte key, no digest
//! (the AEAD authenticates every chunk), the plaintext `size`, and a URL with the `d`
//! fragment. Key and header come from `BLAKE2b(data, 56, key = seed, personal =
//! "SessionAttachmnt")` (newest libsession; [`Kdf::Personal`]) or `BLAKE2b(seed ‖ data, 56,
//! key = domain byte)` (older; [`Kdf::DomainByte`]): header = bytes 0–23, key = 24–55. Only
//! the sender needs the derivation; a receiver needs the key alone.

use blake2::digest::consts::U56;
use blake2::digest::{FixedOutput, Mac};
use blake2::Blake2bMac;
use zeroize::Zeroizing;

use super::secretstream::{State, ABYTES, HEADER_LEN, KEY_LEN, TAG_FINAL, TAG_MESSAGE};
use super::MAX_ENCRYPTED_LEN;
use crate::err::AttachmentError;

/// First byte of a stream-encrypted blob.
pub const PREFIX: u8 = b'S';
/// Plaintext bytes per secretstream chunk.
pub const CHUNK_LEN: usize = 32_768;
/// Bytes of one full encrypted chunk.
pub const ENCRYPTED_CHUNK_LEN: usize = CHUNK_LEN + ABYTES;
/// The largest input libsession encrypts without `allow_large`; it gives
/// [`MAX_ENCRYPTED_LEN`] bytes.
pub const MAX_REGULAR_SIZE: u64 = 10_218_286;

const PREFIX_LEN: usize = 1 + HEADER_LEN;

/// What the key is for: it selects the BLAKE2b personalisation (or domain byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// A message attachment (`"SessionAttachmnt"`, domain byte 0).
    Attachment,
    /// A profile picture (`"Session_Prof_Pic"`, domain byte 1).
    ProfilePic,
}

/// Which key derivation a sender uses; receivers do not care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// Newest libsession: keyed by the seed, personalised by the domain.
    Personal,
    /// Older libsession: the seed hashed before the data, keyed by one domain byte.
    DomainByte,
}

/// Number of padding bytes P (≥ 1) for `n` data bytes: the total encrypted size is rounded up
/// to a multiple of `bit_floor(max(raw, 131072)) >> 5`, counting the chunk tags the padding
/// itself brings as part of the padding.
pub fn encrypted_padding(n: u64) -> u64 {
    let chunk = CHUNK_LEN as u64;
    let abytes = ABYTES as u64;
    let full = ENCRYPTED_CHUNK_LEN as u64;
    let chunks = n.div_ceil(chunk);
    let raw = n + PREFIX_LEN as u64 + 1 + chunks * abytes;
    let factor = bit_floor(raw.max(131_072)) >> 5;
    let rounded = raw.div_ceil(factor) * factor;
    let mut padding = rounded - raw + 1;
    // Each whole encrypted chunk of padding carries a tag that already counts as padding…
    let mut implicit = padding / full * abytes;
    // …and so does the tag of a chunk the padding spills into beyond the data's own chunks.
    let free = chunks * chunk - n;
    if padding % full > free {
        implicit += abytes;
    }
    padding -= implicit;
    padding
}

/// Total blob length for `n` data bytes.
pub fn encrypted_size(n: u64) -> u64 {
    let stream = n + encrypted_padding(n);
    PREFIX_LEN as u64 + stream + stream.div_ceil(CHUNK_LEN as u64) * ABYTES as u64
}

fn bit_floor(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        1 << (63 - x.leading_zeros())
    }
}

/// The derived secretstream header and key.
#[derive(Clone)]
pub struct StreamKey {
    /// Used as the secretstream header as is.
    pub header: [u8; HEADER_LEN],
    /// The key that goes in the pointer.
    pub key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(..)")
    }
}

/// First pass over the data: hashes it into the [`StreamKey`].
#[derive(Debug)]
pub struct KeyHasher {
    mac: Blake2bMac<U56>,
}

impl KeyHasher {
    /// Starts the derivation for the sender's 32-byte `seed` (its Ed25519 seed).
    pub fn new(seed: &[u8; 32], domain: Domain, kdf: Kdf) -> KeyHasher {
        let mac = match kdf {
            Kdf::Personal => {
                let personal: &[u8; 16] = match domain {
                    Domain::Attachment => b"SessionAttachmnt",
                    Domain::ProfilePic => b"Session_Prof_Pic",
                };
                Blake2bMac::<U56>::new_with_salt_and_personal(seed, &[], personal)
                    .expect("a 32-byte key and 16-byte personalisation fit BLAKE2b")
            }
            Kdf::DomainByte => {
                let byte = match domain {
                    Domain::Attachment => 0u8,
                    Domain::ProfilePic => 1,
                };
                let mut m = Blake2bMac::<U56>::new_with_salt_and_personal(&[byte], &[], &[])
                    .expect("a 1-byte key fits BLAKE2b");
                Mac::update(&mut m, seed);
                m
            }
        };
        KeyHasher { mac }
    }

    /// Hashes the next data.
    pub fn update(&mut self, data: &[u8]) {
        Mac::update(&mut self.mac, data);
    }

    /// The header and key.
    pub fn finish(self) -> StreamKey {
        let out = Zeroizing::new(<[u8; 56]>::from(self.mac.finalize_fixed()));
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&out[HEADER_LEN..]);
        StreamKey {
            header: out[..HEADER_LEN].try_into().expect("24 bytes"),
            key,
        }
    }
}

/// Derives the key of `data` in one pass (for data in memory).
pub fn derive_key(seed: &[u8; 32], domain: Domain, kdf: Kdf, data: &[u8]) -> StreamKey {
    let mut h = KeyHasher::new(seed, domain, kdf);
    h.update(data);
    h.finish()
}

/// Second pass: encrypts `data_len` bytes in chunks of any size. The blob (prefix, header,
/// padding chunks, data chunks) is appended to a caller's buffer, one chunk at a time.
pub struct StreamEncryptor {
    state: State,
    header: [u8; HEADER_LEN],
    data_len: u64,
    fed: u64,
    padding: u64,
    stream_len: u64,
    pushed: u64,
    started: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncryptor")
            .field("data_len", &self.data_len)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl StreamEncryptor {
    /// Starts encrypting `data_len` bytes under `key`. [`AttachmentError::TooLarge`] above
    /// [`MAX_REGULAR_SIZE`] unless `allow_large`.
    pub fn new(
        key: &StreamKey,
        data_len: u64,
        allow_large: bool,
    ) -> Result<StreamEncryptor, AttachmentError> {
        if data_len > MAX_REGULAR_SIZE && !allow_large {
            return Err(AttachmentError::TooLarge {
                len: data_len,
                max: MAX_REGULAR_SIZE,
            });
        }
        let padding = encrypted_padding(data_len);
        Ok(StreamEncryptor {
            state: State::new(&key.key, &key.header),
            header: key.header,
            data_len,
            fed: 0,
            padding,
            stream_len: data_len + padding,
            pushed: 0,
            started: false,
            buf: Vec::with_capacity(CHUNK_LEN),
        })
    }

    /// Length of the whole blob.
    pub fn blob_len(&self) -> u64 {
        encrypted_size(self.data_len)
    }

    /// Encrypts the next `data`. [`AttachmentError::LengthMismatch`] past the declared length.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let got = self.fed.saturating_add(data.len() as u64);
        if got > self.data_len {
            return Err(AttachmentError::LengthMismatch {
                declared: self.data_len,
                got,
            });
        }
        self.fed = got;
        self.start(out);
        self.feed(data, out);
        Ok(())
    }

    /// Ends the stream. [`AttachmentError::LengthMismatch`] if data is missing.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        if self.fed != self.data_len {
            return Err(AttachmentError::LengthMismatch {
                declared: self.data_len,
                got: self.fed,
            });
        }
        self.start(out);
        debug_assert!(
            self.buf.is_empty() || self.pushed + self.buf.len() as u64 == self.stream_len
        );
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.push(&buf, out);
        }
        Ok(())
    }

    /// Writes `'S' ‖ header` and the padding, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(PREFIX);
        out.extend_from_slice(&self.header);
        static ZEROS: [u8; CHUNK_LEN] = [0; CHUNK_LEN];
        let mut zeros = self.padding - 1;
        while zeros > 0 {
            let n = zeros.min(CHUNK_LEN as u64) as usize;
            self.feed(&ZEROS[..n], out);
            zeros -= n as u64;
        }
        self.feed(&[0x01], out);
    }

    /// Adds stream bytes, pushing every full chunk (tagged FINAL if it ends the stream).
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= CHUNK_LEN {
                let (chunk, rest) = data.split_at(CHUNK_LEN);
                self.push(chunk, out);
                data = rest;
                continue;
            }
            let n = (CHUNK_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK_LEN {
                let buf = std::mem::take(&mut self.buf);
                self.push(&buf, out);
                self.buf = buf;
                self.buf.clear();
            }
        }
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pushed += chunk.len() as u64;
        let tag = if self.pushed == self.stream_len {
            TAG_FINAL
        } else {
            TAG_MESSAGE
        };
        self.state.push(chunk, tag, out);
    }
}

/// Encrypts `data` in memory with a key derived from `seed`: `(blob, key)`.
pub fn encrypt(
    seed: &[u8; 32],
    domain: Domain,
    kdf: Kdf,
    data: &[u8],
) -> Result<(Vec<u8>, StreamKey), AttachmentError> {
    let key = derive_key(seed, domain, kdf, data);
    let mut enc = StreamEncryptor::new(&key, data.len() as u64, false)?;
    let mut out = Vec::with_capacity(enc.blob_len() as usize);
    enc.update(data, &mut out)?;
    enc.finish(&mut out)?;
    Ok((out, key))
}

/// Incremental decryption of a stream blob.
///
/// Feed the download with [`StreamDecryptor::update`] in chunks of any size. Every chunk is
/// authenticated before its plaintext is appended to the caller's buffer, but a truncated
/// stream is only detected by [`StreamDecryptor::finish`]: keep the output only once it
/// returns `Ok`.
pub struct StreamDecryptor {
    key: Zeroizing<[u8; KEY_LEN]>,
    state: Option<State>,
    held: Vec<u8>,
    received: u64,
    chunk: u64,
    depadded: bool,
    finished: bool,
    max_len: u64,
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecryptor")
            .field("received", &self.received)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// Starts decrypting with the pointer's 32-byte key; input beyond [`MAX_ENCRYPTED_LEN`]
    /// is refused.
    pub fn new(key: &[u8]) -> Result<StreamDecryptor, AttachmentError> {
        let key: &[u8; KEY_LEN] = key.try_into().map_err(|_| AttachmentError::BadKeyLength {
            scheme: "stream",
            expected: KEY_LEN,
            len: key.len(),
        })?;
        Ok(StreamDecryptor {
            key: Zeroizing::new(*key),
            state: None,
            held: Vec::new(),
            received: 0,
            chunk: 0,
            depadded: false,
            finished: false,
            max_len: MAX_ENCRYPTED_LEN,
        })
    }

    /// Accepts blobs of any size (libsession's `allow_large`).
    pub fn allow_large(mut self) -> StreamDecryptor {
        self.max_len = u64::MAX;
        self
    }

    /// Takes the next downloaded bytes, appending authenticated plaintext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        self.received = self.received.saturating_add(data.len() as u64);
        if self.received > self.max_len {
            return Err(AttachmentError::Oversized { max: self.max_len });
        }
        if self.state.is_none() {
            let need = PREFIX_LEN - self.held.len();
            let n = need.min(data.len());
            self.held.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.held.len() < PREFIX_LEN {
                return Ok(());
            }
            if self.held[0] != PREFIX {
                return Err(AttachmentError::NotStreamFormat {
                    first: self.held[0],
                });
            }
            let header: [u8; HEADER_LEN] = self.held[1..].try_into().expect("24 bytes");
            self.state = Some(State::new(&self.key, &header));
            self.held.clear();
        }
        // Finish a chunk begun in an earlier call, then take whole chunks straight from `data`.
        if !self.held.is_empty() {
            let n = (ENCRYPTED_CHUNK_LEN - self.held.len()).min(data.len());
            self.held.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.held.len() < ENCRYPTED_CHUNK_LEN {
                return Ok(());
            }
            let held = std::mem::take(&mut self.held);
            self.chunk_in(&held, out)?;
            self.held = held;
            self.held.clear();
        }
        while data.len() >= ENCRYPTED_CHUNK_LEN {
            let (chunk, rest) = data.split_at(ENCRYPTED_CHUNK_LEN);
            self.chunk_in(chunk, out)?;
            data = rest;
        }
        self.held.extend_from_slice(data);
        Ok(())
    }

    /// Decrypts the last, short chunk and checks that the stream ended with its FINAL tag.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        if self.state.is_none() {
            return Err(AttachmentError::Truncated {
                len: self.received,
                reason: "shorter than the 'S' prefix and the header",
            });
        }
        if !self.held.is_empty() {
            if self.finished {
                return Err(AttachmentError::TrailingData);
            }
            if self.held.len() < ABYTES {
                return Err(AttachmentError::Truncated {
                    len: self.received,
                    reason: "a chunk shorter than its tag and MAC",
                });
            }
            let held = std::mem::take(&mut self.held);
            self.chunk_in(&held, out)?;
        }
        if !self.finished {
            return Err(AttachmentError::Truncated {
                len: self.received,
                reason: "the stream has no final chunk",
            });
        }
        if !self.depadded {
            return Err(AttachmentError::BadPadding);
        }
        Ok(())
    }

    fn chunk_in(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        if self.finished {
            return Err(AttachmentError::TrailingData);
        }
        let state = self.state.as_mut().expect("set after the header");
        let start = out.len();
        let tag = state
            .pull(chunk, out)
            .map_err(|_| AttachmentError::ChunkAuth { chunk: self.chunk })?;
        self.chunk += 1;
        self.finished = tag == TAG_FINAL;
        if !self.depadded {
            match out[start..].iter().position(|&b| b != 0) {
                Some(i) if out[start + i] == 0x01 => {
                    self.depadded = true;
                    out.drain(start..start + i + 1);
                }
                Some(_) => {
                    out.truncate(start);
                    return Err(AttachmentError::BadPadding);
                }
                None => out.truncate(start),
            }
        }
        Ok(())
    }
}

/// Decrypts a whole blob.
pub fn decrypt(key: &[u8], blob: &[u8]) -> Result<Vec<u8>, AttachmentError> {
    let mut dec = StreamDecryptor::new(key)?;
    let mut out = Vec::with_capacity(blob.len());
    dec.update(blob, &mut out)?;
    dec.finish(&mut out)?;
    Ok(out)
}
