//! A Rust client of `sessiond.v1`: the four service clients behind one bearer token, and the
//! login check both adapters (and any other program) make before they act for an identity.

use std::sync::Arc;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::v1::attachment_service_client::AttachmentServiceClient;
use crate::v1::community_service_client::CommunityServiceClient;
use crate::v1::conversation_service_client::ConversationServiceClient;
use crate::v1::group_service_client::GroupServiceClient;
use crate::v1::identity_service_client::IdentityServiceClient;
use crate::v1::interaction_service_client::InteractionServiceClient;
use crate::v1::message_service_client::MessageServiceClient;
use crate::v1::network_service_client::NetworkServiceClient;
use crate::v1::webhook_service_client::WebhookServiceClient;
use crate::v1::{
    Contact, Conversation, GetIdentityRequest, Identity, ListContactsRequest,
    ListConversationsRequest, ListIdentitiesRequest, WhoAmIRequest,
};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.write_str("Bearer(…)")
    }
}

impl Bearer {
    /// The interceptor for `token`; `None` if the token is not printable ASCII (no sessiond
    /// token is, so such a token is simply wrong).
    pub fn new(token: &str) -> Option<Bearer> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        format!("Bearer {token}").parse().ok().map(Bearer)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel whose calls carry one token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// The `sessiond.v1` services, all calling with one token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    /// IdentityService: who the daemon holds, tokens, profiles.
    pub identities: IdentityServiceClient<Authed>,
    /// MessageService: send, subscribe, history, typing.
    pub messages: MessageServiceClient<Authed>,
    /// ConversationService: conversations and contacts.
    pub conversations: ConversationServiceClient<Authed>,
    /// NetworkService: network status and paths.
    pub network: NetworkServiceClient<Authed>,
    /// WebhookService: webhooks and their delivery state.
    pub webhooks: WebhookServiceClient<Authed>,
    /// GroupService: groups.
    pub groups: GroupServiceClient<Authed>,
    /// InteractionService: reactions, unsend, disappearing timers, read-receipt setting.
    pub interactions: InteractionServiceClient<Authed>,
    /// AttachmentService: files sent and received.
    pub attachments: AttachmentServiceClient<Authed>,
    /// CommunityService: community rooms, their reactions, deletions and DMs.
    pub communities: CommunityServiceClient<Authed>,
}

impl Client {
    /// Clients on `channel` that call with `token`; `None` if the token is not printable ASCII.
    pub fn new(channel: Channel, token: &str) -> Option<Client> {
        let bearer = Bearer::new(token)?;
        Some(Client {
            identities: IdentityServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            messages: MessageServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            conversations: ConversationServiceClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            ),
            network: NetworkServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            webhooks: WebhookServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            groups: GroupServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            interactions: InteractionServiceClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            ),
            attachments: AttachmentServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            communities: CommunityServiceClient::with_interceptor(channel, bearer),
        })
    }

    /// Every identity the token may see (all pages of ListIdentities), sorted by name.
    pub async fn all_identities(&self) -> Result<Vec<Identity>, Status> {
        all_pages(|page_token| async {
            let page = self
                .identities
                .clone()
                .list_identities(ListIdentitiesRequest {
                    page_size: MAX_PAGE_SIZE,
                    page_token,
                })
                .await?
                .into_inner();
            Ok((page.identities, page.next_page_token))
        })
        .await
    }

    /// Every conversation of `identity` (all pages of ListConversations), most recent first.
    pub async fn all_conversations(&self, identity: &str) -> Result<Vec<Conversation>, Status> {
        all_pages(|page_token| async {
            let page = self
                .conversations
                .clone()
                .list_conversations(ListConversationsRequest {
                    identity: identity.to_owned(),
                    page_size: MAX_PAGE_SIZE,
                    page_token,
                })
                .await?
                .into_inner();
            Ok((page.conversations, page.next_page_token))
        })
        .await
    }

    /// Every contact of `identity` (all pages of ListContacts), sorted by Account ID.
    pub async fn all_contacts(&self, identity: &str) -> Result<Vec<Contact>, Status> {
        all_pages(|page_token| async {
            let page = self
                .conversations
                .clone()
                .list_contacts(ListContactsRequest {
                    identity: identity.to_owned(),
                    page_size: MAX_PAGE_SIZE,
                    page_token,
                })
                .await?
                .into_inner();
            Ok((page.contacts, page.next_page_token))
        })
        .await
    }
}

/// Calls `page` with each `page_token` (the first empty) until a page comes back with no
/// `next_page_token`, and returns every item in order (AIP-158 paging).
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Status>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), Status>>,
{
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let (items, next) = page(page_token).await?;
        out.extend(items);
        if next.is_empty() {
            return Ok(out);
        }
        page_token = next;
    }
}

