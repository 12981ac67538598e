//! The Matrix adapter on two `sessiond` daemons on a 9-node devnet, driven by ruma-client:
//! incremental `/sync` round trips per second (timeout=0) next to the gRPC `History` call it
//! is built on, and send-to-sync latency (PUT send on daemon A → the event in a long-polling
//! `/sync` on daemon B) next to gRPC Send → Subscribe on the same daemons, with the ratios.
//!
//! Run: `cargo bench -p session-gateway --bench matrix`.

#[path = "../tests/support/daemon.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ruma::api::client::message::send_message_event;
use ruma::api::client::room::create_room;
use ruma::api::client::sync::sync_events;
use ruma::events::room::message::RoomMessageEventContent;
use ruma::{OwnedRoomId, OwnedUserId};
use session_devnet::{Devnet, DevnetConfig};
use sessiond_api::v1::{
    event, CreateIdentityRequest, ListEventsRequest, ListIdentitiesRequest, SendMessageRequest,
    SubscribeRequest,
};
use support::{bearer, clients, networked_command, Clients, Daemon, TempDir};

/// Messages per latency measurement.
const N: usize = 30;
/// How long each round-trip measurement runs.
const RUN: Duration = Duration::from_secs(3);
/// The longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(60);

const FAST_POLL: &str = r#"
[poll]
active_interval_ms = 100
idle_interval_ms = 100
idle_after_secs = 60
"#;

type Mx = ruma_client::Client<ruma_client::http_client::Hyper>;

async fn daemon(dir: &Path, manifest: &Path, config: &Path) -> Daemon {
    let (dir, cmd) = (dir.to_owned(), networked_command(dir, manifest, config));
    tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
        .await
        .expect("start")
}

async fn admin(d: &Daemon) -> Clients {
    clients(&d.channel().await, bearer(&d.admin_token))
}

async fn create(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_identity(CreateIdentityRequest { name: name.into() })
        .await
        .expect("create")
        .into_inner()
        .identity
        .expect("identity")
        .account_id
}

async fn login(addr: &str, user: &str, password: &str) -> Mx {
    let c = ruma_client::Client::builder()
        .homeserver_url(format!("http://{addr}"))
        .build::<ruma_client::http_client::Hyper>()
        .await
        .expect("versions");
    c.log_in(user, password, None, None).await.expect("login");
    c
}

async fn dm(c: &Mx, peer: &str) -> OwnedRoomId {
    let mut req = create_room::v3::Request::new();
    let peer: OwnedUserId = format!("@{peer}:localhost").try_into().expect("user id");
    req.invite = vec![peer];
    req.is_direct = true;
    c.send_request(req).await.expect("createRoom").room_id
}

async fn sync(c: &Mx, since: &str, timeout: Duration) -> sync_events::v3::Response {
    let mut req = sync_events::v3::Request::new();
    req.since = Some(since.to_owned());
    req.timeout = Some(timeout);
    c.send_request(req).await.expect("sync")
}

fn has_text(resp: &sync_events::v3::Response, text: &str) -> bool {
    resp.rooms
        .join
        .values()
        .flat_map(|r| &r.timeline.events)
        .any(|raw| raw.json().get().contains(text))
}

struct Lat {
    p50: Duration,
    p90: Duration,
}

