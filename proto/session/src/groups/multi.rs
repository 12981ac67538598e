//! Multi-recipient encryption (libsession `encrypt_for_multiple`) and the kicked notice that an
//! admin leaves in ns −11 for removed members (groups.md §6.6).
//!
//! Each recipient B gets `XChaCha20-Poly1305(msg, nonce, key)` with one shared nonce and
//! `key = BLAKE2b-256(X25519(a, B) ‖ A ‖ B, key = domain)`, A/a the sender's X25519 pair. The
//! "simple" encoding is the bt dict `{"#": nonce24, "e": [ct…]}`; a receiver tries its key on
//! every entry.
//!
//! Kicked notice: sender = the group's X25519 pair, domain `SessionGroupKickedMessage`,
//! plaintext `member_x25519_pk(32) ‖ ascii(generation)` where the generation is the group's
//! current one before the post-removal rekey.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;

use super::{blake2b_256_keyed, GroupAdminKeys};
use super::{bt_decode, BtValue};
use crate::account_id::{AccountId, Prefix};
use crate::config::bt::{Dict, Value};
use crate::err::GroupError;
use crate::keys::{ed25519_pk_to_x25519, IdentityKeys};

/// The domain of kicked notices.
pub const KICKED_DOMAIN: &[u8] = b"SessionGroupKickedMessage";

/// AEAD tag length.
const TAG: usize = 16;

fn pair_key(
    domain: &[u8],
    shared: &[u8; 32],
    sender_x: &[u8; 32],
    recipient_x: &[u8; 32],
) -> [u8; 32] {
    blake2b_256_keyed(domain, &[shared, sender_x, recipient_x])
}

/// Encrypts `messages[i]` for `recipients[i]` (X25519 keys) with one nonce, in order; one
/// message for everyone is the same call with the message repeated.
pub fn encrypt_for_multiple(
    sender: &IdentityKeys,
    recipients: &[[u8; 32]],
    messages: &[&[u8]],
    domain: &[u8],
    nonce: &[u8; 24],
) -> Result<Vec<Vec<u8>>, GroupError> {
    if recipients.len() != messages.len() {
        return Err(GroupError::Invalid {
            what: "multi-recipient message",
            reason: "one message per recipient",
        });
    }
    recipients
        .iter()
        .zip(messages)
        .map(|(b, m)| {
            let shared = sender.x25519_dh(b);
            let key = pair_key(domain, &shared, sender.x25519_public(), b);
            XChaCha20Poly1305::new(&key.into())
                .encrypt(XNonce::from_slice(nonce), *m)
                .map_err(|_| GroupError::TooLarge {
                    what: "multi-recipient message",
                    max: u32::MAX as usize,
                })
        })
        .collect()
}

/// The simple encoding: `d 1:# 24:nonce 1:e l ct… e e`.
pub fn encode_simple(nonce: &[u8; 24], ciphertexts: &[Vec<u8>]) -> Vec<u8> {
    let mut d = Dict::new();
    d.insert(b"#".to_vec(), Value::Bytes(nonce.to_vec()));
    d.insert(
        b"e".to_vec(),
        Value::List(ciphertexts.iter().cloned().map(Value::Bytes).collect()),
    );
    Value::Dict(d).encode()
}

/// Opens whichever entry of a simple-encoded message is ours: `own` is the recipient,
/// `sender_x` the sender's X25519 key. `None` if no entry is for us.
pub fn decrypt_simple(
    own: &IdentityKeys,
    sender_x: &[u8; 32],
    encoded: &[u8],
    domain: &[u8],
) -> Result<Option<Vec<u8>>, GroupError> {
    let invalid = |reason| GroupError::Invalid {
        what: "multi-recipient message",
        reason,
    };
    let v = bt_decode(encoded)?;
    let d = v.as_dict().ok_or(invalid("not a dict"))?;
    let nonce: [u8; 24] = d
        .get(&b"#"[..])
        .and_then(Value::as_bytes)
        .and_then(|b| b.try_into().ok())
        .ok_or(invalid("# must be a 24-byte nonce"))?;
    let entries = d
        .get(&b"e"[..])
        .and_then(Value::as_list)
        .ok_or(invalid("e must be a list"))?;
    let shared = own.x25519_dh(sender_x);
    let key = pair_key(domain, &shared, sender_x, own.x25519_public());
    let aead = XChaCha20Poly1305::new(&key.into());
    for e in entries {
        let ct = e.as_bytes().ok_or(invalid("entries must be strings"))?;
        if ct.len() < TAG {
            continue;
        }
        if let Ok(pt) = aead.decrypt(XNonce::from_slice(&nonce), ct) {
            return Ok(Some(pt));
        }
    }
    Ok(None)
}

/// Builds the kicked notice for `removed` members (admin side), with `generation` the group's
/// current generation before the rekey that follows the removal. `rng` gives the nonce.
pub fn kicked_notice(
    group: &GroupAdminKeys,
    removed: &[AccountId],
    generation: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, GroupError> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    kicked_notice_with_nonce(group, removed, generation, &nonce)
}

