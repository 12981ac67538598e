//! The soak: 10,000 messages between two daemons on a 9-node devnet through the fault scenario
//! of the CI fault test (snodes stopped, silent, slow or answering 5xx; daemons SIGKILLed
//! mid-send), printing lost / duplicated / failed counts; then one daemon's resident memory
//! before and after 5 rounds of 2,000 connections to each listener (IRC logins, Matrix
//! whoami, gRPC WhoAmI on fresh HTTP/2 connections), printing both and their ratio, and per
//! round how many connections were answered, refused at a listener's connection cap (by design,
//! counted apart) or failed, by cause.
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
    let mut cmd = networked_command(&dir, &n.manifest, &n.config);
    // SOAK_DAEMON_LOG=…: the storm daemon's log filter (stderr), e.g. "warn,h2=debug".
    if let Ok(filter) = std::env::var("SOAK_DAEMON_LOG") {
        cmd.env("SESSIOND_LOG", filter);
    }
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
    let before_parts = rss_parts(pid);
    println!(
        "storm: daemon RSS before: {before} KiB ({before_parts}), {} threads",
        faults::threads(pid)
    );
    for round in 0..STORM_ROUNDS {
        let started = Instant::now();
        let irc_round = wave(per_listener, {
            let (irc, token) = (irc.clone(), token.clone());
            move |i| irc_login(irc.clone(), token.clone(), i)
        })
        .await;
        let mx_round = wave(per_listener, {
            let (mx, token) = (mx.clone(), token.clone());
            move |_| matrix_whoami(mx.clone(), token.clone())
        })
        .await;
        let grpc_round = wave(per_listener, {
            let (grpc, token) = (grpc.clone(), token.clone());
            move |_| grpc_whoami(grpc.clone(), token.clone())
        })
        .await;
        println!(
            "storm: round {round}: {} IRC, {} Matrix, {} gRPC answered in {:.1}s; RSS {} KiB, \
             {} threads",
            irc_round.show(per_listener),
            mx_round.show(per_listener),
            grpc_round.show(per_listener),
            started.elapsed().as_secs_f64(),
            faults::rss_kib(pid),
            faults::threads(pid)
        );
    }
    // Closed connections' tasks end, idle blocking threads exit (after 10 s) and the daemon
    // gives freed memory back ([memory] trim_interval_secs, 10 s by default).
    tokio::time::sleep(Duration::from_secs(15)).await;
    println!(
        "storm: 15 s later: RSS {} KiB ({}), {} threads",
        faults::rss_kib(pid),
        rss_parts(pid),
        faults::threads(pid)
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = faults::rss_kib(pid);
    println!(
        "storm: daemon RSS after {STORM_ROUNDS} rounds of {per_listener} connections per \
         listener: {after} KiB ({}), {} threads (before {before} KiB ({before_parts}), ratio {:.2})",
        rss_parts(pid),
        faults::threads(pid),
        after as f64 / before.max(1) as f64
    );
    d.terminate();
}

/// Resident memory split into anonymous (heap, stacks) and file-backed (mostly the binary's own
/// code, which a dev build makes large), from `/proc/<pid>/smaps_rollup`.
fn rss_parts(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let (rss, anon) = (field("Rss:"), field("Anonymous:"));
    format!(
        "anonymous {anon} KiB, file {} KiB",
        rss.saturating_sub(anon)
    )
}

/// How one storm connection ended.
#[derive(Debug)]
enum Outcome {
    /// Logged in / answered.
    Answered,
    /// Turned away at the listener's connection cap (IRC `ERROR … too many connections`,
    /// Matrix 503 `M_LIMIT_EXCEEDED`): the cap working as designed.
    Refused,
    /// Anything else, by cause.
    Failed(String),
}

/// The outcomes of one wave.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    refused: usize,
    failed: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// `answered/total`, then refusals and failures by cause if there were any.
    fn show(&self, total: usize) -> String {
        let mut s = format!("{}/{total}", self.answered);
        if self.refused > 0 {
            s.push_str(&format!(" (refused at the cap: {})", self.refused));
        }
        if !self.failed.is_empty() {
            let causes: Vec<String> = self
                .failed
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            s.push_str(&format!(" (failed: {})", causes.join(", ")));
        }
        s
    }
}

