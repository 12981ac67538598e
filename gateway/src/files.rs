//! Attachments, the daemon's side: uploads (encrypt with the legacy scheme released clients
//! send, then `POST /file` to the file server through an onion request), downloads (`GET
//! /file/<id>` through an onion request, digest and MAC checked, decrypted chunk by chunk into
//! a file), and the local store of plaintexts under `attachments/` in the data dir, with a
//! size quota and a keep time.
//!
//! Nothing here knows which kind of conversation an attachment belongs to: records name their
//! conversation by its address, and the same calls serve one-to-one messages, groups and
//! communities.
//!
//! Memory: a file is read from disk and encrypted chunk by chunk into the one blob the onion
//! request carries; a download is decrypted chunk by chunk from the reply into a file. The
//! plaintext is never held whole.
//!
//! Sizes: the file server takes at most [`MAX_UPLOAD`] bytes. The legacy scheme pads before it
//! encrypts, so the largest plaintext that fits is [`max_plaintext`] (9,828,080 bytes); larger
//! files are refused before anything is sent ([`FilesError::TooLarge`]) rather than switched to
//! the stream scheme, which released clients cannot all read yet.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prost::Message as _;
use rand::RngCore;
use session_net::{NetClient, NetError, Server};
use session_proto::attachment::legacy::{self, LegacyEncryptor};
use session_proto::attachment::server::{
    download_body, download_request, parse_upload_reply, upload_request,
};
use session_proto::attachment::{pointer, AttachmentMeta, FileUrl, IncomingAttachment};
use session_proto::err::{AttachmentError, ErrorKind, HasKind};
use session_proto::protos::AttachmentPointer;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::config::AttachmentsConfig;
use crate::rpc::now_ms;
use crate::store::{
    AttachmentChange, AttachmentRecord, AttachmentState, AttachmentView, EventKind, IdentityId,
    Store, StoreError, StoredEvent,
};

/// The most bytes a file server takes in one upload (the encrypted blob).
pub const MAX_UPLOAD: u64 = 10_000_000;
/// The folder under the data dir.
pub const DIR: &str = "attachments";
/// Bytes read or written per step.
const CHUNK: usize = 64 * 1024;
/// Eager downloads waiting at most; more stay pending (downloaded on demand).
const EAGER_QUEUE: usize = 256;
/// How often local copies past their keep time are looked for.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// The largest plaintext whose legacy-encrypted blob fits in [`MAX_UPLOAD`].
pub fn max_plaintext() -> u64 {
    // blob_len is monotonic; search the largest n with blob_len(n) <= MAX_UPLOAD.
    let (mut lo, mut hi) = (0u64, MAX_UPLOAD);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if legacy::blob_len(mid) <= MAX_UPLOAD {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Why an attachment could not be uploaded or downloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The file is over what the file server takes once encrypted.
    #[error(
        "the file is {len} bytes; encrypted it would be {blob} bytes, over the file server's \
         {MAX_UPLOAD}-byte limit (the largest file that fits is {max} bytes)"
    )]
    TooLarge {
        /// The plaintext size.
        len: u64,
        /// The encrypted size.
        blob: u64,
        /// The largest plaintext that fits.
        max: u64,
    },
    /// The local attachment store would pass its quota.
    #[error(
        "quota: the attachment store holds {used} bytes; {len} more would pass its quota of \
         {quota} bytes ([attachments] quota_bytes)"
    )]
    Quota {
        /// Bytes held.
        used: u64,
        /// Bytes to add.
        len: u64,
        /// The quota.
        quota: u64,
    },
    /// The attachment's URL names a server other than the configured one, without its key.
    #[error(
        "the file server {host} is not the configured one and the URL carries no key for it \
         (#p=…), so it cannot be reached privately"
    )]
    UnknownServer {
        /// Its host.
        host: String,
    },
    /// The file server no longer has the file.
    #[error("expired: the file server no longer has the file (it keeps files about 3 weeks)")]
    Expired,
    /// The network or the file server failed.
    #[error("the file server could not be reached while {action}: {source}")]
    Net {
        /// What was being done.
        action: &'static str,
        /// The network error.
        source: NetError,
    },
    /// The pointer, the server's reply or the data were bad.
    #[error("{0}")]
    Attachment(#[from] AttachmentError),
    /// A local file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task failed.
    #[error("an attachment task failed: {0}")]
    Join(String),
}

