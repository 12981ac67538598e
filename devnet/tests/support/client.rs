//! Test client helpers: accounts that sign like Session clients, RPC and onion calls.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use session_devnet::Devnet;
use session_net::{HttpReply, HttpsTransport};
use session_proto::onion::{
    build_request, encode_frame, x25519_public, Destination, EncType, Hop, LayerKey, PeerKey,
    ReplyHandle, SnodeReply,
};
use session_proto::storage_rpc::sign::{retrieve_message, sign, store_message};
use session_proto::storage_rpc::wire::encode_base64;

pub const T: Duration = Duration::from_secs(10);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A Session account (05: X25519 id, signs with Ed25519 + pubkey_ed25519; 03: Ed25519 id).
pub struct Acct {
    pub signing: SigningKey,
    pub id: [u8; 33],
    pub hex: String,
    pub is05: bool,
}

impl Acct {
    pub fn new(seed: u64, prefix: u8) -> Acct {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s[8] = prefix;
        let signing = SigningKey::from_bytes(&s);
        let key = if prefix == 0x05 {
            signing.verifying_key().to_montgomery().to_bytes()
        } else {
            signing.verifying_key().to_bytes()
        };
        let mut id = [0u8; 33];
        id[0] = prefix;
        id[1..].copy_from_slice(&key);
        Acct {
            signing,
            hex: hex::encode(id),
            id,
            is05: prefix == 0x05,
        }
    }

    /// An account whose swarm is `swarm_id`, found by trying seeds (bounded).
    pub fn in_swarm(devnet: &Devnet, swarm_id: u64, prefix: u8, start: u64) -> Acct {
        for seed in start..start + 10_000 {
            let a = Acct::new(seed, prefix);
            if devnet.swarm_for(&a.id).expect("33 bytes").0 == swarm_id {
                return a;
            }
        }
        panic!("no account found for swarm {swarm_id:x} in 10000 tries");
    }

    pub fn sign(&self, msg: &[u8]) -> String {
        sign(&self.signing, msg).to_base64()
    }

    /// Adds `pubkey`, and `signature` over `msg` (+ `pubkey_ed25519` for 05 accounts).
    pub fn signed(&self, mut params: Value, msg: impl AsRef<[u8]>) -> Value {
        params["pubkey"] = json!(self.hex);
        params["signature"] = json!(self.sign(msg.as_ref()));
        if self.is05 {
            params["pubkey_ed25519"] = json!(hex::encode(self.signing.verifying_key().to_bytes()));
        }
        params
    }

    pub fn store(&self, ns: i16, data: &[u8], now: i64) -> Value {
        let p = json!({"pubkey": self.hex, "namespace": ns, "timestamp": now, "ttl": 60_000,
                       "data": encode_base64(data)});
        if ns % 10 == 0 {
            p
        } else {
            self.signed(p, store_message(ns, ums(now)))
        }
    }

    pub fn retrieve(&self, ns: i16, now: i64, last_hash: &str) -> Value {
        self.signed(
            json!({"namespace": ns, "timestamp": now, "last_hash": last_hash}),
            retrieve_message(ns, ums(now)),
        )
    }
}

pub async fn rpc(c: &HttpsTransport, url: &str, method: &str, params: Value) -> HttpReply {
    let body = json!({"method": method, "params": params})
        .to_string()
        .into_bytes();
    post(c, &format!("{url}/storage_rpc/v1"), body).await
}

pub async fn post(c: &HttpsTransport, url: &str, body: Vec<u8>) -> HttpReply {
    c.post_url(url, &[], body, T).await.expect("node answers")
}

fn ums(v: i64) -> u64 {
    u64::try_from(v).expect("test clocks are after 1970")
}

pub fn hop(devnet: &Devnet, i: usize) -> Hop {
    Hop::new(devnet.node(i).x25519(), devnet.node(i).ed25519())
}

/// Sends `rpc` through `path` (node indices, guard first) to node `dest` with session-proto's
/// builder; returns the HTTP status and, when 200, the opened `{"status","body"}` reply.
pub async fn onion(
    c: &HttpsTransport,
    devnet: &Devnet,
    path: &[usize],
    dest: usize,
    rpc: &Value,
    enc: EncType,
) -> (u16, Option<SnodeReply>) {
    let hops: Vec<Hop> = path.iter().map(|&i| hop(devnet, i)).collect();
    let req = build_request(
        &mut rand::rngs::OsRng,
        enc,
        &hops,
        &Destination::Snode(hop(devnet, dest)),
        rpc.to_string().as_bytes(),
    )
    .expect("onion builds");
    let url = format!("{}/onion_req/v2", devnet.node(path[0]).url());
    let r = post(c, &url, req.body).await;
    if r.status != 200 {
        return (r.status, None);
    }
    let reply = req.reply.open_snode_reply(&r.body).expect("reply opens");
    (200, Some(reply))
}

/// One hand-made onion layer for node `dest` (no path): `frame(Enc(dest, plaintext), meta)`,
/// for sending inner content the builder never writes (bad frames, reply options).
pub fn single_layer(
    devnet: &Devnet,
    dest: usize,
    plaintext: &[u8],
    enc: EncType,
) -> (Vec<u8>, ReplyHandle) {
    let secret = session_proto::onion::crypto::random_secret(&mut rand::rngs::OsRng);
    let eph = x25519_public(&secret);
    let key = LayerKey::for_sender(
        enc,
        &secret,
        &eph,
        &PeerKey::new(devnet.node(dest).x25519()),
    )
    .expect("node keys are valid points");
    let ct = key.encrypt(&mut rand::rngs::OsRng, plaintext);
    let meta = json!({"ephemeral_key": hex::encode(eph), "enc_type": enc.as_str()});
    (
        encode_frame(&ct, meta.to_string().as_bytes()),
        ReplyHandle::new(key),
    )
}

/// Indices of nodes outside swarm `swarm_id`.
pub fn outside(devnet: &Devnet, swarm_id: u64) -> Vec<usize> {
    (0..devnet.nodes().len())
        .filter(|&i| devnet.node(i).swarm_id() != swarm_id)
        .collect()
}

/// A devnet shared by a whole test binary, with the runtime that serves it (tests run on
/// their own runtimes, which come and go).
pub struct SharedDevnet {
    _rt: tokio::runtime::Runtime,
    devnet: Devnet,
}

/// The binary's devnet of `nodes` nodes in swarms of 3, started on first use in `cell`.
pub fn shared_devnet(
    cell: &'static std::sync::OnceLock<SharedDevnet>,
    nodes: usize,
) -> &'static Devnet {
    &cell
        .get_or_init(|| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                let cfg = session_devnet::DevnetConfig {
                    nodes,
                    swarm_size: 3,
                    ..Default::default()
                };
                let devnet = rt.block_on(Devnet::start(cfg)).expect("devnet starts");
                SharedDevnet { _rt: rt, devnet }
            })
            .join()
            .expect("devnet thread")
        })
        .devnet
}
