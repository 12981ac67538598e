//! Onion benchmarks: building a 3-hop request with a 1 KiB body and peeling one layer, each
//! next to a baseline of the bare primitives it uses, measured in the same run; prints ratios.
//!
//! Baselines (per layer: a fresh ephemeral key pair, one X25519 exchange, the HMAC key
//! derivation, one AES-256-GCM pass over a buffer of the layer's size):
//! - `primitives`: the exchanges through this crate's [`x25519`] (Edwards form, from key bytes
//!   each time, i.e. without the per-path key preparation the builder gets from [`Hop`]);
//! - `primitives_x25519_dalek`: the same with x25519-dalek's ladder API, for reference.

use std::path::{Path, PathBuf};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use criterion::{black_box, Criterion};
use hmac::{Hmac, Mac};
use rand::RngCore;
use session_proto::onion::{
    build_request, peel, x25519, x25519_public, Destination, EncType, Hop, NodeKeys,
};
use sha2::Sha256;

const BODY_LEN: usize = 1024;

fn hmac_key(dh: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"LOKI").expect("any key length");
    mac.update(dh);
    mac.finalize().into_bytes().into()
}

fn gcm_pass(key: &[u8; 32], nonce: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
    Aes256Gcm::new(key.into())
        .encrypt_in_place_detached(nonce.into(), b"", buf)
        .expect("small buffer")
        .into()
}

fn layer_sizes(body: &[u8], node_keys: &[NodeKeys]) -> Vec<usize> {
    // Plaintext sizes of the four layers, innermost first, taken from a real build.
    let hops: Vec<Hop> = (0..3)
        .map(|i| Hop::new(*node_keys[i].public(), [i as u8; 32]))
        .collect();
    let dest = Destination::Snode(Hop::new(*node_keys[3].public(), [3; 32]));
    let req = build_request(&mut rand::thread_rng(), EncType::AesGcm, &hops, &dest, body)
        .expect("builds");
    let mut sizes = Vec::new();
    let mut incoming = req.body;
    for node in node_keys {
        let opened = session_proto::onion::open_layer(node, &incoming).expect("opens");
        sizes.push(opened.plaintext.len());
        if let Ok(session_proto::onion::Peeled::Relay(r)) = opened.classify() {
            incoming = r.next_body;
        }
    }
    sizes.reverse(); // guard's layer was first; we want innermost first
    sizes
}

/// Interleaved timing (A, B, A, B, …) keeping each side's fastest batch: robust against other
/// processes loading the machine, which inflates criterion's means unevenly.
fn interleaved(
    hops: &[Hop],
    dest: &Destination,
    body: &[u8],
    node_pubs: &[[u8; 32]],
    sizes: &[usize],
) {
    use std::time::Instant;
    const ROUNDS: usize = 150;
    const BATCH: u32 = 10;
    let mut rng = rand::thread_rng();
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
    let mut run = |which: u8, rng: &mut rand::rngs::ThreadRng| match which {
        0 => {
            black_box(build_request(rng, EncType::AesGcm, hops, dest, body).expect("builds"));
        }
        1 => {
            for (i, buf) in bufs.iter_mut().enumerate() {
                let mut a = [0u8; 32];
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut a);
                rng.fill_bytes(&mut nonce);
                black_box(x25519_public(&a));
                let dh = x25519(&a, &node_pubs[3 - i]).expect("dh");
                black_box(gcm_pass(&hmac_key(&dh), &nonce, buf));
            }
        }
        _ => {
            for (i, buf) in bufs.iter_mut().enumerate() {
                let mut a = [0u8; 32];
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut a);
                rng.fill_bytes(&mut nonce);
                let s = x25519_dalek::StaticSecret::from(a);
                black_box(x25519_dalek::PublicKey::from(&s));
                let dh = s.diffie_hellman(&x25519_dalek::PublicKey::from(node_pubs[3 - i]));
                black_box(gcm_pass(&hmac_key(dh.as_bytes()), &nonce, buf));
            }
        }
    };
    let mut best = [f64::INFINITY; 3];
    for _ in 0..ROUNDS {
        for (which, slot) in best.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..BATCH {
                run(which as u8, &mut rng);
            }
            let per = t.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH);
            *slot = slot.min(per);
        }
    }
    println!("\n== interleaved fastest-batch times ({ROUNDS} rounds of {BATCH}) ==");
    println!(
        "build_3hop_1KiB {:.1} µs; primitives {:.1} µs; primitives_x25519_dalek {:.1} µs",
        best[0], best[1], best[2]
    );
    println!(
        "ratio build/primitives = {:.3}x; build/primitives_x25519_dalek = {:.3}x",
        best[0] / best[1],
        best[0] / best[2]
    );
}

