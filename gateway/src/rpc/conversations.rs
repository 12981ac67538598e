//! The ConversationService: conversations and contacts from the store (listed in pages, or one
//! by one); opening, leaving and marking conversations read; contact names and handles.

use sessiond_api::v1::conversation_service_server::ConversationService;
use sessiond_api::v1::{
    AccountCommunity, AccountGroup, BlockContactRequest, BlockContactResponse, Contact,
    Conversation, ConversationKind, GetContactRequest, GetContactResponse, GetConversationRequest,
    GetConversationResponse, LeaveConversationRequest, LeaveConversationResponse,
    ListAccountGroupsRequest, ListAccountGroupsResponse, ListContactsRequest, ListContactsResponse,
    ListConversationsRequest, ListConversationsResponse, MarkConversationReadRequest,
    MarkConversationReadResponse, OpenConversationRequest, OpenConversationResponse,
    SetContactHandleRequest, SetContactHandleResponse, SetContactNameRequest,
    SetContactNameResponse, UnblockContactRequest, UnblockContactResponse,
};
use tonic::{Request, Response, Status};

use super::auth::{caller, Caller};
use super::identities::validate_display_name;
use super::messages::{kind_to_api, parse_conversation, parse_recipient};
use super::{now_ms, page, ApiError, Service};
use crate::engine::configsync::Edit;
use crate::store::StoreError;
use crate::store::{handles, ContactRecord, ConversationView};

/// Longest contact name, in characters.
pub const MAX_CONTACT_NAME: usize = 100;

fn contact_to_api(c: ContactRecord) -> Contact {
    Contact {
        account_id: c.account_id,
        name: c.name.unwrap_or_default(),
        profile_name: c.profile_name.unwrap_or_default(),
        handle: c.handle.unwrap_or_default(),
        blocked: c.blocked,
        approved: c.approved,
        approved_me: c.approved_me,
    }
}

/// A conversation (joined with its contact) in the API's form.
pub(super) fn conversation_to_api(v: ConversationView) -> Conversation {
    let display_name = v.display_name().unwrap_or_default().to_owned();
    let c = v.conversation;
    let kind = kind_to_api(&c.address);
    let person = matches!(
        kind,
        ConversationKind::Direct | ConversationKind::CommunityDm
    );
    Conversation {
        account_id: if person {
            c.address.clone()
        } else {
            String::new()
        },
        conversation_id: c.address,
        kind: kind as i32,
        display_name,
        last_seq: c.last_seq,
        last_activity_ms: c.last_activity_ms,
        incoming_count: c.incoming_count,
        outgoing_count: c.outgoing_count,
        accepted: c.accepted,
        left: c.left,
        read_seq: c.read_seq,
        handle: v.contact.handle.unwrap_or_default(),
        unread: c.unread,
        blocked: v.contact.blocked,
        ..Default::default()
    }
}

/// Fills in a community DM's `community_account_id` from what its DMs revealed.
fn with_community_account(
    state: &super::State,
    identity: crate::store::IdentityId,
    mut c: Conversation,
) -> Result<Conversation, ApiError> {
    if c.kind == ConversationKind::CommunityDm as i32 {
        c.community_account_id = state
            .store
            .community_account(identity, &c.conversation_id)?
            .unwrap_or_default();
    }
    Ok(c)
}

/// Where a conversation sorts in ListConversations: most recent activity first, then the
/// newest message first, then by Account ID. Ascending in this key is the list's order.
fn conversation_key(c: &Conversation) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, &str) {
    (
        std::cmp::Reverse(c.last_activity_ms),
        std::cmp::Reverse(c.last_seq),
        c.conversation_id.as_str(),
    )
}

/// One page of `items` (already in list order): the first `size` items that `past` says lie
/// past the previous page's position, and whether more follow.
fn take_page<T>(items: Vec<T>, past: impl Fn(&T) -> bool, size: usize) -> (Vec<T>, bool) {
    let mut rest = items.into_iter().filter(|i| past(i));
    let page: Vec<T> = rest.by_ref().take(size).collect();
    let more = rest.next().is_some();
    (page, more)
}

