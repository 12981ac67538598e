//! Merging and encrypting a Contacts config of 2,000 contacts, next to bare zstd + XChaCha20 of
//! the same bytes.
//!
//! Two devices start from the same 2,000-contact message and each changes 20 contacts; one
//! iteration of `config/merge_encrypt` is what a device does with the two messages:
//! [`ConfigMessage::merge`], serialize, zstd level 1, pad, and the deterministic encryption.
//! `config/baseline` compresses the merged message's bytes with zstd level 1 and encrypts them
//! with XChaCha20-Poly1305 under a fixed key and nonce. The bench then times both in interleaved
//! rounds and prints the ratio `merge_encrypt / baseline`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, Criterion};
use session_proto::account_id::AccountId;
use session_proto::config::contacts::{self, Contact};
use session_proto::config::crypt;
use session_proto::config::message::{ConfigMessage, DEFAULT_LAG};

const CONTACTS: u32 = 2_000;

struct Fixture {
    a: Vec<u8>,
    b: Vec<u8>,
    merged: Vec<u8>,
    key: [u8; 32],
}

fn contact(i: u32, name: &str) -> Contact {
    let mut pk = [0x42u8; 32];
    pk[..4].copy_from_slice(&i.to_be_bytes());
    let mut c = Contact::new(AccountId::standard(pk));
    c.name = format!("{name} {i}");
    c.approved = true;
    c.approved_me = i % 3 != 0;
    c.created = 1_700_000_000 + i as i64;
    c
}

fn fixture() -> Fixture {
    let mut base = ConfigMessage::new(DEFAULT_LAG).increment(None);
    let d = base.data_mut().expect("mutable");
    for i in 0..CONTACTS {
        contacts::set(d, &contact(i, "Contact")).expect("valid contact");
    }
    let base = base.increment(None);
    let mut a = base.increment(None);
    let mut b = base.increment(None);
    for i in 0..20 {
        let da = a.data_mut().expect("mutable");
        contacts::set(da, &contact(i * 7, "Renamed on A")).expect("valid");
        let db = b.data_mut().expect("mutable");
        contacts::set(db, &contact(i * 11 + 3, "Renamed on B")).expect("valid");
    }
    let (a, b) = (a.serialize(None), b.serialize(None));
    let merged = merge_encrypt_plain(&a, &b);
    Fixture {
        a,
        b,
        merged,
        key: [7; 32],
    }
}

fn merge_encrypt_plain(a: &[u8], b: &[u8]) -> Vec<u8> {
    ConfigMessage::merge(&[a, b], None, false, DEFAULT_LAG)
        .expect("both parse")
        .message
        .into_mutable(false)
        .serialize(None)
}

fn merge_encrypt(f: &Fixture) -> Vec<u8> {
    let bytes = merge_encrypt_plain(&f.a, &f.b);
    let padded = crypt::pad(crypt::compress(bytes, crypt::COMPRESSION_LEVEL));
    crypt::encrypt(&padded, &f.key, "Contacts")
}

fn baseline(f: &Fixture) -> Vec<u8> {
    let mut buf = zstd::bulk::compress(&f.merged, crypt::COMPRESSION_LEVEL).expect("compresses");
    let cipher = XChaCha20Poly1305::new((&f.key).into());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&[1; 24]), b"", &mut buf)
        .expect("encrypts");
    buf.extend_from_slice(&tag);
    buf
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("config");
    g.sample_size(20);
    g.bench_function("merge_encrypt", |b| b.iter(|| merge_encrypt(black_box(&f))));
    g.bench_function("baseline", |b| b.iter(|| baseline(black_box(&f))));
    g.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ratios() {
    let f = fixture();
    let (rounds, iters) = (15, 5);
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(merge_encrypt(&f));
        }
        s.push(t.elapsed() / iters);
        let t = Instant::now();
        for _ in 0..iters {
            black_box(baseline(&f));
        }
        b.push(t.elapsed() / iters);
    }
    let (s, b) = (median(s), median(b));
    println!();
    println!(
        "interleaved medians ({rounds} rounds x {iters} calls, {CONTACTS} contacts, {} bytes merged):",
        f.merged.len()
    );
    println!(
        "  merge + encrypt {s:?}  baseline (zstd + XChaCha20 of the merged bytes) {b:?}  ratio {:.2}",
        s.as_secs_f64() / b.as_secs_f64()
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
