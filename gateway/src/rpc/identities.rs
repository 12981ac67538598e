//! The IdentityService: create, restore, list, get, delete, export, identity-scoped tokens
//! (create, revoke, who am I), profiles.

use session_proto::keys::IdentityKeys;
use sessiond_api::v1::identity_service_server::IdentityService;
use sessiond_api::v1::{
    CreateIdentityRequest, CreateIdentityResponse, CreateTokenRequest, CreateTokenResponse,
    DeleteIdentityRequest, DeleteIdentityResponse, ExportRecoveryPasswordRequest,
    ExportRecoveryPasswordResponse, GetIdentityRequest, GetIdentityResponse, Identity,
    ListIdentitiesRequest, ListIdentitiesResponse, RestoreIdentityRequest, RestoreIdentityResponse,
    RevokeTokenRequest, RevokeTokenResponse, SetProfileRequest, SetProfileResponse, WhoAmIRequest,
    WhoAmIResponse,
};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::auth::{self, caller, Caller};
use super::{now_ms, page, ApiError, Service, State};
use crate::engine::configsync::Edit;
use crate::store::{IdentityRecord, Revoked, TokenRecord};

/// Longest identity name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest token label.
pub const MAX_LABEL_LEN: usize = 200;
/// Longest display name (SetProfile), in characters.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Longest string RevokeToken looks up; anything longer is no token of ours.
const MAX_TOKEN_LEN: usize = 256;

