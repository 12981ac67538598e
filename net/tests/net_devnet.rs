//! The network client against a devnet: paths from seeds, onion-only account requests,
//! relay failures, stale swarms, dead seeds and skewed clocks; batch and sequence requests,
//! every namespace's auth, onion requests v4 to a server, member-sticky polling.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use session_devnet::{Devnet, DevnetConfig, Event, Origin};
use session_net::{
    Auth, Fetched, Mailbox, MemoryPoolStore, NetClient, NetConfig, NetError, NetEvent, Op,
    OpOutcome, PoolSource, PoolStore, RequestOutcome, RequestTarget, Server, ServerRequest,
    ServerResponse, Snode, StoreOutcome,
};
use session_proto::err::{ErrorKind, HasKind};
use session_proto::storage_rpc::sign::{retrieve_message, sign};
use session_proto::storage_rpc::{
    Ed25519Pubkey, ExpireMode, Request, RetrieveParams, SubaccountAuth, SubaccountToken, UserPubkey,
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
    // The saved pool is loaded when the client is built, before any request or bootstrap.
    let c2 = NetClient::with_https(NetConfig::devnet(d.seeds()), store.clone());
    let saved = store.load().expect("load").expect("saved").nodes.len();
    assert_eq!(c2.status().pool_size, saved);
    let mut ev2 = c2.events();
    c2.bootstrap().await.expect("bootstrap from the saved pool");
    assert!(
        !std::iter::from_fn(|| ev2.try_recv().ok()).any(|e| matches!(
            e,
            NetEvent::PoolRefreshed {
                source: PoolSource::Seeds,
                ..
            }
        )),
        "no pool from the seeds"
    );
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
        .store(
            &id,
            0,
            b"through the onion",
            60_000,
            &session_net::Auth::None,
        )
        .await
        .expect("store");
    let dest = check_one_onion_request(&d, "store");
    assert!(members.contains(&dest));
    assert_eq!(out.stored_on, members.len());
    assert_eq!(out.failed_on, 0);
    assert_eq!(out.hash.len(), 43);

    clear_events(&d);
    let r = c
        .retrieve(&id, 0, None, &session_net::Auth::Account(sk.clone()))
        .await
        .expect("retrieve");
    let dest = check_one_onion_request(&d, "retrieve");
    assert!(members.contains(&dest));
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].data.0, b"through the onion");
    assert_eq!(r.messages[0].hash, out.hash);

    // Paging: nothing after the last hash.
    let r = c
        .retrieve(
            &id,
            0,
            Some(&out.hash),
            &session_net::Auth::Account(sk.clone()),
        )
        .await
        .expect("retrieve after last hash");
    assert!(r.messages.is_empty());

    // A wrong key is rejected by the swarm: a clear, non-retryable error.
    let (wrong, _) = account(43);
    let e = c
        .retrieve(&id, 0, None, &session_net::Auth::Account(wrong.clone()))
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
    c.store(&id, 0, b"before", 60_000, &session_net::Auth::None)
        .await
        .expect("store");

    let mut events = c.events();
    d.node(relay).stop().await;
    let mut rebuilt = false;
    let mut struck = false;
    for i in 0..60 {
        let r = c
            .retrieve(&id, 0, None, &session_net::Auth::Account(sk.clone()))
            .await;
        let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(r.messages.len(), 1);
        loop {
            match events.try_recv() {
                Ok(NetEvent::PathDropped { id, .. }) if id == path.id => rebuilt = true,
                Ok(NetEvent::NodeStruck { node, .. }) if node == path.hops[1].ed25519 => {
                    struck = true
                }
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        // Each request picks one of the two paths at random: the stopped relay's path may go
        // unpicked for a while, so the loop allows many requests.
        rebuilt |= c.status().paths.iter().all(|p| p.id != path.id);
        if rebuilt && struck {
            break;
        }
    }
    assert!(struck, "the stopped relay was struck");
    assert!(rebuilt, "its path was dropped");
    // Paths are rebuilt on the next request; none uses the stopped relay's old path.
    c.retrieve(&id, 0, None, &session_net::Auth::Account(sk.clone()))
        .await
        .expect("after rebuild");
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
    c.store(&id, 0, b"redirected", 60_000, &session_net::Auth::None)
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
    let r = c
        .retrieve(&id, 0, None, &session_net::Auth::Account(sk.clone()))
        .await
        .expect("retrieve");
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
        .store(&id, 0, b"x", 60_000, &session_net::Auth::None)
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
    c.store(&id, 0, b"on time", 60_000, &session_net::Auth::None)
        .await
        .expect("store absorbs the skew");
    let r = c
        .retrieve(&id, 0, None, &session_net::Auth::Account(sk.clone()))
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

// ----------------------------------------------------------------------------------------
// Typed requests: batch/sequence, every namespace's auth, v4 servers, member-sticky polling
// ----------------------------------------------------------------------------------------

/// A `03` group: its admin key and its ID (03 ‖ the Ed25519 public key).
fn group(seed: u64) -> (SigningKey, UserPubkey) {
    let (sk, _) = account(seed);
    let mut id = [0u8; 33];
    id[0] = 0x03;
    id[1..].copy_from_slice(&sk.verifying_key().to_bytes());
    (sk, UserPubkey(id))
}

/// A subaccount of `group` for the member key `member` with `flags`, signed by `signer`
/// (the group key, or a wrong one).
fn subaccount(signer: &SigningKey, member: &SigningKey, flags: u8) -> Auth {
    let mut t = [0u8; 36];
    t[0] = 0x03;
    t[1] = flags;
    t[4..].copy_from_slice(&member.verifying_key().to_bytes());
    let token = SubaccountToken(t);
    Auth::Subaccount {
        token,
        token_sig: sign(signer, &token.0),
        signer: Arc::new(member.clone()),
    }
}

fn stored(r: &Result<OpOutcome, NetError>) -> &StoreOutcome {
    match r {
        Ok(OpOutcome::Stored(s)) => s,
        other => panic!("expected a store outcome, got {other:?}"),
    }
}

fn retrieved(r: &Result<OpOutcome, NetError>) -> Vec<String> {
    match r {
        Ok(OpOutcome::Retrieved(m)) => m.messages.iter().map(|m| m.hash.clone()).collect(),
        other => panic!("expected retrieved messages, got {other:?}"),
    }
}

fn store_op(namespace: i16, data: &[u8]) -> Op {
    Op::Store {
        namespace,
        data: data.to_vec(),
        ttl_ms: 60_000,
    }
}

/// A TTL the snode refuses (403): longer than 30 days.
fn bad_store_op(namespace: i16) -> Op {
    Op::Store {
        namespace,
        data: b"too long".to_vec(),
        ttl_ms: 40 * 24 * 3600 * 1000,
    }
}

#[tokio::test]
async fn batch_and_sequence_give_a_result_per_request() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    let (sk, id) = account(101);
    let auth = Auth::Account(sk);
    // Without bootstrap(): the client loads and fetches what it needs itself.
    let results = c
        .batch(
            &id,
            &auth,
            &[
                store_op(0, b"inbox"),
                store_op(2, b"profile"),
                bad_store_op(3),
                Op::Retrieve {
                    namespace: 5,
                    last_hash: None,
                },
            ],
        )
        .await
        .expect("the batch reaches the swarm");
    assert_eq!(results.len(), 4);
    let inbox = stored(&results[0]).hash.clone();
    let profile = stored(&results[1]).hash.clone();
    assert!(
        stored(&results[1]).stored_on >= 2,
        "replicated and verified"
    );
    let e = results[2].as_ref().expect_err("a 40-day TTL is refused");
    assert_eq!(e.status(), Some(403), "{e}");
    assert_eq!(e.kind(), ErrorKind::Rejected);
    assert!(retrieved(&results[3]).is_empty());

    // A sequence stops at the first failure; the rest is reported as not run.
    let results = c
        .sequence(
            &id,
            &auth,
            &[
                store_op(4, b"convo"),
                bad_store_op(4),
                store_op(4, b"never"),
            ],
        )
        .await
        .expect("the sequence reaches the swarm");
    assert_eq!(results.len(), 3);
    let convo = stored(&results[0]).hash.clone();
    assert_eq!(
        results[1].as_ref().err().and_then(NetError::status),
        Some(403)
    );
    assert!(
        matches!(results[2], Err(NetError::NotRun)),
        "{:?}",
        results[2]
    );

    // What ran is there, what did not is not; expire and delete by hash in one batch.
    let results = c
        .batch(
            &id,
            &auth,
            &[
                Op::Retrieve {
                    namespace: 0,
                    last_hash: None,
                },
                Op::Retrieve {
                    namespace: 2,
                    last_hash: None,
                },
                Op::Retrieve {
                    namespace: 4,
                    last_hash: None,
                },
            ],
        )
        .await
        .expect("batch");
    assert_eq!(retrieved(&results[0]), vec![inbox.clone()]);
    assert_eq!(retrieved(&results[1]), vec![profile.clone()]);
    assert_eq!(retrieved(&results[2]), vec![convo.clone()]);
    let soon = c.network_now_ms() + 30_000;
    let results = c
        .batch(
            &id,
            &auth,
            &[
                Op::Expire {
                    hashes: vec![profile.clone()],
                    expiry_ms: soon,
                    mode: ExpireMode::Shorten,
                },
                Op::Delete {
                    hashes: vec![convo.clone()],
                },
            ],
        )
        .await
        .expect("batch");
    match &results[0] {
        Ok(OpOutcome::Expired(e)) => {
            assert_eq!(e.updated, vec![profile.clone()]);
            assert!(e.confirmed_by >= 2, "{e:?}");
        }
        other => panic!("expire: {other:?}"),
    }
    match &results[1] {
        Ok(OpOutcome::Deleted(o)) => {
            assert_eq!(o.deleted, vec![convo.clone()]);
            assert!(o.confirmed_by >= 2, "{o:?}");
        }
        other => panic!("delete: {other:?}"),
    }
    let left = c.retrieve(&id, 4, None, &auth).await.expect("retrieve");
    assert!(left.messages.is_empty(), "deleted");

    // Too many sub-requests is refused before anything is sent.
    let many: Vec<Op> = (0..21).map(|i| store_op(0, &[i])).collect();
    let e = c.batch(&id, &auth, &many).await.expect_err("21 > 20");
    assert!(matches!(e, NetError::BadRequest { .. }), "{e}");
    d.shutdown().await;
}

#[tokio::test]
async fn every_namespace_takes_its_own_auth() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");

    // The account's own key: config namespaces 2-5 and negative namespaces.
    let (sk, id) = account(202);
    let own = Auth::Account(sk);
    let ops: Vec<Op> = [2, 3, 4, 5, -1, -11]
        .iter()
        .map(|ns| store_op(*ns, format!("ns {ns}").as_bytes()))
        .collect();
    for r in c.batch(&id, &own, &ops).await.expect("batch") {
        stored(&r);
    }
    for ns in [2, 3, 4, 5, -11] {
        let r = c.retrieve(&id, ns, None, &own).await.expect("retrieve");
        assert_eq!(r.messages.len(), 1, "ns {ns}");
    }
    // A public outbox reads without auth; other namespaces refuse an unsigned retrieve.
    let r = c
        .retrieve(&id, -1, None, &Auth::None)
        .await
        .expect("outbox");
    assert_eq!(r.messages.len(), 1);
    let (wrong, _) = account(203);
    let wrong = Auth::Account(wrong);
    for (what, r) in [
        (
            "unsigned",
            c.retrieve(&id, 2, None, &Auth::None).await.err(),
        ),
        ("wrong key", c.retrieve(&id, 3, None, &wrong).await.err()),
        (
            "wrong key store",
            c.store(&id, 5, b"x", 60_000, &wrong).await.err(),
        ),
    ] {
        let e = r.unwrap_or_else(|| panic!("{what} accepted"));
        assert_eq!(e.status(), Some(401), "{what}: {e}");
        assert!(!e.is_retryable());
    }

    // A group's admin key: the group namespaces.
    let (gk, gid) = group(204);
    let admin = Auth::GroupAdmin(gk.clone());
    let ops: Vec<Op> = [11, 12, 13, 14]
        .iter()
        .map(|ns| store_op(*ns, format!("group ns {ns}").as_bytes()))
        .collect();
    for r in c.batch(&gid, &admin, &ops).await.expect("batch") {
        stored(&r);
    }
    let (not_admin, _) = group(205);
    let e = c
        .store(&gid, 12, b"x", 60_000, &Auth::GroupAdmin(not_admin.clone()))
        .await
        .expect_err("not the admin");
    assert_eq!(e.status(), Some(401), "{e}");

    // A member's subaccount (read|write): reads and posts group messages.
    let (member, _) = account(206);
    let rw = SubaccountToken::READ | SubaccountToken::WRITE;
    let sub = subaccount(&gk, &member, rw);
    let posted = c
        .store(&gid, 11, b"from a member", 60_000, &sub)
        .await
        .expect("a member may write");
    let r = c
        .retrieve(&gid, 11, None, &sub)
        .await
        .expect("a member may read");
    let hashes: Vec<&str> = r.messages.iter().map(|m| m.hash.as_str()).collect();
    assert!(hashes.contains(&posted.hash.as_str()));
    assert_eq!(r.messages.len(), 2);
    // Refused with the snode's status: a token the admin did not sign, a read-only token
    // writing, a read|write token deleting.
    let forged = subaccount(&not_admin, &member, rw);
    let read_only = subaccount(&gk, &member, SubaccountToken::READ);
    for (what, r) in [
        (
            "forged token",
            c.retrieve(&gid, 11, None, &forged).await.err(),
        ),
        (
            "read-only write",
            c.store(&gid, 11, b"x", 60_000, &read_only).await.err(),
        ),
        (
            "delete without the delete flag",
            c.delete(&gid, std::slice::from_ref(&posted.hash), &sub)
                .await
                .err(),
        ),
    ] {
        let e = r.unwrap_or_else(|| panic!("{what} accepted"));
        assert_eq!(e.status(), Some(401), "{what}: {e}");
    }
    d.shutdown().await;
}

