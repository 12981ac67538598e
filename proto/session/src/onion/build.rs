//! The client side of onion requests: wrap a payload for a path and open the reply.
//!
//! Layers, innermost first (network.md §5.3): `C0 = Enc(e0 → D, P)`; then for each path node
//! from the last relay back to the guard, `Ci = Enc(ei → Ni, frame(Ci−1, routing))` where the
//! routing JSON names the next node and its layer's ephemeral key; the guard's HTTP body is
//! `frame(Cn, {"ephemeral_key", "enc_type"})`. Every layer has its own ephemeral key pair.

use base64::Engine as _;
use rand_core::CryptoRngCore;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::crypto::{x25519_public, EncType, LayerKey, PeerKey, XCHACHA_NONCE_LEN};
use super::write_frame;
use crate::bencode::V4Response;
use crate::err::OnionError;

/// A snode on a path (or a snode destination): its X25519 key, prepared once, and its
/// Ed25519 key as lower-case hex (how relays are told where to forward).
#[derive(Debug, Clone)]
pub struct Hop {
    key: PeerKey,
    ed25519_hex: String,
}

impl Hop {
    /// A snode from its two public keys.
    pub fn new(x25519: [u8; 32], ed25519: [u8; 32]) -> Hop {
        Hop {
            key: PeerKey::new(x25519),
            ed25519_hex: hex::encode(ed25519),
        }
    }
    /// The prepared X25519 key.
    pub fn key(&self) -> &PeerKey {
        &self.key
    }
    /// The Ed25519 key, hex.
    pub fn ed25519_hex(&self) -> &str {
        &self.ed25519_hex
    }
}

/// A non-snode server (SOGS, file server) reached through the last relay, which POSTs the
/// layer to `protocol://host[:port]target`.
#[derive(Debug, Clone)]
pub struct ServerDestination {
    /// The server's X25519 key.
    pub key: PeerKey,
    /// Host name or IP.
    pub host: String,
    /// Path, e.g. `/oxen/v4/lsrpc`.
    pub target: String,
    /// HTTP method the relay uses, `POST`.
    pub method: String,
    /// `https` or `http`.
    pub protocol: String,
    /// Port; `None` leaves it to the protocol default.
    pub port: Option<u16>,
}

/// Where an onion request ends.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A snode: the payload is a storage-RPC JSON body, framed with `{"headers":""}`.
    Snode(Hop),
    /// A server: the payload is a v4 request ([`crate::bencode::V4Request`]), sent unframed.
    Server(ServerDestination),
}

/// The explicit secrets of one layer: ephemeral X25519 secret and AEAD nonce
/// ([`EncType::nonce_len`] bytes are used).
#[derive(Clone)]
pub struct LayerSecret {
    /// Ephemeral X25519 secret.
    pub ephemeral: Zeroizing<[u8; 32]>,
    /// Nonce bytes (first 12 for AES-GCM, 24 for XChaCha20).
    pub nonce: [u8; XCHACHA_NONCE_LEN],
}

impl std::fmt::Debug for LayerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerSecret(..)")
    }
}

/// A built onion request.
#[derive(Debug)]
pub struct OnionRequest {
    /// The body to POST to the guard's `/onion_req/v2`.
    pub body: Vec<u8>,
    /// Opens the destination's reply.
    pub reply: ReplyHandle,
}

/// What a client needs to open the destination's reply: the innermost layer's key.
#[derive(Debug, Clone)]
pub struct ReplyHandle {
    key: LayerKey,
}

/// A snode destination's decrypted reply `{"status": …, "body": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnodeReply {
    /// The storage-RPC status (200, 421, 401…).
    pub status: u16,
    /// The storage-RPC reply body (JSON text, or plain text for errors).
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
struct RawSnodeReply {
    status: u16,
    #[serde(default)]
    body: serde_json::Value,
}

impl ReplyHandle {
    /// Wraps a layer key (the destination side holds the same key).
    pub fn new(key: LayerKey) -> ReplyHandle {
        ReplyHandle { key }
    }
    /// The layer key.
    pub fn key(&self) -> &LayerKey {
        &self.key
    }
    /// Decrypts a raw reply ciphertext (`nonce ‖ ct ‖ tag`).
    pub fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, OnionError> {
        self.key.decrypt(ciphertext)
    }
    /// Opens a snode destination's HTTP 200 body: base64 text (the default) or, if it is not
    /// base64, raw ciphertext (`"base64": false`); then parses `{"status","body"}`. A string
    /// body is returned as its bytes; a JSON body (`"json": true`) as its serialization.
    pub fn open_snode_reply(&self, http_body: &[u8]) -> Result<SnodeReply, OnionError> {
        let trimmed = http_body.trim_ascii();
        let decoded = base64::engine::general_purpose::STANDARD.decode(trimmed);
        let plain = match decoded {
            Ok(ct) => self.key.decrypt(&ct),
            Err(_) => self.key.decrypt(http_body),
        }?;
        let raw: RawSnodeReply = serde_json::from_slice(&plain)
            .map_err(|e| OnionError::BadReply(format!("reply is not status/body JSON: {e}")))?;
        let body = match raw.body {
            serde_json::Value::String(s) => s.into_bytes(),
            serde_json::Value::Null => Vec::new(),
            other => other.to_string().into_bytes(),
        };
        Ok(SnodeReply {
            status: raw.status,
            body,
        })
    }
    /// Opens a server's v4 reply (raw ciphertext body, not base64) and parses it.
    pub fn open_v4_reply(&self, http_body: &[u8]) -> Result<V4Response, OnionError> {
        let plain = self.key.decrypt(http_body)?;
        Ok(V4Response::decode(&plain)?)
    }
}

