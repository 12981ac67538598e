//! End to end: real `sessiond` processes on a devnet started in the test exchange messages
//! through gRPC; subscribers resume; a daemon killed with SIGKILL mid-traffic loses nothing and
//! duplicates nothing; the fault suite (snodes stopped, silent, slow or answering 5xx, daemons
//! SIGKILLed mid-send) loses and duplicates nothing; bad `--seeds` fail with one line; replies,
//! reactions, unsend, read receipts and disappearing messages travel both ways and disappearing
//! ones leave the logs and swarms; attachments (in `e2e/attachments.rs`).

#[path = "support/faults.rs"]
mod faults;

use faults::history;
#[path = "support/daemon.rs"]
mod support;

#[path = "e2e/attachments.rs"]
mod attachments;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use session_proto::keys::IdentityKeys;
use session_proto::storage_rpc::UserPubkey;
use sessiond_api::v1::{
    event, AcceptInvitationRequest, ConversationKind, CreateGroupRequest, CreateIdentityRequest,
    DeliveryState, Disappearing, DisappearingMode, Event, ExportRecoveryPasswordRequest,
    GetGroupRequest, GetNetworkStatusRequest, GetReadReceiptsRequest, GroupStatus,
    InviteGroupMembersRequest, ListEventsRequest, ListGroupMembersRequest, ListGroupsRequest,
    MarkConversationReadRequest, MessageRef, NetworkEventKind, NoticeKind, OpenConversationRequest,
    PromoteGroupMembersRequest, ReactRequest, RebuildPathsRequest, RemoveGroupMembersRequest,
    RemovedReason, SendMessageRequest, SendMessageResponse, SetDisappearingRequest,
    SubscribeRequest, SubscribeResponse, UnsendRequest, UpdateGroupInfoRequest,
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
/// a nickname into the account's swarm (at seqno 10), next to junk in two other config
/// namespaces, device-group keys in namespace −21 and a message in the new "v2" format. A daemon
/// restoring the same recovery password shows the name and the contact; a nickname set through
/// it right after the restore (before its first pull) is pushed only after that pull, merged on
/// top of the phone's contacts (pushed before, at seqno 1, it would have been stale against
/// seqno 10 and lost); the phone's profile message is left as it is (nothing to push there). It
/// says that another device published device-group keys, and records the v2 message as
/// unreadable, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_identity_gets_the_accounts_profile_and_contacts() {
    use session_proto::account_id::AccountId;
    use session_proto::config::contacts::{self, Contact};
    use session_proto::config::object::{CONTACTS, USER_PROFILE};
    use session_proto::config::{user_profile, Config, ConfigKeys};
    use session_proto::keys::IdentityKeys;
    use session_proto::storage_rpc::UserPubkey;
    use sessiond_api::v1::{
        ListContactsRequest, ListIdentitiesRequest, RestoreIdentityRequest, SetContactNameRequest,
    };

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
    // Ten rounds of changes on the phone: its Contacts config is at seqno 10.
    for round in 1..=10 {
        let mut bestie = Contact::new(friend);
        bestie.nickname = if round == 10 {
            "Bestie".into()
        } else {
            format!("Bestie {round}")
        };
        bestie.approved = true;
        book.edit(|d| contacts::set(d, &bestie))
            .expect("writable")
            .expect("valid contact");
        if round < 10 {
            let p = book.push().expect("push");
            book.confirm_pushed(p.seqno, &[format!("earlier-{round}")]);
        }
    }
    assert_eq!(book.seqno(), 10);
    let raw = raw_client(&n).await;
    let account = UserPubkey(*phone.account_id().as_bytes());
    let auth = session_net::Auth::Account(phone.signing_key().clone());
    let mut stored = Vec::new();
    // The profile as the phone stored it 29 days and 50 minutes ago: 10 minutes left.
    for (config, ttl_ms) in [(&mut profile, 600_000), (&mut book, 30 * 24 * 3600 * 1000)] {
        let ns = config.config_type().namespace;
        let push = config.push().expect("push");
        for m in &push.messages {
            raw.store(&account, ns, m, ttl_ms, &auth)
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
    // Another device published device-group keys (−21 takes the account's signature), and
    // someone sent a v2 message.
    raw.store(
        &account,
        -21,
        b"d1:Mi1e1:X32:................................e",
        600_000,
        &auth,
    )
    .await
    .expect("store to -21");
    let mut v2 = vec![0x00, 0x02];
    v2.extend((0..1278u32).map(|i| (i * 7 % 251) as u8));
    raw.store(&account, 0, &v2, 600_000, &session_net::Auth::None)
        .await
        .expect("store a v2 message");

    let d = n.daemon("d").await;
    let mut c = admin(&d).await;
    c.ids
        .restore_identity(RestoreIdentityRequest {
            name: "me".into(),
            recovery_password: words.to_string(),
        })
        .await
        .expect("restore");
    // At once, before the first poll can have finished.
    let early = AccountId::standard([0x78; 32]);
    c.convs
        .set_contact_name(SetContactNameRequest {
            identity: "me".into(),
            account_id: early.to_string(),
            name: "Early".into(),
        })
        .await
        .expect("name a contact");
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
            .any(|k| k.account_id == friend.to_string() && k.name == "Bestie" && k.approved);
        if named && nick {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "profile {ids:?} / contacts {contacts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The daemon's nickname joined the phone's contacts in one merged message.
    let mut want = vec![
        (friend.to_string(), "Bestie".to_owned()),
        (early.to_string(), "Early".to_owned()),
    ];
    want.sort();
    eventually(
        "the early nickname merged into the phone's contacts",
        || {
            let (raw, phone, want) = (&raw, &phone, want.clone());
            async move {
                let (hashes, names) = swarm_contacts(raw, phone).await;
                (hashes.len() == 1 && names == want)
                    .then_some(())
                    .ok_or(format!("{hashes:?} {names:?}"))
            }
        },
    )
    .await;
    // The phone's profile message is untouched (nothing was pushed there), but the daemon
    // renewed its expiry to 30 days from now, as desktop does for the current configs.
    let (ns, m) = &stored[0];
    eventually("the profile message's expiry renewed", || {
        let (raw, account, auth) = (&raw, &account, &auth);
        async move {
            let got = raw
                .retrieve(account, *ns, None, auth)
                .await
                .map_err(|e| e.to_string())?
                .messages;
            let month_ahead = now_ms() + 30 * 24 * 3600 * 1000 - 3600 * 1000;
            match got.as_slice() {
                [one] if &one.data.0 == m && one.expiration >= month_ahead => Ok(()),
                other => Err(format!("namespace {ns}: {other:?}")),
            }
        }
    })
    .await;

    // Device-group keys and the v2 message are told, the message once.
    let me = identity(&mut c, "me").await;
    assert!(me.other_device_keys && me.configs_pulled, "{me:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = history(&mut c, "me").await;
    let unreadable: Vec<_> = log
        .iter()
        .filter(|e| matches!(e.kind, Some(event::Kind::Unreadable(_))))
        .collect();
    assert_eq!(unreadable.len(), 1, "{log:#?}");
    // The status page (and `sessiond status`, which renders the same report) says it too.
    let http = d.http.clone().expect("the HTTP listener");
    let auth_header = format!("Bearer {}", d.admin_token);
    let status = support::http_request(
        &http,
        "GET",
        "/api/status",
        &[("authorization", auth_header.as_str())],
        "",
    )
    .await
    .json();
    let note = status["identities"][0]["notice"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("new device group"), "{status}");
    assert_eq!(status["identities"][0]["configs_pulled"], true);
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
    let sent = now_ms();
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

/// The CI fault suite: 100 messages each way in 5 rounds, each round with one fault (two snodes
/// stopped then restarted, two dropping replies, three slow, two answering 5xx, the sending
/// daemon SIGKILLed right after queueing its round). Nothing is lost or duplicated, every Send
/// ends sent, and Subscribe from 0 equals History. The soak bench runs the same at 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_devnet_lose_and_duplicate_nothing() {
    let n = net("e2e-faults", FAST_CONFIG).await;
    let out = faults::run(
        &n,
        5,
        20,
        Duration::from_millis(1500),
        Duration::from_secs(90),
        true,
    )
    .await;
    eprintln!(
        "{} each way in {:.1}s: lost {}, duplicated {}, failed {}, unsettled {}; {} kills, {} \
         node faults, {} back-pressure retries, subscribe = history: {}",
        out.each_way,
        out.elapsed.as_secs_f64(),
        out.lost,
        out.duplicated,
        out.failed,
        out.unsettled,
        out.kills,
        out.node_faults,
        out.backpressure_retries,
        out.subscribe_matches_history
    );
    assert_eq!(out.each_way, 100);
    assert!(out.kills == 1 && out.node_faults == 9, "{out:?}");
    assert!(out.clean(), "{out:?}");
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
        DeleteRoomMessageRequest, GetRoomRequest, JoinRoomRequest, ListRoomsRequest,
        ReactToRoomMessageRequest, SendDirectMessageRequest,
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
        .react_to_room_message(ReactToRoomMessageRequest {
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
        .react_to_room_message(ReactToRoomMessageRequest {
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
/// restored identity after one poll, and its posts arrive; left on that device, it is left here.
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
    let mut hashes = Vec::new();
    for m in &push.messages {
        let stored = raw
            .store(&account, 5, m, 30 * 24 * 3600 * 1000, &auth)
            .await
            .expect("store config");
        hashes.push(stored.hash);
    }
    groups.confirm_pushed(push.seqno, &hashes);

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

    // The phone leaves the room: so does the device, and the poster stays.
    groups
        .edit(|d| user_groups::erase_community(d, &entry.base_url, "lobby"))
        .expect("writable");
    let push = groups.push().expect("push");
    for m in &push.messages {
        raw.store(&account, 5, m, 30 * 24 * 3600 * 1000, &auth)
            .await
            .expect("store config");
    }
    raw.shutdown().await;
    let rooms_of = |c: &mut Clients, who: &str| {
        let req = ListRoomsRequest {
            identity: who.into(),
            ..Default::default()
        };
        let mut rooms = c.rooms.clone();
        async move {
            rooms
                .list_rooms(req)
                .await
                .expect("list")
                .into_inner()
                .rooms
        }
    };
    let until = Instant::now() + DEADLINE;
    loop {
        let rooms = rooms_of(&mut c, "me").await;
        if rooms.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "still in {rooms:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rooms_of(&mut c, "poster").await.len(), 1);
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

/// `alice` (on `ca`) creates a group named `name` with `bob` (Account ID `bob_id`, on `cb`);
/// returns its ID once bob's daemon has the invitation.
async fn invited_to_new_group(
    ca: &mut Clients,
    cb: &mut Clients,
    name: &str,
    bob_id: &str,
) -> String {
    let gid = ca
        .groups
        .create_group(CreateGroupRequest {
            identity: "alice".into(),
            name: name.into(),
            members: vec![bob_id.to_owned()],
            ..Default::default()
        })
        .await
        .expect("create group")
        .into_inner()
        .group
        .expect("group")
        .group_id;
    group_until(cb, "bob", &gid, |g| g.status == GroupStatus::Invited as i32).await;
    gid
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

    // Its keys, info and members are stored for 30 days, and the admin's daemon renews them at
    // its first poll of the group (an expiry past the one they were stored with).
    const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;
    eventually("the group's config messages renewed", || {
        let stamps: Vec<(i16, String, i64, i64)> = n
            .devnet
            .nodes()
            .iter()
            .flat_map(|node| {
                let gid = &gid;
                [12i16, 13, 14].into_iter().flat_map(move |ns| {
                    node.stamps(gid, ns)
                        .into_iter()
                        .map(move |(h, t, e)| (ns, h, t, e))
                })
            })
            .collect();
        async move {
            let all_ns = [12, 13, 14]
                .iter()
                .all(|ns| stamps.iter().any(|s| s.0 == *ns));
            let renewed = stamps.iter().all(|(_, _, t, e)| *e > t + MONTH_MS);
            (all_ns && renewed)
                .then_some(())
                .ok_or(format!("{stamps:?}"))
        }
    })
    .await;

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
    // Reactions in a group: A reacts to B's post, B sees it in the group conversation.
    let a_log = history(&mut ca, "alice").await;
    let bobs_post = a_log
        .iter()
        .find_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.text == "hello from bob" => Some(m.sent_at_ms),
            _ => None,
        })
        .expect("bob's post");
    let to_bob = MessageRef {
        sent_at_ms: bobs_post,
        author: bob.clone(),
    };
    react(&mut ca, "alice", &gid, to_bob.clone(), "🎉", false).await;
    history_until(&mut cb, "bob", |h| {
        find(h, |k| match k {
            event::Kind::Reaction(r)
                if r.conversation == gid
                    && r.author == alice
                    && r.emoji == "🎉"
                    && !r.removed
                    && r.target.as_ref().is_some_and(|t| t.sent_at_ms == bobs_post) =>
            {
                Some(())
            }
            _ => None,
        })
        .is_some()
    })
    .await;
    // Replies in a group keep their quote: B answers A's post, A sees what it quotes (its own
    // message, with its seq and excerpt).
    let b_log = history(&mut cb, "bob").await;
    let welcome = b_log
        .iter()
        .find_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.text == "welcome bob" => Some(m.sent_at_ms),
            _ => None,
        })
        .expect("alice's post at bob");
    cb.msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: gid.clone(),
            text: "thanks!".into(),
            reply_to: Some(MessageRef {
                sent_at_ms: welcome,
                author: alice.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect("a reply in the group");
    history_until(&mut ca, "alice", |h| {
        h.iter().any(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.text == "thanks!" => {
                let r = m.reply_to.clone().unwrap_or_default();
                r.sent_at_ms == welcome && r.author == alice && r.excerpt == "welcome bob"
            }
            _ => false,
        })
    })
    .await;
    // B deletes its reply for everyone: the group gets a DeleteMemberContent with its hash and
    // the reply leaves A's log (MessageRemoved, reason UNSENT). Until B's daemon has stored the
    // reply, it cannot name its hash: FAILED_PRECONDITION, then it works.
    let thanks = history(&mut cb, "bob")
        .await
        .iter()
        .find_map(|e| match &e.kind {
            Some(event::Kind::Outgoing(m)) if m.text == "thanks!" => Some(m.sent_at_ms),
            _ => None,
        })
        .expect("bob's reply");
    let until = Instant::now() + DEADLINE;
    loop {
        let r = cb
            .inter
            .unsend(UnsendRequest {
                identity: "bob".into(),
                conversation: gid.clone(),
                sent_at_ms: thanks,
            })
            .await;
        match r {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::FailedPrecondition && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s) => panic!("unsend in the group: {s:?}"),
        }
    }
    history_until(&mut ca, "alice", |h| {
        removed_seen(h, thanks, RemovedReason::Unsent)
            && !h.iter().any(|e| {
                matches!(
                    &e.kind,
                    Some(event::Kind::Incoming(m)) if m.text == "thanks!"
                )
            })
    })
    .await;
    // A reply to a message the group does not have: NOT_FOUND, nothing sent.
    let unknown = cb
        .msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: gid.clone(),
            text: "to nothing".into(),
            reply_to: Some(MessageRef {
                sent_at_ms: 12_345,
                author: alice.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("no such message");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    // A reaction in a group the identity is not in: NOT_FOUND.
    let stranger = ca
        .inter
        .react(ReactRequest {
            identity: "alice".into(),
            conversation: format!("03{}", "ab".repeat(32)),
            target: Some(to_bob),
            emoji: "🎉".into(),
            remove: false,
        })
        .await
        .expect_err("not in that group");
    assert_eq!(stranger.code(), tonic::Code::NotFound, "{stranger:?}");

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

    // A removes B with his messages: B sees the kick and cannot read what is posted
    // afterwards; his post leaves A's and C's logs (deleted by an admin).
    ca.groups
        .remove_group_members(RemoveGroupMembersRequest {
            identity: "alice".into(),
            group_id: gid.clone(),
            members: vec![bob.clone()],
            delete_messages: true,
        })
        .await
        .expect("remove bob");
    for (c, who) in [(&mut ca, "alice"), (&mut cc, "carol")] {
        history_until(c, who, |h| {
            removed_seen(h, bobs_post, RemovedReason::Deleted)
                && !group_texts(h, &gid).iter().any(|(from, _)| *from == bob)
        })
        .await;
    }
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

/// A raw network client on the devnet, as the account's "phone" or a stranger.
async fn raw_client(n: &Net) -> session_net::NetClient {
    let raw = session_net::NetClient::with_https(
        session_net::NetConfig::devnet(n.devnet.seeds()),
        std::sync::Arc::new(session_net::MemoryPoolStore::new()),
    );
    raw.bootstrap().await.expect("bootstrap");
    raw
}

/// The wall clock, ms since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Stores a one-to-one text from `from` in `to`'s swarm; returns its Session timestamp.
async fn deliver(
    raw: &session_net::NetClient,
    from: &session_proto::keys::IdentityKeys,
    to: &str,
    text: &str,
) -> u64 {
    use rand::rngs::OsRng;
    use session_proto::account_id::AccountId;
    use session_proto::message::{encrypt_message, text_content};
    let to: AccountId = to.parse().expect("account id");
    let ts = now_ms();
    let data =
        encrypt_message(from, &to, &text_content(text, None, ts), ts, &mut OsRng).expect("seal");
    let account = session_proto::storage_rpc::UserPubkey(*to.as_bytes());
    raw.store(&account, 0, &data, 600_000, &session_net::Auth::None)
        .await
        .expect("store");
    ts
}

/// Polls `probe` until it returns `Some`; panics at the deadline with the last `None` reason.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let until = Instant::now() + DEADLINE;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(why) => assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {why}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn identity(c: &mut Clients, name: &str) -> sessiond_api::v1::Identity {
    c.ids
        .get_identity(sessiond_api::v1::GetIdentityRequest { name: name.into() })
        .await
        .expect("get identity")
        .into_inner()
        .identity
        .expect("identity")
}

async fn contact(
    c: &mut Clients,
    name: &str,
    account_id: &str,
) -> Option<sessiond_api::v1::Contact> {
    c.convs
        .get_contact(sessiond_api::v1::GetContactRequest {
            identity: name.into(),
            account_id: account_id.into(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().contact)
}

/// The account's live Contacts config messages in its swarm, merged by a fresh config object
/// (as a third device would see them): (storage hashes, the nicknames it holds).
async fn swarm_contacts(
    raw: &session_net::NetClient,
    keys: &session_proto::keys::IdentityKeys,
) -> (Vec<String>, Vec<(String, String)>) {
    use session_proto::config::object::CONTACTS;
    use session_proto::config::{contacts, Config, ConfigKeys};
    let account = session_proto::storage_rpc::UserPubkey(*keys.account_id().as_bytes());
    let auth = session_net::Auth::Account(keys.signing_key().clone());
    let got = raw
        .retrieve(&account, 3, None, &auth)
        .await
        .expect("retrieve contacts")
        .messages;
    let mut config = Config::new(CONTACTS, ConfigKeys::user(keys));
    let msgs: Vec<(&str, &[u8])> = got
        .iter()
        .map(|m| (m.hash.as_str(), m.data.0.as_slice()))
        .collect();
    config.merge(&msgs, 0);
    let mut hashes: Vec<String> = got.iter().map(|m| m.hash.clone()).collect();
    hashes.sort();
    let mut names: Vec<(String, String)> = contacts::list(config.data())
        .into_iter()
        .filter(|c| !c.nickname.is_empty())
        .map(|c| (c.session_id.to_string(), c.nickname))
        .collect();
    names.sort();
    (hashes, names)
}

/// Two devices of one account (two daemons restored from the same recovery password): a
/// profile name, a contact's nickname, a block and a read position set on one appear on the
/// other; a blocked contact's later messages stay out of both logs; concurrent renames on both
/// devices converge to one merged Contacts config in the swarm (the same message hash, holding
/// both names), shown on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_share_profile_contacts_blocks_and_read_positions() {
    use rand::rngs::OsRng;
    use session_proto::keys::IdentityKeys;
    use sessiond_api::v1::{
        BlockContactRequest, GetConversationRequest, MarkConversationReadRequest,
        RestoreIdentityRequest, SetContactNameRequest, SetProfileRequest,
    };

    let n = net("e2e-config-sync", FAST_CONFIG).await;
    let account = IdentityKeys::from_seed16(&[0x42; 16]);
    let words = account.recovery_password().expect("words").to_string();
    let (d1, d2) = (n.daemon("one").await, n.daemon("two").await);
    let (mut c1, mut c2) = (admin(&d1).await, admin(&d2).await);
    for c in [&mut c1, &mut c2] {
        c.ids
            .restore_identity(RestoreIdentityRequest {
                name: "me".into(),
                recovery_password: words.clone(),
            })
            .await
            .expect("restore");
    }
    let me = account.account_id().to_string();
    let raw = raw_client(&n).await;
    let friend = IdentityKeys::generate(&mut OsRng);
    let pest = IdentityKeys::generate(&mut OsRng);
    let (friend_id, pest_id) = (
        friend.account_id().to_string(),
        pest.account_id().to_string(),
    );
    deliver(&raw, &friend, &me, "hello from a friend").await;
    deliver(&raw, &pest, &me, "hello from a pest").await;
    // Both devices see both messages and have pulled the configs.
    for c in [&mut c1, &mut c2] {
        history_until(c, "me", |h| incoming_texts(h).len() == 2).await;
        eventually("the first config pull", || {
            let mut c = clone_clients(c);
            async move {
                let i = identity(&mut c, "me").await;
                i.configs_pulled.then_some(()).ok_or(format!("{i:?}"))
            }
        })
        .await;
    }
    let read_to = history(&mut c1, "me")
        .await
        .iter()
        .find(|e| matches!(&e.kind, Some(event::Kind::Incoming(m)) if m.sender == friend_id))
        .expect("the friend's message")
        .seq;

    // Device one changes things.
    c1.ids
        .set_profile(SetProfileRequest {
            name: "me".into(),
            display_name: "Device One".into(),
        })
        .await
        .expect("set profile");
    c1.convs
        .set_contact_name(SetContactNameRequest {
            identity: "me".into(),
            account_id: friend_id.clone(),
            name: "Buddy".into(),
        })
        .await
        .expect("name");
    c1.convs
        .block_contact(BlockContactRequest {
            identity: "me".into(),
            account_id: pest_id.clone(),
        })
        .await
        .expect("block");
    c1.convs
        .mark_conversation_read(MarkConversationReadRequest {
            identity: "me".into(),
            account_id: friend_id.clone(),
            seq: read_to,
        })
        .await
        .expect("mark read");

    // Device two shows them.
    let friend_on_two = history(&mut c2, "me")
        .await
        .iter()
        .find(|e| matches!(&e.kind, Some(event::Kind::Incoming(m)) if m.sender == friend_id))
        .expect("the friend's message on two")
        .seq;
    eventually("device one's changes on device two", || {
        let mut c = clone_clients(&c2);
        let (friend_id, pest_id) = (friend_id.clone(), pest_id.clone());
        async move {
            let i = identity(&mut c, "me").await;
            let buddy = contact(&mut c, "me", &friend_id).await;
            let pest = contact(&mut c, "me", &pest_id).await;
            let conv = c
                .convs
                .get_conversation(GetConversationRequest {
                    identity: "me".into(),
                    account_id: friend_id.clone(),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .conversation
                .unwrap_or_default();
            let done = i.display_name == "Device One"
                && buddy.as_ref().is_some_and(|b| b.name == "Buddy")
                && pest.as_ref().is_some_and(|p| p.blocked)
                && conv.read_seq == friend_on_two;
            done.then_some(())
                .ok_or(format!("{i:?} / {buddy:?} / {pest:?} / {conv:?}"))
        }
    })
    .await;

    // The blocked contact writes again, then the friend: only the friend's message is recorded,
    // on both devices.
    deliver(&raw, &pest, &me, "let me in").await;
    deliver(&raw, &friend, &me, "after the block").await;
    for c in [&mut c1, &mut c2] {
        let h = history_until(c, "me", |h| incoming_texts(h).len() == 3).await;
        assert!(
            !incoming_texts(&h).iter().any(|(_, t)| t == "let me in"),
            "{h:#?}"
        );
    }

    // Concurrent renames on both devices converge.
    let (x1, x2) = (some_id(0x31), some_id(0x32));
    let rename = |c: &Clients, who: String, name: &'static str| {
        let mut c = clone_clients(c);
        async move {
            c.convs
                .set_contact_name(SetContactNameRequest {
                    identity: "me".into(),
                    account_id: who,
                    name: name.into(),
                })
                .await
                .expect("rename");
        }
    };
    tokio::join!(
        rename(&c1, x1.clone(), "From One"),
        rename(&c2, x2.clone(), "From Two")
    );
    let want = {
        let mut w = vec![
            (friend_id.clone(), "Buddy".to_owned()),
            (x1.clone(), "From One".to_owned()),
            (x2.clone(), "From Two".to_owned()),
        ];
        w.sort();
        w
    };
    let hashes = eventually("one merged Contacts config in the swarm", || {
        let (raw, account, want) = (&raw, &account, want.clone());
        async move {
            let (hashes, names) = swarm_contacts(raw, account).await;
            (hashes.len() == 1 && names == want)
                .then_some(hashes.clone())
                .ok_or(format!("{hashes:?} {names:?}"))
        }
    })
    .await;
    for c in [&c1, &c2] {
        eventually("both renames on both devices", || {
            let mut c = clone_clients(c);
            let (x1, x2) = (x1.clone(), x2.clone());
            async move {
                let a = contact(&mut c, "me", &x1).await.map(|k| k.name);
                let b = contact(&mut c, "me", &x2).await.map(|k| k.name);
                (a.as_deref() == Some("From One") && b.as_deref() == Some("From Two"))
                    .then_some(())
                    .ok_or(format!("{a:?} {b:?}"))
            }
        })
        .await;
    }
    // Several more polls: nothing moves (both devices hold the same message and push nothing).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(swarm_contacts(&raw, &account).await.0, hashes);

    raw.shutdown().await;
    d1.terminate();
    d2.terminate();
    n.devnet.shutdown().await;
}

/// A fresh set of clients on the same channels.
fn clone_clients(c: &Clients) -> Clients {
    Clients {
        ids: c.ids.clone(),
        msgs: c.msgs.clone(),
        convs: c.convs.clone(),
        net: c.net.clone(),
        groups: c.groups.clone(),
        inter: c.inter.clone(),
        files: c.files.clone(),
        rooms: c.rooms.clone(),
    }
}

fn some_id(n: u8) -> String {
    support::some_account_id(n)
}

// ------------------------------------------------------------------------------------------------
// Replies, reactions, unsend, read receipts, disappearing messages (issue 16)
// ------------------------------------------------------------------------------------------------

/// The first event of `log` that `pick` maps to something.
fn find<T>(log: &[Event], pick: impl Fn(&event::Kind) -> Option<T>) -> Option<T> {
    log.iter().filter_map(|e| e.kind.as_ref()).find_map(pick)
}

/// The incoming message with this text, if the log has it.
fn incoming(log: &[Event], text: &str) -> Option<(u64, sessiond_api::v1::IncomingMessage)> {
    log.iter().find_map(|e| match &e.kind {
        Some(event::Kind::Incoming(m)) if m.text == text => Some((e.seq, m.clone())),
        _ => None,
    })
}

/// The outgoing message with this text, if the log has it.
fn outgoing(log: &[Event], text: &str) -> Option<(u64, sessiond_api::v1::OutgoingMessage)> {
    log.iter().find_map(|e| match &e.kind {
        Some(event::Kind::Outgoing(m)) if m.text == text => Some((e.seq, m.clone())),
        _ => None,
    })
}

async fn send_with(c: &mut Clients, req: SendMessageRequest) -> SendMessageResponse {
    c.msgs.send_message(req).await.expect("send").into_inner()
}

async fn react(
    c: &mut Clients,
    me: &str,
    conv: &str,
    target: MessageRef,
    emoji: &str,
    remove: bool,
) {
    c.inter
        .react(ReactRequest {
            identity: me.into(),
            conversation: conv.into(),
            target: Some(target),
            emoji: emoji.into(),
            remove,
        })
        .await
        .expect("react");
}

fn reaction_seen(log: &[Event], author: &str, emoji: &str, removed: bool) -> bool {
    find(log, |k| match k {
        event::Kind::Reaction(r)
            if r.author == author && r.emoji == emoji && r.removed == removed =>
        {
            Some(())
        }
        _ => None,
    })
    .is_some()
}

fn removed_seen(log: &[Event], sent_at_ms: u64, reason: RemovedReason) -> bool {
    find(log, |k| match k {
        event::Kind::Removed(r)
            if r.reason == reason as i32
                && r.message
                    .as_ref()
                    .is_some_and(|m| m.sent_at_ms == sent_at_ms) =>
        {
            Some(())
        }
        _ => None,
    })
    .is_some()
}

fn read_seen(log: &[Event], message_id: &str) -> bool {
    find(log, |k| match k {
        event::Kind::Delivery(d)
            if d.message_id == message_id && d.state == DeliveryState::Read as i32 =>
        {
            Some(())
        }
        _ => None,
    })
    .is_some()
}

async fn mark_read(c: &mut Clients, me: &str, peer: &str) {
    let last = history(c, me).await.last().map_or(0, |e| e.seq);
    c.convs
        .mark_conversation_read(MarkConversationReadRequest {
            identity: me.into(),
            account_id: peer.into(),
            seq: last,
        })
        .await
        .expect("mark read");
}

/// The hashes a swarm holds for `keys`' account in namespace 0, read with its own signature.
async fn swarm_hashes(client: &session_net::NetClient, keys: &IdentityKeys) -> Vec<String> {
    let account = UserPubkey(*keys.account_id().as_bytes());
    let auth = session_net::Auth::Account(keys.signing_key().clone());
    client
        .retrieve(&account, 0, None, &auth)
        .await
        .expect("retrieve")
        .messages
        .into_iter()
        .map(|m| m.hash)
        .collect()
}

async fn keys_of(c: &mut Clients, name: &str) -> IdentityKeys {
    let phrase = c
        .ids
        .export_recovery_password(ExportRecoveryPasswordRequest { name: name.into() })
        .await
        .expect("export")
        .into_inner()
        .recovery_password;
    IdentityKeys::from_recovery_password(&phrase).expect("a recovery password")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reactions_unsend_receipts_and_disappearing_messages_travel_both_ways() {
    let n = net("e2e-inter", FAST_CONFIG).await;
    let a = n.daemon("a").await;
    let b = n.daemon("b").await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;

    // A message request, accepted: alice hears of it.
    send(&mut ca, "alice", &bob, "hello bob").await;
    let hb = history_until(&mut cb, "bob", |h| incoming(h, "hello bob").is_some()).await;
    let (_, hello) = incoming(&hb, "hello bob").expect("hello");
    cb.convs
        .open_conversation(OpenConversationRequest {
            identity: "bob".into(),
            account_id: alice.clone(),
        })
        .await
        .expect("accept");
    history_until(&mut ca, "alice", |h| {
        find(h, |k| match k {
            event::Kind::Notice(x) if x.kind == NoticeKind::RequestAccepted as i32 => Some(()),
            _ => None,
        })
        .is_some()
    })
    .await;

    // Replies both ways, with the quoted text as the excerpt.
    send_with(
        &mut cb,
        SendMessageRequest {
            identity: "bob".into(),
            recipient: alice.clone(),
            text: "hi alice".into(),
            reply_to: Some(MessageRef {
                sent_at_ms: hello.sent_at_ms,
                author: alice.clone(),
            }),
            ..Default::default()
        },
    )
    .await;
    let ha = history_until(&mut ca, "alice", |h| incoming(h, "hi alice").is_some()).await;
    let (_, hi) = incoming(&ha, "hi alice").expect("reply");
    let (hello_seq, _) = outgoing(&ha, "hello bob").expect("own message");
    let quote = hi.reply_to.clone().expect("a quote");
    assert_eq!(
        (quote.seq, quote.excerpt.as_str(), quote.author.as_str()),
        (hello_seq, "hello bob", alice.as_str())
    );
    send_with(
        &mut ca,
        SendMessageRequest {
            identity: "alice".into(),
            recipient: bob.clone(),
            text: "back at you".into(),
            reply_to: Some(MessageRef {
                sent_at_ms: hi.sent_at_ms,
                author: bob.clone(),
            }),
            ..Default::default()
        },
    )
    .await;
    let hb = history_until(&mut cb, "bob", |h| incoming(h, "back at you").is_some()).await;
    let (_, back) = incoming(&hb, "back at you").expect("reply");
    assert_eq!(back.reply_to.expect("a quote").excerpt, "hi alice");

    // A reaction and its removal, both ways.
    let hello_ref = MessageRef {
        sent_at_ms: hello.sent_at_ms,
        author: alice.clone(),
    };
    react(&mut cb, "bob", &alice, hello_ref.clone(), "👍", false).await;
    react(&mut cb, "bob", &alice, hello_ref, "👍", true).await;
    let hi_ref = MessageRef {
        sent_at_ms: hi.sent_at_ms,
        author: bob.clone(),
    };
    react(&mut ca, "alice", &bob, hi_ref.clone(), "🎉", false).await;
    react(&mut ca, "alice", &bob, hi_ref, "🎉", true).await;
    history_until(&mut ca, "alice", |h| {
        reaction_seen(h, &bob, "👍", false) && reaction_seen(h, &bob, "👍", true)
    })
    .await;
    history_until(&mut cb, "bob", |h| {
        reaction_seen(h, &alice, "🎉", false) && reaction_seen(h, &alice, "🎉", true)
    })
    .await;

    // Bad input: a reaction to a message nobody sent, an unsend of someone else's message, an
    // absurd timer.
    let err = ca
        .inter
        .react(ReactRequest {
            identity: "alice".into(),
            conversation: bob.clone(),
            target: Some(MessageRef {
                sent_at_ms: 12345,
                author: bob.clone(),
            }),
            emoji: "x".into(),
            remove: false,
        })
        .await
        .expect_err("unknown target");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = ca
        .inter
        .unsend(UnsendRequest {
            identity: "alice".into(),
            conversation: bob.clone(),
            sent_at_ms: hi.sent_at_ms,
        })
        .await
        .expect_err("not hers");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = ca
        .inter
        .set_disappearing(SetDisappearingRequest {
            identity: "alice".into(),
            conversation: bob.clone(),
            disappearing: Some(Disappearing {
                mode: DisappearingMode::AfterSend as i32,
                seconds: u32::MAX,
            }),
        })
        .await
        .expect_err("absurd");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Unsend, both ways: the message leaves the other side's log.
    let oops_a = send_with(
        &mut ca,
        SendMessageRequest {
            identity: "alice".into(),
            recipient: bob.clone(),
            text: "oops a".into(),
            ..Default::default()
        },
    )
    .await;
    let oops_b = send_with(
        &mut cb,
        SendMessageRequest {
            identity: "bob".into(),
            recipient: alice.clone(),
            text: "oops b".into(),
            ..Default::default()
        },
    )
    .await;
    history_until(&mut cb, "bob", |h| incoming(h, "oops a").is_some()).await;
    history_until(&mut ca, "alice", |h| incoming(h, "oops b").is_some()).await;
    ca.inter
        .unsend(UnsendRequest {
            identity: "alice".into(),
            conversation: bob.clone(),
            sent_at_ms: oops_a.sent_at_ms,
        })
        .await
        .expect("unsend");
    cb.inter
        .unsend(UnsendRequest {
            identity: "bob".into(),
            conversation: alice.clone(),
            sent_at_ms: oops_b.sent_at_ms,
        })
        .await
        .expect("unsend");
    let hb = history_until(&mut cb, "bob", |h| {
        removed_seen(h, oops_a.sent_at_ms, RemovedReason::Unsent)
    })
    .await;
    assert!(incoming(&hb, "oops a").is_none() && outgoing(&hb, "oops b").is_none());
    let ha = history_until(&mut ca, "alice", |h| {
        removed_seen(h, oops_b.sent_at_ms, RemovedReason::Unsent)
    })
    .await;
    assert!(incoming(&ha, "oops b").is_none() && outgoing(&ha, "oops a").is_none());

    // Read receipts, both ways (on by default).
    let (_, hello_out) = outgoing(&ha, "hello bob").expect("hello");
    let (_, hi_out) = outgoing(&hb, "hi alice").expect("hi");
    mark_read(&mut cb, "bob", &alice).await;
    mark_read(&mut ca, "alice", &bob).await;
    history_until(&mut ca, "alice", |h| read_seen(h, &hello_out.message_id)).await;
    history_until(&mut cb, "bob", |h| read_seen(h, &hi_out.message_id)).await;
    let on = cb
        .inter
        .get_read_receipts(GetReadReceiptsRequest {
            identity: "bob".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(on.enabled);

    // A 10-second disappearing timer, set by alice, applies to both sides' messages.
    ca.inter
        .set_disappearing(SetDisappearingRequest {
            identity: "alice".into(),
            conversation: bob.clone(),
            disappearing: Some(Disappearing {
                mode: DisappearingMode::AfterSend as i32,
                seconds: 10,
            }),
        })
        .await
        .expect("timer");
    history_until(&mut cb, "bob", |h| {
        find(h, |k| match k {
            event::Kind::Disappearing(d) if d.disappearing.is_some_and(|t| t.seconds == 10) => {
                Some(())
            }
            _ => None,
        })
        .is_some()
    })
    .await;
    let secret_a = send(&mut ca, "alice", &bob, "secret a").await;
    let secret_b = send(&mut cb, "bob", &alice, "secret b").await;
    let hb = history_until(&mut cb, "bob", |h| incoming(h, "secret a").is_some()).await;
    let ha = history_until(&mut ca, "alice", |h| incoming(h, "secret b").is_some()).await;
    let (_, sa_in) = incoming(&hb, "secret a").expect("secret a");
    let (_, sb_in) = incoming(&ha, "secret b").expect("secret b");
    for m in [&sa_in, &sb_in] {
        assert_eq!(m.disappearing.expect("a timer").seconds, 10);
        assert_eq!(m.expires_at_ms, m.sent_at_ms + 10_000);
    }
    assert!(!secret_a.is_empty() && !secret_b.is_empty());
    let net_client = session_net::NetClient::with_https(
        session_net::NetConfig::devnet(n.devnet.seeds()),
        std::sync::Arc::new(session_net::MemoryPoolStore::new()),
    );
    net_client.bootstrap().await.expect("bootstrap");
    let (bob_keys, alice_keys) = (
        keys_of(&mut cb, "bob").await,
        keys_of(&mut ca, "alice").await,
    );
    assert!(swarm_hashes(&net_client, &bob_keys)
        .await
        .contains(&sa_in.hash));
    // Gone after the timer: from both logs and from both swarms.
    let hb = history_until(&mut cb, "bob", |h| {
        removed_seen(h, sa_in.sent_at_ms, RemovedReason::Expired)
            && removed_seen(h, sb_in.sent_at_ms, RemovedReason::Expired)
    })
    .await;
    let ha = history_until(&mut ca, "alice", |h| {
        removed_seen(h, sa_in.sent_at_ms, RemovedReason::Expired)
            && removed_seen(h, sb_in.sent_at_ms, RemovedReason::Expired)
    })
    .await;
    assert!(incoming(&hb, "secret a").is_none() && outgoing(&hb, "secret b").is_none());
    assert!(incoming(&ha, "secret b").is_none() && outgoing(&ha, "secret a").is_none());
    assert!(!swarm_hashes(&net_client, &bob_keys)
        .await
        .contains(&sa_in.hash));
    assert!(!swarm_hashes(&net_client, &alice_keys)
        .await
        .contains(&sb_in.hash));
    net_client.shutdown().await;
    // Earlier messages are still there.
    assert!(incoming(&hb, "back at you").is_some());
}

// ------------------------------------------------------------------------------------------------
// The account's groups and rooms on its other devices (UserGroups push and adoption)
// ------------------------------------------------------------------------------------------------

/// The account's UserGroups config as a fresh device merges it from the swarm: its groups and
/// community rooms.
async fn swarm_user_groups(
    raw: &session_net::NetClient,
    keys: &IdentityKeys,
) -> (
    Vec<session_proto::config::user_groups::GroupEntry>,
    Vec<session_proto::config::user_groups::CommunityEntry>,
) {
    use session_proto::config::object::USER_GROUPS;
    use session_proto::config::{user_groups, Config, ConfigKeys};
    let account = UserPubkey(*keys.account_id().as_bytes());
    let auth = session_net::Auth::Account(keys.signing_key().clone());
    let got = raw
        .retrieve(&account, 5, None, &auth)
        .await
        .expect("retrieve user groups")
        .messages;
    let mut config = Config::new(USER_GROUPS, ConfigKeys::user(keys));
    let msgs: Vec<(&str, &[u8])> = got
        .iter()
        .map(|m| (m.hash.as_str(), m.data.0.as_slice()))
        .collect();
    config.merge(&msgs, 0);
    (
        user_groups::groups(config.data()),
        user_groups::communities(config.data()),
    )
}

/// A creates a group with B and joins a community room through the API: both go to A's
/// UserGroups (the group with its admin seed, the room with its server key), B's invitation
/// and acceptance go to B's; a second device restored from A's recovery password shows the
/// group (name, members, admin) and the room; leaving the room on A erases its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_device_shows_the_groups_and_rooms_joined_on_the_first() {
    use sessiond_api::v1::{LeaveRoomRequest, ListRoomsRequest, RestoreIdentityRequest};

    let n = community_net("e2e-groups-sync").await;
    let (a, b) = (n.daemon("a").await, n.daemon("b").await);
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let (alice_keys, bob_keys) = (
        keys_of(&mut ca, "alice").await,
        keys_of(&mut cb, "bob").await,
    );
    let gid = ca
        .groups
        .create_group(CreateGroupRequest {
            identity: "alice".into(),
            name: "Climbers".into(),
            description: "ropes".into(),
            members: vec![bob.clone()],
        })
        .await
        .expect("create group")
        .into_inner()
        .group
        .expect("group")
        .group_id;
    let lobby = join(&mut ca, "alice", &server(&n).room_url("lobby").to_string())
        .await
        .room_id;
    let raw = raw_client(&n).await;
    let server_key = server(&n).pubkey();

    // A's UserGroups holds the group (as its admin) and the room.
    eventually("A's UserGroups push", || {
        let (raw, keys, gid) = (raw.clone(), alice_keys.clone(), gid.clone());
        async move {
            let (groups, rooms) = swarm_user_groups(&raw, &keys).await;
            let g = groups.iter().find(|g| g.id.to_string() == gid);
            let room = rooms.iter().find(|r| r.room == "lobby");
            match (g, room) {
                (Some(g), Some(r)) if g.admin_seed.is_some() && !g.invited => {
                    assert_eq!(g.name, "Climbers");
                    assert!(g.auth_data.is_empty() && g.joined_at > 0);
                    assert_eq!(r.pubkey, server_key);
                    Ok(())
                }
                _ => Err(format!("{groups:?} {rooms:?}")),
            }
        }
    })
    .await;
    // B's holds the invitation (with its auth data), then the accepted group.
    group_until(&mut cb, "bob", &gid, |g| {
        g.status == GroupStatus::Invited as i32
    })
    .await;
    let bob_entry = |invited: bool| {
        let (raw, keys, gid) = (raw.clone(), bob_keys.clone(), gid.clone());
        async move {
            let (groups, _) = swarm_user_groups(&raw, &keys).await;
            match groups.iter().find(|g| g.id.to_string() == gid) {
                Some(g) if g.invited == invited => {
                    assert_eq!(g.auth_data.len(), 100);
                    assert!(g.admin_seed.is_none());
                    Ok(())
                }
                _ => Err(format!("{groups:?}")),
            }
        }
    };
    eventually("B's invitation in UserGroups", || bob_entry(true)).await;
    cb.groups
        .accept_invitation(AcceptInvitationRequest {
            identity: "bob".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("accept");
    eventually("B's accepted group in UserGroups", || bob_entry(false)).await;

    // A second device of A, restored from its recovery password.
    let a2 = n.daemon("a2").await;
    let mut c2 = admin(&a2).await;
    c2.ids
        .restore_identity(RestoreIdentityRequest {
            name: "me".into(),
            recovery_password: alice_keys.recovery_password().expect("words").to_string(),
        })
        .await
        .expect("restore");
    let g = group_until(&mut c2, "me", &gid, |g| {
        g.name == "Climbers" && g.member_count == 2
    })
    .await;
    assert!(g.admin, "{g:?}");
    assert_eq!(g.status, GroupStatus::Joined as i32);
    assert_eq!(g.description, "ropes");
    let members = c2
        .groups
        .list_group_members(ListGroupMembersRequest {
            identity: "me".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("members")
        .into_inner()
        .members;
    let mut ids: Vec<&str> = members.iter().map(|m| m.account_id.as_str()).collect();
    ids.sort();
    let mut want = vec![alice.as_str(), bob.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let rooms = eventually("the room on the second device", || {
        let mut c = clone_clients(&c2);
        let lobby = lobby.clone();
        async move {
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
                Ok(rooms)
            } else {
                Err(format!("{rooms:?}"))
            }
        }
    })
    .await;
    assert_eq!(rooms.len(), 1);

    // Leaving the room on A erases it from A's UserGroups (the group stays).
    ca.rooms
        .leave_room(LeaveRoomRequest {
            identity: "alice".into(),
            room_id: lobby.clone(),
        })
        .await
        .expect("leave");
    eventually("the room's entry erased", || {
        let (raw, keys, gid) = (raw.clone(), alice_keys.clone(), gid.clone());
        async move {
            let (groups, rooms) = swarm_user_groups(&raw, &keys).await;
            if rooms.is_empty() && groups.iter().any(|g| g.id.to_string() == gid) {
                Ok(())
            } else {
                Err(format!("{groups:?} {rooms:?}"))
            }
        }
    })
    .await;
    raw.shutdown().await;
    a.terminate();
    b.terminate();
    a2.terminate();
    n.devnet.shutdown().await;
}

/// B declines A's invitation: the group is left, its UserGroups entry erased, a second decline
/// or an unknown or malformed group is refused; after B's daemon restarts (and reads its swarm,
/// the old invitation included, from the start) the declined group stays declined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_invitation_stays_declined_after_a_restart() {
    use sessiond_api::v1::DeclineInvitationRequest;

    let n = net("e2e-group-decline", FAST_CONFIG).await;
    let (a, b) = (n.daemon("a").await, n.daemon("b").await);
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let bob_keys = keys_of(&mut cb, "bob").await;
    let gid = invited_to_new_group(&mut ca, &mut cb, "Not for me", &bob).await;
    let raw = raw_client(&n).await;
    let listed = |present: bool| {
        let (raw, keys, gid) = (raw.clone(), bob_keys.clone(), gid.clone());
        async move {
            let (groups, _) = swarm_user_groups(&raw, &keys).await;
            if groups.iter().any(|g| g.id.to_string() == gid) == present {
                Ok(())
            } else {
                Err(format!("{groups:?}"))
            }
        }
    };
    eventually("the invitation in B's UserGroups", || listed(true)).await;

    let declining = clone_clients(&cb);
    let decline = |group: String| {
        let mut c = clone_clients(&declining);
        async move {
            c.groups
                .decline_invitation(DeclineInvitationRequest {
                    identity: "bob".into(),
                    group_id: group,
                })
                .await
        }
    };
    decline(gid.clone()).await.expect("decline");
    let g = group_until(&mut cb, "bob", &gid, |g| {
        g.status == GroupStatus::Left as i32
    })
    .await;
    assert_eq!(g.name, "Not for me");
    assert_eq!(
        code_of(decline(gid.clone()).await),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        code_of(decline(format!("03{}", "12".repeat(32))).await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code_of(decline(bob.clone()).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code_of(decline("03zz".into()).await),
        tonic::Code::InvalidArgument
    );
    eventually("the entry erased from B's UserGroups", || listed(false)).await;

    // Restarted, B reads its swarm from the start: the old invitation does not bring the
    // group back, and nothing else does.
    b.terminate();
    let b = n.daemon("b").await;
    let mut cb = admin(&b).await;
    eventually("B's first pull after the restart", || {
        let mut c = clone_clients(&cb);
        async move {
            let i = identity(&mut c, "bob").await;
            i.configs_pulled.then_some(()).ok_or(format!("{i:?}"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let g = group_until(&mut cb, "bob", &gid, |_| true).await;
    assert_eq!(g.status, GroupStatus::Left as i32, "{g:?}");
    let log = history(&mut cb, "bob").await;
    let invitations = log
        .iter()
        .filter(|e| matches!(&e.kind,
            Some(event::Kind::Group(c)) if c.group_id == gid && c.status == GroupStatus::Invited as i32))
        .count();
    assert_eq!(invitations, 1, "the invitation was recorded once");
    raw.shutdown().await;
    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}
