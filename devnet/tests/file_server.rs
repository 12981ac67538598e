//! The devnet's file server over real sockets: its HTTP API directly (uploads, downloads,
//! info, extend, limits, expiry, every bad request), and attachments uploaded and downloaded
//! through three-hop onion requests (v4) built with session-proto.

#[path = "support/client.rs"]
mod client;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use client::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use session_devnet::file_server::FileIds;
use session_devnet::{Devnet, DevnetConfig, Event, FileServer, FileServerConfig, HttpsClient};
use session_proto::attachment::{self, legacy, AttachmentMeta, FileUrl, IncomingAttachment};
use session_proto::bencode::{V4Request, V4Response};
use session_proto::onion::{build_request, Destination, EncType, Hop, PeerKey, ServerDestination};

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A plain HTTP request to the file server.
async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let resp = tokio::time::timeout(T, client.request(req))
        .await
        .expect("in time")
        .expect("server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn now_s() -> f64 {
    now_ms() as f64 / 1000.0
}

const WEEK: f64 = 7.0 * 24.0 * 3600.0;

#[tokio::test]
async fn upload_download_info_extend_and_limits() {
    let fs = FileServer::start(FileServerConfig::default())
        .await
        .expect("starts");
    let base = fs.url();
    let data = b"an encrypted attachment, as far as the server knows".to_vec();
    let up = http("POST", &format!("{base}/file"), &[], data.clone()).await;
    assert_eq!(up.status, 200);
    let v = up.json();
    let id = v["id"].as_str().expect("id").to_owned();
    assert_eq!(id, attachment::hashed_file_id(&data));
    assert_eq!(id.len(), 44);
    let expires = v["expires"].as_f64().expect("expires");
    assert!((expires - now_s() - 3.0 * WEEK).abs() < 60.0, "{expires}");

    let get = http("GET", &format!("{base}/file/{id}"), &[], vec![]).await;
    assert_eq!(get.status, 200);
    assert_eq!(&get.body[..], &data[..]);
    assert_eq!(get.headers["content-type"], "application/octet-stream");
    assert!(get.headers["expires"]
        .to_str()
        .expect("ascii")
        .ends_with(" GMT"));

    let info = http("GET", &format!("{base}/file/{id}/info"), &[], vec![]).await;
    assert_eq!(info.status, 200);
    let iv = info.json();
    assert_eq!(iv["size"], data.len());
    assert!((iv["uploaded"].as_f64().expect("uploaded") - now_s()).abs() < 60.0);
    assert_eq!(iv["expires"].as_f64(), Some(expires));

    // Extending never shortens; the same upload again shares the ID.
    let ext = http("POST", &format!("{base}/file/{id}/extend"), &[], vec![]).await;
    assert_eq!(ext.status, 200);
    assert!(ext.json()["expires"].as_f64().expect("expires") >= expires);
    assert_eq!(ext.json()["size"], data.len());
    let again = http("POST", &format!("{base}/file"), &[], data.clone()).await;
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(fs.file_count(), 1);
    // X-FS-TTL is ignored unless the server allows it.
    let ttl = http(
        "POST",
        &format!("{base}/file"),
        &[("X-FS-TTL", "30")],
        b"x".to_vec(),
    )
    .await;
    assert!(ttl.json()["expires"].as_f64().expect("expires") > now_s() + 2.0 * WEEK);

    // Limits: empty and over 10,000,000 bytes are 413; exactly the limit is fine.
    let empty = http("POST", &format!("{base}/file"), &[], vec![]).await;
    assert_eq!(
        (empty.status, empty.json()),
        (413, serde_json::json!({"status_code": 413}))
    );
    let over = http("POST", &format!("{base}/file"), &[], vec![7; 10_000_001]).await;
    assert_eq!(over.status, 413);
    let max = http("POST", &format!("{base}/file"), &[], vec![7; 10_000_000]).await;
    assert_eq!(max.status, 200);

    // Unknown files, short IDs, junk paths and wrong methods.
    for (m, p, status) in [
        ("GET", "/file/nope", 404),
        ("GET", "/file/nope/info", 404),
        ("POST", "/file/12345/extend", 404),
        ("POST", &format!("/file/{}/extend", "A".repeat(44)), 404),
        ("GET", "/files/nope", 404),
        ("GET", "/", 404),
        ("GET", "/file", 405),
        ("DELETE", &format!("/file/{id}"), 405),
        ("GET", "/oxen/v4/lsrpc", 404),
        ("POST", "/oxen/v4/lsrpc", 400),
        ("POST", "/files", 400),
    ] {
        let r = http(m, &format!("{base}{p}"), &[], b"junk".to_vec()).await;
        assert_eq!(r.status, status, "{m} {p}");
        assert_eq!(r.json()["status_code"], status, "{m} {p}");
    }
    let r = http("GET", &format!("{base}/file/{id}"), &[], vec![]).await;
    assert_eq!(r.status, 200, "still serving after bad requests");
    let log = fs.requests();
    assert!(log.iter().all(|r| !r.via_onion));
    assert!(log.iter().any(|r| r.status == 413));
    fs.shutdown().await;
}

