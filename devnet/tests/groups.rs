//! What groups need from the snodes: subaccount authentication, revocation (`revoke_subaccount`
//! / `unrevoke_subaccount`, the 50-entry list) and the group namespaces, against one shared
//! devnet over real sockets.
//!
//! As on the real storage server, a snode does not know who is an admin: any token with the
//! write flag may store in ns 11–14. What keeps keys and configs (12–14) admin-only is their
//! signature by the group key, checked by the clients; the tests show both halves.

#[path = "support/client.rs"]
mod client;

use std::sync::OnceLock;

use client::*;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use session_devnet::{Devnet, DevnetConfig, HttpsClient};
use session_proto::storage_rpc::sign::{
    retrieve_message, revocation_result_message, revoke_subaccount_message, sign, store_message,
    unrevoke_subaccount_message,
};
use session_proto::storage_rpc::wire::{decode_base64, encode_base64};
use session_proto::storage_rpc::{SubaccountToken, UserPubkey};

struct Shared {
    _rt: tokio::runtime::Runtime,
    devnet: Devnet,
}

/// One devnet for the whole binary, served by its own runtime (tests run on theirs).
fn net() -> &'static Devnet {
    static NET: OnceLock<Shared> = OnceLock::new();
    &NET.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let cfg = DevnetConfig {
                nodes: 6,
                swarm_size: 3,
                ..Default::default()
            };
            let devnet = rt.block_on(Devnet::start(cfg)).expect("devnet starts");
            Shared { _rt: rt, devnet }
        })
        .join()
        .expect("devnet thread")
    })
    .devnet
}

/// A subaccount of `group`: its own signing key, a token `03 flags 00 00 pk` and the group's
/// signature over the token (the storage server's own test builds them the same way).
struct Sub {
    key: SigningKey,
    token: [u8; 36],
    token_sig: String,
}

impl Sub {
    fn new(group: &Acct, seed: u8, flags: u8) -> Sub {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut token = [0u8; 36];
        token[0] = 0x03;
        token[1] = flags;
        token[4..].copy_from_slice(key.verifying_key().as_bytes());
        let token_sig = group.sign(&token);
        Sub {
            key,
            token,
            token_sig,
        }
    }

    fn auth(&self, group: &Acct, mut params: Value, msg: &[u8]) -> Value {
        params["pubkey"] = json!(group.hex);
        params["subaccount"] = json!(encode_base64(&self.token));
        params["subaccount_sig"] = json!(self.token_sig);
        params["signature"] = json!(sign(&self.key, msg).to_base64());
        params
    }

    fn retrieve(&self, group: &Acct, ns: i16, now: i64) -> Value {
        let p = json!({"namespace": ns, "timestamp": now});
        self.auth(group, p, &retrieve_message(ns, now as u64))
    }

    fn store(&self, group: &Acct, ns: i16, data: &[u8], now: i64) -> Value {
        let p = json!({"namespace": ns, "timestamp": now, "ttl": 60_000,
                       "data": encode_base64(data)});
        self.auth(group, p, &store_message(ns, now as u64))
    }
}

fn revoke_params(group: &Acct, key: &str, tokens: &[[u8; 36]], now: i64) -> Value {
    let toks: Vec<SubaccountToken> = tokens.iter().map(|t| SubaccountToken(*t)).collect();
    let msg = if key == "revoke" {
        revoke_subaccount_message(now as u64, &toks)
    } else {
        unrevoke_subaccount_message(now as u64, &toks)
    };
    let list: Vec<String> = tokens.iter().map(hex::encode).collect();
    group.signed(json!({key: list, "timestamp": now}), msg)
}

/// The URL of a member of `group`'s swarm.
fn member_url(d: &Devnet, group: &Acct, i: usize) -> String {
    let (_, members) = d.swarm_for(&group.id).expect("swarm");
    d.node(members[i % members.len()]).url()
}

async fn retrieve_count(c: &HttpsClient, url: &str, params: Value) -> (u16, usize, String) {
    let r = rpc(c, url, "retrieve", params).await;
    let n = r
        .json()
        .and_then(|v| v["messages"].as_array().map(Vec::len))
        .unwrap_or(0);
    (r.status, n, r.text())
}

