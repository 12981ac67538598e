//! Attachments (spec Part B, §7-§8): the two encryption schemes, the pointer a message
//! carries, and the file server URL it names.
//!
//! Sending: encrypt with [`legacy`] (what released clients send; the default) or [`stream`]
//! (libsession's deterministic scheme), upload the blob to a file server (`POST /file` through
//! an onion request, which is the network layer's job), then describe it with [`pointer`].
//! Receiving: [`IncomingAttachment::from_pointer`] reads a pointer, the caller downloads
//! `GET /file/<id>` from [`FileUrl`]'s server, and [`Decryptor`] verifies and decrypts the
//! bytes chunk by chunk, so neither direction needs the whole file in memory twice.
//!
//! Everything here is pure: keys, IVs and seeds come in as arguments.
//!
//! # Layout
//! - [`legacy`]: padding, AES-256-CBC + HMAC-SHA256, the digest; incremental both ways.
//! - [`stream`]: libsession's secretstream format, its padding and key derivation.
//! - [`secretstream`]: libsodium's `crypto_secretstream_xchacha20poly1305` with a given header.
//! - [`url`](mod@url): [`FileUrl`], parsing and writing `…/file/<id>#p=…&d`.

pub mod legacy;
pub mod secretstream;
pub mod stream;
pub mod url;

use base64::Engine as _;
use blake2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};
use blake2::Blake2bVarCore;
use zeroize::Zeroizing;

pub use legacy::{LegacyDecryptor, LegacyEncryptor};
pub use stream::{StreamDecryptor, StreamEncryptor};
pub use url::{FileUrl, UrlScheme};

use crate::err::AttachmentError;
use crate::protos::AttachmentPointer;

/// Largest file clients send (desktop's `MAX_ATTACHMENT_FILESIZE_BYTES`, libsession's
/// `max_file_size`).
pub const MAX_ATTACHMENT_SIZE: u64 = 10_000_000;

/// Largest encrypted blob a decryptor accepts: the stream scheme's output for
/// [`stream::MAX_REGULAR_SIZE`] bytes, which is above the legacy scheme's largest blob too.
pub const MAX_ENCRYPTED_LEN: u64 = 10_223_616;

/// The production file server's base URL (port 80, reached only through onion requests).
pub const DEFAULT_FILE_SERVER: &str = "http://filev2.getsession.org";
/// Its Ed25519 key (desktop since 2025-10, newest libsession).
pub const DEFAULT_FILE_SERVER_ED25519: &str =
    "b8eef9821445ae16e2e97ef8aa6fe782fd11ad5253cd6723b281341dba22e371";
/// Its X25519 key, which onion requests encrypt to.
pub const DEFAULT_FILE_SERVER_X25519: &str =
    "09324794aa9c11948189762d198c618148e9136ac9582068180661208927ef34";

/// `AttachmentPointer.flags` bit of a voice note.
pub const FLAG_VOICE_MESSAGE: u32 = 1;

/// Which encryption an attachment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// AES-256-CBC + HMAC-SHA256 with a 64-byte key and a digest (§8.1).
    Legacy,
    /// libsession's secretstream format with a 32-byte key (§8.2).
    Stream,
}

/// The descriptive fields of a pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// MIME type.
    pub content_type: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// A voice note (`flags` bit 1).
    pub voice_message: bool,
    /// Image or video width.
    pub width: Option<u32>,
    /// Image or video height.
    pub height: Option<u32>,
    /// Caption.
    pub caption: Option<String>,
}

/// The pointer for an uploaded attachment: `url` (its fragment says the scheme), `key`,
/// `digest` (legacy only), `size` = the plaintext length, and `deprecated_id` from the URL.
pub fn pointer(
    url: &FileUrl,
    key: &[u8],
    digest: Option<&[u8; 32]>,
    size: u32,
    meta: &AttachmentMeta,
) -> AttachmentPointer {
    AttachmentPointer {
        deprecated_id: url.deprecated_id(),
        content_type: meta.content_type.clone(),
        key: Some(key.to_vec()),
        size: Some(size),
        digest: digest.map(|d| d.to_vec()),
        file_name: meta.file_name.clone(),
        flags: meta.voice_message.then_some(FLAG_VOICE_MESSAGE),
        width: meta.width,
        height: meta.height,
        caption: meta.caption.clone(),
        url: Some(url.to_string()),
    }
}

/// What a receiver needs to fetch and decrypt an attachment, read from its pointer.
#[derive(Clone, PartialEq, Eq)]
pub struct IncomingAttachment {
    /// Where the blob is.
    pub url: FileUrl,
    /// How it is encrypted.
    pub scheme: Scheme,
    /// The key (64 bytes legacy, 32 stream).
    pub key: Zeroizing<Vec<u8>>,
    /// SHA-256 of the blob (legacy).
    pub digest: Option<[u8; 32]>,
    /// Plaintext length, when the pointer gives it.
    pub size: Option<u64>,
    /// Name, type, dimensions, caption.
    pub meta: AttachmentMeta,
}

