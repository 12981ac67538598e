//! Wire pieces the devnet needs that session-proto does not offer yet: swarm math, message hash,
//! onion hop encryption, the onion frame and a small onion client builder.
//!
//! TODO(lead): move to session-proto (swarm, storage_rpc, onion) once H2's versions land, and
//! make the devnet use those; the tests here pin the behaviour against the spec vectors.

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use serde_json::{json, Value};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::err::WireError;

/// Standard base64 with padding, as the storage server writes it.
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Standard base64 that accepts input with or without padding.
pub const B64_LAX: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Standard base64 without padding (message hashes).
const B64_NOPAD: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

// ------------------------------------------------------------------------------------------------
// Swarms and message hashes
// ------------------------------------------------------------------------------------------------

/// Swarm space of an account: the 32 key bytes (prefix ignored) as four big-endian u64s, XORed.
pub fn swarm_space(key32: &[u8; 32]) -> u64 {
    key32.chunks_exact(8).fold(0u64, |acc, chunk| {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        acc ^ u64::from_be_bytes(b)
    })
}

/// The swarm an account at swarm space `v` belongs to, given the swarm ids (any order).
///
/// Returns `None` only when `ids` is empty. Ties go left; "left" of the lowest id wraps to the
/// highest.
pub fn closest_swarm(ids: &[u64], v: u64) -> Option<u64> {
    let mut sorted: Vec<u64> = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let first = *sorted.first()?;
    if sorted.len() == 1 {
        return Some(first);
    }
    let idx = sorted.partition_point(|&id| id < v);
    let right = if idx == sorted.len() {
        first
    } else {
        sorted[idx]
    };
    // Before the first id or past the last, the left neighbour wraps to the last id.
    let left_idx = if idx == 0 || idx == sorted.len() {
        sorted.len() - 1
    } else {
        idx - 1
    };
    let left = sorted[left_idx];
    let dr = right.wrapping_sub(v);
    let dl = v.wrapping_sub(left);
    Some(if dr < dl { right } else { left })
}

/// The namespace as it appears in hashes and signatures: empty for 0, else base-10.
pub fn ns_str(ns: i64) -> String {
    if ns == 0 {
        String::new()
    } else {
        ns.to_string()
    }
}

/// Message hash: base64 (unpadded) of BLAKE2b-256(`prefix || key32 || ns_str || data`).
pub fn message_hash(prefix: u8, key32: &[u8; 32], ns: i64, data: &[u8]) -> String {
    let mut h = Blake2b::<U32>::new();
    h.update([prefix]);
    h.update(key32);
    h.update(ns_str(ns).as_bytes());
    h.update(data);
    B64_NOPAD.encode(h.finalize())
}

// ------------------------------------------------------------------------------------------------
// Onion hop encryption
// ------------------------------------------------------------------------------------------------

/// The symmetric scheme of one onion layer (`enc_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncType {
    /// `aes-gcm` (the default): key = HMAC-SHA256("LOKI", dh); `iv[12] || ct || tag[16]`.
    AesGcm,
    /// `xchacha20`: key = BLAKE2b-256(dh || client_pub || server_pub); `nonce[24] || ct || tag`.
    XChaCha20,
}

impl EncType {
    /// Parses an `enc_type` value (with the aliases servers accept).
    pub fn parse(s: &str) -> Result<Self, WireError> {
        match s {
            "aes-gcm" | "gcm" => Ok(EncType::AesGcm),
            "xchacha20" | "xchacha20-poly1305" => Ok(EncType::XChaCha20),
            other => Err(WireError::UnknownEncType(other.chars().take(32).collect())),
        }
    }

    /// The canonical `enc_type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EncType::AesGcm => "aes-gcm",
            EncType::XChaCha20 => "xchacha20",
        }
    }
}

/// A symmetric key shared by a sender's ephemeral key and one node, with its scheme.
#[derive(Clone)]
pub struct HopKey {
    enc: EncType,
    key: [u8; 32],
}

impl std::fmt::Debug for HopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopKey")
            .field("enc", &self.enc)
            .finish_non_exhaustive()
    }
}