#[tokio::test]
async fn files_expire_by_the_servers_clock() {
    let fs = FileServer::start(FileServerConfig::default())
        .await
        .expect("starts");
    let base = fs.url();
    let id = http("POST", &format!("{base}/file"), &[], b"soon gone".to_vec())
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // 20 days on: still there; 22 days on: gone everywhere, and purged.
    fs.set_clock_offset_ms(20 * 24 * 3600 * 1000);
    assert_eq!(
        http("GET", &format!("{base}/file/{id}"), &[], vec![])
            .await
            .status,
        200
    );
    fs.set_clock_offset_ms(22 * 24 * 3600 * 1000);
    for p in [format!("/file/{id}"), format!("/file/{id}/info")] {
        assert_eq!(
            http("GET", &format!("{base}{p}"), &[], vec![]).await.status,
            404,
            "{p}"
        );
    }
    let ext = http("POST", &format!("{base}/file/{id}/extend"), &[], vec![]).await;
    assert_eq!(ext.status, 404);
    let mut purged = false;
    for _ in 0..30 {
        if fs.file_count() == 0 {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "the purge task drops expired files");
    fs.shutdown().await;
}

#[tokio::test]
async fn ttl_header_numeric_ids_and_the_legacy_endpoints() {
    let fs = FileServer::start(FileServerConfig {
        max_ttl: Some(Duration::from_secs(3600)),
        ids: FileIds::Numeric,
        ..Default::default()
    })
    .await
    .expect("starts");
    let base = fs.url();
    let up = http(
        "POST",
        &format!("{base}/file"),
        &[("X-FS-TTL", "60")],
        b"short".to_vec(),
    )
    .await;
    assert_eq!(up.status, 200);
    let v = up.json();
    let id = v["id"].as_str().expect("a string ID").to_owned();
    let n: u64 = id.parse().expect("numeric");
    assert!(n < 1 << 53);
    assert!((v["expires"].as_f64().expect("expires") - now_s() - 60.0).abs() < 30.0);
    for bad in ["3601", "-1", "soon", ""] {
        let r = http(
            "POST",
            &format!("{base}/file"),
            &[("X-FS-TTL", bad)],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(r.status, 400, "ttl {bad:?}");
    }
    // Numeric IDs are never extended.
    assert_eq!(
        http("POST", &format!("{base}/file/{id}/extend"), &[], vec![])
            .await
            .status,
        404
    );
    // The legacy JSON endpoints: base64 in, an integer ID out, base64 back.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"legacy bytes");
    let body = serde_json::json!({ "file": b64 }).to_string().into_bytes();
    let r = http("POST", &format!("{base}/files"), &[], body).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status_code"], 200);
    let lid = v["result"].as_u64().expect("an integer ID");
    let r = http("GET", &format!("{base}/files/{lid}"), &[], vec![]).await;
    assert_eq!(r.json()["result"], b64.as_str());
    let r = http("GET", &format!("{base}/file/{lid}"), &[], vec![]).await;
    assert_eq!(&r.body[..], b"legacy bytes");
    for bad in [
        &b"{}"[..],
        br#"{"file": 5}"#,
        br#"{"file": "!!"}"#,
        b"not json",
    ] {
        let r = http("POST", &format!("{base}/files"), &[], bad.to_vec()).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    fs.shutdown().await;
}

/// Sends a v4 request to the devnet's file server through three snodes.
async fn via_onion(
    c: &HttpsClient,
    d: &Devnet,
    path: &[usize],
    req: &V4Request,
    key: [u8; 32],
) -> V4Response {
    let fs = d.file_server().expect("file server");
    let hops: Vec<Hop> = path.iter().map(|&i| hop(d, i)).collect();
    let dest = Destination::Server(ServerDestination {
        key: PeerKey::new(key),
        host: "127.0.0.1".into(),
        target: "/oxen/v4/lsrpc".into(),
        method: "POST".into(),
        protocol: "http".into(),
        port: Some(fs.port()),
    });
    let onion = build_request(
        &mut rand::rngs::OsRng,
        EncType::XChaCha20,
        &hops,
        &dest,
        &req.encode(),
    )
    .expect("builds");
    let url = format!("{}/onion_req/v2", d.node(path[0]).url());
    let r = c
        .post(&url, &[], onion.body, Duration::from_secs(30))
        .await
        .expect("guard answers");
    assert_eq!(r.status, 200, "{}", r.text());
    onion.reply.open_v4_reply(&r.body).expect("reply opens")
}

fn v4(method: &str, endpoint: &str, body: Option<Vec<u8>>) -> V4Request {
    let mut headers = BTreeMap::new();
    if body.is_some() {
        headers.insert(
            "Content-Type".to_owned(),
            "application/octet-stream".to_owned(),
        );
    }
    V4Request {
        method: method.into(),
        endpoint: endpoint.into(),
        headers,
        body,
    }
}

#[tokio::test]
async fn attachments_travel_through_onion_requests() {
    let d = Devnet::start(DevnetConfig {
        nodes: 6,
        swarm_size: 3,
        file_server: Some(FileServerConfig::default()),
        ..Default::default()
    })
    .await
    .expect("devnet starts");
    let fs = d.file_server().expect("file server");
    let manifest = d.manifest();
    let m = manifest.file_server.as_ref().expect("in devnet.json");
    assert_eq!(m.url, fs.url());
    assert_eq!(m.x25519, hex::encode(fs.x25519()));
    let c = HttpsClient::new();
    let path = [0, 3, 5];

    // A 1.5 MB attachment, encrypted as released clients do, uploaded through the onion.
    let plain: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let key = [0x42u8; 64];
    let iv = [0x24u8; 16];
    let (blob, digest) = legacy::encrypt(&key, &iv, &plain).expect("encrypts");
    let up = via_onion(
        &c,
        &d,
        &path,
        &v4("POST", "/file", Some(blob.clone())),
        fs.x25519(),
    )
    .await;
    assert_eq!(up.code, 200, "{}", String::from_utf8_lossy(&up.body));
    let v: Value = serde_json::from_slice(&up.body).expect("json");
    let id = v["id"].as_str().expect("id");

    // The pointer a message would carry, read back as a receiver does.
    let url = FileUrl::new(&fs.url(), id, Some(fs.ed25519()), false).expect("url");
    let meta = AttachmentMeta {
        content_type: Some("application/octet-stream".into()),
        file_name: Some("data.bin".into()),
        ..Default::default()
    };
    let ptr = attachment::pointer(&url, &key, Some(&digest), plain.len() as u32, &meta);
    let inc = IncomingAttachment::from_pointer(&ptr).expect("pointer reads");
    let server_x = inc.url.server_x25519(&[0; 32]).expect("p= converts");
    assert_eq!(server_x, fs.x25519());

    let down = via_onion(
        &c,
        &d,
        &path,
        &v4("GET", &inc.url.endpoint(), None),
        server_x,
    )
    .await;
    assert_eq!(down.code, 200);
    assert_eq!(down.headers["content-type"], "application/octet-stream");
    assert!(down.headers.contains_key("expires"));
    assert_eq!(down.body.len(), blob.len());
    let mut dec = inc.decryptor().expect("decryptor");
    let mut out = Vec::new();
    for chunk in down.body.chunks(64 * 1024) {
        dec.update(chunk, &mut out).expect("decrypts");
    }
    dec.finish(&mut out).expect("verifies");
    assert_eq!(out, plain);

    // info, and errors come back as v4 codes.
    let info = via_onion(
        &c,
        &d,
        &path,
        &v4("GET", &format!("/file/{id}/info"), None),
        server_x,
    )
    .await;
    assert_eq!(info.code, 200);
    let iv: Value = serde_json::from_slice(&info.body).expect("json");
    assert_eq!(iv["size"], blob.len());
    let missing = via_onion(&c, &d, &path, &v4("GET", "/file/unknown", None), server_x).await;
    assert_eq!(
        (missing.code, missing.body.as_slice()),
        (404, &br#"{"status_code":404}"#[..])
    );
    let empty = via_onion(&c, &d, &path, &v4("POST", "/file", Some(vec![])), server_x).await;
    assert_eq!(empty.code, 413);

    // The server saw onion requests only; the last relay proxied them to it.
    let log = fs.requests();
    assert!(log
        .iter()
        .any(|r| r.via_onion && r.method == "POST" && r.path == "/file"));
    assert!(log
        .iter()
        .any(|r| r.via_onion && r.path == format!("/file/{id}")));
    let target = format!("127.0.0.1:{}", fs.port());
    assert!(d.node(5).events().contains(&Event::OnionProxied { target }));

    // A layer for another key: the server cannot open it, a plain 400 passes back.
    let hops: Vec<Hop> = path.iter().map(|&i| hop(&d, i)).collect();
    let wrong = build_request(
        &mut rand::rngs::OsRng,
        EncType::AesGcm,
        &hops,
        &Destination::Server(ServerDestination {
            key: PeerKey::new(d.node(1).x25519()),
            host: "127.0.0.1".into(),
            target: "/oxen/v4/lsrpc".into(),
            method: "POST".into(),
            protocol: "http".into(),
            port: Some(fs.port()),
        }),
        &v4("GET", "/file/x", None).encode(),
    )
    .expect("builds");
    let r = c
        .post(
            &format!("{}/onion_req/v2", d.node(0).url()),
            &[],
            wrong.body,
            T,
        )
        .await
        .expect("answers");
    assert_eq!(r.status, 400);
    // Not a v4 request inside a good layer: an encrypted 400.
    let hops: Vec<Hop> = path.iter().map(|&i| hop(&d, i)).collect();
    let junk = build_request(
        &mut rand::rngs::OsRng,
        EncType::XChaCha20,
        &hops,
        &Destination::Server(ServerDestination {
            key: PeerKey::new(fs.x25519()),
            host: "127.0.0.1".into(),
            target: "/oxen/v4/lsrpc".into(),
            method: "POST".into(),
            protocol: "http".into(),
            port: Some(fs.port()),
        }),
        b"not bencode",
    )
    .expect("builds");
    let r = c
        .post(
            &format!("{}/onion_req/v2", d.node(0).url()),
            &[],
            junk.body,
            T,
        )
        .await
        .expect("answers");
    assert_eq!(r.status, 200);
    let v = junk.reply.open_v4_reply(&r.body).expect("opens");
    assert_eq!(
        (v.code, v.body.as_slice()),
        (400, &b"Invalid v4 onion request"[..])
    );
    d.shutdown().await;
}
