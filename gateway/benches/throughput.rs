//! Throughput of the daemon's hot paths, each as a ratio to a baseline measured in the same run
//! (the machine is shared, so absolute numbers are noisy; the ratios are what to compare).
//!
//! - `send`: gRPC `Send` on an offline daemon, sequential and with 64 in flight (group commit:
//!   concurrent Sends share one durable transaction), next to `WhoAmI` (a trivial authenticated
//!   call) sequentially and with 64 in flight (the ceiling of any call on the machine).
//! - `batch`: 100 messages to one account on a 9-node devnet, from Send to every message's
//!   `SENT`, with the sender's batches (`outbox.batch_max = 20`: up to 20 stores per onion
//!   request) next to single stores (`batch_max = 1`), two daemons in the same run.
//! - `latency`: two identities on one daemon, one message at a time: Send to the other's
//!   Subscribe event (through the devnet: the sender's success wakes the recipient's poller),
//!   p50 next to the active poll interval.
//! - `idle`: 1,000 identities on one daemon (9-node devnet), all dormant: the daemon's resident
//!   memory, CPU per minute and onion requests per minute (from its `/metrics`), next to the
//!   same daemon with one identity.
//!
//! Run: `cargo bench -p session-gateway --bench throughput [-- send]` (no argument: all).

#[path = "../tests/support/daemon.rs"]
mod support;

use std::time::{Duration, Instant};

use sessiond_api::v1::{
    event, CreateIdentityRequest, DeliveryState, SendMessageRequest, SubscribeRequest,
    WhoAmIRequest,
};
use support::{bearer, clients, net, networked_command, some_account_id, Clients, Daemon, TempDir};

/// Calls per Send measurement.
const SENDS: usize = 640;
/// Calls per WhoAmI measurement.
const WHOAMIS: usize = 2_000;
/// Sends in flight in the concurrent measurement.
const IN_FLIGHT: usize = 64;

fn rate(n: usize, wall: Duration) -> f64 {
    n as f64 / wall.as_secs_f64()
}

async fn who_am_i(c: &mut Clients, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        c.ids.who_am_i(WhoAmIRequest {}).await.expect("whoami");
    }
    rate(n, start.elapsed())
}

/// The crypto every Send does, alone, on this thread, ms per Send: the message sealed for the
/// recipient and its sync copy sealed for the sender's own swarm (the other devices of the
/// account), as `session_proto::message::encrypt_message` does them. The fastest of 3 batches.
fn seals_per_send_ms(n: usize) -> f64 {
    use session_proto::account_id::AccountId;
    use session_proto::keys::IdentityKeys;
    use session_proto::message::{encrypt_message, text_content};
    let alice = IdentityKeys::from_seed(&[1; 32]);
    let bob: AccountId = some_account_id(7).parse().expect("an account ID");
    let content = text_content("bench 123", None, 1_700_000_000_000);
    let mut rng = rand::rngs::OsRng;
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                for to in [&bob, alice.account_id()] {
                    let sealed = encrypt_message(&alice, to, &content, 1_700_000_000_000, &mut rng)
                        .expect("seal");
                    std::hint::black_box(sealed);
                }
            }
            start.elapsed().as_secs_f64() * 1e3 / n as f64
        })
        .fold(f64::MAX, f64::min)
}

