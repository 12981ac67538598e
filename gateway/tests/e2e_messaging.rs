//! End to end: real `sessiond` processes on a devnet started in the test exchange messages
//! through gRPC; subscribers resume; a daemon killed with SIGKILL mid-traffic loses nothing and
//! duplicates nothing; bad `--seeds` fail with one line.

#[path = "support/daemon.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sessiond_api::v1::{
    event, AcceptInvitationRequest, ConversationKind, CreateGroupRequest, CreateIdentityRequest,
    DeliveryState, Event, GetGroupRequest, GetNetworkStatusRequest, GroupStatus,
    InviteGroupMembersRequest, ListEventsRequest, ListGroupMembersRequest, ListGroupsRequest,
    NetworkEventKind, PromoteGroupMembersRequest, RebuildPathsRequest, RemoveGroupMembersRequest,
    SendMessageRequest, SubscribeRequest, SubscribeResponse, UpdateGroupInfoRequest,
    WatchNetworkRequest,
};
use support::{
    bearer, clients, net, networked_command, Clients, Daemon, Net, TempDir, BIN, FAST_CONFIG,
};
use tonic::Streaming;

/// Every wait in these tests ends by this.
const DEADLINE: Duration = Duration::from_secs(60);

impl Net {
    fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn daemon(&self, name: &str) -> Daemon {
        let dir = self.data_dir(name);
        let cmd = networked_command(&dir, &self.manifest, &self.config);
        tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
            .await
            .expect("start daemon")
    }
}

async fn admin(d: &Daemon) -> Clients {
    clients(&d.channel().await, bearer(&d.admin_token))
}

async fn create(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_identity(CreateIdentityRequest { name: name.into() })
        .await
        .expect("create identity")
        .into_inner()
        .identity
        .expect("identity")
        .account_id
}

async fn send(c: &mut Clients, from: &str, to: &str, text: &str) -> String {
    c.msgs
        .send_message(SendMessageRequest {
            identity: from.into(),
            recipient: to.into(),
            text: text.into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner()
        .message_id
}

async fn subscribe(
    c: &mut Clients,
    identity: &str,
    from_seq: u64,
    log_epoch: u64,
) -> Streaming<SubscribeResponse> {
    c.msgs
        .subscribe(SubscribeRequest {
            identity: identity.into(),
            from_seq,
            log_epoch,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// Reads events until `done` says so; panics at the deadline. Returns the log epoch the events
/// came with (0 if none came).
async fn read_until(
    stream: &mut Streaming<SubscribeResponse>,
    seen: &mut Vec<Event>,
    mut done: impl FnMut(&[Event]) -> bool,
) -> u64 {
    let until = Instant::now() + DEADLINE;
    let mut epoch = 0;
    while !done(seen) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(r))) => {
                epoch = r.log_epoch;
                seen.push(r.event.expect("an event"));
            }
            Ok(other) => panic!("stream ended: {other:?}"),
            Err(_) => panic!("timed out; saw {seen:#?}"),
        }
    }
    epoch
}

fn incoming_texts(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) => Some((m.sender.clone(), m.text.clone())),
            _ => None,
        })
        .collect()
}

fn sent_ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Delivery(d)) if d.state == DeliveryState::Sent as i32 => {
                Some(d.message_id.clone())
            }
            _ => None,
        })
        .collect()
}

/// The whole log of an identity, through History.
async fn history(c: &mut Clients, identity: &str) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .msgs
            .list_events(ListEventsRequest {
                identity: identity.into(),
                after_seq: after,
                before_seq: 0,
                page_size: 1000,
                newest_first: false,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner();
        after = page.events.last().map_or(after, |e| e.seq);
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
    }
}

