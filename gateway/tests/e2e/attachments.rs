//! End to end: attachments between two daemons on a devnet with a file server. A 5 MB file
//! and a small image sent through gRPC arrive byte-identical (SHA-256); the small one is
//! downloaded as it arrives, the large one on demand, resumed from an offset and served on the
//! local link; a bad file server (down, HTML, corrupt, truncated, oversized) leaves the message
//! and says why in the attachment's state, and a retry works once the server behaves.

use session_devnet::FileFault;
use sessiond_api::v1::{
    download_response, event, upload_request, Attachment, AttachmentState, DownloadRequest,
    GetAttachmentRequest, RetryDownloadRequest, SendMessageRequest, UploadMetadata, UploadRequest,
};
use sha2::{Digest, Sha256};
use tonic::Code;

use super::support::{http_request, net_with_files, Clients, FAST_CONFIG};
use super::{admin, create, read_until, subscribe, DEADLINE};

/// Daemons download incoming files up to 100 kB at once; larger ones on demand.
fn config() -> String {
    format!("{FAST_CONFIG}\n[attachments]\neager_max_bytes = 100000\n")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tiny PNG (1×1, red) followed by filler up to `n` bytes.
fn image(n: usize) -> Vec<u8> {
    let mut v = hex::decode(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154\
         08d763f8cfc000000301010018dd8db00000000049454e44ae426082",
    )
    .expect("hex");
    v.resize(n.max(v.len()), 0);
    v
}

async fn upload(c: &mut Clients, identity: &str, name: &str, data: &[u8]) -> Attachment {
    let mut parts = vec![UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            identity: identity.into(),
            file_name: name.into(),
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
}

async fn download(
    c: &mut Clients,
    identity: &str,
    id: &str,
    offset: u64,
) -> Result<(Attachment, Vec<u8>), tonic::Status> {
    let mut stream = c
        .files
        .download(DownloadRequest {
            identity: identity.into(),
            attachment_id: id.into(),
            offset,
        })
        .await?
        .into_inner();
    let mut meta = None;
    let mut data = Vec::new();
    while let Some(m) = stream.message().await? {
        match m.part {
            Some(download_response::Part::Attachment(a)) => meta = Some(a),
            Some(download_response::Part::Chunk(b)) => data.extend_from_slice(&b),
            None => {}
        }
    }
    Ok((
        meta.expect("the first message carries the attachment"),
        data,
    ))
}

async fn send_files(c: &mut Clients, from: &str, to: &str, text: &str, ids: Vec<String>) {
    c.msgs
        .send_message(SendMessageRequest {
            identity: from.into(),
            recipient: to.into(),
            text: text.into(),
            attachment_ids: ids,
            ..Default::default()
        })
        .await
        .expect("send with attachments");
}

fn state_of(a: &Attachment) -> AttachmentState {
    AttachmentState::try_from(a.state).unwrap_or(AttachmentState::Unspecified)
}

/// Waits for the incoming message with `text`; returns its attachments.
async fn incoming(
    stream: &mut tonic::Streaming<sessiond_api::v1::SubscribeResponse>,
    seen: &mut Vec<sessiond_api::v1::Event>,
    text: &str,
) -> Vec<Attachment> {
    let find = |seen: &[sessiond_api::v1::Event]| {
        seen.iter().find_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) if m.text == text => Some(m.attachments.clone()),
            _ => None,
        })
    };
    read_until(stream, seen, |s| find(s).is_some()).await;
    find(seen).expect("found")
}

