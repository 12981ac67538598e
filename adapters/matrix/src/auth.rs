//! Login, logout, whoami, and the one auth extractor every other endpoint goes through.
//!
//! The Matrix password is a sessiond token (the identity's own, or the admin token with the
//! identity's name as the user). A login mints a new identity-scoped token with
//! `Identities.CreateToken` and hands it out as the access token, so access tokens are real
//! daemon tokens: persisted by the daemon, revoked by logout (`RevokeToken`), and every call the
//! adapter makes for a client carries the client's own token. The adapter never keeps a token.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::Extension;
use http::request::Parts;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use sessiond_api::client::{login as check_login, Client, LoginError};
use sessiond_api::v1::{CreateTokenRequest, Identity, RevokeTokenRequest, WhoAmIRequest};
use tonic::transport::Channel;
use tonic::Code;

use crate::err::MatrixError;
use crate::http::{Answer, Body, Json, Query};
use crate::ids::{device_id, parse_user, user_id, LocalUser};
use crate::state::{ConnChannel, Shared};

/// The CommunityService client (not among [`Client`]'s services).
pub(crate) type Rooms = sessiond_api::v1::community_service_client::CommunityServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        sessiond_api::client::Bearer,
    >,
>;

/// The CommunityService client on `channel` calling with `token` (`None` if the token cannot
/// be one).
pub(crate) fn rooms_client(channel: tonic::transport::Channel, token: &str) -> Option<Rooms> {
    let bearer = sessiond_api::client::Bearer::new(token)?;
    Some(
        sessiond_api::v1::community_service_client::CommunityServiceClient::new(
            tonic::service::interceptor::InterceptedService::new(channel, bearer),
        ),
    )
}

/// The caller of an authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    /// The access token (a daemon token).
    pub token: String,
    /// The daemon's services, calling with `token`.
    pub client: Client,
    /// The daemon's CommunityService, calling with `token`.
    pub rooms: Rooms,
    /// The identity, as `WhoAmI` described it for this request (its `last_seq` is the log's end
    /// when the request came in).
    pub identity: Identity,
    /// `@name:server`.
    pub user_id: String,
    /// The device id of the token.
    pub device_id: String,
}

impl Me {
    /// The identity's local name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The display name to show for the user.
    pub fn display_name(&self) -> &str {
        if self.identity.display_name.is_empty() {
            &self.identity.name
        } else {
            &self.identity.display_name
        }
    }

    /// True if `user` (a path parameter) is this user.
    pub fn is(&self, user: &str) -> bool {
        user == self.user_id
    }

    /// `Forbidden` unless `user` is this user.
    pub fn require_self(&self, user: &str) -> Result<(), MatrixError> {
        if self.is(user) {
            Ok(())
        } else {
            Err(MatrixError::Forbidden(
                "you can only do this for your own user".into(),
            ))
        }
    }
}

/// The one auth extractor: a handler that takes a [`Me`] needs an access token. The request's
/// token is checked with `WhoAmI` on every request, so a revoked token stops working at once.
/// The admin token is refused as an access token (it is a password here: log in with it).
#[axum::async_trait]
impl FromRequestParts<Arc<Shared>> for Me {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Me, MatrixError> {
        let query = Query::from_request_parts(parts, s).await?;
        let token = token(&parts.headers, &query).ok_or(MatrixError::MissingToken)?;
        let channel = s.channel(parts.extensions.get());
        authenticate(s, channel, token).await
    }
}

/// The access token: `Authorization: Bearer …`, else the `access_token` query parameter.
fn token<'a>(headers: &'a HeaderMap, query: &'a Query) -> Option<&'a str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    query.get("access_token").filter(|t| !t.is_empty())
}

async fn authenticate(s: &Shared, channel: Channel, token: &str) -> Result<Me, MatrixError> {
    let client = Client::new(channel.clone(), token).ok_or(MatrixError::UnknownToken)?;
    let who = client
        .identities
        .clone()
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|status| match status.code() {
            Code::Unauthenticated => MatrixError::UnknownToken,
            _ => MatrixError::from(status),
        })?
        .into_inner();
    if who.admin {
        return Err(MatrixError::UnknownToken);
    }
    let identity = who.identity.ok_or_else(|| {
        MatrixError::from(tonic::Status::internal(
            "WhoAmI named no identity for a scoped token",
        ))
    })?;
    Ok(Me {
        user_id: user_id(&identity.name, &s.config.server_name),
        device_id: device_id(token),
        token: token.to_owned(),
        rooms: rooms_client(channel, token).ok_or(MatrixError::UnknownToken)?,
        client,
        identity,
    })
}