/// Polls History until `done`; panics at the deadline.
async fn history_until(
    c: &mut Clients,
    identity: &str,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let until = Instant::now() + DEADLINE;
    loop {
        let h = history(c, identity).await;
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < until, "timed out; log is {h:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn no_duplicates(events: &[Event]) {
    let mut hashes = HashSet::new();
    let mut delivered = HashSet::new();
    let mut seqs = HashSet::new();
    for e in events {
        assert!(seqs.insert(e.seq), "seq {} twice", e.seq);
        match &e.kind {
            Some(event::Kind::Incoming(m)) => {
                assert!(hashes.insert(m.hash.clone()), "message {} twice", m.hash)
            }
            Some(event::Kind::Delivery(d)) => assert!(
                delivered.insert(d.message_id.clone()),
                "delivery of {} twice",
                d.message_id
            ),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_exchange_messages_and_subscribers_resume() {
    let n = net("e2e-xchg", FAST_CONFIG).await;
    let a = n.daemon("a").await;
    let b = n.daemon("b").await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;

    let mut sa = subscribe(&mut ca, "alice", 0, 0).await;
    let mut sb = subscribe(&mut cb, "bob", 0, 0).await;
    let to_bob = send(&mut ca, "alice", &bob, "hello bob").await;
    let to_alice = send(&mut cb, "bob", &alice, "hello alice").await;

    let mut seen_a = Vec::new();
    read_until(&mut sa, &mut seen_a, |ev| {
        sent_ids(ev).contains(&to_bob) && !incoming_texts(ev).is_empty()
    })
    .await;
    assert_eq!(
        incoming_texts(&seen_a),
        vec![(bob.clone(), "hello alice".to_owned())]
    );
    let mut seen_b = Vec::new();
    let epoch_b = read_until(&mut sb, &mut seen_b, |ev| {
        sent_ids(ev).contains(&to_alice) && !incoming_texts(ev).is_empty()
    })
    .await;
    assert_eq!(
        incoming_texts(&seen_b),
        vec![(alice.clone(), "hello bob".to_owned())]
    );
    let last_seen = seen_b.last().expect("events").seq;
    drop(sb);

    // While bob's subscriber is away, three more arrive.
    for i in 0..3 {
        send(&mut ca, "alice", &bob, &format!("missed {i}")).await;
    }
    history_until(&mut cb, "bob", |h| incoming_texts(h).len() == 4).await;
    let mut sb = subscribe(&mut cb, "bob", last_seen, epoch_b).await;
    let mut resumed = Vec::new();
    read_until(&mut sb, &mut resumed, |ev| ev.len() == 3).await;
    // Sends run concurrently, so the swarm may hold them in any order.
    let mut texts: Vec<String> = incoming_texts(&resumed)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    texts.sort();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
    assert!(resumed.iter().all(|e| e.seq > last_seen));
    // Nothing more is pending: the next event would be a new one.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sb.message())
            .await
            .is_err(),
        "a resumed subscriber got more than it missed"
    );

    let status = ca
        .net
        .get_network_status(GetNetworkStatusRequest {})
        .await
        .expect("network status")
        .into_inner()
        .status
        .expect("a status");
    assert_eq!(status.network, "devnet");
    assert!(status.pool_size >= 6, "{status:?}");
    assert!(status.online, "{status:?}");
    // Watch sees the paths a rebuild drops and builds.
    let mut watch = ca
        .net
        .watch_network(WatchNetworkRequest {})
        .await
        .expect("watch")
        .into_inner();
    let dropped = ca
        .net
        .rebuild_paths(RebuildPathsRequest {})
        .await
        .expect("rebuild")
        .into_inner()
        .dropped_paths;
    assert_eq!(dropped as usize, status.paths.len());
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, watch.message())
            .await
            .expect("a path is built before the deadline")
            .expect("watch stream")
            .expect("watch open")
            .event
            .expect("an event");
        if ev.kind == NetworkEventKind::PathBuilt as i32 {
            assert!(ev.path.is_some_and(|p| p.hops.len() == 3));
            break;
        }
    }

    no_duplicates(&history(&mut ca, "alice").await);
    no_duplicates(&history(&mut cb, "bob").await);
    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_traffic_then_restart_loses_and_duplicates_nothing() {
    const N: usize = 12;
    let n = net("e2e-kill", FAST_CONFIG).await;
    let a = n.daemon("a").await;
    let b = n.daemon("b").await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;

    for i in 0..N {
        send(&mut cb, "bob", &alice, &format!("b->a {i}")).await;
    }
    let mut queued = Vec::new();
    for i in 0..N {
        queued.push(send(&mut ca, "alice", &bob, &format!("a->b {i}")).await);
    }
    // Kill alice's daemon at once: its outbox is draining and bob's messages are arriving.
    let before = history(&mut ca, "alice").await;
    tokio::task::spawn_blocking(move || a.kill9())
        .await
        .expect("kill");
    eprintln!(
        "at the kill: {} of {N} sent, {} of {N} received",
        sent_ids(&before).len(),
        incoming_texts(&before).len()
    );

    let a = n.daemon("a").await;
    let mut ca = admin(&a).await;
    let wanted_in: HashSet<(String, String)> =
        (0..N).map(|i| (bob.clone(), format!("b->a {i}"))).collect();
    let log_a = history_until(&mut ca, "alice", |h| {
        sent_ids(h).len() == N && incoming_texts(h).len() == N
    })
    .await;
    no_duplicates(&log_a);
    let sent: HashSet<String> = sent_ids(&log_a).into_iter().collect();
    assert_eq!(sent, queued.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(
        incoming_texts(&log_a).into_iter().collect::<HashSet<_>>(),
        wanted_in
    );

    let log_b = history_until(&mut cb, "bob", |h| incoming_texts(h).len() >= N).await;
    no_duplicates(&log_b);
    let mut got: HashMap<String, usize> = HashMap::new();
    for (from, text) in incoming_texts(&log_b) {
        assert_eq!(from, alice);
        *got.entry(text).or_default() += 1;
    }
    assert_eq!(got.len(), N, "{got:?}");
    assert!(got.values().all(|&c| c == 1), "{got:?}");

    // A subscriber from 0 sees the same log, once.
    let mut s = subscribe(&mut ca, "alice", 0, 0).await;
    let mut all = Vec::new();
    read_until(&mut s, &mut all, |ev| ev.len() == log_a.len()).await;
    no_duplicates(&all);
    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}

fn run_with_seeds(dir: &Path, seeds: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(dir)
        .args(["--seeds", seeds])
        .env("SESSIOND_GRPC_LISTEN", "127.0.0.1:0")
        .env("SESSIOND_METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("SESSIOND_CONFIG")
        .env_remove("SESSIOND_OFFLINE")
        .output()
        .expect("run sessiond")
}

#[test]
fn bad_seeds_fail_with_one_line() {
    let dir = TempDir::new("e2e-badseeds");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let missing = dir.path().join("nope.json");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").expect("write");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"seeds": [], "nodes": []}"#).expect("write");
    for (file, what) in [
        (&missing, "nope.json"),
        (&garbage, "garbage.json"),
        (&empty, "no seeds"),
    ] {
        let out = run_with_seeds(&dir.path().join("d"), &file.display().to_string());
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(what), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_swarm_is_skipped_and_later_messages_arrive() {
    use session_net::{MemoryPoolStore, NetClient, NetConfig};
    use session_proto::storage_rpc::UserPubkey;
    use std::sync::Arc;

    let n = net("e2e-garbage", FAST_CONFIG).await;
    let b = n.daemon("b").await;
    let mut cb = admin(&b).await;
    let bob = create(&mut cb, "bob").await;
    let bob_id: session_proto::account_id::AccountId = bob.parse().expect("account id");
    let account = UserPubkey(*bob_id.as_bytes());
    let raw = NetClient::with_https(
        NetConfig::devnet(n.devnet.seeds()),
        Arc::new(MemoryPoolStore::new()),
    );
    raw.bootstrap().await.expect("bootstrap");
    for junk in [&b"not a message"[..], &[0x00, 0x02, 1, 2, 3], &[0x08; 300]] {
        raw.store(&account, 0, junk, 600_000, &session_net::Auth::None)
            .await
            .expect("store junk");
    }
    // Then a real one, from a second daemon.
    let a = n.daemon("a").await;
    let mut ca = admin(&a).await;
    create(&mut ca, "alice").await;
    send(&mut ca, "alice", &bob, "after the junk").await;
    let log = history_until(&mut cb, "bob", |h| !incoming_texts(h).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log_later = history(&mut cb, "bob").await;
    assert_eq!(
        log.len(),
        log_later.len(),
        "junk became events: {log_later:#?}"
    );
    let texts: Vec<String> = incoming_texts(&log_later)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(texts, ["after the junk"]);
    raw.shutdown().await;
    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_devnet_answers_through_the_echo_identity() {
    let dir = TempDir::new("e2e-devnet");
    let data = dir.path().join("d");
    let mut cmd = support::run_command(&data);
    cmd.env_remove("SESSIOND_OFFLINE")
        .args(["--devnet", "--devnet-nodes", "6"]);
    let data2 = data.clone();
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&data2, cmd))
        .await
        .expect("start");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("devnet.json")).expect("devnet.json written"),
    )
    .expect("manifest json");
    assert_eq!(manifest["nodes"].as_array().map(Vec::len), Some(6));
    let mut c = admin(&d).await;
    let listed = c
        .ids
        .list_identities(sessiond_api::v1::ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities;
    let echo = listed
        .iter()
        .find(|i| i.name == "echo")
        .expect("an echo identity")
        .account_id
        .clone();
    assert!(listed.iter().any(|i| i.name == "me"));
    let mut s = subscribe(&mut c, "me", 0, 0).await;
    send(&mut c, "me", &echo, "ping").await;
    let mut seen = Vec::new();
    let direct = |ev: &[Event]| -> Vec<(String, String)> {
        ev.iter()
            .filter_map(|e| match &e.kind {
                Some(event::Kind::Incoming(m)) if m.conversation_id == m.sender => {
                    Some((m.sender.clone(), m.text.clone()))
                }
                _ => None,
            })
            .collect()
    };
    read_until(&mut s, &mut seen, |ev| !direct(ev).is_empty()).await;
    assert_eq!(direct(&seen), vec![(echo, "echo: ping".to_owned())]);
    drop(s);
    // "me" has joined the devnet's demo room, where echo left a few posts.
    let until = Instant::now() + DEADLINE;
    let rooms = loop {
        let rooms = c
            .rooms
            .list_rooms(sessiond_api::v1::ListRoomsRequest {
                identity: "me".into(),
                ..Default::default()
            })
            .await
            .expect("rooms")
            .into_inner()
            .rooms;
        if !rooms.is_empty() {
            break rooms;
        }
        assert!(Instant::now() < until, "me joined no room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let lobby = rooms[0].room_id.clone();
    history_until(&mut c, "me", |h| room_posts(h, &lobby).len() == 3).await;
    d.terminate();
}

/// "Bring your Session account": another device of the account (here session-proto's config
/// code, storing through a network client of its own) has put a profile name and a contact with
/// a nickname into the account's swarm, next to junk in two other config namespaces. A daemon
/// restoring the same recovery password shows both, without pushing anything (the account's
/// config messages in the swarm stay the phone's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_identity_gets_the_accounts_profile_and_contacts() {
    use session_net::{MemoryPoolStore, NetClient, NetConfig};
    use session_proto::account_id::AccountId;
    use session_proto::config::contacts::{self, Contact};
    use session_proto::config::object::{CONTACTS, USER_PROFILE};
    use session_proto::config::{user_profile, Config, ConfigKeys};
    use session_proto::keys::IdentityKeys;
    use session_proto::storage_rpc::UserPubkey;
    use sessiond_api::v1::{ListContactsRequest, ListIdentitiesRequest, RestoreIdentityRequest};
    use std::sync::Arc;

    let n = net("e2e-config-pull", FAST_CONFIG).await;
    let phone = IdentityKeys::from_seed16(&[0x5a; 16]);
    let words = phone.recovery_password().expect("a 13-word account");
    let friend = AccountId::standard([0x77; 32]);
    let mut profile = Config::new(USER_PROFILE, ConfigKeys::user(&phone));
    profile
        .edit(|d| user_profile::set_name(d, "Phone Name"))
        .expect("writable")
        .expect("short name");
    let mut book = Config::new(CONTACTS, ConfigKeys::user(&phone));
    let mut bestie = Contact::new(friend);
    bestie.nickname = "Bestie".into();
    bestie.approved = true;
    book.edit(|d| contacts::set(d, &bestie))
        .expect("writable")
        .expect("valid contact");
    let raw = NetClient::with_https(
        NetConfig::devnet(n.devnet.seeds()),
        Arc::new(MemoryPoolStore::new()),
    );
    raw.bootstrap().await.expect("bootstrap");
    let account = UserPubkey(*phone.account_id().as_bytes());
    let auth = session_net::Auth::Account(phone.signing_key().clone());
    let mut stored = Vec::new();
    for config in [&mut profile, &mut book] {
        let ns = config.config_type().namespace;
        let push = config.push().expect("push");
        for m in &push.messages {
            raw.store(&account, ns, m, 30 * 24 * 3600 * 1000, &auth)
                .await
                .expect("store config");
            stored.push((ns, m.clone()));
        }
    }

    // Junk in the other config namespaces: skipped, the poller carries on.
    for (ns, junk) in [(4i16, &b"not a config"[..]), (5, &[0x7a; 500][..])] {
        raw.store(&account, ns, junk, 600_000, &auth)
            .await
            .expect("store junk");
    }

    let d = n.daemon("d").await;
    let mut c = admin(&d).await;
    c.ids
        .restore_identity(RestoreIdentityRequest {
            name: "me".into(),
            recovery_password: words.to_string(),
        })
        .await
        .expect("restore");
    let start = Instant::now();
    loop {
        let ids = c
            .ids
            .list_identities(ListIdentitiesRequest::default())
            .await
            .expect("list")
            .into_inner()
            .identities;
        let contacts = c
            .convs
            .list_contacts(ListContactsRequest {
                identity: "me".into(),
                ..Default::default()
            })
            .await
            .expect("contacts")
            .into_inner()
            .contacts;
        let named = ids.iter().any(|i| i.display_name == "Phone Name");
        let nick = contacts
            .iter()
            .any(|k| k.account_id == friend.to_string() && k.name == "Bestie");
        if named && nick {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "profile {ids:?} / contacts {contacts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The swarm still holds exactly the phone's messages: the daemon pushed nothing.
    for (ns, m) in stored {
        let got = raw
            .retrieve(&account, ns, None, &auth)
            .await
            .expect("retrieve")
            .messages;
        assert_eq!(got.len(), 1, "namespace {ns}");
        assert_eq!(got[0].data.0, m);
    }
    raw.shutdown().await;
    d.terminate();
    n.devnet.shutdown().await;
}

/// Two messages from one sender that reach the swarm in the reverse of their send order (the
/// later-sent one stored first) and come back in one retrieve batch are recorded in send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_batch_pair_is_recorded_in_send_order() {
    use rand::rngs::OsRng;
    use session_net::{MemoryPoolStore, NetClient, NetConfig};
    use session_proto::keys::IdentityKeys;
    use session_proto::message::{encrypt_message, text_content};
    use session_proto::storage_rpc::UserPubkey;
    use sessiond_api::v1::RestoreIdentityRequest;
    use std::sync::Arc;

    let n = net("e2e-order", FAST_CONFIG).await;
    let bob = IdentityKeys::from_seed16(&[0x3c; 16]);
    let alice = IdentityKeys::generate(&mut OsRng);
    let raw = NetClient::with_https(
        NetConfig::devnet(n.devnet.seeds()),
        Arc::new(MemoryPoolStore::new()),
    );
    raw.bootstrap().await.expect("bootstrap");
    let account = UserPubkey(*bob.account_id().as_bytes());
    let sent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    // The later one is stored first.
    for (ts, text) in [(sent + 1_000, "second"), (sent, "first")] {
        let data = encrypt_message(
            &alice,
            bob.account_id(),
            &text_content(text, None, ts),
            ts,
            &mut OsRng,
        )
        .expect("seal");
        raw.store(&account, 0, &data, 600_000, &session_net::Auth::None)
            .await
            .expect("store");
    }
    // Both are in the swarm before the daemon's first poll.
    let auth = session_net::Auth::Account(bob.signing_key().clone());
    let stored = raw
        .retrieve(&account, 0, None, &auth)
        .await
        .expect("retrieve");
    assert_eq!(stored.messages.len(), 2);

    let d = n.daemon("d").await;
    let mut c = admin(&d).await;
    c.ids
        .restore_identity(RestoreIdentityRequest {
            name: "bob".into(),
            recovery_password: bob.recovery_password().expect("words").to_string(),
        })
        .await
        .expect("restore");
    let log = history_until(&mut c, "bob", |h| incoming_texts(h).len() == 2).await;
    let texts: Vec<String> = incoming_texts(&log).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["first", "second"]);
    raw.shutdown().await;
    d.terminate();
    n.devnet.shutdown().await;
}

/// The outgoing messages of a log: (recipient, text, from_other_device).
fn outgoing_texts(events: &[Event]) -> Vec<(String, String, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Outgoing(m)) => {
                Some((m.recipient.clone(), m.text.clone(), m.from_other_device))
            }
            _ => None,
        })
        .collect()
}

/// Two devices of one account (two daemons restored from the same recovery password) and a
/// peer: what one device sends reaches the peer once and shows on the other device once, as an
/// outgoing message of the conversation with the peer (its sync copy), never as incoming from
/// itself; the sending device does not record its own copy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_one_device_shows_on_the_other_as_outgoing_once() {
    use sessiond_api::v1::RestoreIdentityRequest;

    let n = net("e2e-sync-copy", FAST_CONFIG).await;
    let (d1, d2, dp) = (
        n.daemon("one").await,
        n.daemon("two").await,
        n.daemon("peer").await,
    );
    let (mut c1, mut c2, mut cp) = (admin(&d1).await, admin(&d2).await, admin(&dp).await);
    let created = c1
        .ids
        .create_identity(CreateIdentityRequest { name: "me".into() })
        .await
        .expect("create")
        .into_inner();
    let me = created.identity.expect("identity").account_id;
    let restored = c2
        .ids
        .restore_identity(RestoreIdentityRequest {
            name: "me".into(),
            recovery_password: created.recovery_password,
        })
        .await
        .expect("restore")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(restored.account_id, me, "the same account on both devices");
    let peer = create(&mut cp, "peer").await;

    let id = send(&mut c1, "me", &peer, "from device one").await;

    // The peer gets it.
    history_until(&mut cp, "peer", |h| !incoming_texts(h).is_empty()).await;
    // Device two shows it as sent by the account, in the conversation with the peer.
    let two = history_until(&mut c2, "me", |h| !outgoing_texts(h).is_empty()).await;
    assert_eq!(
        outgoing_texts(&two),
        vec![(peer.clone(), "from device one".to_owned(), true)]
    );
    assert!(incoming_texts(&two).is_empty(), "{two:#?}");
    let in_conversation = c2
        .msgs
        .list_events(ListEventsRequest {
            identity: "me".into(),
            peer: peer.clone(),
            ..Default::default()
        })
        .await
        .expect("conversation history")
        .into_inner()
        .events;
    assert_eq!(outgoing_texts(&in_conversation).len(), 1);
    // Device one: sent, and its own copy (read back from the account's swarm) not recorded.
    history_until(&mut c1, "me", |h| sent_ids(h).contains(&id)).await;

    // Several more polls on every side: still exactly once everywhere.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let one = history(&mut c1, "me").await;
    assert_eq!(
        outgoing_texts(&one),
        vec![(peer.clone(), "from device one".to_owned(), false)]
    );
    assert!(incoming_texts(&one).is_empty(), "{one:#?}");
    let two = history(&mut c2, "me").await;
    assert_eq!(outgoing_texts(&two).len(), 1, "{two:#?}");
    assert!(incoming_texts(&two).is_empty(), "{two:#?}");
    assert!(
        sent_ids(&two).is_empty(),
        "no delivery for another device's message"
    );
    let p = history(&mut cp, "peer").await;
    assert_eq!(
        incoming_texts(&p),
        vec![(me.clone(), "from device one".to_owned())]
    );
    for log in [&one, &two, &p] {
        no_duplicates(log);
    }

    d1.terminate();
    d2.terminate();
    dp.terminate();
    n.devnet.shutdown().await;
}

// ------------------------------------------------------------------------------------------------
// Community rooms (issue 14), on the devnet's community server through onion v4
// ------------------------------------------------------------------------------------------------

/// [`FAST_CONFIG`] with community servers polled every 200 ms.
const COMMUNITY_CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5
community_interval_ms = 200

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500
"#;

/// A devnet whose community server has `lobby` (open) and `news` (read-only).
async fn community_net(tag: &str) -> Net {
    use session_devnet::{CommunityConfig, RoomSpec};
    support::net_with_community(
        tag,
        COMMUNITY_CONFIG,
        Some(CommunityConfig {
            rooms: vec![
                RoomSpec::new("lobby", "Lobby").describe("Say hello"),
                RoomSpec::new("news", "News").read_only(),
                RoomSpec::new("other", "Other"),
            ],
            ..Default::default()
        }),
    )
    .await
}

fn server(n: &Net) -> &session_devnet::CommunityServer {
    n.devnet.community().expect("a community server")
}

async fn join(c: &mut Clients, identity: &str, url: &str) -> sessiond_api::v1::Room {
    c.rooms
        .join_room(sessiond_api::v1::JoinRoomRequest {
            identity: identity.into(),
            url: url.into(),
        })
        .await
        .expect("join")
        .into_inner()
        .room
        .expect("a room")
}

/// Posts in a room: the IncomingMessages of conversation `room`, as (sender, text, server id).
fn room_posts(events: &[Event], room: &str) -> Vec<(String, String, i64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.conversation_id == room => {
                Some((m.sender.clone(), m.text.clone(), m.server_message_id))
            }
            _ => None,
        })
        .collect()
}

