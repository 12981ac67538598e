//! The Conversations service: conversations and contacts from the store.

use sessiond_api::v1::conversations_server::Conversations;
use sessiond_api::v1::{
    Contact, Conversation, ListContactsRequest, ListContactsResponse, ListConversationsRequest,
    ListConversationsResponse, SetContactNameRequest, SetContactNameResponse,
};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::messages::parse_recipient;
use super::{ApiError, Service};
use crate::store::ContactRecord;

/// Longest contact name, in characters.
pub const MAX_CONTACT_NAME: usize = 100;

fn contact_to_api(c: ContactRecord) -> Contact {
    Contact {
        account_id: c.account_id,
        name: c.name.unwrap_or_default(),
        profile_name: c.profile_name.unwrap_or_default(),
        ..Default::default()
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
                let contacts = state.store.contacts(record.id)?;
                Ok(state
                    .store
                    .conversations(record.id)?
                    .into_iter()
                    .map(|c| {
                        let contact = contacts.iter().find(|k| k.account_id == c.peer);
                        let display_name = contact
                            .and_then(|k| k.name.clone().or_else(|| k.profile_name.clone()))
                            .unwrap_or_default();
                        Conversation {
                            account_id: c.peer,
                            display_name,
                            last_seq: c.last_seq,
                            last_activity_ms: c.last_activity_ms,
                            incoming_count: c.incoming_count,
                            outgoing_count: c.outgoing_count,
                            ..Default::default()
                        }
                    })
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
        let name = name.trim().to_owned();
        if name.chars().count() > MAX_CONTACT_NAME {
            return Err(ApiError::field(
                "name",
                format!("longer than {MAX_CONTACT_NAME} characters"),
            )
            .into());
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::field("name", "control characters are not allowed").into());
        }
        let contact = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let name = (!name.is_empty()).then_some(name.as_str());
                Ok(state.store.set_contact_name(record.id, &account_id, name)?)
            })
            .await?;
        Ok(Response::new(SetContactNameResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    // Transitional: replaced by the real implementations on the api branch.
    async fn set_contact_handle(
        &self,
        _req: Request<sessiond_api::v1::SetContactHandleRequest>,
    ) -> Result<Response<sessiond_api::v1::SetContactHandleResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn open(
        &self,
        _req: Request<sessiond_api::v1::OpenConversationRequest>,
    ) -> Result<Response<sessiond_api::v1::OpenConversationResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn leave(
        &self,
        _req: Request<sessiond_api::v1::LeaveConversationRequest>,
    ) -> Result<Response<sessiond_api::v1::LeaveConversationResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn mark_read(
        &self,
        _req: Request<sessiond_api::v1::MarkReadRequest>,
    ) -> Result<Response<sessiond_api::v1::MarkReadResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
}
