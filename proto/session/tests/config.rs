//! Config messages against the published vectors (byte for byte where deterministic), the merge
//! and multi-device behaviour, bad input, and property tests (merge order, unknown keys).

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::Value;
use session_proto::account_id::AccountId;
use session_proto::config::contacts::{self, Contact, Expiration};
use session_proto::config::convo_info_volatile::{self as convo, Convo, ReadState};
use session_proto::config::crypt::{self, padded_size};
use session_proto::config::message::{hash_bytes, ConfigMessage, DEFAULT_LAG};
use session_proto::config::object::{CONTACTS, CONVO_INFO_VOLATILE, USER_GROUPS, USER_PROFILE};
use session_proto::config::user_groups::{self, CommunityEntry, GroupEntry};
use session_proto::config::user_profile::{self, ProfilePic};
use session_proto::config::{wrap, Config, ConfigKeys, Data, Field, Scalar, State};
use session_proto::err::{ConfigError, ErrorKind, HasKind};
use session_proto::keys::IdentityKeys;

const ENCRYPT: &str = include_str!("data/config-encrypt.json");
const COMPRESSION: &str = include_str!("data/config-compression.json");
const MESSAGE: &str = include_str!("data/config-message.json");
const PROFILE: &str = include_str!("data/config-userprofile.json");
const DERIVED: &str = include_str!("data/config-derived-contacts-convo.json");

const NOW_MS: u64 = 1_700_000_200_000;

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("vector JSON")
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn key32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().expect("32 bytes")
}

fn s(b: &str) -> Scalar {
    Scalar::Str(b.as_bytes().to_vec())
}

fn identity() -> IdentityKeys {
    IdentityKeys::from_seed(&key32(&json(PROFILE)["seed_hex"]))
}

fn user_config(ty: session_proto::config::ConfigType, id: &IdentityKeys) -> Config {
    Config::new(ty, ConfigKeys::user(id))
}

/// Merges pushed messages into `c` under fake storage hashes.
fn merge_all(c: &mut Config, msgs: &[(String, Vec<u8>)]) -> session_proto::config::MergeReport {
    let refs: Vec<(&str, &[u8])> = msgs
        .iter()
        .map(|(h, m)| (h.as_str(), m.as_slice()))
        .collect();
    c.merge(&refs, NOW_MS)
}

fn push_one(c: &mut Config, name: &str) -> (String, Vec<u8>) {
    let p = c.push().expect("push");
    assert_eq!(p.messages.len(), 1);
    let h = format!("{name}-{}", p.seqno);
    c.confirm_pushed(p.seqno, std::slice::from_ref(&h));
    (h, p.messages[0].clone())
}

// ---- vectors -----------------------------------------------------------------------------------

#[test]
fn encrypt_vectors() {
    let v = json(ENCRYPT);
    let cases = v["cases"].as_array().expect("cases");
    let mut outputs = Vec::new();
    for c in cases {
        let pt = c["plaintext_utf8"].as_str().expect("pt").as_bytes();
        let kb = key32(&c["key_base_hex"]);
        let domain = c["domain"].as_str().expect("domain");
        let out = crypt::encrypt(pt, &kb, domain);
        assert_eq!(crypt::nonce(pt, domain).to_vec(), unhex(&c["nonce_hex"]));
        assert_eq!(&out[out.len() - 24..], &unhex(&c["nonce_hex"])[..]);
        if !c["output_hex"].is_null() {
            assert_eq!(out, unhex(&c["output_hex"]));
        }
        assert_eq!(crypt::decrypt(&out, &kb, domain).expect("decrypts"), pt);
        outputs.push(out);
    }
    assert_ne!(outputs[0], outputs[1]);
    assert_ne!(outputs[0], outputs[2]);
    // decrypt_must_fail: other domain, other key, altered byte.
    let c1 = &outputs[0];
    let kb1 = key32(&cases[0]["key_base_hex"]);
    let kb3 = key32(&cases[2]["key_base_hex"]);
    assert_eq!(
        crypt::decrypt(c1, &kb1, "test-suite2"),
        Err(ConfigError::Decrypt)
    );
    assert_eq!(
        crypt::decrypt(c1, &kb3, "test-suite1"),
        Err(ConfigError::Decrypt)
    );
    let mut altered = c1.clone();
    altered[3] = 0x42;
    assert_eq!(
        crypt::decrypt(&altered, &kb1, "test-suite1"),
        Err(ConfigError::Decrypt)
    );
    assert!(matches!(
        crypt::decrypt(&c1[..39], &kb1, "test-suite1"),
        Err(ConfigError::TooShort { .. })
    ));
    for p in v["padded_size"]["cases"].as_array().expect("padded cases") {
        let size = p["size"].as_u64().expect("size") as usize;
        let overhead = p["overhead"].as_u64().expect("overhead") as usize;
        assert_eq!(
            padded_size(size, overhead) as u64,
            p["padded"].as_u64().expect("padded"),
            "size {size} overhead {overhead}"
        );
    }
}

