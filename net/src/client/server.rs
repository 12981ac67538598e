//! Onion requests v4 to servers (community servers, the file server): the request is
//! encrypted for the server's X25519 key, crosses a 3-hop path, and the last relay POSTs it to
//! the server's `/oxen/v4/lsrpc`.

use std::collections::HashSet;
use std::time::Instant;

use session_proto::onion::{build_request, Destination, EncType};

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
        let r = self.server_inner(server, request.encode(), 0).await;
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
        let payload = request.encode();
        drop(request);
        let r = self.server_inner(server, payload, transfer_bytes).await;
        self.note(r)
    }

    async fn server_inner(
        &self,
        server: &Server,
        payload: Vec<u8>,
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
            let onion = {
                let mut rng = rand::thread_rng();
                build_request(
                    &mut rng,
                    EncType::AesGcm,
                    &path.hops,
                    &destination,
                    &payload,
                )
                .map_err(|e| NetError::Onion {
                    reason: e.to_string(),
                })?
            };
            let started = Instant::now();
            let result = match self
                .through_path(&path, onion.body, Some(&authority), transfer_bytes)
                .await
            {
                Ok(reply) => match onion.reply.open_v4_reply(&reply.body) {
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
