//! Attachment tests: the published vectors, round trips in odd chunkings, and bad input.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::err::{AttachmentError, ErrorKind, HasKind};

const LEGACY: &str = include_str!("../../tests/data/attachments-legacy-aes-cbc.json");
const STREAM: &str = include_str!("../../tests/data/attachments-libsession-stream.json");

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("hex string"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// `make_data(n)`: byte i = (i * 7) mod 256.
fn make_data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

/// Runs an incremental API over `data` in chunks of `step` bytes.
fn chunked(
    data: &[u8],
    step: usize,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), AttachmentError>,
) -> Result<Vec<u8>, AttachmentError> {
    let mut out = Vec::new();
    for c in data.chunks(step.max(1)) {
        f(c, &mut out)?;
    }
    Ok(out)
}

#[test]
fn legacy_vector_encrypts_and_decrypts() {
    let v: Value = serde_json::from_str(LEGACY).expect("json");
    let key: [u8; 64] = hex::decode(v["key_hex"].as_str().expect("key"))
        .expect("hex")
        .try_into()
        .expect("64");
    let iv: [u8; 16] = hex::decode(v["iv_hex"].as_str().expect("iv"))
        .expect("hex")
        .try_into()
        .expect("16");
    let plain = hex::decode(v["plaintext_hex"].as_str().expect("pt")).expect("hex");
    let blob = hex::decode(v["encrypted_blob_hex"].as_str().expect("blob")).expect("hex");
    let digest = hex32(&v["digest_sha256_hex"]);
    assert_eq!(
        plain.len() as u64,
        v["plaintext_len"].as_u64().expect("len")
    );
    assert_eq!(
        legacy::padded_len(plain.len() as u64),
        v["padded_len"].as_u64().expect("pad")
    );
    assert_eq!(legacy::blob_len(plain.len() as u64), blob.len() as u64);

    let (ours, our_digest) = legacy::encrypt(&key, &iv, &plain).expect("encrypts");
    assert_eq!(hex::encode(&ours), hex::encode(&blob));
    assert_eq!(our_digest, digest);
    // The same through the incremental encryptor, a byte at a time.
    let mut enc = LegacyEncryptor::new(&key, &iv, plain.len() as u64).expect("new");
    let mut out = chunked(&plain, 1, |c, o| enc.update(c, o)).expect("update");
    assert_eq!(enc.finish(&mut out).expect("finish"), digest);
    assert_eq!(out, blob);

    let size = Some(plain.len() as u64);
    assert_eq!(
        legacy::decrypt(&key, &digest, size, &blob).expect("decrypts"),
        plain
    );
    for step in [1, 7, 16, 47, 48, 49, 500, 4096] {
        let mut dec = LegacyDecryptor::new(&key, &digest, size).expect("new");
        let mut out = chunked(&blob, step, |c, o| dec.update(c, o)).expect("update");
        dec.finish(&mut out).expect("finish");
        assert_eq!(out, plain, "step {step}");
    }
    // Without a size, the zero padding stays (desktop does the same).
    let whole = legacy::decrypt(&key, &digest, None, &blob).expect("decrypts");
    assert_eq!(whole.len(), 541);
    assert_eq!(&whole[..plain.len()], &plain[..]);
}

#[test]
fn legacy_padding_table() {
    let v: Value = serde_json::from_str(LEGACY).expect("json");
    let table = v["attachment_padding_sizes"].as_array().expect("table");
    assert!(table.len() >= 10);
    for row in table {
        let n = row["plaintext_len"].as_u64().expect("n");
        assert_eq!(
            legacy::padded_len(n),
            row["padded_len"].as_u64().expect("p"),
            "n = {n}"
        );
    }
    assert_eq!(legacy::padded_len(0), 541);
}