impl std::fmt::Debug for IncomingAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingAttachment")
            .field("host", &self.url.host)
            .field("scheme", &self.scheme)
            .field("size", &self.size)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl IncomingAttachment {
    /// Reads and checks a pointer: a parseable URL, a key of the right length for the scheme
    /// (the `d` fragment or a 32-byte key mean the stream scheme), and for the legacy scheme a
    /// 32-byte digest, which released clients require too.
    pub fn from_pointer(p: &AttachmentPointer) -> Result<IncomingAttachment, AttachmentError> {
        let url: FileUrl = p
            .url
            .as_deref()
            .ok_or(AttachmentError::BadUrl("the pointer has no URL"))?
            .parse()?;
        let key = p.key.as_deref().unwrap_or_default();
        if key.is_empty() {
            return Err(AttachmentError::MissingKey);
        }
        let scheme = if url.stream || key.len() == secretstream::KEY_LEN {
            Scheme::Stream
        } else {
            Scheme::Legacy
        };
        let digest = match scheme {
            Scheme::Stream => {
                if key.len() != secretstream::KEY_LEN {
                    return Err(AttachmentError::BadKeyLength {
                        scheme: "stream",
                        expected: secretstream::KEY_LEN,
                        len: key.len(),
                    });
                }
                None
            }
            Scheme::Legacy => {
                if key.len() != legacy::KEY_LEN {
                    return Err(AttachmentError::BadKeyLength {
                        scheme: "legacy",
                        expected: legacy::KEY_LEN,
                        len: key.len(),
                    });
                }
                let d = p.digest.as_deref().unwrap_or_default();
                Some(match d.len() {
                    0 => return Err(AttachmentError::MissingDigest),
                    32 => d.try_into().expect("length checked"),
                    len => return Err(AttachmentError::BadDigestLength { len }),
                })
            }
        };
        Ok(IncomingAttachment {
            url,
            scheme,
            key: Zeroizing::new(key.to_vec()),
            digest,
            size: p.size.map(u64::from),
            meta: AttachmentMeta {
                content_type: p.content_type.clone(),
                file_name: p.file_name.clone(),
                voice_message: p.flags.is_some_and(|f| f & FLAG_VOICE_MESSAGE != 0),
                width: p.width,
                height: p.height,
                caption: p.caption.clone(),
            },
        })
    }

    /// A decryptor for the downloaded blob.
    pub fn decryptor(&self) -> Result<Decryptor, AttachmentError> {
        Ok(match self.scheme {
            Scheme::Legacy => Decryptor::Legacy(Box::new(LegacyDecryptor::new(
                &self.key,
                self.digest.as_ref().map_or(&[][..], |d| &d[..]),
                self.size,
            )?)),
            Scheme::Stream => Decryptor::Stream(StreamDecryptor::new(&self.key)?),
        })
    }
}

/// Either scheme's incremental decryptor; see [`LegacyDecryptor`] and [`StreamDecryptor`] for
/// what is authenticated when. Keep the output only once [`Decryptor::finish`] returns `Ok`.
#[derive(Debug)]
pub enum Decryptor {
    /// §8.1 (boxed: it holds the AES key schedule).
    Legacy(Box<LegacyDecryptor>),
    /// §8.2.
    Stream(StreamDecryptor),
}

impl Decryptor {
    /// Takes the next downloaded bytes, appending plaintext to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        match self {
            Decryptor::Legacy(d) => d.update(data, out),
            Decryptor::Stream(d) => d.update(data, out),
        }
    }

    /// Verifies the end of the blob and appends the last plaintext.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        match self {
            Decryptor::Legacy(d) => (*d).finish(out),
            Decryptor::Stream(d) => d.finish(out),
        }
    }
}

/// The content-addressed file ID a file server gives when it does not issue numeric IDs:
/// `base64url(BLAKE2b-264(data, salt = "SessionFileSvr\0\0"))`, 44 characters.
pub fn hashed_file_id(data: &[u8]) -> String {
    let mut core = Blake2bVarCore::new_with_params(b"SessionFileSvr\0\0", &[], 0, 33);
    let mut buf = Buffer::<Blake2bVarCore>::default();
    buf.digest_blocks(data, |blocks| core.update_blocks(blocks));
    let mut full = Default::default();
    core.finalize_variable_core(&mut buf, &mut full);
    base64::engine::general_purpose::URL_SAFE.encode(&full[..33])
}

#[cfg(test)]
mod tests;
