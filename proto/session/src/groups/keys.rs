//! Keys messages (group ns 12) and the set of group keys a member or admin holds (groups.md §3).
//!
//! A keys message is a bt dict signed by the group key, not encrypted as a whole:
//! - full rekey: `d 1:# nonce24 1:G gen 1:K adminbox48 1:k [memberbox48 × 75n] 1:~ sig64 e`;
//!   `K` opens with `seed_hash("SessionGroupKeyAdminKey")`, each `k` entry with a member's
//!   multi-recipient key (domain `SessionGroupKeyMemberKey`); the list is padded with
//!   deterministic junk to a multiple of 75;
//! - supplement (invite with history): `d 1:# nonce24 1:+ [box…] 1:G maxgen 1:~ sig64 e`, each
//!   box holding the bt list `[{g, k, t}…]` of every key the admin keeps.
//!
//! The signature covers the bytes up to (not including) `1:~64:`.
//!
//! [`GroupKeys`] is the state machine: feed every retrieved ns-12 message to
//! [`GroupKeys::load_key_message`] (before the other namespaces of the same poll, since the
//! keys they need may be new), then use [`GroupKeys::encryption_key`] to send and
//! [`GroupKeys::decryption_keys`] to read. Admins call [`GroupKeys::rekey`] and store the result
//! first in the `sequence` that pushes configs; the pending key is used at once and is settled
//! when its message comes back from the swarm.

use std::collections::{BTreeMap, BTreeSet};

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use zeroize::Zeroizing;

use super::multi::encrypt_for_multiple;
use super::{blake2b_192_keyed, blake2b_256_keyed, blake2b_448_keyed, GroupAdminKeys};
use super::{bt_decode, BtValue};
use crate::account_id::{AccountId, Prefix};
use crate::config::bt::{encode_bytes, Dict, Value};
use crate::err::GroupError;
use crate::keys::{ed25519_pk_to_x25519, IdentityKeys};

/// Member boxes are padded with junk to a multiple of this.
pub const MESSAGE_KEY_MULTIPLE: usize = 75;
/// A generation is dropped once the next one has been around this long (60 days, ms).
pub const KEY_EXPIRY_MS: u64 = 60 * 24 * 3600 * 1000;
/// The multi-recipient domain of member boxes.
pub const MEMBER_KEY_DOMAIN: &[u8] = b"SessionGroupKeyMemberKey";

const WHAT: &str = "keys message";
const BOX_LEN: usize = 32 + 16;
/// Bytes of `1:~64:<sig>e` at the end of a signed message.
const SIG_TAIL: usize = 6 + 64 + 1;

fn invalid(reason: &'static str) -> GroupError {
    GroupError::Invalid { what: WHAT, reason }
}

/// One group encryption key. Ordered by (generation, timestamp, key bytes), as kept.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey {
    /// Its generation (0 for a new group, +1 per rekey).
    pub generation: u64,
    /// When it appeared: the swarm timestamp of its full message, or `t` of a supplement, ms.
    pub timestamp_ms: u64,
    key: Zeroizing<[u8; 32]>,
}

impl GroupKey {
    /// The 32-byte XChaCha20-Poly1305 key (secret).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }
}

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.generation, self.timestamp_ms, &self.key[..]).cmp(&(
            other.generation,
            other.timestamp_ms,
            &other.key[..],
        ))
    }
}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupKey")
            .field("generation", &self.generation)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish_non_exhaustive()
    }
}

/// What loading one keys message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysLoad {
    /// It carried keys for us; `generation` is the highest of them.
    Loaded {
        /// The highest generation in the message.
        generation: u64,
    },
    /// Valid, but holds no key for us (we are not in that generation, or not yet).
    NotForUs {
        /// The message's generation (`G`).
        generation: u64,
    },
}

