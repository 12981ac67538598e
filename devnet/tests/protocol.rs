//! The client-facing protocol of a running devnet: storage RPC, swarms, onion requests and
//! every bad-input case, against one shared 9-node devnet.

#[path = "support/client.rs"]
mod client;

use std::sync::OnceLock;

use client::*;
use serde_json::{json, Value};
use session_devnet::{Devnet, DevnetConfig, Event, Origin};
use session_net::HttpsTransport;
use session_proto::onion::{build_request, Destination, EncType, Hop, PeerKey, ServerDestination};
use session_proto::storage_rpc::message_hash;
use session_proto::storage_rpc::wire::{decode_base64, encode_base64};

/// One devnet for the whole binary, served by its own runtime (tests run on theirs).
fn net() -> &'static Devnet {
    static NET: OnceLock<SharedDevnet> = OnceLock::new();
    shared_devnet(&NET, 9)
}

fn swarm(i: usize) -> u64 {
    net().topology().swarm_ids()[i]
}

#[tokio::test]
async fn store_via_one_member_retrieve_from_every_member() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(0), 0x05, 1);
    let (_, members) = d.swarm_for(&a.id).expect("swarm");
    assert_eq!(members.len(), 3);
    let now = now_ms();
    let r = rpc(
        &c,
        &d.node(members[0]).url(),
        "store",
        a.store(0, b"hello devnet", now),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let hash = v["hash"].as_str().expect("hash").to_string();
    assert_eq!(hash, message_hash(&a.id, 0, b"hello devnet"));
    assert!(v["t"].is_i64());
    let sw = v["swarm"].as_object().expect("swarm map");
    assert_eq!(sw.len(), 3);
    for m in &members {
        let node = d.node(*m);
        let res = &sw[&hex::encode(node.ed25519())];
        assert_eq!(res["hash"], json!(hash));
        // The node's signature over the hash string verifies with its Ed25519 key.
        let sig = decode_base64(res["signature"].as_str().expect("sig")).expect("b64");
        let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64");
        ed25519_dalek::VerifyingKey::from_bytes(&node.ed25519())
            .expect("key")
            .verify_strict(hash.as_bytes(), &sig)
            .expect("node signature");
    }
    for m in &members {
        let r = rpc(
            &c,
            &d.node(*m).url(),
            "retrieve",
            a.retrieve(0, now_ms(), ""),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json().expect("json");
        let msgs = v["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 1, "member {m}");
        assert_eq!(msgs[0]["hash"], json!(hash));
        assert_eq!(
            decode_base64(msgs[0]["data"].as_str().expect("d")).expect("b64"),
            b"hello devnet"
        );
        assert!(msgs[0]["expiration"].is_i64());
        assert_eq!(v["more"], json!(false));
    }
    // Same message again: idempotent, marked `already`.
    let r = rpc(
        &c,
        &d.node(members[1]).url(),
        "store",
        a.store(0, b"hello devnet", now),
    )
    .await;
    let v = r.json().expect("json");
    assert_eq!(
        v["swarm"][hex::encode(d.node(members[1]).ed25519())]["already"],
        json!(true)
    );
}

#[tokio::test]
async fn wrong_swarm_gets_421_with_the_right_swarm() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(1), 0x05, 100);
    let other = outside(d, swarm(1))[0];
    let r = rpc(
        &c,
        &d.node(other).url(),
        "retrieve",
        a.retrieve(0, now_ms(), ""),
    )
    .await;
    assert_eq!(r.status, 421);
    let v = r.json().expect("json");
    assert_eq!(v["swarm"], json!(format!("{:x}", swarm(1))));
    let listed: Vec<String> = v["snodes"]
        .as_array()
        .expect("snodes")
        .iter()
        .map(|s| s["pubkey_ed25519"].as_str().expect("ed").to_string())
        .collect();
    let (_, members) = d.swarm_for(&a.id).expect("swarm");
    let want: Vec<String> = members
        .iter()
        .map(|&m| hex::encode(d.node(m).ed25519()))
        .collect();
    assert_eq!(listed, want);
    assert!(v["t"].is_i64());
    let s0 = &v["snodes"][0];
    assert_eq!(s0["ip"], json!("127.0.0.1"));
    assert_eq!(s0["port"], json!(d.node(members[0]).port().to_string()));
    assert_eq!(s0["port_https"], json!(d.node(members[0]).port()));
    // get_swarm from anywhere gives the same list.
    let r = rpc(
        &c,
        &d.node(other).url(),
        "get_snodes_for_pubkey",
        json!({"pubkey": a.hex}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().expect("json")["snodes"], v["snodes"]);
    // Stores are redirected too.
    let r = rpc(
        &c,
        &d.node(other).url(),
        "store",
        a.store(0, b"x", now_ms()),
    )
    .await;
    assert_eq!(r.status, 421);
}

#[tokio::test]
async fn signatures_and_clocks_are_checked() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(2), 0x05, 200);
    let m = d.swarm_for(&a.id).expect("swarm").1[0];
    let url = d.node(m).url();
    let now = now_ms();
    // Signed by someone else.
    let mut p = a.retrieve(0, now, "");
    p["signature"] = json!(Acct::new(9999, 5).sign(format!("retrieve{now}").as_bytes()));
    let r = rpc(&c, &url, "retrieve", p).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Wrong pubkey_ed25519 for this 05 id.
    let mut p = a.retrieve(0, now, "");
    p["pubkey_ed25519"] = json!(hex::encode(
        Acct::new(1, 5).signing.verifying_key().to_bytes()
    ));
    assert_eq!(rpc(&c, &url, "retrieve", p).await.status, 401);
    // No signature at all.
    let r = rpc(
        &c,
        &url,
        "retrieve",
        json!({"pubkey": a.hex, "namespace": 0}),
    )
    .await;
    assert_eq!(r.status, 401);
    // Authenticated namespace store without signature.
    let r = rpc(
        &c,
        &url,
        "store",
        json!({"pubkey": a.hex, "namespace": 2, "timestamp": now,
        "ttl": 60000, "data": "aGk="}),
    )
    .await;
    assert_eq!(r.status, 401);
    // Signed store to namespace 2 works (03 group account signs with its own key).
    let g = Acct::in_swarm(d, swarm(2), 0x03, 300);
    let r = rpc(&c, &url, "store", g.store(2, b"config", now)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rpc(&c, &url, "retrieve", g.retrieve(2, now, "")).await;
    assert_eq!(
        r.json().expect("json")["messages"]
            .as_array()
            .expect("m")
            .len(),
        1
    );
    // pubkey_ed25519 is refused for 03 accounts.
    let mut p = g.retrieve(2, now, "");
    p["pubkey_ed25519"] = json!(hex::encode(g.signing.verifying_key().to_bytes()));
    assert_eq!(rpc(&c, &url, "retrieve", p).await.status, 400);
    // A client clock five minutes off: 406.
    let skew = now - 300_000;
    let r = rpc(&c, &url, "retrieve", a.retrieve(0, skew, "")).await;
    assert_eq!(r.status, 406, "{}", r.text());
    let r = rpc(&c, &url, "store", a.store(0, b"late", now + 300_000)).await;
    assert_eq!(r.status, 406);
    assert_eq!(r.text(), "Timestamp error: check your clock");
    // TTL limits: 403.
    let mut p = a.store(0, b"ttl", now);
    p["ttl"] = json!(5_000);
    assert_eq!(rpc(&c, &url, "store", p.clone()).await.status, 403);
    p["ttl"] = json!(15i64 * 24 * 3600 * 1000);
    assert_eq!(rpc(&c, &url, "store", p).await.status, 403);
}

