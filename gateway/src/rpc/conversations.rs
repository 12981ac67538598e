//! The Conversations service: conversations and contacts from the store; opening, leaving and
//! marking conversations read; contact names and handles.

use sessiond_api::v1::conversations_server::Conversations;
use sessiond_api::v1::{
    Contact, Conversation, LeaveConversationRequest, LeaveConversationResponse,
    ListContactsRequest, ListContactsResponse, ListConversationsRequest, ListConversationsResponse,
    MarkReadRequest, MarkReadResponse, OpenConversationRequest, OpenConversationResponse,
    SetContactHandleRequest, SetContactHandleResponse, SetContactNameRequest,
    SetContactNameResponse,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::identities::validate_display_name;
use super::messages::parse_recipient;
use super::{now_ms, ApiError, Service};
use crate::store::{handles, ContactRecord, ConversationView};

/// Longest contact name, in characters.
pub const MAX_CONTACT_NAME: usize = 100;

fn contact_to_api(c: ContactRecord) -> Contact {
    Contact {
        account_id: c.account_id,
        name: c.name.unwrap_or_default(),
        profile_name: c.profile_name.unwrap_or_default(),
        handle: c.handle.unwrap_or_default(),
    }
}

/// A conversation (joined with its contact) in the API's form.
pub(super) fn conversation_to_api(v: ConversationView) -> Conversation {
    let display_name = v.display_name().unwrap_or_default().to_owned();
    let c = v.conversation;
    Conversation {
        account_id: c.peer,
        display_name,
        last_seq: c.last_seq,
        last_activity_ms: c.last_activity_ms,
        incoming_count: c.incoming_count,
        outgoing_count: c.outgoing_count,
        accepted: c.accepted,
        left: c.left,
        read_seq: c.read_seq,
        handle: v.contact.handle.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Conversations for Service {
    async fn list(
        &self,
        req: Request<ListConversationsRequest>,
    ) -> Result<Response<ListConversationsResponse>, Status> {
        let who = caller(&req)?;
        let identity = req.into_inner().identity;
        let conversations = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state
                    .store
                    .conversations(record.id)?
                    .into_iter()
                    .map(conversation_to_api)
                    .collect())
            })
            .await?;
        Ok(Response::new(ListConversationsResponse { conversations }))
    }

    async fn list_contacts(
        &self,
        req: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        let who = caller(&req)?;
        let identity = req.into_inner().identity;
        let contacts = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state
                    .store
                    .contacts(record.id)?
                    .into_iter()
                    .map(contact_to_api)
                    .collect())
            })
            .await?;
        Ok(Response::new(ListContactsResponse { contacts }))
    }

    async fn set_contact_name(
        &self,
        req: Request<SetContactNameRequest>,
    ) -> Result<Response<SetContactNameResponse>, Status> {
        let who = caller(&req)?;
        let SetContactNameRequest {
            identity,
            account_id,
            name,
        } = req.into_inner();
        let account_id = parse_recipient("account_id", &account_id)?.to_string();
        let name = validate_display_name("name", &name, MAX_CONTACT_NAME)?;
        let contact = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.set_contact_name(
                    record.id,
                    &account_id,
                    name.as_deref(),
                    now_ms(),
                )?)
            })
            .await?;
        Ok(Response::new(SetContactNameResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    async fn set_contact_handle(
        &self,
        req: Request<SetContactHandleRequest>,
    ) -> Result<Response<SetContactHandleResponse>, Status> {
        let who = caller(&req)?;
        let SetContactHandleRequest {
            identity,
            account_id,
            handle,
        } = req.into_inner();
        let account_id = parse_recipient("account_id", &account_id)?.to_string();
        handles::validate(&handle).map_err(|e| ApiError::field("handle", e.to_string()))?;
        let contact = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state
                    .store
                    .set_contact_handle(record.id, &account_id, &handle, now_ms())?)
            })
            .await?;
        Ok(Response::new(SetContactHandleResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    async fn open(
        &self,
        req: Request<OpenConversationRequest>,
    ) -> Result<Response<OpenConversationResponse>, Status> {
        let who = caller(&req)?;
        let OpenConversationRequest {
            identity,
            account_id,
        } = req.into_inner();
        let peer = parse_recipient("account_id", &account_id)?.to_string();
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.open_conversation(record.id, &peer, now_ms())?)
            })
            .await?;
        Ok(Response::new(OpenConversationResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }

    async fn leave(
        &self,
        req: Request<LeaveConversationRequest>,
    ) -> Result<Response<LeaveConversationResponse>, Status> {
        let who = caller(&req)?;
        let LeaveConversationRequest {
            identity,
            account_id,
        } = req.into_inner();
        let peer = parse_recipient("account_id", &account_id)?.to_string();
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.leave_conversation(record.id, &peer, now_ms())?)
            })
            .await?;
        Ok(Response::new(LeaveConversationResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }

    async fn mark_read(
        &self,
        req: Request<MarkReadRequest>,
    ) -> Result<Response<MarkReadResponse>, Status> {
        let who = caller(&req)?;
        let MarkReadRequest {
            identity,
            account_id,
            seq,
        } = req.into_inner();
        let peer = parse_recipient("account_id", &account_id)?.to_string();
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.mark_read(record.id, &peer, seq, now_ms())?)
            })
            .await?;
        Ok(Response::new(MarkReadResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }
}
