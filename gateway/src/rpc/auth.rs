//! Bearer-token auth: the admin token file, identity-scoped tokens, and the interceptor.
//!
//! Tokens are 32 random bytes in lowercase hex. The admin token lives in `admin.token` (0600) in
//! the data dir; identity-scoped tokens are stored only as their SHA-256 (a token has 256 bits of
//! entropy, so a fast hash is enough), so a copy of the database does not hand out access.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use super::err::ApiError;
use super::State;
use crate::store::{IdentityId, IdentityRecord, StoreError};

/// The admin token's file name in the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Who is calling, as the interceptor found from the token; put in the request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: everything.
    Admin,
    /// An identity-scoped token: only this identity.
    Identity(IdentityId),
}

/// A new random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 a token is stored and compared under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Reads `admin.token` from the data dir, creating it (0600) with a fresh token if missing.
pub fn load_or_create_admin_token(data_dir: &Path) -> Result<String, StoreError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let fs_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| StoreError::Fs { path, source }
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.len() < 32 {
                return Err(StoreError::Corrupt {
                    file: path,
                    detail: "the admin token is shorter than 32 characters; delete the file to \
                             get a new one"
                        .to_owned(),
                });
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(fs_err(&path))?;
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token();
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(fs_err(&path))?;
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(fs_err(&path))?;
            Ok(token)
        }
        Err(e) => Err(fs_err(&path)(e)),
    }
}

/// The bearer token of a request's metadata, if well-formed.
fn bearer(metadata: &MetadataMap) -> Result<&str, ApiError> {
    let value = metadata
        .get("authorization")
        .ok_or(ApiError::Unauthenticated(
        "missing `authorization: Bearer <token>` metadata; the admin token is in admin.token in \
         the daemon's data dir",
    ))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the authorization metadata is not ASCII text"))?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
    let value = value.trim_start();
    let (scheme, token) = value
        .split_once([' ', '\t'])
        .ok_or(ApiError::Unauthenticated(
            "the authorization metadata must be `Bearer <token>`",
        ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthenticated(
            "the authorization metadata must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// The interceptor: resolves the token to a [`Caller`] or answers UNAUTHENTICATED.
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    pub(super) state: Arc<State>,
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(req.metadata())?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

impl AuthInterceptor {
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        let token = bearer(metadata)?;
        let hash = token_hash(token);
        // Compare hashes, not tokens: the comparison time then says nothing about the token.
        if hash == self.state.admin_token_hash {
            return Ok(Caller::Admin);
        }
        match self.state.store.token(&hash)? {
            Some(record) => Ok(Caller::Identity(record.identity)),
            None => Err(ApiError::Unauthenticated(
                "unknown token; use the admin token from admin.token or one made by \
                 `sessiond identity token NAME`",
            )),
        }
    }
}

/// The caller of a request (set by the interceptor).
pub(super) fn caller<T>(req: &Request<T>) -> Result<Caller, ApiError> {
    req.extensions()
        .get::<Caller>()
        .copied()
        .ok_or(ApiError::Unauthenticated(
            "the request was not authenticated",
        ))
}

impl Caller {
    /// Fails unless the caller holds the admin token.
    pub(super) fn require_admin(self, what: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Identity(_) => Err(ApiError::PermissionDenied(format!(
                "{what} needs the admin token; an identity-scoped token cannot do it"
            ))),
        }
    }

    /// Looks up the identity `name` and checks the caller may reach it. A scoped token naming
    /// another identity (existing or not) gets PERMISSION_DENIED, so it learns nothing.
    pub(super) fn identity(
        self,
        state: &State,
        field: &'static str,
        name: &str,
    ) -> Result<IdentityRecord, ApiError> {
        if name.is_empty() {
            return Err(ApiError::field(field, "the identity name is empty"));
        }
        let denied = || {
            ApiError::PermissionDenied(format!(
                "this token is scoped to another identity and cannot reach {name:?}"
            ))
        };
        match state.store.identity(name) {
            Ok(record) => match self {
                Caller::Admin => Ok(record),
                Caller::Identity(id) if id == record.id => Ok(record),
                Caller::Identity(_) => Err(denied()),
            },
            Err(StoreError::UnknownIdentity { .. }) if self != Caller::Admin => Err(denied()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hash_stably() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn bearer_parsing() {
        let mut md = MetadataMap::new();
        assert!(matches!(bearer(&md), Err(ApiError::Unauthenticated(_))));
        md.insert("authorization", "Basic abc".parse().expect("ascii"));
        assert!(matches!(bearer(&md), Err(ApiError::Unauthenticated(_))));
        md.insert("authorization", "Bearer abc ".parse().expect("ascii"));
        assert_eq!(bearer(&md).expect("ok"), "abc");
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            md.insert(
                "authorization",
                format!("{scheme} abc").parse().expect("ascii"),
            );
            assert_eq!(bearer(&md).expect("any case"), "abc");
        }
        md.insert("authorization", "Bearerabc".parse().expect("ascii"));
        assert!(bearer(&md).is_err());
        md.insert("authorization", "Bearers abc".parse().expect("ascii"));
        assert!(bearer(&md).is_err());
    }

    #[test]
    fn admin_token_file_is_created_private_and_reused() {
        let dir = crate::store::tests::TempDir::new("admin-token");
        crate::store::prepare_dir(dir.path()).expect("dir");
        let t1 = load_or_create_admin_token(dir.path()).expect("create");
        let mode = fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let t2 = load_or_create_admin_token(dir.path()).expect("reuse");
        assert_eq!(t1, t2);
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "short").expect("write");
        assert!(load_or_create_admin_token(dir.path()).is_err());
    }
}