/// Checks a display name or contact name: at most `max` characters, no control characters.
/// Returns it trimmed, `None` if empty.
pub fn validate_display_name(
    field: &'static str,
    name: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let name = name.trim();
    let len = name.chars().count();
    if len > max {
        return Err(ApiError::field(
            field,
            format!("{len} characters; the limit is {max}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(field, "control characters are not allowed"));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// Checks an identity name: 1 to 64 characters from `[A-Za-z0-9._-]`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::field(field, "the name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::field(
            field,
            format!("the name is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ApiError::field(
            field,
            format!("{c:?} is not allowed; use letters, digits, '.', '_' and '-'"),
        ));
    }
    Ok(())
}

/// The incarnation of an identity's event log (`Identity.log_epoch`): derived from what makes
/// this identity record unique (its store number, which is never reused in a store, its
/// creation time and Account ID), so an identity deleted and added again under the same name,
/// or the same account in a fresh data dir, has another epoch. Never 0 (0 means "no epoch" in
/// requests).
pub fn log_epoch(record: &IdentityRecord) -> u64 {
    let mut h = Sha256::new();
    h.update(b"sessiond log epoch\0");
    h.update(record.id.to_be_bytes());
    h.update(record.created_at_ms.to_be_bytes());
    h.update(record.account_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Positive in an i64 too, for clients whose JSON or integers are signed; never 0.
    (u64::from_be_bytes(first) >> 1).max(1)
}

fn to_api(state: &State, record: IdentityRecord) -> Result<Identity, ApiError> {
    let last_seq = state.store.last_seq(record.id)?;
    let sync = state.sync.status(record.id);
    Ok(Identity {
        configs_pulled: sync.pulled,
        other_device_keys: sync.other_device_keys,
        log_epoch: log_epoch(&record),
        name: record.name,
        account_id: record.account_id,
        created_at_ms: record.created_at_ms,
        last_seq,
        display_name: record.display_name.unwrap_or_default(),
    })
}

fn add(state: &State, name: &str, keys: &IdentityKeys) -> Result<Identity, ApiError> {
    let record =
        state
            .store
            .add_identity(name, &keys.account_id().to_string(), keys.seed(), now_ms())?;
    tracing::info!(identity = %record.name, "identity added");
    state.identities_changed.notify_one();
    to_api(state, record)
}

#[tonic::async_trait]
impl IdentityService for Service {
    async fn create_identity(
        &self,
        req: Request<CreateIdentityRequest>,
    ) -> Result<Response<CreateIdentityResponse>, Status> {
        caller(&req)?.require_admin("creating an identity")?;
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let out = self
            .blocking(move |state| {
                let keys = IdentityKeys::generate(&mut rand::rngs::OsRng);
                let password = keys.recovery_password().ok_or_else(|| {
                    ApiError::Internal("a generated seed has no recovery password".into())
                })?;
                let identity = add(state, &name, &keys)?;
                Ok(CreateIdentityResponse {
                    identity: Some(identity),
                    recovery_password: password.to_string(),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn restore_identity(
        &self,
        req: Request<RestoreIdentityRequest>,
    ) -> Result<Response<RestoreIdentityResponse>, Status> {
        caller(&req)?.require_admin("restoring an identity")?;
        let RestoreIdentityRequest {
            name,
            recovery_password,
        } = req.into_inner();
        let recovery_password = zeroize::Zeroizing::new(recovery_password);
        validate_name("name", &name)?;
        let keys = IdentityKeys::from_recovery_password(&recovery_password)
            .map_err(|e| ApiError::protocol("recovery_password", &e))?;
        let identity = self.blocking(move |state| add(state, &name, &keys)).await?;
        Ok(Response::new(RestoreIdentityResponse {
            identity: Some(identity),
        }))
    }

    async fn list_identities(
        &self,
        req: Request<ListIdentitiesRequest>,
    ) -> Result<Response<ListIdentitiesResponse>, Status> {
        let who = caller(&req)?;
        let ListIdentitiesRequest {
            page_size,
            page_token,
        } = req.into_inner();
        let size = page::page_size(page_size)?;
        // The token is the name of the last identity of the previous page (names sort).
        let after = page::decode("identities", &page_token, 1)?.map(|mut p| p.remove(0));
        let out = self
            .blocking(move |state| {
                let mut rest = state.store.identities()?.into_iter().filter(|r| {
                    (match who {
                        Caller::Admin => true,
                        Caller::Identity(id) => r.id == id,
                    }) && after.as_deref().is_none_or(|after| r.name.as_str() > after)
                });
                let mut identities = Vec::new();
                for r in rest.by_ref().take(size) {
                    identities.push(to_api(state, r)?);
                }
                let next_page_token = match (rest.next(), identities.last()) {
                    (Some(_), Some(last)) => page::encode("identities", &[&last.name]),
                    _ => String::new(),
                };
                Ok(ListIdentitiesResponse {
                    identities,
                    next_page_token,
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_identity(
        &self,
        req: Request<GetIdentityRequest>,
    ) -> Result<Response<GetIdentityResponse>, Status> {
        let who = caller(&req)?;
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let identity = self
            .blocking(move |state| {
                let record = who.identity(state, "name", &name)?;
                to_api(state, record)
            })
            .await?;
        Ok(Response::new(GetIdentityResponse {
            identity: Some(identity),
        }))
    }

    async fn delete_identity(
        &self,
        req: Request<DeleteIdentityRequest>,
    ) -> Result<Response<DeleteIdentityResponse>, Status> {
        caller(&req)?.require_admin("deleting an identity")?;
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let record = self
            .blocking(move |state| Ok(state.store.remove_identity(&name)?))
            .await?;
        tracing::info!(identity = %record.name, "identity removed");
        self.state().sync.forget(record.id);
        self.state().identities_changed.notify_one();
        Ok(Response::new(DeleteIdentityResponse {
            account_id: record.account_id,
        }))
    }

    async fn export_recovery_password(
        &self,
        req: Request<ExportRecoveryPasswordRequest>,
    ) -> Result<Response<ExportRecoveryPasswordResponse>, Status> {
        caller(&req)?.require_admin("exporting a recovery password")?;
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let password = self
            .blocking(move |state| {
                let seed = state.store.identity_seed(&name)?;
                let keys = IdentityKeys::from_seed(&seed);
                keys.recovery_password().ok_or_else(|| {
                    ApiError::field(
                        "name",
                        "this identity's seed has no recovery password (it was not made from a \
                         16-byte seed)",
                    )
                })
            })
            .await?;
        Ok(Response::new(ExportRecoveryPasswordResponse {
            recovery_password: password.to_string(),
        }))
    }

    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let who = caller(&req)?;
        let CreateTokenRequest { name, label } = req.into_inner();
        validate_name("name", &name)?;
        if label.chars().count() > MAX_LABEL_LEN {
            return Err(ApiError::field(
                "label",
                format!("longer than {MAX_LABEL_LEN} characters"),
            )
            .into());
        }
        let out = self
            .blocking(move |state| {
                // The admin reaches any identity; a scoped token only its own.
                let record = who.identity(state, "name", &name)?;
                let token = auth::new_token();
                state.store.add_token(
                    &auth::token_hash(&token),
                    &TokenRecord {
                        identity: record.id,
                        label,
                        created_at_ms: now_ms(),
                    },
                )?;
                tracing::info!(identity = %record.name, "identity-scoped token created");
                Ok(CreateTokenResponse {
                    token,
                    name: record.name,
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn who_am_i(
        &self,
        req: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let out = match caller(&req)? {
            Caller::Admin => WhoAmIResponse {
                admin: true,
                identity: None,
            },
            Caller::Identity(id) => {
                self.blocking(move |state| {
                    let record = state.store.identity_by_id(id)?;
                    Ok(WhoAmIResponse {
                        admin: false,
                        identity: Some(to_api(state, record)?),
                    })
                })
                .await?
            }
        };
        Ok(Response::new(out))
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let who = caller(&req)?;
        let token = req.into_inner().token;
        let token = token.trim();
        let hash = auth::token_hash(token);
        if hash == self.state().admin_token_hash {
            return Err(ApiError::field(
                "token",
                "the admin token cannot be revoked here; delete admin.token in the data dir and \
                 restart the daemon to get a new one",
            )
            .into());
        }
        // Not a token we could have made: nothing to revoke.
        if token.is_empty()
            || token.len() > MAX_TOKEN_LEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Ok(Response::new(RevokeTokenResponse { revoked: false }));
        }
        let scope = match who {
            Caller::Admin => None,
            Caller::Identity(id) => Some(id),
        };
        let outcome = self
            .blocking(move |state| Ok(state.store.revoke_token(&hash, scope)?))
            .await?;
        let revoked = match outcome {
            Revoked::Revoked(record) => {
                let name = self
                    .blocking(move |state| Ok(state.store.identity_by_id(record.identity)?.name))
                    .await
                    .unwrap_or_default();
                tracing::info!(identity = %name, label = %record.label, "identity-scoped token revoked");
                true
            }
            Revoked::Unknown => false,
            Revoked::OtherIdentity => {
                return Err(ApiError::PermissionDenied(
                    "this token belongs to another identity; a scoped token may only revoke \
                     tokens of its own identity"
                        .to_owned(),
                )
                .into())
            }
        };
        Ok(Response::new(RevokeTokenResponse { revoked }))
    }

    async fn set_profile(
        &self,
        req: Request<SetProfileRequest>,
    ) -> Result<Response<SetProfileResponse>, Status> {
        let who = caller(&req)?;
        let SetProfileRequest { name, display_name } = req.into_inner();
        validate_name("name", &name)?;
        let display_name = validate_display_name("display_name", &display_name, MAX_DISPLAY_NAME)?;
        let identity = self
            .blocking(move |state| {
                let record = who.identity(state, "name", &name)?;
                let _local = state.sync.local_change();
                let record = state
                    .store
                    .set_display_name(&record.name, display_name.as_deref())?;
                state.sync.edit(
                    record.id,
                    Edit::Profile {
                        name: display_name.clone(),
                    },
                );
                to_api(state, record)
            })
            .await?;
        Ok(Response::new(SetProfileResponse {
            identity: Some(identity),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "Bob-2", "x.y_z", &"n".repeat(64)] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", &"n".repeat(65)] {
            assert!(validate_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names() {
        let ok = |s: &str| validate_display_name("display_name", s, MAX_DISPLAY_NAME);
        assert_eq!(
            ok("  Alice Smith ").expect("ok").as_deref(),
            Some("Alice Smith")
        );
        assert_eq!(ok("").expect("ok"), None);
        assert_eq!(ok("   ").expect("ok"), None);
        assert!(ok(&"é".repeat(100)).is_ok());
        assert!(ok(&"é".repeat(101)).is_err());
        assert!(ok("a\u{7}b").is_err());
        assert!(ok("two\nlines").is_err());
    }
}