#[tokio::test]
async fn subaccount_reads_and_writes_with_its_flags() {
    let d = net();
    let c = HttpsClient::new();
    let group = Acct::new(7001, 0x03);
    let url = member_url(d, &group, 0);
    let now = now_ms();
    // The admin (group key) stores in ns 11; a read|write member reads it and posts too.
    let r = rpc(&c, &url, "store", group.store(11, b"from admin", now)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rw = Sub::new(&group, 1, SubaccountToken::READ | SubaccountToken::WRITE);
    let r = rpc(&c, &url, "store", rw.store(&group, 11, b"from member", now)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, n, text) = retrieve_count(&c, &url, rw.retrieve(&group, 11, now)).await;
    assert_eq!((status, n), (200, 2), "{text}");

    // The snode does not know admins: a write token may store in the keys namespace too.
    let r = rpc(
        &c,
        &url,
        "store",
        rw.store(&group, 12, b"not really keys", now),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Read-only: may retrieve, may not store.
    let ro = Sub::new(&group, 2, SubaccountToken::READ);
    let (status, _, text) = retrieve_count(&c, &url, ro.retrieve(&group, 11, now)).await;
    assert_eq!(status, 200, "{text}");
    let r = rpc(&c, &url, "store", ro.store(&group, 11, b"x", now)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "store signature verification failed")
    );
    // Write-only: may not retrieve.
    let wo = Sub::new(&group, 3, SubaccountToken::WRITE);
    let (status, _, _) = retrieve_count(&c, &url, wo.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);

    // A token the group did not sign.
    let mut forged = Sub::new(&group, 4, 3);
    forged.token_sig = Acct::new(7002, 0x03).sign(&forged.token);
    let (status, _, _) = retrieve_count(&c, &url, forged.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);
    // A token for the 05 prefix used on a 03 account.
    let mut other_prefix = Sub::new(&group, 5, 3);
    other_prefix.token[0] = 0x05;
    other_prefix.token_sig = group.sign(&other_prefix.token);
    let (status, _, _) = retrieve_count(&c, &url, other_prefix.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);
    // The request signed by the member's key but carrying someone else's token.
    let mut swapped = Sub::new(&group, 6, 3);
    swapped.key = SigningKey::from_bytes(&[9; 32]);
    let (status, _, _) = retrieve_count(&c, &url, swapped.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);
    // Half of the pair, or a malformed token: 400.
    let mut p = rw.retrieve(&group, 11, now);
    p.as_object_mut().expect("object").remove("subaccount_sig");
    assert_eq!(rpc(&c, &url, "retrieve", p).await.status, 400);
    let mut p = rw.retrieve(&group, 11, now);
    p["subaccount"] = json!("AAAA");
    assert_eq!(rpc(&c, &url, "retrieve", p).await.status, 400);
}

#[tokio::test]
async fn revoked_subaccount_reads_only_the_kicked_namespace() {
    let d = net();
    let c = HttpsClient::new();
    let group = Acct::new(7101, 0x03);
    let url = member_url(d, &group, 1);
    let now = now_ms();
    for (ns, body) in [(11, &b"message"[..]), (-11, b"you were kicked")] {
        let r = rpc(&c, &url, "store", group.store(ns, body, now)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let dude = Sub::new(&group, 11, 3);
    let r = rpc(
        &c,
        &url,
        "revoke_subaccount",
        revoke_params(&group, "revoke", &[dude.token], now),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Every member applied it and signed (account ‖ timestamp ‖ token).
    let v = r.json().expect("json");
    let swarm = v["swarm"].as_object().expect("swarm");
    assert_eq!(swarm.len(), 3);
    let pk = UserPubkey(group.id);
    let signed = revocation_result_message(&pk, now as u64, &[SubaccountToken(dude.token)]);
    for (ed, res) in swarm {
        let sig = decode_base64(res["signature"].as_str().expect("sig")).expect("b64");
        let key: [u8; 32] = hex::decode(ed).expect("hex").try_into().expect("32");
        ed25519_dalek::VerifyingKey::from_bytes(&key)
            .expect("key")
            .verify_strict(
                &signed,
                &ed25519_dalek::Signature::from_slice(&sig).expect("64"),
            )
            .expect("member signature verifies");
        assert!(res.get("count").is_none());
    }

    // Every member refuses the token now, except for ns −11.
    for i in 0..3 {
        let url = member_url(d, &group, i);
        let r = rpc(&c, &url, "retrieve", dude.retrieve(&group, 11, now)).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (401, "retrieve signature verification failed")
        );
        let (status, n, text) = retrieve_count(&c, &url, dude.retrieve(&group, -11, now)).await;
        assert_eq!((status, n), (200, 1), "{text}");
        let r = rpc(
            &c,
            &url,
            "store",
            dude.store(&group, 11, b"still here?", now),
        )
        .await;
        assert_eq!(r.status, 401);
        // Storing into −11 is a write, not a retrieve: refused too.
        let r = rpc(&c, &url, "store", dude.store(&group, -11, b"x", now)).await;
        assert_eq!(r.status, 401);
    }
    // Another member is unaffected.
    let other = Sub::new(&group, 12, 3);
    let (status, n, _) = retrieve_count(&c, &url, other.retrieve(&group, 11, now)).await;
    assert_eq!((status, n), (200, 1));

    // Unrevoke: count 1 from each member, and the token works again.
    let r = rpc(
        &c,
        &url,
        "unrevoke_subaccount",
        revoke_params(&group, "unrevoke", &[dude.token, other.token], now + 1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    for res in v["swarm"].as_object().expect("swarm").values() {
        assert_eq!(res["count"], json!(1));
    }
    let (status, n, _) = retrieve_count(&c, &url, dude.retrieve(&group, 11, now)).await;
    assert_eq!((status, n), (200, 1));
}

#[tokio::test]
async fn only_the_newest_fifty_revocations_are_kept() {
    let d = net();
    let c = HttpsClient::new();
    let group = Acct::new(7201, 0x03);
    let url = member_url(d, &group, 2);
    let now = now_ms();
    let r = rpc(&c, &url, "store", group.store(11, b"m", now)).await;
    assert_eq!(r.status, 200);
    let dude = Sub::new(&group, 21, 3);
    let first = revoke_params(&group, "revoke", &[dude.token], now);
    assert_eq!(rpc(&c, &url, "revoke_subaccount", first).await.status, 200);
    let others: Vec<[u8; 36]> = (0..50u8)
        .map(|i| Sub::new(&group, 100 + i, 3).token)
        .collect();
    let r = rpc(
        &c,
        &url,
        "revoke_subaccount",
        revoke_params(&group, "revoke", &others[..49], now),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, _, _) = retrieve_count(&c, &url, dude.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);
    let r = rpc(
        &c,
        &url,
        "revoke_subaccount",
        revoke_params(&group, "revoke", &others[49..], now),
    )
    .await;
    assert_eq!(r.status, 200);
    let (status, n, _) = retrieve_count(&c, &url, dude.retrieve(&group, 11, now)).await;
    assert_eq!((status, n), (200, 1));
}

#[tokio::test]
async fn revocation_inside_a_sequence_then_store() {
    let d = net();
    let c = HttpsClient::new();
    let group = Acct::new(7301, 0x03);
    let url = member_url(d, &group, 0);
    let now = now_ms();
    let dude = Sub::new(&group, 31, 3);
    // What an admin sends when removing a member: the kicked notice, then the revocation.
    let reqs = json!({"requests": [
        {"method": "store", "params": group.store(-11, b"kicked", now)},
        {"method": "revoke_subaccount", "params": revoke_params(&group, "revoke", &[dude.token], now)},
    ]});
    let r = rpc(&c, &url, "sequence", reqs).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for res in results {
        assert_eq!(res["code"], json!(200), "{res}");
    }
    let (status, _, _) = retrieve_count(&c, &url, dude.retrieve(&group, 11, now)).await;
    assert_eq!(status, 401);
    let (status, n, _) = retrieve_count(&c, &url, dude.retrieve(&group, -11, now)).await;
    assert_eq!((status, n), (200, 1));
}

#[tokio::test]
async fn bad_revocation_requests() {
    let d = net();
    let c = HttpsClient::new();
    let group = Acct::new(7401, 0x03);
    let url = member_url(d, &group, 1);
    let now = now_ms();
    let dude = Sub::new(&group, 41, 3);
    let call = |p: Value| rpc(&c, &url, "revoke_subaccount", p);

    // Signed by a member's subaccount key instead of the group key.
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    let toks = [SubaccountToken(dude.token)];
    p["signature"] =
        json!(sign(&dude.key, &revoke_subaccount_message(now as u64, &toks)).to_base64());
    let r = call(p).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "revoke_subaccount signature verification failed")
    );
    // A signature over other tokens.
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    p["revoke"] = json!([hex::encode(Sub::new(&group, 42, 3).token)]);
    assert_eq!(call(p).await.status, 401);
    // Stale timestamp.
    let old = now - 120_000;
    let r = call(revoke_params(&group, "revoke", &[dude.token], old)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (406, "revoke_subaccount timestamp too far from current time")
    );
    // Malformed: no tokens, a short token, 51 tokens, no signature, not a token at all.
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    p["revoke"] = json!([]);
    assert_eq!(call(p).await.status, 400);
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    p["revoke"] = json!(hex::encode(&dude.token[..35]));
    assert_eq!(call(p).await.status, 400);
    let many: Vec<[u8; 36]> = (0..51u8).map(|i| Sub::new(&group, i, 3).token).collect();
    assert_eq!(
        call(revoke_params(&group, "revoke", &many, now))
            .await
            .status,
        400
    );
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    p.as_object_mut().expect("object").remove("signature");
    assert_eq!(call(p).await.status, 400);
    let mut p = revoke_params(&group, "revoke", &[dude.token], now);
    p["revoke"] = json!(42);
    assert_eq!(call(p).await.status, 400);
    // Wrong swarm: 421 from a node outside the group's swarm.
    let (swarm_id, _) = d.swarm_for(&group.id).expect("swarm");
    let outsider = outside(d, swarm_id)[0];
    let r = rpc(
        &c,
        &d.node(outsider).url(),
        "unrevoke_subaccount",
        revoke_params(&group, "unrevoke", &[dude.token], now),
    )
    .await;
    assert_eq!(r.status, 421);
    // None of that revoked anything.
    let r = rpc(&c, &url, "store", group.store(11, b"m", now)).await;
    assert_eq!(r.status, 200);
    let (status, n, _) = retrieve_count(&c, &url, dude.retrieve(&group, 11, now)).await;
    assert_eq!((status, n), (200, 1));
}
