//! The Messages service: Send (seal + outbox + queued event), Subscribe (backlog then live),
//! History (pages of the event log).

use std::pin::Pin;

use rand::RngCore;
use session_proto::account_id::{AccountId, Prefix};
use session_proto::keys::IdentityKeys;
use sessiond_api::v1::messages_server::Messages;
use sessiond_api::v1::{
    event, DeliveryState as ApiDeliveryState, DeliveryUpdate, Event, HistoryRequest,
    HistoryResponse, IncomingMessage, OutgoingMessage, SendRequest, SendResponse, SubscribeRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::{now_ms, ApiError, Service};
use crate::store::{DeliveryState, EventKind, IdentityId, NewOutgoing, StoredEvent};

/// The longest text, in UTF-16 code units: the Session clients' limit for non-Pro accounts
/// (libsession `STANDARD_CHARACTER_LIMIT`), enforced on the sending side.
pub const MAX_TEXT_UTF16: usize = 2000;
/// The namespace one-to-one messages are stored in.
pub const NAMESPACE_DEFAULT: i32 = 0;
/// Default and largest History page.
const HISTORY_DEFAULT: usize = 100;
const HISTORY_MAX: usize = 1000;
/// Events read from the store per batch while streaming a backlog.
const SUBSCRIBE_BATCH: usize = 256;
/// Events buffered per subscriber before the reader waits for the client: a bounded queue, so a
/// slow client holds the daemon's memory to this many events; the log keeps the rest.
const SUBSCRIBE_BUFFER: usize = 64;

/// Parses a recipient: a standard (`05…`) Account ID.
pub fn parse_recipient(field: &'static str, text: &str) -> Result<AccountId, ApiError> {
    let id: AccountId = text
        .trim()
        .parse()
        .map_err(|e| ApiError::protocol(field, &e))?;
    if id.prefix() != Some(Prefix::Standard) {
        return Err(ApiError::field(
            field,
            "only standard Account IDs (starting with 05) can receive one-to-one messages",
        ));
    }
    Ok(id)
}

/// Checks a message text: not empty, at most [`MAX_TEXT_UTF16`] UTF-16 code units.
pub fn validate_text(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::field("text", "the text is empty"));
    }
    let units = text.encode_utf16().count();
    if units > MAX_TEXT_UTF16 {
        return Err(ApiError::field(
            "text",
            format!("{units} UTF-16 code units; the limit is {MAX_TEXT_UTF16}"),
        ));
    }
    Ok(())
}

/// Converts a stored event to its API form.
pub fn to_api(identity: &str, e: StoredEvent) -> Event {
    let kind = match e.kind {
        EventKind::Incoming(m) => event::Kind::Incoming(IncomingMessage {
            sender: m.sender,
            text: m.text,
            sent_at_ms: m.sent_at_ms,
            received_at_ms: m.received_at_ms,
            hash: m.hash,
            sender_profile_name: m.sender_profile_name.unwrap_or_default(),
        }),
        EventKind::Outgoing {
            message_id,
            recipient,
            text,
            sent_at_ms,
        } => event::Kind::Outgoing(OutgoingMessage {
            message_id,
            recipient,
            text,
            sent_at_ms,
        }),
        EventKind::Delivery {
            message_id,
            recipient,
            state,
            hash,
            reason,
            attempts,
        } => event::Kind::Delivery(DeliveryUpdate {
            message_id,
            state: match state {
                DeliveryState::Sent => ApiDeliveryState::Sent,
                DeliveryState::Failed => ApiDeliveryState::Failed,
            } as i32,
            hash: hash.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
            attempts,
            recipient,
        }),
    };
    Event {
        seq: e.seq,
        recorded_at_ms: e.recorded_at_ms,
        identity: identity.to_owned(),
        kind: Some(kind),
    }
}