#[test]
fn compression_vectors() {
    for c in json(COMPRESSION)["cases"].as_array().expect("cases") {
        let input = unhex(&c["input_hex"]);
        let level = c["level"].as_i64().expect("level") as i32;
        if c["matched"].as_bool() == Some(true) {
            // libzstd 1.5.7, the version the vectors were checked against: byte for byte.
            assert_eq!(
                crypt::compress(input.clone(), level),
                unhex(&c["output_hex"])
            );
        }
        let upstream = if c["output_hex"].is_null() {
            unhex(&c["upstream_output_hex"])
        } else {
            unhex(&c["output_hex"])
        };
        assert_eq!(
            crypt::unpack(&upstream).unwrap_or_else(|_| input.clone()),
            input
        );
        if upstream[0] == b'z' {
            assert_eq!(
                crypt::decompress(&upstream[1..]).expect("decompresses"),
                input
            );
        }
    }
}

#[test]
fn message_vectors_build_parse_and_hash() {
    let v = json(MESSAGE);
    let msgs = v["messages"].as_array().expect("messages");
    let expect = |i: usize, m: &ConfigMessage| {
        let bytes = m.serialize(None);
        assert_eq!(bytes, unhex(&msgs[i]["serialized_hex"]), "m{i} bytes");
        assert_eq!(
            hash_bytes(&bytes).to_vec(),
            unhex(&msgs[i]["blake2b256_hash_hex"]),
            "m{i} hash"
        );
        let parsed = ConfigMessage::parse(&bytes, None, DEFAULT_LAG, false).expect("parses");
        assert_eq!(parsed.serialize(None), bytes, "m{i} re-serializes");
        assert_eq!(parsed.hash(), &hash_bytes(&bytes));
    };
    // m0: a fresh message at seqno 10.
    let mut m = ConfigMessage::new_mutable(10, DEFAULT_LAG);
    {
        let d = m.data_mut().expect("mutable");
        d.insert(b"foo".to_vec(), Field::Scalar(Scalar::Int(123)));
        let mut bar = Data::new();
        bar.insert(
            b"".to_vec(),
            Field::Set([Scalar::Int(42), s("a"), s("b")].into_iter().collect()),
        );
        bar.insert(b"asdf".to_vec(), Field::Scalar(Scalar::Int(123)));
        bar.insert(b"xyz".to_vec(), Field::Scalar(s("abc")));
        d.insert(b"bar".to_vec(), Field::Dict(bar));
    }
    expect(0, &m);
    // m1: erase foo.
    let mut m = m.increment(None);
    m.data_mut().expect("mutable").remove(&b"foo"[..]);
    expect(1, &m);
    // m2: foo=123, bar.xyz=42, bar.a=42, set +'c' +99 -'b'.
    let mut m = m.increment(None);
    {
        let d = m.data_mut().expect("mutable");
        d.insert(b"foo".to_vec(), Field::Scalar(Scalar::Int(123)));
        let Some(Field::Dict(bar)) = d.get_mut(&b"bar"[..]) else {
            panic!("bar is a dict")
        };
        bar.insert(b"xyz".to_vec(), Field::Scalar(Scalar::Int(42)));
        bar.insert(b"a".to_vec(), Field::Scalar(Scalar::Int(42)));
        let Some(Field::Set(set)) = bar.get_mut(&b""[..]) else {
            panic!("a set")
        };
        set.insert(s("c"));
        set.insert(Scalar::Int(99));
        set.remove(&s("b"));
    }
    expect(2, &m);
    // m3..m5: increments with no change; the lagged window slides.
    let m = m.increment(None);
    expect(3, &m);
    let m = m.increment(None);
    expect(4, &m);
    let m = m.increment(None);
    expect(5, &m);
    let parsed = ConfigMessage::parse(&m.serialize(None), None, DEFAULT_LAG, false).expect("m5");
    let lagged: Vec<i64> = parsed.lagged().keys().map(|(s, _)| *s).collect();
    assert_eq!(lagged, vec![11, 12, 13, 14]);
}

