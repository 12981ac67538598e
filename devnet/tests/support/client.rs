//! Test client helpers: accounts that sign like Session clients, RPC and onion calls.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use session_devnet::wire::{self, EncType, OnionDest, OnionHop};
use session_devnet::{Devnet, HttpReply, HttpsClient};

pub const T: Duration = Duration::from_secs(10);
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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

    pub fn sign(&self, msg: &str) -> String {
        B64.encode(self.signing.sign(msg.as_bytes()).to_bytes())
    }

    /// Adds `pubkey`, and `signature` over `msg` (+ `pubkey_ed25519` for 05 accounts).
    pub fn signed(&self, mut params: Value, msg: &str) -> Value {
        params["pubkey"] = json!(self.hex);
        params["signature"] = json!(self.sign(msg));
        if self.is05 {
            params["pubkey_ed25519"] = json!(hex::encode(self.signing.verifying_key().to_bytes()));
        }
        params
    }

    pub fn store(&self, ns: i64, data: &[u8], now: i64) -> Value {
        let p = json!({"pubkey": self.hex, "namespace": ns, "timestamp": now, "ttl": 60_000,
                       "data": B64.encode(data)});
        if ns % 10 == 0 {
            p
        } else {
            self.signed(p, &format!("store{}{now}", wire::ns_str(ns)))
        }
    }

    pub fn retrieve(&self, ns: i64, now: i64, last_hash: &str) -> Value {
        self.signed(
            json!({"namespace": ns, "timestamp": now, "last_hash": last_hash}),
            &format!("retrieve{}{now}", wire::ns_str(ns)),
        )
    }
}

pub async fn rpc(c: &HttpsClient, url: &str, method: &str, params: Value) -> HttpReply {
    let body = json!({"method": method, "params": params})
        .to_string()
        .into_bytes();
    post(c, &format!("{url}/storage_rpc/v1"), body).await
}

pub async fn post(c: &HttpsClient, url: &str, body: Vec<u8>) -> HttpReply {
    c.post(url, &[], body, T).await.expect("node answers")
}

pub fn hop(devnet: &Devnet, i: usize) -> OnionHop {
    OnionHop {
        ed25519: devnet.node(i).ed25519(),
        x25519: devnet.node(i).x25519(),
    }
}

/// Sends `rpc` through `path` (node indices, guard first) to node `dest`; returns the HTTP
/// status and, when 200, the decrypted `{"status","body"}`.
pub async fn onion(
    c: &HttpsClient,
    devnet: &Devnet,
    path: &[usize],
    dest: usize,
    rpc: &Value,
    enc: EncType,
) -> (u16, Option<Value>) {
    let hops: Vec<OnionHop> = path.iter().map(|&i| hop(devnet, i)).collect();
    let req = wire::build_onion(
        &hops,
        &OnionDest::Snode(hop(devnet, dest)),
        &wire::snode_payload(rpc),
        enc,
        &mut rand::rngs::OsRng,
    );
    let url = format!("{}/onion_req/v2", devnet.node(path[0]).url());
    let r = post(c, &url, req.body).await;
    if r.status != 200 {
        return (r.status, None);
    }
    let plain = wire::decrypt_reply(&req.reply_key, &r.body).expect("reply decrypts");
    (
        200,
        Some(serde_json::from_slice(&plain).expect("reply is JSON")),
    )
}

/// Indices of nodes outside swarm `swarm_id`.
pub fn outside(devnet: &Devnet, swarm_id: u64) -> Vec<usize> {
    (0..devnet.nodes().len())
        .filter(|&i| devnet.node(i).swarm_id() != swarm_id)
        .collect()
}