/// Seals a text for a recipient: the bytes [`Messages::send`] writes to the outbox, stored
/// as-is in the recipient's swarm. Sealing happens once, at queue time, so retries resend the same
/// bytes (same message hash, so the swarm stores it once).
pub trait Sealer: Send + Sync + std::fmt::Debug + 'static {
    /// The encoded message for the recipient's swarm (namespace 0).
    fn seal(
        &self,
        sender: &IdentityKeys,
        recipient: &AccountId,
        text: &str,
        sent_at_ms: u64,
    ) -> Result<Vec<u8>, ApiError>;
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl Messages for Service {
    async fn send(&self, req: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let who = caller(&req)?;
        let SendRequest {
            identity,
            recipient,
            text,
            idempotency_key: _,
        } = req.into_inner();
        let recipient = parse_recipient("recipient", &recipient)?;
        validate_text(&text)?;
        let ttl_ms = self.state().message_ttl_ms;
        let sealer = std::sync::Arc::clone(&self.state().sealer);
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let seed = state.store.identity_seed(&record.name)?;
                let keys = IdentityKeys::from_seed(&seed);
                let sent_at_ms = now_ms();
                let payload = sealer.seal(&keys, &recipient, &text, sent_at_ms)?;
                let mut id = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut id);
                let (event, _entry) = state.store.queue_outgoing(
                    record.id,
                    NewOutgoing {
                        message_id: hex::encode(id),
                        recipient: recipient.to_string(),
                        text,
                        sent_at_ms,
                        payload,
                        namespace: NAMESPACE_DEFAULT,
                        ttl_ms,
                    },
                    sent_at_ms,
                )?;
                tracing::debug!(identity = %record.name, seq = event.seq, "message queued");
                Ok(SendResponse {
                    message_id: hex::encode(id),
                    seq: event.seq,
                    state: ApiDeliveryState::Queued as i32,
                    sent_at_ms,
                    duplicate: false,
                })
            })
            .await?;
        self.state().outbox_wake.notify_one();
        Ok(Response::new(out))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = caller(&req)?;
        let SubscribeRequest {
            identity,
            from_seq,
            typing: _,
        } = req.into_inner();
        let record = self
            .blocking(move |state| who.identity(state, "identity", &identity))
            .await?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_BUFFER);
        let service = self.clone();
        // Owned by the stream: it ends when the client goes away (tx closed), the identity is
        // removed (watch closed) or the daemon shuts down.
        tokio::spawn(async move {
            if let Err(status) = service.pump(record.id, record.name, from_seq, &tx).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn history(
        &self,
        req: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let who = caller(&req)?;
        let HistoryRequest {
            identity,
            after_seq,
            before_seq,
            limit,
            newest_first,
            peer: _,
        } = req.into_inner();
        let limit = match usize::try_from(limit).unwrap_or(HISTORY_MAX) {
            0 => HISTORY_DEFAULT,
            n => n.min(HISTORY_MAX),
        };
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let (events, more) =
                    state
                        .store
                        .events(record.id, after_seq, before_seq, limit, newest_first)?;
                Ok(HistoryResponse {
                    events: events
                        .into_iter()
                        .map(|e| to_api(&record.name, e))
                        .collect(),
                    more,
                })
            })
            .await?;
        Ok(Response::new(out))
    }
    // Transitional: replaced by the real implementation on the api branch.
    async fn send_typing(
        &self,
        _req: Request<sessiond_api::v1::SendTypingRequest>,
    ) -> Result<Response<sessiond_api::v1::SendTypingResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
}

impl Service {
    /// Streams an identity's events after `cursor` into `tx`: the backlog, then live ones.
    async fn pump(
        &self,
        identity: IdentityId,
        name: String,
        mut cursor: u64,
        tx: &mpsc::Sender<Result<Event, Status>>,
    ) -> Result<(), Status> {
        // Watch first, then read: an append between the read and the wait still wakes us.
        let mut wake = self.state().store.watch(identity);
        let mut shutdown = self.state().shutdown.clone();
        loop {
            let after = cursor;
            let (events, more) = self
                .blocking(move |state| {
                    Ok(state
                        .store
                        .events(identity, after, 0, SUBSCRIBE_BATCH, false)?)
                })
                .await?;
            for e in events {
                cursor = e.seq;
                if tx.send(Ok(to_api(&name, e))).await.is_err() {
                    return Ok(());
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        return Err(Status::not_found(format!(
                            "the identity {name:?} was removed"
                        )));
                    }
                }
                _ = shutdown.wait_for(|&down| down) => {
                    return Err(Status::unavailable("the daemon is shutting down; resubscribe \
                                                    with from_seq set to the last seq you got"));
                }
                () = tx.closed() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_count_utf16_units() {
        assert!(validate_text("hi").is_ok());
        assert!(validate_text("").is_err());
        assert!(validate_text("   ").is_err());
        assert!(validate_text(&"a".repeat(2000)).is_ok());
        assert!(validate_text(&"a".repeat(2001)).is_err());
        // An emoji is two UTF-16 units: 1000 fit, 1001 do not.
        assert!(validate_text(&"😀".repeat(1000)).is_ok());
        assert!(validate_text(&"😀".repeat(1001)).is_err());
    }

    #[test]
    fn recipients_must_be_standard_account_ids() {
        let ok = format!("05{}", "ab".repeat(32));
        assert!(parse_recipient("recipient", &ok).is_ok());
        assert!(parse_recipient("recipient", "05abc").is_err());
        assert!(parse_recipient("recipient", &format!("03{}", "ab".repeat(32))).is_err());
        assert!(parse_recipient("recipient", &format!("zz{}", "ab".repeat(32))).is_err());
    }
}
