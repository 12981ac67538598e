//! The community vectors (URL parsing, blinding, X-SOGS headers, room message, blinded DM),
//! every rejection path, and property tests of the parsers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use prost::Message as _;
use serde_json::{json, Value};

use super::api::{poll_batch, PostMessage, RoomMessage, RoomPaths, SubRequest};
use super::auth::{parse_auth, sign_request, AuthHeaders, RequestSigner, MAX_CLOCK_SKEW_SECS};
use super::blinding::*;
use super::dm::{decrypt_dm, encrypt_dm, encrypt_dm_with_nonce, DM_MIN_LEN};
use super::room::{decode_community_content, encode_room_message, read_room_message, RoomUpdate};
use super::url::{parse_server_pubkey, CommunityUrl, Scheme, ServerUrl};
use crate::account_id::AccountId;
use crate::bencode::V4Request;
use crate::err::{CommunityError, ErrorKind, HasKind};
use crate::keys::IdentityKeys;
use crate::message::text_content;
use crate::padding::pad160;
use crate::protos::{Content, DataMessage, LokiProfile};

const URLS: &str = include_str!("../../tests/data/communities-url-parsing.json");
const PYSOGS: &str = include_str!("../../tests/data/communities-blinding-pysogs.json");
const BLINDING: &str = include_str!("../../tests/data/blinding.json");
const AUTH: &str = include_str!("../../tests/data/sogs-auth-headers.json");
const ROOM: &str = include_str!("../../tests/data/communities-room-message.json");
const DM: &str = include_str!("../../tests/data/communities-blinded-dm.json");

fn doc(s: &str) -> Value {
    serde_json::from_str(s).expect("vector JSON")
}
fn s(v: &Value) -> &str {
    v.as_str().expect("string")
}
fn h32(v: &Value) -> [u8; 32] {
    hex::decode(s(v))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}
fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).expect("hex")
}
fn id(v: &Value) -> AccountId {
    AccountId::parse_raw(s(v)).expect("id")
}
fn keys(seed: &Value) -> IdentityKeys {
    IdentityKeys::from_seed(&h32(seed))
}

// ---- URLs ------------------------------------------------------------------------------------

#[test]
fn url_vectors() {
    let d = doc(URLS);
    let cases = d["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 8);
    for c in cases {
        let url: CommunityUrl = s(&c["url"]).parse().expect("vector URL parses");
        assert_eq!(url.server().to_string(), s(&c["base_url"]));
        assert_eq!(url.room(), s(&c["room"]));
        assert_eq!(url.canonical_room(), s(&c["canonical_room"]));
        assert_eq!(hex::encode(url.server_pubkey()), s(&c["pubkey_hex"]));
        // The canonical full URL parses back to the same community.
        let again: CommunityUrl = url.to_string().parse().expect("canonical form");
        assert_eq!(again, url);
    }
}

#[test]
fn url_parts_and_forms() {
    let pk = "a03c383cf63c3c4efe67acc52112a6dd734b3a946b9545f488aaa93da7991238";
    let u: CommunityUrl = format!("http://127.0.0.1:8080/lobby/?public_key={pk}")
        .parse()
        .expect("trailing slash");
    assert_eq!(u.server().scheme(), Scheme::Http);
    assert_eq!(u.server().host(), "127.0.0.1");
    assert_eq!(u.server().port(), 8080);
    assert_eq!(
        u.to_string(),
        format!("http://127.0.0.1:8080/lobby?public_key={pk}")
    );
    let u: CommunityUrl = format!("https://open.getsession.org/main?public_key={pk}")
        .parse()
        .expect("session's server");
    assert_eq!(u.server().port(), 443);
    assert_eq!(u.server().explicit_port(), None);
    let u: CommunityUrl = format!("http://[::1]:9000/r/x?public_key={pk}")
        .parse()
        .expect("ipv6");
    assert_eq!(u.server().host_unbracketed(), "::1");
    assert_eq!(u.server().port(), 9000);
    let base: ServerUrl = "HTTP://Example.COM:80/".parse().expect("base");
    assert_eq!(base.to_string(), "http://example.com");
    assert!("http://example.com/room".parse::<ServerUrl>().is_err());
}

#[test]
fn url_rejections() {
    let pk = "a03c383cf63c3c4efe67acc52112a6dd734b3a946b9545f488aaa93da7991238";
    let bad = [
        String::new(),
        "http://example.com/room".into(),
        "http://example.com/room?public_key=".into(),
        format!("http://example.com/room?public_key={}", &pk[..63]),
        format!("http://example.com/room?public_key={}zz", &pk[..62]),
        format!("http://example.com/room?public_key={pk}&public_key={pk}"),
        format!("http://example.com/room?public_key={pk}&x=1"),
        format!("ftp://example.com/room?public_key={pk}"),
        format!("example.com/room?public_key={pk}"),
        format!("http:///room?public_key={pk}"),
        format!("http://example.com?public_key={pk}"),
        format!("http://example.com/?public_key={pk}"),
        format!("http://example.com/r//?public_key={pk}"),
        format!("http://example.com/a/b?public_key={pk}"),
        format!("http://example.com/ro%20om?public_key={pk}"),
        format!("http://example.com/{}?public_key={pk}", "x".repeat(65)),
        format!("http://example.com:0/room?public_key={pk}"),
        format!("http://example.com:65536/room?public_key={pk}"),
        format!("http://example.com:/room?public_key={pk}"),
        format!("http://user@example.com/room?public_key={pk}"),
        format!("http://exa mple.com/room?public_key={pk}"),
        format!("http://[::zz]/room?public_key={pk}"),
        format!("http://{}.com/room?public_key={pk}", "a".repeat(300)),
    ];
    for b in &bad {
        let err = b.parse::<CommunityUrl>().expect_err(b);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{b}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert!(parse_server_pubkey(&"y".repeat(51)).is_err());
    // 52 z-base-32 characters whose spare bits are not zero.
    assert!(parse_server_pubkey(&"9".repeat(52)).is_err());
    assert!(parse_server_pubkey(&"#".repeat(52)).is_err());
    assert!(parse_server_pubkey(&format!("{}=", "A".repeat(42))).is_err());
    assert!(parse_server_pubkey(&"!".repeat(43)).is_err());
}

proptest! {
    #[test]
    fn url_round_trip(
        host in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10}){0,3}",
        port in proptest::option::of(1u16..),
        https in any::<bool>(),
        room in "[A-Za-z0-9_-]{1,64}",
        pk in any::<[u8; 32]>(),
        r_form in any::<bool>(),
    ) {
        let scheme = if https { "https" } else { "http" };
        let port_s = port.map(|p| format!(":{p}")).unwrap_or_default();
        let r = if r_form { "r/" } else { "" };
        let text = format!("{scheme}://{host}{port_s}/{r}{room}?public_key={}", hex::encode(pk));
        let u: CommunityUrl = text.parse().expect("generated URL");
        prop_assert_eq!(u.room(), room.as_str());
        prop_assert_eq!(u.server_pubkey(), &pk);
        prop_assert_eq!(u.server().host(), host.as_str());
        let again: CommunityUrl = u.to_string().parse().expect("display parses");
        prop_assert_eq!(again, u);
    }

    #[test]
    fn url_parser_never_panics(text in "\\PC{0,120}") {
        let _ = text.parse::<CommunityUrl>();
        let _ = text.parse::<ServerUrl>();
    }

    #[test]
    fn url_parser_never_panics_near_valid(
        prefix in "(https?://)?[a-z0-9.:\\[\\]@-]{0,30}",
        path in "[/a-zA-Z0-9_%-]{0,30}",
        query in "[?&=a-zA-Z0-9_+/-]{0,80}",
    ) {
        let _ = format!("{prefix}{path}{query}").parse::<CommunityUrl>();
    }
}

