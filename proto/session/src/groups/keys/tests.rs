//! Keys messages against the derived vectors, and every kind of bad keys message.

use super::super::test_vectors::*;
use super::*;

struct Cast {
    group: GroupAdminKeys,
    admin: IdentityKeys,
    m1: IdentityKeys,
    m2: IdentityKeys,
    outsider: IdentityKeys,
}

fn cast() -> Cast {
    let d = derived();
    let i = &d["inputs"];
    let id = |k: &str| IdentityKeys::from_seed(&hex32(&i[k]));
    let c = Cast {
        group: GroupAdminKeys::from_seed(&hex32(&i["group_seed"])),
        admin: id("admin_seed"),
        m1: id("member1_seed"),
        m2: id("member2_seed"),
        outsider: id("outsider_seed"),
    };
    assert_eq!(c.admin.account_id().to_string(), i["admin_session_id"]);
    assert_eq!(c.m2.account_id().to_string(), i["member2_session_id"]);
    c
}

fn admin_keys(c: &Cast) -> GroupKeys {
    GroupKeys::for_admin(Some(&c.admin), c.group.clone()).expect("admin keys")
}

fn member(c: &Cast, who: &IdentityKeys) -> GroupKeys {
    GroupKeys::for_member(who, c.group.id()).expect("member keys")
}

const T0: u64 = 1_700_000_000_000;
const T1: u64 = 1_700_000_100_000;

#[test]
fn gen0_rekey_matches_the_vector_and_every_member_decrypts() {
    let c = cast();
    let v = &derived()["keys_gen0"];
    assert_eq!(
        hex::encode(*c.group.seed_hash(b"SessionGroupKeySeed")),
        v["h2_seed_hash_SessionGroupKeySeed"]
    );
    assert_eq!(
        hex::encode(*c.group.seed_hash(b"SessionGroupKeyAdminKey")),
        v["admin_key_SessionGroupKeyAdminKey"]
    );
    let mut admin = admin_keys(&c);
    // Unsorted, with a duplicate: the rekey sorts and de-duplicates.
    let members = [
        *c.m1.account_id(),
        *c.admin.account_id(),
        *c.m2.account_id(),
        *c.m1.account_id(),
    ];
    let msg = admin.rekey(&members).expect("rekey");
    assert_eq!(msg.len(), 3992);
    assert_eq!(hex::encode(&msg), v["message_hex"]);
    let pending = admin.encryption_key().expect("pending key");
    assert_eq!(pending.generation, 0);
    assert_eq!(hex::encode(pending.key()), v["group_enc_key"]);

    for who in [&c.m1, &c.m2, &c.admin] {
        let mut k = member(&c, who);
        assert_eq!(
            k.load_key_message("h0", &msg, T0),
            Ok(KeysLoad::Loaded { generation: 0 })
        );
        let key = k.encryption_key().expect("key");
        assert_eq!(hex::encode(key.key()), v["group_enc_key"]);
        assert_eq!(key.timestamp_ms, T0);
        assert_eq!(k.active_hashes().into_iter().collect::<Vec<_>>(), ["h0"]);
    }
    let mut out = member(&c, &c.outsider);
    assert_eq!(
        out.load_key_message("h0", &msg, T0),
        Ok(KeysLoad::NotForUs { generation: 0 })
    );
    assert!(out.encryption_key().is_none());

    // The admin loads its own message back: the pending key settles.
    assert_eq!(
        admin.load_key_message("h0", &msg, T0),
        Ok(KeysLoad::Loaded { generation: 0 })
    );
    assert!(admin.pending.is_none());
    assert_eq!(admin.keys.len(), 1);
    assert!(!admin.needs_rekey());
}