#[test]
fn stream_size_table() {
    let v: Value = serde_json::from_str(STREAM).expect("json");
    let table = v["encrypted_sizes"].as_array().expect("table");
    assert!(table.len() >= 20);
    for row in table {
        let n = row["plaintext_len"].as_u64().expect("n");
        assert_eq!(
            stream::encrypted_size(n),
            row["encrypted_len"].as_u64().expect("len"),
            "n = {n}"
        );
    }
    assert_eq!(
        stream::encrypted_size(stream::MAX_REGULAR_SIZE),
        MAX_ENCRYPTED_LEN
    );
}

#[test]
fn stream_examples_both_kdfs() {
    let v: Value = serde_json::from_str(STREAM).expect("json");
    let seed = hex32(&v["seed_hex"]);
    let examples = v["examples_derived"].as_array().expect("examples");
    assert_eq!(examples.len(), 3);
    for ex in examples {
        let n = ex["plaintext_len"].as_u64().expect("n") as usize;
        let data = make_data(n);
        for (field, kdf) in [
            ("new_kdf", stream::Kdf::Personal),
            ("old_kdf", stream::Kdf::DomainByte),
        ] {
            let e = &ex[field];
            let key = stream::derive_key(&seed, stream::Domain::Attachment, kdf, &data);
            let nonce_key = hex::decode(e["nonce_key_hex"].as_str().expect("nk")).expect("hex");
            assert_eq!(&key.header[..], &nonce_key[..24], "{field} n={n}");
            assert_eq!(&key.key[..], &hex32(&e["key_hex"])[..], "{field} n={n}");
            if let Some(h) = e["header_hex"].as_str() {
                assert_eq!(hex::encode(key.header), h);
            }
            let (blob, k2) =
                stream::encrypt(&seed, stream::Domain::Attachment, kdf, &data).expect("encrypts");
            assert_eq!(&k2.key[..], &key.key[..]);
            assert_eq!(blob.len() as u64, e["encrypted_len"].as_u64().expect("len"));
            assert_eq!(
                sha256(&blob),
                e["encrypted_sha256"].as_str().expect("sha"),
                "{field} n={n}"
            );
            if let Some(h) = e["encrypted_hex"].as_str() {
                assert_eq!(hex::encode(&blob), h);
            }
            assert_eq!(
                stream::decrypt(&key.key[..], &blob).expect("decrypts"),
                data
            );
            for step in [1, 25, 26, 4096, 32_785, 40_000] {
                let mut dec = StreamDecryptor::new(&key.key[..]).expect("new");
                let mut out = chunked(&blob, step, |c, o| dec.update(c, o)).expect("update");
                dec.finish(&mut out).expect("finish");
                assert_eq!(out, data, "step {step}");
            }
        }
    }
}

#[test]
fn stream_multi_chunk_padding_round_trips() {
    // Sizes whose padding spans whole chunks, or spills into another chunk.
    let seed = [5u8; 32];
    for n in [
        0, 1, 32_767, 32_768, 32_769, 65_536, 131_000, 261_982, 261_983, 300_000,
    ] {
        let data = make_data(n);
        let key = stream::derive_key(
            &seed,
            stream::Domain::ProfilePic,
            stream::Kdf::Personal,
            &data,
        );
        let mut enc = StreamEncryptor::new(&key, n as u64, false).expect("new");
        let mut blob = chunked(&data, 10_000, |c, o| enc.update(c, o)).expect("update");
        enc.finish(&mut blob).expect("finish");
        assert_eq!(
            blob.len() as u64,
            stream::encrypted_size(n as u64),
            "n = {n}"
        );
        assert_eq!(
            stream::decrypt(&key.key[..], &blob).expect("decrypts"),
            data,
            "n = {n}"
        );
    }
}

