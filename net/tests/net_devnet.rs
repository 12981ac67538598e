//! The network client against a devnet: paths from seeds, onion-only account requests,
//! relay failures, stale swarms, dead seeds and skewed clocks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use session_devnet::{Devnet, DevnetConfig, Event, Origin};
use session_net::{
    MemoryPoolStore, NetClient, NetConfig, NetError, NetEvent, PoolSource, PoolStore, Snode,
};
use session_proto::err::{ErrorKind, HasKind};
use session_proto::storage_rpc::sign::{retrieve_message, sign};
use session_proto::storage_rpc::{
    Ed25519Pubkey, Request, RetrieveParams, SubaccountAuth, UserPubkey,
};

async fn devnet(nodes: usize) -> Devnet {
    Devnet::start(DevnetConfig {
        nodes,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts")
}

fn client(d: &Devnet) -> (NetClient, Arc<MemoryPoolStore>) {
    let store = Arc::new(MemoryPoolStore::new());
    let c = NetClient::with_https(NetConfig::devnet(d.seeds()), store.clone());
    (c, store)
}

/// A `05` account: its Ed25519 key and its Account ID (05 ‖ X25519 of the key).
fn account(seed: u64) -> (SigningKey, UserPubkey) {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let sk = SigningKey::from_bytes(&bytes);
    let mut id = [0u8; 33];
    id[0] = 0x05;
    id[1..].copy_from_slice(&sk.verifying_key().to_montgomery().to_bytes());
    (sk, UserPubkey(id))
}

/// An account whose swarm has none of the devnet nodes in `avoid`.
fn account_avoiding(d: &Devnet, avoid: &[usize]) -> (SigningKey, UserPubkey, Vec<usize>) {
    for seed in 1..10_000 {
        let (sk, id) = account(seed);
        let (_, members) = d.swarm_for(&id.0).expect("33-byte account");
        if !members.iter().any(|m| avoid.contains(m)) {
            return (sk, id, members);
        }
    }
    panic!("no account avoids {avoid:?}");
}

fn index_of(d: &Devnet, ed: &[u8; 32]) -> usize {
    d.nodes()
        .iter()
        .position(|n| &n.ed25519() == ed)
        .expect("node is in the devnet")
}

fn index_of_hex(d: &Devnet, hex: &str) -> usize {
    d.nodes()
        .iter()
        .position(|n| hex::encode(n.ed25519()) == hex)
        .expect("node is in the devnet")
}

fn clear_events(d: &Devnet) {
    for n in d.nodes() {
        n.clear_events();
    }
}

/// Checks one onion request seen by the devnet since the last `clear_events`: it entered at
/// exactly one guard (from outside), ended at one destination (arriving from another node),
/// the guard never relayed to the destination, and nobody got a direct RPC. Returns the
/// destination's index.
fn check_one_onion_request(d: &Devnet, method: &str) -> usize {
    let mut guards = Vec::new();
    let mut finals = Vec::new();
    for (i, n) in d.nodes().iter().enumerate() {
        let ev = n.events();
        for (k, e) in ev.iter().enumerate() {
            match e {
                Event::DirectRpc { method } => panic!("node {i} got a direct {method}"),
                Event::OnionArrived {
                    from: Origin::Client,
                } => guards.push(i),
                Event::OnionFinal { method: m } => {
                    assert_eq!(m, method);
                    finals.push(i);
                    // The layer it ran arrived from another devnet node, not from us.
                    let arrived = ev[..k]
                        .iter()
                        .rev()
                        .find_map(|e| match e {
                            Event::OnionArrived { from } => Some(from.clone()),
                            _ => None,
                        })
                        .expect("an arrival before the final hop");
                    assert!(
                        matches!(arrived, Origin::Node(_)),
                        "destination {i} got the request from the client directly"
                    );
                }
                _ => {}
            }
        }
    }
    assert_eq!(guards.len(), 1, "one guard per request: {guards:?}");
    assert_eq!(finals.len(), 1, "one destination per request: {finals:?}");
    let (guard, dest) = (guards[0], finals[0]);
    assert_ne!(guard, dest, "the guard is never the destination");
    let dest_hex = hex::encode(d.node(dest).ed25519());
    for e in d.node(guard).events() {
        if let Event::OnionRelayed { to } = e {
            assert_ne!(
                to, dest_hex,
                "the guard relayed straight to the destination"
            );
        }
    }
    dest
}

#[tokio::test]
async fn paths_build_from_seeds_alone() {
    let d = devnet(7).await;
    let (c, store) = client(&d);
    let mut events = c.events();
    c.bootstrap().await.expect("bootstrap from devnet seeds");

    let st = c.status();
    assert_eq!(st.pool_size, 7);
    assert_eq!(st.paths.len(), 2);
    let mut all = HashSet::new();
    for p in &st.paths {
        assert_eq!(p.hops.len(), 3);
        let hops: HashSet<&str> = p.hops.iter().map(|h| h.ed25519.as_str()).collect();
        assert_eq!(hops.len(), 3, "no repeated hop in a path");
        all.insert(p.hops[0].ed25519.clone());
    }
    assert_eq!(all.len(), 2, "two distinct guards");
    let saved = store.load().expect("load").expect("pool saved");
    assert_eq!(saved.nodes.len(), 7);

    let mut built = 0;
    let mut from_seeds = false;
    while let Ok(e) = events.try_recv() {
        match e {
            NetEvent::PathBuilt { .. } => built += 1,
            NetEvent::PoolRefreshed { source, size } => {
                from_seeds |= source == PoolSource::Seeds && size == 7;
            }
            _ => {}
        }
    }
    assert_eq!(built, 2);
    assert!(from_seeds);

    // Guards were tested with `info` only; seeds got get_n_service_nodes.
    for n in d.nodes() {
        for e in n.events() {
            match e {
                Event::DirectRpc { method } => assert_eq!(method, "info"),
                Event::SeedRpc { method } => assert_eq!(method, "get_n_service_nodes"),
                _ => {}
            }
        }
    }

    // A second client starts from the saved pool, without asking the seeds.
    clear_events(&d);
    let c2 = NetClient::with_https(NetConfig::devnet(d.seeds()), store.clone());
    let mut ev2 = c2.events();
    c2.bootstrap().await.expect("bootstrap from the saved pool");
    assert!(matches!(
        ev2.try_recv(),
        Ok(NetEvent::PoolRefreshed {
            source: PoolSource::Store,
            ..
        })
    ));
    assert!(d.nodes().iter().all(|n| !n
        .events()
        .iter()
        .any(|e| matches!(e, Event::SeedRpc { .. }))));
    d.shutdown().await;
}

#[tokio::test]
async fn account_requests_go_through_paths_only() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let (sk, id) = account(42);
    let (_, members) = d.swarm_for(&id.0).expect("swarm");

    clear_events(&d);
    let swarm = c.swarm(&id).await.expect("get_swarm through a path");
    check_one_onion_request(&d, "get_swarm");
    let mut got: Vec<usize> = swarm.iter().map(|s| index_of(&d, &s.ed25519)).collect();
    got.sort_unstable();
    let mut want = members.clone();
    want.sort_unstable();
    assert_eq!(got, want);

    clear_events(&d);
    let out = c
        .store(&id, 0, b"through the onion", 60_000, None)
        .await
        .expect("store");
    let dest = check_one_onion_request(&d, "store");
    assert!(members.contains(&dest));
    assert_eq!(out.stored_on, members.len());
    assert_eq!(out.failed_on, 0);
    assert_eq!(out.hash.len(), 43);

    clear_events(&d);
    let r = c.retrieve(&id, 0, None, &sk).await.expect("retrieve");
    let dest = check_one_onion_request(&d, "retrieve");
    assert!(members.contains(&dest));
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].data.0, b"through the onion");
    assert_eq!(r.messages[0].hash, out.hash);

    // Paging: nothing after the last hash.
    let r = c
        .retrieve(&id, 0, Some(&out.hash), &sk)
        .await
        .expect("retrieve after last hash");
    assert!(r.messages.is_empty());

    // A wrong key is rejected by the swarm: a clear, non-retryable error.
    let (wrong, _) = account(43);
    let e = c
        .retrieve(&id, 0, None, &wrong)
        .await
        .expect_err("bad signature");
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
    assert!(!e.is_retryable());
    d.shutdown().await;
}

