//! Group messages (group ns 11): every member posts with the current group key and signs with
//! its own Ed25519 key (groups.md §4).
//!
//! Byte layout (the `data` of a `store`, before base64):
//! ```text
//! CT     = nonce24 ‖ XChaCha20-Poly1305(group_key, nonce, PADDED)
//! PADDED = BT ‖ 00… so that 24 + 16 + len(PADDED) is a multiple of 256
//! BT     = d 0: i1e  1:a 32:sender_ed_pk  (1:d <DATA> | 1:s 64:SIG 1:z <zstd(DATA)>)  e
//! SIG    = Ed25519(raw ‖ group_ed_pk, sender)      raw = the d or z bytes (2025 rule)
//! DATA   = Envelope{type 7, timestamp, sourceDevice 1, content = Content bytes, proSig}
//! ```
//! Only the 2025 signature form (covering the group key, so a member cannot replay another
//! member's message into a different group) is accepted.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message as _;
use rand_core::CryptoRngCore;

use super::keys::{GroupKey, GroupKeys};
use super::{bt_decode, BtValue};
use crate::account_id::AccountId;
use crate::config::bt::{Dict, Value};
use crate::err::GroupError;
use crate::keys::{ed25519_point_to_x25519, IdentityKeys};
use crate::protos::{envelope, Content, Envelope};

/// Largest `DATA` (and decompressed `DATA`) accepted, bytes.
pub const MAX_PLAINTEXT: usize = 1_000_000;
/// zstd level of the compression attempt (libsession's default).
const ZSTD_LEVEL: i32 = 1;
/// Nonce + tag.
pub const OVERHEAD: usize = 24 + 16;
/// The padding block, counted with [`OVERHEAD`].
pub const PADDING: usize = 256;

const WHAT: &str = "group message";

fn invalid(reason: &'static str) -> GroupError {
    GroupError::Invalid { what: WHAT, reason }
}

/// Encrypts `data` (Envelope bytes) from `sender` for the group `group_pk` under `key`;
/// `compress` tries zstd and keeps it only when smaller. `rng` gives the nonce.
pub fn encrypt_group_data(
    sender: &IdentityKeys,
    group_pk: &[u8; 32],
    key: &GroupKey,
    data: &[u8],
    compress: bool,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, GroupError> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    encrypt_group_data_with_nonce(sender, group_pk, key.key(), data, compress, &nonce)
}

/// [`encrypt_group_data`] with a given nonce and raw key (reproducible; tests and vectors).
pub fn encrypt_group_data_with_nonce(
    sender: &IdentityKeys,
    group_pk: &[u8; 32],
    key: &[u8; 32],
    data: &[u8],
    compress: bool,
    nonce: &[u8; 24],
) -> Result<Vec<u8>, GroupError> {
    if data.is_empty() {
        return Err(invalid("nothing to send"));
    }
    if data.len() > MAX_PLAINTEXT {
        return Err(GroupError::TooLarge {
            what: WHAT,
            max: MAX_PLAINTEXT,
        });
    }
    let compressed = compress
        .then(|| zstd::bulk::compress(data, ZSTD_LEVEL).ok())
        .flatten()
        .filter(|z| z.len() < data.len());
    let (field, raw): (&[u8], &[u8]) = match &compressed {
        Some(z) => (b"z", z),
        None => (b"d", data),
    };
    let sig = sender.sign_parts(&[raw, group_pk]);
    let mut d = Dict::new();
    d.insert(b"".to_vec(), Value::Int(1));
    d.insert(
        b"a".to_vec(),
        Value::Bytes(sender.ed25519_public().to_vec()),
    );
    d.insert(field.to_vec(), Value::Bytes(raw.to_vec()));
    d.insert(b"s".to_vec(), Value::Bytes(sig.to_bytes().to_vec()));
    let mut plain = Value::Dict(d).encode();
    let total = (plain.len() + OVERHEAD).div_ceil(PADDING) * PADDING;
    plain.resize(total - OVERHEAD, 0);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(nonce), plain.as_slice())
        .map_err(|_| GroupError::TooLarge {
            what: WHAT,
            max: MAX_PLAINTEXT,
        })?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// A decrypted group message before its Envelope is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupData {
    /// The sender: `05 ‖ X25519(a)`.
    pub sender: AccountId,
    /// The sender's Ed25519 key (`a`).
    pub sender_ed25519: [u8; 32],
    /// The Envelope bytes (decompressed).
    pub data: Vec<u8>,
    /// The generation of the key that opened it.
    pub generation: u64,
}

