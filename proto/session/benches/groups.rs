//! Group message encrypt and decrypt (1 KiB of text) next to the bare XChaCha20-Poly1305 +
//! Ed25519 of the same bytes.
//!
//! Criterion measures:
//! - `group_encrypt_1k/session`: [`encrypt_group_message`] (Content → Envelope with decoy
//!   proSig, zstd attempt, bt payload, signature over payload ‖ group key, padding, AEAD).
//! - `group_encrypt_1k/no_compression`: [`encrypt_group_data`] of the Envelope bytes without the
//!   zstd attempt.
//! - `group_encrypt_1k/baseline`: Ed25519 over the same Envelope bytes ‖ group key, then
//!   XChaCha20-Poly1305 of those bytes, with the primitive crates.
//! - `group_decrypt_1k/session`: [`decrypt_group_message`] (every receiver check, Content decode).
//! - `group_decrypt_1k/baseline`: XChaCha20-Poly1305 open and Ed25519 verify by hand.
//!
//! Afterwards the pairs are timed again in interleaved rounds (both see the same machine load)
//! and the ratios `session / baseline` are printed.

#[path = "common/interleave.rs"]
mod interleave;
use interleave::interleaved;

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, Criterion};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use session_proto::groups::keys::GroupKeys;
use session_proto::groups::message::{
    decrypt_group_message, encrypt_group_data, encrypt_group_message, group_envelope,
};
use session_proto::groups::GroupAdminKeys;
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use session_proto::protos::Content;

const TS: u64 = 1_700_000_000_000;

struct Fixture {
    member: IdentityKeys,
    member_sk: SigningKey,
    keys: GroupKeys,
    group_pk: [u8; 32],
    key: [u8; 32],
    content: Content,
    envelope: Vec<u8>,
    session_ct: Vec<u8>,
    baseline_ct: Vec<u8>,
}

fn fixture() -> Fixture {
    let member = IdentityKeys::from_seed(&[1u8; 32]);
    let group = GroupAdminKeys::from_seed(&[2u8; 32]);
    let mut keys = GroupKeys::for_admin(Some(&member), group.clone()).expect("admin keys");
    let msg = keys.rekey(&[*member.account_id()]).expect("rekey");
    keys.load_key_message("h", &msg, TS).expect("loads");
    let key = *keys.encryption_key().expect("key").key();
    // 1 KiB of text that does not compress to nothing (a fair zstd attempt).
    let mut rng = StdRng::seed_from_u64(1);
    let mut raw = [0u8; 512];
    rng.fill_bytes(&mut raw);
    let body = hex::encode(raw);
    let content = text_content(&body, Some("Member"), TS);
    let envelope = group_envelope(&content, TS, Some([7; 64]));
    let session_ct =
        encrypt_group_message(&member, &keys, &content, TS, &mut rng).expect("encrypts");
    let member_sk = SigningKey::from_bytes(member.seed());
    let group_pk = *group.public_key();
    let baseline_ct = baseline_seal(&member_sk, &group_pk, &key, &envelope, &mut rng);
    Fixture {
        member,
        member_sk,
        keys,
        group_pk,
        key,
        content,
        envelope,
        session_ct,
        baseline_ct,
    }
}

/// `nonce ‖ XChaCha20-Poly1305(data ‖ sig)`, sig = Ed25519(data ‖ group_pk).
fn baseline_seal(
    sk: &SigningKey,
    group_pk: &[u8; 32],
    key: &[u8; 32],
    data: &[u8],
    rng: &mut StdRng,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(data.len() + 64);
    buf.extend_from_slice(data);
    buf.extend_from_slice(group_pk);
    let sig = sk.sign(&buf);
    buf.truncate(data.len());
    buf.extend_from_slice(&sig.to_bytes());
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), buf.as_slice())
        .expect("encrypts");
    [&nonce[..], &ct].concat()
}

fn baseline_open(vk: &VerifyingKey, group_pk: &[u8; 32], key: &[u8; 32], ct: &[u8]) -> Vec<u8> {
    let mut buf = XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(&ct[..24]), &ct[24..])
        .expect("opens");
    let n = buf.len() - 64;
    let sig = Signature::from_bytes(&buf[n..].try_into().expect("64"));
    buf.truncate(n);
    buf.extend_from_slice(group_pk);
    vk.verify_strict(&buf, &sig).expect("verifies");
    buf.truncate(n);
    buf
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let vk = f.member_sk.verifying_key();
    let mut rng = StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("group_encrypt_1k");
    g.bench_function("session", |b| {
        b.iter(|| encrypt_group_message(&f.member, &f.keys, black_box(&f.content), TS, &mut rng))
    });
    g.bench_function("no_compression", |b| {
        let key = f.keys.encryption_key().expect("key");
        b.iter(|| {
            encrypt_group_data(
                &f.member,
                &f.group_pk,
                key,
                black_box(&f.envelope),
                false,
                &mut rng,
            )
        })
    });
    g.bench_function("baseline", |b| {
        b.iter(|| {
            baseline_seal(
                &f.member_sk,
                &f.group_pk,
                &f.key,
                black_box(&f.envelope),
                &mut rng,
            )
        })
    });
    g.finish();
    let mut g = c.benchmark_group("group_decrypt_1k");
    g.bench_function("session", |b| {
        b.iter(|| decrypt_group_message(&f.keys, black_box(&f.session_ct)).expect("opens"))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| baseline_open(&vk, &f.group_pk, &f.key, black_box(&f.baseline_ct)))
    });
    g.finish();
}

fn ratios() {
    let f = fixture();
    let vk = f.member_sk.verifying_key();
    let key = f.keys.encryption_key().expect("key");
    let (mut r1, mut r2) = (StdRng::seed_from_u64(3), StdRng::seed_from_u64(4));
    let (rounds, iters) = (21, 200);
    let base = |r: &mut StdRng| {
        black_box(baseline_seal(
            &f.member_sk,
            &f.group_pk,
            &f.key,
            &f.envelope,
            r,
        ));
    };
    let (es, eb) = interleaved(
        rounds,
        iters,
        || {
            black_box(
                encrypt_group_message(&f.member, &f.keys, &f.content, TS, &mut r1).expect("enc"),
            );
        },
        || base(&mut r2),
    );
    let (ns, nb) = interleaved(
        rounds,
        iters,
        || {
            black_box(
                encrypt_group_data(&f.member, &f.group_pk, key, &f.envelope, false, &mut r1)
                    .expect("enc"),
            );
        },
        || base(&mut r2),
    );
    let (ds, db) = interleaved(
        rounds,
        iters,
        || {
            black_box(decrypt_group_message(&f.keys, &f.session_ct).expect("opens"));
        },
        || {
            black_box(baseline_open(&vk, &f.group_pk, &f.key, &f.baseline_ct));
        },
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!("interleaved medians ({rounds} rounds x {iters} calls, 1 KiB text, group messages):");
    println!(
        "  encrypt: session {es:?}  baseline (Ed25519 + XChaCha20-Poly1305) {eb:?}  ratio {:.3}",
        r(es, eb)
    );
    println!(
        "  encrypt without the zstd attempt: {ns:?}  baseline {nb:?}  ratio {:.3}",
        r(ns, nb)
    );
    println!(
        "  decrypt: session {ds:?}  baseline (open + verify) {db:?}  ratio {:.3}",
        r(ds, db)
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
