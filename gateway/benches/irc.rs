//! The IRC adapter: IRC lines parsed per second (framing + parsing) next to splitting the same
//! bytes into lines only; then PRIVMSG → queued messages per second (an IRC client writing
//! PRIVMSGs, counted as OutgoingMessage events) next to gRPC `Send` on the same offline daemon
//! in the same run (offline, Send only queues).
//!
//! Run: `cargo bench -p session-gateway --bench irc`.

#[path = "../tests/support/daemon.rs"]
mod support;

#[path = "../tests/irc/common.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{identity_with_token, Raw};
use sessiond_api::client::Client;
use sessiond_api::v1::{
    event, SendMessageRequest, SubscribeRequest, SubscribeResponse, WhoAmIRequest,
};
use sessiond_irc::line::{LineReader, Message};
use support::{run_command, some_account_id, Daemon, TempDir};
use tonic::Streaming;

/// Lines in the parsing corpus.
const LINES: usize = 200_000;
/// Messages per send measurement.
const MESSAGES: usize = 1000;

fn corpus() -> Vec<u8> {
    let long = "x".repeat(300);
    let samples = [
        "@time=2024-01-01T00:00:00.000Z;msgid=123 :alice!alice@sessiond PRIVMSG bob :hello there, how are you doing today?".to_owned(),
        "PING :1700000000".to_owned(),
        "@+typing=active TAGMSG bob".to_owned(),
        format!("PRIVMSG {} :{long}", some_account_id(1)),
        "CAP REQ :echo-message server-time message-tags batch".to_owned(),
        "CHATHISTORY LATEST bob timestamp=2024-01-01T00:00:00.000Z 50".to_owned(),
    ];
    let mut out = Vec::new();
    for i in 0..LINES {
        out.extend_from_slice(samples[i % samples.len()].as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The best of three runs of `f`, as lines per second.
fn best_rate(lines: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let n = f();
        assert_eq!(n, lines);
        best = best.min(start.elapsed().as_secs_f64());
    }
    lines as f64 / best
}

fn parse_bench() {
    let bytes = corpus();
    let split = best_rate(LINES, || {
        black_box(&bytes)
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    });
    let parsed = best_rate(LINES, || {
        let mut reader = LineReader::default();
        let mut n = 0;
        // Fed in 4 KiB reads, as from a socket.
        for chunk in black_box(&bytes).chunks(4096) {
            reader.buffer().extend_from_slice(chunk);
            while let Some(line) = reader.next_line() {
                let msg = Message::parse(&line.expect("short lines")).expect("valid lines");
                black_box(&msg);
                n += 1;
            }
        }
        n
    });
    println!("IRC lines: {LINES} lines, {} bytes", bytes.len());
    println!(
        "  split into lines only (baseline)     {:>12.0} lines/s",
        split
    );
    println!(
        "  framed and parsed into messages      {:>12.0} lines/s",
        parsed
    );
    println!(
        "  ratio parsed/split                   {:>12.3}",
        parsed / split
    );
}

/// Reads events until `n` OutgoingMessage events arrived; returns when the last did.
async fn count_outgoing(stream: &mut Streaming<SubscribeResponse>, n: usize) -> Instant {
    let mut seen = 0;
    while seen < n {
        let e = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("stream open")
            .event
            .expect("an event");
        if matches!(e.kind, Some(event::Kind::Outgoing(_))) {
            seen += 1;
        }
    }
    Instant::now()
}

async fn send_bench() {
    let dir = TempDir::new("bench-irc");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let config = dir.path().join("sessiond.toml");
    // No flood control in the way of the measurement.
    std::fs::write(
        &config,
        "[irc]\nflood_burst = 100000\nflood_lines_per_sec = 100000\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let mut cmd = run_command(&data);
    cmd.arg("--config").arg(&config);
    let daemon = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start daemon");
    let irc_addr = daemon.irc.clone().expect("the daemon runs its IRC server");
    let channel = daemon.channel().await;
    // One identity per measurement: each starts with an empty event log.
    let (_, grpc_token) = identity_with_token(&channel, &daemon.admin_token, "grpc").await;
    let (_, token) = identity_with_token(&channel, &daemon.admin_token, "irc").await;
    let grpc_client = Client::new(channel.clone(), &grpc_token).expect("token");
    let client = Client::new(channel.clone(), &token).expect("token");
    let to = some_account_id(2);
    let subscribe = |client: &Client, identity: &'static str, from_seq, log_epoch| {
        let mut messages = client.messages.clone();
        async move {
            messages
                .subscribe(SubscribeRequest {
                    identity: identity.into(),
                    from_seq,
                    typing: false,
                    log_epoch,
                })
                .await
                .expect("subscribe")
                .into_inner()
        }
    };

    // gRPC Send, one after the other (as an IRC connection sends its lines).
    // The events are read while the messages are sent (an unread stream slows the daemon).
    let mut events = subscribe(&grpc_client, "grpc", 0, 0).await;
    let counted = tokio::spawn(async move { count_outgoing(&mut events, MESSAGES).await });
    let start = Instant::now();
    let mut messages = grpc_client.messages.clone();
    for i in 0..MESSAGES {
        messages
            .send_message(SendMessageRequest {
                identity: "grpc".into(),
                recipient: to.clone(),
                text: format!("grpc message {i}"),
                ..Default::default()
            })
            .await
            .expect("send");
    }
    let grpc = MESSAGES as f64 / (counted.await.expect("counter") - start).as_secs_f64();

    // The same through IRC: one client writes all its PRIVMSG lines at once.
    let mut irc_client = Raw::register(&irc_addr, &token, "ircuser", "").await;
    let me = client
        .identities
        .clone()
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("whoami")
        .into_inner()
        .identity
        .expect("scoped");
    let mut events = subscribe(&client, "irc", me.last_seq, me.log_epoch).await;
    let counted = tokio::spawn(async move { count_outgoing(&mut events, MESSAGES).await });
    let mut burst = String::new();
    for i in 0..MESSAGES {
        burst.push_str(&format!("PRIVMSG {to} :irc message {i}\r\n"));
    }
    let start = Instant::now();
    irc_client.send_bytes(burst.as_bytes()).await;
    let via_irc = MESSAGES as f64 / (counted.await.expect("counter") - start).as_secs_f64();
    println!("PRIVMSG → queued: {MESSAGES} messages on an offline daemon");
    println!("  gRPC Send (baseline)                 {grpc:>12.1} msg/s");
    println!("  IRC PRIVMSG                          {via_irc:>12.1} msg/s");
    println!(
        "  ratio IRC/gRPC                       {:>12.3}",
        via_irc / grpc
    );
    drop(daemon);
}

fn main() {
    parse_bench();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(send_bench());
}
