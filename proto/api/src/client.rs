//! A Rust client of `sessiond.v1`: the four service clients behind one bearer token, and the
//! login check both adapters (and any other program) make before they act for an identity.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::v1::conversations_client::ConversationsClient;
use crate::v1::identities_client::IdentitiesClient;
use crate::v1::messages_client::MessagesClient;
use crate::v1::network_client::NetworkClient;
use crate::v1::{Identity, ListIdentitiesRequest, WhoAmIRequest};

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

/// The four `sessiond.v1` services, all calling with one token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    /// Identities: who the daemon holds, tokens, profiles.
    pub identities: IdentitiesClient<Authed>,
    /// Messages: send, subscribe, history, typing.
    pub messages: MessagesClient<Authed>,
    /// Conversations and contacts.
    pub conversations: ConversationsClient<Authed>,
    /// Network status and paths.
    pub network: NetworkClient<Authed>,
}

impl Client {
    /// Clients on `channel` that call with `token`; `None` if the token is not printable ASCII.
    pub fn new(channel: Channel, token: &str) -> Option<Client> {
        let bearer = Bearer::new(token)?;
        Some(Client {
            identities: IdentitiesClient::with_interceptor(channel.clone(), bearer.clone()),
            messages: MessagesClient::with_interceptor(channel.clone(), bearer.clone()),
            conversations: ConversationsClient::with_interceptor(channel.clone(), bearer.clone()),
            network: NetworkClient::with_interceptor(channel, bearer),
        })
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
    let identities = client
        .identities
        .clone()
        .list(ListIdentitiesRequest {})
        .await
        .map_err(LoginError::Daemon)?
        .into_inner()
        .identities;
    let identity = identities
        .into_iter()
        .find(|i| i.name == user)
        .ok_or_else(|| LoginError::UnknownIdentity(user.to_owned()))?;
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