#[test]
fn gen1_removal_and_supplement_match_the_vectors() {
    let c = cast();
    let d = derived();
    let mut admin = admin_keys(&c);
    let all = [
        *c.admin.account_id(),
        *c.m1.account_id(),
        *c.m2.account_id(),
    ];
    let gen0 = admin.rekey(&all).expect("gen0");
    admin.load_key_message("h0", &gen0, T0).expect("load gen0");
    let gen1 = admin
        .rekey(&[*c.admin.account_id(), *c.m1.account_id()])
        .expect("gen1");
    let v = &d["keys_gen1_after_removing_member2"];
    assert_eq!(hex::encode(&gen1), v["message_hex"]);
    assert_eq!(
        hex::encode(admin.encryption_key().expect("key").key()),
        v["group_enc_key"]
    );
    admin.load_key_message("h1", &gen1, T1).expect("load gen1");

    let mut m2 = member(&c, &c.m2);
    m2.load_key_message("h0", &gen0, T0).expect("gen0");
    assert_eq!(
        m2.load_key_message("h1", &gen1, T1),
        Ok(KeysLoad::NotForUs { generation: 1 })
    );
    assert_eq!(m2.current_generation(), Some(0));
    let mut m1 = member(&c, &c.m1);
    m1.load_key_message("h0", &gen0, T0).expect("gen0");
    assert_eq!(
        m1.load_key_message("h1", &gen1, T1),
        Ok(KeysLoad::Loaded { generation: 1 })
    );
    assert_eq!(
        m1.decryption_keys()
            .map(|k| k.generation)
            .collect::<Vec<_>>(),
        [1, 0]
    );

    // The supplement gives the outsider both keys with their timestamps.
    let v = &d["key_supplement_for_outsider"];
    let supp = admin
        .key_supplement(&[*c.outsider.account_id()])
        .expect("supplement");
    assert_eq!(hex::encode(&supp), v["message_hex"]);
    let mut out = member(&c, &c.outsider);
    assert_eq!(
        out.load_key_message("hs", &supp, T1 + 5),
        Ok(KeysLoad::Loaded { generation: 1 })
    );
    let got: Vec<(u64, u64, String)> = out
        .decryption_keys()
        .map(|k| (k.generation, k.timestamp_ms, hex::encode(k.key())))
        .collect();
    let want: Vec<(u64, u64, String)> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .rev()
        .map(|k| {
            (
                k["g"].as_u64().expect("g"),
                k["t"].as_u64().expect("t"),
                k["k"].as_str().expect("k").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    // Members already in the group find nothing for them in it; neither does the admin.
    assert_eq!(
        m1.load_key_message("hs", &supp, T1 + 5),
        Ok(KeysLoad::NotForUs { generation: 1 })
    );
    assert_eq!(
        admin.load_key_message("hs", &supp, T1 + 5),
        Ok(KeysLoad::NotForUs { generation: 1 })
    );
}

#[test]
fn concurrent_rekeys_need_another_and_old_generations_expire() {
    let c = cast();
    let mut a1 = admin_keys(&c);
    let mut a2 = GroupKeys::for_admin(None, c.group.clone()).expect("second admin");
    let x = a1.rekey(&[*c.m1.account_id()]).expect("x");
    let y = a2.rekey(&[*c.m2.account_id()]).expect("y");
    for k in [&mut a1, &mut a2] {
        k.load_key_message("x", &x, T0).expect("x");
        k.load_key_message("y", &y, T0 + 1).expect("y");
        assert!(k.needs_rekey());
        assert!(k.pending.is_none());
    }
    // A member sees the two gen-0 keys only if in both; m1 only in x.
    let mut m1 = member(&c, &c.m1);
    m1.load_key_message("x", &x, T0).expect("x");
    m1.load_key_message("y", &y, T0 + 1).expect("y");
    assert_eq!(m1.decryption_keys().count(), 1);
    assert!(!m1.needs_rekey(), "only admins rekey");

    // gen 1 arrives; 61 days later gen 2: gen 0 is dropped once gen 1 is older than 60 days.
    let day = 24 * 3600 * 1000;
    let g1 = a1.rekey(&[*c.m1.account_id()]).expect("g1");
    m1.load_key_message("g1", &g1, T0 + day).expect("g1");
    assert_eq!(m1.decryption_keys().count(), 2);
    let g2 = a1.rekey(&[*c.m1.account_id()]).expect("g2");
    m1.load_key_message("g2", &g2, T0 + 62 * day).expect("g2");
    let gens: Vec<u64> = m1.decryption_keys().map(|k| k.generation).collect();
    assert_eq!(gens, [2, 1]);
    assert!(!m1.active_hashes().contains("x"));
    // Loading the expired generation again does nothing.
    m1.load_key_message("x", &x, T0).expect("x");
    assert_eq!(m1.decryption_keys().count(), 2);
}

/// Re-signs a modified dict with `signer` (the group key, or someone else's).
fn resign(signer: &IdentityKeys, d: Dict) -> Vec<u8> {
    let mut out = Value::Dict(d).encode();
    out.pop();
    let sig = signer.sign(&out);
    encode_bytes(b"~", &mut out);
    encode_bytes(&sig.to_bytes(), &mut out);
    out.push(b'e');
    out
}

fn unsigned_dict(msg: &[u8]) -> Dict {
    let Value::Dict(mut d) = Value::decode(msg).expect("bt") else {
        panic!("dict")
    };
    d.remove(&b"~"[..]);
    d
}

#[test]
fn bad_keys_messages_are_refused_whole() {
    let c = cast();
    let mut admin = admin_keys(&c);
    let good = admin.rekey(&[*c.m1.account_id()]).expect("rekey");
    let fresh = || member(&c, &c.m1);

    // A flipped byte anywhere: signature (or structure) fails.
    for at in [10, 60, 200, good.len() - 30, good.len() - 2] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert!(
            fresh().load_key_message("h", &bad, T0).is_err(),
            "byte {at}"
        );
    }
    // Signed by a non-admin (a member's own key).
    let forged = resign(&c.m1, unsigned_dict(&good));
    assert_eq!(
        fresh().load_key_message("h", &forged, T0),
        Err(GroupError::BadSignature { what: WHAT })
    );
    // Unsigned, or something after the signature.
    let unsigned = Value::Dict(unsigned_dict(&good)).encode();
    assert!(matches!(
        fresh().load_key_message("h", &unsigned, T0),
        Err(GroupError::BadSignature { .. })
    ));
    let mut d = unsigned_dict(&good);
    d.insert(b"~~".to_vec(), Value::Int(1));
    let mut after = Value::Dict(d).encode();
    after.pop();
    assert!(fresh().load_key_message("h", &after, T0).is_err());

    let group = c.group.keys();
    let resigned = |f: &dyn Fn(&mut Dict)| {
        let mut d = unsigned_dict(&good);
        f(&mut d);
        resign(group, d)
    };
    // Validly signed but malformed: each refused with a reason.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "74 boxes",
            resigned(&|d| {
                if let Some(Value::List(l)) = d.get_mut(&b"k"[..]) {
                    l.pop();
                }
            }),
        ),
        (
            "short box",
            resigned(&|d| {
                if let Some(Value::List(l)) = d.get_mut(&b"k"[..]) {
                    l[5] = Value::Bytes(vec![0; 47]);
                }
            }),
        ),
        (
            "negative G",
            resigned(&|d| {
                d.insert(b"G".to_vec(), Value::Int(-1));
            }),
        ),
        (
            "no G",
            resigned(&|d| {
                d.remove(&b"G"[..]);
            }),
        ),
        (
            "short K",
            resigned(&|d| {
                d.insert(b"K".to_vec(), Value::Bytes(vec![1; 40]));
            }),
        ),
        (
            "no k",
            resigned(&|d| {
                d.remove(&b"k"[..]);
            }),
        ),
        (
            "short nonce",
            resigned(&|d| {
                d.insert(b"#".to_vec(), Value::Bytes(vec![1; 23]));
            }),
        ),
        (
            "+ not a list",
            resigned(&|d| {
                d.insert(b"+".to_vec(), Value::Int(3));
            }),
        ),
        (
            "short supplement box",
            resigned(&|d| {
                d.insert(b"+".to_vec(), Value::List(vec![Value::Bytes(vec![0; 60])]));
            }),
        ),
    ];
    for (name, msg) in cases {
        let r = fresh().load_key_message("h", &msg, T0);
        assert!(
            matches!(r, Err(GroupError::Invalid { .. })),
            "{name}: {r:?}"
        );
    }
    // The admin's own box replaced: the admin cannot open it (a member still could).
    let swapped = resigned(&|d| {
        d.insert(b"K".to_vec(), Value::Bytes(vec![7; 48]));
    });
    assert!(matches!(
        admin_keys(&c).load_key_message("h", &swapped, T0),
        Err(GroupError::Decrypt { .. })
    ));
    // Not bt at all, or not a dict.
    for junk in [&b""[..], b"garbage", b"le", b"i1e", &good[..good.len() - 1]] {
        assert!(fresh().load_key_message("h", junk, T0).is_err());
    }
    // Nothing was kept from any of that.
    let mut k = fresh();
    let _ = k.load_key_message("h", &forged, T0);
    assert!(k.encryption_key().is_none());
    assert_eq!(
        k.load_key_message("h", &good, T0),
        Ok(KeysLoad::Loaded { generation: 0 })
    );
}

