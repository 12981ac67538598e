//! Attachments through two `sessiond` daemons on a 9-node devnet with a file server: the
//! largest file that fits (9,828,080 bytes, "10 MB") uploaded through gRPC (encrypt + onion
//! upload) and downloaded on the other daemon (onion download + verify + decrypt + gRPC
//! stream), each next to the bare AES-256-CBC + HMAC of the same bytes measured in the same
//! run; then the peak resident memory (VmHWM) of the sending and the receiving daemon. The
//! target is under 64 MiB; it is reported, not asserted.
//!
//! Run: `cargo bench -p session-gateway --bench attachments`.

#[path = "../tests/support/daemon.rs"]
mod support;

use std::time::{Duration, Instant};

use rand::RngCore;
use session_proto::attachment::legacy;
use sessiond_api::v1::{
    download_response, event, upload_request, CreateIdentityRequest, DownloadRequest,
    SendMessageRequest, SubscribeRequest, UploadMetadata, UploadRequest,
};
use support::{bearer, clients, net_with_files, Clients, Daemon};

/// The largest plaintext whose encrypted blob fits the file server's 10,000,000 bytes.
const SIZE: usize = 9_828_080;
/// Rounds of each measurement (the median is reported).
const ROUNDS: usize = 3;
/// The longest any wait may take.
const DEADLINE: Duration = Duration::from_secs(300);

const CONFIG: &str = r#"
[poll]
active_interval_ms = 100
idle_interval_ms = 100
idle_after_secs = 60

[attachments]
eager_max_bytes = 0
"#;

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM/VmRSS line")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

async fn admin(d: &Daemon) -> Clients {
    clients(&d.channel().await, bearer(&d.admin_token))
}

async fn create(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_identity(CreateIdentityRequest { name: name.into() })
        .await
        .expect("create")
        .into_inner()
        .identity
        .expect("identity")
        .account_id
}

async fn upload(c: &mut Clients, data: &[u8]) -> String {
    let mut parts = vec![UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            identity: "alice".into(),
            file_name: "bench.bin".into(),
            size: data.len() as u64,
            ..Default::default()
        })),
    }];
    for chunk in data.chunks(1 << 20) {
        parts.push(UploadRequest {
            part: Some(upload_request::Part::Chunk(chunk.to_vec())),
        });
    }
    c.files
        .upload(tokio_stream::iter(parts))
        .await
        .expect("upload")
        .into_inner()
        .attachment
        .expect("attachment")
        .id
}

async fn download(c: &mut Clients, id: &str) -> usize {
    let mut s = c
        .files
        .download(DownloadRequest {
            identity: "bob".into(),
            attachment_id: id.into(),
            offset: 0,
        })
        .await
        .expect("download")
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.expect("stream") {
        if let Some(download_response::Part::Chunk(b)) = m.part {
            n += b.len();
        }
    }
    n
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let net = net_with_files("bench-files", CONFIG).await;
    let start = |name: &'static str| {
        let dir = net.dir.path().join(name);
        let cmd = support::networked_command(&dir, &net.manifest, &net.config);
        tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
    };
    let (a, b) = (start("a"), start("b"));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let mut data = vec![0u8; SIZE];
    rand::rngs::OsRng.fill_bytes(&mut data);

    println!("attachments: {SIZE} bytes, median of {ROUNDS}");
    // What the daemons hold before any file: the part of the peak that is not the transfer.
    let before: Vec<u64> = [&a, &b]
        .iter()
        .map(|d| vm_kib(d.child.id(), "VmRSS:"))
        .collect();
    let (mut bare_enc, mut bare_dec, mut up, mut down) = (vec![], vec![], vec![], vec![]);
    let mut stream = cb
        .msgs
        .subscribe(SubscribeRequest {
            identity: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    for round in 0..ROUNDS {
        // Baseline: the same bytes through the bare cipher, in this process.
        let (mut key, mut iv) = ([0u8; legacy::KEY_LEN], [0u8; legacy::IV_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let t = Instant::now();
        let (blob, digest) = legacy::encrypt(&key, &iv, &data).expect("encrypt");
        bare_enc.push(t.elapsed());
        let t = Instant::now();
        let back = legacy::decrypt(&key, &digest, Some(SIZE as u64), &blob).expect("decrypt");
        bare_dec.push(t.elapsed());
        assert_eq!(back.len(), SIZE);
        drop((blob, back));

        // Different bytes each round, so the file server stores a new file.
        data[round] ^= 0xff;
        let t = Instant::now();
        let id = upload(&mut ca, &data).await;
        up.push(t.elapsed());
        ca.msgs
            .send_message(SendMessageRequest {
                identity: "alice".into(),
                recipient: bob.clone(),
                attachment_ids: vec![id],
                ..Default::default()
            })
            .await
            .expect("send");
        let id = loop {
            let ev = tokio::time::timeout(DEADLINE, stream.message())
                .await
                .expect("the message arrives")
                .expect("stream")
                .expect("open")
                .event
                .expect("event");
            if let Some(event::Kind::Incoming(m)) = ev.kind {
                if let Some(f) = m.attachments.first() {
                    break f.id.clone();
                }
            }
        };
        let t = Instant::now();
        assert_eq!(download(&mut cb, &id).await, SIZE);
        down.push(t.elapsed());
    }
    let (bare_enc, bare_dec, up, down) =
        (median(bare_enc), median(bare_dec), median(up), median(down));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mbs = |d: Duration| SIZE as f64 / 1e6 / d.as_secs_f64();
    println!(
        "bare AES-256-CBC+HMAC encrypt       {:>9.1} ms  {:>7.1} MB/s",
        ms(bare_enc),
        mbs(bare_enc)
    );
    println!(
        "daemon upload (encrypt+onion)       {:>9.1} ms  {:>7.1} MB/s  ratio {:.1}x",
        ms(up),
        mbs(up),
        up.as_secs_f64() / bare_enc.as_secs_f64()
    );
    println!(
        "bare AES-256-CBC+HMAC decrypt       {:>9.1} ms  {:>7.1} MB/s",
        ms(bare_dec),
        mbs(bare_dec)
    );
    println!(
        "daemon download (onion+decrypt)     {:>9.1} ms  {:>7.1} MB/s  ratio {:.1}x",
        ms(down),
        mbs(down),
        down.as_secs_f64() / bare_dec.as_secs_f64()
    );
    for ((name, d), idle) in [("sending daemon", &a), ("receiving daemon", &b)]
        .into_iter()
        .zip(before)
    {
        let pid = d.child.id();
        let peak = vm_kib(pid, "VmHWM:");
        let now = vm_kib(pid, "VmRSS:");
        println!(
            "{name:<20} peak RSS {:>6.1} MiB (before the files {:>5.1} MiB, now {:>6.1} MiB; \
             target < 64 MiB: {})",
            peak as f64 / 1024.0,
            idle as f64 / 1024.0,
            now as f64 / 1024.0,
            if peak < 64 * 1024 { "met" } else { "NOT met" }
        );
    }
}
