//! Community room messages: a poll page of 100 posts parsed and verified, next to bare Ed25519
//! verification of the same bytes; and posting next to a bare Ed25519 signature.
//!
//! Criterion measures:
//! - `read_100/session`: the `messages/since` JSON body → [`RoomMessage`] rows →
//!   [`read_room_message`] each (base64, blinded-key signature check, unpad, Content decode,
//!   timestamp check).
//! - `read_100/baseline`: 100 `ed25519-dalek` verifications of the already decoded data with
//!   already parsed keys (the floor: the one step that cannot be skipped).
//! - `post/session`: [`encode_room_message`] (Content encode, pad, blind15 signature, base64).
//! - `post/baseline`: an `ed25519-dalek` signature over the same padded bytes.
//!
//! Afterwards it times each pair in interleaved rounds and prints messages per second and the
//! ratio `session / baseline`.

#[path = "common/interleave.rs"]
mod interleave;
use interleave::interleaved;

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, Criterion};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use prost::Message as _;
use session_proto::community::api::RoomMessage;
use session_proto::community::{encode_room_message, read_room_message, Blind15Keys, RoomUpdate};
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use session_proto::padding;

const N: usize = 100;
const TS: u64 = 1_700_000_000_000;

struct Fixture {
    page: Vec<u8>,
    /// (key, data, signature) as the baseline sees them: decoded once, up front.
    raw: Vec<(VerifyingKey, Vec<u8>, Signature)>,
    poster: Blind15Keys,
    plain: SigningKey,
    content: session_proto::protos::Content,
    padded: Vec<u8>,
}

fn fixture() -> Fixture {
    let server = [0x42u8; 32];
    let posters: Vec<Blind15Keys> = (0..10u8)
        .map(|i| Blind15Keys::new(&IdentityKeys::from_seed(&[i + 1; 32]), &server))
        .collect();
    let mut rows = Vec::with_capacity(N);
    let mut raw = Vec::with_capacity(N);
    for i in 0..N {
        let who = &posters[i % posters.len()];
        let text = format!("message {i}: {}", "a typical chat line of text ".repeat(3));
        let content = text_content(&text, Some("poster"), TS + i as u64);
        let post = encode_room_message(who, &content);
        let b64 = base64::engine::general_purpose::STANDARD;
        raw.push((
            VerifyingKey::from_bytes(who.public()).expect("blinded keys are points"),
            b64.decode(&post.data).expect("own base64"),
            Signature::from_bytes(
                &b64.decode(&post.signature)
                    .expect("own base64")
                    .try_into()
                    .expect("64 bytes"),
            ),
        ));
        rows.push(RoomMessage {
            id: i as i64 + 1,
            seqno: i as i64 + 1,
            session_id: Some(who.id().to_string()),
            posted: Some((TS + i as u64) as f64 / 1000.0),
            data: Some(Some(post.data)),
            signature: Some(post.signature),
            reactions: Some(Default::default()),
            ..Default::default()
        });
    }
    let page = serde_json::to_vec(&rows).expect("rows serialise");
    let poster = Blind15Keys::new(&IdentityKeys::from_seed(&[99; 32]), &server);
    let plain = SigningKey::from_bytes(&[99; 32]);
    let content = text_content(
        "Hello community, a post of ordinary length.",
        Some("me"),
        TS,
    );
    let padded = padding::pad160(&content.encode_to_vec());
    Fixture {
        page,
        raw,
        poster,
        plain,
        content,
        padded,
    }
}

fn read_page(page: &[u8]) -> usize {
    let rows: Vec<RoomMessage> = serde_json::from_slice(page).expect("a page");
    rows.iter()
        .filter(|r| matches!(read_room_message(r), Ok(RoomUpdate::Post(_))))
        .count()
}

fn verify_raw(raw: &[(VerifyingKey, Vec<u8>, Signature)]) -> usize {
    raw.iter()
        .filter(|(k, d, s)| k.verify(d, s).is_ok())
        .count()
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    assert_eq!(read_page(&f.page), N, "every post verifies");
    assert_eq!(verify_raw(&f.raw), N);
    let mut g = c.benchmark_group("read_100");
    g.bench_function("session", |b| b.iter(|| read_page(black_box(&f.page))));
    g.bench_function("baseline", |b| b.iter(|| verify_raw(black_box(&f.raw))));
    g.finish();
    let mut g = c.benchmark_group("post");
    g.bench_function("session", |b| {
        b.iter(|| encode_room_message(&f.poster, black_box(&f.content)))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| f.plain.sign(black_box(&f.padded)))
    });
    g.finish();
}

fn ratios() {
    let f = fixture();
    let (s, b) = interleaved(
        15,
        20,
        || {
            black_box(read_page(black_box(&f.page)));
        },
        || {
            black_box(verify_raw(black_box(&f.raw)));
        },
    );
    let per_s = |d: Duration| N as f64 / d.as_secs_f64();
    println!(
        "community read: {:.0} msgs/s parsed+verified vs {:.0} msgs/s bare Ed25519 verify; ratio session/baseline time = {:.2}",
        per_s(s),
        per_s(b),
        s.as_secs_f64() / b.as_secs_f64()
    );
    let (s, b) = interleaved(
        15,
        500,
        || {
            black_box(encode_room_message(&f.poster, black_box(&f.content)));
        },
        || {
            black_box(f.plain.sign(black_box(&f.padded)));
        },
    );
    println!(
        "community post: {:.0} posts/s encoded+blind-signed vs {:.0} sigs/s bare Ed25519 sign; ratio = {:.2}",
        1.0 / s.as_secs_f64(),
        1.0 / b.as_secs_f64(),
        s.as_secs_f64() / b.as_secs_f64()
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
