//! Per-hop onion crypto: X25519, the two key derivations and the two AEADs (network.md §5.1).
//!
//! X25519 goes through the Edwards form (decompress, variable-base multiply, back to the
//! Montgomery `u`), which gives the same bytes as the RFC 7748 ladder but runs on
//! curve25519-dalek's vectorised backend; keys that have no Edwards form (twist points) fall
//! back to the ladder. Peer keys used again and again (the snodes of a path) are prepared once
//! as a [`PeerKey`].

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use chacha20poly1305::XChaCha20Poly1305;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::err::OnionError;

/// AEAD tag length (both ciphers).
pub const TAG_LEN: usize = 16;
/// AES-GCM nonce length.
pub const AES_GCM_NONCE_LEN: usize = 12;
/// XChaCha20-Poly1305 nonce length.
pub const XCHACHA_NONCE_LEN: usize = 24;

/// The symmetric scheme of one onion layer, named by `enc_type` in the frame JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncType {
    /// `aes-gcm` (default when `enc_type` is absent): key = HMAC-SHA256(key="LOKI", DH);
    /// output `iv[12] ‖ ct ‖ tag[16]`.
    #[default]
    AesGcm,
    /// `xchacha20` / `xchacha20-poly1305`: key = BLAKE2b-256(DH ‖ A ‖ B) with A the
    /// ephemeral (client) key; output `nonce[24] ‖ ct ‖ tag[16]`.
    XChaCha20,
}

impl EncType {
    /// Parses an `enc_type` value; `None` for anything else (e.g. the server-only `aes-cbc`).
    pub fn parse(s: &str) -> Option<EncType> {
        match s {
            "aes-gcm" | "gcm" => Some(EncType::AesGcm),
            "xchacha20" | "xchacha20-poly1305" => Some(EncType::XChaCha20),
            _ => None,
        }
    }
    /// The `enc_type` string we write.
    pub fn as_str(self) -> &'static str {
        match self {
            EncType::AesGcm => "aes-gcm",
            EncType::XChaCha20 => "xchacha20",
        }
    }
    /// Nonce length of the scheme.
    pub fn nonce_len(self) -> usize {
        match self {
            EncType::AesGcm => AES_GCM_NONCE_LEN,
            EncType::XChaCha20 => XCHACHA_NONCE_LEN,
        }
    }
    /// Bytes a ciphertext adds to its plaintext (nonce + tag).
    pub fn overhead(self) -> usize {
        self.nonce_len() + TAG_LEN
    }
}

/// A peer's X25519 public key, with its Edwards form computed once.
#[derive(Clone, Debug)]
pub struct PeerKey {
    bytes: [u8; 32],
    edwards: Option<EdwardsPoint>,
}

impl PeerKey {
    /// Prepares a peer key (any 32 bytes; invalid keys fail later, at the exchange).
    pub fn new(x25519: [u8; 32]) -> PeerKey {
        PeerKey {
            bytes: x25519,
            edwards: MontgomeryPoint(x25519).to_edwards(0),
        }
    }
    /// The key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
    /// X25519(`secret`, this key); an error if the result is all zeros (small-order key),
    /// as libsodium's `crypto_scalarmult` does.
    pub fn exchange(&self, secret: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OnionError> {
        let shared = match &self.edwards {
            Some(p) => p.mul_clamped(*secret).to_montgomery(),
            None => MontgomeryPoint(self.bytes).mul_clamped(*secret),
        };
        let out = Zeroizing::new(shared.to_bytes());
        if out.iter().all(|&b| b == 0) {
            return Err(OnionError::BadPeerKey);
        }
        Ok(out)
    }
}

/// X25519(`secret`, `public`) — the RFC 7748 function, computed via the Edwards form.
pub fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OnionError> {
    PeerKey::new(*public).exchange(secret)
}

/// The X25519 public key of `secret` (fixed-base multiply with precomputed tables).
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    EdwardsPoint::mul_base_clamped(*secret)
        .to_montgomery()
        .to_bytes()
}

/// A fresh X25519 secret from `rng`.
pub fn random_secret(rng: &mut impl CryptoRngCore) -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut s[..]);
    s
}

/// The symmetric key of one onion layer, as both ends derive it. It encrypts the layer and,
/// at the destination, the reply — so it is also the client's reply-decryption handle.
#[derive(Clone)]
pub struct LayerKey {
    enc: EncType,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LayerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerKey")
            .field("enc", &self.enc)
            .finish_non_exhaustive()
    }
}

