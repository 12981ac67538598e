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
    /// [`ReplyHandle::open_v4_reply`] on an owned body, decrypted and parsed in place: the
    /// response body is the reply's own allocation (a downloaded file is not copied).
    pub fn open_v4_reply_owned(&self, mut http_body: Vec<u8>) -> Result<V4Response, OnionError> {
        self.key.decrypt_in_place(&mut http_body)?;
        Ok(V4Response::decode_owned(http_body)?)
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
    let mut draft = draft_inner(enc, path, destination, payload.len(), next)?;
    draft.payload_mut().copy_from_slice(payload);
    Ok(draft.seal())
}

/// An onion request laid out in one buffer of its final size before its payload is written:
/// write the payload into [`OnionDraft::payload_mut`], then [`OnionDraft::seal`] encrypts
/// the layers in place, innermost first. A large payload (a file upload) is thus held once,
/// where building layer by layer would hold it once per layer.
///
/// Every layer nests inside the next one (`nonce ‖ Enc(u32 len ‖ inner ‖ json) ‖ tag`), so
/// the payload sits at a fixed offset behind the nonces and length prefixes, and the routing
/// JSON and tags follow it; all their sizes are known once the ephemeral keys are drawn.
pub struct OnionDraft {
    buf: Vec<u8>,
    payload: std::ops::Range<usize>,
    /// Each layer's range in `buf` (nonce to tag) and key, innermost first.
    layers: Vec<(std::ops::Range<usize>, LayerKey)>,
    reply: LayerKey,
}

impl std::fmt::Debug for OnionDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnionDraft")
            .field("len", &self.buf.len())
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl OnionDraft {
    /// Lays out an onion request through `path` (guard first) to `destination` for a payload
    /// of `payload_len` bytes, with fresh ephemeral keys and nonces from `rng` (drawn in the
    /// order [`build_request`] draws them).
    pub fn new(
        rng: &mut impl CryptoRngCore,
        enc: EncType,
        path: &[Hop],
        destination: &Destination,
        payload_len: usize,
    ) -> Result<OnionDraft, OnionError> {
        let mut next = |s: &mut [u8; 32], n: &mut [u8]| {
            rng.fill_bytes(s);
            rng.fill_bytes(n);
        };
        draft_inner(enc, path, destination, payload_len, &mut next)
    }

    /// Where the payload goes (zeros until written).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.payload.clone()]
    }

    /// The size of the finished body.
    pub fn body_len(&self) -> usize {
        self.buf.len()
    }

    /// Encrypts the layers in place and gives the request.
    pub fn seal(mut self) -> OnionRequest {
        let n = self.reply.enc_type().nonce_len();
        let tag = super::crypto::TAG_LEN;
        for (range, key) in &self.layers {
            let mut nonce = [0u8; XCHACHA_NONCE_LEN];
            nonce[..n].copy_from_slice(&self.buf[range.start..range.start + n]);
            let body = &mut self.buf[range.start + n..range.end - tag];
            let t = key.seal_detached(&nonce[..n], body);
            self.buf[range.end - tag..range.end].copy_from_slice(&t);
        }
        OnionRequest {
            body: self.buf,
            reply: ReplyHandle { key: self.reply },
        }
    }
}

/// The destination's routing JSON, as the last relay reads it.
fn destination_routing(destination: &Destination, eph_pub: &[u8; 32], enc: EncType) -> Vec<u8> {
    match destination {
        Destination::Snode(hop) => {
            let mut r = Vec::with_capacity(160);
            routing_json(&mut r, &hop.ed25519_hex, eph_pub, enc);
            r
        }
        Destination::Server(s) => {
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
            serde_json::to_vec(&m).expect("a string map serializes")
        }
    }
}

fn u32_len(len: usize) -> Result<[u8; 4], OnionError> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| OnionError::TooLarge(len))
}

