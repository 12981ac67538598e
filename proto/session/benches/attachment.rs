//! Attachment encryption of a 10 MB file next to the bare primitives it uses.
//!
//! Criterion measures:
//! - `encrypt_10mb/legacy`: [`LegacyEncryptor`] fed 64 KiB chunks, its output drained after
//!   each one as an upload would (padding, AES-256-CBC, HMAC-SHA256, SHA-256 digest).
//! - `encrypt_10mb/baseline`: the same bytes through `cbc` (PKCS#7) and `hmac` in one call.
//! - `decrypt_10mb/legacy`: [`LegacyDecryptor`] fed 64 KiB chunks (digest, MAC, CBC, PKCS#7).
//! - `decrypt_10mb/baseline`: HMAC verify, then `cbc` decrypt in one call.
//! - `stream_10mb/encrypt` and `/decrypt`: libsession's stream scheme, for reference.
//!
//! Afterwards the pairs are timed again in interleaved rounds (same machine load for both) and
//! the ratios `legacy / baseline` are printed, also against a baseline that adds the SHA-256
//! digest the scheme requires (so the cost of the implementation itself shows).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use criterion::{criterion_group, Criterion};
use hmac::{Hmac, Mac};
use rand::{RngCore, SeedableRng};
use session_proto::attachment::stream::{self, Domain, Kdf, StreamKey};
use session_proto::attachment::{legacy, LegacyDecryptor, LegacyEncryptor, StreamDecryptor};
use session_proto::attachment::{StreamEncryptor, MAX_ATTACHMENT_SIZE};
use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;
const KEY: [u8; 64] = [7; 64];
const IV: [u8; 16] = [9; 16];

struct Fixture {
    data: Vec<u8>,
    blob: Vec<u8>,
    digest: [u8; 32],
    baseline_ct: Vec<u8>,
    baseline_tag: Vec<u8>,
    skey: StreamKey,
    sblob: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut data = vec![0u8; MAX_ATTACHMENT_SIZE as usize];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
    let (blob, digest) = legacy::encrypt(&KEY, &IV, &data).expect("10 MB is allowed");
    let (baseline_ct, baseline_tag) = baseline_encrypt(&data);
    let (sblob, skey) =
        stream::encrypt(&[3; 32], Domain::Attachment, Kdf::Personal, &data).expect("fits");
    Fixture {
        data,
        blob,
        digest,
        baseline_ct,
        baseline_tag,
        skey,
        sblob,
    }
}

/// `AES-256-CBC-PKCS7(data)` and `HMAC-SHA256(iv ‖ ct)` with the primitive crates.
fn baseline_encrypt(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut ct = Vec::with_capacity(data.len() + 16);
    ct.extend_from_slice(data);
    ct.resize(data.len() + 16 - data.len() % 16, 0);
    let n = cbc::Encryptor::<aes::Aes256>::new((&KEY[..32]).into(), (&IV).into())
        .encrypt_padded_mut::<Pkcs7>(&mut ct, data.len())
        .expect("room for the padding")
        .len();
    ct.truncate(n);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&KEY[32..]).expect("key");
    mac.update(&IV);
    mac.update(&ct);
    (ct, mac.finalize().into_bytes().to_vec())
}

/// Verify the HMAC, then decrypt and unpad, with the primitive crates.
fn baseline_decrypt(ct: &[u8], tag: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&KEY[32..]).expect("key");
    mac.update(&IV);
    mac.update(ct);
    mac.verify_slice(tag).expect("bench input verifies");
    let mut buf = ct.to_vec();
    let n = cbc::Decryptor::<aes::Aes256>::new((&KEY[..32]).into(), (&IV).into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .expect("bench input unpads")
        .len();
    buf.truncate(n);
    buf
}

fn legacy_encrypt(data: &[u8]) -> [u8; 32] {
    let mut enc = LegacyEncryptor::new(&KEY, &IV, data.len() as u64).expect("allowed");
    let mut out = Vec::with_capacity(CHUNK + 64);
    for c in data.chunks(CHUNK) {
        enc.update(c, &mut out).expect("declared length");
        black_box(&out);
        out.clear();
    }
    let d = enc.finish(&mut out).expect("finishes");
    black_box(&out);
    d
}

fn legacy_decrypt(blob: &[u8], digest: &[u8; 32], size: u64) {
    let mut dec = LegacyDecryptor::new(&KEY, digest, Some(size)).expect("pointer");
    let mut out = Vec::with_capacity(CHUNK + 64);
    for c in blob.chunks(CHUNK) {
        dec.update(c, &mut out).expect("decrypts");
        black_box(&out);
        out.clear();
    }
    dec.finish(&mut out).expect("verifies");
    black_box(&out);
}

