//! Onion-routed `store` and `retrieve` through the network client against a 9-node devnet,
//! next to the same requests sent directly (no path) in the same run.
//!
//! Run: `cargo bench -p session-net --bench net` (prints requests/s and p50/p99).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use session_devnet::{Devnet, DevnetConfig};
use session_net::{MemoryPoolStore, NetClient, NetConfig, Snode};
use session_proto::storage_rpc::sign::{retrieve_message, sign};
use session_proto::storage_rpc::{
    Base64Bytes, Ed25519Pubkey, Request, RetrieveParams, StoreParams, SubaccountAuth, UserPubkey,
};

/// Requests per measurement.
const N: usize = 200;
/// Concurrent requests in the throughput runs.
const CONCURRENCY: usize = 8;

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        rps: lat.len() as f64 / wall.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<34} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        s.rps,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// Runs `op` N times with `conc` tasks in flight; returns latencies and wall time.
async fn run<F, Fut>(conc: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..conc {
        let op = op.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while i < N {
                let s = Instant::now();
                op(i).await;
                lat.push(s.elapsed());
                i += conc;
            }
            lat
        });
    }
    let mut all = Vec::with_capacity(N);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("bench task"));
    }
    stats(all, start.elapsed())
}

#[tokio::main]
async fn main() {
    let d = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet");
    let client = NetClient::with_https(
        NetConfig::devnet(d.seeds()),
        Arc::new(MemoryPoolStore::new()),
    );
    client.bootstrap().await.expect("bootstrap");
    let sk = SigningKey::from_bytes(&[9; 32]);
    let mut id = [0u8; 33];
    id[0] = 0x05;
    id[1..].copy_from_slice(&sk.verifying_key().to_montgomery().to_bytes());
    let account = UserPubkey(id);
    let swarm: Vec<Snode> = client.swarm(&account).await.expect("swarm");
    let body = vec![0x5a; 1024];
    // Retrieves read a separate mailbox of 10 messages (10 KiB per reply), as a poller
    // that has caught up would; the store account's mailbox grows during the run.
    let rsk = SigningKey::from_bytes(&[10; 32]);
    let mut rid = [0u8; 33];
    rid[0] = 0x05;
    rid[1..].copy_from_slice(&rsk.verifying_key().to_montgomery().to_bytes());
    let reader = UserPubkey(rid);
    let rswarm: Vec<Snode> = client.swarm(&reader).await.expect("swarm");
    for i in 0..10u8 {
        let mut data = body.clone();
        data[0] = i;
        client
            .store(&reader, 0, &data, 600_000, None)
            .await
            .expect("seed the reader's mailbox");
    }

    println!("9-node devnet, 1 KiB messages (retrieve: 10 per reply), {N} requests per row");
    let mut rows = Vec::new();
    for conc in [1, CONCURRENCY] {
        let c = client.clone();
        let b = body.clone();
        let onion_store = run(conc, move |i| {
            let c = c.clone();
            let mut data = b.clone();
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            async move {
                c.store(&account, 0, &data, 60_000, None)
                    .await
                    .expect("onion store");
            }
        })
        .await;
        let c = client.clone();
        let (sw, b) = (swarm.clone(), body.clone());
        let direct_store = run(conc, move |i| {
            let c = c.clone();
            let node = sw[i % sw.len()].clone();
            let mut data = b.clone();
            data[..8].copy_from_slice(&(i as u64 + 1_000_000).to_le_bytes());
            async move {
                let req = Request::Store(StoreParams {
                    pubkey: account,
                    namespace: 0,
                    timestamp: now_ms(),
                    ttl: Some(60_000),
                    expiry: None,
                    data: Base64Bytes(data),
                    signature: None,
                    sig_timestamp: None,
                    pubkey_ed25519: None,
                    sub: SubaccountAuth::default(),
                });
                let r = c.direct_rpc(&node, &req).await.expect("direct store");
                assert_eq!(r.status, 200);
            }
        })
        .await;
        let c = client.clone();
        let k = rsk.clone();
        let onion_retrieve = run(conc, move |_| {
            let (c, k) = (c.clone(), k.clone());
            async move {
                let r = c
                    .retrieve(&reader, 0, None, &k)
                    .await
                    .expect("onion retrieve");
                assert_eq!(r.messages.len(), 10);
            }
        })
        .await;
        let c = client.clone();
        let (sw, k) = (rswarm.clone(), rsk.clone());
        let direct_retrieve = run(conc, move |i| {
            let c = c.clone();
            let node = sw[i % sw.len()].clone();
            let ts = now_ms();
            let req = Request::Retrieve(RetrieveParams {
                pubkey: reader,
                namespace: 0,
                last_hash: None,
                max_count: None,
                max_size: None,
                timestamp: Some(ts),
                signature: Some(sign(&k, &retrieve_message(0, ts))),
                pubkey_ed25519: Some(Ed25519Pubkey(k.verifying_key().to_bytes())),
                sub: SubaccountAuth::default(),
            });
            async move {
                let r = c.direct_rpc(&node, &req).await.expect("direct retrieve");
                assert_eq!(r.status, 200);
            }
        })
        .await;
        print(
            &format!("store    onion  (concurrency {conc})"),
            &onion_store,
        );
        print(
            &format!("store    direct (concurrency {conc})"),
            &direct_store,
        );
        print(
            &format!("retrieve onion  (concurrency {conc})"),
            &onion_retrieve,
        );
        print(
            &format!("retrieve direct (concurrency {conc})"),
            &direct_retrieve,
        );
        rows.push((
            conc,
            onion_store,
            direct_store,
            onion_retrieve,
            direct_retrieve,
        ));
    }
    for (conc, os, ds, or, dr) in &rows {
        println!(
            "concurrency {conc}: onion/direct throughput  store {:.2}x   retrieve {:.2}x",
            os.rps / ds.rps,
            or.rps / dr.rps
        );
    }
    d.shutdown().await;
}