#[test]
fn legacy_bad_input_is_typed() {
    let key = [3u8; 64];
    let iv = [4u8; 16];
    let data = make_data(1000);
    let (blob, digest) = legacy::encrypt(&key, &iv, &data).expect("encrypts");
    let size = Some(1000);
    let err = |r: Result<Vec<u8>, AttachmentError>| r.expect_err("must fail");

    // A flipped byte anywhere: the digest no longer matches.
    for i in [0, 16, 500, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 0x80;
        assert_eq!(
            err(legacy::decrypt(&key, &digest, size, &bad)),
            AttachmentError::DigestMismatch
        );
    }
    // Right digest, wrong key: the MAC fails.
    let mut wrong = key;
    wrong[40] ^= 1;
    let e = err(legacy::decrypt(&wrong, &digest, size, &blob));
    assert_eq!(e, AttachmentError::BadMac);
    assert_eq!(e.kind(), ErrorKind::BadCrypto);
    // Truncation: shorter by a block, or cut mid-block, or almost nothing.
    for cut in [16, 5, blob.len() - 10] {
        let short = &blob[..blob.len() - cut];
        let e = err(legacy::decrypt(&key, &digest, size, short));
        assert!(
            matches!(
                e,
                AttachmentError::Truncated { .. } | AttachmentError::DigestMismatch
            ),
            "cut {cut}: {e}"
        );
    }
    assert!(matches!(
        err(legacy::decrypt(&key, &digest, size, &blob[..40])),
        AttachmentError::Truncated { .. }
    ));
    // A size beyond what the blob holds.
    assert_eq!(
        err(legacy::decrypt(&key, &digest, Some(5000), &blob)),
        AttachmentError::ShortPlaintext {
            size: 5000,
            got: 1020
        }
    );
    // Key and digest shapes.
    assert!(matches!(
        err(legacy::decrypt(&key[..32], &digest, size, &blob)),
        AttachmentError::BadKeyLength { len: 32, .. }
    ));
    assert_eq!(
        err(legacy::decrypt(&key, &[], size, &blob)),
        AttachmentError::MissingDigest
    );
    assert_eq!(
        err(legacy::decrypt(&key, &digest[..31], size, &blob)),
        AttachmentError::BadDigestLength { len: 31 }
    );
    // Oversized input stops at the limit, before the end.
    let mut dec = LegacyDecryptor::new(&key, &digest, size).expect("new");
    let big = vec![0u8; 1 << 20];
    let mut sink = Vec::new();
    let mut res = Ok(());
    for _ in 0..12 {
        res = dec.update(&big, &mut sink);
        if res.is_err() {
            break;
        }
    }
    assert_eq!(
        res,
        Err(AttachmentError::Oversized {
            max: MAX_ENCRYPTED_LEN
        })
    );
    assert!(sink.len() <= 1000);
    // Encrypting: too large, or fed the wrong amount.
    assert!(matches!(
        LegacyEncryptor::new(&key, &iv, MAX_ATTACHMENT_SIZE + 1),
        Err(AttachmentError::TooLarge { .. })
    ));
    let mut enc = LegacyEncryptor::new(&key, &iv, 10).expect("new");
    assert!(matches!(
        enc.update(&[0; 11], &mut Vec::new()),
        Err(AttachmentError::LengthMismatch {
            declared: 10,
            got: 11
        })
    ));
    let enc = LegacyEncryptor::new(&key, &iv, 10).expect("new");
    assert!(matches!(
        enc.finish(&mut Vec::new()),
        Err(AttachmentError::LengthMismatch {
            declared: 10,
            got: 0
        })
    ));
}

#[test]
fn legacy_bad_pkcs7_under_a_valid_mac_is_refused() {
    // A blob a broken sender could make: valid MAC and digest over a last block whose
    // PKCS#7 byte is 0.
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};
    use hmac::Mac;
    use sha2::Digest;
    let key = [9u8; 64];
    let iv = [1u8; 16];
    let mut blocks = [[0u8; 16]; 2];
    let mut enc = cbc::Encryptor::<aes::Aes256>::new((&key[..32]).into(), (&iv).into());
    for b in &mut blocks {
        enc.encrypt_block_mut(b.into());
    }
    let mut blob = iv.to_vec();
    blob.extend(blocks.iter().flatten());
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key[32..]).expect("key");
    mac.update(&blob);
    blob.extend_from_slice(&mac.finalize().into_bytes());
    let digest: [u8; 32] = sha2::Sha256::digest(&blob).into();
    assert_eq!(
        legacy::decrypt(&key, &digest, Some(1), &blob),
        Err(AttachmentError::BadPadding)
    );
}