fn stream_encrypt(key: &StreamKey, data: &[u8]) {
    let mut enc = StreamEncryptor::new(key, data.len() as u64, false).expect("allowed");
    let mut out = Vec::with_capacity(2 * CHUNK);
    for c in data.chunks(CHUNK) {
        enc.update(c, &mut out).expect("declared length");
        black_box(&out);
        out.clear();
    }
    enc.finish(&mut out).expect("finishes");
}

fn stream_decrypt(key: &StreamKey, blob: &[u8]) {
    let mut dec = StreamDecryptor::new(&key.key[..]).expect("key");
    let mut out = Vec::with_capacity(2 * CHUNK);
    for c in blob.chunks(CHUNK) {
        dec.update(c, &mut out).expect("decrypts");
        black_box(&out);
        out.clear();
    }
    dec.finish(&mut out).expect("verifies");
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let size = f.data.len() as u64;
    let mut g = c.benchmark_group("encrypt_10mb");
    g.sample_size(10);
    g.bench_function("legacy", |b| b.iter(|| legacy_encrypt(black_box(&f.data))));
    g.bench_function("baseline", |b| {
        b.iter(|| baseline_encrypt(black_box(&f.data)))
    });
    g.finish();
    let mut g = c.benchmark_group("decrypt_10mb");
    g.sample_size(10);
    g.bench_function("legacy", |b| {
        b.iter(|| legacy_decrypt(black_box(&f.blob), &f.digest, size))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| baseline_decrypt(black_box(&f.baseline_ct), &f.baseline_tag))
    });
    g.finish();
    let mut g = c.benchmark_group("stream_10mb");
    g.sample_size(10);
    g.bench_function("encrypt", |b| {
        b.iter(|| stream_encrypt(&f.skey, black_box(&f.data)))
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| stream_decrypt(&f.skey, black_box(&f.sblob)))
    });
    g.finish();
}

/// Median time of each closure, timed in alternating rounds.
fn interleaved(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut times = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            f();
            t.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[rounds / 2]
        })
        .collect()
}

fn ratios() {
    let f = fixture();
    let size = f.data.len() as u64;
    let sha = |b: &[u8]| black_box(Sha256::digest(b));
    let rounds = 9;
    let enc = interleaved(
        rounds,
        &mut [
            &mut || {
                black_box(legacy_encrypt(&f.data));
            },
            &mut || {
                black_box(baseline_encrypt(&f.data));
            },
            &mut || {
                let (ct, _) = baseline_encrypt(&f.data);
                sha(&ct);
            },
            &mut || stream_encrypt(&f.skey, &f.data),
        ],
    );
    let dec = interleaved(
        rounds,
        &mut [
            &mut || legacy_decrypt(&f.blob, &f.digest, size),
            &mut || {
                black_box(baseline_decrypt(&f.baseline_ct, &f.baseline_tag));
            },
            &mut || {
                sha(&f.blob);
                black_box(baseline_decrypt(&f.baseline_ct, &f.baseline_tag));
            },
            &mut || stream_decrypt(&f.skey, &f.sblob),
        ],
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let mbs = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!();
    println!("interleaved medians ({rounds} rounds, 10,000,000 bytes, 64 KiB chunks):");
    println!(
        "  encrypt: legacy {:?} ({:.0} MB/s)  baseline AES-CBC+HMAC {:?}  ratio {:.3}; \
         vs baseline+SHA-256 digest {:?} ratio {:.3}",
        enc[0],
        mbs(enc[0]),
        enc[1],
        r(enc[0], enc[1]),
        enc[2],
        r(enc[0], enc[2])
    );
    println!(
        "  decrypt: legacy {:?} ({:.0} MB/s)  baseline AES-CBC+HMAC {:?}  ratio {:.3}; \
         vs baseline+SHA-256 digest {:?} ratio {:.3}",
        dec[0],
        mbs(dec[0]),
        dec[1],
        r(dec[0], dec[1]),
        dec[2],
        r(dec[0], dec[2])
    );
    println!(
        "  stream scheme (reference): encrypt {:?} ({:.0} MB/s, ratio {:.3} to the AES-CBC+HMAC \
         baseline), decrypt {:?} ({:.0} MB/s, ratio {:.3})",
        enc[3],
        mbs(enc[3]),
        r(enc[3], enc[1]),
        dec[3],
        mbs(dec[3]),
        r(dec[3], dec[1])
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs this binary without `--bench`: skip the timing loops there.
    if std::env::args().any(|a| a == "--bench") {
        ratios();
    }
}
