//! The AttachmentService: Upload (a client stream into a temporary file, then encrypt and
//! upload through [`crate::files`]), Download (a server stream from an offset, fetching the file
//! first when it is not here), RetryDownload and GetAttachment.

use std::pin::Pin;

use sessiond_api::v1::attachment_service_server::AttachmentService;
use sessiond_api::v1::{
    download_response, upload_request, Attachment, AttachmentState as ApiState, DownloadRequest,
    DownloadResponse, GetAttachmentRequest, GetAttachmentResponse, RetryDownloadRequest,
    RetryDownloadResponse, UploadMetadata, UploadRequest, UploadResponse,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::caller;
use super::{ApiError, Service};
use crate::files::{self, Files, FilesError, UploadMeta};
use crate::store::{AttachmentRecord, AttachmentState, AttachmentView, IdentityId};

/// Bytes per Download chunk.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
/// Download chunks buffered per stream: a slow client holds at most this many in memory.
const DOWNLOAD_BUFFER: usize = 4;
/// The longest file name or caption accepted, in bytes.
const MAX_NAME: usize = 255;
/// The longest caption accepted, in bytes.
const MAX_CAPTION: usize = 2000;

/// An attachment in the API's form.
pub fn attachment_to_api(v: AttachmentView) -> Attachment {
    let local_url = files::local_url(&v).unwrap_or_default();
    Attachment {
        id: v.id,
        conversation_id: v.conversation,
        file_name: v.file_name.unwrap_or_default(),
        content_type: v.content_type.unwrap_or_default(),
        size: v.size,
        state: match v.state {
            AttachmentState::Pending => ApiState::Pending,
            AttachmentState::Downloaded => ApiState::Downloaded,
            AttachmentState::Failed => ApiState::Failed,
            AttachmentState::Expired => ApiState::Expired,
            AttachmentState::Uploaded => ApiState::Uploaded,
        } as i32,
        reason: v.reason.unwrap_or_default(),
        outgoing: v.outgoing,
        sha256: v.sha256.unwrap_or_default(),
        local_url,
        voice_message: v.voice_message,
        width: v.width.unwrap_or(0),
        height: v.height.unwrap_or(0),
        caption: v.caption.unwrap_or_default(),
    }
}

fn files_error(e: FilesError) -> ApiError {
    match e {
        FilesError::Store(s) => ApiError::Store(s),
        other => ApiError::protocol("attachment", &other),
    }
}

fn optional(field: &'static str, v: String, max: usize) -> Result<Option<String>, ApiError> {
    if v.len() > max {
        return Err(ApiError::field(field, format!("longer than {max} bytes")));
    }
    if v.contains(['\0', '/', '\\']) && field == "file_name" {
        return Err(ApiError::field(field, "a file name has no NUL, / or \\"));
    }
    Ok(Some(v).filter(|v| !v.trim().is_empty()))
}

impl Service {
    fn files(&self) -> Result<Files, ApiError> {
        self.state().files.clone().ok_or_else(|| {
            ApiError::Unavailable(
                "the daemon is offline: attachments need the network (the file server)".to_owned(),
            )
        })
    }

    /// The identity a request names, as the caller may reach it.
    async fn reach(
        &self,
        who: super::auth::Caller,
        identity: String,
    ) -> Result<IdentityId, ApiError> {
        self.blocking(move |state| Ok(who.identity(state, "identity", &identity)?.id))
            .await
    }

    async fn record(&self, identity: IdentityId, id: String) -> Result<AttachmentRecord, ApiError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::field("attachment_id", "32 hex characters"));
        }
        self.blocking(move |state| Ok(state.store.attachment(identity, &id)?))
            .await
    }

    /// Uploads a file the daemon can read (the IRC `send-file` path and FILEHOST uploads go
    /// through the gRPC Upload; this is its core after the bytes are in a temporary file).
    async fn upload_stream(
        &self,
        mut stream: Streaming<UploadRequest>,
        who: super::auth::Caller,
    ) -> Result<AttachmentRecord, ApiError> {
        let first = stream
            .message()
            .await
            .map_err(|s| ApiError::field("metadata", s.message().to_owned()))?;
        let Some(UploadRequest {
            part: Some(upload_request::Part::Metadata(meta)),
        }) = first
        else {
            return Err(ApiError::field(
                "metadata",
                "the first message of an Upload must carry the metadata",
            ));
        };
        let UploadMetadata {
            identity,
            file_name,
            content_type,
            size,
            voice_message,
            width,
            height,
            caption,
        } = meta;
        let meta = UploadMeta {
            file_name: optional("file_name", file_name, MAX_NAME)?,
            content_type: optional("content_type", content_type, MAX_NAME)?,
            voice_message,
            width: (width > 0).then_some(width),
            height: (height > 0).then_some(height),
            caption: optional("caption", caption, MAX_CAPTION)?,
        };
        let max = files::max_plaintext();
        let too_large = |len| {
            ApiError::protocol(
                "attachment",
                &FilesError::TooLarge {
                    len,
                    blob: session_proto::attachment::legacy::blob_len(len),
                    max,
                },
            )
        };
        if size > max {
            return Err(too_large(size));
        }
        let identity = self.reach(who, identity).await?;
        let files = self.files()?;
        let (path, file) = files.temp_file().map_err(files_error)?;
        let mut file = tokio::fs::File::from_std(file);
        let written = async {
            let mut len = 0u64;
            while let Some(msg) = stream
                .message()
                .await
                .map_err(|s| ApiError::field("chunk", s.message().to_owned()))?
            {
                match msg.part {
                    Some(upload_request::Part::Chunk(bytes)) => {
                        len = len.saturating_add(bytes.len() as u64);
                        if len > max {
                            return Err(too_large(len));
                        }
                        file.write_all(&bytes)
                            .await
                            .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))?;
                    }
                    _ => {
                        return Err(ApiError::field(
                            "metadata",
                            "only the first message of an Upload carries metadata",
                        ))
                    }
                }
            }
            file.flush()
                .await
                .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))?;
            if size != 0 && size != len {
                return Err(ApiError::field(
                    "size",
                    format!("declared {size} bytes, {len} came"),
                ));
            }
            Ok(len)
        }
        .await;
        drop(file);
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        files
            .upload(identity, path, len, meta)
            .await
            .map_err(files_error)
    }
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<DownloadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AttachmentService for Service {
    async fn upload(
        &self,
        req: Request<Streaming<UploadRequest>>,
    ) -> Result<Response<UploadResponse>, Status> {
        let who = caller(&req)?;
        let record = self.upload_stream(req.into_inner(), who).await?;
        Ok(Response::new(UploadResponse {
            attachment: Some(attachment_to_api(record.view)),
        }))
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        req: Request<DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let who = caller(&req)?;
        let DownloadRequest {
            identity,
            attachment_id,
            offset,
        } = req.into_inner();
        let identity = self.reach(who, identity).await?;
        let mut record = self.record(identity, attachment_id).await?;
        let files = self.files()?;
        if !matches!(
            record.view.state,
            AttachmentState::Downloaded | AttachmentState::Uploaded
        ) || !files.path(&record.view.id).exists()
        {
            record = files
                .download(identity, &record.view.id)
                .await
                .map_err(files_error)?;
        }
        if !matches!(
            record.view.state,
            AttachmentState::Downloaded | AttachmentState::Uploaded
        ) {
            return Err(ApiError::Protocol {
                what: "attachment",
                detail: format!(
                    "the attachment could not be downloaded: {}",
                    record.view.reason.as_deref().unwrap_or("unknown reason")
                ),
                kind: session_proto::err::ErrorKind::Rejected,
            }
            .into());
        }
        let path = files.path(&record.view.id);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::Internal(format!("opening the attachment: {e}")))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| ApiError::Internal(format!("reading the attachment: {e}")))?
            .len();
        if offset > len {
            return Err(Status::out_of_range(format!(
                "offset {offset} is past the end of the attachment ({len} bytes)"
            )));
        }
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the attachment: {e}")))?;
        let (tx, rx) = mpsc::channel(DOWNLOAD_BUFFER);
        let first = DownloadResponse {
            part: Some(download_response::Part::Attachment(attachment_to_api(
                record.view,
            ))),
        };
        // Owned by the stream: ends when the file is sent or the client goes away.
        tokio::spawn(async move {
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        let msg = DownloadResponse {
                            part: Some(download_response::Part::Chunk(buf[..n].to_vec())),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "reading the attachment: {e}"
                            ))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn retry_download(
        &self,
        req: Request<RetryDownloadRequest>,
    ) -> Result<Response<RetryDownloadResponse>, Status> {
        let who = caller(&req)?;
        let RetryDownloadRequest {
            identity,
            attachment_id,
        } = req.into_inner();
        let identity = self.reach(who, identity).await?;
        let record = self.record(identity, attachment_id).await?;
        let files = self.files()?;
        let record = files
            .download(identity, &record.view.id)
            .await
            .map_err(files_error)?;
        Ok(Response::new(RetryDownloadResponse {
            attachment: Some(attachment_to_api(record.view)),
        }))
    }

    async fn get_attachment(
        &self,
        req: Request<GetAttachmentRequest>,
    ) -> Result<Response<GetAttachmentResponse>, Status> {
        let who = caller(&req)?;
        let GetAttachmentRequest {
            identity,
            attachment_id,
            link,
        } = req.into_inner();
        let identity = self.reach(who, identity).await?;
        let record = if attachment_id.is_empty() && !link.is_empty() {
            let token = files::token_of_link(&link)
                .ok_or_else(|| ApiError::field("link", "not a link to a file of this daemon"))?;
            let found = self
                .blocking(move |state| Ok(state.store.attachment_by_token(&token)?))
                .await?;
            match found {
                Some((owner, record)) if owner == identity => record,
                _ => return Err(ApiError::NotFound("no such attachment".to_owned()).into()),
            }
        } else {
            self.record(identity, attachment_id).await?
        };
        Ok(Response::new(GetAttachmentResponse {
            attachment: Some(attachment_to_api(record.view)),
        }))
    }
}
