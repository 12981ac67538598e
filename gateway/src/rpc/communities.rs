//! The CommunityService: joining, leaving and listing community rooms, reactions, deletions,
//! moderation and community DMs, over the engine's [`Communities`].

use std::sync::Arc;

use session_proto::community::Blind15Keys;
use session_proto::keys::IdentityKeys;
use sessiond_api::v1::community_service_server::CommunityService;
use sessiond_api::v1::{
    DeleteRoomMessageRequest, DeleteRoomMessageResponse, DeliveryState, GetRoomRequest,
    GetRoomResponse, JoinRoomRequest, JoinRoomResponse, LeaveRoomRequest, LeaveRoomResponse,
    ListRoomsRequest, ListRoomsResponse, ModerateRequest, ModerateResponse, ModerationAction,
    ReactToRoomMessageRequest, ReactToRoomMessageResponse, Room, SendDirectMessageRequest,
    SendDirectMessageResponse, SendMessageResponse,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::messages::validate_text;
use super::{page, ApiError, Service};
use crate::address::Kind;
use crate::engine::community::{parse_room_address, Communities, Moderation, RoomError};
use crate::store::RoomRecord;

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> ApiError {
        match e {
            RoomError::Store(e) => ApiError::Store(e),
            e => ApiError::protocol("community", &e),
        }
    }
}

/// A room in the API's form; `keys` gives the identity's blinded ID on the server.
fn room_to_api(r: RoomRecord, keys: &IdentityKeys) -> Room {
    let mut pubkey = [0u8; 32];
    let own_blinded_id = match hex::decode_to_slice(&r.pubkey, &mut pubkey) {
        Ok(()) => Blind15Keys::new(keys, &pubkey).id().to_string(),
        Err(_) => String::new(),
    };
    let s = r.state.unwrap_or_default();
    Room {
        join_url: format!("{}/{}?public_key={}", r.base_url, r.token, r.pubkey),
        room_id: r.address,
        token: r.token,
        name: s.name,
        description: s.description,
        read: s.read,
        write: s.write,
        moderator: s.moderator,
        admin: s.admin,
        moderators: s.moderators,
        active_users: s.active_users,
        own_blinded_id,
        last_poll_ms: r.last_poll_ms,
        last_error: r.last_error,
    }
}

/// Checks a room address field.
fn room_field(field: &'static str, room: &str) -> Result<(), ApiError> {
    match parse_room_address(room) {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            field,
            "not a community room address: expected <canonical base URL>/<lower-case room \
             token>, e.g. http://127.0.0.1:8080/lobby",
        )),
    }
}

impl Service {
    fn communities(&self) -> Result<Arc<Communities>, ApiError> {
        self.state.communities.clone().ok_or_else(|| {
            ApiError::Unavailable(
                "the daemon is offline: no community server can be reached".into(),
            )
        })
    }

    /// Checks the caller may reach `identity`; returns its keys.
    async fn community_identity(
        &self,
        who: super::auth::Caller,
        identity: &str,
    ) -> Result<IdentityKeys, ApiError> {
        let name = identity.to_owned();
        self.blocking(move |state| {
            let record = who.identity(state, "identity", &name)?;
            let seed = state.store.identity_seed(&record.name)?;
            Ok(IdentityKeys::from_seed(&seed))
        })
        .await
    }
}

