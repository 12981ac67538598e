//! The devnet community server over real sockets: the SOGS API subset directly over HTTP and
//! through a 3-hop onion v4 request, every auth status, permissions, DMs, and bad input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::RngCore as _;
use serde_json::{json, Value};
use session_devnet::community::{CommunityConfig, CommunityServer, RoomSpec};
use session_devnet::{Devnet, DevnetConfig, HttpsClient};
use session_proto::account_id::AccountId;
use session_proto::bencode::V4Request;
use session_proto::community::api::{
    poll_batch, DirectMessage, RoomMessage, RoomPaths, SubResponse,
};
use session_proto::community::{
    decrypt_dm, encode_room_message, encrypt_dm, read_room_message, sign_request, Blind15Keys,
    RequestSigner, RoomUpdate,
};
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use session_proto::onion::{build_request, Destination, EncType, Hop, PeerKey, ServerDestination};
use session_proto::protos::Content;
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A reply: status, content type, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    ctype: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON body, got {:?}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    server: &CommunityServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let tcp = TcpStream::connect(server.addr()).await.expect("connects");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{}", server.addr().port()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        T,
        send.send_request(req.body(Full::new(Bytes::from(body))).expect("request")),
    )
    .await
    .expect("in time")
    .expect("answered");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        ctype,
        body,
    }
}

/// A user of one server: identity, blinded keys.
struct User {
    keys: IdentityKeys,
    blind: Blind15Keys,
}

impl User {
    fn new(seed: u8, server: &CommunityServer) -> User {
        let keys = IdentityKeys::from_seed(&[seed; 32]);
        let blind = Blind15Keys::new(&keys, &server.pubkey());
        User { keys, blind }
    }
    fn id(&self) -> String {
        self.blind.id().to_string()
    }

    /// A signed request; `path` is sent %-encoded where needed but signed decoded.
    async fn call(
        &self,
        server: &CommunityServer,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let h = sign_request(
            RequestSigner::Blinded(&self.blind),
            method,
            path,
            &body,
            &nonce,
            now_s(),
        );
        let mut headers: Vec<(&str, &str)> = h.headers().to_vec();
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        http(server, method, &encode_path(path), &headers, body).await
    }

    /// `POST /user/<target>/<action>` (ban, unban) for one room.
    async fn user_action(
        &self,
        server: &CommunityServer,
        target: &User,
        action: &str,
        room: &str,
    ) -> Reply {
        let path = format!("/user/{}/{action}", target.id());
        self.call(server, "POST", &path, Some(json!({ "rooms": [room] })))
            .await
    }

    async fn post(&self, server: &CommunityServer, room: &str, text: &str) -> Reply {
        let content = text_content(text, Some("tester"), now_s() * 1000);
        let body = encode_room_message(&self.blind, &content);
        self.call(
            server,
            "POST",
            &format!("/room/{room}/message"),
            Some(json!(body)),
        )
        .await
    }

    /// One poll batch; returns the sub-responses.
    async fn poll(
        &self,
        server: &CommunityServer,
        room: &str,
        since: Option<i64>,
    ) -> Vec<SubResponse> {
        let paths = RoomPaths::new(room).expect("room");
        let batch = poll_batch(&paths, since, Some(None), Some(None));
        let r = self
            .call(server, "POST", "/batch", Some(json!(batch)))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).expect("batch reply")
    }
}

/// %-encodes non-ASCII bytes in a path (the emoji of a reaction), as an HTTP client does.
fn encode_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rooms() -> Vec<RoomSpec> {
    vec![
        RoomSpec::new("lobby", "Lobby").describe("Say hello"),
        RoomSpec::new("news", "News").read_only(),
    ]
}

async fn server() -> CommunityServer {
    CommunityServer::start(CommunityConfig {
        rooms: rooms(),
        ..Default::default()
    })
    .await
    .expect("starts")
}

fn messages(resp: &SubResponse) -> Vec<RoomMessage> {
    assert_eq!(resp.code, 200, "{resp:?}");
    serde_json::from_value(resp.body.clone()).expect("message rows")
}

fn body_text(c: &Content) -> &str {
    c.data_message
        .as_ref()
        .and_then(|d| d.body.as_deref())
        .unwrap_or("")
}

