//! The MessageService: SendMessage (seal + outbox + queued event, idempotency keys), Subscribe
//! (backlog then live, plus live typing notices on request), ListEvents (pages of the event log,
//! optionally of one conversation), SendTyping (one best-effort store, nothing recorded).
//!
//! Cursors are (log_epoch, seq): [`check_cursor`] refuses a seq without its epoch, an epoch of
//! another incarnation of the log, and a seq past the log's end.

use std::pin::Pin;

use rand::RngCore;
use session_proto::account_id::{AccountId, Prefix};
use session_proto::interaction::{message_content, Expiry, ExpiryMode, MessageRef};
use session_proto::keys::IdentityKeys;
use session_proto::message::{typing_content, TYPING_TTL_MS};
use session_proto::protos::{AttachmentPointer, Content};
use sessiond_api::v1::message_service_server::MessageService;
use sessiond_api::v1::{
    event, AttachmentUpdate, ConversationChanged, ConversationKind,
    DeliveryState as ApiDeliveryState, DeliveryUpdate, Event, IncomingMessage, ListEventsRequest,
    ListEventsResponse, OutgoingMessage, RoomMessageDeleted, RoomReaction, RoomReactionsChanged,
    SendMessageRequest, SendMessageResponse, SendTypingRequest, SendTypingResponse,
    SubscribeRequest, SubscribeResponse, Typing,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::attachments::attachment_to_api;
use super::auth::caller;
use super::conversations::conversation_to_api;
use super::identities::log_epoch;
use super::interactions::{
    self, accept_request, expiry_from_api, expiry_from_store, expiry_to_store, extras_to_api,
    reply_from_api,
};
use super::seal::sync_copy;
use super::{now_ms, page, ApiError, Service, State};
use crate::address::{self, Kind};
use crate::store::{
    AttachmentState, AttachmentView, DeliveryState, EventKind, IdentityId, IdentityRecord,
    MessageExtras, NewOutgoing, Queued, ReplyRef, SentKey, StoredEvent, TypingNotice,
};

/// The longest text, in UTF-16 code units: the Session clients' limit for non-Pro accounts
/// (libsession `STANDARD_CHARACTER_LIMIT`), enforced on the sending side.
pub const MAX_TEXT_UTF16: usize = 2000;
/// The namespace one-to-one messages are stored in.
pub const NAMESPACE_DEFAULT: i32 = 0;
/// The most attachments one message carries (desktop's limit).
pub const MAX_ATTACHMENTS: usize = 32;
/// The longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
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

/// Parses a conversation address (see [`crate::address`]) into its canonical form and kind.
pub fn parse_conversation(field: &'static str, text: &str) -> Result<(String, Kind), ApiError> {
    address::parse(text).map_err(|why| ApiError::field(field, why))
}

/// The API's kind of a stored conversation address.
pub fn kind_to_api(address: &str) -> ConversationKind {
    match Kind::of(address) {
        Some(Kind::Direct) => ConversationKind::Direct,
        Some(Kind::Group) => ConversationKind::Group,
        Some(Kind::CommunityRoom) => ConversationKind::CommunityRoom,
        Some(Kind::CommunityDm) => ConversationKind::CommunityDm,
        None => ConversationKind::Unspecified,
    }
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
        EventKind::Incoming(m) => {
            let conversation_id = m.conversation().to_owned();
            let conversation_kind = kind_to_api(m.conversation()) as i32;
            let (reply_to, disappearing, expires_at_ms) = extras_to_api(m.extras);
            event::Kind::Incoming(IncomingMessage {
                conversation_id,
                conversation_kind,
                sender: m.sender,
                text: m.text,
                sent_at_ms: m.sent_at_ms,
                received_at_ms: m.received_at_ms,
                hash: m.hash,
                sender_profile_name: m.sender_profile_name.unwrap_or_default(),
                reply_to,
                disappearing,
                expires_at_ms,
                attachments: m.attachments.into_iter().map(attachment_to_api).collect(),
                server_message_id: m.server_id.unwrap_or_default(),
                edited_at_ms: m.edited_at_ms.unwrap_or_default(),
            })
        }
        EventKind::Outgoing {
            message_id,
            recipient,
            text,
            sent_at_ms,
            from_other_device,
            extras,
            attachments,
            server_id,
        } => {
            let (reply_to, disappearing, expires_at_ms) = extras_to_api(extras);
            event::Kind::Outgoing(OutgoingMessage {
                conversation_id: recipient.clone(),
                conversation_kind: kind_to_api(&recipient) as i32,
                message_id,
                recipient,
                text,
                sent_at_ms,
                from_other_device,
                reply_to,
                disappearing,
                expires_at_ms,
                attachments: attachments.into_iter().map(attachment_to_api).collect(),
                server_message_id: server_id.unwrap_or_default(),
            })
        }
        EventKind::Attachment(a) => event::Kind::Attachment(AttachmentUpdate {
            attachment: Some(attachment_to_api(a)),
        }),
        EventKind::Delivery {
            message_id,
            recipient,
            state,
            hash,
            reason,
            attempts,
            message_seq,
        } => event::Kind::Delivery(DeliveryUpdate {
            message_id,
            state: match state {
                DeliveryState::Sent => ApiDeliveryState::Sent,
                DeliveryState::Failed => ApiDeliveryState::Failed,
                DeliveryState::Read => ApiDeliveryState::Read,
            } as i32,
            hash: hash.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
            attempts,
            recipient,
            message_seq: message_seq.unwrap_or(0),
        }),
        EventKind::Conversation(view) => event::Kind::Conversation(ConversationChanged {
            conversation: Some(conversation_to_api(view)),
        }),
        EventKind::RoomDeleted {
            conversation,
            server_id,
        } => event::Kind::RoomMessageDeleted(RoomMessageDeleted {
            conversation_id: conversation,
            server_message_id: server_id,
        }),
        EventKind::RoomReactions {
            conversation,
            server_id,
            reactions,
            mut reactors,
        } => event::Kind::RoomReactions(RoomReactionsChanged {
            conversation_id: conversation,
            server_message_id: server_id,
            reactions: reactions
                .into_iter()
                .map(|(emoji, count, you)| RoomReaction {
                    reactors: reactors.remove(&emoji).unwrap_or_default(),
                    emoji,
                    count,
                    you,
                })
                .collect(),
        }),
        EventKind::Group(change) => event::Kind::Group(super::groups::change_to_api(change)),
        EventKind::Unreadable {
            hash,
            received_at_ms,
            reason,
        } => event::Kind::Unreadable(sessiond_api::v1::UnreadableMessage {
            hash,
            received_at_ms,
            reason,
        }),
        other => match interactions::event_to_api(other) {
            Some(kind) => kind,
            None => unreachable!("event_to_api converts every kind not matched above"),
        },
    };
    Event {
        seq: e.seq,
        recorded_at_ms: e.recorded_at_ms,
        identity: identity.to_owned(),
        kind: Some(kind),
    }
}