async fn get(c: &mut Clients, identity: &str, id: &str) -> Attachment {
    c.files
        .get_attachment(GetAttachmentRequest {
            identity: identity.into(),
            attachment_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("get attachment")
        .into_inner()
        .attachment
        .expect("attachment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sent_through_grpc_arrive_byte_identical_and_bad_servers_are_survived() {
    let net = net_with_files("e2e-files", &config()).await;
    let (a, b) = tokio::join!(net.daemon("a"), net.daemon("b"));
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let _alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let mut stream = subscribe(&mut cb, "bob", 0, 0).await;
    let mut seen = Vec::new();

    // Upload: a 5 MB file and a small image.
    let big = bytes(5_000_000, 7);
    let pic = image(3_000);
    let up_big = upload(&mut ca, "alice", "big.bin", &big).await;
    let up_pic = upload(&mut ca, "alice", "pic.png", &pic).await;
    assert_eq!(state_of(&up_big), AttachmentState::Uploaded);
    assert_eq!(up_big.sha256, sha(&big));
    assert_eq!(up_pic.content_type, "image/png");
    send_files(
        &mut ca,
        "alice",
        &bob,
        "two files",
        vec![up_big.id.clone(), up_pic.id.clone()],
    )
    .await;

    let got = incoming(&mut stream, &mut seen, "two files").await;
    assert_eq!(got.len(), 2, "{got:?}");
    let (rb, rp) = (&got[0], &got[1]);
    assert_eq!((rb.file_name.as_str(), rb.size), ("big.bin", 5_000_000));
    assert_eq!((rp.file_name.as_str(), rp.size), ("pic.png", 3_000));
    assert_eq!(rp.content_type, "image/png");
    assert_eq!(state_of(rb), AttachmentState::Pending);

    // The small one is fetched as it arrives: an AttachmentUpdate says so.
    read_until(&mut stream, &mut seen, |s| {
        s.iter().any(|e| match &e.kind {
            Some(event::Kind::Attachment(u)) => u
                .attachment
                .as_ref()
                .is_some_and(|x| x.id == rp.id && x.state == AttachmentState::Downloaded as i32),
            _ => false,
        })
    })
    .await;
    // The large one waits for a client.
    assert_eq!(
        state_of(&get(&mut cb, "bob", &rb.id).await),
        AttachmentState::Pending
    );

    let (meta, data) = download(&mut cb, "bob", &rb.id, 0).await.expect("download");
    assert_eq!(state_of(&meta), AttachmentState::Downloaded);
    assert_eq!(
        sha(&data),
        sha(&big),
        "the 5 MB file arrives byte-identical"
    );
    assert_eq!(meta.sha256, sha(&big));
    // Resume from an offset.
    let (_, tail) = download(&mut cb, "bob", &rb.id, 4_000_000)
        .await
        .expect("resume");
    assert_eq!(tail, big[4_000_000..]);
    let past = download(&mut cb, "bob", &rb.id, 5_000_001).await;
    assert_eq!(past.expect_err("past the end").code(), Code::OutOfRange);
    let (_, pdata) = download(&mut cb, "bob", &rp.id, 0).await.expect("download");
    assert_eq!(sha(&pdata), sha(&pic), "the image arrives byte-identical");

    // The local link serves it with its type; a wrong token serves nothing.
    let http = b.http.clone().expect("HTTP listener");
    let pic_now = get(&mut cb, "bob", &rp.id).await;
    let url = pic_now.local_url.clone();
    let path = url
        .strip_prefix(&format!("http://{http}"))
        .expect("a link on the daemon's HTTP listener");
    let r = http_request(&http, "GET", path, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(sha(&r.body), sha(&pic));
    let wrong = format!("/files/{}/pic.png", "0".repeat(64));
    assert_eq!(
        http_request(&http, "GET", &wrong, &[], "").await.status,
        404
    );

    // A bad file server: the message is kept, the attachment says why, a retry works later.
    let fs = net.devnet.file_server().expect("file server");
    let faults = [
        (FileFault::Corrupt, "digest"),
        (FileFault::Truncate, ""),
        (FileFault::Html, "HTML"),
        (FileFault::Oversize, ""),
        (FileFault::Unavailable, ""),
    ];
    for (n, (fault, why)) in faults.into_iter().enumerate() {
        let data = bytes(200_000 + n, 100 + n as u64);
        let up = upload(&mut ca, "alice", "doc.pdf", &data).await;
        fs.set_fault(Some(fault));
        let text = format!("bad server {n}");
        send_files(&mut ca, "alice", &bob, &text, vec![up.id]).await;
        let got = incoming(&mut stream, &mut seen, &text).await;
        let id = got[0].id.clone();
        let retried = cb
            .files
            .retry_download(RetryDownloadRequest {
                identity: "bob".into(),
                attachment_id: id.clone(),
            })
            .await
            .expect("retry answers with the state")
            .into_inner()
            .attachment
            .expect("attachment");
        assert_eq!(
            state_of(&retried),
            AttachmentState::Failed,
            "{fault:?}: {retried:?}"
        );
        assert!(
            retried.reason.contains(why),
            "{fault:?}: reason {:?} should mention {why:?}",
            retried.reason
        );
        let refused = download(&mut cb, "bob", &id, 0).await;
        assert_eq!(
            refused.expect_err("failed").code(),
            Code::FailedPrecondition
        );
        fs.set_fault(None);
        let (meta, back) = download(&mut cb, "bob", &id, 0)
            .await
            .expect("after the fault");
        assert_eq!(state_of(&meta), AttachmentState::Downloaded, "{fault:?}");
        assert_eq!(sha(&back), sha(&data), "{fault:?}");
    }

    // Over the limit: refused before anything is sent, with the largest size that fits.
    let over = bytes(9_828_081, 3);
    let mut parts = vec![UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            identity: "alice".into(),
            file_name: "huge.bin".into(),
            ..Default::default()
        })),
    }];
    for chunk in over.chunks(1 << 20) {
        parts.push(UploadRequest {
            part: Some(upload_request::Part::Chunk(chunk.to_vec())),
        });
    }
    let refused = ca.files.upload(tokio_stream::iter(parts)).await;
    let status = refused.expect_err("over the limit");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("9828080"), "{}", status.message());
    let _ = DEADLINE;
}