#[test]
fn signed_message_vector() {
    let v = json(MESSAGE);
    let sig = &v["signature"];
    let sk_bytes = unhex(&sig["ed25519_secret_key_hex"]);
    let sk = SigningKey::from_bytes(&sk_bytes[..32].try_into().expect("seed"));
    assert_eq!(&sk.verifying_key().to_bytes()[..], &sk_bytes[32..]);
    let m0 = unhex(&v["messages"][0]["serialized_hex"]);
    let parsed = ConfigMessage::parse(&m0, None, DEFAULT_LAG, false).expect("m0");
    let signed = parsed.serialize(Some(&sk));
    assert_eq!(signed, unhex(&sig["signed_message_hex"]));
    assert_eq!(
        &signed[signed.len() - 65..signed.len() - 1],
        &unhex(&sig["signature_hex"])[..]
    );
    let vk = sk.verifying_key();
    let verified = ConfigMessage::parse(&signed, Some(&vk), DEFAULT_LAG, false).expect("verifies");
    assert_eq!(
        verified.signature().map(|s| s.to_vec()),
        Some(unhex(&sig["signature_hex"]))
    );
    // Kept signature: re-serializing gives the same bytes without the key.
    assert_eq!(verified.serialize(None), signed);
    let mut tampered = signed.clone();
    tampered[10] ^= 1;
    assert!(ConfigMessage::parse(&tampered, Some(&vk), DEFAULT_LAG, false).is_err());
    assert_eq!(
        ConfigMessage::parse(&m0, Some(&vk), DEFAULT_LAG, false).err(),
        Some(ConfigError::MissingSignature)
    );
    let other = SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert_eq!(
        ConfigMessage::parse(&signed, Some(&other), DEFAULT_LAG, false).err(),
        Some(ConfigError::BadSignature)
    );
}

#[test]
fn user_profile_vectors_push_and_merge() {
    let v = json(PROFILE);
    let id = identity();
    assert_eq!(id.ed25519_public().to_vec(), unhex(&v["ed25519_pk_hex"]));
    let mut c = user_config(USER_PROFILE, &id);
    assert_eq!(
        c.message().hash().to_vec(),
        unhex(&v["seqno0_empty"]["blake2b256_hash_hex"])
    );
    // The seqno-0 push: 432 bytes, wrapped, byte for byte.
    let p0 = c.push().expect("push 0");
    assert_eq!(p0.seqno, 0);
    assert_eq!(
        p0.messages,
        vec![unhex(&v["seqno0_empty"]["wrapped_push_hex"])]
    );
    assert_eq!(
        wrap::unwrap(&id, &p0.messages[0], 2).expect("unwraps"),
        unhex(&v["seqno0_empty"]["encrypted_hex"])
    );
    // seqno 1: name, picture, Note-to-Self priority.
    let f = &v["seqno1_push"]["fields"];
    c.edit(|d| {
        user_profile::set_name(d, f["n (name)"].as_str().expect("n")).expect("name");
        let pic = ProfilePic {
            url: f["p (pic url)"].as_str().expect("p").to_owned(),
            key: f["q (pic key, 32 bytes)"]
                .as_str()
                .expect("q")
                .as_bytes()
                .try_into()
                .expect("32"),
        };
        user_profile::set_profile_pic(d, Some(&pic)).expect("pic");
        user_profile::set_nts_priority(d, 9);
    })
    .expect("edit");
    assert_eq!(c.seqno(), 1);
    assert_eq!(c.state(), State::Dirty);
    assert_eq!(
        c.message().serialize(None),
        unhex(&v["seqno1_push"]["serialized_hex"])
    );
    let p1 = c.push().expect("push 1");
    assert_eq!(c.state(), State::Waiting);
    let raw = wrap::unwrap(&id, &p1.messages[0], 2).expect("wrapped");
    assert_eq!(raw, unhex(&v["seqno1_push"]["encrypted_hex"]));
    // A second device merges the bare ciphertext (as upstream does) and the wrapped form.
    for form in [raw.clone(), p1.messages[0].clone()] {
        let mut other = user_config(USER_PROFILE, &id);
        let rep = merge_all(&mut other, &[("h1".into(), form)]);
        assert_eq!(rep.accepted, vec!["h1".to_string()]);
        assert_eq!(user_profile::name(other.data()).as_deref(), Some("Kallie"));
        assert_eq!(user_profile::nts_priority(other.data()), 9);
        assert_eq!(other.seqno(), 1);
        assert_eq!(other.state(), State::Clean);
        assert!(other.current_hashes().contains("h1"));
    }
}