#[tonic::async_trait]
impl ConversationService for Service {
    async fn list_conversations(
        &self,
        req: Request<ListConversationsRequest>,
    ) -> Result<Response<ListConversationsResponse>, Status> {
        let who = caller(&req)?;
        let ListConversationsRequest {
            identity,
            page_size,
            page_token,
        } = req.into_inner();
        let size = page::page_size(page_size)?;
        // The token: the identity, then the last conversation's activity, seq and Account ID.
        let after = match page::decode("conversations", &page_token, 4)? {
            Some(p) => {
                page::same(&p[0], &identity)?;
                Some((page::number(&p[1])?, page::number(&p[2])?, p[3].clone()))
            }
            None => None,
        };
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let mut all: Vec<Conversation> = state
                    .store
                    .conversations(record.id)?
                    .into_iter()
                    .map(conversation_to_api)
                    .collect();
                all.sort_by(|a, b| conversation_key(a).cmp(&conversation_key(b)));
                let (conversations, more) = take_page(
                    all,
                    |c| match &after {
                        None => true,
                        Some((activity, seq, peer)) => {
                            conversation_key(c)
                                > (
                                    std::cmp::Reverse(*activity),
                                    std::cmp::Reverse(*seq),
                                    peer.as_str(),
                                )
                        }
                    },
                    size,
                );
                let conversations = conversations
                    .into_iter()
                    .map(|c| with_community_account(state, record.id, c))
                    .collect::<Result<Vec<_>, _>>()?;
                let next_page_token = match conversations.last() {
                    Some(last) if more => page::encode(
                        "conversations",
                        &[
                            &identity,
                            &last.last_activity_ms.to_string(),
                            &last.last_seq.to_string(),
                            &last.conversation_id,
                        ],
                    ),
                    _ => String::new(),
                };
                Ok(ListConversationsResponse {
                    conversations,
                    next_page_token,
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_conversation(
        &self,
        req: Request<GetConversationRequest>,
    ) -> Result<Response<GetConversationResponse>, Status> {
        let who = caller(&req)?;
        let GetConversationRequest {
            identity,
            account_id,
        } = req.into_inner();
        let (peer, _) = parse_conversation("account_id", &account_id)?;
        let conversation = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let view = state.store.conversation(record.id, &peer)?.ok_or_else(|| {
                    ApiError::Store(StoreError::UnknownConversation { peer: peer.clone() })
                })?;
                with_community_account(state, record.id, conversation_to_api(view))
            })
            .await?;
        Ok(Response::new(GetConversationResponse {
            conversation: Some(conversation),
        }))
    }

    async fn list_contacts(
        &self,
        req: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        let who = caller(&req)?;
        let ListContactsRequest {
            identity,
            page_size,
            page_token,
        } = req.into_inner();
        let size = page::page_size(page_size)?;
        // The token: the identity, then the last contact's Account ID (contacts sort by it).
        let after = match page::decode("contacts", &page_token, 2)? {
            Some(p) => {
                page::same(&p[0], &identity)?;
                Some(p[1].clone())
            }
            None => None,
        };
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let all: Vec<Contact> = state
                    .store
                    .contacts(record.id)?
                    .into_iter()
                    .map(contact_to_api)
                    .collect();
                let (contacts, more) = take_page(
                    all,
                    |c| after.as_deref().is_none_or(|a| c.account_id.as_str() > a),
                    size,
                );
                let next_page_token = match contacts.last() {
                    Some(last) if more => page::encode("contacts", &[&identity, &last.account_id]),
                    _ => String::new(),
                };
                Ok(ListContactsResponse {
                    contacts,
                    next_page_token,
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_contact(
        &self,
        req: Request<GetContactRequest>,
    ) -> Result<Response<GetContactResponse>, Status> {
        let who = caller(&req)?;
        let GetContactRequest {
            identity,
            account_id,
        } = req.into_inner();
        let account_id = parse_recipient("account_id", &account_id)?.to_string();
        let contact = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                // The store answers a blank contact for an unknown one; Get says NOT_FOUND.
                state
                    .store
                    .contacts(record.id)?
                    .into_iter()
                    .find(|c| c.account_id == account_id)
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "{identity:?} has no contact {account_id}; ListContacts shows them"
                        ))
                    })
            })
            .await?;
        Ok(Response::new(GetContactResponse {
            contact: Some(contact_to_api(contact)),
        }))
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
                let _local = state.sync.local_change();
                let contact = state.store.set_contact_name(
                    record.id,
                    &account_id,
                    name.as_deref(),
                    now_ms(),
                )?;
                state.sync.edit(
                    record.id,
                    Edit::Nickname {
                        account_id: account_id.clone(),
                        nickname: name.clone(),
                    },
                );
                Ok(contact)
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
                let _local = state.sync.local_change();
                let contact =
                    state
                        .store
                        .set_contact_handle(record.id, &account_id, &handle, now_ms())?;
                state.sync.edit(
                    record.id,
                    Edit::AddContact {
                        account_id: account_id.clone(),
                    },
                );
                Ok(contact)
            })
            .await?;
        Ok(Response::new(SetContactHandleResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    async fn open_conversation(
        &self,
        req: Request<OpenConversationRequest>,
    ) -> Result<Response<OpenConversationResponse>, Status> {
        let who = caller(&req)?;
        let OpenConversationRequest {
            identity,
            account_id,
        } = req.into_inner();
        if let Ok((peer, crate::address::Kind::CommunityDm)) = crate::address::parse(&account_id) {
            return self.open_community_dm(who, identity, peer).await;
        }
        let peer_id = parse_recipient("account_id", &account_id)?;
        let peer = peer_id.to_string();
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let _local = state.sync.local_change();
                // Accepting a message request tells the other side, as the apps do.
                let keys = super::interactions::keys_of(state, &record)?;
                super::interactions::accept_request(state, &record, &keys, &peer_id)?;
                let view = state.store.open_conversation(record.id, &peer, now_ms())?;
                state.sync.edit(
                    record.id,
                    Edit::Accept {
                        account_id: peer.clone(),
                    },
                );
                Ok(view)
            })
            .await?;
        Ok(Response::new(OpenConversationResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }

    async fn leave_conversation(
        &self,
        req: Request<LeaveConversationRequest>,
    ) -> Result<Response<LeaveConversationResponse>, Status> {
        let who = caller(&req)?;
        let LeaveConversationRequest {
            identity,
            account_id,
        } = req.into_inner();
        let (peer, _) = parse_conversation("account_id", &account_id)?;
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let _local = state.sync.local_change();
                let view = state.store.leave_conversation(record.id, &peer, now_ms())?;
                state.sync.edit(
                    record.id,
                    Edit::Hide {
                        account_id: peer.clone(),
                    },
                );
                Ok(view)
            })
            .await?;
        Ok(Response::new(LeaveConversationResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }

    async fn mark_conversation_read(
        &self,
        req: Request<MarkConversationReadRequest>,
    ) -> Result<Response<MarkConversationReadResponse>, Status> {
        let who = caller(&req)?;
        let MarkConversationReadRequest {
            identity,
            account_id,
            seq,
        } = req.into_inner();
        let (peer, _) = parse_conversation("account_id", &account_id)?;
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let _local = state.sync.local_change();
                let before = state
                    .store
                    .conversation(record.id, &peer)?
                    .map_or(0, |v| v.conversation.read_seq);
                let view = state.store.mark_read(record.id, &peer, seq, now_ms())?;
                // Read receipts (if on) and after-read timers for what was newly read.
                let after = view.conversation.read_seq;
                super::interactions::after_read(state, &record, &peer, before, after)?;
                // The account's other devices keep read positions as message times.
                if let Some(read_ms) =
                    state
                        .store
                        .read_time(record.id, &peer, view.conversation.read_seq)?
                {
                    state.sync.edit(
                        record.id,
                        Edit::Read {
                            account_id: peer.clone(),
                            read_ms,
                        },
                    );
                }
                Ok(view)
            })
            .await?;
        Ok(Response::new(MarkConversationReadResponse {
            conversation: Some(conversation_to_api(view)),
        }))
    }

    async fn block_contact(
        &self,
        req: Request<BlockContactRequest>,
    ) -> Result<Response<BlockContactResponse>, Status> {
        let who = caller(&req)?;
        let BlockContactRequest {
            identity,
            account_id,
        } = req.into_inner();
        let contact = self.set_blocked(who, identity, &account_id, true).await?;
        Ok(Response::new(BlockContactResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    async fn unblock_contact(
        &self,
        req: Request<UnblockContactRequest>,
    ) -> Result<Response<UnblockContactResponse>, Status> {
        let who = caller(&req)?;
        let UnblockContactRequest {
            identity,
            account_id,
        } = req.into_inner();
        let contact = self.set_blocked(who, identity, &account_id, false).await?;
        Ok(Response::new(UnblockContactResponse {
            contact: Some(contact_to_api(contact)),
        }))
    }

    async fn list_account_groups(
        &self,
        req: Request<ListAccountGroupsRequest>,
    ) -> Result<Response<ListAccountGroupsResponse>, Status> {
        let who = caller(&req)?;
        let ListAccountGroupsRequest { identity } = req.into_inner();
        let out = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let status = state.sync.status(record.id);
                let mut groups: Vec<AccountGroup> = status
                    .groups
                    .iter()
                    .map(|g| AccountGroup {
                        group_id: g.id.to_string(),
                        name: g.name.clone(),
                        admin: g.admin_seed.is_some(),
                        invited: g.invited,
                        priority: g.priority,
                        joined_at: g.joined_at,
                        removed: g.removed_status != 0,
                    })
                    .collect();
                groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
                let mut communities: Vec<AccountCommunity> = status
                    .communities
                    .iter()
                    .map(|c| AccountCommunity {
                        address: format!("{}/{}", c.base_url, c.room.to_lowercase()),
                        base_url: c.base_url.clone(),
                        room: c.room.clone(),
                        server_pubkey: hex::encode(c.pubkey),
                        priority: c.priority,
                        joined_at: c.joined_at,
                    })
                    .collect();
                communities.sort_by(|a, b| a.address.cmp(&b.address));
                Ok(ListAccountGroupsResponse {
                    groups,
                    communities,
                    legacy_groups: u32::try_from(status.legacy_groups).unwrap_or(u32::MAX),
                })
            })
            .await?;
        Ok(Response::new(out))
    }
}