#[test]
fn stream_bad_input_is_typed() {
    let seed = [8u8; 32];
    let data = make_data(70_000);
    let (blob, key) = stream::encrypt(
        &seed,
        stream::Domain::Attachment,
        stream::Kdf::Personal,
        &data,
    )
    .expect("encrypts");
    let k = &key.key[..];
    // Wrong key: the first chunk does not authenticate.
    let e = stream::decrypt(&[0u8; 32], &blob).expect_err("wrong key");
    assert_eq!(e, AttachmentError::ChunkAuth { chunk: 0 });
    assert_eq!(e.kind(), ErrorKind::BadCrypto);
    // A flipped byte in the second chunk.
    let mut bad = blob.clone();
    bad[25 + 32_785 + 100] ^= 1;
    assert_eq!(
        stream::decrypt(k, &bad),
        Err(AttachmentError::ChunkAuth { chunk: 1 })
    );
    // Truncated at a chunk boundary: every chunk verifies but no FINAL tag came.
    let cut = &blob[..25 + 2 * 32_785];
    assert!(matches!(
        stream::decrypt(k, cut),
        Err(AttachmentError::Truncated { .. })
    ));
    // Truncated mid-chunk, or to the header, or to nothing.
    assert!(matches!(
        stream::decrypt(k, &blob[..blob.len() - 1]),
        Err(AttachmentError::ChunkAuth { .. })
    ));
    assert!(matches!(
        stream::decrypt(k, &blob[..25 + 10]),
        Err(AttachmentError::Truncated { .. })
    ));
    assert!(matches!(
        stream::decrypt(k, &blob[..10]),
        Err(AttachmentError::Truncated { .. })
    ));
    assert!(matches!(
        stream::decrypt(k, &[]),
        Err(AttachmentError::Truncated { .. })
    ));
    // Bytes appended to a short final chunk break its MAC.
    let mut long = blob.clone();
    long.extend_from_slice(&[0u8; 40]);
    assert_eq!(
        stream::decrypt(k, &long),
        Err(AttachmentError::ChunkAuth { chunk: 2 })
    );
    // After a full-size FINAL chunk, any further byte is trailing data.
    let mut state = secretstream::State::new(&key.key, &key.header);
    let mut full = vec![stream::PREFIX];
    full.extend_from_slice(&key.header);
    let mut chunk = vec![0u8; stream::CHUNK_LEN];
    chunk[10] = 1;
    state.push(&chunk, secretstream::TAG_FINAL, &mut full);
    assert_eq!(
        stream::decrypt(k, &full).expect("valid").len(),
        stream::CHUNK_LEN - 11
    );
    for extra in [1, 16, 17, 40, 40_000] {
        let mut long = full.clone();
        long.resize(full.len() + extra, 7);
        assert_eq!(
            stream::decrypt(k, &long),
            Err(AttachmentError::TrailingData),
            "{extra}"
        );
    }
    // Not the 'S' format.
    let mut not_s = blob.clone();
    not_s[0] = b'X';
    assert_eq!(
        stream::decrypt(k, &not_s),
        Err(AttachmentError::NotStreamFormat { first: b'X' })
    );
    // Key length.
    assert!(matches!(
        stream::decrypt(&[0u8; 64], &blob),
        Err(AttachmentError::BadKeyLength { len: 64, .. })
    ));
    // Junk that is not the format stops at once.
    let mut dec = StreamDecryptor::new(k).expect("new");
    let junk = vec![0u8; 1 << 20];
    assert_eq!(
        dec.update(&junk, &mut Vec::new()),
        Err(AttachmentError::NotStreamFormat { first: 0 })
    );
    // Encrypting too much, or the wrong amount.
    assert!(matches!(
        StreamEncryptor::new(&key, stream::MAX_REGULAR_SIZE + 1, false),
        Err(AttachmentError::TooLarge { .. })
    ));
    assert!(StreamEncryptor::new(&key, stream::MAX_REGULAR_SIZE + 1, true).is_ok());
    let enc = StreamEncryptor::new(&key, 5, false).expect("new");
    assert!(matches!(
        enc.finish(&mut Vec::new()),
        Err(AttachmentError::LengthMismatch { .. })
    ));
}