/// A small attachment still pending when the receiving daemon stops is fetched when it starts
/// again, with no client asking: here eager downloads were off during the first run, so the
/// picture is pending at the stop; the second run (eager on) fetches it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_downloads_are_fetched_again_after_a_restart() {
    let net = net_with_files(
        "e2e-files-restart",
        &format!("{FAST_CONFIG}\n[attachments]\neager_max_bytes = 0\n"),
    )
    .await;
    let (a, b) = tokio::join!(net.daemon("a"), net.daemon("b"));
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let mut stream = subscribe(&mut cb, "bob", 0, 0).await;
    let mut seen = Vec::new();
    let pic = image(4_000);
    let up = upload(&mut ca, "alice", "later.png", &pic).await;
    send_files(&mut ca, "alice", &bob, "for later", vec![up.id]).await;
    let got = incoming(&mut stream, &mut seen, "for later").await;
    let id = got[0].id.clone();
    assert_eq!(
        state_of(&get(&mut cb, "bob", &id).await),
        AttachmentState::Pending
    );
    drop((stream, cb));
    let status = b.terminate();
    assert!(status.success(), "{status:?}");

    // The same data dir, now with eager downloads of up to 100 kB.
    let eager = net.dir.path().join("eager.toml");
    std::fs::write(&eager, config()).expect("config");
    let dir = net.dir.path().join("b");
    let cmd = super::support::networked_command(&dir, &net.manifest, &eager);
    let b = tokio::task::spawn_blocking(move || super::support::Daemon::start_with(&dir, cmd))
        .await
        .expect("restart b");
    let mut cb = admin(&b).await;
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let now = get(&mut cb, "bob", &id).await;
        if state_of(&now) == AttachmentState::Downloaded {
            assert_eq!(now.sha256, sha(&pic));
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "still {:?} after the restart: {}",
            state_of(&now),
            now.reason
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, data) = download(&mut cb, "bob", &id, 0).await.expect("download");
    assert_eq!(sha(&data), sha(&pic));
}

/// A picture posted in a group arrives for the other member byte-identical (downloaded as it
/// arrives), in the group conversation; an attachment that was never uploaded is refused with
/// nothing posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_posted_in_a_group_arrive_for_its_members() {
    use sessiond_api::v1::AcceptInvitationRequest;
    let net = net_with_files("e2e-group-files", &config()).await;
    let (a, b) = tokio::join!(net.daemon("a"), net.daemon("b"));
    let (mut ca, mut cb) = (admin(&a).await, admin(&b).await);
    let _alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    let gid = super::invited_to_new_group(&mut ca, &mut cb, "Photos", &bob).await;
    cb.groups
        .accept_invitation(AcceptInvitationRequest {
            identity: "bob".into(),
            group_id: gid.clone(),
        })
        .await
        .expect("accept");
    super::group_until(&mut cb, "bob", &gid, |g| g.member_count == 2).await;
    let mut stream = subscribe(&mut cb, "bob", 0, 0).await;
    let mut seen = Vec::new();

    let never = ca
        .msgs
        .send_message(SendMessageRequest {
            identity: "alice".into(),
            recipient: gid.clone(),
            text: "nothing".into(),
            attachment_ids: vec!["0".repeat(32)],
            ..Default::default()
        })
        .await
        .expect_err("never uploaded");
    assert!(
        matches!(never.code(), Code::NotFound | Code::InvalidArgument),
        "{never:?}"
    );
    let pic = image(3_000);
    let up = upload(&mut ca, "alice", "pic.png", &pic).await;
    send_files(&mut ca, "alice", &gid, "our summit", vec![up.id.clone()]).await;
    let got = incoming(&mut stream, &mut seen, "our summit").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].file_name.as_str(), got[0].size), ("pic.png", 3_000));
    assert_eq!(got[0].conversation_id, gid);
    let id = got[0].id.clone();
    read_until(&mut stream, &mut seen, |s| {
        s.iter().any(|e| match &e.kind {
            Some(event::Kind::Attachment(u)) => u
                .attachment
                .as_ref()
                .is_some_and(|x| x.id == id && x.state == AttachmentState::Downloaded as i32),
            _ => false,
        })
    })
    .await;
    let (_, data) = download(&mut cb, "bob", &id, 0).await.expect("download");
    assert_eq!(sha(&data), sha(&pic));
    // The text without the never-uploaded attachment was not posted.
    assert!(!seen.iter().any(|e| matches!(
        &e.kind,
        Some(event::Kind::Incoming(m)) if m.text == "nothing"
    )));
}
