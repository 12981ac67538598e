//! The static "oxend" of the devnet: node identities, swarm membership, and the JSON shapes in
//! which clients learn about nodes (`get_swarm`, `get_service_nodes`, `get_n_service_nodes`).

use ed25519_dalek::SigningKey;
use rand_core::CryptoRngCore;
use serde_json::{json, Map, Value};
use x25519_dalek::StaticSecret;

use crate::wire;

/// Storage-server version the devnet reports (`info`, `get_service_nodes`).
pub const VERSION: [u16; 3] = [2, 10, 0];
/// Hard fork the devnet reports (`"hf"` on replies).
pub const HARDFORK: [u16; 2] = [21, 0];
/// The fake chain height the devnet reports.
pub const HEIGHT: u64 = 1_000_000;

/// A node's long-term keys: Ed25519 identity and the X25519 key derived from it.
#[derive(Clone)]
pub struct NodeKeys {
    /// The Ed25519 signing key (signs per-node results).
    pub signing: SigningKey,
    /// The X25519 secret (decrypts onion layers).
    pub x_secret: StaticSecret,
    /// Ed25519 public key.
    pub ed25519: [u8; 32],
    /// X25519 public key (the Ed25519→Curve25519 conversion of `ed25519`).
    pub x25519: [u8; 32],
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("ed25519", &hex::encode(self.ed25519))
            .finish_non_exhaustive()
    }
}

impl NodeKeys {
    /// Keys from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> NodeKeys {
        let signing = SigningKey::from_bytes(seed);
        let ed25519 = signing.verifying_key().to_bytes();
        let x_secret = StaticSecret::from(signing.to_scalar_bytes());
        let x25519 = signing.verifying_key().to_montgomery().to_bytes();
        NodeKeys {
            signing,
            x_secret,
            ed25519,
            x25519,
        }
    }

    /// Fresh random keys.
    pub fn generate(rng: &mut impl CryptoRngCore) -> NodeKeys {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// The seed, to persist the identity.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
}

/// One node as the network knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Ed25519 public key.
    pub ed25519: [u8; 32],
    /// X25519 public key.
    pub x25519: [u8; 32],
    /// HTTPS port on 127.0.0.1.
    pub port: u16,
    /// The swarm the node belongs to.
    pub swarm_id: u64,
}

/// The devnet's node list and swarms; fixed once the devnet has started.
#[derive(Debug, Clone)]
pub struct Topology {
    nodes: Vec<NodeInfo>,
    swarm_ids: Vec<u64>,
}

/// Swarm ids for `n` nodes in swarms of `k`: `max(1, n / k)` swarms, ids spread evenly over the
/// u64 space, nodes dealt round-robin (so leftover nodes enlarge the first swarms).
pub fn assign_swarms(n: usize, k: usize) -> Vec<u64> {
    let swarms = (n / k.max(1)).max(1) as u64;
    let step = u64::MAX / swarms;
    (0..n)
        .map(|i| (i as u64 % swarms) * step + step / 2)
        .collect()
}

impl Topology {
    /// A topology of the given nodes.
    pub fn new(nodes: Vec<NodeInfo>) -> Topology {
        let mut swarm_ids: Vec<u64> = nodes.iter().map(|n| n.swarm_id).collect();
        swarm_ids.sort_unstable();
        swarm_ids.dedup();
        Topology { nodes, swarm_ids }
    }

    /// All nodes, by index.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The swarm ids, ascending.
    pub fn swarm_ids(&self) -> &[u64] {
        &self.swarm_ids
    }

    /// The swarm an account (its 32 key bytes) belongs to.
    pub fn swarm_of(&self, key32: &[u8; 32]) -> u64 {
        wire::closest_swarm(&self.swarm_ids, wire::swarm_space(key32))
            .expect("a devnet has at least one swarm")
    }

