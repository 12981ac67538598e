//! Untrusted snode and seed replies through a scripted transport: garbage, undecryptable,
//! truncated and oversized replies, unknown next hops, bad node lists. Each is a typed error
//! and a strike, never a panic or a hang.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use session_net::transport::BoxFuture;
use session_net::{
    HttpReply, HttpTarget, MemoryPoolStore, NetClient, NetConfig, NetError, NetEvent, Snode,
    Transport, TransportError,
};
use session_proto::err::{ErrorKind, HasKind};
use session_proto::storage_rpc::Request;

/// What the scripted network answers to onion requests.
#[derive(Debug, Clone)]
enum Onion {
    /// 200 with a body that is neither base64 nor a ciphertext for us.
    Garbage,
    /// 200 with valid base64 of random bytes (fails to decrypt).
    Undecryptable,
    /// 502 naming a node as unknown.
    NextNodeNotFound(String),
    /// The reply is larger than the transport accepts.
    TooLarge,
}

#[derive(Debug)]
struct Scripted {
    nodes: Vec<Snode>,
    seed_reply: Mutex<Vec<u8>>,
    onion: Mutex<Onion>,
    onion_calls: AtomicUsize,
}

fn fake_nodes(n: u8) -> Vec<Snode> {
    (1..=n)
        .map(|i| {
            let sk = SigningKey::from_bytes(&[i; 32]);
            Snode {
                ed25519: sk.verifying_key().to_bytes(),
                x25519: sk.verifying_key().to_montgomery().to_bytes(),
                ip: std::net::Ipv4Addr::new(10, 0, i, 1),
                port: 22100,
            }
        })
        .collect()
}

fn seed_json(nodes: &[Snode]) -> Vec<u8> {
    let states: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "public_ip": n.ip.to_string(),
                "storage_port": n.port,
                "pubkey_ed25519": hex::encode(n.ed25519),
                "pubkey_x25519": hex::encode(n.x25519),
            })
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"jsonrpc": "2.0", "result": {"service_node_states": states}}),
    )
    .expect("json")
}

impl Scripted {
    fn new(onion: Onion) -> Arc<Scripted> {
        let nodes = fake_nodes(8);
        Arc::new(Scripted {
            seed_reply: Mutex::new(seed_json(&nodes)),
            nodes,
            onion: Mutex::new(onion),
            onion_calls: AtomicUsize::new(0),
        })
    }
}

fn ok(body: Vec<u8>) -> Result<HttpReply, TransportError> {
    Ok(HttpReply {
        status: 200,
        body: Bytes::from(body),
    })
}

impl Transport for Scripted {
    fn post<'a>(
        &'a self,
        target: &'a HttpTarget,
        _body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async move {
            match target.path.as_str() {
                "/json_rpc" => ok(self.seed_reply.lock().expect("lock").clone()),
                "/storage_rpc/v1" => ok(br#"{"version":[2,8,0],"timestamp":1700000000000,"t":1700000000000,"hf":[19,3]}"#.to_vec()),
                "/onion_req/v2" => {
                    self.onion_calls.fetch_add(1, Ordering::SeqCst);
                    let mode = self.onion.lock().expect("lock").clone();
                    match mode {
                        Onion::Garbage => ok(b"\x00\xffnot base64 {".to_vec()),
                        Onion::Undecryptable => ok(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec()),
                        Onion::NextNodeNotFound(hex) => Ok(HttpReply {
                            status: 502,
                            body: Bytes::from(format!("Next node not found: {hex}")),
                        }),
                        Onion::TooLarge => Err(TransportError::BodyTooLarge {
                            target: target.authority(),
                            limit: 16,
                        }),
                    }
                }
                other => panic!("unexpected path {other}"),
            }
        })
    }
}

fn client(t: Arc<Scripted>) -> NetClient {
    let cfg = NetConfig {
        distinct_subnets: true,
        ..NetConfig::devnet(vec!["https://seed.invalid:4443".into()])
    };
    NetClient::new(cfg, t, Arc::new(MemoryPoolStore::new()))
}

/// Every call must end quickly: a hang is a failure.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("no hang")
}

