//! Onion tests against network-onion-hop-encryption.json and network-derived.json.

use super::*;
use crate::bencode::{V4Request, V4Response};
use serde_json::Value;
use zeroize::Zeroizing;

const HOP: &str = include_str!("../../tests/data/network-onion-hop-encryption.json");
const DERIVED: &str = include_str!("../../tests/data/network-derived.json");

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("hex string"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

#[test]
fn hop_encryption_vectors() {
    let v: Value = serde_json::from_str(HOP).expect("json");
    let h = &v["hop_encryption"];
    let (a, a_pub) = (h32(&h["client_sec_a"]), h32(&h["client_pub_A"]));
    let (b, b_pub) = (h32(&h["server_sec_b"]), h32(&h["server_pub_B"]));
    assert_eq!(x25519_public(&a), a_pub);
    assert_eq!(x25519_public(&b), b_pub);
    assert_eq!(
        *x25519(&a, &b_pub).expect("dh"),
        *x25519(&b, &a_pub).expect("dh")
    );
    let plain = h["plaintext_utf8"].as_str().expect("pt").as_bytes();

    for (enc, ct_key, key_key) in [
        (
            EncType::AesGcm,
            "aes_gcm_ciphertext_hex",
            "aes_gcm_derived_key_hex",
        ),
        (
            EncType::XChaCha20,
            "xchacha20_ciphertext_hex",
            "xchacha20_derived_key_hex",
        ),
    ] {
        let sender = LayerKey::for_sender(enc, &a, &a_pub, &PeerKey::new(b_pub)).expect("key");
        let receiver = LayerKey::for_receiver(enc, &b, &b_pub, &a_pub).expect("key");
        assert_eq!(sender.key_bytes(), &h32(&h[key_key]), "{enc:?}");
        assert_eq!(receiver.key_bytes(), sender.key_bytes());
        let ct = hx(&h[ct_key]);
        assert_eq!(receiver.decrypt(&ct).expect("decrypts"), plain);
        let mut again = Vec::new();
        sender.encrypt_with_nonce(&ct[..enc.nonce_len()], plain, &mut again);
        assert_eq!(again, ct, "{enc:?}");
    }
    for bad in h["must_fail_hex"].as_array().expect("list") {
        let s = bad.as_str().expect("str");
        let (hexpart, label) = s.split_once(' ').expect("label");
        let enc = if label.contains("aes-gcm") {
            EncType::AesGcm
        } else {
            EncType::XChaCha20
        };
        let key = LayerKey::for_receiver(enc, &b, &b_pub, &a_pub).expect("key");
        assert_eq!(
            key.decrypt(&hex::decode(hexpart).expect("hex")),
            Err(OnionError::Decrypt),
            "{s}"
        );
    }
}

#[test]
fn outer_frame_parser_vectors() {
    let v: Value = serde_json::from_str(HOP).expect("json");
    let f = &v["outer_frame_parser"];
    let node = NodeKeys::new(h32(&f["server_sec_b"]));
    assert_eq!(node.public(), &h32(&f["server_pub_B"]));
    for k in ["frame_aes_gcm_hex", "frame_xchacha20_hex"] {
        let layer = open_layer(&node, &hx(&f[k])).expect("opens");
        assert_eq!(layer.plaintext, b"Hello world");
        assert_eq!(layer.hop_no, 0);
        // Not a frame inside: classification fails cleanly.
        assert!(layer.classify().is_err());
        let reply = layer.key.encrypt(&mut rand::thread_rng(), b"Goodbye world");
        let want = if k.contains("aes") { 41 } else { 53 };
        assert_eq!(reply.len(), want);
    }
}

fn derived() -> Value {
    serde_json::from_str::<Value>(DERIVED).expect("json")["onion_aesgcm_3hop_to_snode"].clone()
}

#[test]
fn derived_three_hop_request_byte_for_byte() {
    let v = derived();
    let hops: Vec<Hop> = v["hops(guard first)"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| Hop::new(h32(&h["x25519_pub"]), h32(&h["ed25519_pub"])))
        .collect();
    let d = &v["destination"];
    let dest = Destination::Snode(Hop::new(h32(&d["x25519_pub"]), h32(&d["ed25519_pub"])));
    let layers: Vec<LayerSecret> = v["layers(inner to outer)"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let mut nonce = [0u8; 24];
            let n = hx(&l["nonce"]);
            nonce[..n.len()].copy_from_slice(&n);
            LayerSecret {
                ephemeral: Zeroizing::new(h32(&l["eph_sec"])),
                nonce,
            }
        })
        .collect();
    let body = v["request_body"].as_str().expect("body").as_bytes();
    let req = build_request_with(EncType::AesGcm, &hops, &dest, body, &layers).expect("builds");
    assert_eq!(
        hex::encode(&req.body),
        v["http_post_body_to_guard_hex"].as_str().expect("hex")
    );

    // Peel it as the three relays and the destination would, checking every layer.
    let secrets: Vec<NodeKeys> = v["hops(guard first)"]
        .as_array()
        .expect("hops")
        .iter()
        .chain(std::iter::once(d))
        .map(|h| NodeKeys::new(h32(&h["x25519_sec"])))
        .collect();
    let layer_v = v["layers(inner to outer)"].as_array().expect("layers");
    let mut body_in = req.body.clone();
    for (i, node) in secrets.iter().enumerate() {
        let opened = open_layer(node, &body_in).expect("opens");
        // Layers are listed inner to outer: node i (guard = 0) opens layer 3 - i.
        assert_eq!(
            opened.plaintext,
            hx(&layer_v[3 - i]["plaintext_hex"]),
            "node {i}"
        );
        match opened.classify().expect("classifies") {
            Peeled::Relay(r) => {
                assert!(i < 3);
                let next = if i < 2 {
                    &v["hops(guard first)"][i + 1]
                } else {
                    d
                };
                assert_eq!(r.destination, h32(&next["ed25519_pub"]));
                assert_eq!(r.hop_no, u32::try_from(i + 1).expect("small"));
                body_in = r.next_body;
            }
            Peeled::Final(f) => {
                assert_eq!(i, 3);
                assert_eq!(f.body, body);
                assert!(!f.json && f.base64);
                let r = &v["response"];
                assert_eq!(f.reply.key().key_bytes(), &h32(&r["key_hex"]));
                let plain = reply_plaintext(
                    200,
                    br#"{"version": [2, 10, 0], "timestamp": 1700000000000}"#,
                    false,
                );
                assert_eq!(plain, r["plaintext"].as_str().expect("pt").as_bytes());
                let mut ct = Vec::new();
                f.reply
                    .key()
                    .encrypt_with_nonce(&hx(&r["nonce"]), &plain, &mut ct);
                assert_eq!(hex::encode(&ct), r["ciphertext_hex"].as_str().expect("ct"));
                let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ct);
                assert_eq!(b64, r["http_body_base64"].as_str().expect("b64"));
                // The client opens it.
                let got = req.reply.open_snode_reply(b64.as_bytes()).expect("opens");
                assert_eq!(got.status, 200);
                assert_eq!(
                    got.body,
                    br#"{"version": [2, 10, 0], "timestamp": 1700000000000}"#
                );
                // And raw (base64: false) works too.
                assert_eq!(req.reply.open_snode_reply(&ct).expect("raw"), got);
            }
            Peeled::Proxy(p) => panic!("unexpected proxy {p:?}"),
        }
    }
}

