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
use session_devnet::Devnet;
use session_net::HttpsTransport;
use session_proto::storage_rpc::sign::{
    retrieve_message, revocation_result_message, revoke_subaccount_message, sign, store_message,
    unrevoke_subaccount_message,
};
use session_proto::storage_rpc::wire::{decode_base64, encode_base64};
use session_proto::storage_rpc::{SubaccountToken, UserPubkey};

/// One devnet for the whole binary, served by its own runtime (tests run on theirs).
fn net() -> &'static Devnet {
    static NET: OnceLock<SharedDevnet> = OnceLock::new();
    shared_devnet(&NET, 6)
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

async fn retrieve_count(c: &HttpsTransport, url: &str, params: Value) -> (u16, usize, String) {
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
    let c = HttpsTransport::default();
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
    let c = HttpsTransport::default();
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
    let c = HttpsTransport::default();
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
    let c = HttpsTransport::default();
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
    let c = HttpsTransport::default();
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

/// A group's life over real sockets with session-proto's group code: the admin creates the
/// group and invites a member, the member reads the keys with its subaccount and posts, the
/// admin removes it (kicked notice, revocation, rekey), and the member can no longer read but
/// finds its notice.
#[tokio::test]
async fn group_lifecycle_with_real_subaccounts() {
    use session_proto::groups::control::{self, GroupUpdate};
    use session_proto::groups::keys::{GroupKeys, KeysLoad};
    use session_proto::groups::message::{decrypt_group_message, encrypt_group_message};
    use session_proto::groups::multi::{kicked_notice, read_kicked_notice, KickedNotice};
    use session_proto::groups::subaccount::{subaccount_token, SubaccountSigner, DEFAULT_FLAGS};
    use session_proto::groups::{GroupAdminKeys, NS_KEYS, NS_MESSAGES, NS_REVOKED_RETRIEVABLE};
    use session_proto::keys::IdentityKeys;

    let d = net();
    let c = HttpsTransport::default();
    let mut rng = rand::rngs::OsRng;
    let admin_id = IdentityKeys::from_seed(&[61; 32]);
    let member = IdentityKeys::from_seed(&[62; 32]);
    let group = GroupAdminKeys::from_seed(&[63; 32]);
    // The devnet client signs as the group account with the same seed.
    let group_acct = Acct {
        signing: SigningKey::from_bytes(group.seed()),
        id: *group.id().as_bytes(),
        hex: group.id().to_string(),
        is05: false,
    };
    let url = member_url(d, &group_acct, 0);
    let now = now_ms();

    // Admin: gen-0 keys for both, stored in ns 12 with the group key.
    let mut admin = GroupKeys::for_admin(Some(&admin_id), group.clone()).expect("admin keys");
    let keys0 = admin
        .rekey(&[*admin_id.account_id(), *member.account_id()])
        .expect("rekey");
    let r = rpc(&c, &url, "store", group_acct.store(NS_KEYS, &keys0, now)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The invite travels one-to-one; the member checks it and gets its credentials.
    let invite =
        control::invite(&group, "Devnet group", member.account_id(), now as u64).expect("invite");
    let update = invite
        .data_message
        .as_ref()
        .and_then(|dm| dm.group_update_message.as_ref())
        .expect("update");
    let GroupUpdate::Invite(inv) =
        control::read_direct_update(&member, admin_id.account_id(), now as u64, update)
            .expect("valid invite")
    else {
        panic!("not an invite")
    };
    let signer = SubaccountSigner::new(&member, group.public_key(), &inv.auth).expect("signer");
    let sub_params = |mut p: Value, msg: Vec<u8>| {
        let auth = signer.auth();
        p["pubkey"] = json!(group_acct.hex);
        p["subaccount"] = json!(encode_base64(&auth.subaccount.expect("token").0));
        p["subaccount_sig"] = json!(auth.subaccount_sig.expect("sig").to_base64());
        p["signature"] = json!(signer.sign(&msg).to_base64());
        p
    };
    let sub_retrieve = |ns: i16| {
        sub_params(
            json!({"namespace": ns, "timestamp": now}),
            retrieve_message(ns, now as u64),
        )
    };

    // Member: retrieve the keys with its subaccount, load them, post.
    let r = rpc(&c, &url, "retrieve", sub_retrieve(NS_KEYS)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let msgs = v["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 1);
    let mut mkeys = GroupKeys::for_member(&member, &inv.group_id).expect("member keys");
    let data = decode_base64(msgs[0]["data"].as_str().expect("data")).expect("b64");
    let hash = msgs[0]["hash"].as_str().expect("hash");
    let ts = msgs[0]["timestamp"].as_u64().expect("ts");
    assert_eq!(
        mkeys.load_key_message(hash, &data, ts),
        Ok(KeysLoad::Loaded { generation: 0 })
    );
    let content = session_proto::message::text_content("hi from the member", None, now as u64);
    let ct = encrypt_group_message(&member, &mkeys, &content, now as u64, &mut rng).expect("enc");
    let store = sub_params(
        json!({"namespace": NS_MESSAGES, "timestamp": now, "ttl": 60_000, "data": encode_base64(&ct)}),
        store_message(NS_MESSAGES, now as u64),
    );
    let r = rpc(&c, &url, "store", store).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Admin reads it back with the group key and sees the member as sender.
    let r = rpc(
        &c,
        &url,
        "retrieve",
        group_acct.retrieve(NS_MESSAGES, now, ""),
    )
    .await;
    let v = r.json().expect("json");
    let data = decode_base64(v["messages"][0]["data"].as_str().expect("data")).expect("b64");
    admin
        .load_key_message("own", &keys0, now as u64)
        .expect("admin loads its keys");
    let msg = decrypt_group_message(&admin, &data).expect("decrypts");
    assert_eq!(msg.sender, *member.account_id());

    // Removal: kicked notice and revocation in one sequence, then a rekey without them.
    let notice = kicked_notice(&group, &[*member.account_id()], 0, &mut rng).expect("notice");
    let token = subaccount_token(&group, member.account_id(), DEFAULT_FLAGS).expect("token");
    assert_eq!(token, *signer.token());
    let seq = json!({"requests": [
        {"method": "store", "params": group_acct.store(NS_REVOKED_RETRIEVABLE, &notice, now)},
        {"method": "revoke_subaccount", "params": revoke_params(&group_acct, "revoke", &[token.0], now)},
    ]});
    let r = rpc(&c, &url, "sequence", seq).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys1 = admin.rekey(&[*admin_id.account_id()]).expect("rekey");
    let r = rpc(&c, &url, "store", group_acct.store(NS_KEYS, &keys1, now)).await;
    assert_eq!(r.status, 200);

    // The member can no longer read keys or messages, from any swarm member...
    for i in 0..3 {
        let url = member_url(d, &group_acct, i);
        for ns in [NS_KEYS, NS_MESSAGES] {
            let r = rpc(&c, &url, "retrieve", sub_retrieve(ns)).await;
            assert_eq!(r.status, 401, "ns {ns} at member {i}");
        }
    }
    // ...but finds the notice in ns −11 and reads it as its own kick.
    let r = rpc(&c, &url, "retrieve", sub_retrieve(NS_REVOKED_RETRIEVABLE)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let data = decode_base64(v["messages"][0]["data"].as_str().expect("data")).expect("b64");
    assert_eq!(
        read_kicked_notice(
            &member,
            group.public_key(),
            mkeys.current_generation(),
            &data
        ),
        Ok(KickedNotice::Kicked { generation: 0 })
    );
    // And the new key, had it been fetched, is not for it.
    assert_eq!(
        mkeys.load_key_message("k1", &keys1, now as u64 + 1),
        Ok(KeysLoad::NotForUs { generation: 1 })
    );
}