impl Service {
    /// SendMessage to a community room (a post) or to a blinded ID met in a community (a DM):
    /// sent at once through onion v4, recorded as `Outgoing` + `Delivery` SENT. `None` when
    /// `recipient` is neither (the caller handles it). An idempotency key used before answers
    /// the first send's message (`duplicate`) and posts nothing: a client retrying a send
    /// whose answer it missed does not post twice. A send the server refused (or could not
    /// be reached for) leaves its key unused, so the retry posts.
    pub(super) async fn send_to_community(
        &self,
        who: super::auth::Caller,
        identity: &str,
        recipient: &str,
        text: &str,
        idempotency_key: &str,
    ) -> Result<Option<SendMessageResponse>, ApiError> {
        let kind = match crate::address::parse(recipient) {
            Ok((address, kind @ (Kind::CommunityRoom | Kind::CommunityDm))) => (address, kind),
            _ => return Ok(None),
        };
        let key = super::messages::validate_idempotency_key(idempotency_key)?;
        let (name, k) = (identity.to_owned(), key.clone());
        let (record_id, first) = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &name)?;
                let first = match k.as_deref() {
                    Some(k) => state.store.sent_key(record.id, k)?,
                    None => None,
                };
                Ok((record.id, first))
            })
            .await?;
        if let Some(first) = first {
            return Ok(Some(super::messages::duplicate(first)));
        }
        validate_text(text)?;
        let communities = self.communities()?;
        let sent = match kind {
            (address, Kind::CommunityRoom) => communities.post(identity, &address, text).await,
            (address, _) => communities.send_dm_to_known(identity, &address, text).await,
        };
        let sent = sent.map_err(|e| match e {
            RoomError::BadField { field, reason } => ApiError::field(field, reason),
            RoomError::ReadOnly { .. } => ApiError::PermissionDenied(e.to_string()),
            e => ApiError::from(e),
        })?;
        if let Some(key) = key {
            let first = crate::store::SentKey {
                message_id: sent.message_id.clone(),
                seq: sent.seq,
                sent_at_ms: sent.sent_at_ms,
            };
            self.blocking(move |state| {
                Ok(state.store.remember_sent_key(record_id, &key, &first)?)
            })
            .await?;
        }
        Ok(Some(SendMessageResponse {
            message_id: sent.message_id,
            seq: sent.seq,
            state: DeliveryState::Queued as i32,
            sent_at_ms: sent.sent_at_ms,
            duplicate: false,
        }))
    }
}

#[tonic::async_trait]
impl CommunityService for Service {
    async fn join_room(
        &self,
        req: Request<JoinRoomRequest>,
    ) -> Result<Response<JoinRoomResponse>, Status> {
        let who = caller(&req)?;
        let JoinRoomRequest { identity, url } = req.into_inner();
        let keys = self.community_identity(who, &identity).await?;
        if url.trim().is_empty() {
            return Err(ApiError::field(
                "url",
                "empty: give the room's full URL with ?public_key=",
            )
            .into());
        }
        let room = self
            .communities()?
            .join(&identity, &url)
            .await
            .map_err(|e| match e {
                RoomError::BadUrl(d) => ApiError::field("url", d),
                e => ApiError::from(e),
            })?;
        Ok(Response::new(JoinRoomResponse {
            room: Some(room_to_api(room, &keys)),
        }))
    }

    async fn leave_room(
        &self,
        req: Request<LeaveRoomRequest>,
    ) -> Result<Response<LeaveRoomResponse>, Status> {
        let who = caller(&req)?;
        let LeaveRoomRequest { identity, room_id } = req.into_inner();
        self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        let left = self
            .communities()?
            .leave(&identity, &room_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(LeaveRoomResponse { left }))
    }

    async fn list_rooms(
        &self,
        req: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        let who = caller(&req)?;
        let ListRoomsRequest {
            identity,
            page_size,
            page_token,
        } = req.into_inner();
        let size = page::page_size(page_size)?;
        let after = match page::decode("rooms", &page_token, 2)? {
            Some(p) => {
                page::same(&p[0], &identity)?;
                Some(p[1].clone())
            }
            None => None,
        };
        let keys = self.community_identity(who, &identity).await?;
        let name = identity.clone();
        let all = self
            .blocking(move |state| {
                let record = state.store.identity(&name)?;
                Ok(state.store.community_rooms(record.id)?)
            })
            .await?;
        let mut rest = all.into_iter().filter(|r| {
            after
                .as_ref()
                .is_none_or(|a| r.address.as_str() > a.as_str())
        });
        let rooms: Vec<Room> = rest
            .by_ref()
            .take(size)
            .map(|r| room_to_api(r, &keys))
            .collect();
        let next_page_token = match rooms.last() {
            Some(last) if rest.next().is_some() => {
                page::encode("rooms", &[&identity, &last.room_id])
            }
            _ => String::new(),
        };
        Ok(Response::new(ListRoomsResponse {
            rooms,
            next_page_token,
        }))
    }