/// Decrypts and verifies a group message with the keys we hold (pending first, then newest
/// to oldest).
pub fn decrypt_group_data(keys: &GroupKeys, ciphertext: &[u8]) -> Result<GroupData, GroupError> {
    if ciphertext.len() < OVERHEAD + 1 {
        return Err(GroupError::TooShort {
            what: WHAT,
            len: ciphertext.len(),
            min: OVERHEAD + 1,
        });
    }
    let (nonce, ct) = ciphertext.split_at(24);
    let nonce = XNonce::from_slice(nonce);
    let (mut plain, generation) = keys
        .decryption_keys()
        .find_map(|k| {
            XChaCha20Poly1305::new(k.key().into())
                .decrypt(nonce, ct)
                .ok()
                .map(|p| (p, k.generation))
        })
        .ok_or(GroupError::Decrypt { what: WHAT })?;
    let end = plain.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    plain.truncate(end);
    let Value::Dict(d) = bt_decode(&plain)? else {
        return Err(invalid("not a dict"));
    };
    if d.get(&b""[..]).and_then(Value::as_int) != Some(1) {
        return Err(invalid("unknown version (\"\" must be 1)"));
    }
    let a: [u8; 32] = d
        .get(&b"a"[..])
        .and_then(Value::as_bytes)
        .and_then(|a| a.try_into().ok())
        .ok_or(invalid("a must be a 32-byte key"))?;
    let sig: [u8; 64] = d
        .get(&b"s"[..])
        .and_then(Value::as_bytes)
        .and_then(|s| s.try_into().ok())
        .ok_or(invalid("s must be a 64-byte signature"))?;
    let (raw, compressed) = match (d.get(&b"d"[..]), d.get(&b"z"[..])) {
        (Some(Value::Bytes(raw)), None) => (raw, false),
        (None, Some(Value::Bytes(raw))) => (raw, true),
        _ => return Err(invalid("exactly one of d and z must be a string")),
    };
    if raw.is_empty() {
        return Err(invalid("empty payload"));
    }
    let vk = VerifyingKey::from_bytes(&a).map_err(|_| invalid("a is not a key"))?;
    let mut signed = Vec::with_capacity(raw.len() + 32);
    signed.extend_from_slice(raw);
    signed.extend_from_slice(keys.group_public_key());
    vk.verify_strict(&signed, &Signature::from_bytes(&sig))
        .map_err(|_| GroupError::BadSignature { what: WHAT })?;
    let sender_x =
        ed25519_point_to_x25519(&vk.to_edwards()).map_err(|_| GroupError::BadMember {
            reason: "the sender key has no X25519 form",
        })?;
    let data = if compressed {
        decompress(raw)?
    } else {
        raw.clone()
    };
    Ok(GroupData {
        sender: AccountId::standard(sender_x),
        sender_ed25519: a,
        data,
        generation,
    })
}

/// zstd-decompresses (the config module's bounded decoder), then holds the group limit.
fn decompress(z: &[u8]) -> Result<Vec<u8>, GroupError> {
    let out =
        crate::config::crypt::decompress(z).map_err(|_| GroupError::Decompress { what: WHAT })?;
    if out.len() > MAX_PLAINTEXT {
        return Err(GroupError::TooLarge {
            what: "decompressed group message",
            max: MAX_PLAINTEXT,
        });
    }
    Ok(out)
}

