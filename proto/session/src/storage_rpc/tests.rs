//! Tests of the storage-RPC module against network-derived.json and hand-made bodies.

use super::sign::*;
use super::*;
use crate::err::RpcError;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const DERIVED: &str = include_str!("../../tests/data/network-derived.json");

fn vectors() -> Value {
    serde_json::from_str(DERIVED).expect("vector json")
}

fn identity() -> (SigningKey, UserPubkey, Ed25519Pubkey) {
    let v = vectors();
    let seed: [u8; 32] = hex::decode(v["identity"]["ed25519_seed_hex"].as_str().expect("seed"))
        .expect("hex")
        .try_into()
        .expect("32");
    let key = SigningKey::from_bytes(&seed);
    let ed = Ed25519Pubkey(key.verifying_key().to_bytes());
    assert_eq!(ed.to_hex(), v["identity"]["ed25519_pubkey_hex"]);
    let sid = UserPubkey::from_hex(v["identity"]["session_id"].as_str().expect("sid")).expect("id");
    (key, sid, ed)
}

#[test]
fn message_hash_vectors() {
    let v = vectors();
    let cases = v["message_hash"].as_array().expect("cases");
    assert_eq!(cases.len(), 4);
    for c in cases {
        let mut account = [0u8; 33];
        account[0] = u8::try_from(c["netid"].as_u64().expect("netid")).expect("byte");
        hex::decode_to_slice(c["pubkey_hex"].as_str().expect("pk"), &mut account[1..])
            .expect("hex");
        let ns = i16::try_from(c["namespace"].as_i64().expect("ns")).expect("i16");
        let data = c["data_utf8"].as_str().expect("data").as_bytes();
        let h = message_hash(&account, ns, data);
        assert_eq!(h, c["hash"].as_str().expect("hash"), "ns {ns}");
        assert!(is_valid_hash(&h));
    }
}

#[test]
fn request_signature_vectors() {
    let v = vectors();
    let (key, _, _) = identity();
    let cases = v["request_signatures"].as_array().expect("cases");
    let h1 = "SHpOiupvBW6BNdF6fHuYrA4JxSEBflu9BHSDSNj2+eY";
    let h2 = "8oADur6v0eBx3EWPkj/F1SFPl3NgfZCRzOtTRXhQdw8";
    let t = 1_700_000_000_000;
    // Our builders, in the vector order.
    let ours: Vec<Vec<u8>> = vec![
        retrieve_message(0, t),
        retrieve_message(2, t),
        retrieve_message(-10, t),
        store_message(2, t),
        delete_all_message(NamespaceOrAll::All, t),
        delete_all_message(NamespaceOrAll::Ns(0), t),
        delete_message(&[h1, h2]),
        expire_message(ExpireMode::Extend, &[1_700_086_400_000], &[h1]),
        get_expiries_message(t, &[h1]),
    ];
    assert_eq!(cases.len(), ours.len());
    for (c, msg) in cases.iter().zip(&ours) {
        assert_eq!(
            std::str::from_utf8(msg).expect("utf8"),
            c["message_utf8"].as_str().expect("msg"),
            "{}",
            c["case"]
        );
        let sig = sign(&key, msg);
        assert_eq!(hex::encode(sig.0), c["signature_hex"], "{}", c["case"]);
        assert_eq!(sig.to_base64(), c["signature_b64"], "{}", c["case"]);
        assert!(verify(&key.verifying_key().to_bytes(), msg, &sig));
    }
}

fn signed_retrieve(ns: i16, ts: u64) -> Request {
    let (key, sid, ed) = identity();
    let sig = sign(&key, &retrieve_message(ns, ts));
    let body = json!({
        "method": "retrieve",
        "params": {
            "pubKey": sid.to_hex(), "namespace": ns, "lastHash": "",
            "timestamp": ts, "signature": sig.to_base64(), "pubkey_ed25519": ed.to_hex(),
        }
    });
    Request::from_json(body.to_string().as_bytes()).expect("parses")
}

