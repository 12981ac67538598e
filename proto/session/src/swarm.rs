//! Swarm math: where an Account ID lives in the 64-bit swarm space and which swarm owns it.
//!
//! Every snode belongs to one swarm, identified by a `u64` swarm id assigned by oxend. An account
//! is stored by the swarm whose id is closest to the account's *swarm space* value, measured
//! around the `u64` circle (network.md §3). The same rule runs on snodes (to answer `get_swarm`
//! and send 421 redirects) and on clients (to pick a swarm from a cached list).

use std::fmt;

/// The swarm id oxend gives a snode that is in no swarm (decommissioned): `2^64 − 1`.
pub const UNASSIGNED_SWARM_ID: u64 = u64::MAX;

/// A swarm id: a point on the 64-bit swarm-space circle.
///
/// On the wire (`get_swarm` replies) the id is written as lower-case hex without `0x`; the
/// `Display`/`LowerHex` forms and [`SwarmId::from_hex`] follow that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SwarmId(pub u64);

impl SwarmId {
    /// Parses the hex form used in `get_swarm` replies (`"swarm": "1f3a…"`); `None` if malformed.
    pub fn from_hex(s: &str) -> Option<SwarmId> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(SwarmId)
    }
}

impl serde::Serialize for SwarmId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SwarmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SwarmId::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected a hex swarm id"))
    }
}

impl fmt::Display for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::LowerHex for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// The swarm-space value of a 32-byte account key (the prefix byte is not part of it): the four
/// 8-byte chunks read as big-endian `u64`s, XORed together.
pub fn swarm_space(pubkey: &[u8; 32]) -> u64 {
    pubkey
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("chunks_exact(8) yields 8-byte chunks")))
        .fold(0, |acc, x| acc ^ x)
}

/// [`swarm_space`] of a 33-byte Account ID (`05…`, `03…`, …); the prefix byte is ignored.
pub fn swarm_space_of_account(account_id: &[u8; 33]) -> u64 {
    let key: &[u8; 32] = account_id[1..]
        .try_into()
        .expect("33 bytes minus the prefix byte is 32 bytes");
    swarm_space(key)
}

/// The swarm that owns swarm-space value `space`, given all swarm ids **sorted ascending**.
///
/// Rule (storage server `get_swarm_by_pk`): `right` is the first id ≥ `space` (wrapping to the
/// first id), `left` the id before it (wrapping to the last); with wrapping `u64` distances
/// `dr = right − space`, `dl = space − left`, `right` wins iff `dr < dl`, so ties go to `left`.
/// A single swarm always wins; an empty list gives `None`. [`UNASSIGNED_SWARM_ID`] is an
/// ordinary value here: callers leave decommissioned snodes out of the list.
pub fn closest_swarm(sorted_ids: &[u64], space: u64) -> Option<u64> {
    debug_assert!(
        sorted_ids.windows(2).all(|w| w[0] <= w[1]),
        "closest_swarm needs sorted ids"
    );
    match sorted_ids {
        [] => None,
        [only] => Some(*only),
        _ => {
            let idx = sorted_ids.partition_point(|&id| id < space);
            let right_idx = if idx == sorted_ids.len() { 0 } else { idx };
            let left_idx = if right_idx == 0 {
                sorted_ids.len() - 1
            } else {
                right_idx - 1
            };
            let right = sorted_ids[right_idx];
            let left = sorted_ids[left_idx];
            let dr = right.wrapping_sub(space);
            let dl = space.wrapping_sub(left);
            Some(if dr < dl { right } else { left })
        }
    }
}

/// [`closest_swarm`] for a 33-byte Account ID.
pub fn swarm_for_account(sorted_ids: &[u64], account_id: &[u8; 33]) -> Option<SwarmId> {
    closest_swarm(sorted_ids, swarm_space_of_account(account_id)).map(SwarmId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../tests/data/network-swarm.json");

    fn account(hex_id: &str) -> [u8; 33] {
        hex::decode(hex_id)
            .expect("vector hex")
            .try_into()
            .expect("33-byte vector id")
    }

    fn u64_of(v: &Value) -> u64 {
        v.as_str().expect("decimal string").parse().expect("u64")
    }

    #[test]
    fn pubkey_to_swarm_space_vectors() {
        let v: Value = serde_json::from_str(VECTORS).expect("vector json");
        let cases = v["pubkey_to_swarm_space"].as_array().expect("cases");
        assert_eq!(cases.len(), 11);
        for case in cases {
            let id = account(case["pubkey"].as_str().expect("pubkey"));
            assert_eq!(
                swarm_space_of_account(&id),
                u64_of(&case["swarm_space"]),
                "{}",
                case["pubkey"]
            );
            let key: [u8; 32] = id[1..].try_into().expect("32");
            assert_eq!(swarm_space(&key), swarm_space_of_account(&id));
        }
    }

    #[test]
    fn get_swarm_vectors() {
        let v: Value = serde_json::from_str(VECTORS).expect("vector json");
        let mut n = 0;
        for group in v["get_swarm"].as_array().expect("groups") {
            let mut ids: Vec<u64> = group["swarm_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(u64_of)
                .collect();
            ids.sort_unstable();
            for case in group["cases"].as_array().expect("cases") {
                let id = account(case["pubkey"].as_str().expect("pubkey"));
                let want = u64_of(&case["expected_swarm_id"]);
                assert_eq!(
                    swarm_for_account(&ids, &id),
                    Some(SwarmId(want)),
                    "{}",
                    case["pubkey"]
                );
                n += 1;
            }
        }
        assert_eq!(n, 27 + 3 + 2);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(closest_swarm(&[], 5), None);
        assert_eq!(closest_swarm(&[42], 5), Some(42));
        assert_eq!(closest_swarm(&[42], u64::MAX), Some(42));
        // Exactly halfway between 0 and 10: tie goes left.
        assert_eq!(closest_swarm(&[0, 10], 5), Some(0));
        assert_eq!(closest_swarm(&[0, 10], 6), Some(10));
    }

    #[test]
    fn swarm_id_hex() {
        assert_eq!(SwarmId(0x1f3a).to_string(), "1f3a");
        assert_eq!(SwarmId::from_hex("1f3a"), Some(SwarmId(0x1f3a)));
        assert_eq!(
            SwarmId::from_hex("ffffffffffffffff"),
            Some(SwarmId(u64::MAX))
        );
        assert_eq!(SwarmId::from_hex(""), None);
        assert_eq!(SwarmId::from_hex("10000000000000000"), None);
        assert_eq!(SwarmId::from_hex("xyz"), None);
        assert_eq!(SwarmId::from_hex("+1"), None);
    }
}
