//! One-to-one messages against the published vectors, every receiver check, and round trips.

use base64::Engine as _;
use proptest::prelude::*;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use session_proto::account_id::AccountId;
use session_proto::err::{ErrorKind, HasKind, KeyError, MessageError};
use session_proto::interaction::{
    extraction_content, interpret, message_content, reaction_content, read_receipt_content,
    request_response_content, timer_update_content, unsend_content, Expiry, ExpiryMode, Extraction,
    Interaction, MessageRef, MAX_TIMER_SECS,
};
use session_proto::keys::IdentityKeys;
use session_proto::message::{
    classify, decrypt_incoming, decrypt_incoming_with, decrypt_message, decrypt_message_with,
    decrypt_store_data, encrypt_for_recipient, encrypt_for_recipient_deterministic,
    encrypt_message, encrypt_message_deterministic, text_content, to_store_data, typing_content,
    ContentKind, SenderKeys, MIN_CIPHERTEXT, TYPING_TTL_MS,
};
use session_proto::padding;
use session_proto::protos::{
    data_message, Content, DataExtractionNotification, DataMessage, Envelope, LokiProfile,
    MessageRequestResponse, ReceiptMessage, TypingMessage, WebSocketMessage,
    WebSocketRequestMessage,
};

const PROTOCOL: &str = include_str!("data/session-protocol-1o1.json");
const WIRE: &str = include_str!("data/derived-1o1-wire-message.json");

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn keys(seed_hex: &Value) -> IdentityKeys {
    IdentityKeys::from_seed(
        &hex::decode(seed_hex.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

struct Pair {
    alice: IdentityKeys,
    bob: IdentityKeys,
}

fn pair() -> Pair {
    let w = json(WIRE);
    Pair {
        alice: keys(&w["sender_ed25519_seed_hex"]),
        bob: keys(&w["recipient_ed25519_seed_hex"]),
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

#[test]
fn libsession_deterministic_vector() {
    let doc = json(PROTOCOL);
    let v = &doc["encrypt_for_recipient_deterministic"];
    let sender = keys(&v["sender_ed25519_seed_hex"]);
    let recipient = keys(&v["recipient_ed25519_seed_hex"]);
    let to: AccountId = v["recipient_account_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(recipient.account_id(), &to);
    let msg = v["message_utf8"].as_str().unwrap().as_bytes();
    let ct = encrypt_for_recipient_deterministic(&sender, to.key(), msg).unwrap();
    assert_eq!(hex::encode(&ct), v["ciphertext_hex"].as_str().unwrap());
    assert_eq!(ct.len() as u64, v["ciphertext_len"].as_u64().unwrap());

    let opened = decrypt_incoming(&recipient, &ct).unwrap();
    let want = &v["decrypt_expect"];
    assert_eq!(
        opened.plaintext,
        want["plaintext_utf8"].as_str().unwrap().as_bytes()
    );
    assert_eq!(
        hex::encode(opened.sender_ed25519),
        want["sender_ed25519_pubkey_hex"].as_str().unwrap()
    );
    assert_eq!(
        opened.sender.to_string(),
        want["sender_account_id"].as_str().unwrap()
    );
    // The sender cannot open what it sealed for someone else.
    assert_eq!(decrypt_incoming(&sender, &ct), Err(MessageError::SealOpen));
}

#[test]
fn derived_wire_vector_bytes_exact() {
    let w = json(WIRE);
    let Pair { alice, bob } = pair();
    let ts = w["timestamp_ms"].as_u64().unwrap();
    let content = text_content("hello from a test vector", None, ts);
    assert_eq!(content.encode_to_vec(), unhex(&w["content_protobuf_hex"]));
    assert_eq!(
        padding::pad160(&content.encode_to_vec()),
        unhex(&w["padded_content_hex"])
    );
    let to: AccountId = w["recipient_account_id"].as_str().unwrap().parse().unwrap();
    let ws = encrypt_message_deterministic(&alice, &to, &content, ts).unwrap();
    assert_eq!(
        hex::encode(&ws),
        w["websocketmessage_hex"].as_str().unwrap()
    );
    assert_eq!(to_store_data(&ws), w["store_data_base64"].as_str().unwrap());

    // The layers inside match too.
    let parsed = WebSocketMessage::decode(ws.as_slice()).unwrap();
    let body = parsed.request.unwrap().body.unwrap();
    assert_eq!(body, unhex(&w["envelope_protobuf_hex"]));
    let env = Envelope::decode(body.as_slice()).unwrap();
    assert_eq!(env.content.unwrap(), unhex(&w["sealed_box_ciphertext_hex"]));
    assert_eq!(env.source_device, Some(1));

    let got = decrypt_store_data(&bob, w["store_data_base64"].as_str().unwrap()).unwrap();
    assert_eq!(
        got.sender.to_string(),
        w["sender_account_id"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(got.sender_ed25519),
        w["sender_ed25519_pubkey_hex"].as_str().unwrap()
    );
    assert_eq!(got.envelope_timestamp, ts);
    assert_eq!(got.content, content);
}

#[test]
fn random_encrypt_round_trip_with_decoy_pro_sig() {
    let Pair { alice, bob } = pair();
    let mut rng = rng();
    let content = text_content("hi bob", Some("Alice"), 1_700_000_000_123);
    let ws = encrypt_message(
        &alice,
        bob.account_id(),
        &content,
        1_700_000_000_123,
        &mut rng,
    )
    .unwrap();
    let again = encrypt_message(
        &alice,
        bob.account_id(),
        &content,
        1_700_000_000_123,
        &mut rng,
    )
    .unwrap();
    assert_ne!(ws, again, "a fresh ephemeral key each time");
    let env = envelope_of(&ws);
    let pro_sig = env.pro_sig.unwrap();
    assert_eq!(pro_sig.len(), 64);
    // R is a valid curve point, like a real signature's.
    let r: [u8; 32] = pro_sig[..32].try_into().unwrap();
    let r_point = curve25519_dalek::edwards::CompressedEdwardsY(r)
        .decompress()
        .unwrap();
    assert!(r_point.is_torsion_free() && !r_point.is_small_order());
    // s is a canonical scalar.
    let s: [u8; 32] = pro_sig[32..].try_into().unwrap();
    assert!(bool::from(
        curve25519_dalek::Scalar::from_canonical_bytes(s).is_some()
    ));
    // Two messages never share a decoy.
    assert_ne!(envelope_of(&again).pro_sig.unwrap(), pro_sig);
    let got = decrypt_message(&bob, &ws).unwrap();
    assert_eq!(&got.sender, alice.account_id());
    assert_eq!(got.content, content);
    let dm = got.content.data_message.unwrap();
    assert_eq!(dm.profile.unwrap().display_name.as_deref(), Some("Alice"));
    // Not for Alice, nor for a third party.
    assert_eq!(decrypt_message(&alice, &ws), Err(MessageError::SealOpen));
}

#[test]
fn only_standard_recipients() {
    let Pair { alice, bob } = pair();
    let group = AccountId::new(
        session_proto::account_id::Prefix::Group,
        *bob.x25519_public(),
    );
    let err = encrypt_message(&alice, &group, &Content::default(), 1, &mut rng()).unwrap_err();
    assert_eq!(err, MessageError::RecipientNotStandard { prefix: 0x03 });
    // A small-order X25519 key (zero) would give an all-zero shared secret.
    let zero = AccountId::standard([0u8; 32]);
    assert_eq!(
        encrypt_message(&alice, &zero, &Content::default(), 1, &mut rng()),
        Err(MessageError::WeakRecipientKey)
    );
}

fn envelope_of(ws: &[u8]) -> Envelope {
    let ws = WebSocketMessage::decode(ws).unwrap();
    Envelope::decode(ws.request.unwrap().body.unwrap().as_slice()).unwrap()
}

fn rewrap(env: &Envelope) -> Vec<u8> {
    WebSocketMessage {
        r#type: Some(1),
        request: Some(WebSocketRequestMessage {
            body: Some(env.encode_to_vec()),
            ..Default::default()
        }),
        response: None,
    }
    .encode_to_vec()
}

#[test]
fn envelope_checks() {
    let Pair { alice, bob } = pair();
    let content = text_content("x", None, 5);
    let ws = encrypt_message(&alice, bob.account_id(), &content, 5, &mut rng()).unwrap();
    let env = envelope_of(&ws);

    // source: absent, empty and 66 hex are fine; anything else is refused.
    for (source, ok) in [
        (None, true),
        (Some(String::new()), true),
        (Some(alice.account_id().to_string()), true),
        (Some("05abc".to_owned()), false),
        (Some("z".repeat(66)), false),
    ] {
        let mut e = env.clone();
        e.source = source;
        let res = decrypt_message(&bob, &rewrap(&e));
        assert_eq!(res.is_ok(), ok, "{res:?}");
        if !ok {
            assert!(matches!(res, Err(MessageError::BadSource { .. })));
        }
    }
    // proSig: absent is fine (old clients), wrong length is not.
    let mut e = env.clone();
    e.pro_sig = None;
    assert!(decrypt_message(&bob, &rewrap(&e)).is_ok());
    e.pro_sig = Some(vec![1; 63]);
    assert_eq!(
        decrypt_message(&bob, &rewrap(&e)),
        Err(MessageError::BadProSig { len: 63 })
    );
    // No content.
    let mut e = env.clone();
    e.content = None;
    assert_eq!(
        decrypt_message(&bob, &rewrap(&e)),
        Err(MessageError::NoContent)
    );
    // Timestamps: equal passes; differ fails; zero on either side is the legacy case.
    let mut e = env.clone();
    e.timestamp = 6;
    assert_eq!(
        decrypt_message(&bob, &rewrap(&e)),
        Err(MessageError::TimestampMismatch {
            envelope: 6,
            content: 5
        })
    );
    e.timestamp = 0;
    assert!(decrypt_message(&bob, &rewrap(&e)).is_ok());
    let legacy = text_content("x", None, 0);
    let ws = encrypt_message(&alice, bob.account_id(), &legacy, 99, &mut rng()).unwrap();
    assert_eq!(decrypt_message(&bob, &ws).unwrap().envelope_timestamp, 99);
    // A WebSocketMessage without a request body.
    let empty = WebSocketMessage::default().encode_to_vec();
    assert_eq!(
        decrypt_message(&bob, &empty),
        Err(MessageError::NoRequestBody)
    );
}

#[test]
fn crypto_checks() {
    let Pair { alice, bob } = pair();
    let y = *bob.x25519_public();
    let ct = encrypt_for_recipient(&alice, &y, b"padded bytes", &mut rng()).unwrap();
    assert!(decrypt_incoming(&bob, &ct).is_ok());

    // Any flipped bit breaks the MAC.
    for i in [0, 31, 32, 47, 48, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[i] ^= 1;
        let err = decrypt_incoming(&bob, &bad).unwrap_err();
        assert_eq!(err, MessageError::SealOpen, "byte {i}");
        assert_eq!(err.kind(), ErrorKind::BadCrypto);
    }
    // Too short.
    assert_eq!(
        decrypt_incoming(&bob, &ct[..MIN_CIPHERTEXT - 1]),
        Err(MessageError::TooShort {
            len: MIN_CIPHERTEXT - 1,
            min: MIN_CIPHERTEXT
        })
    );
    // A signature made for someone else (Y = Alice's own key) does not verify for Bob, even
    // though the box is sealed to Bob: the signature binds the recipient.
    let mut rng = rng();
    let a = *alice.ed25519_public();
    let mut signed = b"some padded content".to_vec();
    signed.extend_from_slice(&a);
    signed.extend_from_slice(alice.x25519_public());
    let wrong_sig = alice.sign(&signed).to_bytes();
    let forwarded = seal_by_hand(&bob, &a, &wrong_sig, &mut rng);
    assert_eq!(
        decrypt_incoming(&bob, &forwarded),
        Err(MessageError::BadSignature)
    );

    // The right signature by hand opens, so the helper is sound.
    let mut signed = b"some padded content".to_vec();
    signed.extend_from_slice(&a);
    signed.extend_from_slice(bob.x25519_public());
    let good = seal_by_hand(&bob, &a, &alice.sign(&signed).to_bytes(), &mut rng);
    assert_eq!(
        &decrypt_incoming(&bob, &good).unwrap().sender,
        alice.account_id()
    );

    // A sender key with a torsion part, and a signature that verifies against it: the
    // signature check passes but the key has no Account ID (libsodium refuses to convert it).
    let (a_torsion, sig) = sign_with_torsion_key(&alice, bob.x25519_public());
    let ct = seal_by_hand(&bob, &a_torsion, &sig, &mut rng);
    let err = decrypt_incoming(&bob, &ct).unwrap_err();
    assert_eq!(
        err,
        MessageError::BadSenderKey(KeyError::NotInPrimeSubgroup)
    );
    assert_eq!(err.kind(), ErrorKind::BadCrypto);
}

/// The sender-key cache gives the same answers as the checks it skips: a known sender's next
/// message opens the same, a bad signature by a known key is still refused, and a key that
/// failed a check (torsion) is never cached, so it fails every time.
#[test]
fn sender_key_cache_changes_nothing_but_the_work() {
    let Pair { alice, bob } = pair();
    let mut senders = SenderKeys::new();
    let mut rng = rng();
    let content = text_content("hi", None, 1_700_000_000_000);
    for _ in 0..3 {
        let ws = encrypt_message(
            &alice,
            bob.account_id(),
            &content,
            1_700_000_000_000,
            &mut rng,
        )
        .unwrap();
        let cached = decrypt_message_with(&bob, &ws, &mut senders).unwrap();
        let fresh = decrypt_message(&bob, &ws).unwrap();
        assert_eq!(cached.sender, fresh.sender);
        assert_eq!(cached.content, fresh.content);
    }
    assert_eq!(senders.len(), 1);
    // Alice's key is cached; a signature of hers made for someone else is still refused.
    let a = *alice.ed25519_public();
    let mut signed = HAND_P.to_vec();
    signed.extend_from_slice(&a);
    signed.extend_from_slice(alice.x25519_public());
    let forwarded = seal_by_hand(&bob, &a, &alice.sign(&signed).to_bytes(), &mut rng);
    assert_eq!(
        decrypt_incoming_with(&bob, &forwarded, &mut senders),
        Err(MessageError::BadSignature)
    );
    // A torsion key fails its check each time and is not kept.
    let (a_torsion, sig) = sign_with_torsion_key(&alice, bob.x25519_public());
    let ct = seal_by_hand(&bob, &a_torsion, &sig, &mut rng);
    for _ in 0..2 {
        assert_eq!(
            decrypt_incoming_with(&bob, &ct, &mut senders),
            Err(MessageError::BadSenderKey(KeyError::NotInPrimeSubgroup))
        );
    }
    assert_eq!(senders.len(), 1);
}

const HAND_P: &[u8] = b"some padded content";

/// Ed25519 signs `HAND_P || A' || y` for `A' = A + T8` (a point of order 8 added), grinding the
/// nonce until the challenge is a multiple of 8 so that `[k]A' = [k]A` and the signature verifies.
fn sign_with_torsion_key(from: &IdentityKeys, y: &[u8; 32]) -> ([u8; 32], [u8; 64]) {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use sha2::{Digest, Sha512};
    let h: [u8; 64] = Sha512::digest(from.seed()).into();
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&h[..32]);
    let a = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(a_bytes));
    let a_point = EdwardsPoint::mul_base(&a);
    assert_eq!(a_point.compress().to_bytes(), *from.ed25519_public());
    let a_torsion = (a_point + curve25519_dalek::constants::EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    let mut msg = HAND_P.to_vec();
    msg.extend_from_slice(&a_torsion);
    msg.extend_from_slice(y);
    for i in 0u64.. {
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(i.to_le_bytes()).into());
        let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
        let mut hk = Sha512::new();
        hk.update(big_r);
        hk.update(a_torsion);
        hk.update(&msg);
        let k = Scalar::from_bytes_mod_order_wide(&hk.finalize().into());
        if k.as_bytes()[0] % 8 != 0 {
            continue;
        }
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        return (a_torsion, sig);
    }
    unreachable!("one in eight nonces works")
}

/// Builds `seal(HAND_P || a || sig)` to `to` with the primitives directly.
fn seal_by_hand(to: &IdentityKeys, a: &[u8; 32], sig: &[u8; 64], rng: &mut StdRng) -> Vec<u8> {
    use blake2::Digest;
    use rand::RngCore;
    use xsalsa20poly1305::aead::Aead;
    use xsalsa20poly1305::KeyInit;
    let mut inner = HAND_P.to_vec();
    inner.extend_from_slice(a);
    inner.extend_from_slice(sig);
    let mut e = [0u8; 32];
    rng.fill_bytes(&mut e);
    let e = x25519_dalek::StaticSecret::from(e);
    let epk = x25519_dalek::PublicKey::from(&e).to_bytes();
    let shared = e.diffie_hellman(&x25519_dalek::PublicKey::from(*to.x25519_public()));
    let key = salsa20::hsalsa::<salsa20::cipher::consts::U10>(
        shared.as_bytes().into(),
        &Default::default(),
    );
    let mut h = blake2::Blake2b::<blake2::digest::consts::U24>::new();
    h.update(epk);
    h.update(to.x25519_public());
    let nonce = h.finalize();
    let boxed = xsalsa20poly1305::XSalsa20Poly1305::new(&key)
        .encrypt(&nonce, inner.as_slice())
        .unwrap();
    let mut out = epk.to_vec();
    out.extend_from_slice(&boxed);
    out
}

#[test]
fn v2_and_unknown_versions_are_recognised() {
    let Pair { bob, .. } = pair();
    let mut v2 = vec![0x00, 0x02];
    v2.resize(1200, 7);
    let err = decrypt_message(&bob, &v2).unwrap_err();
    assert_eq!(err, MessageError::V2Unsupported);
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&v2);
    assert_eq!(
        decrypt_store_data(&bob, &b64),
        Err(MessageError::V2Unsupported)
    );
    assert_eq!(
        decrypt_message(&bob, &[0x00, 0x03, 1, 2]),
        Err(MessageError::UnknownVersion { version: 3 })
    );
    assert_eq!(
        decrypt_store_data(&bob, "not base64!"),
        Err(MessageError::Base64)
    );
}

#[test]
fn text_over_the_limit_still_round_trips() {
    let Pair { alice, bob } = pair();
    let body = "é".repeat(5000);
    let content = text_content(&body, Some("A"), 10);
    let ws = encrypt_message(&alice, bob.account_id(), &content, 10, &mut rng()).unwrap();
    let got = decrypt_store_data(&bob, &to_store_data(&ws)).unwrap();
    assert_eq!(got.content.data_message.unwrap().body.unwrap(), body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn encrypt_decrypt_round_trip(body in "\\PC{0,300}", ts in 1u64..u64::MAX, name in proptest::option::of("[a-zA-Z ]{1,20}"), seed in any::<u64>()) {
        let Pair { alice, bob } = pair();
        let content = text_content(&body, name.as_deref(), ts);
        let mut rng = StdRng::seed_from_u64(seed);
        let ws = encrypt_message(&alice, bob.account_id(), &content, ts, &mut rng).unwrap();
        let got = decrypt_store_data(&bob, &to_store_data(&ws)).unwrap();
        prop_assert_eq!(&got.sender, alice.account_id());
        prop_assert_eq!(got.envelope_timestamp, ts);
        prop_assert_eq!(got.content, content);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let Pair { bob, .. } = pair();
        let _ = decrypt_message(&bob, &data);
        let _ = decrypt_incoming(&bob, &data);
        let _ = decrypt_store_data(&bob, &base64::engine::general_purpose::STANDARD.encode(&data));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let Pair { bob, .. } = pair();
        let _ = decrypt_store_data(&bob, &s);
    }

    #[test]
    fn arbitrary_envelopes_never_panic(content in prop::collection::vec(any::<u8>(), 0..400), source in proptest::option::of("\\PC{0,70}"), pro_sig in proptest::option::of(prop::collection::vec(any::<u8>(), 0..80)), ts in any::<u64>()) {
        let Pair { bob, .. } = pair();
        let env = Envelope { r#type: 6, source, timestamp: ts, source_device: Some(1), content: Some(content), server_timestamp: None, pro_sig };
        let _ = decrypt_message(&bob, &rewrap(&env));
    }
}

#[test]
fn typing_notices_are_built_like_desktop_and_survive_the_trip() {
    let p = pair();
    let ts = 1_700_000_000_456;
    for started in [true, false] {
        let content = typing_content(started, ts);
        let t = content.typing_message.as_ref().expect("typing message");
        assert_eq!(t.timestamp, ts);
        // STARTED = 0, STOPPED = 1 on the wire.
        assert_eq!(t.action, if started { 0 } else { 1 });
        assert_eq!(content.sig_timestamp, Some(ts));
        assert!(content.data_message.is_none());
        let wire =
            encrypt_message(&p.alice, p.bob.account_id(), &content, ts, &mut rng()).expect("seal");
        let opened = decrypt_message(&p.bob, &wire).expect("open");
        assert_eq!(opened.content, content);
        assert_eq!(
            classify(&opened.content),
            ContentKind::Typing {
                started,
                timestamp_ms: ts
            }
        );
    }
    assert_eq!(TYPING_TTL_MS, 20_000);
}

#[test]
fn only_visible_data_messages_classify_as_visible() {
    let visible = text_content("hello", Some("Alice"), 5);
    assert_eq!(classify(&visible), ContentKind::Visible);
    let attachment_only = Content {
        data_message: Some(DataMessage {
            attachments: vec![Default::default()],
            ..DataMessage::default()
        }),
        ..Content::default()
    };
    assert_eq!(classify(&attachment_only), ContentKind::Visible);

    let hidden = [
        Content::default(),
        text_content("", None, 5),
        Content {
            data_message: Some(DataMessage {
                profile: Some(LokiProfile {
                    display_name: Some("only a profile".into()),
                    ..LokiProfile::default()
                }),
                ..DataMessage::default()
            }),
            ..Content::default()
        },
        Content {
            data_message: Some(DataMessage {
                body: Some("timer".into()),
                flags: Some(data_message::Flags::ExpirationTimerUpdate as u32),
                ..DataMessage::default()
            }),
            ..Content::default()
        },
        Content {
            data_message: Some(DataMessage {
                reaction: Some(data_message::Reaction {
                    id: 1,
                    author: "05".into(),
                    emoji: Some("+1".into()),
                    action: 0,
                }),
                ..DataMessage::default()
            }),
            ..Content::default()
        },
        Content {
            receipt_message: Some(ReceiptMessage {
                r#type: 1,
                timestamp: vec![1, 2],
            }),
            ..Content::default()
        },
        Content {
            data_extraction_notification: Some(DataExtractionNotification {
                r#type: 1,
                timestamp: Some(3),
            }),
            ..Content::default()
        },
        Content {
            message_request_response: Some(MessageRequestResponse {
                is_approved: true,
                ..MessageRequestResponse::default()
            }),
            ..Content::default()
        },
        Content {
            typing_message: Some(TypingMessage {
                timestamp: 1,
                action: 7,
            }),
            ..Content::default()
        },
    ];
    for content in hidden {
        assert!(
            matches!(classify(&content), ContentKind::Hidden(_)),
            "{content:?} must be hidden"
        );
    }
}

/// The random fields of one new Content kind: which kind, a target timestamp, a text, a flag,
/// an optional timer (after send?, seconds) and receipt timestamps.
type InteractionCase = (u8, u64, String, bool, Option<(bool, u32)>, Vec<u64>);

/// Any of the new Content kinds with random fields.
fn interaction_case() -> impl Strategy<Value = InteractionCase> {
    (
        0u8..7,
        1u64..u64::MAX,
        "\\PC{1,8}",
        any::<bool>(),
        proptest::option::of((any::<bool>(), 1u32..=MAX_TIMER_SECS)),
        prop::collection::vec(any::<u64>(), 0..20),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every new Content kind survives encode → seal → open → decode unchanged, and the
    /// receiver reads it back as what was built.
    #[test]
    fn interaction_contents_round_trip(
        (kind, target_ts, text, flag, timer, stamps) in interaction_case(),
        ts in 1u64..u64::MAX,
        seed in any::<u64>(),
    ) {
        let Pair { alice, bob } = pair();
        let me = alice.account_id();
        let target = MessageRef { sent_at_ms: target_ts, author: bob.account_id().to_string() };
        let expiry = timer.map(|(after_send, secs)| {
            let mode = if after_send { ExpiryMode::AfterSend } else { ExpiryMode::AfterRead };
            Expiry::new(mode, secs).unwrap()
        });
        let (content, want) = match kind {
            0 => (
                message_content(&text, flag.then_some(&target), Some("A"), expiry, ts),
                Interaction::Message { body: text.clone(), reply_to: flag.then(|| target.clone()), expiry, expiry_refused: None },
            ),
            1 => (
                reaction_content(&target, &text, flag, None, ts),
                Interaction::Reaction { target: target.clone(), emoji: text.clone(), remove: flag },
            ),
            2 => (unsend_content(target_ts, me, ts), Interaction::Unsend { target_sent_at_ms: target_ts }),
            3 => (read_receipt_content(&stamps, ts), Interaction::ReadReceipt { sent_at_ms: stamps.clone() }),
            4 => (timer_update_content(expiry, ts), Interaction::TimerUpdate { expiry }),
            5 => (request_response_content(Some(&text), ts), Interaction::RequestResponse { approved: true }),
            _ => {
                let k = if flag { Extraction::Screenshot } else { Extraction::MediaSaved };
                (extraction_content(k, target_ts, ts), Interaction::Extraction { kind: k })
            }
        };
        let bytes = content.encode_to_vec();
        prop_assert_eq!(&Content::decode(bytes.as_slice()).unwrap(), &content);
        let mut rng = StdRng::seed_from_u64(seed);
        let ws = encrypt_message(&alice, bob.account_id(), &content, ts, &mut rng).unwrap();
        let got = decrypt_message(&bob, &ws).unwrap();
        prop_assert_eq!(&got.content, &content);
        prop_assert_eq!(interpret(&got.sender, &got.content), Ok(Some(want)));
    }

    /// Arbitrary Contents never make the receiver panic, and an unsend is only ever taken from
    /// its author.
    #[test]
    fn interpret_never_panics_and_guards_unsend(bytes in prop::collection::vec(any::<u8>(), 0..300), author in "\\PC{0,70}", ts in any::<u64>()) {
        let Pair { alice, .. } = pair();
        if let Ok(c) = Content::decode(bytes.as_slice()) {
            let _ = interpret(alice.account_id(), &c);
        }
        let c = Content {
            unsend_request: Some(session_proto::protos::UnsendRequest { timestamp: ts, author: author.clone() }),
            ..Content::default()
        };
        let ok = matches!(interpret(alice.account_id(), &c), Ok(Some(Interaction::Unsend { .. })));
        prop_assert_eq!(ok, author.parse::<AccountId>().ok().as_ref() == Some(alice.account_id()));
    }
}