impl HasKind for FilesError {
    fn kind(&self) -> ErrorKind {
        match self {
            FilesError::Empty | FilesError::TooLarge { .. } => ErrorKind::InvalidInput,
            FilesError::Quota { .. } => ErrorKind::Busy,
            FilesError::UnknownServer { .. } => ErrorKind::Rejected,
            FilesError::Expired => ErrorKind::NotFound,
            FilesError::Net { source, .. } => match source {
                NetError::ServerStatus { status, .. } if *status == 413 => ErrorKind::InvalidInput,
                _ => ErrorKind::NetworkUnreachable,
            },
            FilesError::Attachment(e) => e.kind(),
            FilesError::Io { .. } | FilesError::Join(_) => ErrorKind::LocalIo,
            FilesError::Store(e) => e.kind(),
        }
    }
}

/// What an upload announces besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct UploadMeta {
    /// File name.
    pub file_name: Option<String>,
    /// MIME type (guessed from the name when `None`).
    pub content_type: Option<String>,
    /// A voice note.
    pub voice_message: bool,
    /// Image or video width.
    pub width: Option<u32>,
    /// Image or video height.
    pub height: Option<u32>,
    /// Caption.
    pub caption: Option<String>,
}

/// A MIME type for a file name's extension (the common ones; else `application/octet-stream`).
pub fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "aac" => "audio/aac",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "txt" => "text/plain",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// The configured file server.
#[derive(Debug, Clone)]
struct FileServerConf {
    base: String,
    /// (scheme, host, port) of `base`, to recognise its URLs.
    origin: (&'static str, String, u16),
    x25519: [u8; 32],
    /// Written into sent URLs when the server is not the Session file server.
    ed25519_in_urls: Option<[u8; 32]>,
}

fn origin(url: &FileUrl) -> (&'static str, String, u16) {
    (url.scheme.as_str(), url.host.clone(), url.effective_port())
}

/// A cheap-clone handle on the attachment machinery.
#[derive(Debug, Clone)]
pub struct Files {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    store: Store,
    net: NetClient,
    server: FileServerConf,
    eager_max: u64,
    quota: u64,
    keep_ms: u64,
    /// One download at a time per attachment. std Mutex: held only to look up the entry.
    busy: Mutex<HashMap<(IdentityId, String), Busy>>,
    eager: mpsc::Sender<(IdentityId, String)>,
}

/// The lock one attachment's download holds.
type Busy = Arc<tokio::sync::Mutex<()>>;

/// The receiving end of the eager-download queue, for [`Files::run`].
#[derive(Debug)]
pub struct EagerQueue(mpsc::Receiver<(IdentityId, String)>);

/// The base of local links (`http://127.0.0.1:9464`), set once the HTTP listener is bound.
static LINK_BASE: OnceLock<String> = OnceLock::new();

/// Records where the HTTP listener serves local links (once per process).
pub fn set_link_base(addr: std::net::SocketAddr) {
    let _ = LINK_BASE.set(format!("http://{addr}"));
}

/// The local link of an attachment, if the HTTP listener runs (opening it downloads the file
/// first when it is not here yet).
pub fn local_url(view: &AttachmentView) -> Option<String> {
    let base = LINK_BASE.get()?;
    let name = view
        .file_name
        .as_deref()
        .map(link_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "file".to_owned());
    Some(format!("{base}/files/{}/{name}", view.token))
}

/// The token of a local link (`http://host:port/files/<token>/<name>` or its path).
pub fn token_of_link(link: &str) -> Option<String> {
    let (_, rest) = link.split_once("/files/")?;
    let token = rest.split(['/', '?', '#']).next()?;
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| token.to_ascii_lowercase())
}

