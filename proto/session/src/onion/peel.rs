//! The snode side of onion requests: open one layer, decide what it asks for, and encrypt a
//! destination's reply (network.md §5.4).
//!
//! A snode receives `frame(blob, {"ephemeral_key", "enc_type", ["hop_no"]})`, decrypts `blob`
//! with its X25519 secret, and finds either `frame(next_blob, routing)` or, at the destination,
//! `frame(rpc_body, {"headers": …})`. Routing that names `destination` means relay; routing
//! that names `host` means proxy the whole decrypted layer to a server.

use base64::Engine as _;
use rand_core::CryptoRngCore;
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::build::ReplyHandle;
use super::crypto::{x25519_public, EncType, LayerKey};
use super::{decode_frame, is_target_allowed, write_frame, MAX_ONION_HOPS};
use crate::err::OnionError;

/// A snode's (or server's) X25519 key pair, public key computed once.
#[derive(Clone)]
pub struct NodeKeys {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKeys({}…)", hex::encode(&self.public[..4]))
    }
}

impl NodeKeys {
    /// From the X25519 secret.
    pub fn new(secret: [u8; 32]) -> NodeKeys {
        NodeKeys {
            public: x25519_public(&secret),
            secret: Zeroizing::new(secret),
        }
    }
    /// The X25519 public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// The frame metadata every node reads before decrypting.
#[derive(Deserialize)]
struct OuterMeta {
    ephemeral_key: String,
    #[serde(default)]
    enc_type: Option<String>,
    #[serde(default)]
    hop_no: Option<u32>,
}

fn parse_enc(s: Option<&str>) -> Result<EncType, OnionError> {
    match s {
        None => Ok(EncType::AesGcm),
        Some(s) => EncType::parse(s).ok_or_else(|| OnionError::UnknownEncType(s.to_owned())),
    }
}

fn parse_key(s: &str) -> Result<[u8; 32], OnionError> {
    let mut k = [0u8; 32];
    if s.len() != 64 {
        return Err(OnionError::BadEphemeralKey);
    }
    hex::decode_to_slice(s, &mut k).map_err(|_| OnionError::BadEphemeralKey)?;
    Ok(k)
}

/// One decrypted layer, before it is classified.
#[derive(Debug)]
pub struct OpenedLayer {
    /// The decrypted bytes.
    pub plaintext: Vec<u8>,
    /// The layer key (encrypts the reply if this node is the destination).
    pub key: LayerKey,
    /// `hop_no` from the frame (0 if absent).
    pub hop_no: u32,
}

/// Decrypts the layer addressed to `node` from an incoming `/onion_req/v2` body.
pub fn open_layer(node: &NodeKeys, body: &[u8]) -> Result<OpenedLayer, OnionError> {
    let (blob, json) = decode_frame(body)?;
    let meta: OuterMeta =
        serde_json::from_slice(json).map_err(|e| OnionError::BadFrameJson(e.to_string()))?;
    let enc = parse_enc(meta.enc_type.as_deref())?;
    let eph = parse_key(&meta.ephemeral_key)?;
    let key = LayerKey::for_receiver(enc, &node.secret, &node.public, &eph)?;
    let plaintext = key.decrypt(blob)?;
    Ok(OpenedLayer {
        plaintext,
        key,
        hop_no: meta.hop_no.unwrap_or(0),
    })
}

/// A layer that asks to be forwarded to another snode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayHop {
    /// The next snode's Ed25519 key (unknown → 502 `"Next node not found: <hex>"`).
    pub destination: [u8; 32],
    /// The body to POST to it: `frame(next_blob, {"ephemeral_key","enc_type","hop_no"})`.
    pub next_body: Vec<u8>,
    /// The hop count the next node will see.
    pub hop_no: u32,
}

impl RelayHop {
    /// The next snode's Ed25519 key as lower-case hex (for lookups and the 502 text).
    pub fn destination_hex(&self) -> String {
        hex::encode(self.destination)
    }
}

/// A layer for this snode as destination: a storage-RPC request.
#[derive(Debug)]
pub struct FinalRequest {
    /// The storage-RPC JSON body `{"method","params"}`.
    pub body: Vec<u8>,
    /// `"json": true`: embed the RPC reply as JSON rather than a string.
    pub json: bool,
    /// `"base64": false` turns off base64 of the encrypted reply (default on).
    pub base64: bool,
    /// The key to encrypt the reply with ([`seal_snode_reply`]).
    pub reply: ReplyHandle,
}

/// A layer that asks to be POSTed to a server (the last relay before a SOGS/file server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// Host.
    pub host: String,
    /// Path (checked with [`is_target_allowed`]).
    pub target: String,
    /// HTTP method (default `POST`).
    pub method: String,
    /// `https` (default) or `http`.
    pub protocol: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// The whole decrypted layer, POSTed as is; the server's answer goes back unchanged.
    pub plaintext: Vec<u8>,
}

/// What an incoming onion layer asks of this snode.
#[derive(Debug)]
pub enum Peeled {
    /// Forward to another snode.
    Relay(RelayHop),
    /// This snode is the destination.
    Final(FinalRequest),
    /// Forward to a server over HTTP(S).
    Proxy(ProxyRequest),
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, OnionError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(OnionError::BadRouting(format!("{k} is not a string"))),
    }
}