/// The Envelope a group message carries: type 7, the sent time, device 1, the Content bytes,
/// and a 64-byte `proSig` (random decoy without Session Pro). `sigTimestamp` is set to the
/// sent time, as the one-to-one rule requires.
pub fn group_envelope(content: &Content, timestamp_ms: u64, pro_sig: Option<[u8; 64]>) -> Vec<u8> {
    let mut content = content.clone();
    content.sig_timestamp = Some(timestamp_ms);
    Envelope {
        r#type: envelope::Type::ClosedGroupMessage as i32,
        source: None,
        timestamp: timestamp_ms,
        source_device: Some(1),
        content: Some(content.encode_to_vec()),
        server_timestamp: None,
        pro_sig: pro_sig.map(|s| s.to_vec()),
    }
    .encode_to_vec()
}

/// Builds, encrypts and signs `content` for the group with our current key.
pub fn encrypt_group_message(
    sender: &IdentityKeys,
    keys: &GroupKeys,
    content: &Content,
    timestamp_ms: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, GroupError> {
    let key = keys.encryption_key().ok_or(GroupError::NoKey)?;
    let mut decoy = [0u8; 64];
    rng.fill_bytes(&mut decoy);
    let data = group_envelope(content, timestamp_ms, Some(decoy));
    encrypt_group_data(sender, keys.group_public_key(), key, &data, true, rng)
}

/// A group message as read: the verified sender and the Content.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMessage {
    /// The sender's `05` Account ID (from the signing key).
    pub sender: AccountId,
    /// The sender's Ed25519 key.
    pub sender_ed25519: [u8; 32],
    /// `Envelope.timestamp`, ms: the sent time, and the `ts` of admin signatures (§6).
    pub envelope_timestamp: u64,
    /// The Content.
    pub content: Content,
    /// The key generation that opened it.
    pub generation: u64,
}