fn lat(mut v: Vec<Duration>) -> Lat {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Lat {
        p50: at(0.5),
        p90: at(0.9),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet");
    let dir = TempDir::new("bench-matrix");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let fast = dir.path().join("fast.toml");
    std::fs::write(&fast, FAST_POLL).expect("config");

    let a = daemon(&dir.path().join("a"), &manifest, &fast).await;
    let b = daemon(&dir.path().join("b"), &manifest, &fast).await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let alice_id = create(&mut ca, "alice").await;
    let bob_id = create(&mut cb, "bob").await;
    let mxa = a.matrix.clone().expect("A's Matrix endpoint");
    let mxb = b.matrix.clone().expect("B's Matrix endpoint");
    let alice = login(&mxa, "alice", &a.admin_token).await;
    let bob = login(&mxb, "bob", &b.admin_token).await;
    // Both open the DM, so Bob's side is a joined room (not a message request).
    let room = dm(&alice, &bob_id).await;
    dm(&bob, &alice_id).await;
    let first = bob
        .send_request(sync_events::v3::Request::new())
        .await
        .expect("initial sync");
    let mut since = first.next_batch;

    println!("9-node devnet, two daemons, pollers every 100 ms; Matrix via ruma-client (hyper)");

    // /sync round trips (incremental, timeout=0) vs the gRPC History call under it.
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < RUN {
        let r = sync(&bob, &since, Duration::ZERO).await;
        since = r.next_batch;
        n += 1;
    }
    let sync_rps = f64::from(n) / started.elapsed().as_secs_f64();
    let last_seq = cb
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities[0]
        .last_seq;
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < RUN {
        cb.msgs
            .list_events(ListEventsRequest {
                identity: "bob".into(),
                after_seq: last_seq,
                page_size: 500,
                ..Default::default()
            })
            .await
            .expect("history");
        n += 1;
    }
    let history_rps = f64::from(n) / started.elapsed().as_secs_f64();
    println!("Matrix /sync (incremental, timeout=0)       {sync_rps:>8.0} req/s");
    println!("gRPC History (the call /sync makes)         {history_rps:>8.0} req/s");
    println!("/sync / History: {:.2}x", sync_rps / history_rps);

    // Send → long-polling /sync on the other daemon.
    let mut mx_lat = Vec::with_capacity(N);
    for i in 0..N {
        let text = format!("mx-{i}");
        let poll = {
            let (bob, since) = (bob.clone(), since.clone());
            let text = text.clone();
            tokio::spawn(async move {
                let mut since = since;
                loop {
                    let r = sync(&bob, &since, Duration::from_secs(30)).await;
                    since = r.next_batch.clone();
                    if has_text(&r, &text) {
                        return (Instant::now(), since);
                    }
                }
            })
        };
        let t0 = Instant::now();
        let content = RoomMessageEventContent::text_plain(&text);
        let req =
            send_message_event::v3::Request::new(room.clone(), format!("b{i}").into(), &content)
                .expect("serialize");
        alice.send_request(req).await.expect("send");
        let (t1, next) = tokio::time::timeout(DEADLINE, poll)
            .await
            .expect("the message reaches /sync in time")
            .expect("poll task");
        since = next;
        mx_lat.push(t1 - t0);
    }

    // The same with gRPC: Send on A → Subscribe on B.
    let last_seq = cb
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities[0]
        .clone();
    let (last_seq, log_epoch) = (last_seq.last_seq, last_seq.log_epoch);
    let mut stream = cb
        .msgs
        .subscribe(SubscribeRequest {
            identity: "bob".into(),
            from_seq: last_seq,
            typing: false,
            log_epoch,
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut grpc_lat = Vec::with_capacity(N);
    for i in 0..N {
        let text = format!("grpc-{i}");
        let t0 = Instant::now();
        ca.msgs
            .send_message(SendMessageRequest {
                identity: "alice".into(),
                recipient: bob_id.clone(),
                text: text.clone(),
                ..Default::default()
            })
            .await
            .expect("send");
        loop {
            let ev = tokio::time::timeout(DEADLINE, stream.message())
                .await
                .expect("in time")
                .expect("stream")
                .expect("open")
                .event
                .expect("an event");
            if matches!(&ev.kind, Some(event::Kind::Incoming(m)) if m.text == text) {
                break;
            }
        }
        grpc_lat.push(t0.elapsed());
    }
    let (m, g) = (lat(mx_lat), lat(grpc_lat));
    println!(
        "Matrix PUT send (A) → /sync long-poll (B)   p50 {:>7.1} ms   p90 {:>7.1} ms",
        ms(m.p50),
        ms(m.p90)
    );
    println!(
        "gRPC Send (A) → Subscribe (B)               p50 {:>7.1} ms   p90 {:>7.1} ms",
        ms(g.p50),
        ms(g.p90)
    );
    println!(
        "Matrix / gRPC latency: p50 {:.2}x, p90 {:.2}x",
        ms(m.p50) / ms(g.p50),
        ms(m.p90) / ms(g.p90)
    );
    drop((ca, cb));
    a.terminate();
    b.terminate();
}