/// `count` connections at once (at most [`WIDTH`] open), each made by `one(i)`; how they ended.
async fn wave<F, Fut>(count: usize, one: F) -> Tally
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(WIDTH));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = Arc::clone(&gate).acquire_owned().await.expect("open");
        let fut = one(i);
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(Duration::from_secs(60), fut)
                .await
                .unwrap_or_else(|_| Outcome::Failed("client timeout (60 s)".into()));
            drop(permit);
            outcome
        });
    }
    let mut tally = Tally::default();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap_or_else(|e| Outcome::Failed(format!("task: {e}"))) {
            Outcome::Answered => tally.answered += 1,
            Outcome::Refused => tally.refused += 1,
            Outcome::Failed(cause) => *tally.failed.entry(cause).or_default() += 1,
        }
    }
    tally
}

/// The kind of an I/O error, for the tally.
fn io_cause(what: &str, e: &std::io::Error) -> Outcome {
    Outcome::Failed(format!("{what}: {:?}", e.kind()))
}

/// An IRC login up to the welcome, then QUIT.
async fn irc_login(addr: String, token: String, i: usize) -> Outcome {
    let stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return io_cause("connect", &e),
    };
    let (r, mut w) = stream.into_split();
    let hello = format!("PASS {token}\r\nNICK storm{i}\r\nUSER storm 0 * :Storm\r\n");
    if let Err(e) = w.write_all(hello.as_bytes()).await {
        return io_cause("write", &e);
    }
    let mut lines = BufReader::new(r).lines();
    // A refused login's reason (464) comes before its ERROR line.
    let mut why = None;
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.contains(" 001 ") => {
                let _ = w.write_all(b"QUIT :bye\r\n").await;
                return Outcome::Answered;
            }
            Ok(Some(line)) if line.starts_with("ERROR") => {
                return if line.contains("too many connections") {
                    Outcome::Refused
                } else {
                    Outcome::Failed(why.unwrap_or(line))
                };
            }
            Ok(Some(line)) if line.contains(" 464 ") => {
                why = line.split_once(" :").map(|(_, t)| format!("464 {t}"));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Outcome::Failed("closed before the welcome".into()),
            Err(e) => return io_cause("read", &e),
        }
    }
}

/// One Matrix whoami on its own connection.
async fn matrix_whoami(addr: String, token: String) -> Outcome {
    let mut stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return io_cause("connect", &e),
    };
    let req = format!(
        "GET /_matrix/client/v3/account/whoami HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(req.as_bytes()).await {
        return io_cause("write", &e);
    }
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer).await {
        if answer.is_empty() {
            return io_cause("read", &e);
        }
    }
    if answer.starts_with(b"HTTP/1.1 200") {
        Outcome::Answered
    } else if answer.starts_with(b"HTTP/1.1 503") && answer.ends_with(b"Too many connections\"}") {
        Outcome::Refused
    } else if answer.is_empty() {
        Outcome::Failed("closed without an answer".into())
    } else {
        // The status line and the error the body names.
        let text = String::from_utf8_lossy(&answer);
        let status = text.lines().next().unwrap_or_default();
        let error = text
            .split_once("\"error\":\"")
            .map_or("", |(_, e)| e.split('"').next().unwrap_or_default());
        Outcome::Failed(format!("{status}: {error}"))
    }
}

/// One WhoAmI on a fresh HTTP/2 connection.
async fn grpc_whoami(addr: String, token: String) -> Outcome {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return Outcome::Failed("bad address".into());
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("connect: {e}")),
    };
    let mut c = clients(&channel, bearer(&token));
    match c.ids.who_am_i(WhoAmIRequest {}).await {
        Ok(_) => Outcome::Answered,
        Err(status) => Outcome::Failed(format!("{:?}", status.code())),
    }
}