#[test]
fn stream_oversized_input_is_refused() {
    // The cap is on bytes received, checked before any chunk is decrypted.
    let mut dec = StreamDecryptor::new(&[2; 32]).expect("new");
    let mut blob = vec![0u8; MAX_ENCRYPTED_LEN as usize];
    blob[0] = stream::PREFIX;
    let mut out = Vec::new();
    dec.update(&blob[..25], &mut out).expect("header");
    assert_eq!(
        dec.update(&blob[25..], &mut out),
        Err(AttachmentError::ChunkAuth { chunk: 0 })
    );
    let mut dec = StreamDecryptor::new(&[2; 32]).expect("new");
    dec.update(&blob[..25], &mut out).expect("header");
    blob.push(0);
    assert_eq!(
        dec.update(&blob[25..], &mut out),
        Err(AttachmentError::Oversized {
            max: MAX_ENCRYPTED_LEN
        })
    );
    assert!(out.is_empty());
    let mut big = StreamDecryptor::new(&[2; 32]).expect("new").allow_large();
    assert_eq!(
        big.update(&blob, &mut out),
        Err(AttachmentError::ChunkAuth { chunk: 0 })
    );
}

#[test]
fn urls_parse_in_every_fragment_form() {
    let id44 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456_";
    let key = DEFAULT_FILE_SERVER_ED25519;
    let cases: &[(&str, bool, bool)] = &[
        ("http://filev2.getsession.org/file/12345", false, false),
        ("http://filev2.getsession.org/file/12345#d", true, false),
        ("http://filev2.getsession.org/file/12345#d=", true, false),
        ("http://filev2.getsession.org/file/12345#d=1", true, false),
        ("http://filev2.getsession.org/files/12345", false, false),
    ];
    for &(s, stream, p) in cases {
        let u: FileUrl = s.parse().expect(s);
        assert_eq!(u.stream, stream, "{s}");
        assert_eq!(u.server_ed25519.is_some(), p, "{s}");
        assert_eq!(u.id, "12345");
        assert_eq!(u.deprecated_id(), 12345);
        assert_eq!(u.host, "filev2.getsession.org");
        assert_eq!(u.effective_port(), 80);
    }
    let s = format!("https://Files.Example.org:8443/file/{id44}#p={key}&d");
    let u: FileUrl = s.parse().expect("parses");
    assert_eq!(u.host, "files.example.org");
    assert_eq!(u.port, Some(8443));
    assert_eq!(u.id, id44);
    assert_eq!(u.deprecated_id(), 0);
    assert!(u.stream);
    assert_eq!(hex::encode(u.server_ed25519.expect("p")), key);
    assert_eq!(
        hex::encode(u.server_x25519(&[0; 32]).expect("x")),
        DEFAULT_FILE_SERVER_X25519
    );
    assert_eq!(
        u.to_string(),
        format!("https://files.example.org:8443/file/{id44}#p={key}&d")
    );
    assert_eq!(u.endpoint(), format!("/file/{id44}"));
    // desktop's form: d= then p= and an avatar key.
    let u: FileUrl = format!("http://127.0.0.1:9000/file/7#d=&p={key}&e=AB01&x=y")
        .parse()
        .expect("parses");
    assert!(u.stream);
    assert_eq!(u.profile_key.as_deref(), Some("ab01"));
    assert_eq!(
        u.to_string(),
        format!("http://127.0.0.1:9000/file/7#p={key}&d&e=ab01")
    );
    let u: FileUrl = "http://[::1]:80/file/1".parse().expect("ipv6");
    assert_eq!(u.host, "::1");
    assert_eq!(u.to_string(), "http://[::1]:80/file/1");
    // Without p=, the configured key is used.
    let u: FileUrl = "http://h/file/1".parse().expect("parses");
    assert_eq!(u.server_x25519(&[7; 32]).expect("default"), [7; 32]);
    assert_eq!(
        FileUrl::new("http://h:1/", "99", None, true)
            .expect("new")
            .to_string(),
        "http://h:1/file/99#d"
    );
}