fn draft_inner(
    enc: EncType,
    path: &[Hop],
    destination: &Destination,
    payload_len: usize,
    next: &mut dyn FnMut(&mut [u8; 32], &mut [u8]),
) -> Result<OnionDraft, OnionError> {
    if path.is_empty() {
        return Err(OnionError::EmptyPath);
    }
    let n = enc.nonce_len();
    let tag = super::crypto::TAG_LEN;
    const CONTROL: &[u8] = br#"{"headers":""}"#;
    let snode = matches!(destination, Destination::Snode(_));

    // Keys, nonces and the JSON that closes each layer, innermost (destination) first: layer
    // k > 0 is for path[path.len() - k] and names the node inside it.
    let hops = path.len() + 1;
    let mut secret = Zeroizing::new([0u8; 32]);
    let mut nonces = Vec::with_capacity(hops);
    let mut keys = Vec::with_capacity(hops);
    let mut tails: Vec<Vec<u8>> = Vec::with_capacity(hops);
    let mut eph_pub = [0u8; 32];
    for k in 0..hops {
        let mut nonce = [0u8; XCHACHA_NONCE_LEN];
        next(&mut secret, &mut nonce[..n]);
        let inner_eph = eph_pub;
        eph_pub = x25519_public(&secret);
        let (peer, tail) = match k {
            0 => {
                let key = match destination {
                    Destination::Snode(hop) => &hop.key,
                    Destination::Server(s) => &s.key,
                };
                (key, if snode { CONTROL.to_vec() } else { Vec::new() })
            }
            1 => (
                &path[path.len() - 1].key,
                destination_routing(destination, &inner_eph, enc),
            ),
            _ => {
                let mut r = Vec::with_capacity(160);
                routing_json(
                    &mut r,
                    &path[path.len() - k + 1].ed25519_hex,
                    &inner_eph,
                    enc,
                );
                (&path[path.len() - k].key, r)
            }
        };
        keys.push(LayerKey::for_sender(enc, &secret, &eph_pub, peer)?);
        nonces.push(nonce);
        tails.push(tail);
    }
    let mut outer = Vec::with_capacity(120);
    outer.extend_from_slice(b"{\"ephemeral_key\":\"");
    push_hex(&mut outer, &eph_pub);
    outer.extend_from_slice(b"\",\"enc_type\":\"");
    outer.extend_from_slice(enc.as_str().as_bytes());
    outer.extend_from_slice(b"\"}");

    // Sizes, innermost first: the destination's plaintext is `[u32 len] payload [control]`
    // for a snode, the bare payload for a server; every path layer's is `u32 len ‖ inner ‖
    // routing`.
    let too_large = || OnionError::TooLarge(payload_len);
    let mut lens = Vec::with_capacity(hops);
    let head0 = if snode { 4 } else { 0 };
    let mut len = n + head0 + payload_len + tails[0].len() + tag;
    lens.push(len);
    for tail in &tails[1..] {
        len = (n + 4 + tail.len() + tag)
            .checked_add(len)
            .ok_or_else(too_large)?;
        lens.push(len);
    }
    let total = (4 + outer.len()).checked_add(len).ok_or_else(too_large)?;

    // One buffer; the guard's layer starts after the 4-byte outer length, each inner layer
    // after its outer layer's nonce and length prefix.
    let mut buf = vec![0u8; total];
    buf[..4].copy_from_slice(&u32_len(len)?);
    buf[4 + len..].copy_from_slice(&outer);
    let mut layers = Vec::with_capacity(hops);
    let mut start = 4;
    let mut starts = vec![0; hops];
    for k in (0..hops).rev() {
        starts[k] = start;
        start += n + 4;
    }
    for k in 0..hops {
        let (start, end) = (starts[k], starts[k] + lens[k]);
        buf[start..start + n].copy_from_slice(&nonces[k][..n]);
        let inner_len = if k == 0 { payload_len } else { lens[k - 1] };
        if k > 0 || snode {
            buf[start + n..start + n + 4].copy_from_slice(&u32_len(inner_len)?);
        }
        let tail = &tails[k];
        buf[end - tag - tail.len()..end - tag].copy_from_slice(tail);
        layers.push((start..end, keys[k].clone()));
    }
    let payload_at = starts[0] + n + head0;
    Ok(OnionDraft {
        buf,
        payload: payload_at..payload_at + payload_len,
        layers,
        reply: keys.swap_remove(0),
    })
}
