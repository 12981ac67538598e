//! Session groups v2 (`03…` IDs): the group identity, its keys messages, its encrypted messages,
//! subaccount authentication, kicked notices and the control messages (groups.md).
//!
//! A group is an Ed25519 keypair; its ID is `03 || group_ed_pk`; whoever holds the 32-byte
//! seed is an admin. The group swarm holds five namespaces ([`NS_MESSAGES`] …
//! [`NS_REVOKED_RETRIEVABLE`]). Everything here is pure: randomness and time are arguments.
//!
//! # Layout
//! - [`configs`]: the info (ns 13) and members (ns 14) configs on [`crate::config`].
//! - [`keys`]: keys messages (ns 12): full rekeys, supplements, loading as admin or member.
//! - [`message`]: group messages (ns 11): encrypt and decrypt, the 2025 signature rule.
//! - [`subaccount`]: member auth data, subaccount tokens and request signatures (§5).
//! - [`multi`]: multi-recipient encryption and the kicked notice (ns −11).
//! - [`control`]: `GroupUpdateMessage`s and their admin signatures (§6).
//! - [`legacy`]: recognising retired `05`-keyed closed groups.

pub mod configs;
pub mod control;
pub mod keys;
pub mod legacy;
pub mod message;
pub mod multi;
pub mod subaccount;

use blake2::digest::consts::{U24, U32, U56, U64};
use blake2::digest::{FixedOutput, Mac};
use blake2::Blake2bMac;
use zeroize::Zeroizing;

use crate::account_id::{AccountId, Prefix};
use crate::config::bt::{Dict, Value};
use crate::err::{ConfigError, GroupError};
use crate::keys::IdentityKeys;

/// Decodes one canonical bt value (the config module's strict reader) for the group formats.
pub(crate) fn bt_decode(buf: &[u8]) -> Result<Value, GroupError> {
    Value::decode(buf).map_err(|e| match e {
        ConfigError::Bt { at, reason } => GroupError::Bt { at, reason },
        _ => GroupError::Bt {
            at: 0,
            reason: "not a bt value",
        },
    })
}

/// Typed access to bt values.
pub(crate) trait BtValue {
    /// The dict, if this is one.
    fn as_dict(&self) -> Option<&Dict>;
    /// The list, if this is one.
    fn as_list(&self) -> Option<&[Value]>;
    /// The bytes, if this is a byte string.
    fn as_bytes(&self) -> Option<&[u8]>;
    /// The integer, if this is one.
    fn as_int(&self) -> Option<i64>;
}

impl BtValue for Value {
    fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Group messages (any member writes).
pub const NS_MESSAGES: i16 = 11;
/// Keys messages (admins write).
pub const NS_KEYS: i16 = 12;
/// The info config (admins write).
pub const NS_INFO: i16 = 13;
/// The members config (admins write).
pub const NS_MEMBERS: i16 = 14;
/// Kicked notices (admins write; still readable with a revoked subaccount).
pub const NS_REVOKED_RETRIEVABLE: i16 = -11;
/// The namespaces a member polls, in the order desktop batches them.
pub const POLL_NAMESPACES: [i16; 5] = [
    NS_REVOKED_RETRIEVABLE,
    NS_MESSAGES,
    NS_INFO,
    NS_MEMBERS,
    NS_KEYS,
];

/// TTL of group messages and control messages in ns 11, ms (14 days).
pub const MESSAGE_TTL_MS: u64 = 14 * 24 * 3600 * 1000;
/// TTL of keys, configs and kicked notices, ms (30 days).
pub const CONFIG_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// The admin's view of a group: its keypair from the 32-byte seed, and its ID.
///
/// `Debug` shows only the redacted group ID.
#[derive(Clone)]
pub struct GroupAdminKeys {
    keys: IdentityKeys,
    id: AccountId,
}

impl GroupAdminKeys {
    /// The group keypair from its seed (libsession accepts the seed or the 64-byte secret key;
    /// the second half of the latter is the public key, so the seed is enough).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let keys = IdentityKeys::from_seed(seed);
        let id = AccountId::new(Prefix::Group, *keys.ed25519_public());
        Self { keys, id }
    }

    /// A new group: a random seed.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        Self::from_seed(&seed)
    }

    /// The `03…` group ID.
    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// The group's Ed25519 public key (the ID without `03`).
    pub fn public_key(&self) -> &[u8; 32] {
        self.keys.ed25519_public()
    }

    /// The 32-byte seed (secret: it makes its holder an admin).
    pub fn seed(&self) -> &[u8; 32] {
        self.keys.seed()
    }

    /// The group's keys as an identity: Ed25519 signing, and the X25519 pair
    /// (`ed_sk_to_curve25519`, `ed_pk_to_curve25519`) used for per-member boxes.
    pub fn keys(&self) -> &IdentityKeys {
        &self.keys
    }

    /// `BLAKE2b-256(seed32, key = tag)`: the admin-only secrets (groups.md §3 "seed_hash").
    pub fn seed_hash(&self, tag: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake2b_256_keyed(tag, &[self.keys.seed()]))
    }
}