fn outgoing_in(events: &[Event], conversation: &str) -> Vec<(String, i64, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Outgoing(m)) if m.recipient == conversation => {
                Some((m.text.clone(), m.server_message_id, m.from_other_device))
            }
            _ => None,
        })
        .collect()
}

fn code_of(r: Result<impl std::fmt::Debug, tonic::Status>) -> tonic::Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_a_community_room() {
    use sessiond_api::v1::{
        DeleteRoomMessageRequest, GetRoomRequest, JoinRoomRequest, ListRoomsRequest, ReactRequest,
        SendDirectMessageRequest,
    };
    let n = community_net("e2e-rooms").await;
    let lobby_url = server(&n).room_url("lobby").to_string();
    let lobby = format!("{}/lobby", server(&n).url());
    let a = n.daemon("a").await;
    let b = n.daemon("b").await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    create(&mut ca, "alice").await;
    create(&mut cb, "bob").await;

    // Bad URLs: no key, a malformed key, a wrong key, a room that does not exist.
    let bad = |url: String| JoinRoomRequest {
        identity: "alice".into(),
        url,
    };
    let base = server(&n).url().to_string();
    assert_eq!(
        code_of(ca.rooms.join_room(bad(format!("{base}/lobby"))).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code_of(
            ca.rooms
                .join_room(bad(format!("{base}/lobby?public_key=abcd")))
                .await
        ),
        tonic::Code::InvalidArgument
    );
    let wrong = format!("{base}/lobby?public_key={}", hex::encode([7u8; 32]));
    let wrong_code = code_of(ca.rooms.join_room(bad(wrong)).await);
    assert!(
        matches!(wrong_code, tonic::Code::Unavailable | tonic::Code::Unknown),
        "{wrong_code:?}"
    );
    let missing = server(&n).room_url("nosuchroom").to_string();
    assert_eq!(
        code_of(ca.rooms.join_room(bad(missing)).await),
        tonic::Code::NotFound
    );
    assert!(ca
        .rooms
        .list_rooms(ListRoomsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .rooms
        .is_empty());

    let ra = join(&mut ca, "alice", &lobby_url).await;
    let rb = join(&mut cb, "bob", &lobby_url).await;
    assert_eq!(ra.room_id, lobby);
    assert_eq!(
        (ra.name.as_str(), ra.description.as_str()),
        ("Lobby", "Say hello")
    );
    assert!(ra.write && ra.read);
    assert_ne!(ra.own_blinded_id, rb.own_blinded_id);
    // Joining twice is a no-op.
    assert_eq!(join(&mut ca, "alice", &lobby_url).await.room_id, lobby);

    // Chat both ways through MessageService.SendMessage with the room as the recipient.
    send(&mut ca, "alice", &lobby, "hello room").await;
    send(&mut cb, "bob", &lobby, "hi alice").await;
    let seen_b = history_until(&mut cb, "bob", |h| !room_posts(h, &lobby).is_empty()).await;
    let posts_b = room_posts(&seen_b, &lobby);
    assert_eq!(posts_b.len(), 1, "{posts_b:?}");
    assert_eq!(posts_b[0].0, ra.own_blinded_id);
    assert_eq!(posts_b[0].1, "hello room");
    let hello_id = posts_b[0].2;
    assert!(hello_id > 0);
    let seen_a = history_until(&mut ca, "alice", |h| !room_posts(h, &lobby).is_empty()).await;
    assert_eq!(
        room_posts(&seen_a, &lobby)
            .into_iter()
            .map(|(s, t, _)| (s, t))
            .collect::<Vec<_>>(),
        vec![(rb.own_blinded_id.clone(), "hi alice".to_owned())]
    );
    // Alice's own post is an OutgoingMessage with its server id, recorded once.
    assert_eq!(
        outgoing_in(&seen_a, &lobby),
        vec![("hello room".to_owned(), hello_id, false)]
    );

    // Bob reacts; alice sees the count.
    cb.rooms
        .react(ReactRequest {
            identity: "bob".into(),
            room_id: lobby.clone(),
            server_message_id: hello_id,
            emoji: "👍".into(),
            remove: false,
        })
        .await
        .expect("react");
    history_until(&mut ca, "alice", |h| {
        h.iter().any(|e| match &e.kind {
            Some(event::Kind::RoomReactions(r)) => {
                r.server_message_id == hello_id
                    && r.reactions
                        .iter()
                        .any(|x| x.emoji == "👍" && x.count == 1 && !x.you)
            }
            _ => false,
        })
    })
    .await;
    // Bad emoji and bad ids are refused before anything is sent.
    let bad_react = cb
        .rooms
        .react(ReactRequest {
            identity: "bob".into(),
            room_id: lobby.clone(),
            server_message_id: hello_id,
            emoji: "a/b".into(),
            remove: false,
        })
        .await;
    assert_eq!(code_of(bad_react), tonic::Code::InvalidArgument);

    // Bob may not delete alice's post; alice may.
    let del = |who: &str| DeleteRoomMessageRequest {
        identity: who.into(),
        room_id: lobby.clone(),
        server_message_id: hello_id,
    };
    assert_eq!(
        code_of(cb.rooms.delete_room_message(del("bob")).await),
        tonic::Code::PermissionDenied
    );
    ca.rooms
        .delete_room_message(del("alice"))
        .await
        .expect("delete own post");
    history_until(&mut cb, "bob", |h| {
        h.iter().any(|e| {
            matches!(&e.kind, Some(event::Kind::RoomMessageDeleted(d))
                if d.server_message_id == hello_id && d.conversation_id == lobby)
        })
    })
    .await;

    // A community DM from bob to alice's blinded ID; alice answers with SendMessage to bob's.
    cb.rooms
        .send_direct_message(SendDirectMessageRequest {
            identity: "bob".into(),
            room_id: lobby.clone(),
            recipient: ra.own_blinded_id.clone(),
            text: "psst".into(),
        })
        .await
        .expect("dm");
    let seen_a = history_until(&mut ca, "alice", |h| {
        incoming_texts(h).contains(&(rb.own_blinded_id.clone(), "psst".to_owned()))
    })
    .await;
    assert!(seen_a.iter().any(|e| matches!(&e.kind,
        Some(event::Kind::Incoming(m)) if m.text == "psst" && m.server_message_id > 0
            && m.conversation_id == rb.own_blinded_id)));
    send(&mut ca, "alice", &rb.own_blinded_id, "psst back").await;
    history_until(&mut cb, "bob", |h| {
        incoming_texts(h).contains(&(ra.own_blinded_id.clone(), "psst back".to_owned()))
    })
    .await;

    // A read-only room refuses posts with a clear error; reading it works.
    let news = join(&mut ca, "alice", &server(&n).room_url("news").to_string()).await;
    assert!(!news.write);
    let refused = ca
        .msgs
        .send_message(SendMessageRequest {
            identity: "alice".into(),
            recipient: news.room_id.clone(),
            text: "may I?".into(),
            ..Default::default()
        })
        .await;
    let status = refused.expect_err("a read-only room refuses posts");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("read-only"),
        "{}",
        status.message()
    );

    // The server goes down: polls fail (the room says why), posts fail; back up, every post
    // made before and after arrives, once.
    send(&mut cb, "bob", &lobby, "before the outage").await;
    server(&n).stop().await;
    let until = Instant::now() + DEADLINE;
    loop {
        let room = ca
            .rooms
            .get_room(GetRoomRequest {
                identity: "alice".into(),
                room_id: lobby.clone(),
            })
            .await
            .expect("get room")
            .into_inner()
            .room
            .expect("room");
        if !room.last_error.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "no poll failed while the server was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = cb
        .msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: lobby.clone(),
            text: "into the void".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(down), tonic::Code::Unavailable);
    server(&n).restart().await.expect("restart");
    for i in 0..3 {
        send(&mut cb, "bob", &lobby, &format!("after {i}")).await;
    }
    let seen_a = history_until(&mut ca, "alice", |h| {
        room_posts(h, &lobby)
            .iter()
            .filter(|(_, t, _)| t.starts_with("after") || t.starts_with("before"))
            .count()
            == 4
    })
    .await;
    let texts: Vec<String> = room_posts(&seen_a, &lobby)
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        texts,
        [
            "hi alice",
            "before the outage",
            "after 0",
            "after 1",
            "after 2"
        ]
    );
    let rooms = ca
        .rooms
        .list_rooms(ListRoomsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .rooms;
    assert_eq!(rooms.len(), 2);
    no_duplicates(&history(&mut ca, "alice").await);
    no_duplicates(&history(&mut cb, "bob").await);
    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}

/// Bad input from a community server: posts with bad signatures or undecodable data are
/// skipped, a room deleted on the server says so, and the other room and one-to-one messages
/// carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_posts_and_a_deleted_room_leave_the_rest_alone() {
    use base64::Engine as _;
    use session_proto::community::{sign_request, Blind15Keys, RequestSigner};
    use session_proto::keys::IdentityKeys;
    use sessiond_api::v1::GetRoomRequest;

    let n = community_net("e2e-rooms-bad").await;
    let lobby = format!("{}/lobby", server(&n).url());
    let other = format!("{}/other", server(&n).url());
    let a = n.daemon("a").await;
    let mut ca = admin(&a).await;
    create(&mut ca, "alice").await;
    let bob = create(&mut ca, "bob").await;
    join(&mut ca, "alice", &server(&n).room_url("lobby").to_string()).await;
    join(&mut ca, "alice", &server(&n).room_url("other").to_string()).await;

    // A mischief-maker posts straight to the server (it does not check what it stores).
    let mallory = IdentityKeys::from_seed(&[0x66; 32]);
    let blind = Blind15Keys::new(&mallory, &server(&n).pubkey());
    let addr = server(&n).addr().to_string();
    let post = |data: Vec<u8>, sig: [u8; 64]| {
        let b64 = base64::engine::general_purpose::STANDARD;
        serde_json::json!({"data": b64.encode(data), "signature": b64.encode(sig)}).to_string()
    };
    let junk = [
        // Signed by nobody.
        post(b"not signed".to_vec(), [0u8; 64]),
        // Signed, but not a Content.
        {
            let data = vec![0xff; 40];
            let sig = blind.sign(&data);
            post(data, sig)
        },
    ];
    for body in &junk {
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let auth = sign_request(
            RequestSigner::Blinded(&blind),
            "POST",
            "/room/lobby/message",
            body.as_bytes(),
            &nonce,
            ts,
        );
        let mut headers: Vec<(&str, &str)> = auth.headers().to_vec();
        headers.push(("content-type", "application/json"));
        let r = support::http_request(&addr, "POST", "/room/lobby/message", &headers, body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    send(&mut ca, "alice", &lobby, "a good post").await;
    join(&mut ca, "bob", &server(&n).room_url("lobby").to_string()).await;
    // Bob reads the room from its start: alice's post, not the junk before it.
    let h = history_until(&mut ca, "bob", |h| !room_posts(h, &lobby).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let h2 = history(&mut ca, "bob").await;
    let texts: Vec<String> = room_posts(&h2, &lobby)
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(texts, ["a good post"], "{h:#?}");
    let h = history(&mut ca, "alice").await;
    assert!(room_posts(&h, &lobby).is_empty(), "{h:#?}");
    assert_eq!(outgoing_in(&h, &lobby).len(), 1);

    // The lobby is deleted on the server: its poll says so; "other" and 1:1 still work.
    assert!(server(&n).delete_room("lobby"));
    let until = Instant::now() + DEADLINE;
    loop {
        let room = ca
            .rooms
            .get_room(GetRoomRequest {
                identity: "alice".into(),
                room_id: lobby.clone(),
            })
            .await
            .expect("get room")
            .into_inner()
            .room
            .expect("room");
        if room.last_error.contains("404") {
            break;
        }
        assert!(Instant::now() < until, "{room:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&mut ca, "alice", &other, "still here").await;
    send(&mut ca, "alice", &bob, "and one-to-one").await;
    history_until(&mut ca, "bob", |h| {
        incoming_texts(h).iter().any(|(_, t)| t == "and one-to-one")
    })
    .await;
    history_until(&mut ca, "alice", |h| outgoing_in(h, &other).len() == 1).await;
    let lost = ca
        .msgs
        .send_message(SendMessageRequest {
            identity: "alice".into(),
            recipient: lobby.clone(),
            text: "anyone?".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(lost), tonic::Code::NotFound);
    a.terminate();
    n.devnet.shutdown().await;
}

/// A room joined on another device of the account (in its UserGroups config) is joined by a
/// restored identity after one poll, and its posts arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_device_joins_the_rooms_of_its_account() {
    use session_net::{MemoryPoolStore, NetClient, NetConfig};
    use session_proto::config::object::USER_GROUPS;
    use session_proto::config::user_groups::{self, CommunityEntry};
    use session_proto::config::{Config, ConfigKeys};
    use session_proto::keys::IdentityKeys;
    use session_proto::storage_rpc::UserPubkey;
    use sessiond_api::v1::{ListRoomsRequest, RestoreIdentityRequest};
    use std::sync::Arc;

    let n = community_net("e2e-rooms-sync").await;
    let phone = IdentityKeys::from_seed16(&[0x3c; 16]);
    let words = phone.recovery_password().expect("a 13-word account");
    let mut groups = Config::new(USER_GROUPS, ConfigKeys::user(&phone));
    let entry = CommunityEntry {
        base_url: server(&n).url().to_string(),
        pubkey: server(&n).pubkey(),
        room: "lobby".into(),
        priority: 0,
        joined_at: 1_700_000_000,
    };
    groups
        .edit(|d| user_groups::set_community(d, &entry))
        .expect("writable");
    let raw = NetClient::with_https(
        NetConfig::devnet(n.devnet.seeds()),
        Arc::new(MemoryPoolStore::new()),
    );
    raw.bootstrap().await.expect("bootstrap");
    let account = UserPubkey(*phone.account_id().as_bytes());
    let auth = session_net::Auth::Account(phone.signing_key().clone());
    let push = groups.push().expect("push");
    for m in &push.messages {
        raw.store(&account, 5, m, 30 * 24 * 3600 * 1000, &auth)
            .await
            .expect("store config");
    }
    raw.shutdown().await;

    // Someone posts in the room before the device comes.
    let d = n.daemon("d").await;
    let mut c = admin(&d).await;
    create(&mut c, "poster").await;
    let lobby = format!("{}/lobby", server(&n).url());
    join(&mut c, "poster", &server(&n).room_url("lobby").to_string()).await;
    send(&mut c, "poster", &lobby, "welcome").await;

    c.ids
        .restore_identity(RestoreIdentityRequest {
            name: "me".into(),
            recovery_password: words.to_string(),
        })
        .await
        .expect("restore");
    let until = Instant::now() + DEADLINE;
    loop {
        let rooms = c
            .rooms
            .list_rooms(ListRoomsRequest {
                identity: "me".into(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .rooms;
        if rooms.iter().any(|r| r.room_id == lobby) {
            assert_eq!(rooms.len(), 1);
            assert_eq!(rooms[0].token, "lobby");
            break;
        }
        assert!(Instant::now() < until, "{rooms:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    history_until(&mut c, "me", |h| {
        room_posts(h, &lobby).iter().any(|(_, t, _)| t == "welcome")
    })
    .await;
    d.terminate();
    n.devnet.shutdown().await;
}

/// Polls GetGroup until `done`; panics at the deadline.
async fn group_until(
    c: &mut Clients,
    identity: &str,
    group: &str,
    mut done: impl FnMut(&sessiond_api::v1::Group) -> bool,
) -> sessiond_api::v1::Group {
    let until = Instant::now() + DEADLINE;
    loop {
        let got = c
            .groups
            .get_group(GetGroupRequest {
                identity: identity.into(),
                group_id: group.into(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().group);
        if let Some(g) = got.clone().filter(|g| done(g)) {
            return g;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for group {group}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The texts posted in `group` that `identity` received, with their senders.
fn group_texts(events: &[Event], group: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.conversation_id == group => {
                assert_eq!(m.conversation_kind, ConversationKind::Group as i32);
                Some((m.sender.clone(), m.text.clone()))
            }
            _ => None,
        })
        .collect()
}

async fn post(c: &mut Clients, from: &str, group: &str, text: &str) {
    // A member's first post may come before its first poll read the keys: UNAVAILABLE then.
    let until = Instant::now() + DEADLINE;
    loop {
        let r = c
            .msgs
            .send_message(SendMessageRequest {
                identity: from.into(),
                recipient: group.into(),
                text: text.into(),
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => return,
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("post failed: {s:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_from_creation_to_removal_and_promotion_over_three_daemons() {
    let n = net("e2e-group", FAST_CONFIG).await;
    let (a, b, c) = (
        n.daemon("a").await,
        n.daemon("b").await,
        n.daemon("c").await,
    );
    let (mut ca, mut cb, mut cc) = (admin(&a).await, admin(&b).await, admin(&c).await);
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let carol = create(&mut cc, "carol").await;

    // Bad input first: no name, a member that is not an Account ID, the creator itself.
    for (name, members) in [
        ("", vec![bob.clone()]),
        ("g", vec!["05abc".to_owned()]),
        ("g", vec![alice.clone()]),
    ] {
        let err = ca
            .groups
            .create_group(CreateGroupRequest {
                identity: "alice".into(),
                name: name.into(),
                members,
                ..Default::default()
            })
            .await
            .expect_err("bad create");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    }

    // A creates the group with B.
    let g = ca
        .groups
        .create_group(CreateGroupRequest {
            identity: "alice".into(),
            name: "Hikers".into(),
            description: "weekend trips".into(),
            members: vec![bob.clone()],
        })
        .await
        .expect("create group")
        .into_inner()
        .group
        .expect("group");
    assert!(g.group_id.starts_with("03") && g.admin);
    assert_eq!(g.status, GroupStatus::Joined as i32);
    let gid = g.group_id.clone();

    // B gets the invitation, accepts it, reads the group and posts.
    let invited = group_until(&mut cb, "bob", &gid, |g| {
        g.status == GroupStatus::Invited as i32
    })
    .await;
    assert_eq!(invited.name, "Hikers");
    assert_eq!(invited.inviter, alice);
    assert!(!invited.admin);
    let err = cb
        .msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: gid.clone(),
            text: "too early".into(),
            ..Default::default()
        })
        .await
        .expect_err("not accepted yet");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    cb.groups
        .accept_invitation(AcceptInvitationRequest {
            identity: "bob".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("accept");
    let joined = group_until(&mut cb, "bob", &gid, |g| g.member_count == 2).await;
    assert_eq!(joined.description, "weekend trips");
    post(&mut cb, "bob", &gid, "hello from bob").await;
    post(&mut ca, "alice", &gid, "welcome bob").await;
    history_until(&mut ca, "alice", |h| {
        group_texts(h, &gid) == vec![(bob.clone(), "hello from bob".to_owned())]
    })
    .await;
    history_until(&mut cb, "bob", |h| {
        group_texts(h, &gid) == vec![(alice.clone(), "welcome bob".to_owned())]
    })
    .await;

    // A adds C with history: C reads what was posted before.
    ca.groups
        .invite_group_members(InviteGroupMembersRequest {
            identity: "alice".into(),
            group_id: gid.clone(),
            members: vec![carol.clone()],
            share_history: true,
        })
        .await
        .expect("invite carol");
    group_until(&mut cc, "carol", &gid, |g| {
        g.status == GroupStatus::Invited as i32
    })
    .await;
    cc.groups
        .accept_invitation(AcceptInvitationRequest {
            identity: "carol".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("carol accepts");
    history_until(&mut cc, "carol", |h| {
        let t = group_texts(h, &gid);
        t.contains(&(bob.clone(), "hello from bob".to_owned()))
            && t.contains(&(alice.clone(), "welcome bob".to_owned()))
    })
    .await;

    // A removes B: B sees the kick and cannot read what is posted afterwards.
    ca.groups
        .remove_group_members(RemoveGroupMembersRequest {
            identity: "alice".into(),
            group_id: gid.clone(),
            members: vec![bob.clone()],
        })
        .await
        .expect("remove bob");
    group_until(&mut cb, "bob", &gid, |g| {
        g.status == GroupStatus::Kicked as i32
    })
    .await;
    let kicked = history(&mut cb, "bob").await;
    assert!(kicked.iter().any(|e| matches!(&e.kind,
        Some(event::Kind::Group(c)) if c.group_id == gid && c.status == GroupStatus::Kicked as i32)));
    post(&mut ca, "alice", &gid, "after bob left").await;
    history_until(&mut cc, "carol", |h| {
        group_texts(h, &gid).contains(&(alice.clone(), "after bob left".to_owned()))
    })
    .await;
    let members = ca
        .groups
        .list_group_members(ListGroupMembersRequest {
            identity: "alice".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("members")
        .into_inner()
        .members;
    let ids: Vec<&str> = members.iter().map(|m| m.account_id.as_str()).collect();
    assert!(
        ids.contains(&carol.as_str()) && !ids.contains(&bob.as_str()),
        "{ids:?}"
    );
    // B's poller no longer reads the group: the post never reaches it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b_log = history(&mut cb, "bob").await;
    assert!(!group_texts(&b_log, &gid)
        .iter()
        .any(|(_, t)| t == "after bob left"));

    // C is promoted and renames the group; A sees the new name.
    ca.groups
        .promote_group_members(PromoteGroupMembersRequest {
            identity: "alice".into(),
            group_id: gid.clone(),
            members: vec![carol.clone()],
        })
        .await
        .expect("promote carol");
    group_until(&mut cc, "carol", &gid, |g| g.admin).await;
    cc.groups
        .update_group_info(UpdateGroupInfoRequest {
            identity: "carol".into(),
            group_id: gid.clone(),
            name: "Mountaineers".into(),
            ..Default::default()
        })
        .await
        .expect("carol renames");
    group_until(&mut ca, "alice", &gid, |g| g.name == "Mountaineers").await;
    let a_log = history(&mut ca, "alice").await;
    assert!(
        a_log.iter().any(|e| matches!(&e.kind,
        Some(event::Kind::Group(c)) if c.group_id == gid && c.renamed && c.name == "Mountaineers"))
    );
    let groups = ca
        .groups
        .list_groups(ListGroupsRequest {
            identity: "alice".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .groups;
    assert_eq!(groups.len(), 1);
    no_duplicates(&a_log);
}