#[tokio::test]
async fn retrieve_pages_with_last_hash_and_limits() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(0), 0x05, 400);
    let url = d.node(d.swarm_for(&a.id).expect("swarm").1[1]).url();
    let now = now_ms();
    for i in 0..5u8 {
        let r = rpc(&c, &url, "store", a.store(0, &[i; 100], now)).await;
        assert_eq!(r.status, 200);
    }
    let mut p = a.retrieve(0, now, "");
    p["max_count"] = json!(2);
    let v = rpc(&c, &url, "retrieve", p).await.json().expect("json");
    assert_eq!(v["messages"].as_array().expect("m").len(), 2);
    assert_eq!(v["more"], json!(true));
    let last = v["messages"][1]["hash"].as_str().expect("h").to_string();
    let mut p = a.retrieve(0, now, &last);
    p["max_size"] = json!(150);
    let v = rpc(&c, &url, "retrieve", p).await.json().expect("json");
    let msgs = v["messages"].as_array().expect("m");
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        decode_base64(msgs[0]["data"].as_str().expect("d")).expect("b64"),
        [2u8; 100]
    );
    assert_eq!(v["more"], json!(true));
    let v = rpc(&c, &url, "retrieve", a.retrieve(0, now, &last))
        .await
        .json()
        .expect("json");
    assert_eq!(v["messages"].as_array().expect("m").len(), 3);
    assert_eq!(v["more"], json!(false));
}