#[tokio::test]
async fn a_stopped_relay_is_struck_and_its_path_rebuilt() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let st = c.status();
    let path = &st.paths[0];
    let relay = index_of_hex(&d, &path.hops[1].ed25519);
    // The account's swarm doesn't hold the relay: its failures are the path's alone.
    let (sk, id, _) = account_avoiding(&d, &[relay]);
    c.store(&id, 0, b"before", 60_000, None)
        .await
        .expect("store");

    let mut events = c.events();
    d.node(relay).stop().await;
    let mut rebuilt = false;
    let mut struck = false;
    for i in 0..30 {
        let r = c.retrieve(&id, 0, None, &sk).await;
        let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(r.messages.len(), 1);
        while let Ok(e) = events.try_recv() {
            match e {
                NetEvent::PathDropped { id, .. } if id == path.id => rebuilt = true,
                NetEvent::NodeStruck { node, .. } if node == path.hops[1].ed25519 => struck = true,
                _ => {}
            }
        }
        if rebuilt {
            break;
        }
    }
    assert!(struck, "the stopped relay was struck");
    assert!(rebuilt, "its path was dropped");
    // Paths are rebuilt on the next request; none uses the stopped relay's old path.
    c.retrieve(&id, 0, None, &sk).await.expect("after rebuild");
    let st = c.status();
    assert_eq!(st.paths.len(), 2);
    assert!(st.paths.iter().all(|p| p.id != path.id));
    let gone = &path.hops[1].ed25519;
    assert!(
        st.paths
            .iter()
            .all(|p| p.hops.iter().all(|h| &h.ed25519 != gone)),
        "the stopped relay left the paths"
    );
    // The relay left the pool (its path partner took the same strikes: a path error
    // cannot tell which relay failed, so both may go, as in the real clients).
    assert!(st.pool_size <= 8, "the stopped relay left the pool");
    d.shutdown().await;
}