#[test]
fn server_destination_v4_round_trip() {
    let mut rng = rand::thread_rng();
    let relays: Vec<NodeKeys> = (1..=3u8).map(|i| NodeKeys::new([i; 32])).collect();
    let hops: Vec<Hop> = relays
        .iter()
        .enumerate()
        .map(|(i, k)| Hop::new(*k.public(), [u8::try_from(i).expect("small") + 100; 32]))
        .collect();
    let server = NodeKeys::new([42; 32]);
    let dest = Destination::Server(ServerDestination {
        key: PeerKey::new(*server.public()),
        host: "open.example.org".into(),
        target: "/oxen/v4/lsrpc".into(),
        method: "POST".into(),
        protocol: "http".into(),
        port: Some(8080),
    });
    let v4 = V4Request {
        method: "GET".into(),
        endpoint: "/room/lobby".into(),
        headers: [("X-A".to_owned(), "1".to_owned())].into(),
        body: None,
    };
    for enc in [EncType::AesGcm, EncType::XChaCha20] {
        let req = build_request(&mut rng, enc, &hops, &dest, &v4.encode()).expect("builds");
        let mut body = req.body.clone();
        let mut proxied = None;
        for (i, node) in relays.iter().enumerate() {
            match peel(node, &body).expect("peels") {
                Peeled::Relay(r) => {
                    assert_eq!(r.destination, [u8::try_from(i).expect("small") + 101; 32]);
                    body = r.next_body;
                }
                Peeled::Proxy(p) => {
                    assert_eq!(i, 2);
                    assert_eq!(p.host, "open.example.org");
                    assert_eq!(p.port, Some(8080));
                    assert_eq!(p.protocol, "http");
                    proxied = Some(p.plaintext);
                }
                Peeled::Final(_) => panic!("relay is not the destination"),
            }
        }
        let (plain, reply_key) =
            open_server_request(&server, &proxied.expect("proxied")).expect("server opens");
        assert_eq!(V4Request::decode(&plain).expect("v4"), v4);
        let resp = V4Response {
            code: 200,
            headers: [("content-type".to_owned(), "text/plain".to_owned())].into(),
            body: b"hi".to_vec(),
        };
        let ct = reply_key.key().encrypt(&mut rng, &resp.encode());
        assert_eq!(req.reply.open_v4_reply(&ct).expect("client opens"), resp);
    }
}