/// A file name made safe for a URL path segment: unreserved characters kept, others as `_`.
fn link_name(name: &str) -> String {
    name.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A new attachment id (32 hex characters).
pub fn new_id() -> String {
    random_hex::<16>()
}

/// A new local-link token (64 hex characters).
pub fn new_token() -> String {
    random_hex::<32>()
}

/// The view of a received pointer, and the pointer encoded for the store: state pending, or
/// failed with the reason when the pointer itself is unusable (the message is kept either way).
pub fn incoming_view(
    p: &AttachmentPointer,
    conversation: &str,
    outgoing: bool,
) -> (AttachmentView, String) {
    let (state, reason) = match IncomingAttachment::from_pointer(p) {
        Ok(_) => (AttachmentState::Pending, None),
        Err(e) => (AttachmentState::Failed, Some(e.to_string())),
    };
    let view = AttachmentView {
        id: new_id(),
        conversation: conversation.to_owned(),
        outgoing,
        file_name: p.file_name.clone().filter(|n| !n.is_empty()),
        content_type: p.content_type.clone().filter(|t| !t.is_empty()),
        size: p.size.map_or(0, u64::from),
        voice_message: p.flags.is_some_and(|f| f & 1 != 0),
        width: p.width.filter(|w| *w > 0),
        height: p.height.filter(|h| *h > 0),
        caption: p.caption.clone().filter(|c| !c.is_empty()),
        state,
        reason,
        sha256: None,
        token: new_token(),
    };
    (view, hex::encode(p.encode_to_vec()))
}

impl Files {
    /// The attachment machinery over `data_dir/attachments`, with the configured file server.
    /// Returns the queue [`Files::run`] works through.
    pub fn new(
        data_dir: &Path,
        store: Store,
        net: NetClient,
        config: &AttachmentsConfig,
    ) -> Result<(Files, EagerQueue), FilesError> {
        let dir = data_dir.join(DIR);
        crate::store::prepare_dir(&dir)?;
        let base = config.file_server.trim_end_matches('/').to_owned();
        let probe: FileUrl = FileUrl::new(&base, "0", None, false)?;
        let key = |v: &str| -> [u8; 32] {
            let mut k = [0u8; 32];
            // Checked by Config::validate.
            if let Ok(b) = hex::decode(v) {
                if b.len() == 32 {
                    k.copy_from_slice(&b);
                }
            }
            k
        };
        let is_default = base == session_proto::attachment::DEFAULT_FILE_SERVER;
        let server = FileServerConf {
            origin: origin(&probe),
            base,
            x25519: key(&config.file_server_x25519),
            ed25519_in_urls: (!is_default).then(|| key(&config.file_server_ed25519)),
        };
        let (tx, rx) = mpsc::channel(EAGER_QUEUE);
        let files = Files {
            shared: Arc::new(Shared {
                dir,
                store,
                net,
                server,
                eager_max: config.eager_max_bytes,
                quota: config.quota_bytes,
                keep_ms: config.keep_days.saturating_mul(24 * 3600 * 1000),
                busy: Mutex::new(HashMap::new()),
                eager: tx,
            }),
        };
        Ok((files, EagerQueue(rx)))
    }

    /// Where an attachment's plaintext is kept.
    pub fn path(&self, id: &str) -> PathBuf {
        self.shared.dir.join(id)
    }

    /// A new temporary file (0600) in the attachment folder, for an upload to be written to.
    pub fn temp_file(&self) -> Result<(PathBuf, std::fs::File), FilesError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.shared.dir.join(format!("upload-{}.part", new_id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| FilesError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        Ok((path, file))
    }

    fn check_quota(&self, len: u64) -> Result<(), FilesError> {
        let used = self.shared.store.attachment_bytes()?;
        if used.saturating_add(len) > self.shared.quota {
            return Err(FilesError::Quota {
                used,
                len,
                quota: self.shared.quota,
            });
        }
        Ok(())
    }

    /// Encrypts the file at `plain` (`len` bytes, written by the caller), uploads it and
    /// records it for `identity` as an uploaded attachment whose plaintext stays here. The
    /// temporary file is moved into the store or removed.
    pub async fn upload(
        &self,
        identity: IdentityId,
        plain: PathBuf,
        len: u64,
        meta: UploadMeta,
    ) -> Result<AttachmentRecord, FilesError> {
        let out = self.upload_inner(identity, &plain, len, meta).await;
        if out.is_err() {
            let _ = std::fs::remove_file(&plain);
        }
        out
    }

    async fn upload_inner(
        &self,
        identity: IdentityId,
        plain: &Path,
        len: u64,
        meta: UploadMeta,
    ) -> Result<AttachmentRecord, FilesError> {
        if len == 0 {
            return Err(FilesError::Empty);
        }
        let blob_len = legacy::blob_len(len);
        if blob_len > MAX_UPLOAD {
            return Err(FilesError::TooLarge {
                len,
                blob: blob_len,
                max: max_plaintext(),
            });
        }
        let this = self.clone();
        let check = this.clone();
        tokio::task::spawn_blocking(move || check.check_quota(len))
            .await
            .map_err(|e| FilesError::Join(e.to_string()))??;
        let server =
            Server::new(&self.shared.server.base, self.shared.server.x25519).map_err(|source| {
                FilesError::Net {
                    action: "uploading",
                    source,
                }
            })?;
        // The blob is written straight into the onion buffer, once per attempt, from the file:
        // the same key and IV give the same bytes, so a retry re-reads the file rather than
        // keeping a second copy of the ciphertext in memory.
        let mut key = zeroize::Zeroizing::new([0u8; legacy::KEY_LEN]);
        let mut iv = [0u8; legacy::IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let key = Arc::new(key);
        let outcome: Arc<Mutex<Option<Result<Encrypted, FilesError>>>> = Arc::default();
        let write: session_net::BodyWriter = {
            let (path, key, outcome) = (plain.to_owned(), Arc::clone(&key), Arc::clone(&outcome));
            Arc::new(move |out: &mut [u8]| {
                let got = encrypt_file_into(&path, len, &key, &iv, out);
                let mut slot = outcome.lock().unwrap_or_else(|p| p.into_inner());
                let got = match (got, slot.take()) {
                    (Ok(now), Some(Ok(before))) if now != before => Err(FilesError::Join(
                        "the file changed while it was being uploaded".to_owned(),
                    )),
                    (got, _) => got,
                };
                let reason = got.as_ref().err().map(ToString::to_string);
                *slot = Some(got);
                reason.map_or(Ok(()), Err)
            })
        };
        let sent = self
            .shared
            .net
            .server_upload(
                &server,
                &upload_request(Vec::new(), None),
                blob_len as usize,
                write,
            )
            .await;
        let written = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (
            resp,
            Encrypted {
                digest,
                sha256: sha,
            },
        ) = match (sent, written) {
            (Ok(resp), Some(Ok(enc))) => (resp, enc),
            (Err(NetError::BadRequest { .. }), Some(Err(e))) => return Err(e),
            (Ok(_), _) => {
                return Err(FilesError::Join(
                    "the upload was sent without its body".to_owned(),
                ))
            }
            (Err(source), _) => {
                return Err(FilesError::Net {
                    action: "uploading",
                    source,
                })
            }
        };
        let reply = parse_upload_reply(&resp)?;
        let url = FileUrl::new(
            &self.shared.server.base,
            &reply.id,
            self.shared.server.ed25519_in_urls,
            false,
        )?;
        let content_type = meta.content_type.clone().or_else(|| {
            meta.file_name
                .as_deref()
                .map(|n| guess_content_type(n).to_owned())
        });
        let p = pointer(
            &url,
            &key[..],
            Some(&digest),
            u32::try_from(len).unwrap_or(u32::MAX),
            &AttachmentMeta {
                content_type: content_type.clone(),
                file_name: meta.file_name.clone(),
                voice_message: meta.voice_message,
                width: meta.width,
                height: meta.height,
                caption: meta.caption.clone(),
            },
        );
        let id = new_id();
        let dest = self.path(&id);
        std::fs::rename(plain, &dest).map_err(|source| FilesError::Io {
            action: "keep",
            path: dest.clone(),
            source,
        })?;
        let now = now_ms();
        let record = AttachmentRecord {
            view: AttachmentView {
                id,
                conversation: String::new(),
                outgoing: true,
                file_name: meta.file_name,
                content_type,
                size: len,
                voice_message: meta.voice_message,
                width: meta.width,
                height: meta.height,
                caption: meta.caption,
                state: AttachmentState::Uploaded,
                reason: None,
                sha256: Some(sha),
                token: new_token(),
            },
            pointer: hex::encode(p.encode_to_vec()),
            stored_bytes: len,
            stored_at_ms: now,
            created_at_ms: now,
        };
        let (r, store) = (record.clone(), self.shared.store.clone());
        tokio::task::spawn_blocking(move || store.put_attachment(identity, &r))
            .await
            .map_err(|e| FilesError::Join(e.to_string()))??;
        tracing::debug!(bytes = len, "attachment uploaded");
        Ok(record)
    }

    /// The pointer of an uploaded attachment of `identity`, for a message (refuses other states).
    pub fn pointer_of(record: &AttachmentRecord) -> Result<AttachmentPointer, StoreError> {
        let bytes = hex::decode(&record.pointer).map_err(|e| StoreError::BadRecord {
            what: "attachment pointer",
            detail: e.to_string(),
        })?;
        AttachmentPointer::decode(bytes.as_slice()).map_err(|e| StoreError::BadRecord {
            what: "attachment pointer",
            detail: e.to_string(),
        })
    }

    /// Downloads an attachment unless it is here already, and records the outcome (an
    /// `Attachment` event): downloaded, or failed/expired with the reason. Errors only when the
    /// store itself fails or there is no such attachment; a failed download is a state.
    pub async fn download(
        &self,
        identity: IdentityId,
        id: &str,
    ) -> Result<AttachmentRecord, FilesError> {
        let lock = {
            let mut busy = self.shared.busy.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(busy.entry((identity, id.to_owned())).or_default())
        };
        let _guard = lock.lock().await;
        let out = self.download_locked(identity, id).await;
        self.shared
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(identity, id.to_owned()));
        out
    }

    async fn download_locked(
        &self,
        identity: IdentityId,
        id: &str,
    ) -> Result<AttachmentRecord, FilesError> {
        let store = self.shared.store.clone();
        let key = id.to_owned();
        let record = tokio::task::spawn_blocking(move || store.attachment(identity, &key))
            .await
            .map_err(|e| FilesError::Join(e.to_string()))??;
        if matches!(
            record.view.state,
            AttachmentState::Downloaded | AttachmentState::Uploaded
        ) && self.path(id).exists()
        {
            return Ok(record);
        }
        let change = match self.fetch(&record).await {
            Ok((bytes, sha)) => AttachmentChange {
                state: AttachmentState::Downloaded,
                reason: None,
                sha256: Some(sha),
                stored_bytes: bytes,
            },
            Err(e) => {
                tracing::debug!(cause = %e, "attachment download failed");
                AttachmentChange {
                    state: if matches!(e, FilesError::Expired) {
                        AttachmentState::Expired
                    } else {
                        AttachmentState::Failed
                    },
                    reason: Some(e.to_string()),
                    sha256: None,
                    stored_bytes: 0,
                }
            }
        };
        let store = self.shared.store.clone();
        let key = id.to_owned();
        let (record, _) = tokio::task::spawn_blocking(move || {
            store.set_attachment_state(identity, &key, change, now_ms())
        })
        .await
        .map_err(|e| FilesError::Join(e.to_string()))??;
        Ok(record)
    }

    /// Downloads, checks and decrypts into the local store; returns (bytes, SHA-256 hex).
    async fn fetch(&self, record: &AttachmentRecord) -> Result<(u64, String), FilesError> {
        let p = Files::pointer_of(record)?;
        let incoming = IncomingAttachment::from_pointer(&p)?;
        let x25519 = if origin(&incoming.url) == self.shared.server.origin {
            incoming.url.server_x25519(&self.shared.server.x25519)?
        } else if incoming.url.server_ed25519.is_some() {
            incoming.url.server_x25519(&[0; 32])?
        } else {
            return Err(FilesError::UnknownServer {
                host: incoming.url.host.clone(),
            });
        };
        let expected = incoming
            .size
            .unwrap_or(session_proto::attachment::MAX_ATTACHMENT_SIZE);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.check_quota(expected))
            .await
            .map_err(|e| FilesError::Join(e.to_string()))??;
        let server =
            Server::new(&incoming.url.base(), x25519).map_err(|source| FilesError::Net {
                action: "downloading",
                source,
            })?;
        let resp = match self
            .shared
            .net
            .server_transfer(
                &server,
                download_request(&incoming.url),
                legacy::blob_len(expected),
            )
            .await
        {
            Ok(r) => r,
            Err(NetError::ServerStatus { status: 404, .. }) => return Err(FilesError::Expired),
            Err(source) => {
                return Err(FilesError::Net {
                    action: "downloading",
                    source,
                })
            }
        };
        download_body(&resp)?;
        let dest = self.path(&record.view.id);
        let part = self
            .shared
            .dir
            .join(format!("{}.{}.part", record.view.id, new_id()));
        let result = tokio::task::spawn_blocking(move || {
            let body = download_body(&resp)?;
            let out = decrypt_to_file(&incoming, body, &part);
            if out.is_ok() {
                std::fs::rename(&part, &dest).map_err(|source| FilesError::Io {
                    action: "keep",
                    path: dest.clone(),
                    source,
                })?;
            } else {
                let _ = std::fs::remove_file(&part);
            }
            out
        })
        .await
        .map_err(|e| FilesError::Join(e.to_string()))?;
        result
    }

    /// Queues eager downloads of the new events' small pending attachments (after a poll).
    pub fn after_received(&self, identity: IdentityId, events: &[StoredEvent]) {
        for e in events {
            let list = match &e.kind {
                EventKind::Incoming(m) => &m.attachments,
                EventKind::Outgoing { attachments, .. } => attachments,
                _ => continue,
            };
            for a in list {
                let small = a.size > 0 && a.size <= self.shared.eager_max;
                if a.state == AttachmentState::Pending && small {
                    // Full queue: it stays pending and is fetched on demand.
                    let _ = self.shared.eager.try_send((identity, a.id.clone()));
                }
            }
        }
    }

    /// The small attachments still pending from before a restart (received, never fetched:
    /// the daemon stopped first, or the eager queue was full), oldest first, and the
    /// temporary files an interrupted upload or download left behind (removed).
    async fn left_over(&self) -> Vec<(IdentityId, String)> {
        let this = self.clone();
        let found = tokio::task::spawn_blocking(move || {
            if let Ok(entries) = std::fs::read_dir(&this.shared.dir) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().ends_with(".part") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            this.shared.store.pending_attachments(this.shared.eager_max)
        })
        .await;
        match found {
            Ok(Ok(list)) => list,
            Ok(Err(e)) => {
                tracing::warn!(cause = %e, "listing pending attachments failed");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(cause = %e, "listing pending attachments failed");
                Vec::new()
            }
        }
    }

    /// Works through eager downloads one at a time (first those left pending by the last run),
    /// and removes local copies past their keep time hourly, until `stop` turns true. The
    /// engine owns this task ("attachments").
    pub async fn run(self, mut queue: EagerQueue, mut stop: watch::Receiver<bool>) {
        let mut expire = tokio::time::interval(EXPIRE_EVERY);
        let mut backlog = std::collections::VecDeque::from(self.left_over().await);
        if !backlog.is_empty() {
            tracing::info!(
                count = backlog.len(),
                "resuming pending attachment downloads"
            );
        }
        loop {
            let next_queued = async {
                match backlog.pop_front() {
                    Some(item) => Some(item),
                    None => queue.0.recv().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                next = next_queued => match next {
                    Some((identity, id)) => {
                        if let Err(e) = self.download(identity, &id).await {
                            tracing::debug!(cause = %e, "eager attachment download");
                        }
                    }
                    None => return,
                },
                _ = expire.tick() => {
                    if let Err(e) = self.expire_old().await {
                        tracing::warn!(cause = %e, "removing old attachments failed");
                    }
                }
            }
        }
    }

    /// Removes local copies older than `[attachments] keep_days` (their state turns expired).
    pub async fn expire_old(&self) -> Result<usize, FilesError> {
        if self.shared.keep_ms == 0 {
            return Ok(0);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let old = this
                .shared
                .store
                .attachments_stored_before(now.saturating_sub(this.shared.keep_ms))?;
            for (identity, id) in &old {
                let _ = std::fs::remove_file(this.path(id));
                this.shared.store.set_attachment_state(
                    *identity,
                    id,
                    AttachmentChange {
                        state: AttachmentState::Expired,
                        reason: Some(
                            "the local copy was removed after [attachments] keep_days".to_owned(),
                        ),
                        sha256: None,
                        stored_bytes: 0,
                    },
                    now,
                )?;
            }
            Ok(old.len())
        })
        .await
        .map_err(|e| FilesError::Join(e.to_string()))?
    }
}

/// What encrypting a file gave besides the blob.
#[derive(Debug, PartialEq, Eq)]
struct Encrypted {
    /// SHA-256 of the blob (the pointer's digest).
    digest: [u8; 32],
    /// SHA-256 of the plaintext, hex.
    sha256: String,
}

/// Reads `path` (`len` bytes) and writes its legacy-encrypted blob under `key` and `iv` into
/// `out`, which is exactly [`legacy::blob_len`] long (the upload's slot in its onion buffer).
fn encrypt_file_into(
    path: &Path,
    len: u64,
    key: &[u8; legacy::KEY_LEN],
    iv: &[u8; legacy::IV_LEN],
    out: &mut [u8],
) -> Result<Encrypted, FilesError> {
    let io = |action| {
        move |source| FilesError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let mut enc = LegacyEncryptor::new(key, iv, len)?;
    let mut file = std::fs::File::open(path).map_err(io("read"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut piece = Vec::with_capacity(CHUNK + 2 * legacy::IV_LEN);
    let mut sha = Sha256::new();
    let mut at = 0usize;
    let mut put = |piece: &mut Vec<u8>, at: &mut usize| -> Result<(), FilesError> {
        let end = *at + piece.len();
        let slot = out.get_mut(*at..end).ok_or(FilesError::Attachment(
            AttachmentError::LengthMismatch {
                declared: len,
                got: end as u64,
            },
        ))?;
        slot.copy_from_slice(piece);
        *at = end;
        piece.clear();
        Ok(())
    };
    loop {
        let n = file.read(&mut buf).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        enc.update(&buf[..n], &mut piece)?;
        put(&mut piece, &mut at)?;
    }
    let digest = enc.finish(&mut piece)?;
    put(&mut piece, &mut at)?;
    if at != out.len() {
        return Err(FilesError::Attachment(AttachmentError::LengthMismatch {
            declared: out.len() as u64,
            got: at as u64,
        }));
    }
    Ok(Encrypted {
        digest,
        sha256: hex::encode(sha.finalize()),
    })
}

/// Decrypts `body` chunk by chunk into `part`; returns (bytes, SHA-256 hex).
fn decrypt_to_file(
    incoming: &IncomingAttachment,
    body: &[u8],
    part: &Path,
) -> Result<(u64, String), FilesError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |action| {
        move |source| FilesError::Io {
            action,
            path: part.to_owned(),
            source,
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(part)
        .map_err(io("create"))?;
    let mut dec = incoming.decryptor()?;
    let mut out = Vec::with_capacity(CHUNK + 64);
    let mut sha = Sha256::new();
    let mut written = 0u64;
    for chunk in body.chunks(CHUNK) {
        out.clear();
        dec.update(chunk, &mut out)?;
        sha.update(&out);
        file.write_all(&out).map_err(io("write"))?;
        written += out.len() as u64;
    }
    out.clear();
    dec.finish(&mut out)?;
    sha.update(&out);
    file.write_all(&out).map_err(io("write"))?;
    written += out.len() as u64;
    file.sync_all().map_err(io("write"))?;
    Ok((written, hex::encode(sha.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_plaintext_that_fits_is_desktops() {
        assert_eq!(max_plaintext(), 9_828_080);
        assert!(legacy::blob_len(max_plaintext()) <= MAX_UPLOAD);
        assert!(legacy::blob_len(max_plaintext() + 1) > MAX_UPLOAD);
    }

    use crate::store::tests::TempDir;
    use session_net::{MemoryPoolStore, NetConfig};

    /// Files over a fresh store with identity 1, on a network client that is never started
    /// (what these tests check is decided before any request).
    fn offline(tag: &str, quota: u64) -> (Files, IdentityId, TempDir) {
        let dir = TempDir::new(tag);
        let store = Store::open(dir.path()).expect("store");
        let id = store
            .add_identity("alice", &format!("05{}", "ab".repeat(32)), &[7; 32], 1)
            .expect("identity")
            .id;
        let net = NetClient::with_https(
            NetConfig::devnet(vec!["https://127.0.0.1:1".into()]),
            Arc::new(MemoryPoolStore::new()),
        );
        let config = AttachmentsConfig {
            file_server: "http://127.0.0.1:9".into(),
            quota_bytes: quota,
            ..AttachmentsConfig::default()
        };
        let (files, _queue) = Files::new(dir.path(), store, net, &config).expect("files");
        (files, id, dir)
    }

    /// An incoming attachment record with `url` and a plausible legacy key and digest.
    fn received(files: &Files, identity: IdentityId, url: &str, size: u32) -> String {
        let p = AttachmentPointer {
            url: Some(url.to_owned()),
            key: Some(vec![1; 64]),
            digest: Some(vec![2; 32]),
            size: Some(size),
            file_name: Some("x.bin".into()),
            ..AttachmentPointer::default()
        };
        let (mut view, pointer) = incoming_view(&p, "05peer", false);
        view.conversation = format!("05{}", "cd".repeat(32));
        let record = AttachmentRecord {
            view,
            pointer,
            stored_bytes: 0,
            stored_at_ms: 0,
            created_at_ms: 1,
        };
        files
            .shared
            .store
            .put_attachment(identity, &record)
            .expect("put");
        record.view.id
    }

    #[tokio::test]
    async fn an_unknown_server_without_a_key_fails_with_the_reason_and_nothing_is_fetched() {
        let (files, me, _dir) = offline("files-unknown", 1 << 30);
        let id = received(&files, me, "http://files.example.org/file/abc", 10);
        let r = files
            .download(me, &id)
            .await
            .expect("a state, not an error");
        assert_eq!(r.view.state, AttachmentState::Failed);
        let why = r.view.reason.unwrap_or_default();
        assert!(
            why.contains("files.example.org") && why.contains("no key"),
            "{why}"
        );
        assert!(!files.path(&id).exists());
        // The state change is an event of the conversation: the message is untouched.
        let (events, _) = files
            .shared
            .store
            .events(me, 0, 0, 10, false)
            .expect("events");
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::Attachment(a)) if a.id == id
        ));
    }

    #[tokio::test]
    async fn a_full_quota_fails_the_download_with_the_reason() {
        let (files, me, _dir) = offline("files-quota", 1_000);
        let id = received(&files, me, "http://127.0.0.1:9/file/abc", 5_000);
        let r = files.download(me, &id).await.expect("a state");
        assert_eq!(r.view.state, AttachmentState::Failed);
        let why = r.view.reason.unwrap_or_default();
        assert!(why.starts_with("quota"), "{why}");
    }

    #[tokio::test]
    async fn a_bad_pointer_is_recorded_failed_with_why() {
        let p = AttachmentPointer {
            url: Some("ftp://x/file/1".into()),
            key: Some(vec![1; 64]),
            ..AttachmentPointer::default()
        };
        let (view, _) = incoming_view(&p, "05peer", false);
        assert_eq!(view.state, AttachmentState::Failed);
        assert!(view.reason.is_some());
        assert_eq!(view.token.len(), 64);
        assert_ne!(view.token, incoming_view(&p, "05peer", false).0.token);
    }

    #[tokio::test]
    async fn pending_small_attachments_are_listed_for_a_restart_oldest_first() {
        let (files, me, _dir) = offline("files-pending", 1 << 30);
        let store = files.shared.store.clone();
        let first = received(&files, me, "http://127.0.0.1:9/file/a", 10);
        let big = received(&files, me, "http://127.0.0.1:9/file/b", 5_000_000);
        let second = received(&files, me, "http://127.0.0.1:9/file/c", 20);
        let done = received(&files, me, "http://127.0.0.1:9/file/d", 30);
        let unknown_size = received(&files, me, "http://127.0.0.1:9/file/e", 0);
        store
            .set_attachment_state(
                me,
                &done,
                AttachmentChange {
                    state: AttachmentState::Downloaded,
                    reason: None,
                    sha256: None,
                    stored_bytes: 30,
                },
                5,
            )
            .expect("state");
        let mut want = vec![(me, first.clone()), (me, second.clone())];
        let mut got = store.pending_attachments(100_000).expect("list");
        // Same creation time in this test: compare as sets, then check the order rule alone.
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!got.iter().any(|(_, id)| id == &big || id == &unknown_size));
        assert!(store.pending_attachments(0).expect("none").is_empty());
        // Left-over temporary files go; the listing is what run() starts with.
        std::fs::write(files.shared.dir.join("upload-x.part"), b"junk").expect("part");
        let mut left = files.left_over().await;
        left.sort();
        assert_eq!(left, want, "the default eager limit is above these sizes");
        assert!(!files.shared.dir.join("upload-x.part").exists());
    }

    #[test]
    fn links_give_their_token() {
        let t = "a".repeat(64);
        assert_eq!(
            token_of_link(&format!("http://127.0.0.1:9464/files/{t}/cat.png")).as_deref(),
            Some(t.as_str())
        );
        assert_eq!(
            token_of_link(&format!("/files/{t}")).as_deref(),
            Some(t.as_str())
        );
        assert_eq!(token_of_link("http://x/files/short/a"), None);
        assert_eq!(token_of_link("http://x/other"), None);
    }

    #[test]
    fn link_names_are_safe_path_segments() {
        assert_eq!(link_name("a b/../c?.png"), "a_b_.._c_.png");
        assert_eq!(link_name("photo.JPG"), "photo.JPG");
        assert_eq!(guess_content_type("photo.JPG"), "image/jpeg");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
    }
}