#[tokio::test]
async fn a_stale_swarm_is_corrected_by_421() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let (sk, id) = account(7);
    let (_, members) = d.swarm_for(&id.0).expect("swarm");
    // Tell the client a wrong swarm: every node outside the real one.
    let wrong: Vec<Snode> = (0..d.nodes().len())
        .filter(|i| !members.contains(i))
        .map(|i| {
            let n = d.node(i);
            Snode::from_parts(
                &hex::encode(n.ed25519()),
                &hex::encode(n.x25519()),
                "127.0.0.1",
                n.port(),
            )
            .expect("valid node")
        })
        .collect();
    c.remember_swarm(&id, wrong);

    clear_events(&d);
    c.store(&id, 0, b"redirected", 60_000, None)
        .await
        .expect("store after a 421");
    let mut fixed: Vec<usize> = c
        .cached_swarm(&id)
        .expect("cached")
        .iter()
        .map(|s| index_of(&d, &s.ed25519))
        .collect();
    fixed.sort_unstable();
    let mut want = members.clone();
    want.sort_unstable();
    assert_eq!(fixed, want, "the 421 replaced the cached swarm");
    // One wrong node was asked first, then a right one.
    let finals: Vec<usize> = (0..d.nodes().len())
        .filter(|i| {
            d.node(*i)
                .events()
                .iter()
                .any(|e| matches!(e, Event::OnionFinal { method } if method == "store"))
        })
        .collect();
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert_eq!(finals.iter().filter(|i| members.contains(i)).count(), 1);
    let r = c.retrieve(&id, 0, None, &sk).await.expect("retrieve");
    assert_eq!(r.messages.len(), 1);
    d.shutdown().await;
}

#[tokio::test]
async fn all_seeds_down_gives_a_clear_error() {
    // Ports that were just free: nothing listens there.
    let mut seeds = Vec::new();
    for _ in 0..3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        seeds.push(format!("https://{}", l.local_addr().expect("addr")));
    }
    let c = NetClient::with_https(NetConfig::devnet(seeds), Arc::new(MemoryPoolStore::new()));
    let e = c.bootstrap().await.expect_err("no seed answers");
    assert!(
        matches!(e, NetError::SeedsUnreachable { tried: 3, .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
    assert!(e.is_retryable());
    let (_, id) = account(1);
    let e = c
        .store(&id, 0, b"x", 60_000, None)
        .await
        .expect_err("nothing to send through");
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
    assert!(c.status().last_error.is_some());
}

#[tokio::test]
async fn a_skewed_node_clock_is_absorbed() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let (sk, id, members) = account_avoiding(&d, &[]);
    // Every member of the swarm runs 5 minutes ahead: far beyond the ±60 s signature
    // tolerance and the +10 s store tolerance.
    for m in &members {
        d.node(*m).set_clock_offset_ms(5 * 60 * 1000);
    }
    clear_events(&d);
    c.store(&id, 0, b"on time", 60_000, None)
        .await
        .expect("store absorbs the skew");
    let r = c
        .retrieve(&id, 0, None, &sk)
        .await
        .expect("retrieve absorbs the skew");
    assert_eq!(r.messages.len(), 1);
    // The skew is real: the same request signed with our own clock is refused (406).
    let local_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let naive = Request::Retrieve(RetrieveParams {
        pubkey: id,
        namespace: 0,
        last_hash: None,
        max_count: None,
        max_size: None,
        timestamp: Some(local_ms),
        signature: Some(sign(&sk, &retrieve_message(0, local_ms))),
        pubkey_ed25519: Some(Ed25519Pubkey(sk.verifying_key().to_bytes())),
        sub: SubaccountAuth::default(),
    });
    let member = d.node(members[0]);
    let node = Snode::from_parts(
        &hex::encode(member.ed25519()),
        &hex::encode(member.x25519()),
        "127.0.0.1",
        member.port(),
    )
    .expect("valid node");
    let r = c.direct_rpc(&node, &naive).await.expect("direct reply");
    assert_eq!(
        r.status, 406,
        "a local-clock signature is refused by a skewed node"
    );
    d.shutdown().await;
}