impl LayerKey {
    /// Derives the key from a DH result, the client (ephemeral) public key `a_pub` and the
    /// node public key `b_pub`.
    pub fn derive(enc: EncType, dh: &[u8; 32], a_pub: &[u8; 32], b_pub: &[u8; 32]) -> LayerKey {
        let key = match enc {
            EncType::AesGcm => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"LOKI")
                    .expect("HMAC takes keys of any length");
                mac.update(dh);
                Zeroizing::new(mac.finalize().into_bytes().into())
            }
            EncType::XChaCha20 => {
                let mut h = Blake2b::<U32>::new();
                h.update(dh);
                h.update(a_pub);
                h.update(b_pub);
                Zeroizing::new(h.finalize().into())
            }
        };
        LayerKey { enc, key }
    }

    /// Client side: key for sending to `node` with the ephemeral key pair (`a`, `a_pub`).
    pub fn for_sender(
        enc: EncType,
        a: &[u8; 32],
        a_pub: &[u8; 32],
        node: &PeerKey,
    ) -> Result<LayerKey, OnionError> {
        let dh = node.exchange(a)?;
        Ok(LayerKey::derive(enc, &dh, a_pub, node.bytes()))
    }

    /// Node side: key for a layer sent with ephemeral public key `a_pub` to the node whose key
    /// pair is (`b`, `b_pub`).
    pub fn for_receiver(
        enc: EncType,
        b: &[u8; 32],
        b_pub: &[u8; 32],
        a_pub: &[u8; 32],
    ) -> Result<LayerKey, OnionError> {
        let dh = x25519(b, a_pub)?;
        Ok(LayerKey::derive(enc, &dh, a_pub, b_pub))
    }

    /// The scheme.
    pub fn enc_type(&self) -> EncType {
        self.enc
    }

    /// The raw key bytes (for tests against published derived keys).
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Appends `nonce ‖ AEAD(plaintext) ‖ tag` to `out`. `nonce` must be
    /// [`EncType::nonce_len`] bytes. The plaintext is written straight into `out`, so callers
    /// that assemble the plaintext in pieces use [`LayerKey::seal_tail`] instead.
    pub fn encrypt_with_nonce(&self, nonce: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(nonce.len() + plaintext.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        self.seal_tail(out, start);
    }

    /// Encrypts in place: `buf[start..]` must be `nonce ‖ plaintext`; the plaintext becomes
    /// ciphertext and the tag is appended.
    pub fn seal_tail(&self, buf: &mut Vec<u8>, start: usize) {
        let n = self.enc.nonce_len();
        let (head, body) = buf[start..].split_at_mut(n);
        let tag = self.seal_detached(head, body);
        buf.extend_from_slice(&tag);
    }

    /// Encrypts `body` in place under `nonce` ([`EncType::nonce_len`] bytes) and returns the
    /// tag, for a layer laid out inside a larger buffer (the tag's place is the caller's).
    pub fn seal_detached(&self, nonce: &[u8], body: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = match self.enc {
            EncType::AesGcm => Aes256Gcm::new(self.key.as_ref().into()).encrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(nonce),
                b"",
                body,
            ),
            EncType::XChaCha20 => XChaCha20Poly1305::new(self.key.as_ref().into())
                .encrypt_in_place_detached(chacha20poly1305::XNonce::from_slice(nonce), b"", body),
        }
        .expect("AEAD encryption only fails for inputs over 2^36 bytes");
        tag.into()
    }

    /// `nonce ‖ AEAD(plaintext) ‖ tag` with a fresh nonce from `rng`.
    pub fn encrypt(&self, rng: &mut impl CryptoRngCore, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; XCHACHA_NONCE_LEN];
        let nonce = &mut nonce[..self.enc.nonce_len()];
        rng.fill_bytes(nonce);
        let mut out = Vec::new();
        self.encrypt_with_nonce(nonce, plaintext, &mut out);
        out
    }

    /// Decrypts `nonce ‖ ct ‖ tag`; [`OnionError::Decrypt`] if it is short or does not
    /// authenticate.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, OnionError> {
        let n = self.enc.nonce_len();
        if ciphertext.len() < n + TAG_LEN {
            return Err(OnionError::Decrypt);
        }
        let (nonce, rest) = ciphertext.split_at(n);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = ct.to_vec();
        self.open_detached(nonce, &mut buf, tag)?;
        Ok(buf)
    }

    /// [`LayerKey::decrypt`] in place: `buf` holds `nonce ‖ ct ‖ tag` and is left holding the
    /// plaintext, in the same allocation (a large reply is not copied). On an error its
    /// content is unspecified.
    pub fn decrypt_in_place(&self, buf: &mut Vec<u8>) -> Result<(), OnionError> {
        let n = self.enc.nonce_len();
        if buf.len() < n + TAG_LEN {
            return Err(OnionError::Decrypt);
        }
        let (nonce, rest) = buf.split_at_mut(n);
        let (ct, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        self.open_detached(nonce, ct, tag)?;
        buf.truncate(buf.len() - TAG_LEN);
        buf.drain(..n);
        Ok(())
    }

    fn open_detached(&self, nonce: &[u8], ct: &mut [u8], tag: &[u8]) -> Result<(), OnionError> {
        let ok = match self.enc {
            EncType::AesGcm => Aes256Gcm::new(self.key.as_ref().into()).decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(nonce),
                b"",
                ct,
                aes_gcm::Tag::from_slice(tag),
            ),
            EncType::XChaCha20 => XChaCha20Poly1305::new(self.key.as_ref().into())
                .decrypt_in_place_detached(
                    chacha20poly1305::XNonce::from_slice(nonce),
                    b"",
                    ct,
                    chacha20poly1305::Tag::from_slice(tag),
                ),
        };
        ok.map_err(|_| OnionError::Decrypt)
    }
}