#[test]
fn derived_contacts_and_convo_vectors() {
    let v = json(DERIVED);
    let id = identity();
    let peer = AccountId::parse_raw(v["contact_session_id"].as_str().expect("id")).expect("id");
    // Contacts: build it, bytes equal, encrypted bytes equal, and the ciphertext decodes.
    let mut c = user_config(CONTACTS, &id);
    let mut joe = Contact::new(peer);
    joe.name = "Joe".into();
    joe.nickname = "Joey".into();
    joe.approved = true;
    joe.approved_me = true;
    joe.created = 1_700_000_000;
    joe.expiration = Expiration::AfterSend;
    joe.expiration_seconds = 86_400;
    c.edit(|d| contacts::set(d, &joe))
        .expect("edit")
        .expect("set");
    assert_eq!(
        c.message().serialize(None),
        unhex(&v["contacts"]["serialized_hex"])
    );
    let p = c.push().expect("push");
    let raw = wrap::unwrap(&id, &p.messages[0], 3).expect("wrapped");
    let enc_key = "encrypted_hex (domain 'Contacts', not protobuf-wrapped)";
    assert_eq!(raw, unhex(&v["contacts"][enc_key]));
    let mut other = user_config(CONTACTS, &id);
    merge_all(&mut other, &[("c1".into(), unhex(&v["contacts"][enc_key]))]);
    assert_eq!(contacts::get(other.data(), &peer), Some(joe.clone()));
    assert_eq!(contacts::list(other.data()), vec![joe]);
    // ConvoInfoVolatile.
    let mut cv = user_config(CONVO_INFO_VOLATILE, &id);
    let rs = ReadState {
        last_read_ms: 1_700_000_123_456,
        unread: false,
    };
    cv.edit(|d| convo::set(d, &Convo::OneToOne(peer), rs, None, NOW_MS as i64))
        .expect("edit");
    assert_eq!(
        cv.message().serialize(None),
        unhex(&v["convo_info_volatile"]["serialized_hex"])
    );
    let p = cv.push().expect("push");
    let raw = wrap::unwrap(&id, &p.messages[0], 4).expect("wrapped");
    let enc_key = "encrypted_hex (domain 'ConvoInfoVolatile', not protobuf-wrapped)";
    assert_eq!(raw, unhex(&v["convo_info_volatile"][enc_key]));
    let mut other = user_config(CONVO_INFO_VOLATILE, &id);
    merge_all(&mut other, &[("v1".into(), raw)]);
    assert_eq!(convo::get(other.data(), &Convo::OneToOne(peer)), Some(rs));
}

// ---- merge and multi-device ----------------------------------------------------------------------

#[test]
fn concurrent_edits_converge_to_the_same_bytes() {
    let id = identity();
    let mut a = user_config(USER_PROFILE, &id);
    let mut b = user_config(USER_PROFILE, &id);
    a.edit(|d| user_profile::set_name(d, "Raz"))
        .expect("a")
        .expect("name");
    let pa = push_one(&mut a, "a");
    merge_all(&mut b, std::slice::from_ref(&pa));
    // Both edit at seqno 2 without seeing each other.
    a.edit(|d| user_profile::set_name(d, "Nibbler"))
        .expect("a")
        .expect("name");
    b.edit(|d| user_profile::set_nts_priority(d, 3)).expect("b");
    let pa2 = push_one(&mut a, "a");
    let pb2 = push_one(&mut b, "b");
    let both = [pa2.clone(), pb2.clone()];
    merge_all(&mut a, &both);
    merge_all(&mut b, &both);
    assert_eq!(a.seqno(), 3);
    assert_eq!(b.seqno(), 3);
    assert_eq!(a.state(), State::Dirty);
    // Each keeps the other's change; the name conflict has one winner on both.
    assert_eq!(a.data(), b.data());
    assert_eq!(user_profile::nts_priority(a.data()), 3);
    let m_a = a.push().expect("a");
    let m_b = b.push().expect("b");
    assert_eq!(
        m_a.messages, m_b.messages,
        "same merged ciphertext on both devices"
    );
    // Both delete the two superseded messages.
    let expected: BTreeSet<String> = [pa2.0, pb2.0].into_iter().collect();
    assert!(expected.iter().all(|h| m_a.obsolete.contains(h)));
    assert!(!m_a.obsolete.contains(&pa.0) || a.current_hashes().is_empty());
}

#[test]
fn fresh_device_pulls_before_it_has_anything_to_push() {
    let id = identity();
    let mut phone = user_config(CONTACTS, &id);
    let peer = AccountId::parse_raw(&format!("05{}", "ab".repeat(32))).expect("id");
    let mut c = Contact::new(peer);
    c.nickname = "Bob".into();
    c.approved = true;
    phone
        .edit(|d| contacts::set(d, &c))
        .expect("edit")
        .expect("set");
    let pushed = push_one(&mut phone, "p");
    let mut fresh = user_config(CONTACTS, &id);
    assert!(!fresh.needs_push());
    merge_all(&mut fresh, &[pushed]);
    assert!(
        !fresh.needs_push(),
        "adopting the account's config needs no push"
    );
    assert_eq!(
        contacts::get(fresh.data(), &peer).and_then(|c| c.display_name().map(str::to_owned)),
        Some("Bob".into())
    );
}