#[test]
fn frame_and_routing_errors() {
    assert_eq!(
        decode_frame(&encode_frame(b"abc", b"{}")).expect("ok"),
        (&b"abc"[..], &b"{}"[..])
    );
    assert!(matches!(
        decode_frame(b"\x01\x00"),
        Err(OnionError::FrameTruncated { .. })
    ));
    assert!(matches!(
        decode_frame(b"\x05\x00\x00\x00abc"),
        Err(OnionError::FrameTruncated { .. })
    ));
    assert!(matches!(
        decode_frame(b"\xff\xff\xff\xff"),
        Err(OnionError::FrameTruncated { .. })
    ));
    let node = NodeKeys::new([5; 32]);
    let bad_json = encode_frame(b"xx", b"not json");
    assert!(matches!(
        peel(&node, &bad_json),
        Err(OnionError::BadFrameJson(_))
    ));
    let bad_key = encode_frame(b"xx", br#"{"ephemeral_key":"zz"}"#);
    assert_eq!(
        peel(&node, &bad_key).expect_err("bad key"),
        OnionError::BadEphemeralKey
    );
    let eph = hex::encode(x25519_public(&[6; 32]));
    let bad_enc = encode_frame(
        b"xx",
        format!(r#"{{"ephemeral_key":"{eph}","enc_type":"aes-cbc"}}"#).as_bytes(),
    );
    assert!(matches!(
        peel(&node, &bad_enc),
        Err(OnionError::UnknownEncType(_))
    ));
    let garbage = encode_frame(
        &[0u8; 64],
        format!(r#"{{"ephemeral_key":"{eph}"}}"#).as_bytes(),
    );
    let e = peel(&node, &garbage).expect_err("garbage");
    assert_eq!(e, OnionError::Decrypt);
    assert_eq!(e.status(), 400);
    assert_eq!(e.to_string(), "Invalid ciphertext");
    // A small-order ephemeral key (all zeros) is refused.
    let zero = encode_frame(
        &[0u8; 64],
        format!(r#"{{"ephemeral_key":"{}"}}"#, "00".repeat(32)).as_bytes(),
    );
    assert_eq!(
        peel(&node, &zero).expect_err("zero"),
        OnionError::BadPeerKey
    );

    assert!(is_target_allowed("/oxen/v4/lsrpc"));
    assert!(is_target_allowed("/loki/v3/lsrpc"));
    assert!(!is_target_allowed("/oxen/v4/lsrpc?x=1"));
    assert!(!is_target_allowed("/admin/lsrpc"));
    assert!(!is_target_allowed("/oxen/v4/other"));
}

#[test]
fn hop_limit() {
    let mut rng = rand::thread_rng();
    let relay = NodeKeys::new([1; 32]);
    let next = NodeKeys::new([2; 32]);
    let hops = [Hop::new(*relay.public(), [1; 32])];
    let dest = Destination::Snode(Hop::new(*next.public(), [2; 32]));
    let req = build_request(&mut rng, EncType::AesGcm, &hops, &dest, b"{}").expect("builds");
    // Rewrite the outer JSON with hop_no 15: the relay would be hop 16.
    let (blob, json) = decode_frame(&req.body).expect("frame");
    let mut meta: serde_json::Map<String, Value> = serde_json::from_slice(json).expect("json");
    meta.insert("hop_no".into(), 15.into());
    let body = encode_frame(blob, &serde_json::to_vec(&meta).expect("json"));
    assert_eq!(
        peel(&relay, &body).expect_err("too many"),
        OnionError::TooManyHops(16)
    );
    // Empty path and wrong layer counts are builder errors.
    assert_eq!(
        build_request(&mut rng, EncType::AesGcm, &[], &dest, b"{}").expect_err("empty"),
        OnionError::EmptyPath
    );
    assert!(matches!(
        build_request_with(EncType::AesGcm, &hops, &dest, b"{}", &[]),
        Err(OnionError::LayerCount {
            expected: 2,
            got: 0
        })
    ));
}

#[test]
fn enc_type_names() {
    assert_eq!(EncType::parse("aes-gcm"), Some(EncType::AesGcm));
    assert_eq!(EncType::parse("xchacha20"), Some(EncType::XChaCha20));
    assert_eq!(
        EncType::parse("xchacha20-poly1305"),
        Some(EncType::XChaCha20)
    );
    assert_eq!(EncType::parse("aes-cbc"), None);
    assert_eq!(EncType::default(), EncType::AesGcm);
}

#[test]
fn edwards_dh_matches_ladder() {
    // The Edwards-form exchange must give the RFC 7748 ladder's bytes, including for twist
    // points (which have no Edwards form and take the ladder path).
    use curve25519_dalek::montgomery::MontgomeryPoint;
    let mut rng = rand::thread_rng();
    for i in 0..64u8 {
        let mut s = [0u8; 32];
        let mut p = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut s);
        rand::RngCore::fill_bytes(&mut rng, &mut p);
        if i % 2 == 0 {
            p = x25519_public(&p);
        }
        let ladder = MontgomeryPoint(p).mul_clamped(s).to_bytes();
        match x25519(&s, &p) {
            Ok(k) => assert_eq!(*k, ladder),
            Err(e) => {
                assert_eq!(e, OnionError::BadPeerKey);
                assert_eq!(ladder, [0u8; 32]);
            }
        }
        assert_eq!(
            x25519_public(&s),
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(s)).to_bytes()
        );
    }
}

#[test]
fn a_draft_filled_in_place_is_the_request_the_builder_gives() {
    // The same secrets through the draft (payload written into its slot) and through
    // build_request_with (payload copied in): the same bytes, for both destinations and ciphers.
    let relays: Vec<NodeKeys> = (1..=3u8).map(|i| NodeKeys::new([i; 32])).collect();
    let hops: Vec<Hop> = relays
        .iter()
        .enumerate()
        .map(|(i, k)| Hop::new(*k.public(), [u8::try_from(i).expect("small") + 100; 32]))
        .collect();
    let server = NodeKeys::new([42; 32]);
    let dests = [
        Destination::Server(ServerDestination {
            key: PeerKey::new(*server.public()),
            host: "files.example.org".into(),
            target: "/oxen/v4/lsrpc".into(),
            method: "POST".into(),
            protocol: "https".into(),
            port: None,
        }),
        Destination::Snode(Hop::new(*server.public(), [9; 32])),
    ];
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    for enc in [EncType::AesGcm, EncType::XChaCha20] {
        for dest in &dests {
            let layers: Vec<LayerSecret> = (0..4u8)
                .map(|i| LayerSecret {
                    ephemeral: Zeroizing::new([i + 50; 32]),
                    nonce: [i + 80; 24],
                })
                .collect();
            let built = build_request_with(enc, &hops, dest, &payload, &layers).expect("builds");
            // A seeded rng that yields exactly those secrets: replay them through the draft.
            let mut feed = layers.iter().flat_map(|l| {
                let mut v = l.ephemeral.to_vec();
                v.extend_from_slice(&l.nonce[..enc.nonce_len()]);
                v
            });
            let mut rng = Replay(&mut feed);
            let mut draft =
                OnionDraft::new(&mut rng, enc, &hops, dest, payload.len()).expect("lays out");
            assert_eq!(draft.body_len(), built.body.len());
            draft.payload_mut().copy_from_slice(&payload);
            let sealed = draft.seal();
            assert_eq!(sealed.body, built.body, "{enc:?}");
            // And the layers peel back to the payload.
            let mut body = sealed.body.clone();
            for node in &relays {
                match peel(node, &body).expect("peels") {
                    Peeled::Relay(r) => body = r.next_body,
                    Peeled::Proxy(p) => {
                        let (plain, _) = open_server_request(&server, &p.plaintext).expect("opens");
                        assert_eq!(plain, payload);
                    }
                    Peeled::Final(_) => panic!("relay is not the destination"),
                }
            }
        }
    }
}

/// An rng that gives back given bytes (for replaying explicit layer secrets).
struct Replay<'a>(&'a mut dyn Iterator<Item = u8>);

impl rand_core::RngCore for Replay<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.0.next().expect("enough replayed bytes");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Replay<'_> {}

#[test]
fn replies_open_in_place_as_they_open_by_copy() {
    let mut rng = rand::thread_rng();
    let server = NodeKeys::new([42; 32]);
    let relay = NodeKeys::new([1; 32]);
    let hops = [Hop::new(*relay.public(), [1; 32])];
    let dest = Destination::Server(ServerDestination {
        key: PeerKey::new(*server.public()),
        host: "h".into(),
        target: "/oxen/v4/lsrpc".into(),
        method: "POST".into(),
        protocol: "http".into(),
        port: Some(1),
    });
    for enc in [EncType::AesGcm, EncType::XChaCha20] {
        let req = build_request(&mut rng, enc, &hops, &dest, b"l2:{}e").expect("builds");
        let key = req.reply.key().clone();
        for body in [Vec::new(), vec![7u8; 100_000]] {
            let resp = V4Response {
                code: 200,
                headers: [(
                    "content-type".to_owned(),
                    "application/octet-stream".to_owned(),
                )]
                .into(),
                body,
            };
            let ct = key.encrypt(&mut rng, &resp.encode());
            assert_eq!(
                req.reply.open_v4_reply_owned(ct.clone()).expect("opens"),
                resp
            );
            assert_eq!(req.reply.open_v4_reply(&ct).expect("opens"), resp);
            // Tampered, short or not bencode: errors, not panics.
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                req.reply.open_v4_reply_owned(bad).expect_err("tampered"),
                OnionError::Decrypt
            );
            assert!(req.reply.open_v4_reply_owned(ct[..10].to_vec()).is_err());
            let junk = key.encrypt(&mut rng, b"not bencode");
            assert!(matches!(
                req.reply.open_v4_reply_owned(junk),
                Err(OnionError::Bencode(_))
            ));
        }
    }
}
