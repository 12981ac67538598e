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

    c.final_summary();

    let ratio = |g: &str, a: &str, b: &str| -> Option<(f64, f64, f64)> {
        let x = read_mean_ns(&out_dir, g, a)?;
        let y = read_mean_ns(&out_dir, g, b)?;
        Some((x, y, x / y))
    };
    println!("\n== onion benchmark ratios (mean times) ==");
    for (g, a, b) in [
        ("onion_build", "build_3hop_1KiB", "primitives"),
        ("onion_build", "build_3hop_1KiB", "primitives_x25519_dalek"),
        ("onion_peel", "peel_relay_layer", "primitives"),
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