/// WhoAmI with `in_flight` calls at a time: what any authenticated call can reach on this machine.
async fn who_am_i_concurrent(c: &Clients, n: usize, in_flight: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..in_flight {
        let mut ids = c.ids.clone();
        tasks.spawn(async move {
            let mut i = t;
            while i < n {
                ids.who_am_i(WhoAmIRequest {}).await.expect("whoami");
                i += in_flight;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("whoami task");
    }
    rate(n, start.elapsed())
}

fn send_request(i: usize) -> SendMessageRequest {
    SendMessageRequest {
        identity: "alice".into(),
        recipient: some_account_id(7),
        text: format!("bench {i}"),
        ..Default::default()
    }
}

async fn send_sequential(c: &mut Clients, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        c.msgs.send_message(send_request(i)).await.expect("send");
    }
    rate(n, start.elapsed())
}

async fn send_concurrent(c: &Clients, n: usize, in_flight: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..in_flight {
        let mut msgs = c.msgs.clone();
        tasks.spawn(async move {
            let mut i = t;
            while i < n {
                msgs.send_message(send_request(i)).await.expect("send");
                i += in_flight;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("send task");
    }
    rate(n, start.elapsed())
}

/// The floor under a durable write on this disk: one small redb transaction committed (fsync)
/// at a time, in the daemon's data dir's file system. Per second.
fn durable_commits(dir: &std::path::Path, n: usize) -> f64 {
    const T: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("t");
    let db = redb::Database::create(dir.join("floor.redb")).expect("db");
    let start = Instant::now();
    for i in 0..n {
        let tx = db.begin_write().expect("tx");
        tx.open_table(T)
            .expect("table")
            .insert(i as u64, [0u8; 200].as_slice())
            .expect("insert");
        tx.commit().expect("commit");
    }
    rate(n, start.elapsed())
}

/// The disk's own floor: one 4 KiB write and `File::sync_data` at a time on a file in the data
/// dir's file system (what one durable commit needs at least once). Per second.
fn fsyncs(dir: &std::path::Path, n: usize) -> f64 {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("fsync.bin"))
        .expect("fsync file");
    let page = [7u8; 4096];
    let start = Instant::now();
    for i in 0..n {
        f.seek(SeekFrom::Start((i % 16) as u64 * 4096))
            .expect("seek");
        f.write_all(&page).expect("write");
        f.sync_data().expect("sync_data");
    }
    rate(n, start.elapsed())
}

/// The load average over the last minute, from `/proc/loadavg` (the machine is shared).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn send() {
    let dir = TempDir::new("bench-send");
    let data = dir.path().join("d");
    // Room for every Send of the rounds: an offline daemon sends none of them.
    std::fs::create_dir_all(dir.path()).expect("dir");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, "[outbox]\nmax_queued = 1000000\n").expect("config");
    let mut cmd = support::run_command(&data);
    cmd.arg("--config").arg(&config);
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start");
    let mut c = clients(&d.channel().await, bearer(&d.admin_token));
    c.ids
        .create_identity(CreateIdentityRequest {
            name: "alice".into(),
        })
        .await
        .expect("create");
    // Warm up the connection and the store.
    who_am_i(&mut c, 100).await;
    send_sequential(&mut c, 20).await;
    println!("offline daemon: gRPC Send (durable: one fsync'd commit answers each call)");
    // Interleaved rounds, so each kind sees the same load on the machine; the best round of each.
    let (mut who, mut seq, mut conc, mut who_conc) = (0f64, 0f64, 0f64, 0f64);
    let (mut floors, mut disks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    // CPU (daemon, this client) per concurrent Send, ms: the cheapest round's.
    let (mut cpu_daemon, mut cpu_client) = (f64::MAX, f64::MAX);
    let floor_dir = dir.path().to_owned();
    let pid = d.child.id();
    for round in 1..=3 {
        let w = who_am_i(&mut c, WHOAMIS).await;
        who_conc = who_conc.max(who_am_i_concurrent(&c, WHOAMIS, IN_FLIGHT).await);
        let s = send_sequential(&mut c, SENDS / 4).await;
        let (d0, c0) = (cpu_ticks(pid), cpu_ticks(std::process::id()));
        let k = send_concurrent(&c, SENDS, IN_FLIGHT).await;
        let per_send = |t0: u64, t1: u64| (t1 - t0) as f64 * 10.0 / SENDS as f64;
        cpu_daemon = cpu_daemon.min(per_send(d0, cpu_ticks(pid)));
        cpu_client = cpu_client.min(per_send(c0, cpu_ticks(std::process::id())));
        let fd = floor_dir.clone();
        let (f, y) = tokio::task::spawn_blocking(move || {
            (durable_commits(&fd, SENDS / 4), fsyncs(&fd, SENDS / 4))
        })
        .await
        .expect("floor");
        println!(
            "round {round} (load {}): WhoAmI {w:>7.0}/s   Send sequential {s:>6.0}/s   \
             Send {IN_FLIGHT} in flight {k:>6.0}/s   bare redb commits {f:>6.0}/s   \
             write+sync_data {y:>6.0}/s",
            load()
        );
        (who, seq, conc) = (who.max(w), seq.max(s), conc.max(k));
        ratios.push(k / s);
        floors.push(f);
        disks.push(y);
    }
    // The disk's rates vary with the other tenants' writes (a round can see a sync_data that
    // returns at once): the median round's.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (floor, disk) = (median(&mut floors), median(&mut disks));
    println!(
        "Send {IN_FLIGHT} in flight / sequential: {:.1}x best rounds, {:.1}x median of the \
         rounds' own ratios (goal >= 10x);   sequential Send / WhoAmI: {:.2}x (goal >= 0.5x)",
        conc / seq,
        median(&mut ratios),
        seq / who,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU per Send with {IN_FLIGHT} in flight: daemon {cpu_daemon:.2} ms, this gRPC client \
         {cpu_client:.2} ms: {cores} cores bound it at {:.0}/s (= {:.1}x the best sequential \
         rate) on an idle machine; reached {:.0}/s",
        cores as f64 * 1e3 / (cpu_daemon + cpu_client),
        cores as f64 * 1e3 / (cpu_daemon + cpu_client) / seq,
        conc
    );
    println!(
        "the physical bound of a sequential durable Send: one sync_data each, {disk:.0}/s \
         ({:.2} ms) = {:.2}x WhoAmI; sequential Send reaches {:.2}x of it, a bare redb commit \
         {:.2}x of it (redb 2 commits with one sync_data: no two-phase commit)",
        1e3 / disk,
        disk / who,
        seq / disk,
        floor / disk
    );
    let seals = tokio::task::spawn_blocking(|| seals_per_send_ms(SENDS / 4))
        .await
        .expect("seals");
    println!(
        "the crypto of a Send alone (2 seals: recipient and sync copy): {seals:.3} ms; {cores} \
         cores bound Sends at {:.0}/s with nothing else = {:.1}x the best sequential rate (goal \
         10x)",
        cores as f64 * 1e3 / seals,
        cores as f64 * 1e3 / seals / seq
    );
    // A sequential Send is at least a call's round trip, its seals and one sync_data, in turn.
    let floor_ms = 1e3 / who + seals + 1e3 / disk;
    println!(
        "the floor of a sequential Send: a call's round trip {:.3} ms + its seals {seals:.3} ms + \
         one sync_data {:.3} ms = {floor_ms:.3} ms: at most {:.0}/s = {:.2}x WhoAmI (goal >= \
         0.5x); reached {seq:.0}/s",
        1e3 / who,
        1e3 / disk,
        1e3 / floor_ms,
        1e3 / floor_ms / who
    );
    // Together the two goals ask for Send with 64 in flight >= 10 x 0.5 = 5x sequential WhoAmI.
    println!(
        "both goals together: Send {IN_FLIGHT} in flight >= 5x sequential WhoAmI = {:.0}/s; \
         WhoAmI itself with {IN_FLIGHT} in flight (the ceiling of any authenticated call here): \
         {who_conc:.0}/s = {:.1}x sequential WhoAmI",
        5.0 * who,
        who_conc / who
    );
    drop(c);
    d.terminate();
}

/// Messages in the batch measurement.
const BATCHED: usize = 100;
/// Messages in the latency measurement.
const LATENCY_MSGS: usize = 30;
/// The active poll interval of the latency measurement (idle is the same, so only the wake-up
/// can make delivery faster than it).
const POLL_MS: u64 = 1_000;
/// The longest any devnet measurement may take.
const DEADLINE: Duration = Duration::from_secs(120);

async fn networked(dir: &std::path::Path, manifest: &std::path::Path, config: &str) -> Daemon {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("sessiond.toml");
    std::fs::write(&path, config).expect("config");
    let cmd = networked_command(&dir.join("d"), manifest, &path);
    let data = dir.join("d");
    tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start")
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

async fn subscribe(
    c: &mut Clients,
    identity: &str,
) -> tonic::codec::Streaming<sessiond_api::v1::SubscribeResponse> {
    c.msgs
        .subscribe(SubscribeRequest {
            identity: identity.into(),
            from_seq: 0,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// Queues [`BATCHED`] messages from `identity` to `to` (64 in flight) and waits until every one
/// is `SENT`; the time from the first Send.
async fn send_until_sent(c: &mut Clients, identity: &str, to: &str, tag: &str) -> Duration {
    let mut stream = subscribe(c, identity).await;
    // Skip the backlog of earlier rounds: wait for this round's messages only.
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT.min(BATCHED) {
        let mut msgs = c.msgs.clone();
        let (identity, to, tag) = (identity.to_owned(), to.to_owned(), tag.to_owned());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            let mut i = t;
            while i < BATCHED {
                let r = msgs
                    .send_message(SendMessageRequest {
                        identity: identity.clone(),
                        recipient: to.clone(),
                        text: format!("{tag} {i}"),
                        ..Default::default()
                    })
                    .await
                    .expect("send");
                ids.push(r.into_inner().message_id);
                i += IN_FLIGHT;
            }
            ids
        });
    }
    let mut waiting = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        waiting.extend(r.expect("send task"));
    }
    while !waiting.is_empty() {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let ev = tokio::time::timeout(left, stream.message())
            .await
            .expect("every message is sent before the deadline")
            .expect("stream")
            .expect("stream open")
            .event
            .expect("an event");
        if let Some(event::Kind::Delivery(d)) = ev.kind {
            assert_ne!(d.state, DeliveryState::Failed as i32, "{}", d.reason);
            if d.state == DeliveryState::Sent as i32 {
                waiting.remove(&d.message_id);
            }
        }
    }
    start.elapsed()
}

async fn batch() {
    let n = net("bench-batch", "").await;
    let config = |max: usize| format!("[outbox]\nbatch_max = {max}\n");
    let batched = networked(&n.dir.path().join("batched"), &n.manifest, &config(20)).await;
    let single = networked(&n.dir.path().join("single"), &n.manifest, &config(1)).await;
    let mut cb = clients(&batched.channel().await, bearer(&batched.admin_token));
    let mut cs = clients(&single.channel().await, bearer(&single.admin_token));
    create(&mut cb, "alice").await;
    create(&mut cs, "alice").await;
    let to = some_account_id(9);
    // Paths built and the swarm known before timing.
    send_until_sent(&mut cb, "alice", &to, "warm").await;
    send_until_sent(&mut cs, "alice", &to, "warm").await;
    println!("9-node devnet: {BATCHED} messages to one account, Send (64 in flight) → all SENT");
    let (mut best_b, mut best_s) = (Duration::MAX, Duration::MAX);
    for round in 1..=3 {
        let b = send_until_sent(&mut cb, "alice", &to, &format!("b{round}")).await;
        let s = send_until_sent(&mut cs, "alice", &to, &format!("s{round}")).await;
        println!(
            "round {round}: batched (20 per request) {:>8.1} ms   single stores {:>8.1} ms",
            b.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3
        );
        (best_b, best_s) = (best_b.min(b), best_s.min(s));
    }
    println!(
        "batched vs single stores: {:.1}x faster (goal >= 5x); {:.0} vs {:.0} msgs/s",
        best_s.as_secs_f64() / best_b.as_secs_f64(),
        BATCHED as f64 / best_b.as_secs_f64(),
        BATCHED as f64 / best_s.as_secs_f64()
    );
    drop((cb, cs));
    batched.terminate();
    single.terminate();
}

async fn latency() {
    let n = net("bench-latency", "").await;
    let config = format!(
        "[poll]\nactive_interval_ms = {POLL_MS}\nidle_interval_ms = {POLL_MS}\nidle_after_secs = 60\n"
    );
    let d = networked(&n.dir.path().join("d"), &n.manifest, &config).await;
    let mut c = clients(&d.channel().await, bearer(&d.admin_token));
    create(&mut c, "alice").await;
    let bob = create(&mut c, "bob").await;
    let mut stream = subscribe(&mut c, "bob").await;
    let mut lat = Vec::with_capacity(LATENCY_MSGS);
    // The first message also builds paths and learns the swarm: not counted.
    for i in 0..=LATENCY_MSGS {
        let text = format!("latency {i}");
        let start = Instant::now();
        c.msgs
            .send_message(SendMessageRequest {
                identity: "alice".into(),
                recipient: bob.clone(),
                text: text.clone(),
                ..Default::default()
            })
            .await
            .expect("send");
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let ev = tokio::time::timeout(left, stream.message())
                .await
                .expect("delivered before the deadline")
                .expect("stream")
                .expect("stream open")
                .event
                .expect("an event");
            if matches!(ev.kind, Some(event::Kind::Incoming(m)) if m.text == text) {
                break;
            }
        }
        if i > 0 {
            lat.push(start.elapsed());
        }
    }
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    println!(
        "two identities on one daemon (9-node devnet), {LATENCY_MSGS} messages one at a time: \
         delivery p50 {:.1} ms, p99 {:.1} ms; active poll interval {POLL_MS} ms: p50 = {:.2}x \
         the interval",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3 / POLL_MS as f64
    );
    drop(c);
    d.terminate();
}

/// Identities in the many-identities measurement.
const IDENTITIES: usize = 1_000;
/// How long idle CPU and requests are counted.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

/// The daemon's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The daemon's CPU time so far (user + system), in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Onion requests the daemon has sent (the sum of `sessiond_onion_requests_total`).
async fn onion_requests(d: &Daemon) -> f64 {
    let addr = d.http.as_deref().expect("metrics listener");
    let reply = support::http_request(addr, "GET", "/metrics", &[], "").await;
    reply
        .text()
        .lines()
        .filter(|l| l.starts_with("sessiond_onion_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Idle {
    rss_mib: f64,
    cpu_pct: f64,
    requests_per_min: f64,
}

async fn measure_idle(d: &Daemon) -> Idle {
    let pid = d.child.id();
    let (cpu0, req0, t0) = (cpu_ticks(pid), onion_requests(d).await, Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let (cpu1, req1) = (cpu_ticks(pid), onion_requests(d).await);
    let secs = t0.elapsed().as_secs_f64();
    Idle {
        rss_mib: rss_kib(pid) as f64 / 1024.0,
        cpu_pct: (cpu1 - cpu0) as f64 / 100.0 / secs * 100.0,
        requests_per_min: (req1 - req0) * 60.0 / secs,
    }
}

async fn idle() {
    let n = net("bench-idle", "").await;
    // Every identity is dormant soon after it was created; the defaults otherwise.
    let config = "[poll]\nidle_after_secs = 5\ndormant_after_secs = 10\n";
    let one = networked(&n.dir.path().join("one"), &n.manifest, config).await;
    let many = networked(&n.dir.path().join("many"), &n.manifest, config).await;
    let mut c1 = clients(&one.channel().await, bearer(&one.admin_token));
    let cm = clients(&many.channel().await, bearer(&many.admin_token));
    create(&mut c1, "id-0").await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let mut ids = cm.ids.clone();
        tasks.spawn(async move {
            let mut i = t;
            while i < IDENTITIES {
                ids.create_identity(CreateIdentityRequest {
                    name: format!("id-{i}"),
                })
                .await
                .expect("create");
                i += 16;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("create task");
    }
    println!(
        "{IDENTITIES} identities created in {:.1} s; waiting until they are dormant",
        start.elapsed().as_secs_f64()
    );
    // Every poller has polled (and loaded its configs) and gone dormant.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (a, b) = tokio::join!(measure_idle(&one), measure_idle(&many));
    let show = |what: &str, m: &Idle| {
        println!(
            "{what:<28} RSS {:>6.1} MiB   CPU {:>5.2} % of a core   {:>7.0} onion requests/min",
            m.rss_mib, m.cpu_pct, m.requests_per_min
        )
    };
    println!(
        "idle daemon on a 9-node devnet, counted over {} s:",
        IDLE_WINDOW.as_secs()
    );
    show("1 identity", &a);
    show(&format!("{IDENTITIES} identities"), &b);
    println!(
        "{IDENTITIES} identities: RSS {:.1} MiB (goal <= 64), idle CPU {:.2} % of a core \
         (goal <= 2); per identity {:.1} KiB more than one identity",
        b.rss_mib,
        b.cpu_pct,
        (b.rss_mib - a.rss_mib) * 1024.0 / (IDENTITIES - 1) as f64
    );
    drop((c1, cm));
    one.terminate();
    many.terminate();
}

#[tokio::main]
async fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let on = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if on("send") {
        send().await;
    }
    if on("batch") {
        batch().await;
    }
    if on("latency") {
        latency().await;
    }
    if on("idle") {
        idle().await;
    }
}