/// The keys of one group as held by a member or an admin. See the module docs for the order
/// of calls.
pub struct GroupKeys {
    group_pk: [u8; 32],
    group_x: [u8; 32],
    verifier: VerifyingKey,
    /// Our own keys (absent for an admin-only holder such as a test harness).
    own: Option<IdentityKeys>,
    admin: Option<GroupAdminKeys>,
    /// Sorted by (generation, timestamp, key).
    keys: Vec<GroupKey>,
    /// An admin's rekey that has not come back from the swarm yet.
    pending: Option<GroupKey>,
    /// Hashes of the keys messages that carry each kept generation.
    active: BTreeMap<u64, BTreeSet<String>>,
}

impl std::fmt::Debug for GroupKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupKeys")
            .field("admin", &self.admin.is_some())
            .field("keys", &self.keys.len())
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl GroupKeys {
    /// A member's (empty) key set for the group `group_id`.
    pub fn for_member(own: &IdentityKeys, group_id: &AccountId) -> Result<Self, GroupError> {
        let group_pk = super::group_public_key(group_id)?;
        Self::new(group_pk, Some(own.clone()), None)
    }

    /// An admin's (empty) key set. `own` is the admin's own identity, if it is also a member.
    pub fn for_admin(
        own: Option<&IdentityKeys>,
        admin: GroupAdminKeys,
    ) -> Result<Self, GroupError> {
        let group_pk = *admin.public_key();
        Self::new(group_pk, own.cloned(), Some(admin))
    }

    fn new(
        group_pk: [u8; 32],
        own: Option<IdentityKeys>,
        admin: Option<GroupAdminKeys>,
    ) -> Result<Self, GroupError> {
        let group_x = ed25519_pk_to_x25519(&group_pk).map_err(GroupError::BadGroupKey)?;
        let verifier = VerifyingKey::from_bytes(&group_pk)
            .map_err(|_| GroupError::BadGroupKey(crate::err::KeyError::NotAPoint))?;
        Ok(Self {
            group_pk,
            group_x,
            verifier,
            own,
            admin,
            keys: Vec::new(),
            pending: None,
            active: BTreeMap::new(),
        })
    }

    /// Becomes an admin (a promotion gave us the seed). The seed must be this group's.
    pub fn load_admin_key(&mut self, seed: &[u8; 32]) -> Result<(), GroupError> {
        let admin = GroupAdminKeys::from_seed(seed);
        if admin.public_key() != &self.group_pk {
            return Err(GroupError::Invalid {
                what: "group seed",
                reason: "the seed is for another group",
            });
        }
        self.admin = Some(admin);
        Ok(())
    }

    /// The admin keys, if we are an admin.
    pub fn admin(&self) -> Option<&GroupAdminKeys> {
        self.admin.as_ref()
    }

    /// The group's Ed25519 public key.
    pub fn group_public_key(&self) -> &[u8; 32] {
        &self.group_pk
    }

    /// The key to encrypt with: an admin's pending key, else the newest kept one.
    pub fn encryption_key(&self) -> Option<&GroupKey> {
        self.pending.as_ref().or(self.keys.last())
    }

    /// Every key to try when decrypting: the pending key first, then newest to oldest.
    pub fn decryption_keys(&self) -> impl Iterator<Item = &GroupKey> {
        self.pending.iter().chain(self.keys.iter().rev())
    }

    /// The newest generation we hold (pending included), if any.
    pub fn current_generation(&self) -> Option<u64> {
        self.encryption_key().map(|k| k.generation)
    }

    /// Two different keys share the top generation (admins rekeyed at once): an admin should
    /// rekey again.
    pub fn needs_rekey(&self) -> bool {
        self.admin.is_some()
            && matches!(self.keys.as_slice(), [.., a, b] if a.generation == b.generation)
    }

    /// Hashes of the keys messages that carry the generations we keep (to keep alive).
    pub fn active_hashes(&self) -> BTreeSet<&str> {
        self.active
            .values()
            .flat_map(|s| s.iter().map(String::as_str))
            .collect()
    }

    /// Loads one retrieved keys message. `hash` is its swarm hash and `timestamp_ms` its swarm
    /// timestamp (the key's timestamp for a full message). An invalid message is refused as a
    /// whole; a valid one without a key for us gives [`KeysLoad::NotForUs`].
    pub fn load_key_message(
        &mut self,
        hash: &str,
        data: &[u8],
        timestamp_ms: u64,
    ) -> Result<KeysLoad, GroupError> {
        let d = parse_signed(data, &self.verifier)?;
        let nonce: [u8; 24] = d
            .get(&b"#"[..])
            .and_then(Value::as_bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or(invalid("# must be a 24-byte nonce"))?;
        let member_key = self.own.as_ref().map(|own| {
            let shared = own.x25519_dh(&self.group_x);
            Zeroizing::new(blake2b_256_keyed(
                MEMBER_KEY_DOMAIN,
                &[&shared[..], &self.group_x, own.x25519_public()],
            ))
        });
        let try_member = |ct: &[u8]| -> Option<Zeroizing<Vec<u8>>> {
            let mk = member_key.as_ref()?;
            XChaCha20Poly1305::new((&**mk).into())
                .decrypt(XNonce::from_slice(&nonce), ct)
                .ok()
                .map(Zeroizing::new)
        };

        let (new_keys, generation) = if let Some(supp) = d.get(&b"+"[..]) {
            let boxes = supp.as_list().ok_or(invalid("+ must be a list"))?;
            let max_gen = non_negative(d.get(&b"G"[..]), "G must be a generation")?;
            let mut found = None;
            for b in boxes {
                let ct = b.as_bytes().ok_or(invalid("+ entries must be strings"))?;
                if ct.len() < 52 + 16 {
                    return Err(invalid("a supplement entry is too short"));
                }
                if found.is_none() && self.admin.is_none() {
                    found = try_member(ct);
                }
            }
            let keys = match found {
                Some(plain) => parse_supplement(&plain)?,
                None => Vec::new(),
            };
            (keys, max_gen)
        } else {
            let gen = non_negative(d.get(&b"G"[..]), "G must be a generation")?;
            let admin_box = d
                .get(&b"K"[..])
                .and_then(Value::as_bytes)
                .filter(|k| k.len() == BOX_LEN)
                .ok_or(invalid("K must be a 48-byte box"))?;
            let boxes = d
                .get(&b"k"[..])
                .and_then(Value::as_list)
                .ok_or(invalid("k must be a list"))?;
            let mut found: Option<Zeroizing<Vec<u8>>> = None;
            if let Some(admin) = &self.admin {
                let ak = admin.seed_hash(b"SessionGroupKeyAdminKey");
                let plain = XChaCha20Poly1305::new((&*ak).into())
                    .decrypt(XNonce::from_slice(&nonce), admin_box)
                    .map_err(|_| GroupError::Decrypt {
                        what: "keys message admin key",
                    })?;
                found = Some(Zeroizing::new(plain));
            }
            for b in boxes {
                let ct = b
                    .as_bytes()
                    .filter(|c| c.len() == BOX_LEN)
                    .ok_or(invalid("k entries must be 48-byte boxes"))?;
                if found.is_none() {
                    found = try_member(ct);
                }
            }
            if boxes.len() % MESSAGE_KEY_MULTIPLE != 0 {
                return Err(invalid("member key list is not padded to a multiple of 75"));
            }
            let keys = match found {
                Some(plain) => {
                    let key: [u8; 32] = plain[..]
                        .try_into()
                        .map_err(|_| invalid("a key is not 32 bytes"))?;
                    vec![GroupKey {
                        generation: gen,
                        timestamp_ms,
                        key: Zeroizing::new(key),
                    }]
                }
                None => Vec::new(),
            };
            (keys, gen)
        };

        if let (Some(p), Some(first)) = (&self.pending, new_keys.first()) {
            if first.generation > p.generation || first.key == p.key {
                self.pending = None;
            }
        }
        if new_keys.is_empty() {
            self.active
                .entry(generation)
                .or_default()
                .insert(hash.to_owned());
            self.remove_expired();
            return Ok(KeysLoad::NotForUs { generation });
        }
        let top = new_keys.iter().map(|k| k.generation).max().unwrap_or(0);
        for k in new_keys {
            self.insert_key(hash, k);
        }
        Ok(KeysLoad::Loaded { generation: top })
    }

    fn insert_key(&mut self, hash: &str, new: GroupKey) {
        let same_gen = self
            .keys
            .iter()
            .any(|k| k.generation == new.generation && k.key == new.key);
        if same_gen {
            self.active
                .entry(new.generation)
                .or_default()
                .insert(hash.to_owned());
            return;
        }
        let at = self.keys.partition_point(|k| *k < new);
        if let ([front, .., back], 0) = (self.keys.as_slice(), at) {
            if new.generation < front.generation
                && front.timestamp_ms.saturating_add(KEY_EXPIRY_MS) < back.timestamp_ms
            {
                return; // older than a generation that has already expired
            }
        }
        self.active
            .entry(new.generation)
            .or_default()
            .insert(hash.to_owned());
        self.keys.insert(at, new);
        self.remove_expired();
    }

    fn remove_expired(&mut self) {
        if self.keys.len() >= 2 {
            let newest = self.keys.last().map_or(0, |k| k.timestamp_ms);
            let mut keep_from = 0;
            let mut i = 0;
            while i < self.keys.len() {
                // j: the first key of the next generation.
                let mut j = i + 1;
                while j < self.keys.len() && self.keys[j].generation == self.keys[i].generation {
                    j += 1;
                }
                if j == self.keys.len() {
                    break;
                }
                if self.keys[j].timestamp_ms.saturating_add(KEY_EXPIRY_MS) < newest {
                    keep_from = j;
                } else {
                    break;
                }
                i = j;
            }
            self.keys.drain(..keep_from);
        }
        match self.keys.first() {
            Some(first) => {
                let g = first.generation;
                self.active.retain(|&gen, _| gen >= g);
            }
            None => self.active.clear(),
        }
    }

    /// Admin: a full rekey for `members` (every member, admins included; duplicates ignored).
    /// Returns the message to store in ns 12 and makes its key pending: used for encryption at
    /// once, settled when the message is loaded back.
    pub fn rekey(&mut self, members: &[AccountId]) -> Result<Vec<u8>, GroupError> {
        let admin = self
            .admin
            .as_ref()
            .ok_or(GroupError::NotAdmin { what: "rekey" })?;
        let gen = self.current_generation().map_or(0, |g| g + 1);
        let (message, key) = build_rekey(admin, members, gen)?;
        self.pending = Some(GroupKey {
            generation: gen,
            timestamp_ms: self.keys.last().map_or(0, |k| k.timestamp_ms),
            key: Zeroizing::new(key),
        });
        Ok(message)
    }

    /// Admin: a supplemental message giving `recipients` every key we keep (invite with
    /// history). Recipients are hashed in the order given.
    pub fn key_supplement(&self, recipients: &[AccountId]) -> Result<Vec<u8>, GroupError> {
        let admin = self.admin.as_ref().ok_or(GroupError::NotAdmin {
            what: "key supplement",
        })?;
        if self.keys.is_empty() {
            return Err(GroupError::NoKey);
        }
        build_supplement(admin, recipients, &self.keys)
    }
}

fn non_negative(v: Option<&Value>, reason: &'static str) -> Result<u64, GroupError> {
    v.and_then(Value::as_int)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or(invalid(reason))
}

/// Decodes a signed bt dict and checks the group signature over everything before `1:~64:`.
fn parse_signed(data: &[u8], verifier: &VerifyingKey) -> Result<Dict, GroupError> {
    let Value::Dict(d) = bt_decode(data)? else {
        return Err(invalid("not a dict"));
    };
    let sig = match d.last_key_value() {
        Some((k, Value::Bytes(s))) if k == b"~" => {
            <[u8; 64]>::try_from(s.as_slice()).map_err(|_| invalid("~ must be 64 bytes"))?
        }
        _ => return Err(GroupError::BadSignature { what: WHAT }),
    };
    // Canonical and `~` last: the message ends with exactly `1:~64:<sig>e`.
    let signed = &data[..data.len() - SIG_TAIL];
    verifier
        .verify_strict(signed, &Signature::from_bytes(&sig))
        .map_err(|_| GroupError::BadSignature { what: WHAT })?;
    Ok(d)
}

/// Encodes `d` (which must not contain `~`) and appends the group signature as `~`.
fn sign_dict(admin: &GroupAdminKeys, d: Dict) -> Vec<u8> {
    let mut out = Value::Dict(d).encode();
    out.pop(); // the closing `e`
    let sig = admin.keys().sign(&out);
    encode_bytes(b"~", &mut out);
    encode_bytes(&sig.to_bytes(), &mut out);
    out.push(b'e');
    out
}

/// Sorted, de-duplicated `05` members and their X25519 keys.
fn member_keys(members: &[AccountId]) -> Result<Vec<AccountId>, GroupError> {
    let mut sorted: Vec<AccountId> = members.to_vec();
    if sorted.iter().any(|m| m.prefix() != Some(Prefix::Standard)) {
        return Err(GroupError::BadMember {
            reason: "members have 05 Account IDs",
        });
    }
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// libsodium `randombytes_buf_deterministic`: the ChaCha20 (IETF) keystream of `seed` under
/// the nonce `"LibsodiumDRG"`.
fn deterministic_bytes(seed: &[u8; 32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut c = chacha20::ChaCha20::new(seed.into(), b"LibsodiumDRG".into());
    c.apply_keystream(&mut out);
    out
}

fn build_rekey(
    admin: &GroupAdminKeys,
    members: &[AccountId],
    gen: u64,
) -> Result<(Vec<u8>, [u8; 32]), GroupError> {
    let members = member_keys(members)?;
    let h2 = admin.seed_hash(b"SessionGroupKeySeed");
    let hex_ids: Vec<String> = members.iter().map(ToString::to_string).collect();
    let gen_ascii = gen.to_string();
    let mut parts: Vec<&[u8]> = hex_ids.iter().map(String::as_bytes).collect();
    parts.push(gen_ascii.as_bytes());
    parts.push(&h2[..]);
    let h1 = Zeroizing::new(blake2b_448_keyed(b"SessionGroupKeyGen", &parts));
    let key: [u8; 32] = h1[..32]
        .try_into()
        .expect("56-byte hash has 32 first bytes");
    let nonce: [u8; 24] = h1[32..].try_into().expect("56 - 32 = 24 bytes");

    let ak = admin.seed_hash(b"SessionGroupKeyAdminKey");
    let admin_box = XChaCha20Poly1305::new((&*ak).into())
        .encrypt(XNonce::from_slice(&nonce), &key[..])
        .expect("a 32-byte plaintext always encrypts");
    let xs: Vec<[u8; 32]> = members.iter().map(|m| *m.key()).collect();
    let mut boxes = encrypt_for_multiple(
        admin.keys(),
        &xs,
        &vec![&key[..]; xs.len()],
        MEMBER_KEY_DOMAIN,
        &nonce,
    )?;
    let rem = boxes.len() % MESSAGE_KEY_MULTIPLE;
    if rem != 0 {
        let n_junk = MESSAGE_KEY_MULTIPLE - rem;
        let mut sk64 = Zeroizing::new([0u8; 64]);
        sk64[..32].copy_from_slice(admin.seed());
        sk64[32..].copy_from_slice(admin.public_key());
        let seed = Zeroizing::new(blake2b_256_keyed(
            b"SessionGroupJunkMembers",
            &[&h1[..], &sk64[..]],
        ));
        let junk = deterministic_bytes(&seed, BOX_LEN * n_junk);
        boxes.extend(junk.chunks(BOX_LEN).map(<[u8]>::to_vec));
    }
    let mut d = Dict::new();
    d.insert(b"#".to_vec(), Value::Bytes(nonce.to_vec()));
    d.insert(b"G".to_vec(), Value::Int(gen as i64));
    d.insert(b"K".to_vec(), Value::Bytes(admin_box));
    d.insert(
        b"k".to_vec(),
        Value::List(boxes.into_iter().map(Value::Bytes).collect()),
    );
    Ok((sign_dict(admin, d), key))
}

fn build_supplement(
    admin: &GroupAdminKeys,
    recipients: &[AccountId],
    keys: &[GroupKey],
) -> Result<Vec<u8>, GroupError> {
    if recipients.is_empty()
        || recipients
            .iter()
            .any(|m| m.prefix() != Some(Prefix::Standard))
    {
        return Err(GroupError::BadMember {
            reason: "a supplement needs one or more 05 recipients",
        });
    }
    let list = Value::List(
        keys.iter()
            .map(|k| {
                let mut d = Dict::new();
                d.insert(b"g".to_vec(), Value::Int(k.generation as i64));
                d.insert(b"k".to_vec(), Value::Bytes(k.key.to_vec()));
                d.insert(b"t".to_vec(), Value::Int(k.timestamp_ms as i64));
                Value::Dict(d)
            })
            .collect(),
    );
    let supp = Zeroizing::new(list.encode());
    let h2 = admin.seed_hash(b"SessionGroupKeySeed");
    let hex_ids: Vec<String> = recipients.iter().map(ToString::to_string).collect();
    let mut parts: Vec<&[u8]> = hex_ids.iter().map(String::as_bytes).collect();
    parts.push(&supp[..]);
    parts.push(&h2[..]);
    let nonce = blake2b_192_keyed(b"SessionGroupKeyGen", &parts);
    let xs: Vec<[u8; 32]> = recipients.iter().map(|m| *m.key()).collect();
    let boxes = encrypt_for_multiple(
        admin.keys(),
        &xs,
        &vec![&supp[..]; xs.len()],
        MEMBER_KEY_DOMAIN,
        &nonce,
    )?;
    let top = keys.iter().map(|k| k.generation).max().unwrap_or(0);
    let mut d = Dict::new();
    d.insert(b"#".to_vec(), Value::Bytes(nonce.to_vec()));
    d.insert(
        b"+".to_vec(),
        Value::List(boxes.into_iter().map(Value::Bytes).collect()),
    );
    d.insert(b"G".to_vec(), Value::Int(top as i64));
    Ok(sign_dict(admin, d))
}

fn parse_supplement(plain: &[u8]) -> Result<Vec<GroupKey>, GroupError> {
    let bad = |reason| GroupError::Invalid {
        what: "supplemental keys",
        reason,
    };
    let v = bt_decode(plain)?;
    let list = v.as_list().ok_or(bad("not a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let d = item.as_dict().ok_or(bad("entries must be dicts"))?;
        let generation = non_negative(d.get(&b"g"[..]), "g must be a generation")?;
        let timestamp_ms = non_negative(d.get(&b"t"[..]), "t must be a timestamp")?;
        let key: [u8; 32] = d
            .get(&b"k"[..])
            .and_then(Value::as_bytes)
            .and_then(|k| k.try_into().ok())
            .ok_or(bad("k must be 32 bytes"))?;
        out.push(GroupKey {
            generation,
            timestamp_ms,
            key: Zeroizing::new(key),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