fn read_mean_ns(dir: &Path, group: &str, id: &str) -> Option<f64> {
    let p = dir.join(group).join(id).join("new").join("estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let out_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();

    let mut rng = rand::thread_rng();
    let node_keys: Vec<NodeKeys> = (0..4)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            NodeKeys::new(s)
        })
        .collect();
    let node_pubs: Vec<[u8; 32]> = node_keys.iter().map(|k| *k.public()).collect();
    let hops: Vec<Hop> = (0..3)
        .map(|i| Hop::new(node_pubs[i], [i as u8; 32]))
        .collect();
    let dest = Destination::Snode(Hop::new(node_pubs[3], [3; 32]));
    let body = vec![b'x'; BODY_LEN];
    let sizes = layer_sizes(&body, &node_keys);
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();

    {
        let mut g = c.benchmark_group("onion_build");
        g.bench_function("build_3hop_1KiB", |b| {
            b.iter(|| {
                build_request(&mut rng, EncType::AesGcm, black_box(&hops), &dest, &body)
                    .expect("builds")
            })
        });
        g.bench_function("primitives", |b| {
            b.iter(|| {
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let mut a = [0u8; 32];
                    let mut nonce = [0u8; 12];
                    rng.fill_bytes(&mut a);
                    rng.fill_bytes(&mut nonce);
                    black_box(x25519_public(&a));
                    let dh = x25519(&a, &node_pubs[3 - i]).expect("dh");
                    black_box(gcm_pass(&hmac_key(&dh), &nonce, buf));
                }
            })
        });
        g.bench_function("primitives_x25519_dalek", |b| {
            b.iter(|| {
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let mut a = [0u8; 32];
                    let mut nonce = [0u8; 12];
                    rng.fill_bytes(&mut a);
                    rng.fill_bytes(&mut nonce);
                    let s = x25519_dalek::StaticSecret::from(a);
                    black_box(x25519_dalek::PublicKey::from(&s));
                    let dh = s.diffie_hellman(&x25519_dalek::PublicKey::from(node_pubs[3 - i]));
                    black_box(gcm_pass(&hmac_key(dh.as_bytes()), &nonce, buf));
                }
            })
        });
        g.finish();
    }

    // Peel: the guard's layer of a fresh request (a relay hop).
    let req = build_request(&mut rng, EncType::AesGcm, &hops, &dest, &body).expect("builds");
    let guard_layer = *sizes.last().expect("four layers");
    let mut guard_buf = vec![0u8; guard_layer];
    let eph: [u8; 32] = {
        let (_, json) = session_proto::onion::decode_frame(&req.body).expect("frame");
        let v: serde_json::Value = serde_json::from_slice(json).expect("json");
        let mut k = [0u8; 32];
        hex::decode_to_slice(v["ephemeral_key"].as_str().expect("key"), &mut k).expect("hex");
        k
    };
    {
        let mut g = c.benchmark_group("onion_peel");
        g.bench_function("peel_relay_layer", |b| {
            b.iter(
                || match peel(&node_keys[0], black_box(&req.body)).expect("peels") {
                    session_proto::onion::Peeled::Relay(r) => r,
                    _ => unreachable!("guard layer is a relay"),
                },
            )
        });
        g.bench_function("primitives", |b| {
            // Same work as the relay's decryption: one exchange with the layer's ephemeral key,
            // the key derivation and one AES-GCM pass over the layer.
            let secret = [0x42u8; 32];
            b.iter(|| {
                let dh = x25519(&secret, &eph).expect("dh");
                black_box(gcm_pass(&hmac_key(&dh), &[0; 12], &mut guard_buf));
            })
        });
        g.finish();
    }

    {
        // One exchange each way, so the DH choice can be checked on the machine at hand.
        let mut g = c.benchmark_group("x25519");
        let (a, peer) = ([0x11u8; 32], node_pubs[0]);
        let prepared = session_proto::onion::PeerKey::new(peer);
        g.bench_function("edwards_prepared", |b| {
            b.iter(|| prepared.exchange(black_box(&a)).expect("dh"))
        });
        g.bench_function("edwards_from_bytes", |b| {
            b.iter(|| x25519(black_box(&a), &peer).expect("dh"))
        });
        g.bench_function("ladder", |b| {
            b.iter(|| {
                x25519_dalek::StaticSecret::from(black_box(a))
                    .diffie_hellman(&x25519_dalek::PublicKey::from(peer))
            })
        });
        g.finish();
    }

    c.final_summary();

    let ratio = |g: &str, a: &str, b: &str| -> Option<(f64, f64, f64)> {
        let x = read_mean_ns(&out_dir, g, a)?;
        let y = read_mean_ns(&out_dir, g, b)?;
        Some((x, y, x / y))
    };
    interleaved(&hops, &dest, &body, &node_pubs, &sizes);

    println!("\n== onion benchmark ratios (criterion mean times) ==");
    for (g, a, b) in [
        ("onion_build", "build_3hop_1KiB", "primitives"),
        ("onion_build", "build_3hop_1KiB", "primitives_x25519_dalek"),
        ("onion_peel", "peel_relay_layer", "primitives"),
        ("x25519", "edwards_prepared", "ladder"),
        ("x25519", "edwards_from_bytes", "ladder"),
    ] {
        match ratio(g, a, b) {
            Some((x, y, r)) => println!(
                "{g}: {a} {:.1} µs / {b} {:.1} µs = {r:.3}x",
                x / 1e3,
                y / 1e3
            ),
            None => println!("{g}: {a} vs {b}: no estimates (benchmark filtered out?)"),
        }
    }
}
