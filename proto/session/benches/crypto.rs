//! One-to-one message encrypt and decrypt (1 KiB of text) next to the bare primitives they use.
//!
//! Criterion measures four functions:
//! - `encrypt_1k/session`: [`encrypt_message`] (Content encode, pad, sign, seal, decoy proSig,
//!   Envelope, WebSocketMessage).
//! - `encrypt_1k/baseline`: the same padded bytes signed with `ed25519-dalek` and sealed with
//!   x25519 + HSalsa20 + BLAKE2b + XSalsa20-Poly1305 by hand.
//! - `decrypt_1k/session`: [`decrypt_message`] (every receiver check, Content decode).
//! - `decrypt_1k/baseline`: the sealed box opened and the signature verified by hand.
//!
//! Afterwards the bench times the pairs again in interleaved rounds (so both see the same
//! machine load) and prints the ratios `session / baseline`. The goal for encrypt is ≤ 1.2.

#[path = "common/interleave.rs"]
mod interleave;
use interleave::interleaved;

use std::hint::black_box;
use std::time::Duration;

use blake2::digest::consts::U24;
use blake2::{Blake2b, Digest};
use criterion::{criterion_group, Criterion};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use salsa20::cipher::consts::U10;
use session_proto::keys::IdentityKeys;
use session_proto::message::{
    decrypt_message, decrypt_message_with, encrypt_message, encrypt_message_deterministic,
    text_content, SenderKeys,
};
use session_proto::padding;
use x25519_dalek::{PublicKey, StaticSecret};
use xsalsa20poly1305::aead::Aead;
use xsalsa20poly1305::{KeyInit, XSalsa20Poly1305};

const TS: u64 = 1_700_000_000_000;

struct Fixture {
    alice: IdentityKeys,
    bob: IdentityKeys,
    alice_sk: SigningKey,
    content: session_proto::protos::Content,
    padded: Vec<u8>,
    session_ws: Vec<u8>,
    baseline_ct: Vec<u8>,
}

fn fixture() -> Fixture {
    let alice = IdentityKeys::from_seed(&[1u8; 32]);
    let bob = IdentityKeys::from_seed(&[2u8; 32]);
    let body: String = "0123456789abcdef".repeat(64); // 1 KiB
    let content = text_content(&body, Some("Alice"), TS);
    let padded = padding::pad160(&content.encode_to_vec());
    let mut rng = StdRng::seed_from_u64(1);
    let session_ws = encrypt_message(&alice, bob.account_id(), &content, TS, &mut rng)
        .expect("bob is a standard account");
    let alice_sk = SigningKey::from_bytes(alice.seed());
    let baseline_ct = baseline_seal(&alice_sk, bob.x25519_public(), &padded, &mut rng);
    Fixture {
        alice,
        bob,
        alice_sk,
        content,
        padded,
        session_ws,
        baseline_ct,
    }
}

/// Sign `P || A || Y`, then `crypto_box_seal(P || A || SIG, Y)`, with the primitive crates.
fn baseline_seal(sk: &SigningKey, y: &[u8; 32], padded: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let a = sk.verifying_key().to_bytes();
    let mut buf = Vec::with_capacity(padded.len() + 96);
    buf.extend_from_slice(padded);
    buf.extend_from_slice(&a);
    buf.extend_from_slice(y);
    let sig = sk.sign(&buf);
    buf.truncate(padded.len() + 32);
    buf.extend_from_slice(&sig.to_bytes());

    let e = StaticSecret::random_from_rng(rng);
    let epk = PublicKey::from(&e).to_bytes();
    let shared = e.diffie_hellman(&PublicKey::from(*y));
    let key = salsa20::hsalsa::<U10>(shared.as_bytes().into(), &Default::default());
    let mut h = Blake2b::<U24>::new();
    h.update(epk);
    h.update(y);
    let nonce = h.finalize();
    let boxed = XSalsa20Poly1305::new(&key)
        .encrypt(&nonce, buf.as_slice())
        .expect("XSalsa20 takes any Vec");
    let mut out = Vec::with_capacity(32 + boxed.len());
    out.extend_from_slice(&epk);
    out.extend_from_slice(&boxed);
    out
}