#[test]
fn retrieve_parse_and_verify_05_with_ed_key() {
    let req = signed_retrieve(0, 1_700_000_000_000);
    let Request::Retrieve(p) = &req else {
        panic!("not a retrieve: {req:?}")
    };
    assert_eq!(p.last_hash(), None);
    req.verify_signature().expect("verifies");

    // A different Ed25519 key that does not convert to the account's X25519 key is rejected.
    let mut bad = p.clone();
    bad.pubkey_ed25519 = Some(Ed25519Pubkey(
        SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes(),
    ));
    let err = Request::Retrieve(bad)
        .verify_signature()
        .expect_err("mismatch");
    assert_eq!(err.status(), 401);

    // A tampered timestamp breaks the signature.
    let mut bad = p.clone();
    bad.timestamp = Some(1_700_000_000_001);
    assert!(Request::Retrieve(bad).verify_signature().is_err());

    // Without the ed key the 05 key bytes (X25519) are not an Ed25519 key that signed.
    let mut bad = p.clone();
    bad.pubkey_ed25519 = None;
    assert!(Request::Retrieve(bad).verify_signature().is_err());
}

#[test]
fn retrieve_auth_rules() {
    let (_, sid, _) = identity();
    // ns 0 needs a signature: an unsigned request parses, then fails verification (401).
    let body = json!({"method":"retrieve","params":{"pubkey": sid.to_hex()}});
    let req = Request::from_json(body.to_string().as_bytes()).expect("parses unsigned");
    let err = req.verify_signature().expect_err("needs sig");
    assert!(matches!(
        err,
        RpcError::BadSignature {
            method: "retrieve",
            ..
        }
    ));
    assert_eq!(err.status(), 401);
    // Half the auth fields is a malformed request (400).
    let body = json!({"method":"retrieve","params":{"pubkey": sid.to_hex(), "timestamp": 1_700_000_000_000u64}});
    let err = Request::from_json(body.to_string().as_bytes()).expect_err("sig missing");
    assert!(matches!(
        err,
        RpcError::BadParams {
            method: "retrieve",
            ..
        }
    ));
    // Public outbox -1 and legacy -10 do not.
    for ns in [-1, -21, -10] {
        let body = json!({"method":"retrieve","params":{"pubkey": sid.to_hex(), "namespace": ns}});
        let req = Request::from_json(body.to_string().as_bytes()).expect("no auth needed");
        req.verify_signature().expect("nothing to verify");
    }
    // Bad last_hash.
    let body = json!({"method":"retrieve","params":{"pubkey": sid.to_hex(), "namespace": -10, "last_hash": "short"}});
    assert!(Request::from_json(body.to_string().as_bytes()).is_err());
}

#[test]
fn group_account_signs_with_its_own_key() {
    // 03 accounts: the 32 key bytes are the Ed25519 key.
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut id = [3u8; 33];
    id[1..].copy_from_slice(&key.verifying_key().to_bytes());
    let account = UserPubkey(id);
    let ts = 1_700_000_000_000;
    let sig = sign(&key, &store_message(11, ts));
    let body = json!({"method":"store","params":{
        "pubkey": account.to_hex(), "namespace": 11, "timestamp": ts, "ttl": 86_400_000,
        "data": "aGVsbG8=", "signature": sig.to_base64()}});
    let req = Request::from_json(body.to_string().as_bytes()).expect("parses");
    req.verify_signature().expect("verifies");
    // pubkey_ed25519 is refused for non-05 accounts.
    let mut v = body.clone();
    v["params"]["pubkey_ed25519"] = json!(hex::encode([1u8; 32]));
    assert!(Request::from_json(v.to_string().as_bytes()).is_err());
    // Unsigned store to ns 11 fails verification.
    let mut v = body;
    v["params"]
        .as_object_mut()
        .expect("object")
        .remove("signature");
    let req = Request::from_json(v.to_string().as_bytes()).expect("parses");
    assert_eq!(req.verify_signature().expect_err("unsigned").status(), 401);
}