#[test]
fn own_message_coming_back_is_never_deleted() {
    let id = identity();
    let mut a = user_config(USER_PROFILE, &id);
    a.edit(|d| user_profile::set_name(d, "A"))
        .expect("edit")
        .expect("name");
    let p = a.push().expect("push");
    let mine = ("h-mine".to_string(), p.messages[0].clone());
    // The poll sees our message before the store's reply is processed...
    merge_all(&mut a, std::slice::from_ref(&mine));
    a.confirm_pushed(p.seqno, std::slice::from_ref(&mine.0));
    // ...and again after.
    merge_all(&mut a, std::slice::from_ref(&mine));
    assert_eq!(a.state(), State::Clean);
    assert!(!a.obsolete_hashes().contains("h-mine"));
    a.edit(|d| user_profile::set_name(d, "B"))
        .expect("edit")
        .expect("name");
    let p2 = a.push().expect("push");
    assert_eq!(
        p2.obsolete,
        vec!["h-mine".to_string()],
        "superseded only now"
    );
}

#[test]
fn dump_round_trip_keeps_state() {
    let id = identity();
    let mut a = user_config(CONTACTS, &id);
    let peer = AccountId::parse_raw(&format!("05{}", "cd".repeat(32))).expect("id");
    a.edit(|d| contacts::set(d, &Contact::new(peer)))
        .expect("edit")
        .expect("set");
    let p = push_one(&mut a, "x");
    a.edit(|d| {
        let mut c = contacts::get_or_new(d, &peer);
        c.blocked = true;
        contacts::set(d, &c)
    })
    .expect("edit")
    .expect("set");
    let dump = a.dump(NOW_MS);
    let b = Config::load(CONTACTS, ConfigKeys::user(&id), &dump, NOW_MS).expect("loads");
    assert_eq!(b.state(), State::Dirty);
    assert_eq!(b.data(), a.data());
    assert!(b.obsolete_hashes().contains(&p.0));
    // A dirty dump reloads one seqno later.
    assert_eq!(b.seqno(), a.seqno() + 1);
    assert!(Config::load(CONTACTS, ConfigKeys::user(&id), b"garbage", NOW_MS).is_err());
    assert!(Config::load(CONTACTS, ConfigKeys::user(&id), b"d1:!i7ee", NOW_MS).is_err());
}

#[test]
fn groups_and_communities_views() {
    let id = identity();
    let mut g = user_config(USER_GROUPS, &id);
    let seed = [7u8; 32];
    let gpk = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let gid = AccountId::new(session_proto::account_id::Prefix::Group, gpk);
    let entry = GroupEntry {
        id: gid,
        name: "Team".into(),
        admin_seed: Some(seed),
        auth_data: Vec::new(),
        invited: false,
        joined_at: 1_700_000_000,
        priority: 0,
        removed_status: 0,
        mute_until: 0,
    };
    let room = CommunityEntry {
        base_url: "HTTPS://Example.org:443/".into(),
        pubkey: [1; 32],
        room: "Lobby".into(),
        priority: 1,
        joined_at: 5,
    };
    g.edit(|d| {
        user_groups::set_group(d, &entry)?;
        user_groups::set_community(d, &room);
        Ok::<_, ConfigError>(())
    })
    .expect("edit")
    .expect("set");
    assert_eq!(user_groups::groups(g.data()), vec![entry.clone()]);
    let cs = user_groups::communities(g.data());
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].base_url, "https://example.org");
    assert_eq!(cs[0].room, "Lobby");
    // An admin seed that does not match its ID is dropped.
    let mut bad = entry.clone();
    bad.admin_seed = Some([8; 32]);
    g.edit(|d| user_groups::set_group(d, &bad))
        .expect("edit")
        .expect("set");
    assert!(user_groups::groups(g.data()).is_empty());
}

// ---- bad input ---------------------------------------------------------------------------------