#[test]
fn supplement_entries_with_bad_contents() {
    let c = cast();
    let group = &c.group;
    let to = c.m1.account_id();
    // A supplement whose inner list is not {g,k,t}: built by hand with the real member box.
    let build = |inner: &[u8]| {
        let nonce = [9u8; 24];
        let boxes = encrypt_for_multiple(
            group.keys(),
            &[*to.key()],
            &[inner],
            MEMBER_KEY_DOMAIN,
            &nonce,
        )
        .expect("enc");
        let mut d = Dict::new();
        d.insert(b"#".to_vec(), Value::Bytes(nonce.to_vec()));
        d.insert(
            b"+".to_vec(),
            Value::List(boxes.into_iter().map(Value::Bytes).collect()),
        );
        d.insert(b"G".to_vec(), Value::Int(0));
        sign_dict(group, d)
    };
    let pad = "x".repeat(60);
    for inner in [
        format!("ld1:gi0e1:k3:abc1:ti5eeli1e{pad}e"),
        format!("ld1:gi-1e1:k32:{}1:ti5ee1:x{pad}e", "a".repeat(32)),
        format!("ld1:k32:{}1:ti5ee0:{pad}e", "a".repeat(32)),
        format!("d1:a{}:{pad}e", pad.len()),
        format!("l{pad}"),
    ] {
        let msg = build(inner.as_bytes());
        let r = member(&c, &c.m1).load_key_message("h", &msg, T0);
        assert!(r.is_err(), "{inner}: {r:?}");
    }
    assert!(matches!(
        member(&c, &c.m1).key_supplement(&[*to]),
        Err(GroupError::NotAdmin { .. })
    ));
    assert!(matches!(
        admin_keys(&c).key_supplement(&[*to]),
        Err(GroupError::NoKey)
    ));
    assert!(matches!(
        member(&c, &c.m1).rekey(&[*to]),
        Err(GroupError::NotAdmin { .. })
    ));
    assert!(admin_keys(&c).rekey(&[*group.id()]).is_err());
}

#[test]
fn promotion_needs_this_groups_seed() {
    let c = cast();
    let mut k = member(&c, &c.m1);
    assert!(k.load_admin_key(&[1; 32]).is_err());
    assert!(k.admin().is_none());
    k.load_admin_key(c.group.seed()).expect("own group seed");
    assert!(k.admin().is_some());
    assert!(k.rekey(&[*c.m1.account_id()]).is_ok());
    assert!(!format!("{k:?}").contains(&hex::encode(c.group.seed())));
}