#[test]
fn subaccount_signatures() {
    let owner = SigningKey::from_bytes(&[3; 32]);
    let sub = SigningKey::from_bytes(&[4; 32]);
    let mut id = [3u8; 33];
    id[1..].copy_from_slice(&owner.verifying_key().to_bytes());
    let account = UserPubkey(id);
    let mut token = [0u8; 36];
    token[0] = 3;
    token[1] = SubaccountToken::READ;
    token[4..].copy_from_slice(&sub.verifying_key().to_bytes());
    let token_sig = sign(&owner, &token);
    let ts = 1_700_000_000_000;
    let params = |flags: u8, token_sig: &Sig| {
        let mut t = token;
        t[1] = flags;
        let sig = sign(&sub, &retrieve_message(12, ts));
        json!({"method":"retrieve","params":{
            "pubkey": account.to_hex(), "namespace": 12, "timestamp": ts,
            "signature": sig.to_base64(), "subaccount": hex::encode(t),
            "subaccount_sig": token_sig.to_base64()}})
    };
    let ok = Request::from_json(params(1, &token_sig).to_string().as_bytes()).expect("parses");
    ok.verify_signature().expect("read token verifies");
    // Flags changed after signing: token signature fails.
    let req = Request::from_json(params(3, &token_sig).to_string().as_bytes()).expect("parses");
    assert!(req.verify_signature().is_err());
    // A write-only token cannot read.
    let mut t = token;
    t[1] = SubaccountToken::WRITE;
    let wsig = sign(&owner, &t);
    let req = Request::from_json(params(2, &wsig).to_string().as_bytes()).expect("parses");
    assert!(req.verify_signature().is_err());
    // Token without its signature is a parse error.
    let mut v = params(1, &token_sig);
    v["params"]
        .as_object_mut()
        .expect("object")
        .remove("subaccount_sig");
    assert!(Request::from_json(v.to_string().as_bytes()).is_err());
}

#[test]
fn subaccount_revocation_requests() {
    let owner = SigningKey::from_bytes(&[3; 32]);
    let mut id = [3u8; 33];
    id[1..].copy_from_slice(&owner.verifying_key().to_bytes());
    let account = UserPubkey(id);
    let tokens = [SubaccountToken([7; 36]), SubaccountToken([8; 36])];
    let ts = 1_700_000_000_000;
    let msg = revoke_subaccount_message(ts, &tokens);
    assert_eq!(&msg[..30], b"revoke_subaccount1700000000000");
    assert_eq!(&msg[30..66], &[7; 36]);
    let req = Request::RevokeSubaccount(RevokeSubaccountParams {
        pubkey: account,
        revoke: OneOrMany(tokens.to_vec()),
        timestamp: ts,
        signature: sign(&owner, &msg),
        pubkey_ed25519: None,
    });
    // Client JSON parses back to the same request, which verifies; it is recursive and names
    // its account but carries no subaccount.
    let back = Request::from_json(&req.to_json()).expect("round trip");
    assert_eq!(back, req);
    back.verify_signature().expect("owner signature");
    assert!(back.is_recursive());
    assert_eq!(back.account(), Some(&account));
    assert!(back.subaccount().is_none());
    // The unrevoke message is not the revoke message.
    let un = Request::UnrevokeSubaccount(UnrevokeSubaccountParams {
        pubkey: account,
        unrevoke: OneOrMany(tokens.to_vec()),
        timestamp: ts,
        signature: sign(&owner, &msg),
        pubkey_ed25519: None,
    });
    assert!(un.verify_signature().is_err());
    // Too many, none, a bad token, a 05 key on a 03 account.
    let v: Value = serde_json::from_slice(&req.to_json()).expect("json");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = v.clone();
        f(&mut v["params"]);
        Request::from_json(v.to_string().as_bytes())
    };
    assert!(with(&|p| p["revoke"] = json!(vec![hex::encode([1u8; 36]); 51])).is_err());
    assert!(with(&|p| p["revoke"] = json!([])).is_err());
    assert!(with(&|p| p["revoke"] = json!(["zz"])).is_err());
    assert!(with(&|p| p["pubkey_ed25519"] = json!(hex::encode([1u8; 32]))).is_err());
    // A single token (not a list) is accepted.
    assert!(with(&|p| p["revoke"] = json!(hex::encode([7u8; 36]))).is_ok());
    // The per-member result signature covers account ‖ timestamp ‖ tokens.
    let r = revocation_result_message(&account, ts, &tokens);
    assert!(r.starts_with(account.to_hex().as_bytes()));
    assert_eq!(r.len(), 66 + 13 + 72);
}

