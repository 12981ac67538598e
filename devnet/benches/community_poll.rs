//! Benchmark: one community room poll (the signed `/batch` of capabilities, pollInfo, messages
//! since 0 (50 posts), inbox and outbox) sent through a 3-hop onion v4 request vs directly over
//! HTTP to the devnet's community server, in the same run; prints polls/s for each and the
//! ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore as _;
use session_devnet::community::{CommunityConfig, RoomSpec};
use session_devnet::{Devnet, DevnetConfig};
use session_net::HttpsTransport;
use session_proto::bencode::V4Request;
use session_proto::community::api::{poll_batch, RoomPaths};
use session_proto::community::{
    encode_room_message, sign_request, Blind15Keys, RequestSigner, SogsAuth,
};
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use session_proto::onion::{build_request, Destination, EncType, Hop, PeerKey, ServerDestination};

const T: Duration = Duration::from_secs(10);
/// Concurrent pollers per mode.
const CONCURRENCY: usize = 4;
/// Time spent measuring each mode per round.
const RUN: Duration = Duration::from_millis(1500);
/// Posts in the room.
const POSTS: usize = 50;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn signed(keys: &Blind15Keys, path: &str, body: &[u8]) -> SogsAuth {
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    sign_request(
        RequestSigner::Blinded(keys),
        "POST",
        path,
        body,
        &nonce,
        now_s(),
    )
}

/// One poll; true if the server answered 200 with five sub-responses.
async fn poll(c: &HttpsTransport, d: &Devnet, keys: &Blind15Keys, onion: bool) -> bool {
    let s = d.community().expect("community server");
    let batch = poll_batch(
        &RoomPaths::new("lobby").expect("room"),
        Some(0),
        Some(None),
        Some(None),
    );
    let body = serde_json::to_vec(&batch).expect("batch serialises");
    let auth = signed(keys, "/batch", &body);
    let (code, reply) = if onion {
        let mut headers: std::collections::BTreeMap<String, String> = auth
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.insert("Content-Type".into(), "application/json".into());
        let v4 = V4Request {
            method: "POST".into(),
            endpoint: "/batch".into(),
            headers,
            body: Some(body),
        };
        let hops: Vec<Hop> = (0..3)
            .map(|i| Hop::new(d.node(i).x25519(), d.node(i).ed25519()))
            .collect();
        let dest = Destination::Server(ServerDestination {
            key: PeerKey::new(s.pubkey()),
            host: "127.0.0.1".into(),
            target: "/oxen/v4/lsrpc".into(),
            method: "POST".into(),
            protocol: "http".into(),
            port: Some(s.addr().port()),
        });
        let Ok(req) = build_request(
            &mut rand::rngs::OsRng,
            EncType::XChaCha20,
            &hops,
            &dest,
            &v4.encode(),
        ) else {
            return false;
        };
        let url = format!("{}/onion_req/v2", d.node(0).url());
        let Ok(r) = c.post_url(&url, &[], req.body, T).await else {
            return false;
        };
        match req.reply.open_v4_reply(&r.body) {
            Ok(v) => (v.code, v.body),
            Err(_) => return false,
        }
    } else {
        let url = format!("{}/batch", s.url());
        let headers = auth.headers();
        let Ok(r) = c.post_url(&url, &headers, body, T).await else {
            return false;
        };
        (r.status, r.body.to_vec())
    };
    code == 200
        && serde_json::from_slice::<Vec<serde_json::Value>>(&reply).is_ok_and(|v| v.len() == 5)
}

/// Polls/s over `RUN` with `CONCURRENCY` pollers.
async fn measure(d: &Arc<Devnet>, users: &Arc<Vec<Blind15Keys>>, onion: bool) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CONCURRENCY {
        let (d, users, done, failed) = (d.clone(), users.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let c = HttpsTransport::default();
            while start.elapsed() < RUN {
                if poll(&c, &d, &users[i], onion).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let f = failed.load(Ordering::Relaxed);
    assert_eq!(
        f,
        0,
        "{f} polls failed ({})",
        if onion { "onion" } else { "direct" }
    );
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to time then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let d = Arc::new(
            Devnet::start(DevnetConfig {
                nodes: 4,
                swarm_size: 2,
                community: Some(CommunityConfig {
                    rooms: vec![RoomSpec::new("lobby", "Lobby")],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("devnet starts"),
        );
        let s = d.community().expect("server");
        let users: Arc<Vec<Blind15Keys>> = Arc::new(
            (0..CONCURRENCY as u8)
                .map(|i| Blind15Keys::new(&IdentityKeys::from_seed(&[i + 1; 32]), &s.pubkey()))
                .collect(),
        );
        // Fill the room (moderators are not rate limited).
        let poster = Blind15Keys::new(&IdentityKeys::from_seed(&[200; 32]), &s.pubkey());
        s.add_moderator(Some("lobby"), poster.id(), true).expect("room");
        let c = HttpsTransport::default();
        for i in 0..POSTS {
            let content = text_content(&format!("post {i} with some ordinary text"), None, now_s() * 1000);
            let body = serde_json::to_vec(&encode_room_message(&poster, &content)).expect("json");
            let auth = signed(&poster, "/room/lobby/message", &body);
            let r = c
                .post_url(&format!("{}/room/lobby/message", s.url()), &auth.headers(), body, T)
                .await
                .expect("posts");
            assert_eq!(r.status, 201, "{}", r.text());
        }
        let (mut direct, mut onion) = (0.0, 0.0);
        for _ in 0..2 {
            direct += measure(&d, &users, false).await / 2.0;
            onion += measure(&d, &users, true).await / 2.0;
        }
        println!(
            "community poll ({POSTS} posts, {CONCURRENCY} pollers): direct HTTP {direct:.0} polls/s, \
             3-hop onion v4 {onion:.0} polls/s; ratio onion/direct throughput = {:.2}",
            onion / direct
        );
        if let Ok(d) = Arc::try_unwrap(d) {
            d.shutdown().await;
        }
    });
}