/// The largest page_size the daemon honours on every List call (larger values are treated as
/// this); 0 asks for [`DEFAULT_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: i32 = 1000;
/// The page size of a List call that gives page_size 0.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// Where an adapter gets the channel for each of its clients: one channel all share, or a new
/// connection per client (what the daemon gives its in-process adapters, so that what one
/// client's calls buffer in an HTTP/2 connection goes with that client instead of growing one
/// connection's tables for good).
#[derive(Clone)]
pub struct Connector(Arc<dyn Fn() -> Channel + Send + Sync>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    /// Every client calls through clones of `channel`.
    pub fn shared(channel: Channel) -> Connector {
        Connector(Arc::new(move || channel.clone()))
    }

    /// Every client gets the channel `make` returns when it starts.
    pub fn per_client(make: impl Fn() -> Channel + Send + Sync + 'static) -> Connector {
        Connector(Arc::new(make))
    }

    /// The channel for a client that starts now.
    pub fn channel(&self) -> Channel {
        (self.0)()
    }
}

impl From<Channel> for Connector {
    fn from(channel: Channel) -> Connector {
        Connector::shared(channel)
    }
}

/// A checked login: a client calling with the token, and the identity it acts for.
#[derive(Debug, Clone)]
pub struct Login {
    /// Calls with the login's token.
    pub client: Client,
    /// The identity this login acts for.
    pub identity: Identity,
    /// True if the token is the admin token (it reaches every identity).
    pub admin: bool,
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The daemon does not know the token (or it is malformed or revoked).
    #[error("the token is not valid")]
    BadToken,
    /// The admin token was given without saying which identity to act for.
    #[error("the admin token needs an identity name to act for")]
    IdentityNameRequired,
    /// The admin token named an identity the daemon does not hold.
    #[error("there is no identity named {0:?}")]
    UnknownIdentity(String),
    /// An identity-scoped token was given with the name of another identity.
    #[error("this token belongs to identity {token_identity:?}, not {requested:?}")]
    WrongIdentity {
        /// The identity the token reaches.
        token_identity: String,
        /// The name that was asked for.
        requested: String,
    },
    /// The daemon could not answer.
    #[error("the daemon did not answer the login check: {0}")]
    Daemon(Status),
}

/// Checks `token` with the daemon and picks the identity: an identity-scoped token acts for its
/// own identity (and `user`, if given, must name it); the admin token acts for the identity named
/// `user`, which is then required.
pub async fn login(channel: Channel, token: &str, user: Option<&str>) -> Result<Login, LoginError> {
    let client = Client::new(channel, token).ok_or(LoginError::BadToken)?;
    let who = client
        .identities
        .clone()
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|status| match status.code() {
            Code::Unauthenticated => LoginError::BadToken,
            _ => LoginError::Daemon(status),
        })?
        .into_inner();
    if !who.admin {
        let identity = who.identity.ok_or_else(|| {
            LoginError::Daemon(Status::internal(
                "WhoAmI named no identity for a scoped token",
            ))
        })?;
        if let Some(user) = user {
            if user != identity.name {
                return Err(LoginError::WrongIdentity {
                    token_identity: identity.name,
                    requested: user.to_owned(),
                });
            }
        }
        return Ok(Login {
            client,
            identity,
            admin: false,
        });
    }
    let user = user.ok_or(LoginError::IdentityNameRequired)?;
    let identity = client
        .identities
        .clone()
        .get_identity(GetIdentityRequest {
            name: user.to_owned(),
        })
        .await
        .map_err(|status| match status.code() {
            Code::NotFound | Code::InvalidArgument => LoginError::UnknownIdentity(user.to_owned()),
            _ => LoginError::Daemon(status),
        })?
        .into_inner()
        .identity
        .ok_or_else(|| LoginError::Daemon(Status::internal("GetIdentity answered no identity")))?;
    Ok(Login {
        client,
        identity,
        admin: true,
    })
}

/// True if `s` has the shape of a standard Session Account ID: `05` and 64 lowercase or
/// uppercase hex characters. (The daemon does the full check; this is for telling an Account ID
/// apart from a nick or a name.)
pub fn looks_like_account_id(s: &str) -> bool {
    s.len() == 66 && s.starts_with("05") && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True if `s` looks like a blinded community ID (`15` and 64 more hex characters): the
/// address of a community DM.
pub fn looks_like_blinded_id(s: &str) -> bool {
    s.len() == 66 && s.starts_with("15") && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_refuses_what_cannot_be_a_token() {
        assert!(Bearer::new("").is_none());
        assert!(Bearer::new("has space").is_none());
        assert!(Bearer::new("nul\0").is_none());
        assert!(Bearer::new("héllo").is_none());
        assert!(Bearer::new(&"ab".repeat(32)).is_some());
        assert_eq!(format!("{:?}", Bearer::new("secret").unwrap()), "Bearer(…)");
    }

    #[test]
    fn account_id_shape() {
        assert!(looks_like_account_id(&format!("05{}", "ab".repeat(32))));
        assert!(!looks_like_account_id(&format!("03{}", "ab".repeat(32))));
        assert!(!looks_like_account_id(&format!("05{}", "ab".repeat(31))));
        assert!(!looks_like_account_id(&format!("05{}g", "ab".repeat(31))));
        assert!(!looks_like_account_id("alice"));
    }
}