#[tokio::test]
async fn undecodable_onion_replies_are_bad_replies_and_strike_paths() {
    for mode in [Onion::Garbage, Onion::Undecryptable] {
        let t = Scripted::new(mode);
        let c = client(t.clone());
        let mut events = c.events();
        let dest = t.nodes[7].clone();
        let e = bounded(c.onion_rpc(&dest, &Request::Info))
            .await
            .expect_err("garbage never decrypts");
        assert!(matches!(e, NetError::BadReply { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
        assert!(e.is_retryable());
        assert_eq!(
            t.onion_calls.load(Ordering::SeqCst),
            3,
            "one try per attempt"
        );
        let mut path_strikes = 0;
        while let Ok(ev) = events.try_recv() {
            if matches!(ev, NetEvent::PathStruck { .. }) {
                path_strikes += 1;
            }
        }
        assert_eq!(path_strikes, 3);
        let st = c.status();
        assert!(st.last_error.is_some());
        assert!(st
            .paths
            .iter()
            .all(|p| p.hops.iter().all(|h| h.ed25519 != dest.ed25519_hex())));
    }
}

#[tokio::test]
async fn an_unknown_next_node_is_dropped_at_once() {
    let t = Scripted::new(Onion::Garbage);
    let c = client(t.clone());
    bounded(c.bootstrap()).await.expect("bootstrap");
    let st = c.status();
    assert_eq!(st.pool_size, 8);
    let relay_hex = st.paths[0].hops[2].ed25519.clone();
    *t.onion.lock().expect("lock") = Onion::NextNodeNotFound(relay_hex.clone());
    let dest = t
        .nodes
        .iter()
        .find(|n| {
            st.paths
                .iter()
                .all(|p| p.hops.iter().all(|h| h.ed25519 != n.ed25519_hex()))
        })
        .expect("a node outside the paths")
        .clone();
    let e = bounded(c.onion_rpc(&dest, &Request::Info))
        .await
        .expect_err("path keeps failing");
    assert!(matches!(e, NetError::PathFailed { status: 502, .. }), "{e}");
    let st = c.status();
    assert!(st.pool_size < 8, "the unknown node left the pool");
    assert!(st
        .paths
        .iter()
        .all(|p| p.hops.iter().all(|h| h.ed25519 != relay_hex)));
}

#[tokio::test]
async fn oversized_replies_are_transport_errors() {
    let t = Scripted::new(Onion::TooLarge);
    let c = client(t.clone());
    let dest = t.nodes[0].clone();
    let e = bounded(c.onion_rpc(&dest, &Request::Info))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            e,
            NetError::Transport {
                source: TransportError::BodyTooLarge { .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::ProtocolViolation);
}

#[tokio::test]
async fn bad_node_lists_from_seeds_are_clear_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"result\": 12".to_vec(), "bad node list"),
        (b"[]".to_vec(), "bad node list"),
        (
            br#"{"result":{"service_node_states":[{"public_ip":"1.2.3.4","storage_port":1,"pubkey_ed25519":"zz","pubkey_x25519":"00"}]}}"#
                .to_vec(),
            "bad node list",
        ),
        (
            br#"{"result":{"service_node_states":[{"public_ip":"0.0.0.0","storage_port":1}]}}"#
                .to_vec(),
            "usable nodes",
        ),
    ];
    for (reply, want) in cases {
        let t = Scripted::new(Onion::Garbage);
        *t.seed_reply.lock().expect("lock") = reply;
        let c = client(t);
        let e = bounded(c.bootstrap()).await.expect_err("unusable seed");
        match &e {
            NetError::SeedsUnreachable { tried: 1, last } => assert!(last.contains(want), "{last}"),
            other => panic!("unexpected {other}"),
        }
        assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially() {
    let t = Scripted::new(Onion::Garbage);
    let c = client(t.clone());
    c.bootstrap().await.expect("bootstrap");
    let dest = t.nodes[7].clone();
    let start = tokio::time::Instant::now();
    let e = c
        .onion_rpc(&dest, &Request::Info)
        .await
        .expect_err("always garbage");
    assert!(matches!(e, NetError::BadReply { .. }));
    // devnet config: 3 attempts, backoff 20 ms then 40 ms (virtual time).
    let cfg = c.config();
    assert_eq!(
        start.elapsed(),
        cfg.backoff(1) + cfg.backoff(2),
        "waited exactly the backoff between attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn maintenance_builds_paths_and_shutdown_stops_everything() {
    let t = Scripted::new(Onion::Garbage);
    let cfg = NetConfig {
        maintenance_interval_secs: 30,
        ..NetConfig::devnet(vec!["https://seed.invalid:4443".into()])
    };
    let c = NetClient::new(cfg, t.clone(), Arc::new(MemoryPoolStore::new()));
    c.start_maintenance();
    assert!(c.status().paths.is_empty());
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(c.status().paths.len(), 2, "maintenance built the paths");
    c.shutdown().await;
    let e = c
        .onion_rpc(&t.nodes[0], &Request::Info)
        .await
        .expect_err("shut down");
    assert!(matches!(e, NetError::Shutdown));
    assert!(!e.is_retryable());
}