impl Service {
    /// Block or Unblock: the store, then the account's Contacts config.
    async fn set_blocked(
        &self,
        who: Caller,
        identity: String,
        account_id: &str,
        blocked: bool,
    ) -> Result<ContactRecord, Status> {
        let account_id = parse_recipient("account_id", account_id)?.to_string();
        Ok(self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                let _local = state.sync.local_change();
                let contact =
                    state
                        .store
                        .set_contact_blocked(record.id, &account_id, blocked, now_ms())?;
                state.sync.edit(
                    record.id,
                    Edit::Block {
                        account_id: account_id.clone(),
                        blocked,
                    },
                );
                Ok(contact)
            })
            .await?)
    }
}

impl Service {
    /// OpenConversation with a blinded ID (`15…`): a community DM with someone the identity has
    /// met on a joined community server (a poster, or someone who wrote to it). Opening
    /// accepts a DM request; nothing is sent (Session has no request responses for community
    /// DMs) and nothing goes to the account's config (it holds Account IDs only).
    async fn open_community_dm(
        &self,
        who: Caller,
        identity: String,
        peer: String,
    ) -> Result<Response<OpenConversationResponse>, Status> {
        let view = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                if state.store.community_peer(record.id, &peer)?.is_none() {
                    return Err(ApiError::NotFound(format!(
                        "account_id: {}… was not met in a joined community (no post or DM \
                         from it): a community DM needs the server it was met on",
                        peer.get(..10).unwrap_or(&peer)
                    )));
                }
                let view = state.store.open_conversation(record.id, &peer, now_ms())?;
                with_community_account(state, record.id, conversation_to_api(view))
            })
            .await?;
        Ok(Response::new(OpenConversationResponse {
            conversation: Some(view),
        }))
    }
}