#[tokio::test]
async fn delete_and_expire_replicate_with_node_signatures() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(1), 0x05, 500);
    let members = d.swarm_for(&a.id).expect("swarm").1;
    let url = d.node(members[0]).url();
    let now = now_ms();
    let h1 = rpc(&c, &url, "store", a.store(0, b"one", now))
        .await
        .json()
        .expect("j")["hash"]
        .as_str()
        .expect("h")
        .to_string();
    let h2 = rpc(&c, &url, "store", a.store(0, b"two", now))
        .await
        .json()
        .expect("j")["hash"]
        .as_str()
        .expect("h")
        .to_string();
    // Shorten expiry of h1 on every member.
    let exp = now + 30_000;
    let p = a.signed(
        json!({"messages": [h1], "expiry": exp, "shorten": true}),
        format!("expireshorten{exp}{h1}"),
    );
    let r = rpc(&c, &url, "expire", p).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    for m in &members {
        let res = &v["swarm"][hex::encode(d.node(*m).ed25519())];
        assert_eq!(res["updated"], json!([h1]), "member {m}");
        assert_eq!(res["expiry"], json!(exp));
    }
    // Delete h2 with `required`.
    let p = a.signed(
        json!({"messages": [h2], "required": true}),
        format!("delete{h2}"),
    );
    let r = rpc(&c, &url, "delete", p.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let mine = &v["swarm"][hex::encode(d.node(members[0]).ed25519())];
    assert_eq!(mine["deleted"], json!([h2]));
    let sig = decode_base64(mine["signature"].as_str().expect("s")).expect("b64");
    let msg = format!("{}{h2}{h2}", a.hex);
    ed25519_dalek::VerifyingKey::from_bytes(&d.node(members[0]).ed25519())
        .expect("k")
        .verify_strict(
            msg.as_bytes(),
            &ed25519_dalek::Signature::from_slice(&sig).expect("64"),
        )
        .expect("delete signature");
    // Nothing left to delete → 404 with `required`.
    assert_eq!(rpc(&c, &url, "delete", p).await.status, 404);
    // Every member now has only h1, with the shortened expiry.
    for m in &members {
        let v = rpc(
            &c,
            &d.node(*m).url(),
            "retrieve",
            a.retrieve(0, now_ms(), ""),
        )
        .await
        .json()
        .expect("json");
        let msgs = v["messages"].as_array().expect("m");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0]["expiration"], json!(exp));
    }
    // delete_all clears the namespace.
    let ts = now_ms();
    let p = a.signed(
        json!({"namespace": 0, "timestamp": ts}),
        format!("delete_all{ts}"),
    );
    let r = rpc(&c, &url, "delete_all", p).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = rpc(
        &c,
        &d.node(members[2]).url(),
        "retrieve",
        a.retrieve(0, now_ms(), ""),
    )
    .await
    .json()
    .expect("json");
    assert!(v["messages"].as_array().expect("m").is_empty());
}