/// `GET /_matrix/client/v3/login`: the one flow offered.
pub(crate) async fn login_flows() -> Json {
    Json(json!({ "flows": [ { "type": "m.login.password" } ] }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    identifier: Option<Identifier>,
    /// The pre-r0.4 spelling of `identifier.user`.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    initial_device_display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
}

/// `POST /_matrix/client/v3/login`: `m.login.password` with the identity's name (or full user
/// id) and a sessiond token as the password. Answers a fresh access token; the client's
/// `device_id` is not used (device ids are derived from access tokens, see [`device_id`]).
pub(crate) async fn login(
    State(s): State<Arc<Shared>>,
    conn: Option<Extension<ConnChannel>>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let body: LoginBody = body.json()?;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    if body.kind != "m.login.password" {
        return Err(MatrixError::UnsupportedLogin(format!(
            "login type {:?}; only m.login.password",
            body.kind
        )));
    }
    let user = match (&body.identifier, &body.user) {
        (Some(id), _) if id.kind != "m.id.user" => {
            return Err(MatrixError::UnsupportedLogin(format!(
                "identifier type {:?}; only m.id.user",
                id.kind
            )))
        }
        (Some(Identifier { user: Some(u), .. }), _) => u.as_str(),
        (_, Some(u)) => u.as_str(),
        _ => return Err(MatrixError::BadJson("no user in the login".into())),
    };
    let name = login_name(user, &s.config.server_name, host)?;
    let password = body
        .password
        .as_deref()
        .ok_or_else(|| MatrixError::BadJson("no password in the login".into()))?;
    let login = check_login(s.channel(conn.as_deref()), password, Some(&name))
        .await
        .map_err(|e| match e {
            LoginError::Daemon(status) => MatrixError::from(status),
            // Wrong token, unknown name, another identity's token: all the same to the client.
            _ => MatrixError::BadLogin,
        })?;
    let label = match body.initial_device_display_name.as_deref() {
        Some(d) if !d.trim().is_empty() => {
            format!("matrix: {}", d.chars().take(150).collect::<String>())
        }
        _ => "matrix".to_owned(),
    };
    let minted = login
        .client
        .identities
        .clone()
        .create_token(CreateTokenRequest {
            name: login.identity.name.clone(),
            label,
        })
        .await?
        .into_inner();
    let user_id = user_id(&minted.name, &s.config.server_name);
    tracing::info!(identity = %minted.name, "matrix: login");
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": minted.token,
        "device_id": device_id(&minted.token),
        "home_server": s.config.server_name,
    })))
}

/// The identity a login names: a bare localpart, or a full user id whose server part is this
/// server's name or the host the client reached it by (with or without the port): clients
/// such as matrix-commander build `@me:127.0.0.1` from the homeserver URL. Any other server
/// part is refused with words that say which forms work.
fn login_name(user: &str, server: &str, host: Option<&str>) -> Result<String, MatrixError> {
    let local = match user.strip_prefix('@') {
        Some(rest) => {
            let Some((local, part)) = rest.split_once(':') else {
                return Err(MatrixError::Forbidden(format!(
                    "{user:?} is not a user id: log in as @name:{server} or just name"
                )));
            };
            let ours = part == server
                || host.is_some_and(|h| {
                    part.eq_ignore_ascii_case(h) || part.eq_ignore_ascii_case(without_port(h))
                });
            if !ours {
                return Err(MatrixError::Forbidden(format!(
                    "{user:?} is not a user of this server (its name is {server}): \
                     log in as @{local}:{server} or just {local}"
                )));
            }
            local
        }
        None => user,
    };
    match parse_user(local, server, true) {
        Some(LocalUser::Identity(name)) => Ok(name),
        // A ghost (a contact's Account ID) or nothing: not an identity of this daemon.
        _ => Err(MatrixError::BadLogin),
    }
}

/// `host` of a `host:port` Host header (`[v6]:port` too); the header itself if it has no port.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => host,
    }
}

/// `POST /_matrix/client/v3/logout`: revokes the access token with the daemon.
pub(crate) async fn logout(me: Me) -> Answer {
    me.client
        .identities
        .clone()
        .revoke_token(RevokeTokenRequest {
            token: me.token.clone(),
        })
        .await?;
    tracing::info!(identity = %me.name(), "matrix: logout");
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/account/whoami`.
pub(crate) async fn whoami(me: Me) -> Json {
    Json(json!({ "user_id": me.user_id, "device_id": me.device_id, "is_guest": false }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        let name = |u: &str, host: Option<&str>| login_name(u, "localhost", host).ok();
        assert_eq!(name("me", None), Some("me".into()));
        assert_eq!(name("@me:localhost", None), Some("me".into()));
        assert_eq!(
            name("@me:127.0.0.1", Some("127.0.0.1:8008")),
            Some("me".into())
        );
        assert_eq!(
            name("@me:127.0.0.1:8008", Some("127.0.0.1:8008")),
            Some("me".into())
        );
        assert_eq!(name("@me:[::1]", Some("[::1]:8008")), Some("me".into()));
        assert_eq!(name("@me:example.org", Some("127.0.0.1:8008")), None);
        assert_eq!(name("@me", None), None);
        assert_eq!(
            name(&format!("@05{}:localhost", "ab".repeat(32)), None),
            None
        );
        let e = login_name("@me:example.org", "localhost", None)
            .expect_err("another server")
            .to_string();
        assert!(e.contains("@me:localhost"), "{e}");
    }
}