/// [`kicked_notice`] with a given nonce (reproducible; for tests and vectors).
pub fn kicked_notice_with_nonce(
    group: &GroupAdminKeys,
    removed: &[AccountId],
    generation: u64,
    nonce: &[u8; 24],
) -> Result<Vec<u8>, GroupError> {
    let mut keys = Vec::with_capacity(removed.len());
    let mut plains = Vec::with_capacity(removed.len());
    for m in removed {
        if m.prefix() != Some(Prefix::Standard) {
            return Err(GroupError::BadMember {
                reason: "members have 05 Account IDs",
            });
        }
        keys.push(*m.key());
        let mut p = m.key().to_vec();
        p.extend_from_slice(generation.to_string().as_bytes());
        plains.push(p);
    }
    let refs: Vec<&[u8]> = plains.iter().map(Vec::as_slice).collect();
    let cts = encrypt_for_multiple(group.keys(), &keys, &refs, KICKED_DOMAIN, nonce)?;
    Ok(encode_simple(nonce, &cts))
}

/// What a kicked notice in ns −11 says to `own`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickedNotice {
    /// We were removed; the notice names this generation (≥ ours).
    Kicked {
        /// The generation the admin had when removing us.
        generation: u64,
    },
    /// The notice is for someone else, or for an earlier membership of ours (a generation
    /// older than the one we hold now: we were re-added since).
    NotForUs,
}