#[tokio::test]
async fn chat_react_delete_and_read_only_rooms_over_http() {
    let s = server().await;
    let alice = User::new(1, &s);
    let bob = User::new(2, &s);

    // Capabilities, anonymous and with `required`.
    let r = http(&s, "GET", "/capabilities", &[], vec![]).await;
    assert_eq!(
        r.json(),
        json!({"capabilities": ["blind", "reactions", "sogs"]})
    );
    let r = http(&s, "GET", "/capabilities?required=sogs,future", &[], vec![]).await;
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["missing"], json!(["future"]));
    let r = alice.call(&s, "GET", "/rooms", None).await;
    let rooms = r.json();
    assert_eq!(rooms.as_array().expect("list").len(), 2);
    assert_eq!(rooms[0]["token"], "lobby");
    assert_eq!(rooms[0]["description"], "Say hello");
    assert_eq!(rooms[1]["write"], false, "news is read-only");

    // Alice posts; Bob's poll batch reads and verifies it.
    let r = alice.post(&s, "lobby", "hello lobby").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let posted = r.json();
    assert_eq!(posted["session_id"], alice.id());
    let id = posted["id"].as_i64().expect("id");
    let polled = bob.poll(&s, "lobby", None).await;
    assert_eq!(polled.len(), 5);
    assert_eq!(polled[0].body["capabilities"][0], "blind");
    assert_eq!(polled[1].body["details"]["name"], "Lobby");
    assert_eq!(polled[1].body["write"], true);
    let rows = messages(&polled[2]);
    assert_eq!(rows.len(), 1);
    let RoomUpdate::Post(post) = read_room_message(&rows[0]).expect("verifies") else {
        panic!("a post");
    };
    assert_eq!(body_text(&post.content), "hello lobby");
    assert_eq!(post.sender, *alice.blind.id());
    assert_eq!(polled[3].code, 200, "empty inbox without a cursor");
    let mut cursor = rows[0].seqno;

    // Bob reacts (the emoji is %-encoded on the wire and signed decoded).
    let react = format!("/room/lobby/reaction/{id}/👍");
    let r = bob.call(&s, "PUT", &react, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["added"], true);
    let r = bob.call(&s, "PUT", &react, Some(json!({}))).await;
    assert_eq!(
        r.json()["added"],
        false,
        "a second identical reaction changes nothing"
    );
    let rows = messages(&alice.poll(&s, "lobby", Some(cursor)).await[2]);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].is_reaction_only(), "{:?}", rows[0]);
    let RoomUpdate::Reactions { reactions, .. } = read_room_message(&rows[0]).expect("ok") else {
        panic!("reactions");
    };
    assert_eq!(reactions["👍"].count, 1);
    assert_eq!(reactions["👍"].reactors.as_deref(), Some(&[bob.id()][..]));
    cursor = rows[0].seqno;

    // Only the author (or a moderator) deletes; the deletion reaches pollers.
    let del = format!("/room/lobby/message/{id}");
    assert_eq!(bob.call(&s, "DELETE", &del, None).await.status, 403);
    assert_eq!(alice.call(&s, "DELETE", &del, None).await.status, 200);
    assert_eq!(alice.call(&s, "DELETE", &del, None).await.status, 404);
    let rows = messages(&bob.poll(&s, "lobby", Some(cursor)).await[2]);
    assert_eq!(
        read_room_message(&rows[0]).expect("ok"),
        RoomUpdate::Deleted {
            id,
            seqno: rows[0].seqno
        }
    );
    assert_eq!(bob.call(&s, "GET", &del, None).await.status, 404);
    assert_eq!(s.post_count("lobby"), 0);

    // A read-only room refuses posts, except from moderators.
    let r = bob.post(&s, "news", "hi").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("read-only"), "{}", r.text());
    s.add_moderator(Some("news"), alice.blind.id(), false)
        .expect("room exists");
    assert_eq!(alice.post(&s, "news", "announcement").await.status, 201);
    let info = alice.call(&s, "GET", "/room/news", None).await.json();
    assert_eq!(info["moderator"], true);
    assert_eq!(info["moderators"], json!([alice.id()]));
    assert_eq!(info["default_write"], false);

    // Moderators delete others' posts and ban; a banned user can no longer read.
    let id = bob.post(&s, "lobby", "spam").await.json()["id"]
        .as_i64()
        .expect("id");
    s.add_moderator(Some("lobby"), alice.blind.id(), true)
        .expect("room");
    let r = alice
        .call(&s, "DELETE", &format!("/room/lobby/message/{id}"), None)
        .await;
    assert_eq!(r.status, 200);
    let r = alice.user_action(&s, &bob, "ban", "lobby").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = bob
        .call(&s, "GET", "/room/lobby/messages/recent", None)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(bob.post(&s, "lobby", "let me in").await.status, 403);
    let r = bob.user_action(&s, &alice, "ban", "lobby").await;
    assert_eq!(r.status, 403, "only moderators ban");
    alice.user_action(&s, &bob, "unban", "lobby").await;
    assert_eq!(bob.post(&s, "lobby", "back").await.status, 201);

    // Unknown rooms and a room deleted on the server: 404.
    assert_eq!(bob.call(&s, "GET", "/room/nope", None).await.status, 404);
    assert!(s.delete_room("lobby"));
    let polled = bob.poll(&s, "lobby", Some(0)).await;
    assert_eq!(polled[0].code, 200);
    assert_eq!(polled[1].code, 404);
    assert_eq!(polled[2].code, 404);
    s.shutdown().await;
}