#[test]
fn bad_urls_are_refused() {
    for s in [
        "",
        "ftp://h/file/1",
        "http://",
        "http://h",
        "http:///file/1",
        "http://h/file/",
        "http://h/file/a/b",
        "http://h/room/r/file/1",
        "http://h/file/1?x=1",
        "http://h:0/file/1",
        "http://h:+80/file/1",
        "http://h:99999/file/1",
        "http://u@h/file/1",
        "http://h h/file/1",
        "http://[::1/file/1",
        "http://[zz]/file/1",
        "http://h/file/1#p=1234",
        "http://h/file/1#e=zz",
        "http://h/file/%2e%2e",
    ] {
        let r = s.parse::<FileUrl>();
        assert!(matches!(r, Err(AttachmentError::BadUrl(_))), "{s:?}: {r:?}");
    }
    let long = format!("http://h/file/{}", "a".repeat(3000));
    assert!(long.parse::<FileUrl>().is_err());
    // A p= that is not a curve point.
    let u: FileUrl = format!("http://h/file/1#p={}", "ff".repeat(32))
        .parse()
        .expect("syntax ok");
    assert!(matches!(
        u.server_x25519(&[0; 32]),
        Err(AttachmentError::BadServerKey(_))
    ));
}

#[test]
fn pointers_round_trip_and_bad_pointers_are_typed() {
    let url: FileUrl = "http://filev2.getsession.org/file/4242"
        .parse()
        .expect("url");
    let meta = AttachmentMeta {
        content_type: Some("image/png".into()),
        file_name: Some("cat.png".into()),
        voice_message: true,
        width: Some(640),
        height: Some(480),
        caption: Some("a cat".into()),
    };
    let key = [1u8; 64];
    let digest = [2u8; 32];
    let p = pointer(&url, &key, Some(&digest), 1234, &meta);
    assert_eq!(p.deprecated_id, 4242);
    assert_eq!(p.flags, Some(FLAG_VOICE_MESSAGE));
    let bytes = prost::Message::encode_to_vec(&p);
    let back: AttachmentPointer = prost::Message::decode(&bytes[..]).expect("decodes");
    let inc = IncomingAttachment::from_pointer(&back).expect("reads");
    assert_eq!(inc.scheme, Scheme::Legacy);
    assert_eq!(inc.digest, Some(digest));
    assert_eq!(inc.size, Some(1234));
    assert_eq!(inc.meta, meta);
    assert_eq!(inc.url, url);
    assert!(matches!(
        inc.decryptor().expect("decryptor"),
        Decryptor::Legacy(_)
    ));

    let surl: FileUrl = "http://filev2.getsession.org/file/4242#d"
        .parse()
        .expect("url");
    let sp = pointer(&surl, &[3; 32], None, 10, &AttachmentMeta::default());
    let inc = IncomingAttachment::from_pointer(&sp).expect("stream");
    assert_eq!(inc.scheme, Scheme::Stream);
    assert!(matches!(
        inc.decryptor().expect("decryptor"),
        Decryptor::Stream(_)
    ));
    // A 32-byte key without the marker is the stream scheme too.
    let mut nod = sp.clone();
    nod.url = Some("http://filev2.getsession.org/file/4242".into());
    assert_eq!(
        IncomingAttachment::from_pointer(&nod)
            .expect("stream")
            .scheme,
        Scheme::Stream
    );

    let mut bad = p.clone();
    bad.digest = None;
    assert_eq!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::MissingDigest)
    );
    let mut bad = p.clone();
    bad.key = None;
    assert_eq!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::MissingKey)
    );
    let mut bad = p.clone();
    bad.key = Some(vec![0; 48]);
    assert!(matches!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::BadKeyLength { .. })
    ));
    let mut bad = sp.clone();
    bad.key = Some(vec![0; 64]);
    assert!(matches!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::BadKeyLength { .. })
    ));
    let mut bad = p.clone();
    bad.url = None;
    assert!(matches!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::BadUrl(_))
    ));
    let mut bad = p;
    bad.url = Some("javascript:alert(1)".into());
    assert!(matches!(
        IncomingAttachment::from_pointer(&bad),
        Err(AttachmentError::BadUrl(_))
    ));
}