/// Decrypts, verifies and parses a group message: the Envelope rules of one-to-one messages
/// apply (`source` empty or 66 hex, `proSig` 64 bytes, `sigTimestamp` equal to the Envelope
/// timestamp when both are set).
pub fn decrypt_group_message(
    keys: &GroupKeys,
    ciphertext: &[u8],
) -> Result<GroupMessage, GroupError> {
    let g = decrypt_group_data(keys, ciphertext)?;
    let env = Envelope::decode(g.data.as_slice()).map_err(|e| GroupError::Protobuf {
        what: "Envelope",
        reason: e.to_string(),
    })?;
    if let Some(source) = &env.source {
        let ok = source.is_empty()
            || (source.len() == AccountId::HEX_LEN
                && source.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(invalid(
                "Envelope source must be empty or 66 hex characters",
            ));
        }
    }
    if env.pro_sig.as_ref().is_some_and(|s| s.len() != 64) {
        return Err(invalid("Envelope proSig must be 64 bytes"));
    }
    let bytes = env
        .content
        .as_deref()
        .ok_or(invalid("Envelope has no content"))?;
    let content = Content::decode(bytes).map_err(|e| GroupError::Protobuf {
        what: "Content",
        reason: e.to_string(),
    })?;
    if let Some(ts) = content.sig_timestamp {
        if ts != 0 && env.timestamp != 0 && ts != env.timestamp {
            return Err(invalid(
                "Content sigTimestamp differs from the Envelope timestamp",
            ));
        }
    }
    Ok(GroupMessage {
        sender: g.sender,
        sender_ed25519: g.sender_ed25519,
        envelope_timestamp: env.timestamp,
        content,
        generation: g.generation,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::*;
    use super::super::GroupAdminKeys;
    use super::*;

    struct Setup {
        group: GroupAdminKeys,
        m1: IdentityKeys,
        m1_keys: GroupKeys,
        m2_keys: GroupKeys,
    }

    /// Member 1 and 2 with the gen-0 and gen-1 keys of the derived vectors (member 2 removed at 1).
    fn setup() -> Setup {
        let d = derived();
        let group = GroupAdminKeys::from_seed(&hex32(&d["inputs"]["group_seed"]));
        let admin = IdentityKeys::from_seed(&hex32(&d["inputs"]["admin_seed"]));
        let m1 = IdentityKeys::from_seed(&hex32(&d["inputs"]["member1_seed"]));
        let m2 = IdentityKeys::from_seed(&hex32(&d["inputs"]["member2_seed"]));
        let mut a = GroupKeys::for_admin(Some(&admin), group.clone()).expect("admin");
        let gen0 = a
            .rekey(&[*admin.account_id(), *m1.account_id(), *m2.account_id()])
            .expect("gen0");
        a.load_key_message("h0", &gen0, 1).expect("gen0");
        let gen1 = a
            .rekey(&[*admin.account_id(), *m1.account_id()])
            .expect("gen1");
        let mut m1_keys = GroupKeys::for_member(&m1, group.id()).expect("m1");
        let mut m2_keys = GroupKeys::for_member(&m2, group.id()).expect("m2");
        for k in [&mut m1_keys, &mut m2_keys] {
            k.load_key_message("h0", &gen0, 1).expect("gen0");
            k.load_key_message("h1", &gen1, 2).expect("gen1");
        }
        Setup {
            group,
            m1,
            m1_keys,
            m2_keys,
        }
    }

    #[test]
    fn derived_group_message_vector_both_signature_forms() {
        let s = setup();
        let v = &derived()["group_message"];
        let content = Content::decode(hex(&v["content_hex"]).as_slice()).expect("content");
        let env = group_envelope(&content, 1_700_000_000_000, None);
        assert_eq!(hex::encode(&env), v["envelope_hex"]);
        let nonce: [u8; 24] = hex(&v["nonce_fixed_for_test"]).try_into().expect("24");
        let key = hex32(&v["group_enc_key"]);
        let ct =
            encrypt_group_data_with_nonce(&s.m1, s.group.public_key(), &key, &env, false, &nonce)
                .expect("encrypt");
        assert_eq!(hex::encode(&ct), v["ciphertext_sig_with_group_pk_hex"]);
        assert_eq!(ct.len(), 256);

        let msg = decrypt_group_message(&s.m1_keys, &ct).expect("decrypts");
        assert_eq!(msg.sender, *s.m1.account_id());
        assert_eq!(msg.envelope_timestamp, 1_700_000_000_000);
        assert_eq!(
            msg.content.data_message.and_then(|d| d.body).as_deref(),
            Some("hello group")
        );
        assert_eq!(msg.generation, 1);
        // Member 2 was removed before generation 1: cannot read it.
        assert_eq!(
            decrypt_group_message(&s.m2_keys, &ct),
            Err(GroupError::Decrypt { what: WHAT })
        );
        // The pre-2025 form (signature over the payload only) is refused.
        let legacy = hex(&v["ciphertext_legacy_sig_plaintext_only_hex"]);
        assert_eq!(
            decrypt_group_message(&s.m1_keys, &legacy),
            Err(GroupError::BadSignature { what: WHAT })
        );
    }

    #[test]
    fn round_trip_with_compression_and_padding() {
        let s = setup();
        let mut rng = rand::rngs::OsRng;
        let long = "the same words again and again ".repeat(200);
        for body in ["hi", long.as_str()] {
            let content = crate::message::text_content(body, Some("Member One"), 42);
            let ct = encrypt_group_message(&s.m1, &s.m1_keys, &content, 42, &mut rng).expect("enc");
            assert_eq!(ct.len() % PADDING, 0);
            let msg = decrypt_group_message(&s.m1_keys, &ct).expect("dec");
            assert_eq!(
                msg.content.data_message.and_then(|d| d.body).as_deref(),
                Some(body)
            );
            assert_eq!(msg.content.sig_timestamp, Some(42));
            assert_eq!(msg.generation, 1);
        }
        // The long one went compressed: smaller than its text.
        let content = crate::message::text_content(&long, None, 42);
        let ct = encrypt_group_message(&s.m1, &s.m1_keys, &content, 42, &mut rng).expect("enc");
        assert!(ct.len() < long.len());
    }

    /// A message built by hand with chosen fields, encrypted with generation 1's key.
    fn craft(s: &Setup, f: impl FnOnce(&mut Dict)) -> Vec<u8> {
        let key = s.m1_keys.encryption_key().expect("key").key();
        let env = group_envelope(&crate::message::text_content("x", None, 5), 5, None);
        let good =
            encrypt_group_data_with_nonce(&s.m1, s.group.public_key(), key, &env, false, &[0; 24])
                .expect("enc");
        let plain = XChaCha20Poly1305::new(key.into())
            .decrypt(XNonce::from_slice(&[0; 24]), &good[24..])
            .expect("own message");
        let end = plain.iter().rposition(|&b| b != 0).expect("content") + 1;
        let Value::Dict(mut d) = Value::decode(&plain[..end]).expect("bt") else {
            panic!("dict")
        };
        f(&mut d);
        let body = Value::Dict(d).encode();
        let ct = XChaCha20Poly1305::new(key.into())
            .encrypt(XNonce::from_slice(&[0; 24]), body.as_slice())
            .expect("enc");
        [&[0u8; 24][..], &ct].concat()
    }

    #[test]
    fn forged_replayed_and_malformed_messages() {
        let s = setup();
        let other = IdentityKeys::from_seed(&[77; 32]);
        // Forged sender: member 2's key in `a`, member 1's signature.
        let forged = craft(&s, |d| {
            d.insert(b"a".to_vec(), Value::Bytes(other.ed25519_public().to_vec()));
        });
        assert_eq!(
            decrypt_group_message(&s.m1_keys, &forged),
            Err(GroupError::BadSignature { what: WHAT })
        );
        // Replayed into another group: same bytes re-encrypted under group 2's key. The
        // signature covers group 1's key, so group 2 refuses it.
        let g2 = GroupAdminKeys::from_seed(&[55; 32]);
        let mut g2_keys = GroupKeys::for_admin(Some(&s.m1), g2.clone()).expect("g2");
        g2_keys.rekey(&[*s.m1.account_id()]).expect("rekey");
        let key1 = s.m1_keys.encryption_key().expect("key").key();
        let ct = craft(&s, |_| {});
        let plain = XChaCha20Poly1305::new(key1.into())
            .decrypt(XNonce::from_slice(&ct[..24]), &ct[24..])
            .expect("own");
        let key2 = g2_keys.encryption_key().expect("key").key();
        let replay = [
            &[0u8; 24][..],
            &XChaCha20Poly1305::new(key2.into())
                .encrypt(XNonce::from_slice(&[0; 24]), plain.as_slice())
                .expect("enc"),
        ]
        .concat();
        assert_eq!(
            decrypt_group_message(&g2_keys, &replay),
            Err(GroupError::BadSignature { what: WHAT })
        );
        // Structure: version, sizes, both/neither payloads, empty payload, bad zstd.
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "version 2",
                craft(&s, |d| {
                    d.insert(b"".to_vec(), Value::Int(2));
                }),
            ),
            (
                "short a",
                craft(&s, |d| {
                    d.insert(b"a".to_vec(), Value::Bytes(vec![1; 31]));
                }),
            ),
            (
                "short s",
                craft(&s, |d| {
                    d.insert(b"s".to_vec(), Value::Bytes(vec![1; 63]));
                }),
            ),
            (
                "d and z",
                craft(&s, |d| {
                    d.insert(b"z".to_vec(), Value::Bytes(vec![1; 3]));
                }),
            ),
            (
                "neither",
                craft(&s, |d| {
                    d.remove(&b"d"[..]);
                }),
            ),
            (
                "empty d",
                craft(&s, |d| {
                    d.insert(b"d".to_vec(), Value::Bytes(vec![]));
                }),
            ),
        ];
        for (name, ct) in cases {
            let r = decrypt_group_message(&s.m1_keys, &ct);
            assert!(
                matches!(r, Err(GroupError::Invalid { .. })),
                "{name}: {r:?}"
            );
        }
        // A z payload that is not zstd (signed properly, so only decompression fails).
        let key = s.m1_keys.encryption_key().expect("key").key();
        let bad_z = {
            let junk = b"definitely not zstd".to_vec();
            let sig = s.m1.sign_parts(&[&junk, s.group.public_key()]);
            let mut d = Dict::new();
            d.insert(b"".to_vec(), Value::Int(1));
            d.insert(b"a".to_vec(), Value::Bytes(s.m1.ed25519_public().to_vec()));
            d.insert(b"s".to_vec(), Value::Bytes(sig.to_bytes().to_vec()));
            d.insert(b"z".to_vec(), Value::Bytes(junk));
            let body = Value::Dict(d).encode();
            let ct = XChaCha20Poly1305::new(key.into())
                .encrypt(XNonce::from_slice(&[0; 24]), body.as_slice())
                .expect("enc");
            [&[0u8; 24][..], &ct].concat()
        };
        assert!(matches!(
            decrypt_group_message(&s.m1_keys, &bad_z),
            Err(GroupError::Decompress { .. })
        ));
        // Too short, altered, garbage.
        assert!(matches!(
            decrypt_group_message(&s.m1_keys, &[0; 40]),
            Err(GroupError::TooShort { .. })
        ));
        let mut altered = craft(&s, |_| {});
        altered[30] ^= 1;
        assert_eq!(
            decrypt_group_message(&s.m1_keys, &altered),
            Err(GroupError::Decrypt { what: WHAT })
        );
        // No key yet: cannot send.
        let empty = GroupKeys::for_member(&s.m1, s.group.id()).expect("keys");
        let mut rng = rand::rngs::OsRng;
        let content = crate::message::text_content("x", None, 1);
        assert_eq!(
            encrypt_group_message(&s.m1, &empty, &content, 1, &mut rng),
            Err(GroupError::NoKey)
        );
    }

    #[test]
    fn bad_envelopes_inside_a_valid_message() {
        let s = setup();
        let key = *s.m1_keys.encryption_key().expect("key").key();
        let seal = |env: &[u8]| {
            encrypt_group_data_with_nonce(&s.m1, s.group.public_key(), &key, env, false, &[3; 24])
                .expect("enc")
        };
        let content = crate::message::text_content("x", None, 5);
        let base = Envelope {
            r#type: 7,
            source: None,
            timestamp: 5,
            source_device: Some(1),
            content: Some(content.encode_to_vec()),
            server_timestamp: None,
            pro_sig: None,
        };
        let mut e = base.clone();
        e.source = Some("05abc".into());
        assert!(decrypt_group_message(&s.m1_keys, &seal(&e.encode_to_vec())).is_err());
        let mut e = base.clone();
        e.pro_sig = Some(vec![0; 63]);
        assert!(decrypt_group_message(&s.m1_keys, &seal(&e.encode_to_vec())).is_err());
        let mut e = base.clone();
        e.content = None;
        assert!(decrypt_group_message(&s.m1_keys, &seal(&e.encode_to_vec())).is_err());
        let mut e = base.clone();
        e.timestamp = 6;
        let mut c = content.clone();
        c.sig_timestamp = Some(5);
        e.content = Some(c.encode_to_vec());
        assert!(decrypt_group_message(&s.m1_keys, &seal(&e.encode_to_vec())).is_err());
        assert!(matches!(
            decrypt_group_message(&s.m1_keys, &seal(b"\xff\xff\xff")),
            Err(GroupError::Protobuf { .. })
        ));
        assert!(decrypt_group_message(&s.m1_keys, &seal(&base.encode_to_vec())).is_ok());
    }
}