fn bool_field(m: &Map<String, Value>, k: &str, default: bool) -> Result<bool, OnionError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(OnionError::BadRouting(format!("{k} is not a boolean"))),
    }
}

impl OpenedLayer {
    /// Classifies the decrypted layer. On error the caller still holds `self.key` and may
    /// encrypt a 400 for the client, as the storage server does for bad inner JSON.
    pub fn classify(&self) -> Result<Peeled, OnionError> {
        let (blob, json) = decode_frame(&self.plaintext)?;
        let m: Map<String, Value> =
            serde_json::from_slice(json).map_err(|e| OnionError::BadFrameJson(e.to_string()))?;
        if m.contains_key("headers") {
            return Ok(Peeled::Final(FinalRequest {
                body: blob.to_vec(),
                json: bool_field(&m, "json", false)?,
                base64: bool_field(&m, "base64", true)?,
                reply: ReplyHandle::new(self.key.clone()),
            }));
        }
        if let Some(host) = str_field(&m, "host")? {
            let target = str_field(&m, "target")?
                .ok_or_else(|| OnionError::BadRouting("missing target".into()))?;
            if !is_target_allowed(target) {
                return Err(OnionError::TargetNotAllowed(target.to_owned()));
            }
            let port = match m.get("port") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or_else(|| OnionError::BadRouting("bad port".into()))?,
                ),
            };
            return Ok(Peeled::Proxy(ProxyRequest {
                host: host.to_owned(),
                target: target.to_owned(),
                method: str_field(&m, "method")?.unwrap_or("POST").to_owned(),
                protocol: str_field(&m, "protocol")?.unwrap_or("https").to_owned(),
                port,
                plaintext: self.plaintext.clone(),
            }));
        }
        let dest = str_field(&m, "destination")?
            .ok_or_else(|| OnionError::BadRouting("missing destination".into()))?;
        let destination = parse_key(dest)
            .map_err(|_| OnionError::BadRouting("destination is not a 64-hex key".into()))?;
        let eph = str_field(&m, "ephemeral_key")?
            .ok_or_else(|| OnionError::BadRouting("missing ephemeral_key".into()))?;
        parse_key(eph)?;
        let enc = parse_enc(str_field(&m, "enc_type")?)?;
        let hop_no = self.hop_no.saturating_add(1);
        if hop_no > MAX_ONION_HOPS {
            return Err(OnionError::TooManyHops(hop_no));
        }
        let meta = format!(
            "{{\"ephemeral_key\":\"{eph}\",\"enc_type\":\"{}\",\"hop_no\":{hop_no}}}",
            enc.as_str()
        );
        let mut next_body = Vec::with_capacity(4 + blob.len() + meta.len());
        write_frame(&mut next_body, blob, meta.as_bytes());
        Ok(Peeled::Relay(RelayHop {
            destination,
            next_body,
            hop_no,
        }))
    }
}

/// Opens and classifies one layer: [`open_layer`] then [`OpenedLayer::classify`].
pub fn peel(node: &NodeKeys, body: &[u8]) -> Result<Peeled, OnionError> {
    open_layer(node, body)?.classify()
}

/// The reply plaintext `{"status": status, "body": …}`: `body` as a JSON string, or embedded
/// as JSON when `json` is set and `body` parses as JSON.
pub fn reply_plaintext(status: u16, body: &[u8], json: bool) -> Vec<u8> {
    let embedded = if json {
        serde_json::from_slice::<Value>(body).ok()
    } else {
        None
    };
    let body = embedded.unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into()));
    let mut out = Vec::with_capacity(32 + body.to_string().len());
    out.extend_from_slice(format!("{{\"status\":{status},\"body\":").as_bytes());
    serde_json::to_writer(&mut out, &body).expect("writing JSON to a Vec cannot fail");
    out.push(b'}');
    out
}

/// The destination's HTTP 200 body for a storage-RPC reply: encrypted
/// [`reply_plaintext`], base64 unless the request said `"base64": false`.
pub fn seal_snode_reply(
    rng: &mut impl CryptoRngCore,
    request: &FinalRequest,
    status: u16,
    body: &[u8],
) -> Vec<u8> {
    let ct = request
        .reply
        .key()
        .encrypt(rng, &reply_plaintext(status, body, request.json));
    if request.base64 {
        base64::engine::general_purpose::STANDARD
            .encode(ct)
            .into_bytes()
    } else {
        ct
    }
}

/// The server side (SOGS, file server): opens the body a relay POSTed to `/oxen/v4/lsrpc`,
/// `frame(C0, {…, "ephemeral_key", "enc_type"})`, giving the v4 request plaintext and the
/// key for the (raw, not base64) reply.
pub fn open_server_request(
    server: &NodeKeys,
    body: &[u8],
) -> Result<(Vec<u8>, ReplyHandle), OnionError> {
    let layer = open_layer(server, body)?;
    Ok((layer.plaintext, ReplyHandle::new(layer.key)))
}