impl PartialEq for GroupAdminKeys {
    /// Same group: the ID follows from the seed.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for GroupAdminKeys {}

impl std::fmt::Debug for GroupAdminKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAdminKeys")
            .field("id", &self.id.redacted())
            .finish_non_exhaustive()
    }
}

/// The group's Ed25519 public key from an `03…` ID, checked to be a usable point.
pub fn group_public_key(id: &AccountId) -> Result<[u8; 32], GroupError> {
    if id.prefix_byte() != Prefix::Group.byte() {
        return Err(GroupError::NotAGroupId {
            prefix: id.prefix_byte(),
        });
    }
    crate::keys::ed25519_pk_to_x25519(id.key()).map_err(GroupError::BadGroupKey)?;
    Ok(*id.key())
}

macro_rules! keyed_blake2b {
    ($(#[$doc:meta] $name:ident, $size:ty, $n:literal;)*) => {$(
        #[$doc]
        pub(crate) fn $name(key: &[u8], parts: &[&[u8]]) -> [u8; $n] {
            let mut mac = <Blake2bMac<$size> as Mac>::new_from_slice(key)
                .expect("every key used here is at most 64 bytes");
            for p in parts {
                Mac::update(&mut mac, p);
            }
            mac.finalize_fixed().into()
        }
    )*};
}

keyed_blake2b! {
    /// Keyed BLAKE2b-256 of the concatenation of `parts`.
    blake2b_256_keyed, U32, 32;
    /// Keyed BLAKE2b-192 (24-byte nonces).
    blake2b_192_keyed, U24, 24;
    /// Keyed BLAKE2b-448 (the key and nonce of a rekey).
    blake2b_448_keyed, U56, 56;
    /// Keyed BLAKE2b-512 (scalars before reduction).
    blake2b_512_keyed, U64, 64;
}

#[cfg(test)]
pub(crate) mod test_vectors {
    //! The group vectors (copied from the spec into `tests/data`).
    use serde_json::Value;

    pub const LIBSESSION: &str = include_str!("../tests/data/groups-libsession-tests.json");
    pub const DERIVED: &str = include_str!("../tests/data/groups-derived.json");

    pub fn libsession(name: &str) -> Value {
        let doc: Value = serde_json::from_str(LIBSESSION).expect("vector JSON");
        doc["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    pub fn derived() -> Value {
        serde_json::from_str(DERIVED).expect("vector JSON")
    }

    pub fn hex(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().expect("hex string")).expect("hex")
    }

    pub fn hex32(v: &Value) -> [u8; 32] {
        hex(v).try_into().expect("32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::test_vectors::*;
    use super::*;

    #[test]
    fn group_keypair_and_id_from_seed() {
        let v = libsession("group_keypair_from_seed");
        let g = GroupAdminKeys::from_seed(&hex32(&v["group_seed"]));
        assert_eq!(hex::encode(g.public_key()), v["group_ed25519_pk"]);
        assert_eq!(g.id().to_string(), v["group_id"]);
        assert_eq!(group_public_key(g.id()).expect("group id"), *g.public_key());
        let v = libsession("group_info_test_keypair");
        let g = GroupAdminKeys::from_seed(&hex32(&v["seed"]));
        assert_eq!(hex::encode(g.public_key()), v["ed25519_pk"]);
        assert!(!format!("{g:?}").contains(&g.id().to_string()));
    }

    #[test]
    fn member_session_ids() {
        let v = libsession("member_session_ids");
        for (seed, sid) in v["seeds_to_session_id"].as_object().expect("map") {
            let keys = IdentityKeys::from_seed(&hex32(&Value::String(seed.clone())));
            assert_eq!(&keys.account_id().to_string(), sid);
        }
    }

    #[test]
    fn group_public_key_refuses_other_ids() {
        let keys = IdentityKeys::from_seed(&[1; 32]);
        assert!(matches!(
            group_public_key(keys.account_id()),
            Err(GroupError::NotAGroupId { prefix: 5 })
        ));
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        let id = AccountId::new(Prefix::Group, not_a_point);
        assert!(matches!(
            group_public_key(&id),
            Err(GroupError::BadGroupKey(_))
        ));
    }
    use serde_json::Value;
}