#[tokio::test]
async fn bootstrap_seed_and_oxend_request() {
    let d = net();
    let c = HttpsTransport::default();
    let body = json!({"jsonrpc": "2.0", "method": "get_n_service_nodes", "params": {
        "active_only": true, "fields": {"public_ip": true, "storage_port": true,
        "pubkey_x25519": true, "pubkey_ed25519": true, "requested_unlock_height": true,
        "height": true}}});
    let r = post(
        &c,
        &format!("{}/json_rpc", d.seeds()[0]),
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json().expect("json");
    let states = v["result"]["service_node_states"]
        .as_array()
        .expect("states");
    assert_eq!(states.len(), 9);
    let mut ports: Vec<u64> = states
        .iter()
        .map(|s| s["storage_port"].as_u64().expect("p"))
        .collect();
    ports.sort_unstable();
    let mut want: Vec<u64> = d.nodes().iter().map(|n| u64::from(n.port())).collect();
    want.sort_unstable();
    assert_eq!(ports, want);
    assert_eq!(states[0]["public_ip"], json!("127.0.0.1"));
    assert!(
        states[0].get("swarm_id").is_none(),
        "only the requested fields"
    );
    let p = json!({"endpoint": "get_service_nodes", "params": {"active_only": true,
        "fields": {"public_ip": true, "storage_port": true, "pubkey_x25519": true, "pubkey_ed25519": true}}});
    let body = json!({"method": "batch", "params": {"requests": [
        {"method": "oxend_request", "params": p}, {"method": "info", "params": {}}]}});
    let r = post(
        &c,
        &format!("{}/storage_rpc/v1", d.node(4).url()),
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    assert_eq!(v["results"][0]["code"], json!(200));
    let states = v["results"][0]["body"]["result"]["service_node_states"]
        .as_array()
        .expect("s");
    assert_eq!(states.len(), 9);
    assert!(v["results"][1]["body"]["version"].is_array());
    assert!(v["results"][1]["body"]["t"].is_i64());
}

/// Its own 6-node devnet, so no other test's traffic shows in the event logs.
async fn three_hop(enc: EncType, seed: u64) {
    let own = Devnet::start(DevnetConfig {
        nodes: 6,
        swarm_size: 3,
        ..Default::default()
    })
    .await
    .expect("devnet starts");
    let d = &own;
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, d.topology().swarm_ids()[0], 0x05, seed);
    let dest = d.swarm_for(&a.id).expect("swarm").1[0];
    let path: Vec<usize> = outside(d, d.topology().swarm_ids()[0])
        .into_iter()
        .take(3)
        .collect();
    assert_eq!(path.len(), 3);
    let now = now_ms();
    let store = json!({"method": "store", "params": a.store(0, b"through the onion", now)});
    let (status, reply) = onion(&c, d, &path, dest, &store, enc).await;
    assert_eq!(status, 200);
    let reply = reply.expect("decrypted");
    assert_eq!(reply.status, 200, "{reply:?}");
    let body: Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(body["swarm"].as_object().expect("swarm").len(), 3);
    let get = json!({"method": "retrieve", "params": a.retrieve(0, now_ms(), "")});
    let (_, reply) = onion(&c, d, &path, dest, &get, enc).await;
    let body: Value = serde_json::from_slice(&reply.expect("decrypted").body).expect("json");
    assert_eq!(
        body["messages"][0]["data"],
        json!(encode_base64(b"through the onion"))
    );

    // Who saw what: the guard only its neighbour, the destination only the last relay.
    let ed = |i: usize| hex::encode(d.node(i).ed25519());
    let guard = d.node(path[0]).events();
    assert!(guard.contains(&Event::OnionArrived {
        from: Origin::Client
    }));
    assert!(guard.contains(&Event::OnionRelayed { to: ed(path[1]) }));
    assert!(!guard
        .iter()
        .any(|e| matches!(e, Event::OnionRelayed { to } if *to == ed(dest))));
    let last = d.node(path[2]).events();
    assert!(last.contains(&Event::OnionArrived {
        from: Origin::Node(ed(path[1]))
    }));
    assert!(last.contains(&Event::OnionRelayed { to: ed(dest) }));
    let de = d.node(dest).events();
    assert!(de.contains(&Event::OnionArrived {
        from: Origin::Node(ed(path[2]))
    }));
    assert!(de.contains(&Event::OnionFinal {
        method: "store".into()
    }));
    assert!(de.contains(&Event::OnionFinal {
        method: "retrieve".into()
    }));
    assert!(!de.contains(&Event::OnionArrived {
        from: Origin::Client
    }));
    assert!(!de.iter().any(|e| matches!(e, Event::DirectRpc { .. })));
    own.shutdown().await;
}

#[tokio::test]
async fn three_hop_onion_aes_gcm() {
    three_hop(EncType::AesGcm, 600).await;
}

#[tokio::test]
async fn three_hop_onion_xchacha20() {
    three_hop(EncType::XChaCha20, 700).await;
}

#[tokio::test]
async fn onion_reply_options_json_and_raw() {
    let d = net();
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(d, swarm(1), 0x05, 800);
    let dest = d.swarm_for(&a.id).expect("swarm").1[0];
    let rpc_body = json!({"method": "info", "params": {}}).to_string();
    let payload = session_proto::onion::encode_frame(
        rpc_body.as_bytes(),
        br#"{"headers":{},"json":true,"base64":false}"#,
    );
    let (body, reply) = single_layer(d, dest, &payload, EncType::AesGcm);
    let r = post(&c, &format!("{}/onion_req/v2", d.node(dest).url()), body).await;
    assert_eq!(r.status, 200);
    let plain = reply.open(&r.body).expect("raw ciphertext");
    let v: Value = serde_json::from_slice(&plain).expect("json");
    assert!(v["body"]["version"].is_array(), "embedded JSON body: {v}");
}

#[tokio::test]
async fn bad_storage_rpc_input_gets_clear_errors() {
    let d = net();
    let c = HttpsTransport::default();
    let url = format!("{}/storage_rpc/v1", d.node(0).url());
    let cases: Vec<(&[u8], u16)> = vec![
        (b"{not json", 400),
        (br#"{"params":{}}"#, 400),
        (br#"{"method":"store"}"#, 400),
        (br#"{"method":"nope","params":{}}"#, 400),
        (br#"{"method":"retrieve","params":{"pubkey":5}}"#, 400),
        (br#"{"method":"retrieve","params":{"pubkey":"05zz"}}"#, 400),
        (br#"{"method":"get_swarm","params":{"pubkey":"0512"}}"#, 400),
        (br#"{"method":"batch","params":{"requests":[]}}"#, 400),
        (
            br#"{"method":"batch","params":{"requests":[{"method":"batch","params":{}}]}}"#,
            400,
        ),
    ];
    for (body, want) in cases {
        let r = post(&c, &url, body.to_vec()).await;
        assert_eq!(
            r.status,
            want,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        assert!(!r.body.is_empty());
    }
    // Bad base64, too much data, bad signature encoding: against the right swarm.
    let a = Acct::in_swarm(d, d.node(0).swarm_id(), 0x05, 900);
    let now = now_ms();
    let mut p = a.store(0, b"x", now);
    p["data"] = json!("***not base64***");
    let r = rpc(&c, &d.node(0).url(), "store", p).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("base64"), "{}", r.text());
    let r = rpc(
        &c,
        &d.node(0).url(),
        "store",
        a.store(0, &vec![7u8; 76_801], now),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = rpc(
        &c,
        &d.node(0).url(),
        "store",
        a.store(0, &vec![7u8; 76_800], now),
    )
    .await;
    assert_eq!(r.status, 200, "exactly the limit is fine: {}", r.text());
    let mut p = a.retrieve(0, now, "");
    p["signature"] = json!("c2hvcnQ=");
    assert_eq!(rpc(&c, &d.node(0).url(), "retrieve", p).await.status, 400);
    // Oversized body: 413.
    let r = c
        .post_url(&url, &[], vec![b' '; 11 * 1024 * 1024], T)
        .await
        .expect("answers");
    assert_eq!(r.status, 413);
    // Unknown route: 404; long polling: 410.
    let r = post(&c, &format!("{}/nothing", d.node(0).url()), vec![]).await;
    assert_eq!(r.status, 404);
    let r = c
        .post_url(&url, &[("X-Loki-Long-Poll", "true")], b"{}".to_vec(), T)
        .await
        .expect("ok");
    assert_eq!(r.status, 410);
    // Internal routes refuse outsiders.
    let r = post(
        &c,
        &format!("{}/devnet/v1/storage_cc", d.node(0).url()),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 403);
    // And the node still serves.
    let r = rpc(&c, &d.node(0).url(), "info", json!({})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn bad_onion_input_gets_the_spec_statuses() {
    let d = net();
    let c = HttpsTransport::default();
    let url = format!("{}/onion_req/v2", d.node(3).url());
    // Garbage frames and metadata: 400 "Error parsing onion request".
    for body in [
        &b"\x01"[..],
        b"\xff\xff\x00\x00abc{}",
        b"\x03\x00\x00\x00abcnot json",
        b"\x03\x00\x00\x00abc{\"ephemeral_key\":\"zz\"}",
    ] {
        let r = post(&c, &url, body.to_vec()).await;
        assert_eq!(r.status, 400);
        assert!(
            r.text().starts_with("Error parsing onion request"),
            "{}",
            r.text()
        );
    }
    // A layer that does not decrypt: 400 "Invalid ciphertext".
    let meta = json!({"ephemeral_key": hex::encode([9u8; 32]), "enc_type": "aes-gcm"});
    let r = post(
        &c,
        &url,
        session_proto::onion::encode_frame(&[0u8; 64], meta.to_string().as_bytes()),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid ciphertext"));
    let meta = json!({"ephemeral_key": hex::encode([9u8; 32]), "enc_type": "rot13"});
    assert_eq!(
        post(
            &c,
            &url,
            session_proto::onion::encode_frame(&[0u8; 64], meta.to_string().as_bytes())
        )
        .await
        .status,
        400
    );
    // Unknown next hop: 502 "Next node not found: <ed>", plain text.
    let info = json!({"method": "info", "params": {}}).to_string();
    let build = |path: &[Hop], dest: Destination, payload: &[u8]| {
        build_request(
            &mut rand::rngs::OsRng,
            EncType::AesGcm,
            path,
            &dest,
            payload,
        )
        .expect("onion builds")
    };
    let ghost = Hop::new(d.node(5).x25519(), [0x42; 32]);
    let req = build(&[hop(d, 3)], Destination::Snode(ghost), info.as_bytes());
    let r = post(&c, &url, req.body).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.text(),
        format!("Next node not found: {}", hex::encode([0x42; 32]))
    );
    // Garbage inside a valid layer: encrypted 400 "Invalid json".
    let (body, reply) = single_layer(d, 3, b"no frame here", EncType::XChaCha20);
    let r = post(&c, &url, body).await;
    assert_eq!(r.status, 200);
    let v = reply.open_snode_reply(&r.body).expect("opens");
    assert_eq!((v.status, v.body.as_slice()), (400, &b"Invalid json"[..]));
    // A path that loops through the same nodes 17 times: 400 "max path length exceeded".
    let path: Vec<Hop> = (0..17).map(|i| hop(d, [3, 4][i % 2])).collect();
    let req = build(&path, Destination::Snode(hop(d, 5)), info.as_bytes());
    let r = post(&c, &url, req.body).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "onion request max path length exceeded")
    );
    // Proxy to a non-loopback host is refused; a bad target gets an encrypted 400.
    let server = |host: &str, target: &str| {
        Destination::Server(ServerDestination {
            key: PeerKey::new(d.node(5).x25519()),
            host: host.into(),
            target: target.into(),
            method: "POST".into(),
            protocol: "https".into(),
            port: Some(443),
        })
    };
    let req = build(&[hop(d, 3)], server("192.0.2.1", "/oxen/v4/lsrpc"), b"x");
    assert_eq!(post(&c, &url, req.body).await.status, 502);
    let req = build(&[hop(d, 3)], server("127.0.0.1", "/etc/passwd"), b"x");
    let r = post(&c, &url, req.body).await;
    assert_eq!(r.status, 200);
    // The node keeps serving.
    assert_eq!(
        rpc(&c, &d.node(3).url(), "info", json!({})).await.status,
        200
    );
}