#[test]
fn bad_messages_are_skipped_not_deleted() {
    let id = identity();
    let mut a = user_config(CONTACTS, &id);
    let peer = AccountId::parse_raw(&format!("05{}", "ef".repeat(32))).expect("id");
    a.edit(|d| contacts::set(d, &Contact::new(peer)))
        .expect("edit")
        .expect("set");
    let good = push_one(&mut a, "good");
    let key = *id.seed();
    let enc =
        |plain: &[u8], domain: &str| crypt::encrypt(&crypt::pad(plain.to_vec()), &key, domain);
    let inputs: Vec<(String, Vec<u8>)> = vec![
        ("garbage".into(), b"not a config at all".to_vec()),
        ("short".into(), vec![1, 2, 3]),
        (
            "wrong-domain".into(),
            enc(b"d1:#i1e1:&de1:<le1:=dee", "UserProfile"),
        ),
        (
            "other-key".into(),
            crypt::encrypt(b"d1:#i1e1:&de1:<le1:=dee", &[3; 32], "Contacts"),
        ),
        ("unparseable".into(), enc(b"d1:#i9e1:&d1:xleee", "Contacts")),
        (
            "unknown-type".into(),
            enc(b"q-some-future-format", "Contacts"),
        ),
        ("bad-zstd".into(), enc(b"znot zstd", "Contacts")),
        (
            "empty".into(),
            crypt::encrypt(&[0u8; 100], &key, "Contacts"),
        ),
        (
            "negative-seqno".into(),
            enc(b"d1:#i-1e1:&de1:<le1:=dee", "Contacts"),
        ),
        (
            "huge-seqno".into(),
            enc(b"d1:#i9223372036854775807e1:&de1:<le1:=dee", "Contacts"),
        ),
    ];
    let mut b = user_config(CONTACTS, &id);
    let mut all = inputs.clone();
    all.push(good.clone());
    let rep = merge_all(&mut b, &all);
    assert_eq!(rep.accepted, vec![good.0.clone()]);
    assert_eq!(rep.skipped.len(), inputs.len());
    let kinds: Vec<ErrorKind> = rep.skipped.iter().map(|(_, e)| e.kind()).collect();
    assert!(kinds.contains(&ErrorKind::BadCrypto));
    assert!(kinds.contains(&ErrorKind::Unsupported));
    assert_eq!(contacts::list(b.data()).len(), 1);
    // Nothing bad is ever scheduled for deletion.
    b.edit(|d| contacts::erase(d, &peer)).expect("edit");
    let p = b.push().expect("push");
    assert_eq!(p.obsolete, vec![good.0]);
}

#[test]
fn far_future_seqno_cannot_make_everything_stale() {
    let id = identity();
    let mut a = user_config(USER_PROFILE, &id);
    a.edit(|d| user_profile::set_name(d, "Real"))
        .expect("edit")
        .expect("name");
    let real = push_one(&mut a, "real");
    let far = crypt::encrypt(
        &crypt::pad(b"d1:#i5000000e1:&de1:<le1:=dee".to_vec()),
        id.seed(),
        "UserProfile",
    );
    let mut b = user_config(USER_PROFILE, &id);
    let rep = merge_all(&mut b, &[real.clone(), ("far".into(), far)]);
    assert_eq!(rep.accepted, vec![real.0.clone()]);
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(user_profile::name(b.data()).as_deref(), Some("Real"));
    assert!(b.obsolete_hashes().is_empty());
}

#[test]
fn incomplete_multipart_waits_and_expires() {
    let id = identity();
    let mut a = user_config(CONTACTS, &id);
    // Enough contacts with incompressible names for several parts.
    let mut seed = 1u64;
    a.edit(|d| {
        for i in 0..1500u32 {
            let mut pk = [0u8; 32];
            pk[..4].copy_from_slice(&i.to_be_bytes());
            let mut c = Contact::new(AccountId::standard(pk));
            c.name = (0..60)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(b'!' + ((seed >> 33) % 90) as u8)
                })
                .collect();
            contacts::set(d, &c).expect("set");
        }
    })
    .expect("edit");
    let p = a.push().expect("push");
    assert!(p.messages.len() >= 2, "{} parts", p.messages.len());
    assert!(p
        .messages
        .iter()
        .all(|m| m.len() <= crypt::MAX_MESSAGE_SIZE));
    let parts: Vec<(String, Vec<u8>)> = p
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("part{i}"), m.clone()))
        .collect();
    // All but the last: accepted, pending, kept alive, nothing merged.
    let mut b = user_config(CONTACTS, &id);
    let rep = merge_all(&mut b, &parts[..parts.len() - 1]);
    assert_eq!(rep.accepted.len(), parts.len() - 1);
    assert!(contacts::list(b.data()).is_empty());
    assert!(b.active_hashes(NOW_MS).contains("part0"));
    // The dump keeps the pending parts; the last part completes the set.
    let dump = b.dump(NOW_MS);
    let mut c = Config::load(CONTACTS, ConfigKeys::user(&id), &dump, NOW_MS).expect("load");
    merge_all(&mut c, &parts[parts.len() - 1..]);
    assert_eq!(contacts::list(c.data()).len(), 1500);
    let all: BTreeSet<String> = parts.iter().map(|(h, _)| h.clone()).collect();
    assert_eq!(c.current_hashes(), &all);
    // A set that never completes is forgotten after the wait.
    let later = NOW_MS + session_proto::config::object::MULTIPART_MAX_WAIT_MS + 1;
    assert!(b.active_hashes(later).is_empty() || !b.active_hashes(later).contains("part0"));
    let _ = b.dump(later);
    let reloaded =
        Config::load(CONTACTS, ConfigKeys::user(&id), &b.dump(later), later).expect("load");
    assert!(!reloaded.active_hashes(later).contains("part0"));
}