/// Reads a kicked notice from the group `group_pk` for `own`, whose newest key generation is
/// `current_generation` (`None` if we hold no key yet).
pub fn read_kicked_notice(
    own: &IdentityKeys,
    group_pk: &[u8; 32],
    current_generation: Option<u64>,
    encoded: &[u8],
) -> Result<KickedNotice, GroupError> {
    let group_x = ed25519_pk_to_x25519(group_pk).map_err(GroupError::BadGroupKey)?;
    let Some(plain) = decrypt_simple(own, &group_x, encoded, KICKED_DOMAIN)? else {
        return Ok(KickedNotice::NotForUs);
    };
    let invalid = |reason| GroupError::Invalid {
        what: "kicked notice",
        reason,
    };
    // It decrypted with our key, so the group meant it for us; the key inside must agree.
    let (who, gen) = plain.split_at_checked(32).ok_or(invalid("too short"))?;
    if who != own.x25519_public() {
        return Ok(KickedNotice::NotForUs);
    }
    let generation: u64 = std::str::from_utf8(gen)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(invalid("the generation is not a number"))?;
    if current_generation.is_some_and(|cur| generation < cur) {
        return Ok(KickedNotice::NotForUs);
    }
    Ok(KickedNotice::Kicked { generation })
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::*;
    use super::*;

    fn seeded(hex_seed: &serde_json::Value) -> IdentityKeys {
        IdentityKeys::from_seed(&hex32(hex_seed))
    }

    #[test]
    fn libsession_multi_encrypt_vectors() {
        let v = libsession("multi_encrypt_one_message");
        let sender = seeded(&v["sender_seed"]);
        let recips: Vec<IdentityKeys> = v["recipient_seeds"]
            .as_array()
            .expect("seeds")
            .iter()
            .map(seeded)
            .collect();
        let outsider = seeded(&v["non_recipient_seed"]);
        let xs: Vec<String> = v["x25519_pubkeys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|s| s.as_str().expect("hex").to_owned())
            .collect();
        let ours: Vec<String> = [&sender]
            .into_iter()
            .chain(&recips)
            .chain([&outsider])
            .map(|k| hex::encode(k.x25519_public()))
            .collect();
        assert_eq!(ours, xs);
        let nonce: [u8; 24] = hex(&v["nonce"]).try_into().expect("24");
        let domain = v["domain"].as_str().expect("domain").as_bytes();
        let keys: Vec<[u8; 32]> = recips.iter().map(|r| *r.x25519_public()).collect();
        let msg = v["message_ascii"].as_str().expect("msg").as_bytes();
        let cts = encrypt_for_multiple(&sender, &keys, &[msg; 3], domain, &nonce).expect("enc");
        let want: Vec<String> = v["ciphertexts"]
            .as_array()
            .expect("cts")
            .iter()
            .map(|s| s.as_str().expect("hex").to_owned())
            .collect();
        assert_eq!(cts.iter().map(hex::encode).collect::<Vec<_>>(), want);

        let v2 = libsession("multi_encrypt_per_recipient_messages_simple_encoding");
        let msgs: Vec<&[u8]> = v2["messages_ascii"]
            .as_array()
            .expect("msgs")
            .iter()
            .map(|m| m.as_str().expect("ascii").as_bytes())
            .collect();
        let cts = encrypt_for_multiple(&sender, &keys, &msgs, domain, &nonce).expect("enc");
        let encoded = encode_simple(&nonce, &cts);
        assert_eq!(hex::encode(&encoded), v2["encoded_simple_hex"]);
        for (r, m) in recips.iter().zip(&msgs) {
            let got = decrypt_simple(r, sender.x25519_public(), &encoded, domain).expect("parses");
            assert_eq!(got.as_deref(), Some(*m));
        }
        let none = decrypt_simple(&outsider, sender.x25519_public(), &encoded, domain);
        assert_eq!(none, Ok(None));
        // Another domain gives other keys.
        let none = decrypt_simple(&recips[0], sender.x25519_public(), &encoded, b"other");
        assert_eq!(none, Ok(None));
    }

    #[test]
    fn derived_kicked_notice_vector() {
        let d = derived();
        let group = GroupAdminKeys::from_seed(&hex32(&d["inputs"]["group_seed"]));
        let m2 = seeded(&d["inputs"]["member2_seed"]);
        let m1 = seeded(&d["inputs"]["member1_seed"]);
        let v = &d["kicked_message_ns_minus11"];
        let nonce: [u8; 24] = hex(&v["nonce_fixed_for_test"]).try_into().expect("24");
        let gen = v["current_gen"].as_u64().expect("gen");
        let msg =
            kicked_notice_with_nonce(&group, &[*m2.account_id()], gen, &nonce).expect("build");
        assert_eq!(hex::encode(&msg), v["message_hex"]);
        let group_x = ed25519_pk_to_x25519(group.public_key()).expect("x");
        let plain = decrypt_simple(&m2, &group_x, &msg, KICKED_DOMAIN).expect("parse");
        assert_eq!(
            plain.map(hex::encode).as_deref(),
            v["plaintext_hex"].as_str()
        );

        let pk = group.public_key();
        assert_eq!(
            read_kicked_notice(&m2, pk, Some(1), &msg),
            Ok(KickedNotice::Kicked { generation: 1 })
        );
        assert_eq!(
            read_kicked_notice(&m2, pk, None, &msg),
            Ok(KickedNotice::Kicked { generation: 1 })
        );
        // An old notice after we were re-added at generation 2.
        assert_eq!(
            read_kicked_notice(&m2, pk, Some(2), &msg),
            Ok(KickedNotice::NotForUs)
        );
        // Someone else reads a notice that is not for them.
        assert_eq!(
            read_kicked_notice(&m1, pk, Some(1), &msg),
            Ok(KickedNotice::NotForUs)
        );
        // From another group: not ours either.
        let g2 = GroupAdminKeys::from_seed(&[9; 32]);
        assert_eq!(
            read_kicked_notice(&m2, g2.public_key(), Some(1), &msg),
            Ok(KickedNotice::NotForUs)
        );
    }

    #[test]
    fn forged_and_malformed_kicked_notices() {
        let group = GroupAdminKeys::from_seed(&[3; 32]);
        let victim = IdentityKeys::from_seed(&[4; 32]);
        let bystander = IdentityKeys::from_seed(&[5; 32]);
        let pk = group.public_key();
        // A notice that decrypts for the bystander but names the victim: not a kick of anyone.
        let group_x = ed25519_pk_to_x25519(pk).expect("x");
        let mut plain = victim.x25519_public().to_vec();
        plain.extend_from_slice(b"3");
        let nonce = [1u8; 24];
        let ct = encrypt_for_multiple(
            group.keys(),
            &[*bystander.x25519_public()],
            &[&plain],
            KICKED_DOMAIN,
            &nonce,
        )
        .expect("enc");
        let msg = encode_simple(&nonce, &ct);
        assert_eq!(
            read_kicked_notice(&bystander, pk, Some(1), &msg),
            Ok(KickedNotice::NotForUs)
        );
        // A member (not the group key) sending a "kick": does not decrypt as from the group.
        let ct = encrypt_for_multiple(
            &bystander,
            &[*victim.x25519_public()],
            &[&plain],
            KICKED_DOMAIN,
            &nonce,
        )
        .expect("enc");
        let msg = encode_simple(&nonce, &ct);
        assert_eq!(
            read_kicked_notice(&victim, pk, Some(1), &msg),
            Ok(KickedNotice::NotForUs)
        );
        // A bad generation text.
        let mut bad = victim.x25519_public().to_vec();
        bad.extend_from_slice(b"x1");
        let ct = encrypt_for_multiple(
            group.keys(),
            &[*victim.x25519_public()],
            &[&bad],
            KICKED_DOMAIN,
            &nonce,
        )
        .expect("enc");
        assert!(read_kicked_notice(&victim, pk, Some(1), &encode_simple(&nonce, &ct)).is_err());
        let _ = group_x;
        // Malformed encodings.
        for junk in [
            &b""[..],
            b"de",
            b"d1:#3:abc1:elee",
            b"d1:#24:aaaaaaaaaaaaaaaaaaaaaaaa1:ei1ee",
            b"l1:ae",
        ] {
            assert!(
                read_kicked_notice(&victim, pk, Some(1), junk).is_err(),
                "{junk:?}"
            );
        }
        let short_entry = b"d1:#24:aaaaaaaaaaaaaaaaaaaaaaaa1:el3:abcee";
        assert_eq!(
            read_kicked_notice(&victim, pk, Some(1), short_entry),
            Ok(KickedNotice::NotForUs)
        );
        assert!(kicked_notice_with_nonce(&group, &[*group.id()], 1, &nonce).is_err());
    }
}