#[test]
fn store_parse_legacy_forms() {
    let (_, sid, _) = identity();
    let body = json!({"method":"store","params":{
        "pubKey": sid.to_hex(), "timestamp": "1700000000000", "ttl": "86400000", "data": "YWJjIDEyMw=="}});
    let req = Request::from_json(body.to_string().as_bytes()).expect("parses");
    let Request::Store(p) = &req else {
        panic!("not a store")
    };
    assert_eq!(p.timestamp, 1_700_000_000_000);
    assert_eq!(p.expiry_ms(), 1_700_086_400_000);
    assert_eq!(p.data.0, b"abc 123");
    assert_eq!(p.namespace, 0);
    req.verify_signature()
        .expect("public inbox: no signature needed");
    assert_eq!(
        message_hash(&p.pubkey.0, p.namespace, &p.data.0),
        "SHpOiupvBW6BNdF6fHuYrA4JxSEBflu9BHSDSNj2+eY"
    );

    let bad = |params: Value| {
        let body = json!({"method":"store","params": params});
        Request::from_json(body.to_string().as_bytes()).expect_err("must fail")
    };
    let pk = sid.to_hex();
    // seconds instead of ms
    bad(json!({"pubkey": pk, "timestamp": 1_700_000u64, "ttl": 1000, "data": ""}));
    // both ttl and expiry, and neither
    bad(
        json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "ttl": 1000, "expiry": 1_700_000_100_000u64, "data": ""}),
    );
    bad(json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "data": ""}));
    // bad base64, bad pubkey, namespace out of range, oversize data
    bad(json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "ttl": 1, "data": "***"}));
    bad(json!({"pubkey": "05abc", "timestamp": 1_700_000_000_000u64, "ttl": 1, "data": ""}));
    bad(
        json!({"pubkey": pk, "namespace": 40000, "timestamp": 1_700_000_000_000u64, "ttl": 1, "data": ""}),
    );
    let big = wire::encode_base64(&vec![0u8; MAX_MESSAGE_BODY + 1]);
    bad(json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "ttl": 1, "data": big}));
    // negative and non-numeric string ttl
    bad(json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "ttl": "-5", "data": ""}));
    bad(json!({"pubkey": pk, "timestamp": 1_700_000_000_000u64, "ttl": -5, "data": ""}));
    // both pubkey and pubKey
    bad(
        json!({"pubkey": pk, "pubKey": pk, "timestamp": 1_700_000_000_000u64, "ttl": 1, "data": ""}),
    );
}

