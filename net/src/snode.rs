//! A snode as the client knows it: its keys and where to reach it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

/// A service node (snode): its Ed25519 identity, its X25519 onion key and its HTTPS address.
///
/// Two snodes are the same node when their Ed25519 keys are equal.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snode {
    /// Ed25519 public key (identity; relays route by it).
    #[serde(with = "hex32")]
    pub ed25519: [u8; 32],
    /// X25519 public key (onion layers for this node are encrypted to it).
    #[serde(with = "hex32")]
    pub x25519: [u8; 32],
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// HTTPS (storage) port.
    pub port: u16,
}

impl Snode {
    /// The HTTPS address.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }

    /// The first 8 hex digits of the Ed25519 key: enough to tell nodes apart in logs and errors.
    pub fn short(&self) -> String {
        hex::encode(&self.ed25519[..4])
    }

    /// The full Ed25519 key in hex (what onion routing JSON names a node by).
    pub fn ed25519_hex(&self) -> String {
        hex::encode(self.ed25519)
    }

    /// The /24 subnet the node is in (first three octets).
    pub fn subnet24(&self) -> [u8; 3] {
        let o = self.ip.octets();
        [o[0], o[1], o[2]]
    }

    /// Builds a snode from the hex keys, IP text and port found in snode and seed replies.
    /// Returns `None` for malformed keys, a malformed or unroutable (`0.0.0.0`) IP or port 0.
    pub fn from_parts(ed25519_hex: &str, x25519_hex: &str, ip: &str, port: u16) -> Option<Snode> {
        let ed25519 = parse_hex32(ed25519_hex)?;
        let x25519 = parse_hex32(x25519_hex)?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        if ip.is_unspecified() || port == 0 {
            return None;
        }
        Some(Snode {
            ed25519,
            x25519,
            ip,
            port,
        })
    }
}

impl fmt::Debug for Snode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snode({} @ {})", self.short(), self.addr())
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_hex32(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Made-up snodes for unit tests.
    use super::*;

    /// Snode number `i` in subnet `10.0.<subnet>.0/24`.
    pub(crate) fn node(i: u8, subnet: u8) -> Snode {
        Snode {
            ed25519: [i; 32],
            x25519: [i.wrapping_add(100); 32],
            ip: Ipv4Addr::new(10, 0, subnet, i),
            port: 20000 + u16::from(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_validates() {
        let ed = "11".repeat(32);
        let x = "22".repeat(32);
        let n = Snode::from_parts(&ed, &x, "1.2.3.4", 443).expect("valid");
        assert_eq!(n.subnet24(), [1, 2, 3]);
        assert_eq!(n.short(), "11111111");
        assert!(Snode::from_parts(&ed, &x, "0.0.0.0", 443).is_none());
        assert!(Snode::from_parts(&ed, &x, "1.2.3.4", 0).is_none());
        assert!(Snode::from_parts(&ed[..10], &x, "1.2.3.4", 1).is_none());
        assert!(Snode::from_parts(&ed, "zz", "1.2.3.4", 1).is_none());
        assert!(Snode::from_parts(&ed, &x, "::1", 1).is_none());
    }

    #[test]
    fn serde_round_trip() {
        let n = testing::node(7, 3);
        let json = serde_json::to_string(&n).expect("serializes");
        let back: Snode = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, n);
        assert!(serde_json::from_str::<Snode>(
            r#"{"ed25519":"ab","x25519":"cd","ip":"1.1.1.1","port":1}"#
        )
        .is_err());
    }
}