#[test]
fn hashed_file_ids_are_44_url_safe_characters() {
    let id = hashed_file_id(b"hello");
    assert_eq!(id.len(), 44);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(id, hashed_file_id(b"hello"));
    assert_ne!(id, hashed_file_id(b"hello!"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn legacy_round_trips_in_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                          key in any::<[u8; 32]>(), iv in any::<[u8; 16]>(),
                                          step in 1usize..700) {
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&key);
        k[32..].copy_from_slice(&iv.repeat(2));
        let mut enc = LegacyEncryptor::new(&k, &iv, data.len() as u64).expect("new");
        let mut blob = chunked(&data, step, |c, o| enc.update(c, o)).expect("update");
        let digest = enc.finish(&mut blob).expect("finish");
        prop_assert_eq!(blob.len() as u64, legacy::blob_len(data.len() as u64));
        let mut dec = LegacyDecryptor::new(&k, &digest, Some(data.len() as u64)).expect("new");
        let mut out = chunked(&blob, step + 3, |c, o| dec.update(c, o)).expect("update");
        dec.finish(&mut out).expect("finish");
        prop_assert_eq!(out, data);
    }

    #[test]
    fn stream_round_trips_in_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..70_000),
                                          seed in any::<[u8; 32]>(), step in 1usize..40_000) {
        let key = stream::derive_key(&seed, stream::Domain::Attachment, stream::Kdf::Personal, &data);
        let mut enc = StreamEncryptor::new(&key, data.len() as u64, false).expect("new");
        let mut blob = chunked(&data, step, |c, o| enc.update(c, o)).expect("update");
        enc.finish(&mut blob).expect("finish");
        prop_assert_eq!(blob.len() as u64, stream::encrypted_size(data.len() as u64));
        let mut dec = StreamDecryptor::new(&key.key[..]).expect("new");
        let mut out = chunked(&blob, step / 2 + 1, |c, o| dec.update(c, o)).expect("update");
        dec.finish(&mut out).expect("finish");
        prop_assert_eq!(out, data);
    }

    #[test]
    fn decryptors_never_panic_on_junk(blob in proptest::collection::vec(any::<u8>(), 0..3000),
                                      key in proptest::collection::vec(any::<u8>(), 0..80),
                                      digest in proptest::collection::vec(any::<u8>(), 0..40),
                                      size in proptest::option::of(0u64..5000)) {
        let _ = legacy::decrypt(&key, &digest, size, &blob);
        let _ = stream::decrypt(&key, &blob);
        if let Ok(k) = <[u8; 32]>::try_from(&key[..32.min(key.len())]) {
            let mut s = blob.clone();
            if !s.is_empty() { s[0] = b'S'; }
            prop_assert!(stream::decrypt(&k, &s).is_err());
        }
    }

    #[test]
    fn url_display_parses_back(host in "[a-z][a-z0-9.-]{0,30}", port in proptest::option::of(1u16..),
                               id in "[A-Za-z0-9_-]{1,60}", p in proptest::option::of(any::<[u8; 32]>()),
                               d in any::<bool>(), https in any::<bool>()) {
        let url = FileUrl {
            scheme: if https { UrlScheme::Https } else { UrlScheme::Http },
            host, port, id, legacy_path: false, server_ed25519: p, stream: d, profile_key: None,
        };
        let back: FileUrl = url.to_string().parse().expect("own URL parses");
        prop_assert_eq!(back, url);
    }

    #[test]
    fn url_parser_never_panics(s in "\\PC{0,120}") {
        let _ = s.parse::<FileUrl>();
    }
}
