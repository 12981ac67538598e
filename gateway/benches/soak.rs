//! The soak: 10,000 messages between two daemons on a 9-node devnet through the fault scenario
//! of the CI fault test (snodes stopped, silent, slow or answering 5xx; daemons SIGKILLed
//! mid-send), printing lost / duplicated / failed counts; then one daemon's resident memory
//! before and after 5 rounds of 2,000 connections to each listener (IRC logins, Matrix
//! whoami, gRPC WhoAmI on fresh HTTP/2 connections), printing both and their ratio.
//!
//! Run: `cargo bench -p session-gateway --bench soak` (SOAK_MESSAGES=… for another total,
//! SOAK_CONNECTIONS=… per listener per round; 0 skips that part). `--profile dev` builds much
//! faster and measures the same counts. Reports; asserts nothing about the numbers.

#[path = "../tests/support/faults.rs"]
mod faults;
#[path = "../tests/support/daemon.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_api::v1::{CreateIdentityRequest, CreateTokenRequest, WhoAmIRequest};
use support::{bearer, clients, net, networked_command, Daemon};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;

/// Messages per round and direction.
const PER_ROUND: usize = 100;
/// Storm rounds.
const STORM_ROUNDS: usize = 5;
/// Connections open at once per listener (the storm's width).
const WIDTH: usize = 2_000;

/// Fast retries (as the CI test), and room for a storm on both adapters.
const CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500

[irc]
max_connections = 4096

[matrix]
max_connections = 4096
"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let messages = env_usize("SOAK_MESSAGES", 10_000);
        let per_listener = env_usize("SOAK_CONNECTIONS", 2_000);
        let n = net("soak", CONFIG).await;

        // SOAK_MESSAGES=0: the storm alone.
        if messages > 0 {
            let rounds = (messages / 2).div_ceil(PER_ROUND).max(1);
            println!(
                "soak: {} messages ({rounds} rounds of {PER_ROUND} each way) through faults",
                rounds * PER_ROUND * 2
            );
            let out = faults::run(
                &n,
                rounds,
                PER_ROUND,
                Duration::from_millis(1000),
                Duration::from_secs(600),
                true,
            )
            .await;
            println!(
                "soak: {} messages in {:.1}s: lost {}, duplicated {}, failed {}, unsettled {}; \
                 {} daemon kills, {} node faults, {} back-pressure retries; Subscribe = History: {}",
                out.each_way * 2,
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
        }
        if per_listener > 0 {
            storm(&n, per_listener).await;
        }
        n.devnet.shutdown().await;
    });
}

/// RSS of a fresh daemon before and after [`STORM_ROUNDS`] rounds of `per_listener`
/// connections to each listener.
async fn storm(n: &support::Net, per_listener: usize) {
    let dir = n.dir.path().join("storm");
    let cmd = networked_command(&dir, &n.manifest, &n.config);
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
        .await
        .expect("start daemon");
    let mut admin = clients(&d.channel().await, bearer(&d.admin_token));
    admin
        .ids
        .create_identity(CreateIdentityRequest {
            name: "storm".into(),
        })
        .await
        .expect("identity");
    let token = admin
        .ids
        .create_token(CreateTokenRequest {
            name: "storm".into(),
            label: "soak".into(),
        })
        .await
        .expect("token")
        .into_inner()
        .token;
    let pid = d.child.id();
    let irc = d.irc.clone().expect("irc listener");
    let mx = d.matrix.clone().expect("matrix listener");
    let grpc = d.addr.clone();
    // Settle: the identity's poller and paths are up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = faults::rss_kib(pid);
    println!(
        "storm: daemon RSS before: {before} KiB, {} threads",
        faults::threads(pid)
    );
    for round in 0..STORM_ROUNDS {
        let started = Instant::now();
        let ok_irc = wave(per_listener, {
            let (irc, token) = (irc.clone(), token.clone());
            move |i| irc_login(irc.clone(), token.clone(), i)
        })
        .await;
        let ok_mx = wave(per_listener, {
            let (mx, token) = (mx.clone(), token.clone());
            move |_| matrix_whoami(mx.clone(), token.clone())
        })
        .await;
        let ok_grpc = wave(per_listener, {
            let (grpc, token) = (grpc.clone(), token.clone());
            move |_| grpc_whoami(grpc.clone(), token.clone())
        })
        .await;
        println!(
            "storm: round {round}: {ok_irc}/{per_listener} IRC, {ok_mx}/{per_listener} Matrix, \
             {ok_grpc}/{per_listener} gRPC answered in {:.1}s; RSS {} KiB, {} threads",
            started.elapsed().as_secs_f64(),
            faults::rss_kib(pid),
            faults::threads(pid)
        );
    }
    // Closed connections' tasks end and idle blocking threads exit (after 10 s); give the
    // allocator a moment.
    tokio::time::sleep(Duration::from_secs(15)).await;
    println!(
        "storm: 15 s later: RSS {} KiB, {} threads",
        faults::rss_kib(pid),
        faults::threads(pid)
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = faults::rss_kib(pid);
    println!(
        "storm: daemon RSS after {STORM_ROUNDS} rounds of {per_listener} connections per \
         listener: {after} KiB, {} threads (before {before} KiB, ratio {:.2})",
        faults::threads(pid),
        after as f64 / before.max(1) as f64
    );
    d.terminate();
}

/// `count` connections at once (at most [`WIDTH`] open), each made by `one(i)`; how many
/// succeeded.
async fn wave<F, Fut>(count: usize, one: F) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(WIDTH));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = Arc::clone(&gate).acquire_owned().await.expect("open");
        let fut = one(i);
        tasks.spawn(async move {
            let ok = tokio::time::timeout(Duration::from_secs(60), fut)
                .await
                .unwrap_or(false);
            drop(permit);
            ok
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += usize::from(r.unwrap_or(false));
    }
    ok
}

/// An IRC login up to the welcome, then QUIT.
async fn irc_login(addr: String, token: String, i: usize) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
        return false;
    };
    let (r, mut w) = stream.into_split();
    let hello = format!("PASS {token}\r\nNICK storm{i}\r\nUSER storm 0 * :Storm\r\n");
    if w.write_all(hello.as_bytes()).await.is_err() {
        return false;
    }
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(" 001 ") {
            let _ = w.write_all(b"QUIT :bye\r\n").await;
            return true;
        }
    }
    false
}

/// One Matrix whoami on its own connection.
async fn matrix_whoami(addr: String, token: String) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
        return false;
    };
    let req = format!(
        "GET /_matrix/client/v3/account/whoami HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// One WhoAmI on a fresh HTTP/2 connection.
async fn grpc_whoami(addr: String, token: String) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut c = clients(&channel, bearer(&token));
    c.ids.who_am_i(WhoAmIRequest {}).await.is_ok()
}