/// A live typing notice in the API's form: seq 0, never stored.
fn typing_to_api(identity: &str, t: TypingNotice) -> Event {
    Event {
        seq: 0,
        recorded_at_ms: t.at_ms,
        identity: identity.to_owned(),
        kind: Some(event::Kind::Typing(Typing {
            peer: t.peer,
            typing: t.typing,
        })),
    }
}

/// Checks a cursor against an identity's log and returns the log's epoch. `seqs` are the
/// request's seq fields that must lie within the log (0: unset); `bounds` are seq fields that
/// only bound a range (0: unset). A set seq or bound needs `given` (the request's log_epoch);
/// `given`, when set, must be the log's epoch; a seq must not be past the log's end.
pub fn check_cursor(
    state: &State,
    record: &IdentityRecord,
    given: u64,
    seqs: &[(&'static str, u64)],
    bounds: &[(&'static str, u64)],
) -> Result<u64, ApiError> {
    let current = log_epoch(record);
    if given == 0 {
        if let Some((field, _)) = seqs.iter().chain(bounds).find(|(_, seq)| *seq != 0) {
            return Err(ApiError::field(
                "log_epoch",
                format!(
                    "{field} is set, so log_epoch must say which log it belongs to \
                     (Identity.log_epoch, or the log_epoch that came with the seq)"
                ),
            ));
        }
        return Ok(current);
    }
    if given != current {
        return Err(ApiError::EpochMismatch {
            field: "log_epoch",
            identity: record.name.clone(),
            given,
            current,
        });
    }
    if let Some(&(field, seq)) = seqs.iter().find(|(_, seq)| *seq != 0) {
        let last_seq = state.store.last_seq(record.id)?;
        if seq > last_seq {
            return Err(ApiError::SeqOutOfRange {
                field,
                seq,
                last_seq,
            });
        }
    }
    Ok(current)
}

/// The pointers and event views of the uploaded attachments a message sends: each must be the
/// identity's own, in state uploaded.
pub(super) fn sent_attachments(
    state: &State,
    identity: IdentityId,
    ids: &[String],
    conversation: &str,
) -> Result<(Vec<AttachmentPointer>, Vec<AttachmentView>), ApiError> {
    let mut pointers = Vec::with_capacity(ids.len());
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::field(
                "attachment_ids",
                "ids are 32 hex characters",
            ));
        }
        let record = state.store.attachment(identity, id)?;
        if record.view.state != AttachmentState::Uploaded {
            return Err(ApiError::field(
                "attachment_ids",
                format!("{id} is not an uploaded attachment (Upload gives those)"),
            ));
        }
        pointers.push(crate::files::Files::pointer_of(&record)?);
        let mut view = record.view;
        view.conversation = conversation.to_owned();
        views.push(view);
    }
    Ok((pointers, views))
}

/// The Content of a posted message: its text (none when it only carries attachments), the
/// quote of the message it replies to, the sender's display name, its timer and attachments.
pub(super) fn post_content(
    text: &str,
    reply_to: Option<&ReplyRef>,
    display_name: Option<&str>,
    expiry: Option<Expiry>,
    pointers: Vec<AttachmentPointer>,
    sent_at_ms: u64,
) -> Content {
    let quote = reply_to.map(|r| MessageRef {
        sent_at_ms: r.sent_at_ms,
        author: r.author.clone(),
    });
    let mut content = message_content(text, quote.as_ref(), display_name, expiry, sent_at_ms);
    if let Some(data) = content.data_message.as_mut() {
        if text.is_empty() {
            data.body = None;
        }
        data.attachments = pointers;
    }
    content
}

/// NOT_FOUND unless the message a reply quotes is in `conversation`. Blocking.
pub(super) fn check_quoted(
    state: &State,
    identity: IdentityId,
    conversation: &str,
    reply_to: Option<&ReplyRef>,
) -> Result<(), ApiError> {
    match reply_to {
        Some(r)
            if !state
                .store
                .has_message(identity, conversation, r.sent_at_ms, &r.author)? =>
        {
            Err(ApiError::from(crate::store::StoreError::UnknownMessage {
                what: "by that author",
                sent_at_ms: r.sent_at_ms,
            }))
        }
        _ => Ok(()),
    }
}

pub(super) fn duplicate(first: SentKey) -> SendMessageResponse {
    SendMessageResponse {
        message_id: first.message_id,
        seq: first.seq,
        state: ApiDeliveryState::Queued as i32,
        sent_at_ms: first.sent_at_ms,
        duplicate: true,
    }
}

/// Seals a Content for a recipient: the bytes [`MessageService::send_message`] writes to the
/// outbox (and SendTyping stores once), stored as-is in the recipient's swarm. Sealing happens
/// once, at queue time, so retries resend the same bytes (same message hash, so the swarm stores it
/// once).
pub trait Sealer: Send + Sync + std::fmt::Debug + 'static {
    /// The encoded message for the recipient's swarm (namespace 0), with Envelope timestamp
    /// `sent_at_ms`.
    fn seal(
        &self,
        sender: &IdentityKeys,
        recipient: &AccountId,
        content: &Content,
        sent_at_ms: u64,
    ) -> Result<Vec<u8>, ApiError>;
}

type EventStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MessageService for Service {
    async fn send_message(
        &self,
        req: Request<SendMessageRequest>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let who = caller(&req)?;
        let SendMessageRequest {
            identity,
            recipient,
            text,
            idempotency_key,
            reply_to,
            disappearing,
            attachment_ids,
        } = req.into_inner();
        if let Some(sent) = self
            .send_to_community(who, &identity, &recipient, &text, &idempotency_key)
            .await?
        {
            return Ok(Response::new(sent));
        }
        let (address, kind) = parse_conversation("recipient", &recipient)?;
        if attachment_ids.len() > MAX_ATTACHMENTS {
            return Err(ApiError::field(
                "attachment_ids",
                format!("at most {MAX_ATTACHMENTS} attachments per message"),
            )
            .into());
        }
        if attachment_ids.is_empty() || !text.is_empty() {
            validate_text(&text)?;
        }
        let key = validate_idempotency_key(&idempotency_key)?;
        if kind == Kind::Group {
            let reply_to = reply_to.as_ref().map(reply_from_api).transpose()?;
            let out = self
                .blocking(move |state| {
                    let record = who.identity(state, "identity", &identity)?;
                    if let Some(key) = key.as_deref() {
                        if let Some(first) = state.store.sent_key(record.id, key)? {
                            return Ok(duplicate(first));
                        }
                    }
                    let post = super::groups::GroupPost {
                        text,
                        reply_to,
                        attachment_ids,
                        idempotency_key: key,
                    };
                    Ok(
                        match super::groups::send_to_group(state, &record, &address, post)? {
                            Queued::New { event, entry } => SendMessageResponse {
                                message_id: entry.message_id,
                                seq: event.seq,
                                state: ApiDeliveryState::Queued as i32,
                                sent_at_ms: entry.sent_at_ms,
                                duplicate: false,
                            },
                            Queued::Duplicate(first) => duplicate(first),
                        },
                    )
                })
                .await?;
            if !out.duplicate {
                self.state().outbox_wake.notify_one();
            }
            return Ok(Response::new(out));
        }
        if kind != Kind::Direct {
            return Err(ApiError::Unimplemented(format!(
                "recipient: this daemon cannot post in a conversation of kind {:?} yet",
                kind_to_api(&address)
            ))
            .into());
        }
        let recipient = parse_recipient("recipient", &address)?;
        let reply_to = reply_to.as_ref().map(reply_from_api).transpose()?;
        let chosen_expiry = disappearing
            .as_ref()
            .map(|d| expiry_from_api("disappearing", d))
            .transpose()?;
        let default_ttl_ms = self.state().message_ttl_ms;
        let limit = self.state().outbox_limit;
        let sealer = std::sync::Arc::clone(&self.state().sealer);
        let sealing = std::sync::Arc::clone(&self.state().seal_gate)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("the seal gate is closed".to_owned()))?;
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                if let Some(key) = key.as_deref() {
                    // Seal nothing for a repeat; queue_outgoing checks again, atomically.
                    if let Some(first) = state.store.sent_key(record.id, key)? {
                        return Ok(duplicate(first));
                    }
                }
                if let Some(depth) = state
                    .store
                    .outbox_depth(record.id, limit)?
                    .filter(|d| *d >= limit)
                {
                    return Err(ApiError::OutboxFull {
                        identity: record.name.clone(),
                        depth,
                        limit,
                    });
                }
                let (pointers, attachments) =
                    sent_attachments(state, record.id, &attachment_ids, &recipient.to_string())?;
                let seed = state.store.identity_seed(&record.name)?;
                let keys = IdentityKeys::from_seed(&seed);
                let conversation = recipient.to_string();
                check_quoted(state, record.id, &conversation, reply_to.as_ref())?;
                // Explicitly chosen for this message, else the conversation's timer.
                let expiry = match chosen_expiry {
                    Some(chosen) => chosen,
                    None => state
                        .store
                        .disappearing(record.id, &conversation)?
                        .and_then(expiry_from_store),
                };
                // Replying to a message request accepts it, as the apps do.
                accept_request(state, &record, &keys, &recipient)?;
                let sent_at_ms = now_ms();
                let content = post_content(
                    &text,
                    reply_to.as_ref(),
                    record.display_name.as_deref(),
                    expiry,
                    pointers,
                    sent_at_ms,
                );
                // An after-send message lives in the swarms only as long as its timer.
                let ttl_ms = match expiry {
                    Some(e) if e.mode == ExpiryMode::AfterSend => default_ttl_ms.min(e.millis()),
                    _ => default_ttl_ms,
                };
                let extras = MessageExtras {
                    reply_to,
                    expiry: expiry.map(expiry_to_store),
                    expires_at_ms: None,
                };
                let payload = sealer.seal(&keys, &recipient, &content, sent_at_ms)?;
                // For the account's other devices (the phone shows it as sent).
                let sync_copy =
                    sync_copy(sealer.as_ref(), &keys, &recipient, &content, sent_at_ms)?;
                let mut id = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut id);
                // Sealed: the next Send may seal while this one waits for its commit.
                drop(sealing);
                let queued = state.store.queue_outgoing(
                    record.id,
                    NewOutgoing {
                        message_id: hex::encode(id),
                        recipient: recipient.to_string(),
                        text,
                        sent_at_ms,
                        payload,
                        namespace: NAMESPACE_DEFAULT,
                        ttl_ms,
                        idempotency_key: key,
                        sync_copy,
                        extras,
                        attachments,
                    },
                    sent_at_ms,
                )?;
                Ok(match queued {
                    Queued::New { event, entry } => {
                        tracing::debug!(identity = %record.name, seq = event.seq, "message queued");
                        SendMessageResponse {
                            message_id: entry.message_id,
                            seq: event.seq,
                            state: ApiDeliveryState::Queued as i32,
                            sent_at_ms,
                            duplicate: false,
                        }
                    }
                    Queued::Duplicate(first) => duplicate(first),
                })
            })
            .await?;
        if !out.duplicate {
            self.state().outbox_wake.notify_one();
        }
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
            typing,
            log_epoch: given,
        } = req.into_inner();
        let (record, epoch) = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let epoch = check_cursor(state, &record, given, &[("from_seq", from_seq)], &[])?;
                Ok((record, epoch))
            })
            .await?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_BUFFER);
        // Before the backlog is read, so no notice sent meanwhile is missed.
        let typing = typing.then(|| self.state().store.typing_notices());
        let service = self.clone();
        // Owned by the stream: it ends when the client goes away (tx closed), the identity is
        // removed (watch closed) or the daemon shuts down.
        tokio::spawn(async move {
            if let Err(status) = service
                .pump(record.id, record.name, epoch, from_seq, typing, &tx)
                .await
            {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_events(
        &self,
        req: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let who = caller(&req)?;
        let ListEventsRequest {
            identity,
            mut after_seq,
            mut before_seq,
            page_size,
            newest_first,
            peer,
            page_token,
            log_epoch: given,
        } = req.into_inner();
        let peer = if peer.is_empty() {
            None
        } else {
            Some(parse_conversation("peer", &peer)?.0)
        };
        let limit = page::page_size(page_size)?;
        // The token: the request fields it is bound to, the log's epoch, and the last seq
        // returned (the next page starts past it, in the request's order).
        let bound = [
            identity.clone(),
            after_seq.to_string(),
            before_seq.to_string(),
            u8::from(newest_first).to_string(),
            peer.clone().unwrap_or_default(),
        ];
        let position = match page::decode("events", &page_token, bound.len() + 2)? {
            Some(p) => {
                for (part, now) in p.iter().zip(&bound) {
                    page::same(part, now)?;
                }
                Some((page::number(&p[5])?, page::number(&p[6])?))
            }
            None => None,
        };
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                // Without log_epoch the bounds are taken as they are (a page_token still
                // checks its own epoch); with it they are checked like a Subscribe cursor.
                let epoch = if given == 0 {
                    check_cursor(state, &record, 0, &[], &[])?
                } else {
                    check_cursor(
                        state,
                        &record,
                        given,
                        &[("after_seq", after_seq)],
                        &[("before_seq", before_seq)],
                    )?
                };
                if let Some((token_epoch, last)) = position {
                    if token_epoch != epoch {
                        return Err(ApiError::EpochMismatch {
                            field: "page_token",
                            identity: record.name.clone(),
                            given: token_epoch,
                            current: epoch,
                        });
                    }
                    if newest_first {
                        before_seq = last;
                    } else {
                        after_seq = last;
                    }
                }
                let (events, more) = match peer.as_deref() {
                    Some(peer) => state.store.peer_events(
                        record.id,
                        peer,
                        after_seq,
                        before_seq,
                        limit,
                        newest_first,
                    )?,
                    None => {
                        state
                            .store
                            .events(record.id, after_seq, before_seq, limit, newest_first)?
                    }
                };
                let next_page_token = match events.last() {
                    Some(last) if more => {
                        let mut parts: Vec<&str> = bound.iter().map(String::as_str).collect();
                        let (epoch, seq) = (epoch.to_string(), last.seq.to_string());
                        parts.push(&epoch);
                        parts.push(&seq);
                        page::encode("events", &parts)
                    }
                    _ => String::new(),
                };
                Ok(ListEventsResponse {
                    events: events
                        .into_iter()
                        .map(|e| to_api(&record.name, e))
                        .collect(),
                    next_page_token,
                    log_epoch: epoch,
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn send_typing(
        &self,
        req: Request<SendTypingRequest>,
    ) -> Result<Response<SendTypingResponse>, Status> {
        let who = caller(&req)?;
        let SendTypingRequest {
            identity,
            recipient,
            typing,
        } = req.into_inner();
        let recipient = parse_recipient("recipient", &recipient)?;
        let sealer = std::sync::Arc::clone(&self.state().sealer);
        let network = self.state().network.clone();
        let payload = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let seed = state.store.identity_seed(&record.name)?;
                let keys = IdentityKeys::from_seed(&seed);
                let at_ms = now_ms();
                sealer.seal(&keys, &recipient, &typing_content(typing, at_ms), at_ms)
            })
            .await?;
        let network = network.ok_or_else(|| {
            ApiError::Unavailable(
                "this daemon is offline (no network client), so typing notices cannot be sent"
                    .to_owned(),
            )
        })?;
        let namespace = i16::try_from(NAMESPACE_DEFAULT).expect("namespace 0 fits an i16");
        network
            .store_once(&recipient, namespace, payload, TYPING_TTL_MS)
            .await?;
        Ok(Response::new(SendTypingResponse {}))
    }
}

impl Service {
    /// Streams an identity's events after `cursor` into `tx`: the backlog, then live ones, and
    /// (if `typing` is given) live typing notices while it waits for more. `epoch` is the log's
    /// epoch, sent with every event.
    async fn pump(
        &self,
        identity: IdentityId,
        name: String,
        epoch: u64,
        mut cursor: u64,
        mut typing: Option<broadcast::Receiver<TypingNotice>>,
        tx: &mpsc::Sender<Result<SubscribeResponse, Status>>,
    ) -> Result<(), Status> {
        let wrap = |event: Event| SubscribeResponse {
            event: Some(event),
            log_epoch: epoch,
        };
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
                if tx.send(Ok(wrap(to_api(&name, e)))).await.is_err() {
                    return Ok(());
                }
            }
            if more {
                continue;
            }
            loop {
                let notice = tokio::select! {
                    changed = wake.changed() => {
                        if changed.is_err() {
                            return Err(ApiError::NotFound(format!(
                                "the identity {name:?} was deleted"
                            )).into());
                        }
                        break;
                    }
                    notice = next_typing(&mut typing, identity) => notice,
                    () = shut_down(&mut shutdown) => {
                        return Err(ApiError::Unavailable(
                            "the daemon is shutting down; resubscribe with from_seq set to the \
                             last seq you got and its log_epoch".to_owned(),
                        ).into());
                    }
                    () = tx.closed() => return Ok(()),
                };
                if tx
                    .send(Ok(wrap(typing_to_api(&name, notice))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}

/// Resolves once the daemon shuts down (the watch's guard is not held across awaits).
async fn shut_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&down| down).await;
}

/// The next typing notice for `identity`; never resolves without a receiver (or once its
/// channel is closed). A receiver that lagged skips the notices it lost: they are stale.
async fn next_typing(
    rx: &mut Option<broadcast::Receiver<TypingNotice>>,
    identity: IdentityId,
) -> TypingNotice {
    if let Some(r) = rx.as_mut() {
        loop {
            match r.recv().await {
                Ok(notice) if notice.identity == identity => return notice,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    *rx = None;
    std::future::pending().await
}

/// Checks an idempotency key: at most [`MAX_IDEMPOTENCY_KEY`] characters; empty means none.
pub fn validate_idempotency_key(key: &str) -> Result<Option<String>, ApiError> {
    let len = key.chars().count();
    if len > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::field(
            "idempotency_key",
            format!("{len} characters; the limit is {MAX_IDEMPOTENCY_KEY}"),
        ));
    }
    Ok((!key.is_empty()).then(|| key.to_owned()))
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
    fn idempotency_keys() {
        assert_eq!(validate_idempotency_key("").expect("ok"), None);
        assert_eq!(
            validate_idempotency_key("txn-1").expect("ok").as_deref(),
            Some("txn-1")
        );
        assert!(validate_idempotency_key(&"é".repeat(128)).is_ok());
        assert!(validate_idempotency_key(&"k".repeat(129)).is_err());
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