// ---- property tests ----------------------------------------------------------------------------

/// One small edit on a small key space, so that concurrent edits collide often.
#[derive(Debug, Clone)]
enum Op {
    SetInt(u8, i64),
    SetStr(u8, u8),
    Remove(u8),
    SetAdd(u8, i64),
    SetDel(u8, i64),
    Nested(u8, u8, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, -3i64..3).prop_map(|(k, v)| Op::SetInt(k, v)),
        (0u8..6, 0u8..4).prop_map(|(k, v)| Op::SetStr(k, v)),
        (0u8..6).prop_map(Op::Remove),
        (0u8..3, 0i64..5).prop_map(|(k, v)| Op::SetAdd(k, v)),
        (0u8..3, 0i64..5).prop_map(|(k, v)| Op::SetDel(k, v)),
        (0u8..3, 0u8..3, 0i64..3).prop_map(|(k, j, v)| Op::Nested(k, j, v)),
    ]
}

fn apply(d: &mut Data, op: &Op) {
    let key = |p: &str, k: u8| format!("{p}{k}").into_bytes();
    match op {
        Op::SetInt(k, v) => {
            d.insert(key("k", *k), Field::Scalar(Scalar::Int(*v)));
        }
        Op::SetStr(k, v) => {
            d.insert(key("k", *k), Field::Scalar(Scalar::Str(vec![b'a' + v])));
        }
        Op::Remove(k) => {
            d.remove(&key("k", *k));
        }
        Op::SetAdd(k, v) | Op::SetDel(k, v) => {
            let slot = d
                .entry(key("s", *k))
                .or_insert_with(|| Field::Set(BTreeSet::new()));
            if !matches!(slot, Field::Set(_)) {
                *slot = Field::Set(BTreeSet::new());
            }
            if let Field::Set(s) = slot {
                if matches!(op, Op::SetAdd(..)) {
                    s.insert(Scalar::Int(*v));
                } else {
                    s.remove(&Scalar::Int(*v));
                }
            }
        }
        Op::Nested(k, j, v) => {
            let slot = d
                .entry(key("d", *k))
                .or_insert_with(|| Field::Dict(Data::new()));
            if let Field::Dict(sub) = slot {
                sub.insert(key("x", *j), Field::Scalar(Scalar::Int(*v)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Devices that start from one history and edit concurrently merge to the same bytes, in
    /// whatever order the messages arrive.
    #[test]
    fn merge_is_order_independent(
        base in prop::collection::vec(op(), 0..6),
        branches in prop::collection::vec(prop::collection::vec(op(), 1..5), 2..5),
        rounds in 1usize..3,
        order_seed in any::<u64>(),
    ) {
        let mut root = ConfigMessage::new(DEFAULT_LAG).increment(None);
        for o in &base {
            apply(root.data_mut().expect("mutable"), o);
        }
        let root_bytes = root.serialize(None);
        let root = ConfigMessage::parse(&root_bytes, None, DEFAULT_LAG, false).expect("root");
        let mut msgs = Vec::new();
        for (i, ops) in branches.iter().enumerate() {
            let mut m = root.clone();
            // Some branches move several seqnos ahead.
            for r in 0..(1 + (i % rounds)) {
                m = m.increment(None);
                for o in ops.iter().skip(r % ops.len()) {
                    apply(m.data_mut().expect("mutable"), o);
                }
            }
            msgs.push(m.serialize(None));
        }
        msgs.push(root_bytes);
        let reference = {
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            ConfigMessage::merge(&refs, None, false, DEFAULT_LAG).expect("merges").message.serialize(None)
        };
        // Every rotation and a seeded shuffle.
        let mut orders: Vec<Vec<usize>> = (0..msgs.len())
            .map(|r| (0..msgs.len()).map(|i| (i + r) % msgs.len()).collect())
            .collect();
        let mut shuffled: Vec<usize> = (0..msgs.len()).collect();
        let mut x = order_seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        orders.push(shuffled);
        orders.push((0..msgs.len()).rev().collect());
        for order in orders {
            let refs: Vec<&[u8]> = order.iter().map(|&i| msgs[i].as_slice()).collect();
            let merged = ConfigMessage::merge(&refs, None, false, DEFAULT_LAG).expect("merges");
            prop_assert_eq!(merged.message.serialize(None), reference.clone());
        }
    }

    /// Keys we do not know, at the top level and inside any data dict, survive parsing,
    /// re-serialization, increments and typed edits.
    #[test]
    fn unknown_keys_round_trip(
        top in prop::collection::btree_map(
            prop::sample::select(vec![&b"$"[..], b"%", b"'", b"0", b"9", b";", b">", b"A", b"z", b"}"]),
            -50i64..50, 0..4),
        inner in prop::collection::btree_map("[A-Zfgt]{1,2}", -50i64..50, 1..4),
        name in "[a-z]{0,8}",
    ) {
        // A contacts message from a newer client, with unknown keys everywhere.
        let peer = AccountId::standard([4; 32]);
        let mut data = Data::new();
        let mut info = Data::new();
        info.insert(b"n".to_vec(), Field::Scalar(Scalar::Str(b"Old".to_vec())));
        for (k, v) in &inner {
            if !matches!(k.as_str(), "N" | "A" | "E") {
                info.insert(k.as_bytes().to_vec(), Field::Scalar(Scalar::Int(*v)));
            }
        }
        let mut c = Data::new();
        c.insert(peer.as_bytes().to_vec(), Field::Dict(info.clone()));
        data.insert(b"c".to_vec(), Field::Dict(c));
        data.insert(b"Zfuture".to_vec(), Field::Set([Scalar::Int(1), s("x")].into_iter().collect()));
        let mut bytes = b"d1:#i3e".to_vec();
        for (k, v) in top.iter().filter(|(k, _)| **k < &b"&"[..]) {
            bytes.extend_from_slice(format!("1:{}i{v}e", k[0] as char).as_bytes());
        }
        let mut data_bytes = Vec::new();
        let data_msg = {
            let mut m = ConfigMessage::new_mutable(0, DEFAULT_LAG);
            *m.data_mut().expect("mutable") = data.clone();
            m.serialize(None)
        };
        // Take `&…` from a serialized message: "d1:#i0e1:&" … "1:<".
        let start = b"d1:#i0e1:&".len();
        let end = data_msg.windows(3).position(|w| w == b"1:<").expect("<");
        data_bytes.extend_from_slice(&data_msg[start..end]);
        bytes.extend_from_slice(b"1:&");
        bytes.extend_from_slice(&data_bytes);
        for (k, v) in top.iter().filter(|(k, _)| **k > &b"&"[..] && **k < &b"<"[..]) {
            bytes.extend_from_slice(format!("1:{}i{v}e", k[0] as char).as_bytes());
        }
        bytes.extend_from_slice(b"1:<le");
        bytes.extend_from_slice(b"1:=de");
        for (k, v) in top.iter().filter(|(k, _)| **k > &b"="[..]) {
            bytes.extend_from_slice(format!("1:{}i{v}e", k[0] as char).as_bytes());
        }
        bytes.push(b'e');
        let parsed = ConfigMessage::parse(&bytes, None, DEFAULT_LAG, false).expect("parses");
        prop_assert_eq!(parsed.serialize(None), bytes.clone());
        prop_assert_eq!(parsed.unknown().len(), top.len());
        // Through a device: merge it, rename the contact with the typed view, push, read back.
        let id = identity();
        let mut dev = user_config(CONTACTS, &id);
        let ct = crypt::encrypt(&crypt::pad(bytes.clone()), id.seed(), "Contacts");
        merge_all(&mut dev, &[("h".into(), ct)]);
        prop_assert_eq!(dev.data(), &data);
        dev.edit(|d| {
            let mut ct = contacts::get_or_new(d, &peer);
            ct.nickname = name.clone();
            ct.approved_me = true;
            contacts::set(d, &ct)
        }).expect("edit").expect("set");
        let p = dev.push().expect("push");
        let mut other = user_config(CONTACTS, &id);
        merge_all(&mut other, &[("h2".into(), p.messages[0].clone())]);
        let back = other.message().clone();
        prop_assert_eq!(back.unknown().len(), top.len());
        let Some(Field::Dict(c2)) = back.data().get(&b"c"[..]) else { panic!("c") };
        let Some(Field::Dict(info2)) = c2.get(&peer.as_bytes()[..]) else { panic!("contact") };
        for (k, v) in &info {
            if k.as_slice() != b"n" {
                prop_assert_eq!(info2.get(k), Some(v));
            }
        }
        prop_assert!(back.data().contains_key(&b"Zfuture"[..]));
        prop_assert_eq!(contacts::get(back.data(), &peer).map(|c| c.nickname), Some(name.clone()));
    }
}