impl HopKey {
    /// Derives the key from our secret and their public key. `client_pub`/`server_pub` order the
    /// XChaCha20 hash input (the ephemeral-key holder is always the client).
    pub fn derive(
        enc: EncType,
        ours: &StaticSecret,
        theirs: &PublicKey,
        client_pub: &[u8; 32],
        server_pub: &[u8; 32],
    ) -> HopKey {
        let dh = ours.diffie_hellman(theirs);
        let key: [u8; 32] = match enc {
            EncType::AesGcm => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"LOKI")
                    .expect("HMAC accepts any key length");
                mac.update(dh.as_bytes());
                mac.finalize().into_bytes().into()
            }
            EncType::XChaCha20 => {
                let mut h = Blake2b::<U32>::new();
                h.update(dh.as_bytes());
                h.update(client_pub);
                h.update(server_pub);
                h.finalize().into()
            }
        };
        HopKey { enc, key }
    }

    /// The scheme of this key.
    pub fn enc_type(&self) -> EncType {
        self.enc
    }

    /// Encrypts with a fresh nonce: `nonce || ciphertext || tag`.
    pub fn encrypt(&self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        match self.enc {
            EncType::AesGcm => {
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut nonce);
                let cipher = aes_gcm::Aes256Gcm::new(&self.key.into());
                let ct = cipher
                    .encrypt(aes_gcm::Nonce::from_slice(&nonce), plaintext)
                    .expect("AES-GCM encryption of an in-memory buffer cannot fail");
                [nonce.as_slice(), &ct].concat()
            }
            EncType::XChaCha20 => {
                let mut nonce = [0u8; 24];
                rng.fill_bytes(&mut nonce);
                let cipher = chacha20poly1305::XChaCha20Poly1305::new(&self.key.into());
                let ct = cipher
                    .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), plaintext)
                    .expect("XChaCha20 encryption of an in-memory buffer cannot fail");
                [nonce.as_slice(), &ct].concat()
            }
        }
    }

    /// Decrypts `nonce || ciphertext || tag`.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, WireError> {
        match self.enc {
            EncType::AesGcm => {
                if data.len() < 12 + 16 {
                    return Err(WireError::Decrypt);
                }
                let (nonce, ct) = data.split_at(12);
                aes_gcm::Aes256Gcm::new(&self.key.into())
                    .decrypt(aes_gcm::Nonce::from_slice(nonce), ct)
                    .map_err(|_| WireError::Decrypt)
            }
            EncType::XChaCha20 => {
                if data.len() < 24 + 16 {
                    return Err(WireError::Decrypt);
                }
                let (nonce, ct) = data.split_at(24);
                chacha20poly1305::XChaCha20Poly1305::new(&self.key.into())
                    .decrypt(chacha20poly1305::XNonce::from_slice(nonce), ct)
                    .map_err(|_| WireError::Decrypt)
            }
        }
    }
}

/// Parses a 64-hex-char X25519/Ed25519 public key.
pub fn key_from_hex(what: &'static str, s: &str) -> Result<[u8; 32], WireError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| WireError::BadKey {
        what,
        reason: "expected 64 hex characters",
    })?;
    Ok(out)
}

/// The X25519 public key of an Ed25519 public key (the birational map), if it is a valid point.
pub fn ed25519_to_x25519(ed: &[u8; 32]) -> Option<[u8; 32]> {
    ed25519_dalek::VerifyingKey::from_bytes(ed)
        .ok()
        .map(|vk| vk.to_montgomery().to_bytes())
}

// ------------------------------------------------------------------------------------------------
// Frame
// ------------------------------------------------------------------------------------------------