fn headers_map(h: &session_proto::community::SogsAuth) -> Vec<(&'static str, String)> {
    h.headers()
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
}

#[tokio::test]
async fn auth_statuses_are_pysogs_statuses() {
    let s = server().await;
    let u = User::new(3, &s);
    let nonce = [7u8; 16];
    let signed = |path: &str, ts: u64, nonce: &[u8; 16]| {
        headers_map(&sign_request(
            RequestSigner::Blinded(&u.blind),
            "GET",
            path,
            b"",
            nonce,
            ts,
        ))
    };
    let send = |h: Vec<(&'static str, String)>, path: &'static str| {
        let s = &s;
        async move {
            let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http(s, "GET", path, &hv, vec![]).await
        }
    };
    // Good, then the same nonce again: 425.
    let h = signed("/room/lobby", now_s(), &nonce);
    assert_eq!(send(h.clone(), "/room/lobby").await.status, 200);
    let r = send(h, "/room/lobby").await;
    assert_eq!(r.status, 425, "{}", r.text());
    // Three of four headers: 400.
    let mut h = signed("/room/lobby", now_s(), &[8; 16]);
    h.pop();
    assert_eq!(send(h, "/room/lobby").await.status, 400);
    // A day and a bit off: 425.
    let r = send(
        signed("/room/lobby", now_s() - 90_000, &[9; 16]),
        "/room/lobby",
    )
    .await;
    assert_eq!(r.status, 425);
    // Signed for another path: 401.
    let r = send(signed("/room/news", now_s(), &[10; 16]), "/room/lobby").await;
    assert_eq!(r.status, 401);
    // Unblinded keys on a blinded server: 400 with the text desktop looks for.
    let h = headers_map(&sign_request(
        RequestSigner::Unblinded {
            keys: &u.keys,
            server_pk: &s.pubkey(),
        },
        "GET",
        "/room/lobby",
        b"",
        &[11; 16],
        now_s(),
    ));
    let r = send(h, "/room/lobby").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Invalid authentication: this server requires the use of blinded ids"
    );
    // Garbage header values: 400.
    let mut h = signed("/room/lobby", now_s(), &[12; 16]);
    h[0].1 = "15zz".into();
    assert_eq!(send(h, "/room/lobby").await.status, 400);
    // Anonymous: reads work, posts need a user (401).
    assert_eq!(
        http(&s, "GET", "/room/lobby/messages/recent", &[], vec![])
            .await
            .status,
        200
    );
    let r = http(
        &s,
        "POST",
        "/room/lobby/message",
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 401);
    // A globally banned user is refused before the signature is looked at: 403.
    let admin = User::new(4, &s);
    s.add_moderator(None, admin.blind.id(), true)
        .expect("global");
    let r = admin
        .call(
            &s,
            "POST",
            &format!("/user/{}/ban", u.id()),
            Some(json!({"global": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut h = signed("/room/lobby", now_s(), &[13; 16]);
    h[3].1 = base64_of(&[0u8; 64]);
    let r = send(h, "/room/lobby").await;
    assert_eq!((r.status, r.text().as_str()), (403, "Banned"));
    s.shutdown().await;
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_breaks_nothing() {
    let s = server().await;
    let u = User::new(5, &s);
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        (
            "POST",
            "/room/lobby/message",
            Some(json!({"data": "***", "signature": base64_of(&[0; 64])})),
            400,
        ),
        (
            "POST",
            "/room/lobby/message",
            Some(json!({"data": "AAAA", "signature": base64_of(&[0; 63])})),
            400,
        ),
        (
            "POST",
            "/room/lobby/message",
            Some(json!({"nothing": 1})),
            400,
        ),
        ("POST", "/room/lobby/message", Some(json!([1, 2])), 400),
        ("POST", "/batch", Some(json!({"not": "a list"})), 400),
        ("POST", "/batch", Some(json!([{"method": "GET"}])), 400),
        ("GET", "/room/lobby/messages/since/x", None, 404),
        ("GET", "/room/lobby/messages/since/0?limit=0", None, 400),
        ("GET", "/room/lobby/messages/since/0?limit=x", None, 400),
        ("GET", "/room/lobby/message/99999", None, 404),
        (
            "PUT",
            "/room/lobby/reaction/1/abcdefghijklm",
            Some(json!({})),
            400,
        ),
        ("PUT", "/room/lobby/reaction/99999/x", Some(json!({})), 404),
        ("POST", "/inbox/05aa", Some(json!({"message": "AAAA"})), 400),
        (
            "POST",
            "/user/zz/ban",
            Some(json!({"rooms": ["lobby"]})),
            400,
        ),
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/rooms", None, 404),
    ];
    for (method, path, body, want) in cases {
        let r = u.call(&s, method, path, body).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
        assert!(
            !r.body.is_empty() || want == 304,
            "{method} {path} says why"
        );
    }
    // A JSON body without the JSON content type.
    let body = json!({"data": "AAAA", "signature": base64_of(&[0; 64])}).to_string();
    let h = sign_request(
        RequestSigner::Blinded(&u.blind),
        "POST",
        "/room/lobby/message",
        body.as_bytes(),
        &[1; 16],
        now_s(),
    );
    let r = http(
        &s,
        "POST",
        "/room/lobby/message",
        &h.headers(),
        body.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Bad %-encoding.
    assert_eq!(http(&s, "GET", "/room/%zz", &[], vec![]).await.status, 400);
    // A batch mixing good and bad sub-requests answers each.
    let r = u
        .call(
            &s,
            "POST",
            "/batch",
            Some(json!([
                {"method": "GET", "path": "/room/lobby"},
                {"method": "GET", "path": "room/lobby"},
                {"method": "GET", "path": "/room/nope"},
                {"method": "POST", "path": "/batch", "json": []},
            ])),
        )
        .await;
    let codes: Vec<u64> = r
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["code"].as_u64().expect("code"))
        .collect();
    assert_eq!(codes, [200, 400, 404, 400]);
    // `/sequence` stops after the first failure.
    let r = u
        .call(
            &s,
            "POST",
            "/sequence",
            Some(json!([
                {"method": "GET", "path": "/room/nope"},
                {"method": "GET", "path": "/room/lobby"},
            ])),
        )
        .await;
    assert_eq!(r.json().as_array().expect("list").len(), 1);
    // Rate limit: the sixth post within 16 s is refused.
    for i in 0..5 {
        assert_eq!(u.post(&s, "lobby", &format!("{i}")).await.status, 201);
    }
    let r = u.post(&s, "lobby", "one too many").await;
    assert_eq!(r.status, 429);
    // The server is still fine for everyone else.
    assert_eq!(
        User::new(6, &s)
            .post(&s, "lobby", "still here")
            .await
            .status,
        201
    );
    assert!(r.ctype.starts_with("text/plain"));
    s.shutdown().await;
}

#[tokio::test]
async fn community_dms_both_ways() {
    let s = server().await;
    let alice = User::new(7, &s);
    let bob = User::new(8, &s);
    // Bob has never used the server: 404.
    let wire = encrypt_dm(&mut rand::rngs::OsRng, &alice.blind, bob.blind.id(), b"x").expect("enc");
    let path = format!("/inbox/{}", bob.id());
    let r = alice
        .call(
            &s,
            "POST",
            &path,
            Some(json!({"message": base64_of(&wire)})),
        )
        .await;
    assert_eq!(r.status, 404);
    // Once he has, the DM goes through.
    assert_eq!(bob.call(&s, "GET", "/inbox", None).await.json(), json!([]));
    let content = text_content("psst", None, now_s() * 1000);
    let wire = encrypt_dm(
        &mut rand::rngs::OsRng,
        &alice.blind,
        bob.blind.id(),
        &prost::Message::encode_to_vec(&content),
    )
    .expect("enc");
    let r = alice
        .call(
            &s,
            "POST",
            &path,
            Some(json!({"message": base64_of(&wire)})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sent: DirectMessage = serde_json::from_slice(&r.body).expect("reply");
    assert_eq!(sent.sender, alice.id());
    assert!(sent.message.is_none());

    let inbox: Vec<DirectMessage> =
        serde_json::from_slice(&bob.call(&s, "GET", "/inbox", None).await.body).expect("rows");
    assert_eq!(inbox.len(), 1);
    let dm = &inbox[0];
    let bytes = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(dm.message.as_deref().expect("message"))
            .expect("b64")
    };
    let sender = AccountId::parse_raw(&dm.sender).expect("sender");
    let recipient = AccountId::parse_raw(&dm.recipient).expect("recipient");
    let opened = decrypt_dm(&bob.blind, &sender, &recipient, &bytes).expect("opens");
    assert_eq!(
        opened.sender,
        *alice.keys.account_id(),
        "the real Account ID is learnt"
    );
    let c: Content = prost::Message::decode(opened.content.as_slice()).expect("content");
    assert_eq!(body_text(&c), "psst");
    // Nothing newer: 304 with an empty body.
    let r = bob
        .call(&s, "GET", &format!("/inbox/since/{}", dm.id), None)
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // Alice reads her outbox and opens her own DM.
    let out: Vec<DirectMessage> =
        serde_json::from_slice(&alice.call(&s, "GET", "/outbox", None).await.body).expect("rows");
    assert_eq!(out.len(), 1);
    assert!(decrypt_dm(&alice.blind, &sender, &recipient, &bytes).is_ok());
    // Bob clears his inbox.
    assert_eq!(
        bob.call(&s, "DELETE", "/inbox", None).await.json(),
        json!({"deleted": 1})
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_server_going_down_and_back_loses_nothing() {
    let s = server().await;
    let u = User::new(9, &s);
    assert_eq!(u.post(&s, "lobby", "before").await.status, 201);
    s.stop().await;
    assert!(
        TcpStream::connect(s.addr()).await.is_err(),
        "down means refused"
    );
    s.restart().await.expect("same port again");
    let rows = messages(&u.poll(&s, "lobby", Some(0)).await[2]);
    assert_eq!(rows.len(), 1);
    let RoomUpdate::Post(p) = read_room_message(&rows[0]).expect("verifies") else {
        panic!("post");
    };
    assert_eq!(body_text(&p.content), "before");
    s.shutdown().await;
}

/// Sends a v4 request through a 3-hop path of the devnet to its community server.
async fn via_onion(
    d: &Devnet,
    c: &HttpsClient,
    req: &V4Request,
) -> (u16, Option<session_proto::bencode::V4Response>) {
    let s = d.community().expect("community server");
    let hops: Vec<Hop> = (0..3)
        .map(|i| Hop::new(d.node(i).x25519(), d.node(i).ed25519()))
        .collect();
    let dest = Destination::Server(ServerDestination {
        key: PeerKey::new(s.pubkey()),
        host: s.url().host().to_owned(),
        target: "/oxen/v4/lsrpc".into(),
        method: "POST".into(),
        protocol: "http".into(),
        port: Some(s.url().port()),
    });
    let onion = build_request(
        &mut rand::rngs::OsRng,
        EncType::XChaCha20,
        &hops,
        &dest,
        &req.encode(),
    )
    .expect("builds");
    let r = c
        .post(
            &format!("{}/onion_req/v2", d.node(0).url()),
            &[],
            onion.body,
            T,
        )
        .await
        .expect("guard answers");
    if r.status != 200 {
        return (r.status, None);
    }
    (
        200,
        Some(onion.reply.open_v4_reply(&r.body).expect("reply opens")),
    )
}

fn v4(u: &User, method: &str, endpoint: &str, body: Option<Value>) -> V4Request {
    let body = body.map(|b| b.to_string().into_bytes());
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let h = sign_request(
        RequestSigner::Blinded(&u.blind),
        method,
        endpoint,
        body.as_deref().unwrap_or_default(),
        &nonce,
        now_s(),
    );
    let mut headers: std::collections::BTreeMap<String, String> = h
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if body.is_some() {
        headers.insert("Content-Type".into(), "application/json".into());
    }
    V4Request {
        method: method.into(),
        endpoint: endpoint.into(),
        headers,
        body,
    }
}

#[tokio::test]
async fn onion_v4_through_the_devnet_snodes() {
    let d = Devnet::start(DevnetConfig {
        nodes: 4,
        swarm_size: 2,
        community: Some(CommunityConfig {
            rooms: rooms(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("devnet starts");
    let s = d.community().expect("server");
    let c = HttpsClient::new();
    let u = User::new(10, s);

    // Post, react (emoji unencoded in the endpoint) and poll, all through the onion.
    let content = text_content("via onion", None, now_s() * 1000);
    let post = encode_room_message(&u.blind, &content);
    let (status, reply) = via_onion(
        &d,
        &c,
        &v4(&u, "POST", "/room/lobby/message", Some(json!(post))),
    )
    .await;
    assert_eq!(status, 200);
    let reply = reply.expect("reply");
    assert_eq!(reply.code, 201, "{}", String::from_utf8_lossy(&reply.body));
    let id = serde_json::from_slice::<Value>(&reply.body).expect("json")["id"]
        .as_i64()
        .expect("id");
    let (_, reply) = via_onion(
        &d,
        &c,
        &v4(
            &u,
            "PUT",
            &format!("/room/lobby/reaction/{id}/🎉"),
            Some(json!({})),
        ),
    )
    .await;
    assert_eq!(reply.expect("reply").code, 200);
    let batch = poll_batch(
        &RoomPaths::new("lobby").expect("room"),
        Some(0),
        Some(None),
        None,
    );
    let (_, reply) = via_onion(&d, &c, &v4(&u, "POST", "/batch", Some(json!(batch)))).await;
    let reply = reply.expect("reply");
    assert_eq!(reply.code, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let subs: Vec<SubResponse> = serde_json::from_slice(&reply.body).expect("batch");
    let rows = messages(&subs[2]);
    let RoomUpdate::Post(p) = read_room_message(&rows[0]).expect("verifies") else {
        panic!("post");
    };
    assert_eq!(body_text(&p.content), "via onion");
    assert_eq!(p.reactions["🎉"].you, Some(true));
    // Statuses travel inside the reply: a read-only room's 403, an unknown room's 404.
    let (_, reply) = via_onion(
        &d,
        &c,
        &v4(&u, "POST", "/room/news/message", Some(json!(post))),
    )
    .await;
    assert_eq!(reply.expect("reply").code, 403);
    let (_, reply) = via_onion(&d, &c, &v4(&u, "GET", "/room/nope", None)).await;
    assert_eq!(reply.expect("reply").code, 404);
    // Junk to the server's v4 endpoint: 400, and the server keeps serving.
    let r = c
        .post(
            &format!("http://127.0.0.1:{}/oxen/v4/lsrpc", s.addr().port()),
            &[],
            b"junk".to_vec(),
            T,
        )
        .await
        .expect("answers");
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid ciphertext"));
    let (_, reply) = via_onion(&d, &c, &v4(&u, "GET", "/room/lobby", None)).await;
    assert_eq!(reply.expect("reply").code, 200);
    d.shutdown().await;
}