// ---- blinding --------------------------------------------------------------------------------

#[test]
fn pysogs_blind15_ids() {
    let d = doc(PYSOGS);
    let server = h32(&d["server_pubkey_hex"]);
    let cases = d["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 20);
    for c in cases {
        let k = keys(&c["ed25519_seed_hex"]);
        assert_eq!(k.account_id(), &id(&c["account_id"]));
        let b = Blind15Keys::new(&k, &server);
        assert_eq!(b.id(), &id(&c["blind15_id"]));
        let cands = blind15_candidates(k.account_id(), &server).expect("candidates");
        let want: Vec<AccountId> = c["from_account_id_candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .map(id)
            .collect();
        // The vector lists the two in sorted order.
        let mut got = cands.to_vec();
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
        assert!(cands.contains(b.id()));
        assert!(matches_blinded(k.account_id(), b.id(), &server));
        // Another server gives another ID.
        assert!(!matches_blinded(k.account_id(), b.id(), &[7u8; 32]));
        assert_eq!(
            blind15_id_from_ed25519(k.ed25519_public(), &server).expect("ed"),
            *b.id()
        );
    }
}

#[test]
fn libsession_blinding_vectors() {
    let d = doc(BLINDING);
    let ks = &d["libsession_keys"];
    let k1 = keys(&ks["seed1_hex"]);
    let k2 = keys(&ks["seed2_hex"]);
    assert_eq!(
        hex::encode(k1.ed25519_public()),
        s(&ks["seed1_ed25519_pubkey_hex"])
    );
    assert_eq!(k1.account_id(), &id(&ks["session_id1"]));
    assert_eq!(k2.account_id(), &id(&ks["session_id2"]));
    let by_name = |n: &str| if n == "seed1" { &k1 } else { &k2 };

    for c in d["blind25_id"].as_array().expect("blind25") {
        let server = h32(&c["server_pk"]);
        let got = blind25_id(&id(&c["session_id"]), &server).expect("blind25");
        assert_eq!(got, id(&c["expect"]));
        // The key pair of the identity gives the same ID.
        let owner = if id(&c["session_id"]) == *k1.account_id() {
            &k1
        } else {
            &k2
        };
        assert_eq!(Blind25Keys::new(owner, &server).id(), &got);
        assert!(matches_blinded(owner.account_id(), &got, &server));
    }
    for c in d["blind15_id"].as_array().expect("blind15") {
        let server = h32(&c["server_pk"]);
        let sid = id(&c["session_id"]);
        let cands = blind15_candidates(&sid, &server).expect("candidates");
        if let Some(p) = c.get("expect_positive") {
            assert_eq!(cands[0], id(p));
        }
        if let Some(e) = c.get("expect_either") {
            assert!(cands.contains(&id(e)));
            assert!(matches_blinded(&sid, &id(e), &server));
        }
        if let Some(real) = c.get("actual_key_of_seed2_derived") {
            assert_eq!(Blind15Keys::new(&k2, &server).id(), &id(real));
        }
    }
    for c in d["blind15_sign"]["cases"].as_array().expect("sign15") {
        let k = by_name(s(&c["key"]));
        let server = h32(&c["server_pk"]);
        let b = Blind15Keys::new(k, &server);
        let msg = s(&c["msg"]).as_bytes();
        let sig = b.sign_parts(Blind15Nonce::Libsession, &[msg]);
        assert_eq!(hex::encode(sig), s(&c["sig"]));
        verify_by_id(b.id(), msg, &sig).expect("verifies against kA");
        // Desktop's nonce gives other bytes that verify too.
        let desktop = b.sign(msg);
        assert_ne!(desktop, sig);
        verify_by_id(b.id(), msg, &desktop).expect("desktop nonce verifies");
    }
    for c in d["blind25_sign"]["cases"].as_array().expect("sign25") {
        let k = by_name(s(&c["key"]));
        let b = Blind25Keys::new(k, &h32(&c["server_pk"]));
        let msg = s(&c["msg"]).as_bytes();
        let sig = b.sign(msg);
        assert_eq!(hex::encode(sig), s(&c["sig"]));
        verify_by_id(b.id(), msg, &sig).expect("verifies against A'");
    }
    let v = &d["version_blinding_07"];
    let vk = version_blinded_key(&k1);
    assert_eq!(hex::encode(vk.verifying_key().as_bytes()), s(&v["pubkey"]));
    assert_eq!(hex::encode(vk.to_keypair_bytes()), s(&v["secret_key_64"]));
    use ed25519_dalek::Signer as _;
    let sig = vk.sign(s(&v["signed_message_utf8"]).as_bytes());
    assert_eq!(hex::encode(sig.to_bytes()), s(&v["sig"]));
}

#[test]
fn find_owner_among_contacts() {
    let d = doc(PYSOGS);
    let server = h32(&d["server_pubkey_hex"]);
    let contacts: Vec<AccountId> = d["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| id(&c["account_id"]))
        .collect();
    for c in d["cases"].as_array().expect("cases") {
        let blinded = id(&c["blind15_id"]);
        assert_eq!(
            find_blinded_owner(&blinded, &server, &contacts),
            Some(&id(&c["account_id"]))
        );
    }
    let stranger = Blind15Keys::new(&IdentityKeys::from_seed(&[9; 32]), &server);
    assert_eq!(find_blinded_owner(stranger.id(), &server, &contacts), None);
    // A 05 ID is not a blinded ID; a 15 ID is not an Account ID.
    assert_eq!(find_blinded_owner(&contacts[0], &server, &contacts), None);
    assert!(!matches_blinded(&contacts[0], &contacts[0], &server));
    let err = blind15_candidates(stranger.id(), &server).expect_err("not 05");
    assert!(matches!(err, CommunityError::NotStandard { prefix: 0x15 }));
}

// ---- X-SOGS headers --------------------------------------------------------------------------

fn auth_fixture() -> (Value, IdentityKeys, [u8; 32], [u8; 16], u64) {
    let d = doc(AUTH);
    let k = keys(&d["ed25519_seed_hex"]);
    let server = h32(&d["server_pubkey_hex"]);
    let nonce: [u8; 16] = STANDARD
        .decode(s(&d["nonce_base64"]))
        .expect("b64")
        .try_into()
        .expect("16");
    let ts: u64 = s(&d["timestamp"]).parse().expect("ts");
    (d, k, server, nonce, ts)
}

#[test]
fn auth_header_vectors() {
    let (d, k, server, nonce, ts) = auth_fixture();
    assert_eq!(k.account_id(), &id(&d["account_id_derived"]));
    let b = Blind15Keys::new(&k, &server);
    let method = s(&d["method"]);
    let path = s(&d["path"]);
    let body = s(&d["body_utf8"]).as_bytes();
    for (signer, want) in [
        (RequestSigner::Blinded(&b), &d["blinded"]),
        (
            RequestSigner::Unblinded {
                keys: &k,
                server_pk: &server,
            },
            &d["unblinded"],
        ),
    ] {
        for (body, field) in [
            (&b""[..], "X-SOGS-Signature_no_body"),
            (body, "X-SOGS-Signature_with_body"),
        ] {
            let h = sign_request(signer, method, path, body, &nonce, ts);
            assert_eq!(h.pubkey, s(&want["X-SOGS-Pubkey"]));
            assert_eq!(h.nonce, s(&d["nonce_base64"]));
            assert_eq!(h.timestamp, s(&d["timestamp"]));
            assert_eq!(h.signature, s(&want[field]), "{field}");
            // The server side accepts what was signed, and only that.
            let parsed = parse_auth(&headers_of(&h), ts + 5, false)
                .expect("well-formed")
                .expect("signed");
            parsed
                .verify(&server, method, path, body)
                .expect("verifies");
            assert_eq!(
                parsed.verify(&server, "POST", path, body),
                Err(CommunityError::BadSignature { what: "request" })
            );
            assert!(parsed.verify(&server, method, "/room/x", body).is_err());
            assert!(parsed.verify(&server, method, path, b"other").is_err());
            assert!(parsed.verify(&[1; 32], method, path, body).is_err());
        }
    }
    let blinded = sign_request(RequestSigner::Blinded(&b), method, path, b"", &nonce, ts);
    assert!(parse_auth(&headers_of(&blinded), ts, true).is_ok());
    let unblinded = sign_request(
        RequestSigner::Unblinded {
            keys: &k,
            server_pk: &server,
        },
        method,
        path,
        b"",
        &nonce,
        ts,
    );
    let err = parse_auth(&headers_of(&unblinded), ts, true).expect_err("blind required");
    assert_eq!(err, CommunityError::BlindingRequired);
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "Invalid authentication: this server requires the use of blinded ids"
    );
}

fn headers_of(h: &super::auth::SogsAuth) -> AuthHeaders<'_> {
    AuthHeaders {
        pubkey: Some(&h.pubkey),
        nonce: Some(&h.nonce),
        timestamp: Some(&h.timestamp),
        signature: Some(&h.signature),
    }
}

#[test]
fn auth_rejections() {
    let (_, k, server, nonce, ts) = auth_fixture();
    let b = Blind15Keys::new(&k, &server);
    let h = sign_request(RequestSigner::Blinded(&b), "GET", "/rooms", b"", &nonce, ts);
    assert_eq!(parse_auth(&AuthHeaders::default(), ts, true), Ok(None));
    // Partial sets.
    for drop in 0..4 {
        let mut a = headers_of(&h);
        match drop {
            0 => a.pubkey = None,
            1 => a.nonce = None,
            2 => a.timestamp = None,
            _ => a.signature = None,
        }
        let e = parse_auth(&a, ts, true).expect_err("partial");
        assert!(matches!(e, CommunityError::PartialAuth { .. }));
        assert_eq!(e.status(), 400);
    }
    let hex_nonce = hex::encode(nonce);
    let cases: [(&str, &str, &str, &str); 10] = [
        ("15zz", &h.nonce, &h.timestamp, &h.signature),
        (&h.pubkey[2..], &h.nonce, &h.timestamp, &h.signature),
        (
            &format!("05{}", &h.pubkey[2..]),
            &h.nonce,
            &h.timestamp,
            &h.signature,
        ),
        (
            &format!("25{}", &h.pubkey[2..]),
            &h.nonce,
            &h.timestamp,
            &h.signature,
        ),
        (&h.pubkey, "AAAA", &h.timestamp, &h.signature),
        (&h.pubkey, &hex_nonce[..30], &h.timestamp, &h.signature),
        (&h.pubkey, &h.nonce, "12a", &h.signature),
        (&h.pubkey, &h.nonce, "-5", &h.signature),
        (&h.pubkey, &h.nonce, &h.timestamp, "AAAA"),
        (&h.pubkey, &h.nonce, "99999999999999999999", &h.signature),
    ];
    for (p, n, t, sg) in cases {
        let a = AuthHeaders {
            pubkey: Some(p),
            nonce: Some(n),
            timestamp: Some(t),
            signature: Some(sg),
        };
        let e = parse_auth(&a, ts, true).expect_err(p);
        assert_eq!(e.status(), 400, "{e}");
    }
    // A hex nonce is accepted as well as base64.
    let a = AuthHeaders {
        nonce: Some(&hex_nonce),
        ..headers_of(&h)
    };
    let parsed = parse_auth(&a, ts, true).expect("ok").expect("some");
    parsed
        .verify(&server, "GET", "/rooms", b"")
        .expect("hex nonce verifies");
    // Clock skew both ways: 425.
    for now in [ts + MAX_CLOCK_SKEW_SECS + 1, ts - MAX_CLOCK_SKEW_SECS - 1] {
        let e = parse_auth(&headers_of(&h), now, true).expect_err("skew");
        assert_eq!(e.status(), 425);
        assert_eq!(e.kind(), ErrorKind::ClockSkew);
    }
    assert!(parse_auth(&headers_of(&h), ts + MAX_CLOCK_SKEW_SECS, true).is_ok());
    // A signature by someone else under this pubkey: 401.
    let other = Blind15Keys::new(&IdentityKeys::from_seed(&[3; 32]), &server);
    let forged = sign_request(
        RequestSigner::Blinded(&other),
        "GET",
        "/rooms",
        b"",
        &nonce,
        ts,
    );
    let a = AuthHeaders {
        signature: Some(&forged.signature),
        ..headers_of(&h)
    };
    let e = parse_auth(&a, ts, true)
        .expect("well-formed")
        .expect("some")
        .verify(&server, "GET", "/rooms", b"")
        .expect_err("forged");
    assert_eq!(e.status(), 401);
}

proptest! {
    #[test]
    fn auth_parser_never_panics(
        p in "\\PC{0,70}", n in "\\PC{0,40}", t in "\\PC{0,14}", sg in "\\PC{0,90}", now in any::<u64>()
    ) {
        let a = AuthHeaders { pubkey: Some(&p), nonce: Some(&n), timestamp: Some(&t), signature: Some(&sg) };
        if let Ok(Some(parsed)) = parse_auth(&a, now, false) {
            let _ = parsed.verify(&[5; 32], "GET", "/", b"");
        }
    }

    #[test]
    fn auth_sign_verify_round_trip(
        seed in any::<[u8; 32]>(), server in any::<[u8; 32]>(), nonce in any::<[u8; 16]>(),
        path in "/[ -~]{0,40}", body in proptest::collection::vec(any::<u8>(), 0..64),
        ts in 0u64..4_000_000_000,
    ) {
        let k = IdentityKeys::from_seed(&seed);
        let b = Blind15Keys::new(&k, &server);
        let h = sign_request(RequestSigner::Blinded(&b), "PUT", &path, &body, &nonce, ts);
        let parsed = parse_auth(&headers_of(&h), ts, true).expect("ok").expect("some");
        prop_assert_eq!(&parsed.signer, b.id());
        prop_assert!(parsed.verify(&server, "PUT", &path, &body).is_ok());
    }
}

// ---- room messages ---------------------------------------------------------------------------

#[test]
fn room_message_vector() {
    let d = doc(ROOM);
    let k = keys(&d["ed25519_seed_hex"]);
    assert_eq!(hex::encode(k.ed25519_public()), s(&d["ed25519_pubkey_hex"]));
    let server = h32(&d["server_pubkey_hex"]);
    let b = Blind15Keys::new(&k, &server);
    assert_eq!(b.id(), &id(&d["blind15_id"]));
    let ts = d["content_protobuf_decoded"]["sigTimestamp"]
        .as_u64()
        .expect("ts");
    let content = text_content("Hello community 👋", Some("gateway"), ts);
    assert_eq!(content.encode_to_vec(), unhex(&d["content_protobuf_hex"]));
    let padded = pad160(&content.encode_to_vec());
    assert_eq!(padded, unhex(&d["padded_hex"]));
    assert_eq!(
        hex::encode(b.sign(&padded)),
        s(&d["message_signature_hex_desktop_pysogs_nonce"])
    );
    assert_eq!(
        hex::encode(b.sign_parts(Blind15Nonce::Libsession, &[&padded])),
        s(&d["message_signature_hex_libsession_nonce"])
    );
    let post = encode_room_message(&b, &content);
    let body = serde_json::to_string(&post).expect("json");
    assert_eq!(body, s(&d["post_body_json"]));

    // The POST headers, then the same request as the v4 onion plaintext.
    let ph = &d["post_headers"];
    let nonce: [u8; 16] = STANDARD
        .decode(s(&ph["X-SOGS-Nonce"]))
        .expect("b64")
        .try_into()
        .expect("16");
    let rts: u64 = s(&ph["X-SOGS-Timestamp"]).parse().expect("ts");
    let path = RoomPaths::new(s(&d["room_token"])).expect("room").post();
    let h = sign_request(
        RequestSigner::Blinded(&b),
        "POST",
        &path,
        body.as_bytes(),
        &nonce,
        rts,
    );
    for (name, value) in h.headers() {
        assert_eq!(value, s(&ph[name]), "{name}");
    }
    let v4 = V4Request::decode(s(&d["v4_onion_plaintext_utf8"]).as_bytes()).expect("v4");
    assert_eq!(v4.method, "POST");
    assert_eq!(v4.endpoint, path);
    assert_eq!(v4.body.as_deref(), Some(body.as_bytes()));
    for (name, value) in h.headers() {
        assert_eq!(v4.headers[name], value);
    }
    assert_eq!(v4.headers["Content-Type"], "application/json");

    // The poll batch and its signature.
    let room = RoomPaths::new("lokinet").expect("room");
    let batch = poll_batch(&room, Some(0), None, None);
    let batch_body = serde_json::to_string(&batch).expect("json");
    assert_eq!(batch_body, s(&d["batch_body_json"]));
    let bh = sign_request(
        RequestSigner::Blinded(&b),
        "POST",
        "/batch",
        batch_body.as_bytes(),
        &nonce,
        rts,
    );
    assert_eq!(bh.signature, s(&d["batch_headers"]["X-SOGS-Signature"]));

    // A receiver reads the post back.
    let row = RoomMessage {
        id: 42,
        seqno: 7,
        session_id: Some(b.id().to_string()),
        posted: Some(ts as f64 / 1000.0 + 0.5),
        data: Some(Some(post.data.clone())),
        signature: Some(post.signature.clone()),
        ..Default::default()
    };
    let RoomUpdate::Post(got) = read_room_message(&row).expect("verifies") else {
        panic!("a post")
    };
    assert_eq!(got.sender, *b.id());
    assert_eq!(got.content, content);
    assert_eq!(got.id, 42);
    assert_eq!(got.seqno, 7);
    // Both nonce variants are accepted.
    let lib = RoomMessage {
        signature: Some(STANDARD.encode(unhex(&d["message_signature_hex_libsession_nonce"]))),
        ..row.clone()
    };
    assert!(read_room_message(&lib).is_ok());
}

fn signed_row(b: &Blind15Keys, content: &Content, posted: f64) -> RoomMessage {
    let post = encode_room_message(b, content);
    RoomMessage {
        id: 1,
        seqno: 1,
        session_id: Some(b.id().to_string()),
        posted: Some(posted),
        data: Some(Some(post.data)),
        signature: Some(post.signature),
        ..Default::default()
    }
}

#[test]
fn room_message_rows() {
    let b = Blind15Keys::new(&IdentityKeys::from_seed(&[1; 32]), &[2; 32]);
    let content = text_content("hi", None, 1_700_000_000_000);
    let row = signed_row(&b, &content, 1_700_000_000.0);
    // Deletion and reaction-only rows, as the server sends them.
    let del: RoomMessage = serde_json::from_value(json!({
        "id": 1, "seqno": 9, "session_id": b.id().to_string(), "posted": 1.0, "data": null, "deleted": true
    }))
    .expect("deleted row");
    assert_eq!(
        read_room_message(&del),
        Ok(RoomUpdate::Deleted { id: 1, seqno: 9 })
    );
    let react: RoomMessage = serde_json::from_value(json!({
        "id": 1, "seqno": 10, "reactions": {"👍": {"index": 0, "count": 2, "reactors": ["15aa"]}}
    }))
    .expect("reaction row");
    let RoomUpdate::Reactions {
        reactions, seqno, ..
    } = read_room_message(&react).expect("ok")
    else {
        panic!("reactions")
    };
    assert_eq!(seqno, 10);
    assert_eq!(reactions["👍"].count, 2);
    // Serialising a deletion keeps `data: null`.
    let v = serde_json::to_value(&del).expect("json");
    assert_eq!(v["data"], Value::Null);
    assert!(v.as_object().expect("obj").contains_key("data"));
    assert!(!serde_json::to_value(&react)
        .expect("json")
        .as_object()
        .expect("o")
        .contains_key("data"));

    let mutate = |f: &dyn Fn(&mut RoomMessage)| {
        let mut r = row.clone();
        f(&mut r);
        read_room_message(&r)
    };
    let flipped = {
        let mut d = STANDARD
            .decode(row.data.clone().flatten().expect("data"))
            .expect("b64");
        d[0] ^= 1;
        STANDARD.encode(d)
    };
    let other = Blind15Keys::new(&IdentityKeys::from_seed(&[4; 32]), &[2; 32]);
    let bad: Vec<(&str, Result<RoomUpdate, CommunityError>)> = vec![
        (
            "altered data",
            mutate(&|r| r.data = Some(Some(flipped.clone()))),
        ),
        (
            "other sender",
            mutate(&|r| r.session_id = Some(other.id().to_string())),
        ),
        ("no sender", mutate(&|r| r.session_id = None)),
        (
            "bad sender",
            mutate(&|r| r.session_id = Some("15zz".into())),
        ),
        (
            "unknown prefix",
            mutate(&|r| r.session_id = Some(format!("99{}", &other.id().to_string()[2..]))),
        ),
        ("bad b64", mutate(&|r| r.data = Some(Some("***".into())))),
        (
            "short sig",
            mutate(&|r| r.signature = Some(STANDARD.encode([0u8; 63]))),
        ),
        ("no sig", mutate(&|r| r.signature = None)),
        (
            "stale",
            mutate(&|r| r.posted = Some(1_700_000_000.0 + 6.0 * 3600.0 + 1.0)),
        ),
    ];
    for (what, r) in bad {
        let e = r.expect_err(what);
        assert!(
            matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::BadCrypto),
            "{what}: {e}"
        );
    }
    // Signed garbage: the signature verifies, the Content does not parse.
    let garbage = pad160(&[0xff, 0xff, 0xff]);
    let r = RoomMessage {
        data: Some(Some(STANDARD.encode(&garbage))),
        signature: Some(STANDARD.encode(b.sign(&garbage))),
        ..row.clone()
    };
    assert!(matches!(
        read_room_message(&r),
        Err(CommunityError::Content(_))
    ));
    // An old client's Envelope around the Content still reads.
    let env = crate::protos::Envelope {
        r#type: 6,
        timestamp: 1,
        content: Some(content.encode_to_vec()),
        ..Default::default()
    };
    assert_eq!(
        decode_community_content(&pad160(&env.encode_to_vec())).expect("envelope"),
        content
    );
    // 05 senders (unblinded servers) are checked with XEd25519 against the positive key.
    let k = IdentityKeys::from_seed(&[6; 32]);
    let padded = pad160(&content.encode_to_vec());
    if k.ed25519_public()[31] & 0x80 == 0 {
        let r = RoomMessage {
            session_id: Some(k.account_id().to_string()),
            data: Some(Some(STANDARD.encode(&padded))),
            signature: Some(STANDARD.encode(k.sign(&padded).to_bytes())),
            ..row.clone()
        };
        assert!(read_room_message(&r).is_ok());
    }
}