    /// Indices of the members of a swarm.
    pub fn members(&self, swarm_id: u64) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].swarm_id == swarm_id)
            .collect()
    }

    /// The index of the node with this Ed25519 key.
    pub fn find_ed25519(&self, ed: &[u8; 32]) -> Option<usize> {
        self.nodes.iter().position(|n| &n.ed25519 == ed)
    }

    /// `https://127.0.0.1:PORT` of a node.
    pub fn url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.nodes[i].port)
    }

    /// The `get_swarm` body (without `t`/`hf`) for a swarm.
    pub fn swarm_json(&self, swarm_id: u64) -> Value {
        let snodes: Vec<Value> = self
            .members(swarm_id)
            .into_iter()
            .map(|i| self.snode_json(i))
            .collect();
        json!({"snodes": snodes, "swarm": format!("{swarm_id:x}")})
    }

    /// One snode as `get_swarm` lists it. The devnet has no legacy key and no QUIC/OMQ port:
    /// `pubkey_legacy` repeats the Ed25519 key and `port_omq`/`port_quic` are 0.
    pub fn snode_json(&self, i: usize) -> Value {
        let n = &self.nodes[i];
        json!({
            "address": format!("{}.snode", zbase32(&n.ed25519)),
            "pubkey_legacy": hex::encode(n.ed25519),
            "pubkey_x25519": hex::encode(n.x25519),
            "pubkey_ed25519": hex::encode(n.ed25519),
            "port": n.port.to_string(),
            "port_https": n.port,
            "port_omq": 0,
            "port_quic": 0,
            "ip": "127.0.0.1",
        })
    }

    /// `service_node_states` entries as oxend returns them, limited to the requested `fields`
    /// (an object of `name: true`) when given.
    pub fn service_node_states(&self, fields: Option<&Map<String, Value>>) -> Vec<Value> {
        (0..self.nodes.len())
            .map(|i| {
                let n = &self.nodes[i];
                let all = json!({
                    "public_ip": "127.0.0.1",
                    "storage_port": n.port,
                    "storage_lmq_port": 0,
                    "pubkey_ed25519": hex::encode(n.ed25519),
                    "pubkey_x25519": hex::encode(n.x25519),
                    "service_node_pubkey": hex::encode(n.ed25519),
                    "swarm_id": n.swarm_id,
                    "storage_server_version": VERSION,
                    "requested_unlock_height": 0,
                    "height": HEIGHT,
                    "active": true,
                    "funded": true,
                });
                match (fields, all) {
                    (Some(f), Value::Object(m)) if !f.is_empty() => Value::Object(
                        m.into_iter()
                            .filter(|(k, _)| f.get(k).and_then(Value::as_bool) == Some(true))
                            .collect(),
                    ),
                    (_, all) => all,
                }
            })
            .collect()
    }
}

/// z-base32 (the `.snode` address alphabet).
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarms_are_dealt_evenly() {
        let ids = assign_swarms(12, 4);
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        for id in &distinct {
            assert_eq!(ids.iter().filter(|x| *x == id).count(), 4);
        }
        let ids = assign_swarms(9, 4);
        assert_eq!(ids.iter().filter(|x| **x == ids[0]).count(), 5);
        let one = assign_swarms(3, 4);
        assert!(
            one.iter().all(|x| *x == one[0]),
            "fewer nodes than a swarm: one swarm"
        );
    }

    #[test]
    fn x25519_is_the_ed25519_conversion() {
        let k = NodeKeys::from_seed(&[7u8; 32]);
        assert_eq!(wire::ed25519_to_x25519(&k.ed25519), Some(k.x25519));
        assert_eq!(
            x25519_dalek::PublicKey::from(&k.x_secret).to_bytes(),
            k.x25519
        );
    }

    #[test]
    fn zbase32_known_value() {
        // "y" is zero bits; a zero byte is 8 bits → "yy".
        assert_eq!(zbase32(&[0]), "yy");
        assert_eq!(zbase32(&[0xff]), "9h");
    }
}