/// `u32_le(len(blob)) || blob || json`.
pub fn frame(blob: &[u8], json: &[u8]) -> Vec<u8> {
    let len = u32::try_from(blob.len()).expect("onion blobs are far below 4 GiB");
    let mut out = Vec::with_capacity(4 + blob.len() + json.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(blob);
    out.extend_from_slice(json);
    out
}

/// Splits a frame into `(blob, json bytes)`.
pub fn parse_frame(buf: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let len_bytes: [u8; 4] = buf
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(WireError::Frame("shorter than its 4-byte length"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let rest = &buf[4..];
    if len > rest.len() {
        return Err(WireError::Frame("length runs past the end of the buffer"));
    }
    Ok(rest.split_at(len))
}

// ------------------------------------------------------------------------------------------------
// Client builder (tests, benchmark, and a reference for the gateway)
// ------------------------------------------------------------------------------------------------

/// A snode as an onion hop: its Ed25519 key (routing) and X25519 key (encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnionHop {
    /// Ed25519 public key.
    pub ed25519: [u8; 32],
    /// X25519 public key.
    pub x25519: [u8; 32],
}

/// Where an onion request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnionDest {
    /// A snode; the payload is `frame(rpc_json, control_json)`.
    Snode(OnionHop),
    /// A server behind the last relay (proxy); the payload is the server's request.
    Server {
        /// Host name or IP.
        host: String,
        /// Port.
        port: u16,
        /// `http` or `https`.
        protocol: String,
        /// Target path, e.g. `/oxen/v4/lsrpc`.
        target: String,
        /// The server's X25519 key.
        x25519: [u8; 32],
    },
}

/// A built onion request: the HTTP body for the guard and the key that decrypts the reply.
#[derive(Debug, Clone)]
pub struct OnionRequest {
    /// POST this to `https://guard/onion_req/v2`.
    pub body: Vec<u8>,
    /// Decrypts the destination's reply.
    pub reply_key: HopKey,
}

fn encrypt_for(
    enc: EncType,
    x25519: &[u8; 32],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> (Vec<u8>, [u8; 32], HopKey) {
    let eph = StaticSecret::random_from_rng(&mut *rng);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let key = HopKey::derive(enc, &eph, &PublicKey::from(*x25519), &eph_pub, x25519);
    (key.encrypt(plaintext, rng), eph_pub, key)
}

/// The inner payload for a snode destination: `frame(rpc_json, {"headers": ""})`.
pub fn snode_payload(rpc: &Value) -> Vec<u8> {
    frame(rpc.to_string().as_bytes(), br#"{"headers":""}"#)
}

/// Builds an onion request through `path` (guard first) to `dest`.
pub fn build_onion(
    path: &[OnionHop],
    dest: &OnionDest,
    payload: &[u8],
    enc: EncType,
    rng: &mut impl CryptoRngCore,
) -> OnionRequest {
    let dest_x = match dest {
        OnionDest::Snode(h) => h.x25519,
        OnionDest::Server { x25519, .. } => *x25519,
    };
    let (mut blob, mut eph, reply_key) = encrypt_for(enc, &dest_x, payload, rng);
    let mut routing = match dest {
        OnionDest::Snode(h) => json!({
            "destination": hex::encode(h.ed25519),
            "ephemeral_key": hex::encode(eph),
            "enc_type": enc.as_str(),
        }),
        OnionDest::Server {
            host,
            port,
            protocol,
            target,
            ..
        } => json!({
            "host": host, "port": port, "protocol": protocol, "target": target,
            "method": "POST", "ephemeral_key": hex::encode(eph), "enc_type": enc.as_str(),
        }),
    };
    for (i, hop) in path.iter().enumerate().rev() {
        let layer = frame(&blob, routing.to_string().as_bytes());
        let (ct, e, _) = encrypt_for(enc, &hop.x25519, &layer, rng);
        blob = ct;
        eph = e;
        routing = if i == 0 {
            json!({"ephemeral_key": hex::encode(eph), "enc_type": enc.as_str()})
        } else {
            json!({
                "destination": hex::encode(hop.ed25519),
                "ephemeral_key": hex::encode(eph),
                "enc_type": enc.as_str(),
            })
        };
    }
    let body = if path.is_empty() {
        frame(
            &blob,
            json!({"ephemeral_key": hex::encode(eph), "enc_type": enc.as_str()})
                .to_string()
                .as_bytes(),
        )
    } else {
        frame(&blob, routing.to_string().as_bytes())
    };
    OnionRequest { body, reply_key }
}

/// Decrypts a destination's onion reply (base64 text or raw ciphertext) to its plaintext.
pub fn decrypt_reply(key: &HopKey, body: &[u8]) -> Result<Vec<u8>, WireError> {
    let trimmed = body.trim_ascii();
    match B64_LAX.decode(trimmed) {
        Ok(raw) => key.decrypt(&raw).or_else(|_| key.decrypt(body)),
        Err(_) => key.decrypt(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOP: &str = include_str!("../tests/data/network-onion-hop-encryption.json");
    const SWARM: &str = include_str!("../tests/data/network-swarm.json");
    const DERIVED: &str = include_str!("../tests/data/network-derived.json");

    fn k32(v: &Value) -> [u8; 32] {
        key_from_hex("test key", v.as_str().expect("hex string")).expect("64 hex")
    }

    #[test]
    fn hop_vectors_decrypt_and_tamper_fails() {
        let v: Value = serde_json::from_str(HOP).expect("vector json");
        let h = &v["hop_encryption"];
        let b = StaticSecret::from(k32(&h["server_sec_b"]));
        let a_pub = k32(&h["client_pub_A"]);
        let b_pub = k32(&h["server_pub_B"]);
        for (enc, field, keyf) in [
            (
                EncType::AesGcm,
                "aes_gcm_ciphertext_hex",
                "aes_gcm_derived_key_hex",
            ),
            (
                EncType::XChaCha20,
                "xchacha20_ciphertext_hex",
                "xchacha20_derived_key_hex",
            ),
        ] {
            let key = HopKey::derive(enc, &b, &PublicKey::from(a_pub), &a_pub, &b_pub);
            assert_eq!(hex::encode(key.key), h[keyf].as_str().expect("key hex"));
            let ct = hex::decode(h[field].as_str().expect("ct")).expect("hex");
            assert_eq!(key.decrypt(&ct).expect("decrypts"), b"Hello world");
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(key.decrypt(&bad), Err(WireError::Decrypt));
            // Round trip with a fresh nonce, seen from the client side.
            let a = StaticSecret::from(k32(&h["client_sec_a"]));
            let ck = HopKey::derive(enc, &a, &PublicKey::from(b_pub), &a_pub, &b_pub);
            let ct2 = ck.encrypt(b"reply", &mut rand::rngs::OsRng);
            assert_eq!(key.decrypt(&ct2).expect("same key both sides"), b"reply");
        }
    }

    #[test]
    fn swarm_vectors() {
        let v: Value = serde_json::from_str(SWARM).expect("vector json");
        let u64_of = |x: &Value| -> u64 { x.as_str().expect("decimal").parse().expect("u64") };
        let key_of = |x: &Value| -> [u8; 32] {
            let raw = hex::decode(x.as_str().expect("hex")).expect("hex");
            raw[1..].try_into().expect("33 bytes")
        };
        let spaces = v["pubkey_to_swarm_space"].as_array().expect("cases");
        assert!(!spaces.is_empty());
        for c in spaces {
            assert_eq!(
                swarm_space(&key_of(&c["pubkey"])),
                u64_of(&c["swarm_space"])
            );
        }
        let mut checked = 0;
        for group in v["get_swarm"].as_array().expect("groups") {
            let ids: Vec<u64> = group["swarm_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(u64_of)
                .collect();
            for c in group["cases"].as_array().expect("cases") {
                let space = swarm_space(&key_of(&c["pubkey"]));
                assert_eq!(
                    closest_swarm(&ids, space),
                    Some(u64_of(&c["expected_swarm_id"]))
                );
                checked += 1;
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn message_hash_vectors() {
        let v: Value = serde_json::from_str(DERIVED).expect("vector json");
        let cases = v["message_hash"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for c in cases {
            let prefix = u8::try_from(c["netid"].as_u64().expect("netid")).expect("byte");
            let key = k32(&c["pubkey_hex"]);
            let ns = c["namespace"].as_i64().expect("ns");
            let data = c["data_utf8"].as_str().expect("data");
            assert_eq!(
                message_hash(prefix, &key, ns, data.as_bytes()),
                c["hash"].as_str().expect("hash")
            );
        }
    }

    #[test]
    fn frame_round_trip_and_errors() {
        let f = frame(b"abc", b"{}");
        assert_eq!(parse_frame(&f).expect("ok"), (&b"abc"[..], &b"{}"[..]));
        assert!(parse_frame(b"\x01\x00").is_err());
        assert!(parse_frame(b"\xff\x00\x00\x00abc").is_err());
    }

    #[test]
    fn closest_swarm_rule() {
        let ids = [100u64, 200, 300];
        assert_eq!(closest_swarm(&ids, 149), Some(100));
        assert_eq!(closest_swarm(&ids, 150), Some(100)); // tie goes left
        assert_eq!(closest_swarm(&ids, 151), Some(200));
        assert_eq!(closest_swarm(&ids, 5), Some(100));
        assert_eq!(closest_swarm(&ids, u64::MAX), Some(100)); // wraps: closer to 100 than 300
        assert_eq!(closest_swarm(&[7], 99), Some(7));
        assert_eq!(closest_swarm(&[], 99), None);
    }
}