/// Builds an onion request through `path` (guard first) to `destination`, with fresh
/// ephemeral keys and nonces from `rng`.
///
/// `payload` is the storage-RPC JSON body for a snode destination, or the encoded v4 request
/// for a server. Prepare [`Hop`]s once per path and reuse them.
pub fn build_request(
    rng: &mut impl CryptoRngCore,
    enc: EncType,
    path: &[Hop],
    destination: &Destination,
    payload: &[u8],
) -> Result<OnionRequest, OnionError> {
    let mut next = |s: &mut [u8; 32], n: &mut [u8]| {
        rng.fill_bytes(s);
        rng.fill_bytes(n);
    };
    build_inner(enc, path, destination, payload, &mut next)
}

/// [`build_request`] with explicit per-layer secrets, innermost (destination) layer first:
/// `layers.len()` must be `path.len() + 1`. For reproducing published examples.
pub fn build_request_with(
    enc: EncType,
    path: &[Hop],
    destination: &Destination,
    payload: &[u8],
    layers: &[LayerSecret],
) -> Result<OnionRequest, OnionError> {
    if layers.len() != path.len() + 1 {
        return Err(OnionError::LayerCount {
            expected: path.len() + 1,
            got: layers.len(),
        });
    }
    let mut it = layers.iter();
    let mut next = |s: &mut [u8; 32], n: &mut [u8]| {
        let l = it.next().expect("layer count checked above");
        s.copy_from_slice(&l.ephemeral[..]);
        n.copy_from_slice(&l.nonce[..n.len()]);
    };
    build_inner(enc, path, destination, payload, &mut next)
}

fn routing_json(out: &mut Vec<u8>, destination_hex: &str, eph_pub: &[u8; 32], enc: EncType) {
    // Key order as in the published derived example; receivers parse the JSON, so it is free.
    out.extend_from_slice(b"{\"destination\":\"");
    out.extend_from_slice(destination_hex.as_bytes());
    out.extend_from_slice(b"\",\"ephemeral_key\":\"");
    push_hex(out, eph_pub);
    out.extend_from_slice(b"\",\"enc_type\":\"");
    out.extend_from_slice(enc.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8; 32]) {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(bytes, &mut buf).expect("64-byte buffer holds 32 bytes of hex");
    out.extend_from_slice(&buf);
}

fn build_inner(
    enc: EncType,
    path: &[Hop],
    destination: &Destination,
    payload: &[u8],
    next: &mut dyn FnMut(&mut [u8; 32], &mut [u8]),
) -> Result<OnionRequest, OnionError> {
    if path.is_empty() {
        return Err(OnionError::EmptyPath);
    }
    let n = enc.nonce_len();
    let tag = super::crypto::TAG_LEN;
    let mut secret = Zeroizing::new([0u8; 32]);

    // Layer 0: to the destination.
    const CONTROL: &[u8] = br#"{"headers":""}"#;
    let mut ct = Vec::with_capacity(n + 4 + payload.len() + CONTROL.len() + tag);
    ct.resize(n, 0);
    next(&mut secret, &mut ct[..n]);
    let mut eph_pub = x25519_public(&secret);
    let (dest_key, mut routing) = match destination {
        Destination::Snode(hop) => {
            write_frame(&mut ct, payload, CONTROL);
            let mut r = Vec::with_capacity(160);
            routing_json(&mut r, &hop.ed25519_hex, &eph_pub, enc);
            (&hop.key, r)
        }
        Destination::Server(s) => {
            ct.extend_from_slice(payload);
            let mut m = serde_json::Map::new();
            m.insert("host".into(), s.host.clone().into());
            m.insert("target".into(), s.target.clone().into());
            m.insert("method".into(), s.method.clone().into());
            m.insert("protocol".into(), s.protocol.clone().into());
            if let Some(p) = s.port {
                m.insert("port".into(), p.into());
            }
            m.insert("ephemeral_key".into(), hex::encode(eph_pub).into());
            m.insert("enc_type".into(), enc.as_str().into());
            let r = serde_json::to_vec(&m).expect("a string map serializes");
            (&s.key, r)
        }
    };
    let reply = LayerKey::for_sender(enc, &secret, &eph_pub, dest_key)?;
    reply.seal_tail(&mut ct, 0);

    // Path layers, last relay first. The guard's layer is written after a 4-byte gap so the
    // outer frame needs no extra copy.
    for (i, hop) in path.iter().enumerate().rev() {
        let outermost = i == 0;
        let start = if outermost { 4 } else { 0 };
        let mut out = Vec::with_capacity(start + n + 4 + ct.len() + routing.len() + tag + 120);
        out.resize(start + n, 0);
        next(&mut secret, &mut out[start..start + n]);
        eph_pub = x25519_public(&secret);
        let key = LayerKey::for_sender(enc, &secret, &eph_pub, &hop.key)?;
        write_frame(&mut out, &ct, &routing);
        key.seal_tail(&mut out, start);
        ct = out;
        if !outermost {
            routing.clear();
            routing_json(&mut routing, &hop.ed25519_hex, &eph_pub, enc);
        }
    }

    // ct = [4-byte gap][guard layer]; fill the length and append the outer JSON.
    let len = u32::try_from(ct.len() - 4).expect("onion bodies are far below 4 GiB");
    ct[..4].copy_from_slice(&len.to_le_bytes());
    ct.extend_from_slice(b"{\"ephemeral_key\":\"");
    push_hex(&mut ct, &eph_pub);
    ct.extend_from_slice(b"\",\"enc_type\":\"");
    ct.extend_from_slice(enc.as_str().as_bytes());
    ct.extend_from_slice(b"\"}");
    Ok(OnionRequest {
        body: ct,
        reply: ReplyHandle { key: reply },
    })
}
