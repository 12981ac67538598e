//! Two `sessiond` daemons on a 9-node devnet: messages/s and p50/p99 delivery latency (Send on
//! one daemon → Subscribe event on the other), next to the same sealed messages stored and
//! retrieved with the bare network client in the same run; then the daemon's idle resident
//! memory with 1 and with 100 identities.
//!
//! Run: `cargo bench -p session-gateway --bench daemon`.

#[path = "../tests/support/daemon.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use session_devnet::{Devnet, DevnetConfig};
use session_net::{MemoryPoolStore, NetClient, NetConfig};
use session_proto::keys::IdentityKeys;
use session_proto::message;
use session_proto::storage_rpc::UserPubkey;
use sessiond_api::v1::{event, CreateIdentityRequest, SendMessageRequest, SubscribeRequest};
use support::{bearer, clients, networked_command, Clients, Daemon, TempDir};

/// Messages per measurement.
const N: usize = 100;
/// Bare-client operations in flight, and Sends in flight to the daemon (its sender runs up to
/// 32 requests).
const CONCURRENCY: usize = 8;
/// The longest any measurement may take.
const DEADLINE: Duration = Duration::from_secs(120);

const FAST_POLL: &str = r#"
[poll]
active_interval_ms = 100
idle_interval_ms = 100
idle_after_secs = 60
"#;

struct Stats {
    per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        per_s: lat.len() as f64 / wall.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<44} {:>7.1} msg/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        s.per_s,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

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

/// N messages alice → bob through the daemons: Send them ([`CONCURRENCY`] in flight) while
/// reading bob's stream, each timed from its Send to its event.
async fn through_daemons(ca: &mut Clients, cb: &mut Clients, bob: &str) -> Stats {
    let mut stream = cb
        .msgs
        .subscribe(SubscribeRequest {
            identity: "bob".into(),
            from_seq: 0,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let start = Instant::now();
    // As many Sends in flight as the bare client has operations (they share commits).
    let sent_at: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENCY {
        let (mut msgs, bob, sent_at) = (ca.msgs.clone(), bob.to_owned(), Arc::clone(&sent_at));
        tasks.spawn(async move {
            let mut i = t;
            while i < N {
                let text = format!("bench {i}");
                let at = Instant::now();
                sent_at.lock().expect("lock").insert(text.clone(), at);
                msgs.send_message(SendMessageRequest {
                    identity: "alice".into(),
                    recipient: bob.clone(),
                    text,
                    ..Default::default()
                })
                .await
                .expect("send");
                i += CONCURRENCY;
            }
        });
    }

    let mut lat = Vec::with_capacity(N);
    while lat.len() < N {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let ev = tokio::time::timeout(left, stream.message())
            .await
            .expect("all messages arrive before the deadline")
            .expect("stream")
            .expect("stream open")
            .event
            .expect("an event");
        if let Some(event::Kind::Incoming(m)) = ev.kind {
            // Read while the Sends go on, so a message is timed when it arrives.
            if let Some(t) = sent_at.lock().expect("lock").remove(&m.text) {
                lat.push(t.elapsed());
            }
        }
    }
    let wall = start.elapsed();
    while let Some(r) = tasks.join_next().await {
        r.expect("send task");
    }
    stats(lat, wall)
}

/// The same kind of messages with the bare client: seal, store in bob's swarm, retrieve
/// (polling every 100 ms like the daemons) until it is there.
async fn through_bare_client(seeds: Vec<String>) -> Stats {
    let client = NetClient::with_https(NetConfig::devnet(seeds), Arc::new(MemoryPoolStore::new()));
    client.bootstrap().await.expect("bootstrap");
    let alice = Arc::new(IdentityKeys::generate(&mut OsRng));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENCY {
        let (client, alice) = (client.clone(), Arc::clone(&alice));
        tasks.spawn(async move {
            // One recipient per task, so "until it is there" is about this task's message.
            let bob = IdentityKeys::generate(&mut OsRng);
            let account = UserPubkey(*bob.account_id().as_bytes());
            let mut last_hash: Option<String> = None;
            let mut lat = Vec::new();
            let mut i = t;
            while i < N {
                let s = Instant::now();
                let ts = session_gateway::rpc::now_ms();
                let content = message::text_content(&format!("bench {i}"), None, ts);
                let data =
                    message::encrypt_message(&alice, bob.account_id(), &content, ts, &mut OsRng)
                        .expect("seal");
                let stored = client
                    .store(&account, 0, &data, 600_000, &session_net::Auth::None)
                    .await
                    .expect("bare store");
                loop {
                    let r = client
                        .retrieve(
                            &account,
                            0,
                            last_hash.as_deref(),
                            &session_net::Auth::Account(bob.signing_key().clone()),
                        )
                        .await
                        .expect("bare retrieve");
                    if let Some(m) = r.messages.last() {
                        last_hash = Some(m.hash.clone());
                    }
                    if r.messages.iter().any(|m| m.hash == stored.hash) {
                        break;
                    }
                    assert!(s.elapsed() < DEADLINE, "bare message {i} never arrived");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                lat.push(s.elapsed());
                i += CONCURRENCY;
            }
            lat
        });
    }
    let mut all = Vec::with_capacity(N);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("bare task"));
    }
    stats(all, start.elapsed())
}

#[tokio::main]
async fn main() {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet");
    let dir = TempDir::new("bench-daemon");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let fast = dir.path().join("fast.toml");
    std::fs::write(&fast, FAST_POLL).expect("config");
    let defaults = dir.path().join("defaults.toml");
    std::fs::write(&defaults, "").expect("config");

    let a = daemon(&dir.path().join("a"), &manifest, &fast).await;
    let b = daemon(&dir.path().join("b"), &manifest, &fast).await;
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;

    println!(
        "9-node devnet, {N} one-to-one text messages, {CONCURRENCY} in flight, pollers every \
         100 ms"
    );
    let bare = through_bare_client(devnet.seeds()).await;
    let via = through_daemons(&mut ca, &mut cb, &bob).await;
    print(
        &format!("bare NetClient seal+store→retrieve (conc {CONCURRENCY})"),
        &bare,
    );
    print(
        &format!("daemon Send → peer daemon Subscribe (conc {CONCURRENCY})"),
        &via,
    );
    println!(
        "daemon / bare: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        via.per_s / bare.per_s,
        via.p50.as_secs_f64() / bare.p50.as_secs_f64(),
        via.p99.as_secs_f64() / bare.p99.as_secs_f64()
    );
    drop((ca, cb));
    a.terminate();
    b.terminate();

    // Idle memory, default poll intervals.
    let m = daemon(&dir.path().join("m"), &manifest, &defaults).await;
    let mut cm = admin(&m).await;
    create(&mut cm, "id-0").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let one = vm_rss_kib(m.child.id());
    for i in 1..100 {
        create(&mut cm, &format!("id-{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hundred = vm_rss_kib(m.child.id());
    println!(
        "idle RSS: 1 identity {:.1} MiB (goal < 20), 100 identities {:.1} MiB (goal < 40); \
         ratio {:.2}x",
        one as f64 / 1024.0,
        hundred as f64 / 1024.0,
        hundred as f64 / one as f64
    );
    drop(cm);
    m.terminate();
    devnet.shutdown().await;
}
