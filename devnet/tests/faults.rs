//! Fault injection: stopped nodes, skewed clocks, dropped and delayed replies, 5xx answers,
//! persistence.

#[path = "support/client.rs"]
mod client;

use std::time::Duration;

use client::*;
use serde_json::json;
use session_devnet::{Devnet, DevnetConfig};
use session_net::HttpsTransport;
use session_proto::onion::EncType;

async fn small(cfg: DevnetConfig) -> Devnet {
    Devnet::start(DevnetConfig {
        nodes: 6,
        swarm_size: 3,
        ..cfg
    })
    .await
    .expect("devnet starts")
}

#[tokio::test]
async fn a_stopped_node_leaves_its_swarm_serving() {
    let d = small(DevnetConfig {
        replication_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(&d, d.topology().swarm_ids()[0], 0x05, 1);
    let m = d.swarm_for(&a.id).expect("swarm").1;
    d.node(m[2]).stop().await;
    assert!(!d.node(m[2]).is_running());
    let r = rpc(
        &c,
        &d.node(m[0]).url(),
        "store",
        a.store(0, b"still here", now_ms()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().expect("json");
    let down = &v["swarm"][hex::encode(d.node(m[2]).ed25519())];
    assert_eq!(down["failed"], json!(true), "{v}");
    for i in [m[0], m[1]] {
        let r = rpc(
            &c,
            &d.node(i).url(),
            "retrieve",
            a.retrieve(0, now_ms(), ""),
        )
        .await;
        assert_eq!(
            r.json().expect("json")["messages"]
                .as_array()
                .expect("m")
                .len(),
            1
        );
    }
    assert!(
        c.post_url(
            &format!("{}/storage_rpc/v1", d.node(m[2]).url()),
            &[],
            b"{}".to_vec(),
            T
        )
        .await
        .is_err(),
        "a stopped node refuses connections"
    );
    // Back on the same port; it missed the store (no bulk sync), but serves new ones.
    d.node(m[2]).restart().await.expect("restart");
    let r = rpc(
        &c,
        &d.node(m[2]).url(),
        "store",
        a.store(0, b"after restart", now_ms()),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json().expect("json");
    assert!(
        v["swarm"]
            .as_object()
            .expect("s")
            .values()
            .all(|x| x.get("failed").is_none()),
        "{v}"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_skewed_node_clock_gives_406_and_shows_in_t() {
    let d = small(DevnetConfig::default()).await;
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(&d, d.topology().swarm_ids()[1], 0x05, 50);
    let m = d.swarm_for(&a.id).expect("swarm").1;
    d.node(m[0]).set_clock_offset_ms(10 * 60_000);
    let now = now_ms();
    let r = rpc(&c, &d.node(m[0]).url(), "retrieve", a.retrieve(0, now, "")).await;
    assert_eq!(r.status, 406, "{}", r.text());
    let r = rpc(&c, &d.node(m[1]).url(), "retrieve", a.retrieve(0, now, "")).await;
    assert_eq!(r.status, 200);
    // A client that adopts the node's "t" gets through.
    let t = rpc(&c, &d.node(m[0]).url(), "info", json!({}))
        .await
        .json()
        .expect("json")["t"]
        .as_i64()
        .expect("t");
    assert!(t - now_ms() > 9 * 60_000, "t carries the offset");
    let r = rpc(&c, &d.node(m[0]).url(), "retrieve", a.retrieve(0, t, "")).await;
    assert_eq!(r.status, 200);
    d.shutdown().await;
}

#[tokio::test]
async fn dropped_and_delayed_replies_break_paths() {
    let d = small(DevnetConfig {
        relay_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let c = HttpsTransport::default();
    let s0 = d.topology().swarm_ids()[0];
    let a = Acct::in_swarm(&d, s0, 0x05, 100);
    let dest = d.swarm_for(&a.id).expect("swarm").1[0];
    let path = outside(&d, s0);
    let info = json!({"method": "info", "params": {}});
    // A relay that drops replies: the guard answers 504, plain text.
    d.node(path[1]).set_drop_replies(true);
    assert!(
        c.post_url(
            &format!("{}/storage_rpc/v1", d.node(path[1]).url()),
            &[],
            b"{}".to_vec(),
            T
        )
        .await
        .is_err(),
        "dropped reply is a transport error for a direct client"
    );
    let (status, _) = onion(&c, &d, &path, dest, &info, EncType::AesGcm).await;
    assert_eq!(status, 504);
    d.node(path[1]).set_drop_replies(false);
    // A relay slower than the relay timeout: 504 too.
    d.node(path[2]).set_delay(Duration::from_millis(800));
    let (status, _) = onion(&c, &d, &path, dest, &info, EncType::AesGcm).await;
    assert_eq!(status, 504);
    d.node(path[2]).set_delay(Duration::ZERO);
    let (status, reply) = onion(&c, &d, &path, dest, &info, EncType::AesGcm).await;
    assert_eq!(status, 200);
    assert_eq!(reply.expect("reply").status, 200);
    // A stopped destination: the last relay answers 504.
    d.node(dest).stop().await;
    let (status, _) = onion(&c, &d, &path, dest, &info, EncType::XChaCha20).await;
    assert_eq!(status, 504);
    d.shutdown().await;
}

#[tokio::test]
async fn data_dir_keeps_keys_and_messages_across_restarts() {
    let dir = std::env::temp_dir().join(format!("devnet-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = DevnetConfig {
        data_dir: Some(dir.clone()),
        ..Default::default()
    };
    let d = small(cfg.clone()).await;
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(&d, d.topology().swarm_ids()[0], 0x05, 200);
    let r = rpc(
        &c,
        &d.node(d.swarm_for(&a.id).expect("s").1[0]).url(),
        "store",
        a.store(0, b"persistent", now_ms()),
    )
    .await;
    assert_eq!(r.status, 200);
    let before = d.manifest();
    d.shutdown().await;

    let d = small(cfg).await;
    let after = d.manifest();
    let keys = |m: &session_devnet::Manifest| {
        m.nodes
            .iter()
            .map(|n| n.ed25519.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&before), keys(&after), "same identities");
    let c = HttpsTransport::default();
    for i in d.swarm_for(&a.id).expect("s").1 {
        let r = rpc(
            &c,
            &d.node(i).url(),
            "retrieve",
            a.retrieve(0, now_ms(), ""),
        )
        .await;
        assert_eq!(
            r.json().expect("json")["messages"]
                .as_array()
                .expect("m")
                .len(),
            1,
            "node {i}"
        );
    }
    d.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn manifest_lists_every_node() {
    let d = small(DevnetConfig::default()).await;
    let path = std::env::temp_dir().join(format!("devnet-{}.json", std::process::id()));
    d.write_manifest(&path).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    let m: session_devnet::Manifest = serde_json::from_str(&text).expect("parses back");
    assert_eq!(m, d.manifest());
    assert_eq!(m.nodes.len(), 6);
    assert_eq!(m.seeds.len(), 3);
    assert!(m.seeds[0].starts_with("https://127.0.0.1:"));
    let _ = std::fs::remove_file(&path);
    d.shutdown().await;
}

#[tokio::test]
async fn a_failing_node_answers_its_status_until_healed() {
    let d = small(DevnetConfig::default()).await;
    let c = HttpsTransport::default();
    let a = Acct::in_swarm(&d, d.topology().swarm_ids()[0], 0x05, 120);
    let m = d.swarm_for(&a.id).expect("swarm").1;
    let retrieve = |node: usize| {
        let url = d.node(node).url();
        let params = a.retrieve(0, now_ms(), "");
        let c = &c;
        async move { rpc(c, &url, "retrieve", params).await }
    };
    d.node(m[0]).set_fail_status(Some(503));
    let r = retrieve(m[0]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    // Its swarm mates serve on.
    assert_eq!(retrieve(m[1]).await.status, 200);
    d.node(m[0]).set_fail_status(None);
    let r = retrieve(m[0]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    d.shutdown().await;
}
