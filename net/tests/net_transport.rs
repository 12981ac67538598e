//! The HTTPS transport against tiny local servers: connection reuse, truncated and huge
//! bodies, silence, refused connections, TLS to a devnet node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use session_net::{HttpTarget, HttpsTransport, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A plain-HTTP server on 127.0.0.1 answering every request on a connection with `reply`
/// (raw bytes); counts accepted connections. `close_after` closes after writing.
async fn server(reply: Vec<u8>, close_after: bool) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    // One read holds a whole small request in these tests.
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if s.write_all(&reply).await.is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
    (url, conns)
}

fn transport(limit: usize) -> HttpsTransport {
    HttpsTransport::new(Duration::from_millis(500), limit)
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn connections_are_reused() {
    let (url, conns) = server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        false,
    )
    .await;
    let t = transport(1024);
    let target = HttpTarget::parse_url(&url, "/x").expect("url");
    for _ in 0..5 {
        let r = t.post(&target, b"{}".to_vec(), T).await.expect("reply");
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"ok");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert_eq!(t.idle_connections(), 1);
    assert_eq!(
        t.connections_opened(),
        1,
        "the transport counts what it opened"
    );
}

#[tokio::test]
async fn a_closed_kept_alive_connection_is_replaced() {
    let (url, conns) = server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        true,
    )
    .await;
    let t = transport(1024);
    let target = HttpTarget::parse_url(&url, "/x").expect("url");
    for _ in 0..3 {
        let r = t.post(&target, b"{}".to_vec(), T).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    assert!(conns.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        t.connections_opened(),
        conns.load(Ordering::SeqCst) as u64,
        "every replacement connection is counted"
    );
}

#[tokio::test]
async fn bad_replies_are_typed_errors() {
    let t = transport(1000);
    // Truncated body.
    let (url, _) = server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec(),
        true,
    )
    .await;
    let e = t
        .post(&HttpTarget::parse_url(&url, "/").expect("url"), vec![], T)
        .await
        .expect_err("truncated");
    assert!(matches!(e, TransportError::Http { .. }), "{e}");
    // Huge body.
    let mut huge = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5000));
    let (url, _) = server(huge, false).await;
    let e = t
        .post(&HttpTarget::parse_url(&url, "/").expect("url"), vec![], T)
        .await
        .expect_err("too large");
    assert!(
        matches!(e, TransportError::BodyTooLarge { limit: 1000, .. }),
        "{e}"
    );
    // Not HTTP at all.
    let (url, _) = server(b"garbage\r\n\r\n".to_vec(), true).await;
    let e = t
        .post(&HttpTarget::parse_url(&url, "/").expect("url"), vec![], T)
        .await
        .expect_err("garbage");
    assert!(matches!(e, TransportError::Http { .. }), "{e}");
}

#[tokio::test]
async fn silence_times_out_and_refusal_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    // Accepts and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let t = transport(1000);
    let e = t
        .post(
            &HttpTarget::parse_url(&url, "/").expect("url"),
            vec![],
            Duration::from_millis(200),
        )
        .await
        .expect_err("silence");
    assert!(
        matches!(
            e,
            TransportError::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{e}"
    );

    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", free.local_addr().expect("addr"));
    drop(free);
    let e = t
        .post(&HttpTarget::parse_url(&url, "/").expect("url"), vec![], T)
        .await
        .expect_err("refused");
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn tls_to_a_devnet_node_with_a_self_signed_certificate() {
    let d = session_devnet::Devnet::start(session_devnet::DevnetConfig {
        nodes: 1,
        swarm_size: 1,
        ..Default::default()
    })
    .await
    .expect("devnet");
    let t = transport(1 << 20);
    let target = HttpTarget::parse_url(&d.node(0).url(), "/storage_rpc/v1").expect("url");
    let r = t
        .post(&target, br#"{"method":"info","params":{}}"#.to_vec(), T)
        .await
        .expect("TLS exchange");
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert!(v["t"].as_u64().is_some());
    d.shutdown().await;
}
