//! Onion requests v4 to servers (community servers, the file server): the request is
//! encrypted for the server's X25519 key, crosses a 3-hop path, and the last relay POSTs it to
//! the server's `/oxen/v4/lsrpc`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use session_proto::onion::{build_request, Destination, EncType, Hop, OnionDraft, OnionRequest};

use super::NetClient;
use crate::err::{reason_text, NetError};
use crate::events::{RequestOutcome, RequestTarget};
use crate::retry::Retry;
use crate::server::{Server, ServerRequest, ServerResponse};

impl NetClient {
    /// Sends `request` (method, endpoint, headers, body) to `server` through an onion path and
    /// returns its response. A response code of 400 or more is [`NetError::ServerStatus`]; a
    /// server the last relay cannot reach is [`NetError::ServerUnreachable`] (after trying
    /// other paths, within the retry budget).
    pub async fn server_request(
        &self,
        server: &Server,
        request: &ServerRequest,
    ) -> Result<ServerResponse, NetError> {
        let r = self
            .server_inner(server, Payload::Encoded(request.encode()), 0)
            .await;
        self.note(r)
    }

    /// [`NetClient::server_request`] for a file transfer of about `transfer_bytes` either way
    /// (an upload's body or a download's expected reply): the wait for the reply grows with
    /// the size (see [`TRANSFER_ALLOWANCE_MS_PER_MIB`](crate::TRANSFER_ALLOWANCE_MS_PER_MIB)).
    /// The request is taken by value and dropped once encoded, so an upload's body is not held
    /// twice while it crosses the path.
    pub async fn server_transfer(
        &self,
        server: &Server,
        request: ServerRequest,
        transfer_bytes: u64,
    ) -> Result<ServerResponse, NetError> {
        let payload = Payload::Encoded(request.encode());
        drop(request);
        let r = self.server_inner(server, payload, transfer_bytes).await;
        self.note(r)
    }

    /// [`NetClient::server_transfer`] for an upload whose body of `body_len` bytes is written
    /// by `write` straight into each attempt's onion buffer (`request.body` is ignored): the
    /// body is held once, inside the one buffer the encrypted layers are built in, and a
    /// retry on another path asks `write` for it again instead of keeping a copy. `write`
    /// runs on a blocking thread; its error ends the request as [`NetError::BadRequest`].
    pub async fn server_upload(
        &self,
        server: &Server,
        request: &ServerRequest,
        body_len: usize,
        write: BodyWriter,
    ) -> Result<ServerResponse, NetError> {
        let (head, tail) = request.encode_around(body_len);
        let payload = Payload::Written {
            head,
            tail,
            body_len,
            write,
        };
        let r = self.server_inner(server, payload, body_len as u64).await;
        self.note(r)
    }

    async fn server_inner(
        &self,
        server: &Server,
        payload: Payload,
        transfer_bytes: u64,
    ) -> Result<ServerResponse, NetError> {
        let destination = Destination::Server(server.destination());
        let authority = server.authority();
        let mut retry = Retry::new(self.shared.retry);
        let mut tried: HashSet<u64> = HashSet::new();
        loop {
            self.check_running()?;
            let path = self.path_for(None, &tried).await?;
            tried.insert(path.id);
            let onion = payload.build(&path.hops, &destination).await?;
            let started = Instant::now();
            let result = match self
                .through_path(&path, onion.body, Some(&authority), transfer_bytes)
                .await
            {
                // Opened in place: a downloaded file's bytes are not copied again.
                Ok(reply) => match onion.reply.open_v4_reply_owned(Vec::from(reply.body)) {
                    Ok(response) => {
                        self.lock().path_succeeded(path.id);
                        Ok(response)
                    }
                    Err(e) => {
                        let (cfg, events) = (&self.shared.config, &self.shared.events);
                        self.lock().strike_path(
                            path.id,
                            true,
                            false,
                            cfg,
                            events,
                            "undecryptable server reply",
                        );
                        Err(NetError::BadReply {
                            node: authority.clone(),
                            reason: format!("server reply: {e}"),
                        })
                    }
                },
                Err(e) => Err(e),
            };
            let (outcome, status) = match &result {
                Ok(r) if r.code < 400 => (RequestOutcome::Ok, Some(r.code)),
                Ok(r) => (RequestOutcome::Refused, Some(r.code)),
                Err(NetError::ServerUnreachable { status, .. }) => {
                    (RequestOutcome::Refused, Some(*status))
                }
                Err(e) => (RequestOutcome::PathFailed, e.status()),
            };
            self.request_done(path.id, RequestTarget::Server, outcome, status, started);
            let err = match result {
                Ok(r) if r.code < 400 => return Ok(r),
                Ok(r) => {
                    return Err(NetError::ServerStatus {
                        server: authority,
                        status: r.code,
                        reason: reason_text(&r.body),
                    })
                }
                Err(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let Some(wait) = retry.failed() else {
                return Err(err);
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Writes an upload's body into its onion buffer ([`NetClient::server_upload`]): given a slice
/// of exactly the body's length, fills it, or says why it cannot.
pub type BodyWriter = Arc<dyn Fn(&mut [u8]) -> Result<(), String> + Send + Sync>;

/// A server request's v4 payload, as each attempt builds its onion from it.
enum Payload {
    /// Encoded whole (kept for retries: small requests, downloads).
    Encoded(Vec<u8>),
    /// `head ‖ body ‖ tail`, the body written by `write` into each attempt's buffer.
    Written {
        head: Vec<u8>,
        tail: &'static [u8],
        body_len: usize,
        write: BodyWriter,
    },
}

impl Payload {
    /// The onion request through `hops` to `destination`. A written body is laid out, filled
    /// and encrypted in one buffer on a blocking thread (megabytes of AES and file reads).
    async fn build(
        &self,
        hops: &[Hop],
        destination: &Destination,
    ) -> Result<OnionRequest, NetError> {
        let onion_err = |e: session_proto::err::OnionError| NetError::Onion {
            reason: e.to_string(),
        };
        let (head, tail, body_len, write) = match self {
            Payload::Encoded(p) => {
                let mut rng = rand::thread_rng();
                return build_request(&mut rng, EncType::AesGcm, hops, destination, p)
                    .map_err(onion_err);
            }
            Payload::Written {
                head,
                tail,
                body_len,
                write,
            } => (head.clone(), *tail, *body_len, Arc::clone(write)),
        };
        let (hops, destination) = (hops.to_vec(), destination.clone());
        tokio::task::spawn_blocking(move || {
            let mut rng = rand::thread_rng();
            let len = head.len() + body_len + tail.len();
            let mut draft = OnionDraft::new(&mut rng, EncType::AesGcm, &hops, &destination, len)
                .map_err(onion_err)?;
            let (h, rest) = draft.payload_mut().split_at_mut(head.len());
            h.copy_from_slice(&head);
            let (body, t) = rest.split_at_mut(body_len);
            write(body).map_err(|reason| NetError::BadRequest { reason })?;
            t.copy_from_slice(tail);
            Ok(draft.seal())
        })
        .await
        .map_err(|e| NetError::Onion {
            reason: format!("the onion build task failed: {e}"),
        })?
    }
}