proptest! {
    #[test]
    fn room_rows_never_panic(v in arb_json()) {
        if let Ok(row) = serde_json::from_value::<RoomMessage>(v) {
            let _ = read_room_message(&row);
        }
    }

    #[test]
    fn room_post_round_trip(seed in any::<[u8; 32]>(), body in "\\PC{0,300}", name in proptest::option::of("[a-z]{1,10}")) {
        let b = Blind15Keys::new(&IdentityKeys::from_seed(&seed), &[8; 32]);
        let content = Content {
            data_message: Some(DataMessage {
                body: Some(body),
                profile: name.map(|n| LokiProfile { display_name: Some(n), ..Default::default() }),
                ..Default::default()
            }),
            sig_timestamp: Some(1_000_000),
            ..Default::default()
        };
        let row = signed_row(&b, &content, 1000.0);
        let text = serde_json::to_string(&row).expect("json");
        let back: RoomMessage = serde_json::from_str(&text).expect("parse");
        match read_room_message(&back) {
            Ok(RoomUpdate::Post(p)) => prop_assert_eq!(p.content, content),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
        "[A-Za-z0-9+/]{0,120}={0,2}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("id".to_string()),
        Just("seqno".to_string()),
        Just("session_id".to_string()),
        Just("posted".to_string()),
        Just("data".to_string()),
        Just("signature".to_string()),
        Just("deleted".to_string()),
        Just("reactions".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---- batch -----------------------------------------------------------------------------------

#[test]
fn batch_sub_requests() {
    let room = RoomPaths::new("lobby").expect("room");
    let reqs = poll_batch(&room, None, Some(None), Some(Some(4)));
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/capabilities",
            "/room/lobby/pollInfo/0",
            "/room/lobby/messages/recent?reactors=5",
            "/inbox",
            "/outbox/since/4"
        ]
    );
    assert_eq!(reqs[0].body(), Ok(None));
    let post = SubRequest::with_json("POST", room.post(), json!({"a": 1}));
    assert_eq!(post.body(), Ok(Some((b"{\"a\":1}".to_vec(), true))));
    for bad in [
        json!({"method": "GET", "path": "room"}),
        json!({"method": "GET", "path": "/x", "json": {}}),
        json!({"method": "POST", "path": "/x", "json": {}, "b64": ""}),
        json!({"method": "POST", "path": "/x", "b64": "***"}),
    ] {
        let r: SubRequest = serde_json::from_value(bad.clone()).expect("shape");
        assert!(r.body().is_err(), "{bad}");
    }
    assert!(RoomPaths::new("a/b").is_err());
    assert!(RoomPaths::new("").is_err());
    let _: PostMessage = serde_json::from_value(json!({"data": "", "signature": ""})).expect("ok");
}

// ---- community DMs ---------------------------------------------------------------------------

#[test]
fn blinded_dm_vector() {
    let d = doc(DM);
    let server = h32(&d["server_pubkey_hex"]);
    let alice = keys(&d["sender_ed25519_seed_hex"]);
    let bob = keys(&d["recipient_ed25519_seed_hex"]);
    assert_eq!(alice.account_id(), &id(&d["sender_account_id"]));
    let a = Blind15Keys::new(&alice, &server);
    let b = Blind15Keys::new(&bob, &server);
    assert_eq!(a.id(), &id(&d["sender_blind15"]));
    assert_eq!(b.id(), &id(&d["recipient_blind15"]));
    let content = unhex(&d["content_protobuf_hex"]);
    let nonce: [u8; 24] = unhex(&d["nonce_hex"]).try_into().expect("24");
    let wire = encrypt_dm_with_nonce(&a, b.id(), &content, &nonce).expect("encrypt");
    assert_eq!(STANDARD.encode(&wire), s(&d["wire_base64"]));
    assert_eq!(wire.len() as u64, d["wire_len"].as_u64().expect("len"));

    // The recipient opens it and learns the sender's Account ID; the sender reads its outbox.
    for reader in [&b, &a] {
        let opened = decrypt_dm(reader, a.id(), b.id(), &wire).expect("opens");
        assert_eq!(opened.sender, *alice.account_id());
        assert_eq!(opened.sender_ed25519, *alice.ed25519_public());
        assert_eq!(opened.content, content);
    }
    let c = Content::decode(content.as_slice()).expect("content");
    assert_eq!(
        c.data_message.and_then(|m| m.body).as_deref(),
        Some("hi from a community DM")
    );
}

#[test]
fn blinded_dm_rejections() {
    let server = [5u8; 32];
    let alice = IdentityKeys::from_seed(&[1; 32]);
    let a = Blind15Keys::new(&alice, &server);
    let b = Blind15Keys::new(&IdentityKeys::from_seed(&[2; 32]), &server);
    let eve = Blind15Keys::new(&IdentityKeys::from_seed(&[3; 32]), &server);
    let mut rng = rand::rngs::OsRng;
    let wire = encrypt_dm(&mut rng, &a, b.id(), b"hello").expect("encrypt");
    assert_eq!(
        decrypt_dm(&b, a.id(), b.id(), &wire).expect("ok").content,
        b"hello"
    );

    assert_eq!(
        decrypt_dm(&eve, a.id(), b.id(), &wire),
        Err(CommunityError::DmNotOurs)
    );
    // Eve relabelled as the sender: the key inside does not blind to her.
    let e = decrypt_dm(&b, eve.id(), b.id(), &wire).expect_err("relabelled");
    assert_eq!(e, CommunityError::DmDecrypt);
    let mut v = wire.clone();
    v[0] = 1;
    assert_eq!(
        decrypt_dm(&b, a.id(), b.id(), &v),
        Err(CommunityError::DmVersion(1))
    );
    let mut v = wire.clone();
    v[5] ^= 0x10;
    assert_eq!(
        decrypt_dm(&b, a.id(), b.id(), &v),
        Err(CommunityError::DmDecrypt)
    );
    assert!(matches!(
        decrypt_dm(&b, a.id(), b.id(), &wire[..DM_MIN_LEN - 1]),
        Err(CommunityError::DmTooShort { .. })
    ));
    assert!(matches!(
        decrypt_dm(&b, alice.account_id(), b.id(), &wire),
        Err(CommunityError::WrongPrefix { .. })
    ));
    assert!(matches!(
        encrypt_dm(&mut rng, &a, alice.account_id(), b"x"),
        Err(CommunityError::WrongPrefix { .. })
    ));
    // A recipient key that is not a curve point.
    let mut junk = [0x15u8; 33];
    junk[1..].copy_from_slice(&[0xff; 32]);
    let junk = AccountId::from_raw(junk);
    assert!(matches!(
        encrypt_dm(&mut rng, &a, &junk, b"x"),
        Err(CommunityError::BadPoint { .. })
    ));

    // A sender that puts someone else's real key inside (sign-mismatch attack): refused.
    let forged = {
        let mut plaintext = pad160(b"forged");
        plaintext.extend_from_slice(b.ed25519_public());
        // Encrypt exactly as a sender would, but with the wrong key in the plaintext.
        use blake2::digest::consts::U32;
        use blake2::{Blake2b, Digest};
        use chacha20poly1305::aead::{Aead, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let kb = curve25519_dalek::edwards::CompressedEdwardsY(*b.public())
            .decompress()
            .expect("point");
        let shared = (Blind15Keys::private_scalar(&eve) * kb)
            .compress()
            .to_bytes();
        let key: [u8; 32] = Blake2b::<U32>::new()
            .chain_update(shared)
            .chain_update(eve.public())
            .chain_update(b.public())
            .finalize()
            .into();
        let ct = XChaCha20Poly1305::new(&key.into())
            .encrypt(XNonce::from_slice(&[0; 24]), plaintext.as_slice())
            .expect("encrypt");
        [&[0u8][..], &ct, &[0; 24]].concat()
    };
    assert_eq!(
        decrypt_dm(&b, eve.id(), b.id(), &forged),
        Err(CommunityError::DmSenderMismatch)
    );
}

proptest! {
    #[test]
    fn dm_round_trip(s1 in any::<[u8; 32]>(), s2 in any::<[u8; 32]>(), server in any::<[u8; 32]>(),
                     content in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assume!(content.last() != Some(&0) && content.last() != Some(&0x80));
        let a = Blind15Keys::new(&IdentityKeys::from_seed(&s1), &server);
        let b = Blind15Keys::new(&IdentityKeys::from_seed(&s2), &server);
        prop_assume!(a.id() != b.id());
        let wire = encrypt_dm(&mut rand::rngs::OsRng, &a, b.id(), &content).expect("encrypt");
        let got = decrypt_dm(&b, a.id(), b.id(), &wire).expect("decrypt");
        prop_assert_eq!(got.content, content);
    }

    #[test]
    fn dm_decrypt_never_panics(wire in proptest::collection::vec(any::<u8>(), 0..200)) {
        let a = Blind15Keys::new(&IdentityKeys::from_seed(&[1; 32]), &[5; 32]);
        let b = Blind15Keys::new(&IdentityKeys::from_seed(&[2; 32]), &[5; 32]);
        prop_assert!(decrypt_dm(&b, a.id(), b.id(), &wire).is_err());
    }
}
