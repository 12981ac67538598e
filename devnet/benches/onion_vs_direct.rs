//! Benchmark: 1 KiB store+retrieve through 3-hop onion requests vs direct storage RPC, on a
//! 9-node devnet, measured in the same run; prints msgs/s for each and the ratio.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use session_devnet::{Devnet, DevnetConfig};
use session_net::HttpsTransport;
use session_proto::onion::{build_request, Destination, EncType, Hop};
use session_proto::storage_rpc::sign::{retrieve_message, sign};
use session_proto::storage_rpc::wire::encode_base64;
const T: Duration = Duration::from_secs(10);
/// Concurrent clients per mode.
const CONCURRENCY: usize = 8;
/// Time spent measuring each mode.
const RUN: Duration = Duration::from_millis(1500);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Acct {
    signing: SigningKey,
    hex: String,
    ed_hex: String,
}

fn params_store(a: &Acct, n: u64) -> Value {
    let mut data = vec![0u8; 1024];
    data[..8].copy_from_slice(&n.to_le_bytes());
    json!({"pubkey": a.hex, "namespace": 0, "timestamp": now_ms(), "ttl": 300_000,
           "data": encode_base64(&data)})
}

fn params_retrieve(a: &Acct) -> Value {
    let ts = now_ms();
    let sig = sign(
        &a.signing,
        &retrieve_message(0, u64::try_from(ts).unwrap_or(0)),
    )
    .to_base64();
    json!({"pubkey": a.hex, "namespace": 0, "timestamp": ts, "signature": sig,
           "pubkey_ed25519": a.ed_hex, "max_count": 1})
}

fn hop(d: &Devnet, i: usize) -> Hop {
    Hop::new(d.node(i).x25519(), d.node(i).ed25519())
}

/// One store + one retrieve; returns true if both succeeded.
async fn round(
    c: &HttpsTransport,
    d: &Devnet,
    a: &Acct,
    n: u64,
    onion: bool,
    dest: usize,
    path: &[usize],
) -> bool {
    let mut ok = true;
    for (method, params) in [
        ("store", params_store(a, n)),
        ("retrieve", params_retrieve(a)),
    ] {
        let rpc = json!({"method": method, "params": params});
        if onion {
            let hops: Vec<Hop> = path.iter().map(|&i| hop(d, i)).collect();
            let Ok(req) = build_request(
                &mut rand::rngs::OsRng,
                EncType::AesGcm,
                &hops,
                &Destination::Snode(hop(d, dest)),
                rpc.to_string().as_bytes(),
            ) else {
                return false;
            };
            let url = format!("{}/onion_req/v2", d.node(path[0]).url());
            match c.post_url(&url, &[], req.body, T).await {
                Ok(r) if r.status == 200 => {
                    ok &= req
                        .reply
                        .open_snode_reply(&r.body)
                        .is_ok_and(|reply| reply.status == 200);
                }
                _ => ok = false,
            }
        } else {
            let url = format!("{}/storage_rpc/v1", d.node(dest).url());
            let r = c.post_url(&url, &[], rpc.to_string().into_bytes(), T).await;
            ok &= r.is_ok_and(|r| r.status == 200);
        }
    }
    ok
}

async fn measure(d: &'static Devnet, accts: &'static [Acct], onion: bool) -> (f64, usize) {
    let c = HttpsTransport::default();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (w, a) in accts.iter().enumerate() {
        let c = c.clone();
        let (_, members) = d
            .swarm_for(&hex::decode(&a.hex).unwrap_or_default())
            .unwrap_or_default();
        let dest = members[w % members.len()];
        let path: Vec<usize> = (0..d.nodes().len())
            .filter(|i| !members.contains(i))
            .cycle()
            .skip(w)
            .take(3)
            .collect();
        tasks.spawn(async move {
            let (mut done, mut failed) = (0u64, 0usize);
            while start.elapsed() < RUN {
                if round(&c, d, a, done | ((w as u64) << 32), onion, dest, &path).await {
                    done += 1;
                } else {
                    failed += 1;
                }
            }
            (done, failed)
        });
    }
    let (mut msgs, mut failed) = (0u64, 0usize);
    for (d, f) in tasks.join_all().await {
        msgs += d;
        failed += f;
    }
    (msgs as f64 / start.elapsed().as_secs_f64(), failed)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = DevnetConfig { nodes: 9, swarm_size: 3, ..Default::default() };
        let devnet: &'static Devnet = Box::leak(Box::new(Devnet::start(cfg).await.expect("devnet")));
        let accts: &'static [Acct] = Box::leak(
            (0..CONCURRENCY as u64)
                .map(|i| {
                    let mut seed = [7u8; 32];
                    seed[..8].copy_from_slice(&i.to_le_bytes());
                    let signing = SigningKey::from_bytes(&seed);
                    let x = signing.verifying_key().to_montgomery().to_bytes();
                    Acct {
                        hex: format!("05{}", hex::encode(x)),
                        ed_hex: hex::encode(signing.verifying_key().to_bytes()),
                        signing,
                    }
                })
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        // Warm up connections both ways, then measure direct first and onion second.
        let _ = measure_short(devnet, accts).await;
        let (direct, df) = measure(devnet, accts, false).await;
        let (onion, of) = measure(devnet, accts, true).await;
        println!("onion_vs_direct: 9-node devnet, 1 KiB messages, store+retrieve per message, {CONCURRENCY} clients");
        println!("  direct storage RPC : {direct:8.1} msgs/s  ({df} failed rounds)");
        println!("  3-hop onion (gcm)  : {onion:8.1} msgs/s  ({of} failed rounds)");
        println!("  onion / direct     : {:8.3}", onion / direct.max(f64::MIN_POSITIVE));
    });
}

async fn measure_short(d: &'static Devnet, accts: &'static [Acct]) -> bool {
    let c = HttpsTransport::default();
    let a = &accts[0];
    let (_, m) = d
        .swarm_for(&hex::decode(&a.hex).unwrap_or_default())
        .unwrap_or_default();
    let path: Vec<usize> = (0..d.nodes().len())
        .filter(|i| !m.contains(i))
        .take(3)
        .collect();
    round(&c, d, a, u64::MAX, true, m[0], &path).await
        && round(&c, d, a, u64::MAX - 1, false, m[0], &path).await
}
