//! The InteractionService (reactions, unsend, disappearing timers, the read-receipt setting,
//! data-extraction notices), the conversions of the interaction events and message extras to
//! the API, and the hooks other services call: read receipts and after-read timers when a
//! conversation is marked read ([`after_read`]), the message request response when a request
//! is accepted ([`accept_request`]).

use rand::RngCore;
use session_proto::account_id::AccountId;
use session_proto::groups::control::delete_member_content;
use session_proto::interaction::{
    extraction_content, reaction_content, read_receipt_content, request_response_content,
    timer_update_content, unsend_content, Expiry, ExpiryMode, Extraction, MessageRef,
    MAX_EMOJI_BYTES,
};
use session_proto::keys::IdentityKeys;
use session_proto::protos::Content;
use sessiond_api::v1::interaction_service_server::InteractionService;
use sessiond_api::v1::{
    event, Disappearing, DisappearingChanged, DisappearingMode, GetDisappearingRequest,
    GetDisappearingResponse, GetReadReceiptsRequest, GetReadReceiptsResponse,
    MessageRef as ApiMessageRef, MessageRemoved, Notice, NoticeKind as ApiNoticeKind, ReactRequest,
    ReactResponse, Reaction, RemovedReason as ApiRemovedReason, ReplyTo, SendDataExtractionRequest,
    SendDataExtractionResponse, SetDisappearingRequest, SetDisappearingResponse,
    SetReadReceiptsRequest, SetReadReceiptsResponse, UnsendRequest, UnsendResponse,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::groups::group_control;
use super::messages::{parse_conversation, parse_recipient};
use super::{now_ms, ApiError, Service, State};
use crate::address::Kind;
use crate::store::{
    ControlOut, EventKind, ExpirySetting, IdentityRecord, MessageExtras, NoticeKind, RemovedReason,
    ReplyRef,
};

/// The API form of a stored timer.
pub fn expiry_to_api(e: Option<ExpirySetting>) -> Disappearing {
    match e {
        Some(e) => Disappearing {
            mode: if e.after_read {
                DisappearingMode::AfterRead
            } else {
                DisappearingMode::AfterSend
            } as i32,
            seconds: e.seconds,
        },
        None => Disappearing::default(),
    }
}

/// A timer from the API: `None` for off (mode UNSPECIFIED or 0 seconds); INVALID_ARGUMENT for
/// an unknown mode or a timer over 14 days.
pub fn expiry_from_api(field: &'static str, d: &Disappearing) -> Result<Option<Expiry>, ApiError> {
    let mode = match DisappearingMode::try_from(d.mode) {
        Ok(DisappearingMode::Unspecified) => return Ok(None),
        Ok(DisappearingMode::AfterRead) => ExpiryMode::AfterRead,
        Ok(DisappearingMode::AfterSend) => ExpiryMode::AfterSend,
        Err(_) => return Err(ApiError::field(field, format!("unknown mode {}", d.mode))),
    };
    if d.seconds == 0 {
        return Ok(None);
    }
    Expiry::new(mode, d.seconds)
        .map(Some)
        .map_err(|why| ApiError::field(field, why))
}

/// A protocol timer as stored.
pub fn expiry_to_store(e: Expiry) -> ExpirySetting {
    ExpirySetting::from_protocol(e)
}

/// A stored timer for the protocol (`None` if it no longer passes the checks).
pub fn expiry_from_store(e: ExpirySetting) -> Option<Expiry> {
    e.to_protocol()
}

/// The API fields of a message's extras: reply_to, disappearing, expires_at_ms.
pub fn extras_to_api(x: MessageExtras) -> (Option<ReplyTo>, Option<Disappearing>, u64) {
    let reply = x.reply_to.map(|r| ReplyTo {
        sent_at_ms: r.sent_at_ms,
        author: r.author,
        seq: r.seq.unwrap_or(0),
        excerpt: r.excerpt.unwrap_or_default(),
    });
    (
        reply,
        x.expiry.map(|e| expiry_to_api(Some(e))),
        x.expires_at_ms.unwrap_or(0),
    )
}

/// The API form of the interaction events; `None` for the other kinds.
pub fn event_to_api(kind: EventKind) -> Option<event::Kind> {
    Some(match kind {
        EventKind::Reaction {
            conversation,
            author,
            target_sent_at_ms,
            target_author,
            target_seq,
            emoji,
            removed,
            removes_seq,
        } => event::Kind::Reaction(Reaction {
            conversation,
            author,
            target: Some(ApiMessageRef {
                sent_at_ms: target_sent_at_ms,
                author: target_author,
            }),
            target_seq,
            emoji,
            removed,
            removes_seq: removes_seq.unwrap_or(0),
        }),
        EventKind::Removed {
            conversation,
            removed_seq,
            sent_at_ms,
            author,
            reason,
            attachments,
        } => event::Kind::Removed(MessageRemoved {
            conversation,
            removed_seq,
            attachments,
            message: Some(ApiMessageRef { sent_at_ms, author }),
            reason: match reason {
                RemovedReason::Unsent => ApiRemovedReason::Unsent,
                RemovedReason::Expired => ApiRemovedReason::Expired,
                RemovedReason::Deleted => ApiRemovedReason::Deleted,
            } as i32,
        }),
        EventKind::Disappearing {
            conversation,
            author,
            expiry,
        } => event::Kind::Disappearing(DisappearingChanged {
            conversation,
            author,
            disappearing: Some(expiry_to_api(expiry)),
        }),
        EventKind::Notice {
            conversation,
            author,
            notice,
        } => {
            let (kind, reason) = match notice {
                NoticeKind::Screenshot => (ApiNoticeKind::Screenshot, String::new()),
                NoticeKind::MediaSaved => (ApiNoticeKind::MediaSaved, String::new()),
                NoticeKind::RequestAccepted => (ApiNoticeKind::RequestAccepted, String::new()),
                NoticeKind::RequestDeclined => (ApiNoticeKind::RequestDeclined, String::new()),
                NoticeKind::Ignored { reason } => (ApiNoticeKind::Ignored, reason),
            };
            event::Kind::Notice(Notice {
                conversation,
                author,
                kind: kind as i32,
                reason,
            })
        }
        _ => return None,
    })
}

/// A reply target from the API, checked: a non-zero timestamp and an Account ID.
pub fn reply_from_api(r: &ApiMessageRef) -> Result<ReplyRef, ApiError> {
    let author = parse_author("reply_to.author", &r.author)?;
    if r.sent_at_ms == 0 {
        return Err(ApiError::field("reply_to.sent_at_ms", "the timestamp is 0"));
    }
    Ok(ReplyRef {
        sent_at_ms: r.sent_at_ms,
        author,
        seq: None,
        excerpt: None,
    })
}

fn parse_author(field: &'static str, text: &str) -> Result<String, ApiError> {
    let id: AccountId = text
        .trim()
        .parse()
        .map_err(|e| ApiError::protocol(field, &e))?;
    Ok(id.to_string())
}

/// The identity's keys (its seed from the store).
pub fn keys_of(state: &State, record: &IdentityRecord) -> Result<IdentityKeys, ApiError> {
    let seed = state.store.identity_seed(&record.name)?;
    Ok(IdentityKeys::from_seed(&seed))
}

/// Where an interaction goes.
enum To {
    /// A one-to-one conversation.
    Peer(AccountId),
    /// A group (`03…`): its swarm's message namespace, encrypted with the group's key.
    Group(String),
}

impl To {
    /// The conversation's address in the store.
    fn conversation(&self) -> String {
        match self {
            To::Peer(peer) => peer.to_string(),
            To::Group(group) => group.clone(),
        }
    }
}

/// A control message for the outbox: `content` sealed for `recipient`, stored with the message
/// TTL.
pub fn control(
    state: &State,
    keys: &IdentityKeys,
    recipient: &AccountId,
    content: &Content,
    sent_at_ms: u64,
) -> Result<ControlOut, ApiError> {
    let payload = state.sealer.seal(keys, recipient, content, sent_at_ms)?;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    Ok(ControlOut {
        message_id: hex::encode(id),
        recipient: recipient.to_string(),
        payload,
        sent_at_ms,
        ttl_ms: state.message_ttl_ms,
        namespace: 0,
    })
}

/// After the user read `conversation` from past `from_seq` up to `to_seq`: starts the
/// after-read timers of the messages read and, in a one-to-one conversation, if the identity
/// sends read receipts, queues one for them (the apps send none in groups). Blocking.
pub fn after_read(
    state: &State,
    record: &IdentityRecord,
    conversation: &str,
    from_seq: u64,
    to_seq: u64,
) -> Result<(), ApiError> {
    let now = now_ms();
    let effects = state
        .store
        .messages_read(record.id, conversation, from_seq, to_seq, now)?;
    if effects.read_sent_at_ms.is_empty()
        || !state.store.identity_settings(record.id)?.read_receipts
    {
        return Ok(());
    }
    let Ok(peer) = parse_recipient("account_id", conversation) else {
        return Ok(());
    };
    let peer = &peer;
    let keys = keys_of(state, record)?;
    let content = read_receipt_content(&effects.read_sent_at_ms, now);
    let out = control(state, &keys, peer, &content, now)?;
    state.store.queue_control(record.id, out, None, now)?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// If the conversation with `peer` is a message request (the other side wrote, the identity
/// never accepted), queues the message request response the apps send on accepting. Call it
/// before the store accepts the conversation. Blocking.
pub fn accept_request(
    state: &State,
    record: &IdentityRecord,
    keys: &IdentityKeys,
    peer: &AccountId,
) -> Result<(), ApiError> {
    let Some(view) = state.store.conversation(record.id, &peer.to_string())? else {
        return Ok(());
    };
    let c = &view.conversation;
    if c.accepted || c.incoming_count == 0 {
        return Ok(());
    }
    let now = now_ms();
    let content = request_response_content(record.display_name.as_deref(), now);
    let out = control(state, keys, peer, &content, now)?;
    state.store.queue_control(record.id, out, None, now)?;
    state.outbox_wake.notify_one();
    Ok(())
}

#[tonic::async_trait]
impl InteractionService for Service {
    async fn react(&self, req: Request<ReactRequest>) -> Result<Response<ReactResponse>, Status> {
        let who = caller(&req)?;
        let ReactRequest {
            identity,
            conversation,
            target,
            emoji,
            remove,
        } = req.into_inner();
        // A one-to-one conversation (`05…`) or a group (`03…`).
        let to = match parse_conversation("conversation", &conversation)? {
            (group, Kind::Group) => To::Group(group),
            _ => To::Peer(parse_recipient("conversation", &conversation)?),
        };
        let target = target.ok_or_else(|| ApiError::field("target", "missing"))?;
        let author = parse_author("target.author", &target.author)?;
        if target.sent_at_ms == 0 {
            return Err(ApiError::field("target.sent_at_ms", "the timestamp is 0").into());
        }
        if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
            return Err(ApiError::field(
                "emoji",
                format!("1 to {MAX_EMOJI_BYTES} bytes, got {}", emoji.len()),
            )
            .into());
        }
        let seq = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let keys = keys_of(state, &record)?;
                let now = now_ms();
                let target_ref = MessageRef {
                    sent_at_ms: target.sent_at_ms,
                    author: author.clone(),
                };
                let conv = to.conversation();
                let expiry = state
                    .store
                    .disappearing(record.id, &conv)?
                    .and_then(expiry_from_store);
                let content = reaction_content(&target_ref, &emoji, remove, expiry, now);
                let out = match &to {
                    To::Peer(peer) => control(state, &keys, peer, &content, now)?,
                    To::Group(group) => group_control(state, &record, group, &content, now)?,
                };
                let event = state.store.react(
                    record.id,
                    &conv,
                    target.sent_at_ms,
                    &author,
                    &emoji,
                    remove,
                    out,
                    now,
                )?;
                Ok(event.seq)
            })
            .await?;
        self.state().outbox_wake.notify_one();
        Ok(Response::new(ReactResponse { seq }))
    }

    async fn unsend(
        &self,
        req: Request<UnsendRequest>,
    ) -> Result<Response<UnsendResponse>, Status> {
        let who = caller(&req)?;
        let UnsendRequest {
            identity,
            conversation,
            sent_at_ms,
        } = req.into_inner();
        let to = match parse_conversation("conversation", &conversation)? {
            (group, Kind::Group) => To::Group(group),
            _ => To::Peer(parse_recipient("conversation", &conversation)?),
        };
        if sent_at_ms == 0 {
            return Err(ApiError::field("sent_at_ms", "the timestamp is 0").into());
        }
        let seq = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let keys = keys_of(state, &record)?;
                let now = now_ms();
                let conv = to.conversation();
                let out = match &to {
                    To::Peer(peer) => {
                        let content = unsend_content(sent_at_ms, keys.account_id(), now);
                        control(state, &keys, peer, &content, now)?
                    }
                    // In a group the apps delete by the message's swarm hash
                    // (DeleteMemberContent, groups.md §6), so it must be stored first.
                    To::Group(group) => {
                        let hash = state
                            .store
                            .sent_hash(record.id, group, sent_at_ms)?
                            .ok_or_else(|| {
                                ApiError::FailedPrecondition(
                                    "the message has not reached the group's swarm yet; unsend \
                                     it once it is sent"
                                        .to_owned(),
                                )
                            })?;
                        let content = delete_member_content(None, &[], &[hash], now);
                        group_control(state, &record, group, &content, now)?
                    }
                };
                let event = state.store.unsend(record.id, &conv, sent_at_ms, out, now)?;
                Ok(event.seq)
            })
            .await?;
        self.state().outbox_wake.notify_one();
        Ok(Response::new(UnsendResponse { seq }))
    }

    async fn set_disappearing(
        &self,
        req: Request<SetDisappearingRequest>,
    ) -> Result<Response<SetDisappearingResponse>, Status> {
        let who = caller(&req)?;
        let SetDisappearingRequest {
            identity,
            conversation,
            disappearing,
        } = req.into_inner();
        let peer = parse_recipient("conversation", &conversation)?;
        let expiry = expiry_from_api("disappearing", &disappearing.unwrap_or_default())?;
        let seq = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let keys = keys_of(state, &record)?;
                let now = now_ms();
                let content = timer_update_content(expiry, now);
                let out = control(state, &keys, &peer, &content, now)?;
                let event = state.store.set_disappearing(
                    record.id,
                    &peer.to_string(),
                    expiry.map(expiry_to_store),
                    out,
                    now,
                )?;
                Ok(event.seq)
            })
            .await?;
        self.state().outbox_wake.notify_one();
        Ok(Response::new(SetDisappearingResponse { seq }))
    }

    async fn get_disappearing(
        &self,
        req: Request<GetDisappearingRequest>,
    ) -> Result<Response<GetDisappearingResponse>, Status> {
        let who = caller(&req)?;
        let GetDisappearingRequest {
            identity,
            conversation,
        } = req.into_inner();
        let peer = parse_recipient("conversation", &conversation)?;
        let setting = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.disappearing(record.id, &peer.to_string())?)
            })
            .await?;
        Ok(Response::new(GetDisappearingResponse {
            disappearing: Some(expiry_to_api(setting)),
        }))
    }

    async fn set_read_receipts(
        &self,
        req: Request<SetReadReceiptsRequest>,
    ) -> Result<Response<SetReadReceiptsResponse>, Status> {
        let who = caller(&req)?;
        let SetReadReceiptsRequest { identity, enabled } = req.into_inner();
        self.blocking(move |state| {
            let record = who.identity(state, "identity", &identity)?;
            let mut settings = state.store.identity_settings(record.id)?;
            settings.read_receipts = enabled;
            Ok(state.store.set_identity_settings(record.id, settings)?)
        })
        .await?;
        Ok(Response::new(SetReadReceiptsResponse {}))
    }

    async fn get_read_receipts(
        &self,
        req: Request<GetReadReceiptsRequest>,
    ) -> Result<Response<GetReadReceiptsResponse>, Status> {
        let who = caller(&req)?;
        let GetReadReceiptsRequest { identity } = req.into_inner();
        let enabled = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.identity_settings(record.id)?.read_receipts)
            })
            .await?;
        Ok(Response::new(GetReadReceiptsResponse { enabled }))
    }

    async fn send_data_extraction(
        &self,
        req: Request<SendDataExtractionRequest>,
    ) -> Result<Response<SendDataExtractionResponse>, Status> {
        let who = caller(&req)?;
        let SendDataExtractionRequest {
            identity,
            conversation,
            kind,
        } = req.into_inner();
        let peer = parse_recipient("conversation", &conversation)?;
        let kind = match ApiNoticeKind::try_from(kind) {
            Ok(ApiNoticeKind::Screenshot) => Extraction::Screenshot,
            Ok(ApiNoticeKind::MediaSaved) => Extraction::MediaSaved,
            _ => {
                return Err(ApiError::field(
                    "kind",
                    "NOTICE_KIND_SCREENSHOT or NOTICE_KIND_MEDIA_SAVED",
                )
                .into())
            }
        };
        self.blocking(move |state| {
            let record = who.identity(state, "identity", &identity)?;
            let keys = keys_of(state, &record)?;
            let now = now_ms();
            let content = extraction_content(kind, now, now);
            let out = control(state, &keys, &peer, &content, now)?;
            state.store.queue_control(record.id, out, None, now)?;
            Ok(())
        })
        .await?;
        self.state().outbox_wake.notify_one();
        Ok(Response::new(SendDataExtractionResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_convert_and_absurd_ones_are_refused() {
        let off = Disappearing::default();
        assert_eq!(expiry_from_api("d", &off).expect("ok"), None);
        let ten = Disappearing {
            mode: DisappearingMode::AfterSend as i32,
            seconds: 10,
        };
        let e = expiry_from_api("d", &ten).expect("ok").expect("on");
        assert_eq!(expiry_to_api(Some(expiry_to_store(e))), ten);
        assert_eq!(expiry_from_store(expiry_to_store(e)), Some(e));
        let absurd = Disappearing {
            mode: DisappearingMode::AfterRead as i32,
            seconds: u32::MAX,
        };
        assert!(expiry_from_api("d", &absurd).is_err());
        let unknown = Disappearing {
            mode: 9,
            seconds: 10,
        };
        assert!(expiry_from_api("d", &unknown).is_err());
    }
}