/// `crypto_box_seal_open`, then verify the signature over `M || A || Y`, with the primitives.
fn baseline_open(x_sk: &StaticSecret, y: &[u8; 32], ct: &[u8]) -> Vec<u8> {
    let epk: [u8; 32] = ct[..32].try_into().expect("bench input");
    let shared = x_sk.diffie_hellman(&PublicKey::from(epk));
    let key = salsa20::hsalsa::<U10>(shared.as_bytes().into(), &Default::default());
    let mut h = Blake2b::<U24>::new();
    h.update(epk);
    h.update(y);
    let nonce = h.finalize();
    let mut inner = XSalsa20Poly1305::new(&key)
        .decrypt(&nonce, &ct[32..])
        .expect("bench input opens");
    let m_len = inner.len() - 96;
    let a: [u8; 32] = inner[m_len..m_len + 32].try_into().expect("bench input");
    let sig = ed25519_dalek::Signature::from_bytes(&inner[m_len + 32..].try_into().expect("64"));
    inner.truncate(m_len + 32);
    inner.extend_from_slice(y);
    VerifyingKey::from_bytes(&a)
        .expect("bench key")
        .verify_strict(&inner, &sig)
        .expect("bench signature verifies");
    inner.truncate(m_len);
    inner
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut rng = StdRng::seed_from_u64(2);

    let mut g = c.benchmark_group("encrypt_1k");
    g.bench_function("session", |b| {
        b.iter(|| {
            encrypt_message(
                &f.alice,
                black_box(f.bob.account_id()),
                black_box(&f.content),
                TS,
                &mut rng,
            )
        })
    });
    g.bench_function("baseline", |b| {
        b.iter(|| {
            baseline_seal(
                &f.alice_sk,
                f.bob.x25519_public(),
                black_box(&f.padded),
                &mut rng,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decrypt_1k");
    g.bench_function("session", |b| {
        b.iter(|| decrypt_message(&f.bob, black_box(&f.session_ws)).expect("opens"))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| {
            baseline_open(
                f.bob.x25519_secret(),
                f.bob.x25519_public(),
                black_box(&f.baseline_ct),
            )
        })
    });
    g.finish();
}

fn ratios() {
    let f = fixture();
    let mut rng = StdRng::seed_from_u64(3);
    let mut rng2 = StdRng::seed_from_u64(4);
    let (rounds, iters) = (21, 200);
    let (es, eb) = interleaved(
        rounds,
        iters,
        || {
            black_box(
                encrypt_message(&f.alice, f.bob.account_id(), &f.content, TS, &mut rng)
                    .expect("encrypts"),
            );
        },
        || {
            black_box(baseline_seal(
                &f.alice_sk,
                f.bob.x25519_public(),
                &f.padded,
                &mut rng2,
            ));
        },
    );
    let (ds, db) = interleaved(
        rounds,
        iters,
        || {
            black_box(decrypt_message(&f.bob, &f.session_ws).expect("opens"));
        },
        || {
            black_box(baseline_open(
                f.bob.x25519_secret(),
                f.bob.x25519_public(),
                &f.baseline_ct,
            ));
        },
    );
    // As a poller decrypts: with its cache of senders' checked keys (a sender seen before).
    let mut senders = SenderKeys::new();
    let (dcs, dcb) = interleaved(
        rounds,
        iters,
        || {
            black_box(decrypt_message_with(&f.bob, &f.session_ws, &mut senders).expect("opens"));
        },
        || {
            black_box(baseline_open(
                f.bob.x25519_secret(),
                f.bob.x25519_public(),
                &f.baseline_ct,
            ));
        },
    );
    // For reference: the same pipeline without the decoy proSig (the deterministic variant).
    let mut rng3 = StdRng::seed_from_u64(5);
    let (ns, nb) = interleaved(
        rounds,
        iters,
        || {
            black_box(
                encrypt_message_deterministic(&f.alice, f.bob.account_id(), &f.content, TS)
                    .expect("encrypts"),
            );
        },
        || {
            black_box(baseline_seal(
                &f.alice_sk,
                f.bob.x25519_public(),
                &f.padded,
                &mut rng3,
            ));
        },
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!("interleaved medians ({rounds} rounds x {iters} calls, 1 KiB text):");
    println!(
        "  encrypt: session {es:?}  baseline (sign + seal) {eb:?}  ratio {:.3} (goal <= 1.2)",
        r(es, eb)
    );
    println!(
        "  encrypt without decoy proSig: {ns:?}  baseline {nb:?}  ratio {:.3}",
        r(ns, nb)
    );
    println!(
        "  decrypt: session {ds:?}  baseline (open + verify) {db:?}  ratio {:.3}",
        r(ds, db)
    );
    println!(
        "  decrypt with the sender-key cache (a known sender, as pollers do): {dcs:?}  \
         baseline {dcb:?}  ratio {:.3} (goal <= 1.2)",
        r(dcs, dcb)
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs this binary without `--bench` (criterion's test mode): skip the
    // timing loops there.
    if std::env::args().any(|a| a == "--bench") {
        ratios();
    }
}