    async fn get_room(
        &self,
        req: Request<GetRoomRequest>,
    ) -> Result<Response<GetRoomResponse>, Status> {
        let who = caller(&req)?;
        let GetRoomRequest { identity, room_id } = req.into_inner();
        let keys = self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        let (name, a) = (identity.clone(), room_id.clone());
        let room = self
            .blocking(move |state| {
                let record = state.store.identity(&name)?;
                Ok(state.store.community_room(record.id, &a)?)
            })
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{identity:?} has not joined {room_id}")))?;
        Ok(Response::new(GetRoomResponse {
            room: Some(room_to_api(room, &keys)),
        }))
    }

    async fn react_to_room_message(
        &self,
        req: Request<ReactToRoomMessageRequest>,
    ) -> Result<Response<ReactToRoomMessageResponse>, Status> {
        let who = caller(&req)?;
        let ReactToRoomMessageRequest {
            identity,
            room_id,
            server_message_id,
            emoji,
            remove,
        } = req.into_inner();
        self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        if server_message_id <= 0 {
            return Err(ApiError::field("server_message_id", "must be positive").into());
        }
        self.communities()?
            .react(&identity, &room_id, server_message_id, &emoji, !remove)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ReactToRoomMessageResponse {}))
    }

    async fn delete_room_message(
        &self,
        req: Request<DeleteRoomMessageRequest>,
    ) -> Result<Response<DeleteRoomMessageResponse>, Status> {
        let who = caller(&req)?;
        let DeleteRoomMessageRequest {
            identity,
            room_id,
            server_message_id,
        } = req.into_inner();
        self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        if server_message_id <= 0 {
            return Err(ApiError::field("server_message_id", "must be positive").into());
        }
        self.communities()?
            .delete(&identity, &room_id, server_message_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteRoomMessageResponse {}))
    }

    async fn moderate(
        &self,
        req: Request<ModerateRequest>,
    ) -> Result<Response<ModerateResponse>, Status> {
        let who = caller(&req)?;
        let ModerateRequest {
            identity,
            room_id,
            action,
            user,
            timeout_secs,
        } = req.into_inner();
        self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        let action = match ModerationAction::try_from(action) {
            Ok(ModerationAction::Ban) => Moderation::Ban { user, timeout_secs },
            Ok(ModerationAction::Unban) => Moderation::Unban { user },
            Ok(ModerationAction::DeleteAll) => Moderation::DeleteAll { user },
            _ => return Err(ApiError::field("action", "BAN, UNBAN or DELETE_ALL").into()),
        };
        self.communities()?
            .moderate(&identity, &room_id, &action)
            .await
            .map_err(|e| match e {
                RoomError::BadField { field, reason } => ApiError::field(field, reason),
                e => ApiError::from(e),
            })?;
        Ok(Response::new(ModerateResponse {}))
    }

    async fn send_direct_message(
        &self,
        req: Request<SendDirectMessageRequest>,
    ) -> Result<Response<SendDirectMessageResponse>, Status> {
        let who = caller(&req)?;
        let SendDirectMessageRequest {
            identity,
            room_id,
            recipient,
            text,
        } = req.into_inner();
        self.community_identity(who, &identity).await?;
        room_field("room_id", &room_id)?;
        validate_text(&text)?;
        let sent = self
            .communities()?
            .send_dm(&identity, &room_id, &recipient, &text)
            .await
            .map_err(|e| match e {
                RoomError::BadField { field, reason } => ApiError::field(field, reason),
                e => ApiError::from(e),
            })?;
        Ok(Response::new(SendDirectMessageResponse {
            message_id: sent.message_id,
            seq: sent.seq,
            server_message_id: sent.server_id,
        }))
    }
}
