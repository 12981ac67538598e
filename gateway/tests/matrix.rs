//! The Matrix adapter against real `sessiond` daemons: two daemons on a devnet chat through
//! ruma-client (a Matrix client library written by someone else), a client that was away
//! catches up with `since`; raw HTTP for every bad input (each checks the exact status and
//! errcode, then that the server and other clients carry on), and that one identity's token
//! never sees another identity's rooms.

#[path = "support/daemon.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ruma::api::client::membership::join_room_by_id;
use ruma::api::client::message::{get_message_events, send_message_event};
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::room::create_room;
use ruma::api::client::sync::sync_events;
use ruma::api::client::typing::create_typing_event::{self, v3::Typing, v3::TypingInfo};
use ruma::events::room::message::RoomMessageEventContent;
use ruma::events::{AnySyncMessageLikeEvent, AnySyncTimelineEvent, SyncMessageLikeEvent};
use ruma::{OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomId};
use serde_json::{json, Value};
use sessiond_api::v1::{
    event, CreateIdentityRequest, CreateTokenRequest, ListEventsRequest, OpenConversationRequest,
    RevokeTokenRequest,
};
use support::{
    bearer, clients, net, networked_command, run_command, some_account_id, Clients, Daemon, Net,
    TempDir,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait in these tests ends by this.
const DEADLINE: Duration = Duration::from_secs(60);
/// The server name the daemons' Matrix endpoints use (the default).
const SERVER: &str = "localhost";

const CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500

[matrix]
max_sync_timeout_ms = 1500
"#;

type Mx = ruma_client::Client<ruma_client::http_client::Hyper>;

// ------------------------------------------------------------------------------------------------
// Daemons and their Matrix endpoints
// ------------------------------------------------------------------------------------------------

/// The Matrix endpoint of a daemon: `host:port`.
fn matrix_addr(d: &Daemon) -> String {
    d.matrix
        .clone()
        .expect("the daemon runs its Matrix endpoint")
}

impl Net {
    async fn daemon(&self, name: &str) -> Daemon {
        let dir = self.dir.path().join(name);
        let cmd = networked_command(&dir, &self.manifest, &self.config);
        tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
            .await
            .expect("start daemon")
    }
}

/// An offline daemon (no network needed: sends just queue), with the tests' config.
async fn offline_daemon(tag: &str) -> (Daemon, TempDir) {
    offline_daemon_with(tag, CONFIG).await
}

/// An offline daemon with this config file.
async fn offline_daemon_with(tag: &str, config_text: &str) -> (Daemon, TempDir) {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, config_text).expect("config");
    let data = dir.path().join("data");
    let mut cmd = run_command(&data);
    cmd.arg("--config").arg(&config);
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start daemon");
    (d, dir)
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

async fn scoped_token(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_token(CreateTokenRequest {
            name: name.into(),
            label: "test".into(),
        })
        .await
        .expect("create token")
        .into_inner()
        .token
}

// ------------------------------------------------------------------------------------------------
// ruma-client helpers
// ------------------------------------------------------------------------------------------------

async fn mx_login(addr: &str, user: &str, password: &str) -> Mx {
    let client = ruma_client::Client::builder()
        .homeserver_url(format!("http://{addr}"))
        .build::<ruma_client::http_client::Hyper>()
        .await
        .expect("versions");
    client
        .log_in(user, password, None, Some("ruma test"))
        .await
        .expect("login");
    client
}

fn user(localpart: &str) -> OwnedUserId {
    format!("@{localpart}:{SERVER}")
        .try_into()
        .expect("user id")
}

async fn mx_sync(c: &Mx, since: Option<&str>, timeout_ms: u64) -> sync_events::v3::Response {
    let mut req = sync_events::v3::Request::new();
    req.since = since.map(str::to_owned);
    req.timeout = Some(Duration::from_millis(timeout_ms));
    c.send_request(req).await.expect("sync")
}

/// (event id, sender, body) of the messages in a joined room's timeline.
fn messages_in(resp: &sync_events::v3::Response, room: &RoomId) -> Vec<(String, String, String)> {
    let Some(joined) = resp.rooms.join.get(room) else {
        return vec![];
    };
    joined
        .timeline
        .events
        .iter()
        .filter_map(
            |raw| match raw.deserialize().expect("a valid timeline event") {
                AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
                    SyncMessageLikeEvent::Original(m),
                )) => Some((
                    m.event_id.to_string(),
                    m.sender.to_string(),
                    m.content.body().to_owned(),
                )),
                _ => None,
            },
        )
        .collect()
}

/// Syncs (long-polling) until `done` holds for what was collected; returns the messages of
/// `room` seen, and the last `next_batch`.
async fn sync_until(
    c: &Mx,
    since: &mut Option<String>,
    mut done: impl FnMut(&sync_events::v3::Response) -> bool,
) -> sync_events::v3::Response {
    let until = Instant::now() + DEADLINE;
    loop {
        let resp = mx_sync(c, since.as_deref(), 1000).await;
        *since = Some(resp.next_batch.clone());
        if done(&resp) {
            return resp;
        }
        assert!(Instant::now() < until, "timed out waiting in /sync");
    }
}

async fn mx_send(c: &Mx, room: &RoomId, txn: &str, text: &str) -> String {
    let content = RoomMessageEventContent::text_plain(text);
    let txn: OwnedTransactionId = txn.into();
    let req =
        send_message_event::v3::Request::new(room.to_owned(), txn, &content).expect("serialize");
    c.send_request(req)
        .await
        .expect("send")
        .event_id
        .to_string()
}

// ------------------------------------------------------------------------------------------------
// The Done-when flow
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_chat_through_a_matrix_client_and_the_away_client_catches_up() {
    let net = net("mx-e2e", CONFIG).await;
    let (da, db) = (net.daemon("a").await, net.daemon("b").await);
    let (mut aa, mut ab) = (admin(&da).await, admin(&db).await);
    let alice_id = create(&mut aa, "alice").await;
    let bob_id = create(&mut ab, "bob").await;
    let bob_token = scoped_token(&mut ab, "bob").await;
    let (mxa, mxb) = (matrix_addr(&da), matrix_addr(&db));

    // Alice logs in with the admin token and her name; Bob with his own token and full user id.
    let alice = mx_login(&mxa, "alice", &da.admin_token).await;
    let bob = mx_login(&mxb, &format!("@bob:{SERVER}"), &bob_token).await;
    // A second client of Alice's syncs once now and then is away until the end.
    let away = mx_login(&mxa, "alice", &da.admin_token).await;
    let away_since = mx_sync(&away, None, 0).await.next_batch;

    // Alice opens a DM with Bob's Account ID and writes.
    let mut req = create_room::v3::Request::new();
    req.invite = vec![user(&bob_id)];
    req.is_direct = true;
    let room_a: OwnedRoomId = alice.send_request(req).await.expect("createRoom").room_id;
    let hello = mx_send(&alice, &room_a, "t1", "hello bob").await;
    // The client retries the PUT: same event, nothing sent twice.
    assert_eq!(mx_send(&alice, &room_a, "t1", "hello bob").await, hello);

    // Bob's client sees an invite from Alice's ghost, joins, and gets the message.
    let mut bob_since = None;
    let resp = sync_until(&bob, &mut bob_since, |r| !r.rooms.invite.is_empty()).await;
    let room_b = resp.rooms.invite.keys().next().expect("invite").clone();
    let join = join_room_by_id::v3::Request::new(room_b.clone());
    assert_eq!(bob.send_request(join).await.expect("join").room_id, room_b);
    let mut seen = Vec::new();
    sync_until(&bob, &mut bob_since, |r| {
        seen.extend(messages_in(r, &room_b));
        !seen.is_empty()
    })
    .await;
    assert_eq!(
        seen.len(),
        1,
        "the message once, though its PUT came twice: {seen:?}"
    );
    assert_eq!(seen[0].1, user(&alice_id).to_string());
    assert_eq!(seen[0].2, "hello bob");

    // Bob replies; Alice's client gets it from Bob's ghost.
    let reply = mx_send(&bob, &room_b, "r1", "hi alice").await;
    assert_ne!(reply, hello);
    let mut alice_since = None;
    let mut alice_seen = Vec::new();
    sync_until(&alice, &mut alice_since, |r| {
        alice_seen.extend(messages_in(r, &room_a));
        alice_seen.iter().any(|m| m.2 == "hi alice")
    })
    .await;
    let from_bob: Vec<_> = alice_seen.iter().filter(|m| m.2 == "hi alice").collect();
    assert_eq!(from_bob.len(), 1);
    assert_eq!(from_bob[0].1, user(&bob_id).to_string());

    // Bob starts typing; Alice's client sees m.typing with Bob's ghost (live, not in the log).
    let typing = create_typing_event::v3::Request::new(
        user("bob"),
        room_b.clone(),
        Typing::Yes(TypingInfo::new(Duration::from_secs(30))),
    );
    bob.send_request(typing).await.expect("typing");
    let ghost = user(&bob_id).to_string();
    sync_until(&alice, &mut alice_since, |r| {
        r.rooms.join.get(&room_a).is_some_and(|j| {
            j.ephemeral.events.iter().any(|raw| {
                let v: Value = serde_json::from_str(raw.json().get()).expect("JSON");
                v["type"] == "m.typing" && v["content"]["user_ids"] == json!([ghost])
            })
        })
    })
    .await;

    // Two more from Bob while the away client is still away.
    mx_send(&bob, &room_b, "r2", "are you there?").await;
    mx_send(&bob, &room_b, "r3", "ok, later").await;
    sync_until(&alice, &mut alice_since, |r| {
        alice_seen.extend(messages_in(r, &room_a));
        alice_seen.iter().any(|m| m.2 == "ok, later")
    })
    .await;

    // Unread counts run from the read marker to the end of the room's log, whatever the sync
    // holds: a sync with only Alice's own new message still counts Bob's three.
    let unread = |r: &sync_events::v3::Response| {
        r.rooms
            .join
            .get(&room_a)
            .and_then(|j| j.unread_notifications.notification_count)
            .map(u64::from)
    };
    let brb = mx_send(&alice, &room_a, "a2", "brb").await;
    let resp = sync_until(&alice, &mut alice_since, |r| {
        messages_in(r, &room_a).iter().any(|m| m.2 == "brb")
    })
    .await;
    assert_eq!(unread(&resp), Some(3), "{:?}", resp.rooms.join.get(&room_a));
    // Read up to her own message: nothing unread.
    let receipt = create_receipt::v3::Request::new(
        room_a.clone(),
        create_receipt::v3::ReceiptType::Read,
        brb.try_into().expect("event id"),
    );
    alice.send_request(receipt).await.expect("receipt");
    let resp = sync_until(&alice, &mut alice_since, |r| {
        r.rooms.join.contains_key(&room_a)
    })
    .await;
    assert_eq!(unread(&resp), Some(0));

    // The away client comes back with its old `since`: exactly what it missed, in order, once.
    let mut since = Some(away_since);
    let mut caught_up = Vec::new();
    loop {
        let resp = mx_sync(&away, since.as_deref(), 0).await;
        let batch = messages_in(&resp, &room_a);
        since = Some(resp.next_batch.clone());
        if batch.is_empty() && resp.rooms.join.is_empty() {
            break;
        }
        caught_up.extend(batch);
    }
    // Bob's joining accepted alice's request: a notice that may come before or after his reply.
    let texts: Vec<&str> = caught_up
        .iter()
        .map(|m| m.2.as_str())
        .filter(|t| *t != "accepted your message request")
        .collect();
    assert_eq!(
        texts,
        [
            "hello bob",
            "hi alice",
            "are you there?",
            "ok, later",
            "brb"
        ],
        "{caught_up:?}"
    );
    let ids: HashSet<&str> = caught_up.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(ids.len(), caught_up.len(), "no event twice");
    assert_eq!(caught_up[0].0, hello);

    // Back-pagination with /messages gives the same history, newest first.
    let mut req = get_message_events::v3::Request::backward(room_a.clone());
    req.limit = 10u32.into();
    let page = away.send_request(req).await.expect("messages");
    let bodies: Vec<String> = page
        .chunk
        .iter()
        .filter_map(|raw| {
            let v: Value = serde_json::from_str(raw.json().get()).ok()?;
            v["content"]["body"].as_str().map(str::to_owned)
        })
        .filter(|b| b != "accepted your message request")
        .collect();
    assert_eq!(
        bodies,
        [
            "brb",
            "ok, later",
            "are you there?",
            "hi alice",
            "hello bob"
        ]
    );
}

// ------------------------------------------------------------------------------------------------
// Raw HTTP
// ------------------------------------------------------------------------------------------------

/// `PUT rooms/{room}/send/m.reaction/r1`: `key` on `event_id`, with `token`; the answer.
async fn put_reaction(
    addr: &str,
    token: &str,
    room: &str,
    event_id: &Value,
    key: &str,
) -> (u16, Value) {
    let reaction = json!({ "m.relates_to": {
        "rel_type": "m.annotation",
        "event_id": event_id,
        "key": key,
    }});
    raw(
        addr,
        "PUT",
        &v3(&format!("rooms/{}/send/m.reaction/r1", enc(room))),
        Some(token),
        reaction.to_string().as_bytes(),
    )
    .await
}

/// One HTTP/1.1 request on a fresh connection; answers the status and the JSON body.
async fn raw(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    read_response(&mut s).await
}

async fn read_response(s: &mut TcpStream) -> (u16, Value) {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    parse_response(&out)
}

fn parse_response(out: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body {body:?}: {e}"))
    };
    (status, body)
}

fn v3(path: &str) -> String {
    format!("/_matrix/client/v3/{path}")
}

/// Asserts an error answer.
#[track_caller]
fn is_error(got: &(u16, Value), status: u16, errcode: &str) {
    assert_eq!(got.0, status, "{got:?}");
    assert_eq!(got.1["errcode"], errcode, "{got:?}");
    assert!(got.1["error"].is_string(), "{got:?}");
}

/// Logs in over raw HTTP; answers the access token.
async fn login(addr: &str, user: &str, password: &str) -> String {
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
    });
    let (status, v) = raw(
        addr,
        "POST",
        &v3("login"),
        None,
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().expect("token").to_owned()
}

/// The server still answers, and `token` still works.
async fn still_fine(addr: &str, token: &str) {
    let (status, v) = raw(addr, "GET", "/_matrix/client/versions", None, b"").await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = raw(addr, "GET", &v3("account/whoami"), Some(token), b"").await;
    assert_eq!(status, 200, "{v}");
}