#[test]
fn method_dispatch_errors() {
    let e = Request::from_json(br#"{"method":"frobnicate","params":{}}"#).expect_err("unknown");
    assert_eq!(e, RpcError::UnknownMethod("frobnicate".into()));
    assert_eq!(e.status(), 400);
    assert!(matches!(
        Request::from_json(b"not json"),
        Err(RpcError::BadJson(_))
    ));
    assert!(matches!(
        Request::from_json(br#"{"params":{}}"#),
        Err(RpcError::BadJson(_))
    ));
    assert_eq!(
        Request::from_json(br#"{"jsonrpc":"2.0","method":"info"}"#),
        Ok(Request::Info)
    );
    let (_, sid, _) = identity();
    let alias = json!({"method":"get_snodes_for_pubkey","params":{"pubKey": sid.to_hex()}});
    let req = Request::from_json(alias.to_string().as_bytes()).expect("alias");
    assert_eq!(req.method(), "get_swarm");
    assert_eq!(req.account(), Some(&sid));
}

#[test]
fn batch_rules_and_round_trip() {
    let (_, sid, _) = identity();
    let sub = json!({"method":"get_swarm","params":{"pubkey": sid.to_hex()}});
    let one = json!({"method":"batch","params":{"requests":[sub, {"method":"info","params":{}}]}});
    let req = Request::from_json(one.to_string().as_bytes()).expect("batch");
    let Request::Batch(subs) = &req else {
        panic!("not a batch")
    };
    assert_eq!(subs.len(), 2);
    assert_eq!(Request::from_json(&req.to_json()).expect("round trip"), req);

    let nested = json!({"method":"sequence","params":{"requests":[one]}});
    let e = Request::from_json(nested.to_string().as_bytes()).expect_err("nested");
    assert!(matches!(
        e,
        RpcError::BadParams {
            method: "sequence",
            ..
        }
    ));
    let empty = json!({"method":"batch","params":{"requests":[]}});
    assert!(Request::from_json(empty.to_string().as_bytes()).is_err());
    let many: Vec<Value> = (0..=BATCH_MAX)
        .map(|_| json!({"method":"info","params":{}}))
        .collect();
    let too_many = json!({"method":"batch","params":{"requests": many}});
    assert!(Request::from_json(too_many.to_string().as_bytes()).is_err());
    let bad_sub = json!({"method":"batch","params":{"requests":[{"method":"nope","params":{}}]}});
    assert!(Request::from_json(bad_sub.to_string().as_bytes()).is_err());
}

#[test]
fn signed_requests_round_trip() {
    let (key, sid, ed) = identity();
    let t = 1_700_000_000_000;
    let h = "SHpOiupvBW6BNdF6fHuYrA4JxSEBflu9BHSDSNj2+eY".to_owned();
    let reqs = vec![
        signed_retrieve(5, t),
        Request::Delete(DeleteParams {
            pubkey: sid,
            messages: OneOrMany(vec![h.clone()]),
            required: true,
            signature: sign(&key, &delete_message(&[&h])),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::DeleteAll(DeleteAllParams {
            pubkey: sid,
            namespace: NamespaceOrAll::All,
            timestamp: t,
            signature: sign(&key, &delete_all_message(NamespaceOrAll::All, t)),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::Expire(ExpireParams {
            pubkey: sid,
            messages: OneOrMany(vec![h.clone()]),
            expiry: OneOrMany(vec![t + 1000]),
            shorten: true,
            extend: false,
            signature: sign(
                &key,
                &expire_message(ExpireMode::Shorten, &[t + 1000], &[&h]),
            ),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::ExpireAll(ExpireAllParams {
            pubkey: sid,
            namespace: NamespaceOrAll::Ns(-21),
            expiry: t,
            signature: sign(&key, &expire_all_message(NamespaceOrAll::Ns(-21), t)),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::DeleteBefore(DeleteBeforeParams {
            pubkey: sid,
            namespace: NamespaceOrAll::Ns(3),
            before: t,
            signature: sign(&key, &delete_before_message(NamespaceOrAll::Ns(3), t)),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::GetExpiries(GetExpiriesParams {
            pubkey: sid,
            messages: OneOrMany(vec![h.clone()]),
            timestamp: t,
            signature: sign(&key, &get_expiries_message(t, &[&h])),
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::Store(StoreParams {
            pubkey: sid,
            namespace: 2,
            timestamp: t,
            ttl: None,
            expiry: Some(t + 60_000),
            data: Base64Bytes(b"config".to_vec()),
            signature: Some(sign(&key, &store_message(2, t))),
            sig_timestamp: None,
            pubkey_ed25519: Some(ed),
            sub: SubaccountAuth::default(),
        }),
        Request::OxendRequest(OxendRequestParams::get_service_nodes(
            &GetServiceNodesParams::default(),
        )),
    ];
    for r in reqs {
        let back = Request::from_json(&r.to_json()).expect("round trip parses");
        assert_eq!(back, r);
        back.verify_signature().expect("verifies");
        assert!(r.account().is_some() || r.method() == "oxend_request");
    }
}

#[test]
fn namespace_rules() {
    assert_eq!(ns_str(0), "");
    assert_eq!(ns_str(-10), "-10");
    assert!(is_public_inbox(0) && is_public_inbox(-10) && is_public_inbox(20));
    assert!(!is_public_inbox(2) && !is_public_inbox(-11));
    assert!(is_public_outbox(-1) && is_public_outbox(-21) && is_public_outbox(-41));
    assert!(!is_public_outbox(1) && !is_public_outbox(-11) && !is_public_outbox(i16::MIN));
    assert!(is_unrevocable(-11) && is_unrevocable(-111) && !is_unrevocable(11));
    assert!(store_requires_auth(2) && !store_requires_auth(0));
    assert!(retrieve_requires_auth(0) && retrieve_requires_auth(2));
    assert!(!retrieve_requires_auth(-10) && !retrieve_requires_auth(-1));
    assert_eq!(max_ttl_ms(0), TTL_MAX_PUBLIC_MS);
    assert_eq!(max_ttl_ms(2), TTL_MAX_PRIVATE_MS);
    assert_eq!(MAX_MESSAGE_BODY_BASE64, 102_400);
    assert!(check_timestamp(1000, 61_000, SIGNATURE_TOLERANCE_MS));
    assert!(!check_timestamp(1000, 61_001, SIGNATURE_TOLERANCE_MS));
}

#[test]
fn result_signatures_verify() {
    let node = SigningKey::from_bytes(&[7; 32]);
    let node_pk = node.verifying_key().to_bytes();
    let (_, sid, _) = identity();
    let h1 = "SHpOiupvBW6BNdF6fHuYrA4JxSEBflu9BHSDSNj2+eY";
    let h2 = "8oADur6v0eBx3EWPkj/F1SFPl3NgfZCRzOtTRXhQdw8";

    let m = delete_result_message(&sid, &[h2, h1], &[h1, h2]);
    let mut want = sid.to_hex();
    want += h2;
    want += h1;
    want += h1;
    want += h2;
    assert_eq!(m, want.as_bytes());

    let all = HashesByNamespace::All(
        [
            ("0".to_owned(), vec![h2.to_owned()]),
            ("2".to_owned(), vec![h1.to_owned()]),
        ]
        .into(),
    );
    let m = delete_all_result_message(&sid, 1_700_000_000_000, &all.sorted_hashes());
    // Sorted across namespaces: "8oAD…" sorts before "SHpO…".
    assert_eq!(
        m,
        format!("{}1700000000000{h2}{h1}", sid.to_hex()).as_bytes()
    );

    let unchanged = [(h2.to_owned(), 1_700_000_000_500u64)].into();
    let m = expire_result_message(&sid, &[1_700_000_001_000], &[h1, h2], &[h1], &unchanged);
    assert_eq!(
        m,
        format!("{}1700000001000{h1}{h2}{h1}{h2}1700000000500", sid.to_hex()).as_bytes()
    );

    // A store result as a member would write it, parsed and checked by a client.
    let sig = sign(&node, &store_result_message(h1));
    let body = json!({
        "swarm": {
            hex::encode(node_pk): {"hash": h1, "signature": sig.to_base64(), "expiry": 1_700_000_000_000u64},
            "aa": {"failed": true, "timeout": true},
            "bb": {"failed": true, "code": "400", "reason": "nope"}
        },
        "hash": h1, "t": 1_700_000_000_000u64, "hf": [19, 3]
    });
    let parsed: SwarmResults<StoreResult> = serde_json::from_value(body).expect("parses");
    assert!(parsed.any_ok());
    let NodeResult::Ok(mine) = &parsed.swarm[&hex::encode(node_pk)] else {
        panic!("expected a result")
    };
    assert!(verify(
        &node_pk,
        &store_result_message(&mine.hash),
        &mine.signature
    ));
    assert!(!verify(
        &node_pk,
        &store_result_message(h2),
        &mine.signature
    ));
    assert!(matches!(parsed.swarm["aa"], NodeResult::Failed(_)));
}

#[test]
fn swarm_and_seed_replies() {
    let body = json!({
        "snodes": [{
            "address": "xyz.snode", "pubkey_legacy": "00",
            "pubkey_x25519": hex::encode([1u8; 32]), "pubkey_ed25519": hex::encode([2u8; 32]),
            "port": "22021", "port_https": 22021, "port_omq": 22020, "port_quic": 22020,
            "ip": "127.0.0.1"
        }],
        "swarm": "1f3a", "t": 1_700_000_000_000u64, "hf": [19, 3]
    });
    let r: SwarmReply = serde_json::from_value(body.clone()).expect("swarm reply");
    assert_eq!(r.swarm, crate::swarm::SwarmId(0x1f3a));
    assert_eq!(r.snodes[0].pubkey_ed25519.0, [2u8; 32]);
    let again: Value = serde_json::to_value(&r).expect("ser");
    assert_eq!(again, body);

    let seed = SeedRequest::get_n_service_nodes();
    let js = serde_json::to_string(&seed).expect("ser");
    assert_eq!(SeedRequest::from_json(js.as_bytes()).expect("parses"), seed);
    assert!(js.contains("\"requested_unlock_height\":true"));
    assert!(SeedRequest::from_json(br#"{"jsonrpc":"2.0","method":"x"}"#).is_err());

    let reply = json!({"jsonrpc":"2.0","id":0,"result":{"service_node_states":[
        {"public_ip":"127.0.0.1","storage_port":22021,"pubkey_x25519":hex::encode([1u8;32]),
         "pubkey_ed25519":hex::encode([2u8;32])}], "height": 12}});
    let r: SeedReply = serde_json::from_value(reply).expect("seed reply");
    assert_eq!(r.result.service_node_states.len(), 1);
    assert_eq!(r.result.height, Some(12));

    let retr = json!({"messages":[{"hash":"h","timestamp":1,"expiration":2,"data":"YWJj"}],"more":false,"t":5,"hf":[19,3]});
    let r: RetrieveReply = serde_json::from_value(retr).expect("retrieve reply");
    assert_eq!(r.messages[0].data.0, b"abc");
}
