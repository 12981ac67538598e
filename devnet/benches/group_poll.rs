//! Benchmark: one group poll as a member does it (one `batch` of five subaccount-signed
//! retrieves: ns −11, 11, 12, 13, 14) vs the same five retrieves sent one by one, directly to a
//! swarm member of the devnet, in the same run; prints polls/s for each and the ratio.
//!
//! Each namespace holds a few messages (the group's keys, info, members, ten posts, a kicked
//! notice), all read from the start (no `last_hash`), so both modes move the same bytes.

#[path = "../tests/support/client.rs"]
mod client;

use std::time::{Duration, Instant};

use client::{now_ms, rpc, Acct};
use serde_json::{json, Value};
use session_devnet::{Devnet, DevnetConfig};
use session_net::HttpsTransport;
use session_proto::groups::subaccount::{make_member_auth_data, SubaccountSigner, DEFAULT_FLAGS};
use session_proto::groups::GroupAdminKeys;
use session_proto::keys::IdentityKeys;
use session_proto::storage_rpc::sign::retrieve_message;
use session_proto::storage_rpc::wire::encode_base64;

/// The group namespaces a member polls.
const NAMESPACES: [i16; 5] = [-11, 11, 12, 13, 14];
/// Time spent measuring each mode per round.
const RUN: Duration = Duration::from_millis(1500);
/// Interleaved rounds (both modes see the same machine load).
const ROUNDS: usize = 3;

/// One signed retrieve's params for `ns` as the member `signer`.
fn retrieve(group_hex: &str, signer: &SubaccountSigner, ns: i16, now: i64) -> Value {
    let sub = signer.auth();
    let token = sub.subaccount.expect("a token");
    let token_sig = sub.subaccount_sig.expect("a token signature");
    json!({
        "pubkey": group_hex,
        "namespace": ns,
        "timestamp": now,
        "subaccount": encode_base64(&token.0),
        "subaccount_sig": token_sig.to_base64(),
        "signature": signer.sign(&retrieve_message(ns, now as u64)).to_base64(),
    })
}

/// One poll; true if every retrieve answered 200.
async fn poll(
    c: &HttpsTransport,
    url: &str,
    group: &str,
    s: &SubaccountSigner,
    batch: bool,
) -> bool {
    let now = now_ms();
    if batch {
        let requests: Vec<Value> = NAMESPACES
            .iter()
            .map(|&ns| json!({"method": "retrieve", "params": retrieve(group, s, ns, now)}))
            .collect();
        let r = rpc(c, url, "batch", json!({ "requests": requests })).await;
        r.status == 200
            && r.json().is_some_and(|v| {
                v["results"]
                    .as_array()
                    .is_some_and(|a| a.len() == 5 && a.iter().all(|x| x["code"] == 200))
            })
    } else {
        for &ns in &NAMESPACES {
            let r = rpc(c, url, "retrieve", retrieve(group, s, ns, now)).await;
            if r.status != 200 {
                return false;
            }
        }
        true
    }
}

async fn measure(
    c: &HttpsTransport,
    url: &str,
    group: &str,
    s: &SubaccountSigner,
    batch: bool,
) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        assert!(
            poll(c, url, group, s, batch).await,
            "a poll failed (batch {batch})"
        );
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to time then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let d = Devnet::start(DevnetConfig {
            nodes: 6,
            swarm_size: 3,
            ..DevnetConfig::default()
        })
        .await
        .expect("devnet");
        let c = HttpsTransport::default();
        let seed = [7u8; 32];
        let admin = GroupAdminKeys::from_seed(&seed);
        let group = Acct::new(0, 0x03);
        let group = Acct {
            signing: admin.keys().signing_key().clone(),
            id: *admin.id().as_bytes(),
            hex: admin.id().to_string(),
            ..group
        };
        let (_, members) = d.swarm_for(&group.id).expect("swarm");
        let url = d.node(members[0]).url();
        let now = now_ms();
        for (ns, count) in [(12, 1), (13, 1), (14, 1), (11, 10), (-11, 1)] {
            for i in 0..count {
                let body = vec![ns as u8 ^ i as u8; 300];
                let r = rpc(&c, &url, "store", group.store(ns, &body, now)).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }
        let member = IdentityKeys::from_seed(&[9u8; 32]);
        let auth =
            make_member_auth_data(&admin, member.account_id(), DEFAULT_FLAGS).expect("auth data");
        let signer = SubaccountSigner::new(&member, admin.public_key(), &auth).expect("signer");
        assert!(
            poll(&c, &url, &group.hex, &signer, true).await,
            "batch works"
        );
        assert!(
            poll(&c, &url, &group.hex, &signer, false).await,
            "singles work"
        );
        let (mut b, mut s) = (0.0, 0.0);
        for _ in 0..ROUNDS {
            b += measure(&c, &url, &group.hex, &signer, true).await;
            s += measure(&c, &url, &group.hex, &signer, false).await;
        }
        let (b, s) = (b / ROUNDS as f64, s / ROUNDS as f64);
        println!("group poll (5 namespaces, direct to a swarm member, same run):");
        println!("  one batch of 5 retrieves: {b:.0} polls/s");
        println!("  5 single retrieves:       {s:.0} polls/s");
        println!("  ratio batch / singles:    {:.2}x", b / s);
    });
}