struct Fixture {
    daemon: Daemon,
    _dir: TempDir,
    mx: String,
    alice: String,
    bob: String,
    peer: String,
    room: String,
}

/// An offline daemon with identities alice and bob logged in; alice has a room with `peer`.
async fn fixture(tag: &str) -> Fixture {
    let (daemon, dir) = offline_daemon(tag).await;
    let mut c = admin(&daemon).await;
    create(&mut c, "alice").await;
    create(&mut c, "bob").await;
    let mx = matrix_addr(&daemon);
    let alice = login(&mx, "alice", &daemon.admin_token).await;
    let bob = login(&mx, "bob", &daemon.admin_token).await;
    let peer = some_account_id(7);
    let body = json!({ "invite": [format!("@{peer}:{SERVER}")], "is_direct": true });
    let (status, v) = raw(
        &mx,
        "POST",
        &v3("createRoom"),
        Some(&alice),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let room = v["room_id"].as_str().expect("room id").to_owned();
    Fixture {
        daemon,
        _dir: dir,
        mx,
        alice,
        bob,
        peer,
        room,
    }
}

fn enc(s: &str) -> String {
    s.replace('!', "%21").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mistyped_json() {
    let f = fixture("mx-json").await;
    for body in [
        &b"{"[..],
        b"not json",
        b"{\"type\": \"m.login.password\",}",
        b"\xff\xfe",
    ] {
        is_error(
            &raw(&f.mx, "POST", &v3("login"), None, body).await,
            400,
            "M_NOT_JSON",
        );
    }
    is_error(
        &raw(
            &f.mx,
            "POST",
            &v3("createRoom"),
            Some(&f.alice),
            b"{\"invite\": [",
        )
        .await,
        400,
        "M_NOT_JSON",
    );
    // JSON of the wrong shape.
    for body in [
        json!({ "type": 5 }),
        json!(["m.login.password"]),
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": 7 }, "password": "x" }),
    ] {
        is_error(
            &raw(
                &f.mx,
                "POST",
                &v3("login"),
                None,
                body.to_string().as_bytes(),
            )
            .await,
            400,
            "M_BAD_JSON",
        );
    }
    let send = v3(&format!("rooms/{}/send/m.room.message/j1", enc(&f.room)));
    for body in [
        json!({ "msgtype": "m.text", "body": 5 }),
        json!({ "body": "no msgtype" }),
        json!("text"),
    ] {
        is_error(
            &raw(
                &f.mx,
                "PUT",
                &send,
                Some(&f.alice),
                body.to_string().as_bytes(),
            )
            .await,
            400,
            "M_BAD_JSON",
        );
    }
    is_error(
        &raw(
            &f.mx,
            "POST",
            &v3(&format!("user/%40alice%3A{SERVER}/filter")),
            Some(&f.alice),
            b"[1,2]",
        )
        .await,
        400,
        "M_BAD_JSON",
    );
    // Nothing was sent by any of these.
    let outgoing = outgoing_count(&f.daemon, "alice").await;
    assert_eq!(outgoing, 0);
    still_fine(&f.mx, &f.alice).await;
}

async fn outgoing_count(d: &Daemon, identity: &str) -> usize {
    admin(d)
        .await
        .msgs
        .list_events(ListEventsRequest {
            identity: identity.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(event::Kind::Outgoing(_))))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_revoked_and_admin_tokens() {
    let f = fixture("mx-auth").await;
    is_error(
        &raw(&f.mx, "GET", &v3("sync"), None, b"").await,
        401,
        "M_MISSING_TOKEN",
    );
    is_error(
        &raw(&f.mx, "GET", &v3("joined_rooms"), None, b"").await,
        401,
        "M_MISSING_TOKEN",
    );
    let wrong = "ab".repeat(32);
    is_error(
        &raw(&f.mx, "GET", &v3("sync"), Some(&wrong), b"").await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    is_error(
        &raw(
            &f.mx,
            "GET",
            &format!("{}?access_token=nope", v3("account/whoami")),
            None,
            b"",
        )
        .await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // The admin token is a password here, never an access token.
    is_error(
        &raw(
            &f.mx,
            "GET",
            &v3("account/whoami"),
            Some(&f.daemon.admin_token),
            b"",
        )
        .await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // Wrong passwords: a made-up token, another identity's token.
    let body = |user: &str, pw: &str| {
        json!({ "type": "m.login.password", "user": user, "password": pw }).to_string()
    };
    is_error(
        &raw(
            &f.mx,
            "POST",
            &v3("login"),
            None,
            body("alice", &wrong).as_bytes(),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    is_error(
        &raw(
            &f.mx,
            "POST",
            &v3("login"),
            None,
            body("alice", &f.bob).as_bytes(),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    is_error(
        &raw(
            &f.mx,
            "POST",
            &v3("login"),
            None,
            body("nobody", &f.daemon.admin_token).as_bytes(),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );

    // Logout revokes: the token is dead for Matrix and for gRPC alike.
    let second = login(&f.mx, &format!("@alice:{SERVER}"), &f.daemon.admin_token).await;
    let (status, who) = raw(&f.mx, "GET", &v3("account/whoami"), Some(&second), b"").await;
    assert_eq!(
        (status, who["user_id"].as_str()),
        (200, Some("@alice:localhost"))
    );
    let (status, _) = raw(&f.mx, "POST", &v3("logout"), Some(&second), b"{}").await;
    assert_eq!(status, 200);
    is_error(
        &raw(&f.mx, "GET", &v3("account/whoami"), Some(&second), b"").await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    is_error(
        &raw(&f.mx, "GET", &v3("sync"), Some(&second), b"").await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // A token revoked through gRPC stops at once too.
    let third = login(&f.mx, "alice", &f.daemon.admin_token).await;
    admin(&f.daemon)
        .await
        .ids
        .revoke_token(RevokeTokenRequest {
            token: third.clone(),
        })
        .await
        .expect("revoke");
    is_error(
        &raw(&f.mx, "GET", &v3("joined_rooms"), Some(&third), b"").await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    // Logging in with a scoped token as the password works, and the first login is unaffected.
    let scoped = scoped_token(&mut admin(&f.daemon).await, "alice").await;
    let fourth = login(&f.mx, "alice", &scoped).await;
    still_fine(&f.mx, &fourth).await;
    still_fine(&f.mx, &f.alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_rooms_and_other_identities_rooms() {
    let f = fixture("mx-rooms").await;
    // Bob opens a conversation of his own.
    let bobs_peer = some_account_id(9);
    admin(&f.daemon)
        .await
        .convs
        .open_conversation(OpenConversationRequest {
            identity: "bob".into(),
            account_id: bobs_peer.clone(),
        })
        .await
        .expect("open");
    let bobs_room = format!("!{bobs_peer}_bob:{SERVER}");
    let strangers_room = format!("!{}_alice:{SERVER}", some_account_id(3));
    for room in [
        bobs_room.as_str(),
        "!nope:localhost",
        "!x:elsewhere.org",
        strangers_room.as_str(),
    ] {
        let r = enc(room);
        let send = json!({ "msgtype": "m.text", "body": "hi" }).to_string();
        is_error(
            &raw(
                &f.mx,
                "PUT",
                &v3(&format!("rooms/{r}/send/m.room.message/u1")),
                Some(&f.alice),
                send.as_bytes(),
            )
            .await,
            403,
            "M_FORBIDDEN",
        );
        for path in ["state", "members", "messages?dir=b", "joined_members"] {
            is_error(
                &raw(
                    &f.mx,
                    "GET",
                    &v3(&format!("rooms/{r}/{path}")),
                    Some(&f.alice),
                    b"",
                )
                .await,
                403,
                "M_FORBIDDEN",
            );
        }
        is_error(
            &raw(
                &f.mx,
                "POST",
                &v3(&format!("rooms/{r}/leave")),
                Some(&f.alice),
                b"{}",
            )
            .await,
            403,
            "M_FORBIDDEN",
        );
    }
    // Joining a room that is nobody's to join: 404.
    for room in [bobs_room.as_str(), "!nope:localhost"] {
        is_error(
            &raw(
                &f.mx,
                "POST",
                &v3(&format!("join/{}", enc(room))),
                Some(&f.alice),
                b"{}",
            )
            .await,
            404,
            "M_NOT_FOUND",
        );
    }
    // Alice's sync, joined rooms and m.direct show her room only.
    let (status, sync) = raw(&f.mx, "GET", &v3("sync"), Some(&f.alice), b"").await;
    assert_eq!(status, 200);
    let joined: Vec<&String> = sync["rooms"]["join"]
        .as_object()
        .expect("join")
        .keys()
        .collect();
    assert_eq!(joined, [&f.room]);
    assert!(
        !sync.to_string().contains(&bobs_peer),
        "bob's contact leaked into alice's sync"
    );
    let (_, rooms) = raw(&f.mx, "GET", &v3("joined_rooms"), Some(&f.alice), b"").await;
    assert_eq!(rooms["joined_rooms"], json!([f.room]));
    let (_, rooms) = raw(&f.mx, "GET", &v3("joined_rooms"), Some(&f.bob), b"").await;
    assert_eq!(rooms["joined_rooms"], json!([bobs_room]));
    // Other identities are not users to alice.
    is_error(
        &raw(
            &f.mx,
            "GET",
            &v3(&format!("profile/%40bob%3A{SERVER}")),
            Some(&f.alice),
            b"",
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    // Everything still works for both.
    still_fine(&f.mx, &f.alice).await;
    still_fine(&f.mx, &f.bob).await;
    let (status, _) = raw(
        &f.mx,
        "GET",
        &v3(&format!("rooms/{}/state", enc(&f.room))),
        Some(&f.alice),
        b"",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies() {
    let f = fixture("mx-big").await;
    let send = v3(&format!("rooms/{}/send/m.room.message/big1", enc(&f.room)));
    // 2 MiB with a Content-Length: read, dropped, 413.
    let text = "x".repeat(2 * 1024 * 1024);
    let body = json!({ "msgtype": "m.text", "body": text }).to_string();
    is_error(
        &raw(&f.mx, "PUT", &send, Some(&f.alice), body.as_bytes()).await,
        413,
        "M_TOO_LARGE",
    );
    // A huge Content-Length is refused before any body is sent.
    let mut s = TcpStream::connect(&f.mx).await.expect("connect");
    let head = format!(
        "PUT {send} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1099511627776\r\n\r\n",
        f.alice
    );
    s.write_all(head.as_bytes()).await.expect("write");
    is_error(&read_response(&mut s).await, 413, "M_TOO_LARGE");
    // Chunked, no length: counted as it comes.
    let mut s = TcpStream::connect(&f.mx).await.expect("connect");
    let head = format!(
        "PUT {send} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        f.alice
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let chunk = vec![b'y'; 64 * 1024];
    for _ in 0..20 {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("write");
        s.write_all(&chunk).await.expect("write");
        s.write_all(b"\r\n").await.expect("write");
    }
    s.write_all(b"0\r\n\r\n").await.expect("write");
    is_error(&read_response(&mut s).await, 413, "M_TOO_LARGE");
    assert_eq!(outgoing_count(&f.daemon, "alice").await, 0);
    // A body just under the limit is read (and refused for its text length by the daemon).
    still_fine(&f.mx, &f.alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_txn_ids_send_once() {
    let f = fixture("mx-txn").await;
    let send = |txn: &str| v3(&format!("rooms/{}/send/m.room.message/{txn}", enc(&f.room)));
    let body = json!({ "msgtype": "m.text", "body": "once" }).to_string();
    let (s1, v1) = raw(&f.mx, "PUT", &send("k1"), Some(&f.alice), body.as_bytes()).await;
    assert_eq!(s1, 200, "{v1}");
    for _ in 0..3 {
        let (s2, v2) = raw(&f.mx, "PUT", &send("k1"), Some(&f.alice), body.as_bytes()).await;
        assert_eq!((s2, &v2["event_id"]), (200, &v1["event_id"]));
    }
    assert_eq!(outgoing_count(&f.daemon, "alice").await, 1);
    // Another txnId is another message; the same txnId from another device (login) too.
    let (_, v3b) = raw(&f.mx, "PUT", &send("k2"), Some(&f.alice), body.as_bytes()).await;
    assert_ne!(v3b["event_id"], v1["event_id"]);
    let other_device = login(&f.mx, "alice", &f.daemon.admin_token).await;
    let (_, v4) = raw(
        &f.mx,
        "PUT",
        &send("k1"),
        Some(&other_device),
        body.as_bytes(),
    )
    .await;
    assert_ne!(v4["event_id"], v1["event_id"]);
    assert_eq!(outgoing_count(&f.daemon, "alice").await, 3);
    // The sending device sees its txnId on its own event in /sync.
    let (_, sync) = raw(&f.mx, "GET", &v3("sync"), Some(&f.alice), b"").await;
    let events = sync["rooms"]["join"][&f.room]["timeline"]["events"]
        .as_array()
        .expect("timeline")
        .clone();
    let first = events
        .iter()
        .find(|e| e["event_id"] == v1["event_id"])
        .expect("first send in timeline");
    assert_eq!(first["unsigned"]["transaction_id"], "k1");
    still_fine(&f.mx, &f.alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_timeouts_and_limits_are_clamped() {
    let f = fixture("mx-clamp").await;
    let (_, first) = raw(&f.mx, "GET", &v3("sync"), Some(&f.alice), b"").await;
    let since = first["next_batch"].as_str().expect("next_batch").to_owned();
    // A timeout of 10^20 ms waits at most the configured maximum; negative means now.
    for timeout in ["100000000000000000000", "1e300", "-5", "0"] {
        let started = Instant::now();
        let (status, v) = raw(
            &f.mx,
            "GET",
            &v3(&format!("sync?since={since}&timeout={timeout}")),
            Some(&f.alice),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["next_batch"], since.as_str());
        // Generous bound: only says it did not wait for the absurd value.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timeout {timeout} not clamped"
        );
    }
    for bad in ["abc", "1x"] {
        is_error(
            &raw(
                &f.mx,
                "GET",
                &v3(&format!("sync?since={since}&timeout={bad}")),
                Some(&f.alice),
                b"",
            )
            .await,
            400,
            "M_INVALID_PARAM",
        );
    }
    for bad in ["nonsense", "s", "s999999999"] {
        is_error(
            &raw(
                &f.mx,
                "GET",
                &v3(&format!("sync?since={bad}")),
                Some(&f.alice),
                b"",
            )
            .await,
            400,
            "M_INVALID_PARAM",
        );
    }
    // Five messages; absurd limits give 100 at most, 1 at least.
    let send = |txn: String| v3(&format!("rooms/{}/send/m.room.message/{txn}", enc(&f.room)));
    for i in 0..5 {
        let body = json!({ "msgtype": "m.text", "body": format!("m{i}") }).to_string();
        let (status, _) = raw(
            &f.mx,
            "PUT",
            &send(format!("c{i}")),
            Some(&f.alice),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let msgs = |q: &str| v3(&format!("rooms/{}/messages?dir=b&{q}", enc(&f.room)));
    let (status, v) = raw(
        &f.mx,
        "GET",
        &msgs("limit=99999999999999999999"),
        Some(&f.alice),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["chunk"].as_array().expect("chunk").len(), 5);
    assert!(v.get("end").is_none(), "no more pages: {v}");
    let (_, v) = raw(&f.mx, "GET", &msgs("limit=-3"), Some(&f.alice), b"").await;
    assert_eq!(v["chunk"].as_array().expect("chunk").len(), 1);
    assert_eq!(v["chunk"][0]["content"]["body"], "m4");
    // Paging on from `end` walks back one at a time.
    let (_, v2) = raw(
        &f.mx,
        "GET",
        &msgs(&format!("limit=1&from={}", v["end"].as_str().expect("end"))),
        Some(&f.alice),
        b"",
    )
    .await;
    assert_eq!(v2["chunk"][0]["content"]["body"], "m3");
    is_error(
        &raw(&f.mx, "GET", &msgs("limit=lots"), Some(&f.alice), b"").await,
        400,
        "M_INVALID_PARAM",
    );
    is_error(
        &raw(
            &f.mx,
            "GET",
            &v3(&format!("rooms/{}/messages?dir=sideways", enc(&f.room))),
            Some(&f.alice),
            b"",
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    // A filter's absurd timeline limit is clamped too.
    let filter = enc_query(&json!({ "room": { "timeline": { "limit": 1e15 } } }).to_string());
    let (status, v) = raw(
        &f.mx,
        "GET",
        &v3(&format!("sync?filter={filter}")),
        Some(&f.alice),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["rooms"]["join"][&f.room]["timeline"]["events"]
            .as_array()
            .expect("timeline")
            .len(),
        5
    );
    let filter = enc_query(&json!({ "room": { "timeline": { "limit": -1 } } }).to_string());
    let (_, v) = raw(
        &f.mx,
        "GET",
        &v3(&format!("sync?filter={filter}")),
        Some(&f.alice),
        b"",
    )
    .await;
    assert_eq!(
        v["rooms"]["join"][&f.room]["timeline"]["events"]
            .as_array()
            .expect("timeline")
            .len(),
        1
    );
    assert_eq!(v["rooms"]["join"][&f.room]["timeline"]["limited"], true);
    still_fine(&f.mx, &f.alice).await;
}

fn enc_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_and_methods() {
    let f = fixture("mx-404").await;
    for (method, path) in [
        ("GET", "/_matrix/client/v3/nope".to_owned()),
        ("POST", "/_matrix/client/v3/rooms/x/ban".to_owned()),
        ("GET", "/_matrix/media/v3/config".to_owned()),
        ("GET", "/".to_owned()),
        ("GET", "/_matrix/client/v9/sync".to_owned()),
    ] {
        is_error(
            &raw(&f.mx, method, &path, Some(&f.alice), b"").await,
            404,
            "M_UNRECOGNIZED",
        );
        is_error(
            &raw(&f.mx, method, &path, None, b"").await,
            404,
            "M_UNRECOGNIZED",
        );
    }
    is_error(
        &raw(&f.mx, "DELETE", &v3("sync"), Some(&f.alice), b"").await,
        405,
        "M_UNRECOGNIZED",
    );
    is_error(
        &raw(&f.mx, "GET", &v3("logout"), Some(&f.alice), b"").await,
        405,
        "M_UNRECOGNIZED",
    );
    // CORS preflight answers anywhere.
    let (status, _) = raw(&f.mx, "OPTIONS", &v3("sync"), None, b"").await;
    assert_eq!(status, 200);
    still_fine(&f.mx, &f.alice).await;
    let _ = f.peer;
}

/// What a client such as Element asks for at start-up, and the room mapping read back through
/// the room endpoints and `/sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_start_up_and_the_room_mapping() {
    let f = fixture("mx-map").await;
    let (a, mx) = (Some(f.alice.as_str()), f.mx.as_str());
    let me = format!("%40alice%3A{SERVER}");
    let get = |path: String| async move {
        let (status, v) = raw(mx, "GET", &path, a, b"").await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    };
    let send = |method: &'static str, path: String, body: Value| async move {
        let (status, v) = raw(mx, method, &path, a, body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    };
    let wk = get("/.well-known/matrix/client".into()).await;
    assert_eq!(wk["m.homeserver"]["base_url"], format!("http://{mx}"));
    assert_eq!(
        get(v3("login")).await["flows"][0]["type"],
        "m.login.password"
    );
    let caps = get(v3("capabilities")).await;
    assert_eq!(caps["capabilities"]["m.set_displayname"]["enabled"], true);
    let rules = get(v3("pushrules/")).await;
    assert_eq!(rules["global"]["override"][0]["rule_id"], ".m.rule.master");
    assert_eq!(get(v3("pushrules/global/")).await, rules["global"]);
    let who = get(v3("account/whoami")).await;
    let devices = get(v3("devices")).await;
    assert_eq!(devices["devices"][0]["device_id"], who["device_id"]);
    for (method, path) in [
        ("POST", "keys/upload"),
        ("POST", "keys/query"),
        ("POST", "pushers/set"),
        ("PUT", "sendToDevice/m.x/t1"),
    ] {
        send(method, v3(path), json!({})).await;
    }
    get(v3("voip/turnServer")).await;
    assert_eq!(get(v3("pushers")).await["pushers"], json!([]));

    // Filters: stored, read back, and their timeline limit used.
    let filter = json!({ "room": { "timeline": { "limit": 2 } } });
    let id = send("POST", v3(&format!("user/{me}/filter")), filter.clone()).await["filter_id"]
        .as_str()
        .expect("filter id")
        .to_owned();
    assert_eq!(get(v3(&format!("user/{me}/filter/{id}"))).await, filter);

    // Profile: set and read back; shown in the room as the member's name.
    send(
        "PUT",
        v3(&format!("profile/{me}/displayname")),
        json!({ "displayname": "Alice A" }),
    )
    .await;
    assert_eq!(
        get(v3(&format!("profile/{me}"))).await["displayname"],
        "Alice A"
    );

    // The room: state, members, m.direct.
    let room = enc(&f.room);
    let ghost = format!("@{}:{SERVER}", f.peer);
    let state = get(v3(&format!("rooms/{room}/state"))).await;
    let kinds: HashSet<&str> = state
        .as_array()
        .expect("state")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for k in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.name",
    ] {
        assert!(kinds.contains(k), "{k} in {state}");
    }
    let members = get(v3(&format!("rooms/{room}/members"))).await;
    assert_eq!(members["chunk"].as_array().expect("chunk").len(), 2);
    let joined = get(v3(&format!("rooms/{room}/joined_members"))).await;
    assert_eq!(
        joined["joined"]["@alice:localhost"]["display_name"],
        "Alice A"
    );
    assert!(joined["joined"][&ghost].is_object(), "{joined}");
    // Renaming the room names the contact.
    send(
        "PUT",
        v3(&format!("rooms/{room}/state/m.room.name")),
        json!({ "name": "Pal" }),
    )
    .await;
    assert_eq!(
        get(v3(&format!("rooms/{room}/state/m.room.name/"))).await["name"],
        "Pal"
    );
    assert_eq!(
        get(v3(&format!("profile/{}", enc(&ghost).replace('@', "%40")))).await["displayname"],
        "Pal"
    );

    // Three messages; the filtered initial sync shows the last two, limited, with m.direct.
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({ "msgtype": "m.text", "body": format!("n{i}") });
        ids.push(
            send(
                "PUT",
                v3(&format!("rooms/{room}/send/m.room.message/s{i}")),
                body,
            )
            .await["event_id"]
                .clone(),
        );
    }
    let sync = get(v3(&format!("sync?filter={id}"))).await;
    let r = &sync["rooms"]["join"][&f.room];
    assert_eq!(r["timeline"]["limited"], true);
    let bodies: Vec<&str> = r["timeline"]["events"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["n1", "n2"]);
    let direct = sync["account_data"]["events"]
        .as_array()
        .expect("account data")
        .iter()
        .find(|e| e["type"] == "m.direct")
        .expect("m.direct");
    assert_eq!(direct["content"][&ghost], json!([f.room]));
    // prev_batch pages back to the first message.
    let prev = r["timeline"]["prev_batch"].as_str().expect("prev_batch");
    let page = get(v3(&format!("rooms/{room}/messages?dir=b&from={prev}"))).await;
    assert_eq!(page["chunk"][0]["content"]["body"], "n0");
    let since = sync["next_batch"].as_str().expect("next_batch").to_owned();

    // A read receipt, account data and a leave come back in the next incremental sync.
    let ev1 = ids[1].as_str().expect("event id");
    send(
        "POST",
        v3(&format!(
            "rooms/{room}/receipt/m.read/{}",
            ev1.replace('$', "%24")
        )),
        json!({}),
    )
    .await;
    send(
        "PUT",
        v3(&format!("user/{me}/account_data/im.example.test")),
        json!({ "k": 1 }),
    )
    .await;
    let inc = get(v3(&format!("sync?since={since}&timeout=0"))).await;
    let r = &inc["rooms"]["join"][&f.room];
    let receipt = r["ephemeral"]["events"]
        .as_array()
        .expect("ephemeral")
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .expect("receipt");
    assert!(
        receipt["content"][ev1]["m.read"]["@alice:localhost"].is_object(),
        "{receipt}"
    );
    assert_eq!(r["account_data"]["events"][0]["content"]["event_id"], ev1);
    assert_eq!(r["timeline"]["events"], json!([]));
    assert!(inc["account_data"]["events"]
        .as_array()
        .expect("account data")
        .iter()
        .any(|e| e["type"] == "im.example.test" && e["content"]["k"] == 1));
    assert_eq!(
        get(v3(&format!("user/{me}/account_data/im.example.test"))).await["k"],
        1
    );
    let since = inc["next_batch"].as_str().expect("next_batch").to_owned();

    // Ignoring a user is blocking the contact (the daemon's, shared with the account's other
    // devices): the list is read back from the daemon and comes in the next sync.
    let ignored = format!("user/{me}/account_data/m.ignored_user_list");
    assert_eq!(get(v3(&ignored)).await, json!({ "ignored_users": {} }));
    send(
        "PUT",
        v3(&ignored),
        json!({ "ignored_users": { &ghost: {}, "@someone:elsewhere": {} } }),
    )
    .await;
    assert_eq!(
        get(v3(&ignored)).await,
        json!({ "ignored_users": { &ghost: {} } })
    );
    let inc = get(v3(&format!("sync?since={since}&timeout=0"))).await;
    let listed = inc["account_data"]["events"]
        .as_array()
        .expect("account data")
        .iter()
        .find(|e| e["type"] == "m.ignored_user_list")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        listed["content"]["ignored_users"],
        json!({ &ghost: {} }),
        "{inc}"
    );
    let since = inc["next_batch"].as_str().expect("next_batch").to_owned();
    for bad in [json!({}), json!({ "ignored_users": [] })] {
        let got = raw(mx, "PUT", &v3(&ignored), a, bad.to_string().as_bytes()).await;
        is_error(&got, 400, "M_BAD_JSON");
    }
    send("PUT", v3(&ignored), json!({ "ignored_users": {} })).await;
    assert_eq!(get(v3(&ignored)).await, json!({ "ignored_users": {} }));

    send("POST", v3(&format!("rooms/{room}/leave")), json!({})).await;
    let inc = get(v3(&format!("sync?since={since}&timeout=0"))).await;
    assert!(inc["rooms"]["leave"][&f.room].is_object(), "{inc}");
    assert_eq!(get(v3("joined_rooms")).await["joined_rooms"], json!([]));
    // Joining again opens the conversation again.
    send("POST", v3(&format!("join/{room}")), json!({})).await;
    assert_eq!(
        get(v3("joined_rooms")).await["joined_rooms"],
        json!([f.room])
    );

    // The user directory finds anyone by Account ID.
    let other = some_account_id(0x42);
    let found = send(
        "POST",
        v3("user_directory/search"),
        json!({ "search_term": other }),
    )
    .await;
    assert_eq!(found["results"][0]["user_id"], format!("@{other}:{SERVER}"));
    still_fine(&f.mx, &f.alice).await;
}

/// At shutdown a long-polling `/sync` answers at once and `serve` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_long_polls_and_returns() {
    let (daemon, _dir) = offline_daemon("mx-stop").await;
    create(&mut admin(&daemon).await, "alice").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mx = listener.local_addr().expect("addr").to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sessiond_matrix::serve(
        listener,
        sessiond_matrix::MatrixConfig::default(),
        daemon.channel().await,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let token = login(&mx, "alice", &daemon.admin_token).await;
    let (_, first) = raw(&mx, "GET", &v3("sync"), Some(&token), b"").await;
    let since = first["next_batch"].as_str().expect("next_batch").to_owned();
    let poll = {
        let (mx, token) = (mx.clone(), token.clone());
        tokio::spawn(async move {
            raw(
                &mx,
                "GET",
                &v3(&format!("sync?since={since}&timeout=50000")),
                Some(&token),
                b"",
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the long-poll waits");
    stop_tx.send(()).expect("server running");
    let (status, v) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answers at shutdown")
        .expect("poll task");
    assert_eq!(status, 200, "{v}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns")
        .expect("serve task")
        .expect("serve ok");
    assert!(
        TcpStream::connect(&mx).await.is_err(),
        "the listener is closed"
    );
}

/// GET on `mx` with `token`, expecting 200.
async fn get_ok(mx: &str, token: &str, path: String) -> Value {
    let (status, v) = raw(mx, "GET", &path, Some(token), b"").await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// `full_state=true` on an incremental sync returns every joined room with its whole state,
/// though nothing changed (matrix-commander's `--get-room-info` relies on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_state_returns_every_joined_room() {
    let f = fixture("mx-full").await;
    let (mx, a) = (f.mx.as_str(), f.alice.as_str());
    let since = get_ok(mx, a, v3("sync")).await["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_owned();
    let quiet = get_ok(mx, a, v3(&format!("sync?since={since}&timeout=0"))).await;
    assert!(
        quiet["rooms"]["join"].as_object().expect("join").is_empty(),
        "{quiet}"
    );
    let full = get_ok(
        mx,
        a,
        v3(&format!("sync?since={since}&timeout=0&full_state=true")),
    )
    .await;
    let state = full["rooms"]["join"][&f.room]["state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("the room with its state: {full}"));
    for kind in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.name",
    ] {
        assert!(state.iter().any(|e| e["type"] == kind), "{kind} in {full}");
    }
    is_error(
        &raw(
            mx,
            "GET",
            &v3(&format!("sync?since={since}&full_state=maybe")),
            Some(a),
            b"",
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    still_fine(mx, &f.bob).await;
}

/// What Element asks at every start answers as the spec says: no key backup is 404
/// `M_NOT_FOUND` (not `M_UNRECOGNIZED`), no third-party protocols and no 3PIDs are empty lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_calls_get_the_spec_answers() {
    let f = fixture("mx-backup").await;
    let (mx, a) = (f.mx.as_str(), f.alice.as_str());
    for path in [
        "room_keys/version",
        "room_keys/version/1",
        "room_keys/keys?version=1",
    ] {
        is_error(
            &raw(mx, "GET", &v3(path), Some(a), b"").await,
            404,
            "M_NOT_FOUND",
        );
    }
    assert_eq!(get_ok(mx, a, v3("thirdparty/protocols")).await, json!({}));
    assert_eq!(
        get_ok(mx, a, v3("account/3pid")).await["threepids"],
        json!([])
    );
    is_error(
        &raw(
            mx,
            "GET",
            &v3("user/%40alice%3Alocalhost/account_data/m.secret_storage.default_key"),
            Some(a),
            b"",
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    still_fine(mx, a).await;
}

/// The user's own typing shows in its room's `m.typing` (as the spec has it), until the
/// client says it stopped or the notice's timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_typing_is_in_m_typing() {
    let f = fixture("mx-typing").await;
    let (mx, a) = (f.mx.as_str(), f.alice.as_str());
    let typing_path = v3(&format!(
        "rooms/{}/typing/%40alice%3Alocalhost",
        enc(&f.room)
    ));
    let typing_path = typing_path.as_str();
    let put_typing = |body: Value| async move {
        let (status, v) = raw(mx, "PUT", typing_path, Some(a), body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{v}");
    };
    let typing_in = |sync: &Value| -> Option<Value> {
        sync["rooms"]["join"][&f.room]["ephemeral"]["events"]
            .as_array()?
            .iter()
            .find(|e| e["type"] == "m.typing")
            .map(|e| e["content"]["user_ids"].clone())
    };
    let next = |sync: &Value| sync["next_batch"].as_str().expect("next_batch").to_owned();
    let since = next(&get_ok(mx, a, v3("sync")).await);
    put_typing(json!({ "typing": true, "timeout": 30000 })).await;
    let s1 = get_ok(mx, a, v3(&format!("sync?since={since}&timeout=0"))).await;
    assert_eq!(typing_in(&s1), Some(json!(["@alice:localhost"])), "{s1}");
    let initial = get_ok(mx, a, v3("sync")).await;
    assert_eq!(
        typing_in(&initial),
        Some(json!(["@alice:localhost"])),
        "{initial}"
    );
    put_typing(json!({ "typing": false })).await;
    let s2 = get_ok(mx, a, v3(&format!("sync?since={}&timeout=0", next(&s1)))).await;
    assert_eq!(typing_in(&s2), Some(json!([])), "{s2}");
    // A short timeout ends it by itself.
    put_typing(json!({ "typing": true, "timeout": 300 })).await;
    let s3 = get_ok(mx, a, v3(&format!("sync?since={}&timeout=0", next(&s2)))).await;
    assert_eq!(typing_in(&s3), Some(json!(["@alice:localhost"])), "{s3}");
    let s4 = get_ok(mx, a, v3(&format!("sync?since={}&timeout=1500", next(&s3)))).await;
    assert_eq!(typing_in(&s4), Some(json!([])), "{s4}");
}

/// A full user id whose server part is the host the client used logs in (matrix-commander
/// builds `@me:127.0.0.1` from `http://127.0.0.1:port`), with or without the port; another
/// server's id is refused with words that say which form works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_host_as_the_server_part() {
    let f = fixture("mx-login").await;
    let mx = f.mx.as_str();
    let host = mx.rsplit_once(':').expect("host:port").0;
    let t = login(mx, &format!("@alice:{host}"), &f.daemon.admin_token).await;
    still_fine(mx, &t).await;
    login(mx, &format!("@alice:{mx}"), &f.daemon.admin_token).await;
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "@alice:example.org" },
        "password": f.daemon.admin_token,
    });
    let refused = raw(mx, "POST", &v3("login"), None, body.to_string().as_bytes()).await;
    is_error(&refused, 403, "M_FORBIDDEN");
    let why = refused.1["error"].as_str().unwrap_or_default();
    assert!(why.contains("@alice:localhost"), "{why}");
    still_fine(mx, &f.alice).await;
}

/// `[matrix] max_connections`: a connection over the cap is answered 503 M_LIMIT_EXCEEDED and
/// closed while the others carry on; when one of the open ones closes, its slot is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_cap_connections_are_refused_and_a_closed_one_frees_its_slot() {
    let (d, _dir) = offline_daemon_with("mx-cap", &format!("{CONFIG}max_connections = 3\n")).await;
    let addr = matrix_addr(&d);
    // A full house: three connections, each answered once (so each is surely accepted).
    let mut full = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        let head = format!("GET /_matrix/client/versions HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        full.push(s);
    }
    // One more is told and closed (it sends nothing, so the close cannot turn into a reset).
    for _ in 0..2 {
        let mut over = TcpStream::connect(&addr).await.expect("connect");
        let got = read_response(&mut over).await;
        is_error(&got, 503, "M_LIMIT_EXCEEDED");
    }
    // The three still work.
    for s in &mut full {
        let head = format!("GET /_matrix/client/versions HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    // One leaves: the next client gets in.
    drop(full.pop());
    let until = Instant::now() + DEADLINE;
    loop {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "GET /_matrix/client/versions HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        // A refused connection may reset the request; only the answer counts.
        let _ = s.write_all(head.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await;
        if out.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < until,
            "no slot freed: {:?}",
            String::from_utf8_lossy(&out)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(full);
    d.terminate();
}

// ------------------------------------------------------------------------------------------------
// Replies, reactions, redactions, read receipts and the timer state event (issue 16)
// ------------------------------------------------------------------------------------------------

/// Syncs over raw HTTP until `done` holds for the room's timeline events seen so far.
async fn timeline_until(
    addr: &str,
    token: &str,
    room: &str,
    seen: &mut Vec<Value>,
    since: &mut Option<String>,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) {
    let until = Instant::now() + DEADLINE;
    while !done(seen) {
        assert!(Instant::now() < until, "no {what}; saw {seen:#?}");
        let path = match since {
            Some(s) => v3(&format!("sync?timeout=500&since={}", enc_query(s))),
            None => v3("sync?timeout=0"),
        };
        let (status, v) = raw(addr, "GET", &path, Some(token), b"").await;
        assert_eq!(status, 200, "{v}");
        *since = v["next_batch"].as_str().map(str::to_owned);
        if let Some(events) = v["rooms"]["join"][room]["timeline"]["events"].as_array() {
            seen.extend(events.iter().cloned());
        }
    }
}

/// Polls a gRPC log until `want` holds for one of its events; returns it.
async fn log_until(
    c: &mut Clients,
    identity: &str,
    what: &str,
    want: impl Fn(&event::Kind) -> bool,
) -> sessiond_api::v1::Event {
    let until = Instant::now() + DEADLINE;
    loop {
        let events = c
            .msgs
            .list_events(ListEventsRequest {
                identity: identity.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        if let Some(e) = events
            .into_iter()
            .find(|e| e.kind.as_ref().is_some_and(&want))
        {
            return e;
        }
        assert!(Instant::now() < until, "{identity} never got {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(seen: &[Value], pred: impl Fn(&Value) -> bool) -> Option<Value> {
    seen.iter().find(|e| pred(e)).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reactions_redactions_receipts_and_the_timer_in_a_matrix_room() {
    use sessiond_api::v1::{
        DeliveryState, Disappearing, DisappearingMode, MessageRef, ReactRequest,
        SendMessageRequest, SetDisappearingRequest, UnsendRequest,
    };
    let net = net("mx-inter", CONFIG).await;
    let (da, db) = (net.daemon("a").await, net.daemon("b").await);
    let (mut aa, mut cb) = (admin(&da).await, admin(&db).await);
    create(&mut aa, "alice").await;
    let bob_id = create(&mut cb, "bob").await;
    let mx = matrix_addr(&da);
    let token = login(&mx, "alice", &da.admin_token).await;
    let body = json!({ "invite": [format!("@{bob_id}:{SERVER}")], "is_direct": true });
    let (status, v) = raw(
        &mx,
        "POST",
        &v3("createRoom"),
        Some(&token),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let send = |kind: &'static str, txn: &'static str, content: Value| {
        let (mx, token, room) = (mx.clone(), token.clone(), room.clone());
        async move {
            let path = v3(&format!("rooms/{}/send/{kind}/{txn}", enc(&room)));
            let (status, v) = raw(
                &mx,
                "PUT",
                &path,
                Some(&token),
                content.to_string().as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            v["event_id"].as_str().expect("event id").to_owned()
        }
    };
    let hello_ev = send(
        "m.room.message",
        "t1",
        json!({ "msgtype": "m.text", "body": "hello bob" }),
    )
    .await;

    // Bob (through his daemon's API) accepts, replies, reacts and takes it back, unsends, sets
    // a 10-second timer and sends a disappearing message.
    let hello = log_until(
        &mut cb,
        "bob",
        "hello",
        |k| matches!(k, event::Kind::Incoming(m) if m.text == "hello bob"),
    )
    .await;
    let Some(event::Kind::Incoming(hello)) = hello.kind else {
        unreachable!()
    };
    cb.convs
        .open_conversation(OpenConversationRequest {
            identity: "bob".into(),
            account_id: hello.sender.clone(),
        })
        .await
        .expect("accept");
    let alice_id = hello.sender.clone();
    let hello_ref = MessageRef {
        sent_at_ms: hello.sent_at_ms,
        author: alice_id.clone(),
    };
    let reply = cb
        .msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: alice_id.clone(),
            text: "hi alice".into(),
            reply_to: Some(hello_ref.clone()),
            ..Default::default()
        })
        .await
        .expect("reply")
        .into_inner();
    for remove in [false, true] {
        cb.inter
            .react(ReactRequest {
                identity: "bob".into(),
                conversation: alice_id.clone(),
                target: Some(hello_ref.clone()),
                emoji: "👍".into(),
                remove,
            })
            .await
            .expect("react");
    }
    let oops = cb
        .msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: alice_id.clone(),
            text: "oops".into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner();

    let (mut seen, mut since) = (Vec::new(), None);
    timeline_until(&mx, &token, &room, &mut seen, &mut since, "oops", |s| {
        s.iter().any(|e| e["content"]["body"] == "oops")
    })
    .await;
    cb.inter
        .unsend(UnsendRequest {
            identity: "bob".into(),
            conversation: alice_id.clone(),
            sent_at_ms: oops.sent_at_ms,
        })
        .await
        .expect("unsend");
    cb.inter
        .set_disappearing(SetDisappearingRequest {
            identity: "bob".into(),
            conversation: alice_id.clone(),
            disappearing: Some(Disappearing {
                mode: DisappearingMode::AfterSend as i32,
                seconds: 10,
            }),
        })
        .await
        .expect("timer");
    cb.msgs
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: alice_id.clone(),
            text: "secret".into(),
            ..Default::default()
        })
        .await
        .expect("send");

    timeline_until(
        &mx,
        &token,
        &room,
        &mut seen,
        &mut since,
        "everything",
        |s| {
            let reaction = has(s, |e| e["type"] == "m.reaction");
            let reaction_gone = reaction.as_ref().is_some_and(|r| {
                has(s, |e| {
                    e["type"] == "m.room.redaction" && e["redacts"] == r["event_id"]
                })
                .is_some()
            });
            let oops_gone = has(s, |e| e["content"]["body"] == "oops").is_some_and(|o| {
                has(s, |e| {
                    e["type"] == "m.room.redaction"
                        && e["redacts"] == o["event_id"]
                        && e["content"]["reason"] == "unsent"
                })
                .is_some()
            });
            let secret_gone = has(s, |e| e["content"]["body"] == "secret").is_some_and(|o| {
                has(s, |e| {
                    e["type"] == "m.room.redaction"
                        && e["redacts"] == o["event_id"]
                        && e["content"]["reason"] == "disappeared"
                })
                .is_some()
            });
            reaction_gone && oops_gone && secret_gone
        },
    )
    .await;
    let hi = has(&seen, |e| e["content"]["body"] == "hi alice").expect("the reply");
    assert_eq!(
        hi["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        json!(hello_ev),
        "{hi}"
    );
    let r = has(&seen, |e| e["type"] == "m.reaction").expect("a reaction");
    assert_eq!(
        r["content"]["m.relates_to"],
        json!({ "rel_type": "m.annotation", "event_id": hello_ev, "key": "👍" })
    );
    let timer = has(&seen, |e| e["type"] == "org.sessiond.disappearing").expect("the timer");
    assert_eq!(
        (timer["state_key"].clone(), timer["content"].clone()),
        (json!(""), json!({ "mode": "after_send", "seconds": 10 }))
    );

    // The other way: alice's client replies, reacts, takes it back, unsends, reads and turns the
    // timer off; bob's daemon gets each.
    let hi_ev = hi["event_id"].as_str().expect("id").to_owned();
    send("m.room.message", "t2", json!({ "msgtype": "m.text", "body": "back", "m.relates_to": { "m.in_reply_to": { "event_id": hi_ev } } })).await;
    let back = log_until(
        &mut cb,
        "bob",
        "the reply",
        |k| matches!(k, event::Kind::Incoming(m) if m.text == "back"),
    )
    .await;
    let Some(event::Kind::Incoming(back)) = back.kind else {
        unreachable!()
    };
    assert_eq!(back.reply_to.expect("a quote").excerpt, "hi alice");
    let react_ev = send(
        "m.reaction",
        "t3",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": hi_ev, "key": "🎉" } }),
    )
    .await;
    log_until(
        &mut cb,
        "bob",
        "the reaction",
        |k| matches!(k, event::Kind::Reaction(r) if r.emoji == "🎉" && !r.removed),
    )
    .await;
    let redact = |event: String, txn: &'static str| {
        let (mx, token, room) = (mx.clone(), token.clone(), room.clone());
        async move {
            let path = v3(&format!(
                "rooms/{}/redact/{}/{txn}",
                enc(&room),
                enc(&event)
            ));
            raw(&mx, "PUT", &path, Some(&token), b"{}").await
        }
    };
    assert_eq!(redact(react_ev, "x1").await.0, 200);
    log_until(
        &mut cb,
        "bob",
        "the removal",
        |k| matches!(k, event::Kind::Reaction(r) if r.emoji == "🎉" && r.removed),
    )
    .await;
    // Bob's message is not alice's to unsend.
    is_error(&redact(hi_ev.clone(), "x2").await, 403, "M_FORBIDDEN");
    let mine = send(
        "m.room.message",
        "t4",
        json!({ "msgtype": "m.text", "body": "my oops" }),
    )
    .await;
    log_until(
        &mut cb,
        "bob",
        "my oops",
        |k| matches!(k, event::Kind::Incoming(m) if m.text == "my oops"),
    )
    .await;
    assert_eq!(redact(mine, "x3").await.0, 200);
    log_until(&mut cb, "bob", "the unsend", |k| {
        matches!(k, event::Kind::Removed(_))
    })
    .await;
    let path = v3(&format!(
        "rooms/{}/receipt/m.read/{}",
        enc(&room),
        enc(&hi_ev)
    ));
    assert_eq!(raw(&mx, "POST", &path, Some(&token), b"{}").await.0, 200);
    log_until(&mut cb, "bob", "a read receipt", |k| matches!(k, event::Kind::Delivery(d) if d.message_id == reply.message_id && d.state == DeliveryState::Read as i32)).await;
    let path = v3(&format!(
        "rooms/{}/state/org.sessiond.disappearing",
        enc(&room)
    ));
    let (status, v) = raw(
        &mx,
        "PUT",
        &path,
        Some(&token),
        json!({ "mode": "off" }).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    log_until(&mut cb, "bob", "the timer off", |k| matches!(k, event::Kind::Disappearing(d) if d.author == alice_id && d.disappearing.is_some_and(|t| t.seconds == 0))).await;
    // Bob reads alice's messages: her client gets his ghost's m.read receipt.
    let last = log_until(&mut cb, "bob", "my oops", |k| {
        matches!(k, event::Kind::Removed(_))
    })
    .await;
    let bob_last = cb
        .msgs
        .list_events(ListEventsRequest {
            identity: "bob".into(),
            page_size: 1,
            newest_first: true,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .events[0]
        .seq;
    assert!(bob_last >= last.seq);
    cb.convs
        .mark_conversation_read(sessiond_api::v1::MarkConversationReadRequest {
            identity: "bob".into(),
            account_id: alice_id.clone(),
            seq: bob_last,
        })
        .await
        .expect("mark read");
    let ghost = format!("@{bob_id}:{SERVER}");
    let until = Instant::now() + DEADLINE;
    loop {
        let path = v3(&format!(
            "sync?timeout=500&since={}",
            enc_query(since.as_deref().unwrap_or(""))
        ));
        let (status, v) = raw(&mx, "GET", &path, Some(&token), b"").await;
        assert_eq!(status, 200, "{v}");
        since = v["next_batch"].as_str().map(str::to_owned);
        let eph = v["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let read = eph.iter().any(|e| {
            e["type"] == "m.receipt"
                && e["content"]
                    .as_object()
                    .is_some_and(|c| c.values().any(|r| r["m.read"].get(&ghost).is_some()))
        });
        if read {
            break;
        }
        assert!(Instant::now() < until, "no m.read from bob's ghost");
    }
    still_fine(&mx, &token).await;
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Uploads to the media repository; answers the `content_uri`.
async fn mx_upload(addr: &str, token: &str, name: &str, mime: &str, data: &[u8]) -> String {
    let auth = format!("Bearer {token}");
    let r = support::http_request_bytes(
        addr,
        "POST",
        &format!("/_matrix/media/v3/upload?filename={name}"),
        &[("authorization", auth.as_str()), ("content-type", mime)],
        data.to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["content_uri"]
        .as_str()
        .expect("content_uri")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_sent_from_a_matrix_client_arrives_byte_identical_on_another() {
    let net = support::net_with_files("mx-files", CONFIG).await;
    let (da, db) = (net.daemon("a").await, net.daemon("b").await);
    let (mut aa, mut ab) = (admin(&da).await, admin(&db).await);
    create(&mut aa, "alice").await;
    let bob_id = create(&mut ab, "bob").await;
    let (mxa, mxb) = (matrix_addr(&da), matrix_addr(&db));
    let alice = login(&mxa, "alice", &da.admin_token).await;
    let bob = login(&mxb, "bob", &db.admin_token).await;

    let (status, cfg) = raw(
        &mxa,
        "GET",
        "/_matrix/client/v1/media/config",
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{cfg}");
    assert_eq!(cfg["m.upload.size"], 9_828_080);
    let (status, _) = raw(&mxa, "GET", "/_matrix/client/v1/media/config", None, b"").await;
    assert_eq!(status, 401, "authenticated media needs a token");

    let body = json!({ "invite": [user(&bob_id).to_string()], "is_direct": true });
    let (status, v) = raw(
        &mxa,
        "POST",
        &v3("createRoom"),
        Some(&alice),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let room_a = v["room_id"].as_str().expect("room_id").to_owned();

    let mut image = hex::decode("89504e470d0a1a0a").expect("hex");
    image.extend(noise(30_000, 3));
    let big = noise(5_000_000, 4);
    let pic_uri = mx_upload(&mxa, &alice, "cat.png", "image/png", &image).await;
    let big_uri = mx_upload(&mxa, &alice, "data.bin", "application/octet-stream", &big).await;
    assert!(
        pic_uri.starts_with(&format!("mxc://{SERVER}/")),
        "{pic_uri}"
    );
    for (txn, msgtype, name, uri) in [
        ("f1", "m.image", "cat.png", &pic_uri),
        ("f2", "m.file", "data.bin", &big_uri),
    ] {
        let content = json!({ "msgtype": msgtype, "body": name, "url": uri });
        let path = v3(&format!("rooms/{}/send/m.room.message/{txn}", enc(&room_a)));
        let (status, v) = raw(
            &mxa,
            "PUT",
            &path,
            Some(&alice),
            content.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    // A foreign mxc:// URL is refused.
    let content = json!({ "msgtype": "m.file", "body": "x", "url": "mxc://elsewhere/abc" });
    let path = v3(&format!("rooms/{}/send/m.room.message/f3", enc(&room_a)));
    let (status, _) = raw(
        &mxa,
        "PUT",
        &path,
        Some(&alice),
        content.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 400);

    // Bob's client: the invite, then both media events with mxc:// URLs of his server.
    let mut since = String::new();
    let mut media: Vec<Value> = Vec::new();
    let mut joined = false;
    let until = Instant::now() + DEADLINE;
    while media.len() < 2 {
        assert!(Instant::now() < until, "no media events; got {media:?}");
        let q = if since.is_empty() {
            "sync?timeout=1000".to_owned()
        } else {
            format!("sync?timeout=1000&since={since}")
        };
        let (status, v) = raw(&mxb, "GET", &v3(&q), Some(&bob), b"").await;
        assert_eq!(status, 200, "{v}");
        since = v["next_batch"].as_str().unwrap_or_default().to_owned();
        if !joined {
            if let Some(room) = v["rooms"]["invite"]
                .as_object()
                .and_then(|o| o.keys().next())
            {
                let path = v3(&format!("rooms/{}/join", enc(room)));
                let (status, j) = raw(&mxb, "POST", &path, Some(&bob), b"{}").await;
                assert_eq!(status, 200, "{j}");
                joined = true;
            }
        }
        if let Some(rooms) = v["rooms"]["join"].as_object() {
            for room in rooms.values() {
                for ev in room["timeline"]["events"].as_array().into_iter().flatten() {
                    if ev["content"]["url"].is_string() {
                        media.push(ev["content"].clone());
                    }
                }
            }
        }
    }
    assert_eq!(media[0]["msgtype"], "m.image", "{media:?}");
    assert_eq!(media[0]["info"]["mimetype"], "image/png");
    assert_eq!(media[1]["msgtype"], "m.file");
    assert_eq!(media[1]["info"]["size"], 5_000_000);
    for (content, want) in media.iter().zip([&image, &big]) {
        let uri = content["url"].as_str().expect("url");
        let (server, id) = uri
            .strip_prefix("mxc://")
            .and_then(|r| r.split_once('/'))
            .expect("an mxc URI");
        let auth = format!("Bearer {bob}");
        let got = support::http_request_bytes(
            &mxb,
            "GET",
            &format!("/_matrix/client/v1/media/download/{server}/{id}"),
            &[("authorization", auth.as_str())],
            Vec::new(),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(
            sha256(&got.body),
            sha256(want),
            "byte-identical through Matrix"
        );
    }
    // Another identity's media or an unknown id: 404.
    let unknown = format!(
        "/_matrix/client/v1/media/download/{SERVER}/{}",
        "0".repeat(32)
    );
    let (status, v) = raw(&mxb, "GET", &unknown, Some(&bob), b"").await;
    is_error(&(status, v), 404, "M_NOT_FOUND");

    // One Session message with both files (as the apps send an album): an event per file, the
    // text as the first one's caption; unsent, both are redacted.
    let id_of = |uri: &str| uri.rsplit('/').next().expect("an id").to_owned();
    let sent = aa
        .msgs
        .send_message(sessiond_api::v1::SendMessageRequest {
            identity: "alice".into(),
            recipient: bob_id.clone(),
            text: "two files".into(),
            attachment_ids: vec![id_of(&pic_uri), id_of(&big_uri)],
            ..Default::default()
        })
        .await
        .expect("send both")
        .into_inner();
    let mut album: Vec<Value> = Vec::new();
    let mut redacted: Vec<String> = Vec::new();
    let mut unsent = false;
    let until = Instant::now() + DEADLINE;
    while album.len() < 2 || redacted.len() < 2 {
        assert!(
            Instant::now() < until,
            "album {album:?}, redacted {redacted:?}"
        );
        let q = format!("sync?timeout=1000&since={since}");
        let (status, v) = raw(&mxb, "GET", &v3(&q), Some(&bob), b"").await;
        assert_eq!(status, 200, "{v}");
        since = v["next_batch"].as_str().unwrap_or_default().to_owned();
        for room in v["rooms"]["join"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
            for ev in room["timeline"]["events"].as_array().into_iter().flatten() {
                if ev["content"]["url"].is_string() {
                    album.push(ev.clone());
                }
                if ev["type"] == "m.room.redaction" {
                    redacted.push(ev["redacts"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        if album.len() == 2 && !unsent {
            unsent = true;
            aa.inter
                .unsend(sessiond_api::v1::UnsendRequest {
                    identity: "alice".into(),
                    conversation: bob_id.clone(),
                    sent_at_ms: sent.sent_at_ms,
                })
                .await
                .expect("unsend");
        }
    }
    assert_eq!(album[0]["content"]["body"], "two files", "{album:?}");
    assert_eq!(album[0]["content"]["msgtype"], "m.image");
    assert_eq!(album[1]["content"]["body"], "data.bin");
    assert_eq!(album[1]["content"]["msgtype"], "m.file");
    let main = album[0]["event_id"].as_str().expect("id").to_owned();
    assert_eq!(album[1]["event_id"], format!("{main}_1"));
    redacted.sort();
    assert_eq!(redacted, [main.clone(), format!("{main}_1")]);
}

// ------------------------------------------------------------------------------------------------
// Groups and community rooms as Matrix rooms
// ------------------------------------------------------------------------------------------------

/// What a Matrix client saw over its syncs, as JSON: every event went through ruma's types
/// first (a stock client reads them).
#[derive(Default)]
struct Seen {
    /// Room id → (state events of its `join`/`leave` sections and state events of timelines, in
    /// order), the newest last.
    state: std::collections::HashMap<String, Vec<Value>>,
    /// Room id → timeline events (join and leave sections).
    timeline: std::collections::HashMap<String, Vec<Value>>,
    /// Room id → stripped state of its latest invite.
    invites: std::collections::HashMap<String, Vec<Value>>,
    /// Rooms seen in `leave`.
    left: HashSet<String>,
}

impl Seen {
    /// The newest content of state event (kind, key) in `room`.
    fn state_of(&self, room: &str, kind: &str, key: &str) -> Option<Value> {
        self.state
            .get(room)?
            .iter()
            .rev()
            .find(|e| e["type"] == kind && e["state_key"] == key)
            .map(|e| e["content"].clone())
    }

    fn timeline_of(&self, room: &str) -> &[Value] {
        self.timeline.get(room).map(Vec::as_slice).unwrap_or(&[])
    }

    /// (sender, body) of the messages in `room`.
    fn texts(&self, room: &str) -> Vec<(String, String)> {
        self.timeline_of(room)
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                (
                    e["sender"].as_str().unwrap_or("").to_owned(),
                    e["content"]["body"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

fn raw_json<T>(raw: &ruma::serde::Raw<T>) -> Value {
    serde_json::from_str(raw.json().get()).expect("an event is JSON")
}

/// One `/sync` through ruma-client, every event deserialized as its type, added to `seen`.
async fn mx_sync_into(c: &Mx, since: &mut Option<String>, seen: &mut Seen) {
    use ruma::api::client::sync::sync_events::v3::State;
    let resp = mx_sync(c, since.as_deref(), 500).await;
    *since = Some(resp.next_batch.clone());
    let state_events = |s: &State| -> Vec<Value> {
        let events = match s {
            State::Before(s) => &s.events,
            State::After(s) => &s.events,
            _ => panic!("a state form this test does not know"),
        };
        events
            .iter()
            .map(|e| {
                e.deserialize()
                    .unwrap_or_else(|err| panic!("state event {}: {err}", e.json().get()));
                raw_json(e)
            })
            .collect()
    };
    let timeline_events = |t: &ruma::api::client::sync::sync_events::v3::Timeline| -> Vec<Value> {
        t.events
            .iter()
            .map(|e| {
                e.deserialize()
                    .unwrap_or_else(|err| panic!("timeline event {}: {err}", e.json().get()));
                raw_json(e)
            })
            .collect()
    };
    let mut add = |room: String, state: Vec<Value>, timeline: Vec<Value>| {
        let s = seen.state.entry(room.clone()).or_default();
        s.extend(state);
        s.extend(
            timeline
                .iter()
                .filter(|e| e.get("state_key").is_some())
                .cloned(),
        );
        seen.timeline.entry(room).or_default().extend(timeline);
    };
    for (room, r) in &resp.rooms.join {
        add(
            room.to_string(),
            state_events(&r.state),
            timeline_events(&r.timeline),
        );
    }
    for (room, r) in &resp.rooms.leave {
        seen.left.insert(room.to_string());
        add(
            room.to_string(),
            state_events(&r.state),
            timeline_events(&r.timeline),
        );
    }
    for (room, r) in &resp.rooms.invite {
        let events = r
            .invite_state
            .events
            .iter()
            .map(|e| {
                e.deserialize()
                    .unwrap_or_else(|err| panic!("stripped event {}: {err}", e.json().get()));
                raw_json(e)
            })
            .collect();
        seen.invites.insert(room.to_string(), events);
    }
}

/// Syncs until `done` holds for what was seen.
async fn seen_until(
    c: &Mx,
    since: &mut Option<String>,
    seen: &mut Seen,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let until = Instant::now() + DEADLINE;
    while !done(seen) {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        mx_sync_into(c, since, seen).await;
    }
}

/// Sends a text through ruma-client, retrying while the daemon cannot post yet (a new member's
/// first post may come before its first poll read the group's keys).
async fn mx_send_retrying(c: &Mx, room: &RoomId, txn: &str, text: &str) -> String {
    let until = Instant::now() + DEADLINE;
    loop {
        let content = RoomMessageEventContent::text_plain(text);
        let req = send_message_event::v3::Request::new(room.to_owned(), txn.into(), &content)
            .expect("serialize");
        match c.send_request(req).await {
            Ok(r) => return r.event_id.to_string(),
            Err(e) => {
                assert!(Instant::now() < until, "send failed: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn room_of(s: &str) -> OwnedRoomId {
    s.try_into().expect("a room id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_driven_from_matrix_clients_on_three_daemons() {
    use ruma::api::client::membership::{invite_user, kick_user};
    use ruma::api::client::state::send_state_event;
    use ruma::events::room::name::RoomNameEventContent;
    let n = net("mx-group", CONFIG).await;
    let (da, db, dc) = (
        n.daemon("a").await,
        n.daemon("b").await,
        n.daemon("c").await,
    );
    let alice = create(&mut admin(&da).await, "alice").await;
    let bob = create(&mut admin(&db).await, "bob").await;
    let carol = create(&mut admin(&dc).await, "carol").await;
    let (mxa, mxb, mxc) = (matrix_addr(&da), matrix_addr(&db), matrix_addr(&dc));
    let ma = mx_login(&mxa, "alice", &da.admin_token).await;
    let mb = mx_login(&mxb, "bob", &db.admin_token).await;
    let mc = mx_login(&mxc, "carol", &dc.admin_token).await;
    let tb = login(&mxb, "bob", &db.admin_token).await;
    let (mut sa, mut sb, mut sc) = (Seen::default(), Seen::default(), Seen::default());
    let (mut na, mut nb, mut nc) = (None, None, None);
    mx_sync_into(&mb, &mut nb, &mut sb).await;
    mx_sync_into(&mc, &mut nc, &mut sc).await;

    // A creates the group from Matrix: a named room inviting B.
    let mut req = create_room::v3::Request::new();
    req.name = Some("Hikers".into());
    req.topic = Some("weekend trips".into());
    req.invite = vec![user(&bob)];
    let room_a = ma
        .send_request(req)
        .await
        .expect("createRoom")
        .room_id
        .to_string();
    let gid = room_a
        .strip_prefix('!')
        .and_then(|r| r.split('_').next())
        .expect("group id in the room id")
        .to_owned();
    assert!(gid.starts_with("03") && gid.len() == 66, "{room_a}");
    let (room_b, room_c) = (
        format!("!{gid}_bob:{SERVER}"),
        format!("!{gid}_carol:{SERVER}"),
    );
    // A user is itself in its own rooms, a ghost (`@<Account ID>`) in the others'.
    let me_b = format!("@bob:{SERVER}");
    let (ua, ub, uc) = (
        format!("@alice:{SERVER}"),
        format!("@{bob}:{SERVER}"),
        format!("@{carol}:{SERVER}"),
    );
    seen_until(&ma, &mut na, &mut sa, "A's group room", |s| {
        s.state_of(&room_a, "m.room.member", &ub).is_some()
    })
    .await;
    assert_eq!(
        sa.state_of(&room_a, "m.room.name", "").expect("name")["name"],
        "Hikers"
    );
    assert_eq!(
        sa.state_of(&room_a, "m.room.topic", "").expect("topic")["topic"],
        "weekend trips"
    );
    assert_eq!(
        sa.state_of(&room_a, "m.room.member", &ub).expect("B")["membership"],
        "invite"
    );
    assert_eq!(
        sa.state_of(&room_a, "m.room.member", &ua).expect("A")["membership"],
        "join"
    );
    let pl = sa
        .state_of(&room_a, "m.room.power_levels", "")
        .expect("power levels");
    assert_eq!(
        (
            &pl["users"][&ua],
            &pl["kick"],
            &pl["invite"],
            &pl["state_default"]
        ),
        (&json!(100), &json!(100), &json!(100), &json!(100))
    );

    // B sees the invitation (the inviter's join and B's invite in the stripped state), joins.
    seen_until(&mb, &mut nb, &mut sb, "B's invite", |s| {
        s.invites.contains_key(&room_b)
    })
    .await;
    let invite = &sb.invites[&room_b];
    let mine = invite
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == me_b.as_str())
        .expect("B's invite");
    assert_eq!(
        (&mine["content"]["membership"], &mine["sender"]),
        (&json!("invite"), &json!(format!("@{alice}:{SERVER}")))
    );
    assert!(invite
        .iter()
        .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Hikers"));
    // Sending before joining is refused.
    let early = raw(
        &mxb,
        "PUT",
        &v3(&format!("rooms/{}/send/m.room.message/early", enc(&room_b))),
        Some(&tb),
        br#"{"msgtype":"m.text","body":"too early"}"#,
    )
    .await;
    is_error(&early, 403, "M_FORBIDDEN");
    mb.send_request(join_room_by_id::v3::Request::new(room_of(&room_b)))
        .await
        .expect("B joins");
    seen_until(&mb, &mut nb, &mut sb, "B in the room", |s| {
        s.state_of(&room_b, "m.room.member", &me_b)
            .is_some_and(|m| m["membership"] == "join")
    })
    .await;
    mx_send_retrying(&mb, &room_of(&room_b), "b1", "hello from bob").await;
    seen_until(&ma, &mut na, &mut sa, "B's post at A", |s| {
        s.texts(&room_a)
            .contains(&(ub.clone(), "hello from bob".to_owned()))
    })
    .await;
    mx_send_retrying(&ma, &room_of(&room_a), "a1", "welcome bob").await;
    seen_until(&mb, &mut nb, &mut sb, "A's post at B", |s| {
        s.texts(&room_b)
            .contains(&(format!("@{alice}:{SERVER}"), "welcome bob".to_owned()))
    })
    .await;
    // B reacts to A's post; A sees an m.reaction on its own event.
    let event_of = |s: &Seen, room: &str, text: &str| -> String {
        s.timeline_of(room)
            .iter()
            .find(|e| e["type"] == "m.room.message" && e["content"]["body"] == text)
            .and_then(|e| e["event_id"].as_str())
            .expect("the post's event")
            .to_owned()
    };
    seen_until(&ma, &mut na, &mut sa, "A's own post at A", |s| {
        s.texts(&room_a)
            .contains(&(format!("@alice:{SERVER}"), "welcome bob".to_owned()))
    })
    .await;
    let (welcome_b, welcome_a) = (
        event_of(&sb, &room_b, "welcome bob"),
        event_of(&sa, &room_a, "welcome bob"),
    );
    let got = put_reaction(&mxb, &tb, &room_b, &json!(welcome_b), "🎉").await;
    assert_eq!(got.0, 200, "{got:?}");
    seen_until(&ma, &mut na, &mut sa, "B's reaction at A", |s| {
        s.timeline_of(&room_a).iter().any(|e| {
            e["type"] == "m.reaction"
                && e["sender"] == ub.as_str()
                && e["content"]["m.relates_to"]["event_id"] == welcome_a.as_str()
                && e["content"]["m.relates_to"]["key"] == "🎉"
        })
    })
    .await;
    // B redacts a post of its own: it is deleted for every member, and A sees the redaction.
    // (Until B's daemon has stored the post in the group's swarm the redaction is refused.)
    mx_send_retrying(&mb, &room_of(&room_b), "b2", "oops, wrong group").await;
    seen_until(&ma, &mut na, &mut sa, "B's slip at A", |s| {
        s.texts(&room_a)
            .contains(&(ub.clone(), "oops, wrong group".to_owned()))
    })
    .await;
    seen_until(&mb, &mut nb, &mut sb, "B's own slip at B", |s| {
        s.texts(&room_b)
            .contains(&(me_b.clone(), "oops, wrong group".to_owned()))
    })
    .await;
    let (slip_b, slip_a) = (
        event_of(&sb, &room_b, "oops, wrong group"),
        event_of(&sa, &room_a, "oops, wrong group"),
    );
    let path = v3(&format!(
        "rooms/{}/redact/{}/x1",
        enc(&room_b),
        slip_b.replace('$', "%24")
    ));
    let until = Instant::now() + DEADLINE;
    loop {
        let got = raw(&mxb, "PUT", &path, Some(&tb), b"{}").await;
        if got.0 == 200 {
            break;
        }
        assert!(Instant::now() < until, "B's redaction refused: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    seen_until(&ma, &mut na, &mut sa, "the redaction at A", |s| {
        s.timeline_of(&room_a)
            .iter()
            .any(|e| e["type"] == "m.room.redaction" && e["redacts"] == slip_a.as_str())
    })
    .await;
    // A may not redact B's post in the group.
    let ta = login(&mxa, "alice", &da.admin_token).await;
    let hello_a = event_of(&sa, &room_a, "hello from bob");
    let got = raw(
        &mxa,
        "PUT",
        &v3(&format!(
            "rooms/{}/redact/{}/x2",
            enc(&room_a),
            hello_a.replace('$', "%24")
        )),
        Some(&ta),
        b"{}",
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");

    // A non-admin may not kick, invite or rename: clear Matrix errors.
    let kick = json!({ "user_id": format!("@{alice}:{SERVER}") }).to_string();
    let got = raw(
        &mxb,
        "POST",
        &v3(&format!("rooms/{}/kick", enc(&room_b))),
        Some(&tb),
        kick.as_bytes(),
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    let got = raw(
        &mxb,
        "PUT",
        &v3(&format!("rooms/{}/state/m.room.name", enc(&room_b))),
        Some(&tb),
        br#"{"name":"Mine now"}"#,
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    for bad in [&b"{"[..], b"{\"user\":1}", b"[]"] {
        let got = raw(
            &mxb,
            "POST",
            &v3(&format!("rooms/{}/kick", enc(&room_b))),
            Some(&tb),
            bad,
        )
        .await;
        assert!(
            got.0 == 400 && (got.1["errcode"] == "M_NOT_JSON" || got.1["errcode"] == "M_BAD_JSON"),
            "{got:?}"
        );
    }

    // A adds C; C joins and reads what was posted before (the history is shared).
    ma.send_request(invite_user::v3::Request::new(
        room_of(&room_a),
        invite_user::v3::InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(user(
            &carol,
        ))),
    ))
    .await
    .expect("A invites C");
    seen_until(&mc, &mut nc, &mut sc, "C's invite", |s| {
        s.invites.contains_key(&room_c)
    })
    .await;
    mc.send_request(join_room_by_id::v3::Request::new(room_of(&room_c)))
        .await
        .expect("C joins");
    seen_until(&mc, &mut nc, &mut sc, "the history at C", |s| {
        let t = s.texts(&room_c);
        t.contains(&(ub.clone(), "hello from bob".to_owned()))
            && t.contains(&(format!("@{alice}:{SERVER}"), "welcome bob".to_owned()))
    })
    .await;

    // A kicks B: B's room moves to `leave` with a member event by someone else (a kick).
    ma.send_request(kick_user::v3::Request::new(room_of(&room_a), user(&bob)))
        .await
        .expect("A kicks B");
    seen_until(&mb, &mut nb, &mut sb, "B's kick", |s| {
        s.left.contains(&room_b)
    })
    .await;
    let kick = sb
        .timeline_of(&room_b)
        .iter()
        .rev()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == me_b.as_str())
        .cloned()
        .expect("B's leave event");
    assert_eq!(kick["content"]["membership"], "leave");
    assert_ne!(kick["sender"], json!(me_b), "a kick, not a leave: {kick}");
    seen_until(&ma, &mut na, &mut sa, "B gone at A", |s| {
        s.state_of(&room_a, "m.room.member", &ub)
            .is_none_or(|m| m["membership"] == "leave")
            && s.timeline_of(&room_a)
                .iter()
                .any(|e| e["state_key"] == ub.as_str() && e["content"]["membership"] == "leave")
    })
    .await;

    // A promotes C (power level 100); C renames the group; A sees the new name.
    let mut pl = sa
        .state_of(&room_a, "m.room.power_levels", "")
        .expect("power levels");
    pl["users"][&uc] = json!(100);
    ma.send_request(send_state_event::v3::Request::new_raw(
        room_of(&room_a),
        "m.room.power_levels".into(),
        String::new(),
        ruma::serde::Raw::from_json(serde_json::value::to_raw_value(&pl).expect("raw")),
    ))
    .await
    .expect("A promotes C");
    seen_until(&mc, &mut nc, &mut sc, "C an admin", |s| {
        s.state_of(&room_c, "m.room.power_levels", "")
            .is_some_and(|p| p["users"][&format!("@carol:{SERVER}")] == 100)
    })
    .await;
    // The members list says C is an admin as soon as A promotes; C's daemon can act as one once
    // the group's key (a one-to-one message from A) has arrived: until then 403.
    let until = Instant::now() + DEADLINE;
    loop {
        let rename = send_state_event::v3::Request::new(
            room_of(&room_c),
            &ruma::events::EmptyStateKey,
            &RoomNameEventContent::new("Mountaineers".into()),
        )
        .expect("serialize");
        match mc.send_request(rename).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < until, "C never could rename: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    seen_until(&ma, &mut na, &mut sa, "the new name at A", |s| {
        s.state_of(&room_a, "m.room.name", "")
            .is_some_and(|n| n["name"] == "Mountaineers")
            && s.timeline_of(&room_a)
                .iter()
                .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Mountaineers")
    })
    .await;
    // Every daemon is still up.
    still_fine(&mxa, &login(&mxa, "alice", &da.admin_token).await).await;
    still_fine(&mxb, &tb).await;
    da.terminate();
    db.terminate();
    dc.terminate();
}

/// The tests' config with community rooms polled quickly.
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

[matrix]
max_sync_timeout_ms = 1500
"#;

/// Percent-encodes everything but unreserved characters (a URL as one path segment).
fn enc_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_rooms_joined_by_url_from_matrix_clients() {
    let CommunityPair {
        n,
        da,
        db,
        mxa,
        mxb,
        ma,
        mb,
        ta,
        tb,
        mut sa,
        mut sb,
        mut na,
        mut nb,
        ..
    } = community_pair("mx-rooms").await;
    let server = n.devnet.community().expect("a community server");
    let lobby_url = server.room_url("lobby").to_string();
    let news_url = server.room_url("news").to_string();
    let base = server.url().to_string();

    // Bad URLs: no key (400), a room the server does not have (404); nothing joined.
    let got = raw(
        &mxa,
        "POST",
        &v3(&format!("join/{}", enc_all(&format!("{base}/lobby")))),
        Some(&ta),
        b"{}",
    )
    .await;
    is_error(&got, 400, "M_INVALID_PARAM");
    let got = raw(
        &mxa,
        "POST",
        &v3(&format!(
            "join/{}",
            enc_all(&server.room_url("nosuchroom").to_string())
        )),
        Some(&ta),
        b"{}",
    )
    .await;
    is_error(&got, 404, "M_NOT_FOUND");

    // Alice joins with the URL as the room, bob with the alias form `#<URL>:<server>`.
    let got = raw(
        &mxa,
        "POST",
        &v3(&format!("join/{}", enc_all(&lobby_url))),
        Some(&ta),
        b"{}",
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let lobby_a = got.1["room_id"].as_str().expect("room id").to_owned();
    let got = raw(
        &mxb,
        "POST",
        &v3(&format!(
            "join/{}",
            enc_all(&format!("#{lobby_url}:{SERVER}"))
        )),
        Some(&tb),
        b"{}",
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let lobby_b = got.1["room_id"].as_str().expect("room id").to_owned();
    assert!(lobby_a.ends_with(&format!("_alice:{SERVER}")), "{lobby_a}");
    seen_until(&ma, &mut na, &mut sa, "the lobby at alice", |s| {
        s.state_of(&lobby_a, "m.room.name", "").is_some()
    })
    .await;
    assert_eq!(
        sa.state_of(&lobby_a, "m.room.name", "").expect("name")["name"],
        "Lobby"
    );
    assert_eq!(
        sa.state_of(&lobby_a, "m.room.topic", "").expect("topic")["topic"],
        "Say hello"
    );
    let pl = sa
        .state_of(&lobby_a, "m.room.power_levels", "")
        .expect("power levels");
    assert_eq!(pl["events_default"], 0);

    // Chat both ways; posters are users named by their blinded IDs.
    let hello_a = mx_send_retrying(&ma, &room_of(&lobby_a), "a1", "hello room").await;
    mx_send_retrying(&mb, &room_of(&lobby_b), "b1", "hi alice").await;
    seen_until(&mb, &mut nb, &mut sb, "alice's post at bob", |s| {
        s.texts(&lobby_b).iter().any(|(_, t)| t == "hello room")
    })
    .await;
    let hello_b = sb
        .timeline_of(&lobby_b)
        .iter()
        .find(|e| e["content"]["body"] == "hello room")
        .cloned()
        .expect("the post");
    let poster = hello_b["sender"].as_str().expect("sender").to_owned();
    assert!(poster.starts_with("@15"), "{poster}");
    assert!(
        sb.state_of(&lobby_b, "m.room.member", &poster).is_some(),
        "the poster's member event"
    );
    seen_until(&ma, &mut na, &mut sa, "bob's post at alice", |s| {
        s.texts(&lobby_a).iter().any(|(_, t)| t == "hi alice")
    })
    .await;

    // Bob reacts to alice's post; alice sees an m.reaction on it.
    let got = put_reaction(&mxb, &tb, &lobby_b, &hello_b["event_id"], "👍").await;
    assert_eq!(got.0, 200, "{got:?}");
    seen_until(&ma, &mut na, &mut sa, "the reaction at alice", |s| {
        s.timeline_of(&lobby_a).iter().any(|e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == hello_a.as_str()
                && e["content"]["m.relates_to"]["key"] == "👍"
        })
    })
    .await;

    // Bob may not delete alice's post; alice may, and bob sees the redaction.
    let redact = |mx: &str, token: &str, room: &str, event: &str, txn: &str| {
        let path = v3(&format!(
            "rooms/{}/redact/{}/{txn}",
            enc(room),
            event.replace('$', "%24")
        ));
        let (mx, token) = (mx.to_owned(), token.to_owned());
        async move { raw(&mx, "PUT", &path, Some(&token), b"{}").await }
    };
    let got = redact(
        &mxb,
        &tb,
        &lobby_b,
        hello_b["event_id"].as_str().expect("id"),
        "x1",
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    let got = redact(&mxa, &ta, &lobby_a, &hello_a, "x2").await;
    assert_eq!(got.0, 200, "{got:?}");
    seen_until(&mb, &mut nb, &mut sb, "the deletion at bob", |s| {
        s.timeline_of(&lobby_b)
            .iter()
            .any(|e| e["type"] == "m.room.redaction" && e["redacts"] == hello_b["event_id"])
    })
    .await;

    // A read-only room: power levels above the user's, and a send is 403 with the reason.
    let got = raw(
        &mxa,
        "POST",
        &v3(&format!("join/{}", enc_all(&news_url))),
        Some(&ta),
        b"{}",
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let news_a = got.1["room_id"].as_str().expect("room id").to_owned();
    seen_until(&ma, &mut na, &mut sa, "the news room", |s| {
        s.state_of(&news_a, "m.room.power_levels", "").is_some()
    })
    .await;
    let pl = sa
        .state_of(&news_a, "m.room.power_levels", "")
        .expect("power levels");
    assert!(
        pl["events_default"].as_i64() > pl["users"][format!("@alice:{SERVER}")].as_i64(),
        "{pl}"
    );
    let got = raw(
        &mxa,
        "PUT",
        &v3(&format!("rooms/{}/send/m.room.message/n1", enc(&news_a))),
        Some(&ta),
        br#"{"msgtype":"m.text","body":"may I?"}"#,
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    assert!(
        got.1["error"]
            .as_str()
            .is_some_and(|e| e.contains("read-only")),
        "{got:?}"
    );

    // Leaving: the room moves to `leave`; it is no longer joined.
    ma.send_request(ruma::api::client::membership::leave_room::v3::Request::new(
        room_of(&news_a),
    ))
    .await
    .expect("leave");
    seen_until(&ma, &mut na, &mut sa, "the news room left", |s| {
        s.left.contains(&news_a)
    })
    .await;
    let (status, v) = raw(&mxa, "GET", &v3("joined_rooms"), Some(&ta), b"").await;
    assert_eq!(status, 200);
    let joined: Vec<&str> = v["joined_rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        joined.contains(&lobby_a.as_str()) && !joined.contains(&news_a.as_str()),
        "{v}"
    );
    still_fine(&mxa, &ta).await;
    still_fine(&mxb, &tb).await;
    da.terminate();
    db.terminate();
    n.devnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_group_and_community_requests_get_matrix_errors() {
    let f = fixture("mx-kinds-bad").await;
    let (mx, alice) = (&f.mx, &f.alice);
    let group_room = format!("!03{}_alice:{SERVER}", "ab".repeat(32));
    // Room ids that name nothing: malformed, a group the identity is not in, a community
    // address that is not one.
    for bad in [
        "!03abc_alice:localhost".to_owned(),
        "!rzz_alice:localhost".to_owned(),
        format!("!r{}_alice:{SERVER}", "66".repeat(8)),
        group_room.clone(),
        format!("!03{}_bob:{SERVER}", "ab".repeat(32)),
    ] {
        let got = raw(
            mx,
            "POST",
            &v3(&format!("join/{}", enc(&bad))),
            Some(alice),
            b"{}",
        )
        .await;
        is_error(&got, 404, "M_NOT_FOUND");
        for (method, path, body) in [
            ("POST", format!("rooms/{}/leave", enc(&bad)), "{}"),
            (
                "POST",
                format!("rooms/{}/kick", enc(&bad)),
                r#"{"user_id":"@x:localhost"}"#,
            ),
            (
                "POST",
                format!("rooms/{}/invite", enc(&bad)),
                r#"{"user_id":"@x:localhost"}"#,
            ),
            (
                "PUT",
                format!("rooms/{}/state/m.room.name", enc(&bad)),
                r#"{"name":"n"}"#,
            ),
        ] {
            let got = raw(mx, method, &v3(&path), Some(alice), body.as_bytes()).await;
            is_error(&got, 403, "M_FORBIDDEN");
        }
    }
    // createRoom bodies that are no group.
    for (body, code) in [
        (r#"{"name": 5}"#, "M_BAD_JSON"),
        (r#"{"name": "g", "invite": "x"}"#, "M_BAD_JSON"),
        (
            r#"{"name": "g", "invite": ["@nobody:localhost"]}"#,
            "M_INVALID_PARAM",
        ),
        (
            r#"{"name": "g", "invite": ["@05ab:other.org"]}"#,
            "M_INVALID_PARAM",
        ),
        (
            r#"{"invite": ["@a:localhost", "@b:localhost"]}"#,
            "M_INVALID_PARAM",
        ),
        (r#"{"name": "g", "#, "M_NOT_JSON"),
    ] {
        let got = raw(mx, "POST", &v3("createRoom"), Some(alice), body.as_bytes()).await;
        is_error(&got, 400, code);
    }
    // Kick and invite bodies, and kicking in a one-to-one room.
    for (body, code) in [
        ("{", "M_NOT_JSON"),
        ("[]", "M_BAD_JSON"),
        (r#"{"user_id": 1}"#, "M_BAD_JSON"),
    ] {
        for what in ["kick", "invite"] {
            let got = raw(
                mx,
                "POST",
                &v3(&format!("rooms/{}/{what}", enc(&f.room))),
                Some(alice),
                body.as_bytes(),
            )
            .await;
            is_error(&got, 400, code);
        }
    }
    let kick = json!({ "user_id": format!("@{}:{SERVER}", f.peer) }).to_string();
    let got = raw(
        mx,
        "POST",
        &v3(&format!("rooms/{}/kick", enc(&f.room))),
        Some(alice),
        kick.as_bytes(),
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    still_fine(mx, alice).await;
    still_fine(mx, &f.bob).await;
    f.daemon.terminate();
}

// ------------------------------------------------------------------------------------------------
// Community DMs and a community server outage, from Matrix clients
// ------------------------------------------------------------------------------------------------

/// Two daemons on a devnet whose community server has `lobby` (open) and `news` (read-only),
/// with alice on `a` and bob on `b` logged in to Matrix (ruma clients and raw tokens) and
/// synced once.
struct CommunityPair {
    n: Net,
    da: Daemon,
    db: Daemon,
    mxa: String,
    mxb: String,
    ma: Mx,
    mb: Mx,
    ta: String,
    tb: String,
    sa: Seen,
    sb: Seen,
    na: Option<String>,
    nb: Option<String>,
    /// Alice's and bob's Account IDs.
    ida: String,
    idb: String,
}

async fn community_pair(tag: &str) -> CommunityPair {
    use session_devnet::{CommunityConfig, RoomSpec};
    let n = support::net_with_community(
        tag,
        COMMUNITY_CONFIG,
        Some(CommunityConfig {
            rooms: vec![
                RoomSpec::new("lobby", "Lobby").describe("Say hello"),
                RoomSpec::new("news", "News").read_only(),
            ],
            ..Default::default()
        }),
    )
    .await;
    let (da, db) = (n.daemon("a").await, n.daemon("b").await);
    let ida = create(&mut admin(&da).await, "alice").await;
    let idb = create(&mut admin(&db).await, "bob").await;
    let (mxa, mxb) = (matrix_addr(&da), matrix_addr(&db));
    let ma = mx_login(&mxa, "alice", &da.admin_token).await;
    let mb = mx_login(&mxb, "bob", &db.admin_token).await;
    let ta = login(&mxa, "alice", &da.admin_token).await;
    let tb = login(&mxb, "bob", &db.admin_token).await;
    let (mut sa, mut sb) = (Seen::default(), Seen::default());
    let (mut na, mut nb) = (None, None);
    mx_sync_into(&ma, &mut na, &mut sa).await;
    mx_sync_into(&mb, &mut nb, &mut sb).await;
    CommunityPair {
        ida,
        idb,
        n,
        da,
        db,
        mxa,
        mxb,
        ma,
        mb,
        ta,
        tb,
        sa,
        sb,
        na,
        nb,
    }
}

/// Joins the community room at `url` from Matrix; answers the room id.
async fn mx_join_url(mx: &str, token: &str, url: &str) -> String {
    let got = raw(
        mx,
        "POST",
        &v3(&format!("join/{}", enc_all(url))),
        Some(token),
        b"{}",
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    got.1["room_id"].as_str().expect("room id").to_owned()
}

/// The room `m.direct` (as the account data endpoint answers it) gives for `user`.
async fn direct_room_of(mx: &str, token: &str, me: &str, user: &str) -> Option<String> {
    let v = get_ok(
        mx,
        token,
        v3(&format!("user/{}/account_data/m.direct", enc(me))),
    )
    .await;
    v[user][0].as_str().map(str::to_owned)
}

/// The bodies of the `m.room.message` events of `room` from `/messages`, oldest first.
async fn room_history(mx: &str, token: &str, room: &str) -> Vec<String> {
    let v = get_ok(
        mx,
        token,
        v3(&format!("rooms/{}/messages?dir=b&limit=100", enc(room))),
    )
    .await;
    let mut out: Vec<String> = v["chunk"]
        .as_array()
        .expect("a chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_dms_and_a_server_outage_from_matrix_clients() {
    let CommunityPair {
        n,
        da,
        db,
        mxa,
        mxb,
        ma,
        mb,
        ta,
        tb,
        mut sa,
        mut sb,
        mut na,
        mut nb,
        ida,
        idb,
    } = community_pair("mx-community-dm").await;
    // An Account ID as room names shorten it.
    let short = |id: &str| format!("{}…{}", &id[..6], &id[id.len() - 4..]);
    let server = n.devnet.community().expect("a community server");
    let lobby_url = server.room_url("lobby").to_string();
    let (alice, bob) = (format!("@alice:{SERVER}"), format!("@bob:{SERVER}"));
    // Bob has a display name: his DMs carry it, and alice's client names the room with it.
    let got = raw(
        &mxb,
        "PUT",
        &v3(&format!("profile/{}/displayname", enc(&bob))),
        Some(&tb),
        br#"{"displayname":"Bob B."}"#,
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let lobby_a = mx_join_url(&mxa, &ta, &lobby_url).await;
    let lobby_b = mx_join_url(&mxb, &tb, &lobby_url).await;

    // Alice posts; at bob she is a poster named by her blinded ID.
    mx_send_retrying(&ma, &room_of(&lobby_a), "a1", "hello from alice").await;
    seen_until(&mb, &mut nb, &mut sb, "alice's post at bob", |s| {
        s.texts(&lobby_b)
            .iter()
            .any(|(_, t)| t == "hello from alice")
    })
    .await;
    let alice_poster = sb
        .texts(&lobby_b)
        .into_iter()
        .find(|(_, t)| t == "hello from alice")
        .expect("the post")
        .0;
    assert!(alice_poster.starts_with("@15"), "{alice_poster}");

    // Bob starts a community DM with the poster, as a client starts any DM.
    let mut req = create_room::v3::Request::new();
    req.invite = vec![alice_poster.as_str().try_into().expect("a user id")];
    req.is_direct = true;
    let dm_b = mb
        .send_request(req)
        .await
        .expect("createRoom with a poster")
        .room_id
        .to_string();
    let alice_blinded = &alice_poster[1..67];
    assert_eq!(dm_b, format!("!{alice_blinded}_bob:{SERVER}"));
    assert_eq!(
        direct_room_of(&mxb, &tb, &bob, &alice_poster)
            .await
            .as_deref(),
        Some(dm_b.as_str())
    );
    mx_send_retrying(&mb, &room_of(&dm_b), "d1", "psst").await;

    // Alice's client gets an invite from bob's blinded ID, named by his display name and the
    // Account ID his DM revealed; she joins and reads the DM.
    seen_until(&ma, &mut na, &mut sa, "the DM invite at alice", |s| {
        s.invites.keys().any(|r| r.starts_with("!15"))
    })
    .await;
    let (dm_a, invite) = sa
        .invites
        .iter()
        .find(|(r, _)| r.starts_with("!15"))
        .map(|(r, e)| (r.clone(), e.clone()))
        .expect("the invite");
    let bob_blinded = dm_a[1..67].to_owned();
    let bob_user = format!("@{bob_blinded}:{SERVER}");
    let name = invite
        .iter()
        .find(|e| e["type"] == "m.room.name")
        .expect("a name");
    assert_eq!(
        name["content"]["name"],
        format!("Bob B. ({})", short(&idb)),
        "{invite:?}"
    );
    let conv = admin(&da)
        .await
        .convs
        .get_conversation(sessiond_api::v1::GetConversationRequest {
            identity: "alice".into(),
            account_id: bob_blinded.clone(),
        })
        .await
        .expect("the DM's conversation")
        .into_inner()
        .conversation
        .expect("a conversation");
    assert_eq!(conv.community_account_id, idb);
    let mine = invite
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == alice.as_str())
        .expect("alice's invite");
    assert_eq!(mine["sender"], bob_user.as_str());
    assert_eq!(mine["content"]["is_direct"], true);
    ma.send_request(join_room_by_id::v3::Request::new(room_of(&dm_a)))
        .await
        .expect("join the DM");
    seen_until(&ma, &mut na, &mut sa, "the DM at alice", |s| {
        s.texts(&dm_a) == [(bob_user.clone(), "psst".to_owned())]
    })
    .await;
    assert_eq!(
        direct_room_of(&mxa, &ta, &alice, &bob_user)
            .await
            .as_deref(),
        Some(dm_a.as_str())
    );

    // Alice answers in the room; bob reads it from the poster he wrote to.
    mx_send_retrying(&ma, &room_of(&dm_a), "d2", "psst back").await;
    seen_until(&mb, &mut nb, &mut sb, "the answer at bob", |s| {
        s.texts(&dm_b)
            .iter()
            .any(|(u, t)| *u == alice_poster && t == "psst back")
    })
    .await;
    assert_eq!(
        sb.texts(&dm_b),
        [
            (bob.clone(), "psst".to_owned()),
            (alice_poster.clone(), "psst back".to_owned())
        ]
    );
    // Her answer told bob her Account ID: the room's name and topic show it now.
    let name = get_ok(
        &mxb,
        &tb,
        v3(&format!("rooms/{}/state/m.room.name/", enc(&dm_b))),
    )
    .await;
    assert!(
        name["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("({})", short(&ida)))),
        "{name}"
    );
    let topic = get_ok(
        &mxb,
        &tb,
        v3(&format!("rooms/{}/state/m.room.topic/", enc(&dm_b))),
    )
    .await;
    assert!(
        topic["topic"]
            .as_str()
            .is_some_and(|t| t.contains(alice_blinded) && t.contains(&ida)),
        "{topic}"
    );

    // The server goes down. A post from a Matrix client is refused at once with a 503 that
    // says why (as gRPC's UNAVAILABLE and IRC's notice): the client keeps it as not sent.
    mx_send_retrying(&mb, &room_of(&lobby_b), "b1", "before the outage").await;
    seen_until(
        &ma,
        &mut na,
        &mut sa,
        "the last post before the outage",
        |s| {
            s.texts(&lobby_a)
                .iter()
                .any(|(_, t)| t == "before the outage")
        },
    )
    .await;
    // Alice reacts to it: bob sees the reaction from her poster user (the server lists who
    // reacted), not from the anonymous reactions user.
    let before = sa
        .timeline_of(&lobby_a)
        .iter()
        .find(|e| e["content"]["body"] == "before the outage")
        .expect("the post")["event_id"]
        .clone();
    let got = put_reaction(&mxa, &ta, &lobby_a, &before, "🎉").await;
    assert_eq!(got.0, 200, "{got:?}");
    let party =
        |e: &&Value| e["type"] == "m.reaction" && e["content"]["m.relates_to"]["key"] == "🎉";
    seen_until(&mb, &mut nb, &mut sb, "alice's reaction at bob", |s| {
        s.timeline_of(&lobby_b).iter().any(|e| party(&e))
    })
    .await;
    let reactions: Vec<&Value> = sb.timeline_of(&lobby_b).iter().filter(party).collect();
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!(reactions[0]["sender"], alice_poster.as_str());
    server.stop().await;
    let mut rooms = admin(&da).await.rooms;
    let until = Instant::now() + DEADLINE;
    loop {
        let room = rooms
            .get_room(sessiond_api::v1::GetRoomRequest {
                identity: "alice".into(),
                room_id: format!("{}/lobby", server.url()),
            })
            .await
            .expect("get room")
            .into_inner()
            .room
            .expect("room");
        if !room.last_error.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "no poll failed while down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (room, txn, what) in [(&lobby_a, "v1", "a post"), (&dm_a, "v2", "a DM")] {
        let got = raw(
            &mxa,
            "PUT",
            &v3(&format!("rooms/{}/send/m.room.message/{txn}", enc(room))),
            Some(&ta),
            br#"{"msgtype":"m.text","body":"into the void"}"#,
        )
        .await;
        is_error(&got, 503, "M_UNKNOWN");
        assert!(
            got.1["error"]
                .as_str()
                .is_some_and(|e| e.contains("unreachable") || e.contains("refused")),
            "{what}: {got:?}"
        );
    }
    // Reading still works while the server is down: the history is the daemon's.
    assert!(room_history(&mxa, &ta, &lobby_a)
        .await
        .contains(&"before the outage".to_owned()));
    still_fine(&mxa, &ta).await;

    // It comes back: a retried send goes through (the same txn id: sent once), and both
    // clients see everything posted, each post once, and nothing refused.
    server.restart().await.expect("restart");
    mx_send_retrying(&ma, &room_of(&lobby_a), "v1", "after the outage").await;
    mx_send_retrying(&ma, &room_of(&lobby_a), "v1", "after the outage").await;
    mx_send_retrying(&mb, &room_of(&dm_b), "d3", "still there?").await;
    seen_until(
        &mb,
        &mut nb,
        &mut sb,
        "the post after the outage at bob",
        |s| {
            s.texts(&lobby_b)
                .iter()
                .any(|(_, t)| t == "after the outage")
        },
    )
    .await;
    seen_until(
        &ma,
        &mut na,
        &mut sa,
        "the DM after the outage at alice",
        |s| s.texts(&dm_a).iter().any(|(_, t)| t == "still there?"),
    )
    .await;
    let posts = [
        "hello from alice".to_owned(),
        "before the outage".to_owned(),
        "after the outage".to_owned(),
    ];
    assert_eq!(room_history(&mxa, &ta, &lobby_a).await, posts);
    assert_eq!(room_history(&mxb, &tb, &lobby_b).await, posts);
    assert_eq!(
        room_history(&mxa, &ta, &dm_a).await,
        ["psst", "psst back", "still there?"]
    );
    assert_eq!(
        room_history(&mxb, &tb, &dm_b).await,
        ["psst", "psst back", "still there?"]
    );
    still_fine(&mxa, &ta).await;
    still_fine(&mxb, &tb).await;
    da.terminate();
    db.terminate();
    n.devnet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_community_dm_requests_get_matrix_errors() {
    let f = fixture("mx-cdm-bad").await;
    let (mx, alice) = (&f.mx, &f.alice);
    let stranger = format!("15{}", "cd".repeat(32));
    let create = |body: Value| {
        let (mx, alice) = (mx.clone(), alice.clone());
        async move {
            raw(
                &mx,
                "POST",
                &v3("createRoom"),
                Some(&alice),
                body.to_string().as_bytes(),
            )
            .await
        }
    };
    // User ids that are no blinded ID (too short, not hex, another server's): not a DM.
    for bad in [
        format!("@15{}:{SERVER}", "cd".repeat(8)),
        format!("@15{}zz:{SERVER}", "cd".repeat(31)),
        format!("@{stranger}:other.org"),
        format!("@25{}:{SERVER}", "cd".repeat(32)),
    ] {
        let got = create(json!({ "invite": [bad], "is_direct": true })).await;
        is_error(&got, 400, "M_INVALID_PARAM");
    }
    // A blinded ID never met (in any case): nothing to send through, and no room appears.
    for who in [stranger.clone(), stranger.to_uppercase()] {
        let got =
            create(json!({ "invite": [format!("@{who}:{SERVER}")], "is_direct": true })).await;
        is_error(&got, 404, "M_NOT_FOUND");
        assert!(
            got.1["error"]
                .as_str()
                .is_some_and(|e| e.contains("not met")),
            "{got:?}"
        );
    }
    // A group takes Account IDs only.
    let got = create(json!({ "name": "g", "invite": [format!("@{stranger}:{SERVER}")] })).await;
    is_error(&got, 400, "M_INVALID_PARAM");
    assert!(
        got.1["error"]
            .as_str()
            .is_some_and(|e| e.contains("blinded")),
        "{got:?}"
    );
    // The room of a blinded ID never met: join finds nothing, send is not in the room.
    let room = format!("!{stranger}_alice:{SERVER}");
    let got = raw(
        mx,
        "POST",
        &v3(&format!("join/{}", enc(&room))),
        Some(alice),
        b"{}",
    )
    .await;
    is_error(&got, 404, "M_NOT_FOUND");
    for room in [
        room.clone(),
        format!("!{}_alice:{SERVER}", &stranger[..40]),
        format!("!{stranger}_bob:{SERVER}"),
    ] {
        let got = raw(
            mx,
            "PUT",
            &v3(&format!("rooms/{}/send/m.room.message/t1", enc(&room))),
            Some(alice),
            br#"{"msgtype":"m.text","body":"hi"}"#,
        )
        .await;
        is_error(&got, 403, "M_FORBIDDEN");
    }
    // A blinded ID cannot be invited into a one-to-one room.
    let got = raw(
        mx,
        "POST",
        &v3(&format!("rooms/{}/invite", enc(&f.room))),
        Some(alice),
        json!({ "user_id": format!("@{stranger}:{SERVER}") })
            .to_string()
            .as_bytes(),
    )
    .await;
    is_error(&got, 403, "M_FORBIDDEN");
    // No room and no m.direct entry came of any of it.
    let direct = get_ok(
        mx,
        alice,
        v3(&format!(
            "user/{}/account_data/m.direct",
            enc(&format!("@alice:{SERVER}"))
        )),
    )
    .await;
    assert!(
        direct.get(format!("@{stranger}:{SERVER}")).is_none(),
        "{direct}"
    );
    let (status, v) = raw(mx, "GET", &v3("joined_rooms"), Some(alice), b"").await;
    assert_eq!(status, 200);
    assert_eq!(v["joined_rooms"], json!([f.room]), "{v}");
    still_fine(mx, alice).await;
    still_fine(mx, &f.bob).await;
    f.daemon.terminate();
}