/// A small v4 server on 127.0.0.1: opens onion requests with its X25519 key and answers
/// `/echo` (200, the body and the request's method and headers back), `/status/<n>` (code n)
/// and anything else with 404. Returns its base URL and X25519 public key.
async fn v4_server() -> (String, [u8; 32]) {
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use session_proto::onion::{open_server_request, NodeKeys};

    let keys = Arc::new(NodeKeys::new([77; 32]));
    let public = *keys.public();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let keys = keys.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let keys = keys.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/oxen/v4/lsrpc");
                        let body = req.into_body().collect().await?.to_bytes();
                        let (plain, reply) =
                            open_server_request(&keys, &body).expect("an onion request for us");
                        let v4 = ServerRequest::decode(&plain).expect("a v4 request");
                        let mut headers = std::collections::BTreeMap::new();
                        let (code, out) = if v4.endpoint == "/echo" {
                            headers.insert("x-method".to_owned(), v4.method.clone());
                            for (k, v) in &v4.headers {
                                headers.insert(format!("x-echo-{}", k.to_lowercase()), v.clone());
                            }
                            (200, v4.body.clone().unwrap_or_default())
                        } else if let Some(n) = v4.endpoint.strip_prefix("/status/") {
                            (n.parse().unwrap_or(500), b"as asked".to_vec())
                        } else {
                            (404, b"no such endpoint".to_vec())
                        };
                        let plain = ServerResponse {
                            code,
                            headers,
                            body: out,
                        }
                        .encode();
                        let sealed = reply.key().encrypt(&mut rand::rngs::OsRng, &plain);
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(bytes::Bytes::from(
                            sealed,
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (url, public)
}

fn v4(method: &str, endpoint: &str, body: Option<&[u8]>) -> ServerRequest {
    ServerRequest {
        method: method.to_owned(),
        endpoint: endpoint.to_owned(),
        headers: [("Content-Type".to_owned(), "text/plain".to_owned())].into(),
        body: body.map(<[u8]>::to_vec),
    }
}

#[tokio::test]
async fn onion_requests_v4_reach_a_server() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    let (url, key) = v4_server().await;
    let server = Server::new(&url, key).expect("server");
    let mut events = c.events();

    let r = c
        .server_request(&server, &v4("POST", "/echo", Some(b"hello server")))
        .await
        .expect("echo");
    assert_eq!(r.code, 200);
    assert_eq!(r.body, b"hello server");
    assert_eq!(r.headers["x-method"], "POST");
    assert_eq!(r.headers["x-echo-content-type"], "text/plain");
    let r = c
        .server_request(&server, &v4("GET", "/echo", None))
        .await
        .expect("echo without a body");
    assert_eq!((r.code, r.body.len()), (200, 0));
    assert_eq!(r.headers["x-method"], "GET");
    // It went through a path: the last relay proxied it, nobody got a direct request.
    let proxied = d.nodes().iter().any(|n| {
        n.events()
            .iter()
            .any(|e| matches!(e, Event::OnionProxied { .. }))
    });
    assert!(proxied, "a relay proxied the request");
    let mut done = 0;
    while let Ok(e) = events.try_recv() {
        if let NetEvent::RequestDone {
            target: RequestTarget::Server,
            hops,
            outcome: RequestOutcome::Ok,
            ..
        } = e
        {
            assert_eq!(hops, 3);
            done += 1;
        }
    }
    assert_eq!(done, 2, "one event per request");

    // A 4xx from the server is a typed error with its status, not retried.
    let e = c
        .server_request(&server, &v4("GET", "/nothing", None))
        .await
        .expect_err("404");
    assert!(
        matches!(&e, NetError::ServerStatus { status: 404, reason, .. } if reason == "no such endpoint"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Rejected);
    assert!(!e.is_retryable());
    let e = c
        .server_request(&server, &v4("GET", "/status/503", None))
        .await
        .expect_err("503");
    assert_eq!(e.status(), Some(503));
    assert!(e.is_retryable());

    // A server that is down: the relay cannot reach it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let down_url = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let down = Server::new(&down_url, key).expect("server");
    let e = c
        .server_request(&down, &v4("GET", "/echo", None))
        .await
        .expect_err("down");
    assert!(matches!(e, NetError::ServerUnreachable { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
    // The paths were not blamed for the server.
    assert_eq!(c.status().paths.len(), 2);
    assert!(c.status().paths.iter().all(|p| p.strikes == 0));
    d.shutdown().await;
}

/// One poll of namespace 0, kept at once.
async fn poll_ns0(c: &NetClient, mb: &mut Mailbox, auth: &Auth) -> (Snode, Fetched) {
    let p = c.poll(mb, auth, &[0]).await.expect("poll");
    let f = p.namespaces[0].result.clone().expect("ns 0");
    mb.advance(&p);
    (p.member, f)
}

#[tokio::test]
async fn polling_sticks_to_a_member_and_survives_a_switch() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let (sk, id, members) = account_avoiding(&d, &[]);
    let auth = Auth::Account(sk);
    let mut mailbox = Mailbox::new(id);
    let mut delivered: Vec<String> = Vec::new();
    let mut sent = Vec::new();
    for i in 0..3 {
        let o = c
            .store(&id, 0, format!("m{i}").as_bytes(), 60_000, &Auth::None)
            .await
            .expect("store");
        sent.push(o.hash);
    }
    let (first, f) = poll_ns0(&c, &mut mailbox, &auth).await;
    delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
    assert_eq!(delivered.len(), 3);
    // The first poll starts a sweep: the two other members, each read once from the start
    // (all repeats), while the first stays the sticky one.
    let mut swept = Vec::new();
    while mailbox.sweeping() {
        let (member, f) = poll_ns0(&c, &mut mailbox, &auth).await;
        assert!(f.messages.is_empty() && f.repeats == 3, "{f:?}");
        swept.push(index_of(&d, &member.ed25519));
    }
    swept.sort_unstable();
    let mut others = members.clone();
    others.retain(|&i| i != index_of(&d, &first.ed25519));
    assert_eq!(swept, others, "each other member was read once");
    // Sticky: the next polls go to the same member and get nothing again.
    for _ in 0..3 {
        let (member, f) = poll_ns0(&c, &mut mailbox, &auth).await;
        assert_eq!(member, first, "the mailbox sticks to its member");
        assert!(f.messages.is_empty() && f.repeats == 0, "{f:?}");
    }
    // The member goes away after one more message reached the swarm.
    let o = c
        .store(&id, 0, b"m3", 60_000, &Auth::None)
        .await
        .expect("store");
    sent.push(o.hash);
    let gone = index_of(&d, &first.ed25519);
    assert!(members.contains(&gone));
    d.node(gone).stop().await;
    // The stopped member may also be a relay of a path: a poll may fail while the client
    // drops it; the mailbox then switches member by itself.
    let mut tries = 0;
    let p = loop {
        tries += 1;
        match c.poll(&mut mailbox, &auth, &[0]).await {
            Ok(p) => break p,
            Err(e) if tries < 5 => eprintln!("poll {tries} failed: {e}"),
            Err(e) => panic!("no poll succeeded: {e}"),
        }
    };
    let (second, f) = (
        p.member.clone(),
        p.namespaces[0].result.clone().expect("ns 0"),
    );
    mailbox.advance(&p);
    assert_ne!(second, first, "another member answered");
    assert_eq!(
        (f.messages.len(), f.repeats),
        (1, 0),
        "the new member is read from its own cursor (set by the sweep)"
    );
    delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
    // The switch starts a sweep; the stopped member fails it until the sweep gives up on it.
    let mut polls = 0;
    while mailbox.sweeping() {
        polls += 1;
        assert!(polls < 20, "the sweep ends");
        if let Ok(p) = c.poll(&mut mailbox, &auth, &[0]).await {
            let f = p.namespaces[0].result.clone().expect("ns 0");
            delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
            mailbox.advance(&p);
        }
    }
    // And it sticks to the new member from its own cursor.
    let o = c
        .store(&id, 0, b"m4", 60_000, &Auth::None)
        .await
        .expect("store");
    sent.push(o.hash);
    let (member, f) = poll_ns0(&c, &mut mailbox, &auth).await;
    assert_eq!(Some(&member), mailbox.member());
    assert_eq!(f.repeats, 0, "read from the member's cursor");
    delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
    let mut want = sent.clone();
    want.sort();
    let mut got = delivered.clone();
    got.sort();
    assert_eq!(got, want, "nothing skipped, nothing repeated");
    d.shutdown().await;
}

/// The soak's lost messages (issue 20): a message stored while one member was failing (503 to
/// everything, replication included) never reaches that member. A mailbox that then switches to
/// that member must still get it: the switch sweeps the other members from their own cursors.
#[tokio::test]
async fn a_message_one_member_missed_is_still_delivered_after_a_switch_to_it() {
    let d = devnet(9).await;
    let (c, _) = client(&d);
    c.bootstrap().await.expect("bootstrap");
    let (sk, id, members) = account_avoiding(&d, &[]);
    let auth = Auth::Account(sk);
    let mut mailbox = Mailbox::new(id);
    let (sticky, _) = poll_ns0(&c, &mut mailbox, &auth).await;
    while mailbox.sweeping() {
        poll_ns0(&c, &mut mailbox, &auth).await;
    }
    let sticky = index_of(&d, &sticky.ed25519);
    let missing = *members.iter().find(|&&i| i != sticky).expect("3 members");
    // "m" is stored while `missing` fails: the other two hold it.
    d.node(missing).set_fail_status(Some(503));
    let mut tries = 0;
    let m = loop {
        tries += 1;
        match c.store(&id, 0, b"m", 60_000, &Auth::None).await {
            Ok(o) => break o.hash,
            Err(e) if tries < 5 => eprintln!("store {tries} failed: {e}"),
            Err(e) => panic!("no store succeeded: {e}"),
        }
    };
    let held: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| d.node(i).holds(&m))
        .collect();
    assert!(!held.contains(&missing) && held.len() == 2, "{held:?}");
    // Before the mailbox reads "m", the two members holding it fail and it switches to the
    // one that missed it.
    d.node(missing).set_fail_status(None);
    for &i in &held {
        d.node(i).set_fail_status(Some(503));
    }
    let mut delivered = Vec::new();
    // Polls that fail (a path through a failing node, a slow machine) are tried again until a
    // deadline, not a count: on a loaded 2-core machine ten tries were not always enough.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let mut failures = Vec::new();
    loop {
        assert!(
            std::time::Instant::now() < until,
            "no poll reached the member that missed \"m\": {failures:?}"
        );
        let p = match c.poll(&mut mailbox, &auth, &[0]).await {
            Ok(p) => p,
            Err(e) => {
                failures.push(e.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let f = p.namespaces[0].result.clone().expect("ns 0");
        delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
        mailbox.advance(&p);
        if index_of(&d, &p.member.ed25519) == missing {
            break;
        }
    }
    assert!(delivered.is_empty(), "that member does not have it");
    for &i in &held {
        d.node(i).set_fail_status(None);
    }
    // The members that hold "m" are back: without the sweep the mailbox would read only the
    // member that missed it, for good. Polls until it came, then three more good polls (a repeat
    // would show there), failed polls aside.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let mut after = 0;
    while after < 3 {
        assert!(
            std::time::Instant::now() < until,
            "\"m\" never came: {delivered:?}"
        );
        let Ok(p) = c.poll(&mut mailbox, &auth, &[0]).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let f = p.namespaces[0].result.clone().expect("ns 0");
        delivered.extend(f.messages.iter().map(|m| m.hash.clone()));
        mailbox.advance(&p);
        if delivered.contains(&m) {
            after += 1;
        }
    }
    assert_eq!(delivered, vec![m], "delivered once");
    d.shutdown().await;
}

#[tokio::test]
async fn status_counts_requests_per_path() {
    let d = devnet(9).await;
    let (c, store) = client(&d);
    let (sk, id) = account(303);
    let auth = Auth::Account(sk);
    let before = c.status();
    assert!(before.paths.is_empty() && before.last_error_at_ms.is_none());
    c.store(&id, 0, b"x", 60_000, &Auth::None)
        .await
        .expect("store");
    c.retrieve(&id, 0, None, &auth).await.expect("retrieve");
    let st = c.status();
    assert_eq!(st.paths.len(), 2);
    let ok: u64 = st.paths.iter().map(|p| p.requests_ok).sum();
    assert!(
        ok >= 3,
        "get_swarm, store and retrieve went through paths: {ok}"
    );
    assert!(st.paths.iter().all(|p| p.built_at_ms > 0));
    let e = c
        .retrieve(&id, 0, None, &Auth::None)
        .await
        .expect_err("unsigned");
    assert_eq!(e.status(), Some(401));
    let st = c.status();
    assert!(st.last_error.is_some() && st.last_error_at_ms.is_some());

    // A second client over the same store starts with the saved pool, before any bootstrap.
    let again = NetClient::with_https(NetConfig::devnet(d.seeds()), store);
    assert_eq!(again.status().pool_size, st.pool_size);
    d.shutdown().await;
}
