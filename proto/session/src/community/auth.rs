//! X-SOGS-* request authentication (spec §1.3): signing on the client, checking on the server.
//!
//! Signed bytes: `server_pk(32) ‖ nonce(16) ‖ ascii(timestamp) ‖ METHOD ‖ PATH[?QUERY] ‖
//! [BLAKE2b-512(body) if the body is non-empty]`, signed with the blind15 key (headers carry
//! `15‖kA`) or, on servers that allow it, the plain Ed25519 key (`00‖A`). The path is the
//! URL-decoded path with the raw query; for `/batch` and `/sequence` the headers go once on the
//! outer request.
//!
//! | header | value |
//! |---|---|
//! | `X-SOGS-Pubkey` | 66 hex: `15‖kA` or `00‖A` |
//! | `X-SOGS-Nonce` | 16 random bytes, base64 (servers also take 32 hex) |
//! | `X-SOGS-Timestamp` | Unix seconds, decimal |
//! | `X-SOGS-Signature` | base64 of the 64-byte signature |

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use blake2::{Blake2b512, Digest};

use super::blinding::{verify_by_id, Blind15Keys, Blind15Nonce};
use crate::account_id::{AccountId, Prefix};
use crate::err::CommunityError;
use crate::keys::IdentityKeys;

/// `X-SOGS-Pubkey`.
pub const HEADER_PUBKEY: &str = "X-SOGS-Pubkey";
/// `X-SOGS-Nonce`.
pub const HEADER_NONCE: &str = "X-SOGS-Nonce";
/// `X-SOGS-Timestamp`.
pub const HEADER_TIMESTAMP: &str = "X-SOGS-Timestamp";
/// `X-SOGS-Signature`.
pub const HEADER_SIGNATURE: &str = "X-SOGS-Signature";
/// How far a request timestamp may be from the server's clock (pysogs: 24 h).
pub const MAX_CLOCK_SKEW_SECS: u64 = 24 * 3600;

/// Who signs a request.
#[derive(Debug, Clone, Copy)]
pub enum RequestSigner<'a> {
    /// The blind15 key for the server (what clients use; the server's key is in the keys).
    Blinded(&'a Blind15Keys),
    /// The plain Ed25519 key, for servers without the `blind` capability.
    Unblinded {
        /// The identity.
        keys: &'a IdentityKeys,
        /// The server's X25519 key.
        server_pk: &'a [u8; 32],
    },
}

/// The four header values of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SogsAuth {
    /// `X-SOGS-Pubkey`.
    pub pubkey: String,
    /// `X-SOGS-Nonce` (base64).
    pub nonce: String,
    /// `X-SOGS-Timestamp`.
    pub timestamp: String,
    /// `X-SOGS-Signature` (base64).
    pub signature: String,
}

impl SogsAuth {
    /// `(name, value)` for each of the four headers.
    pub fn headers(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_PUBKEY, &self.pubkey),
            (HEADER_NONCE, &self.nonce),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// Signs a request: `method` upper-case (`GET`), `path` with its query exactly as sent
/// (`/room/x/messages/since/5?t=r`), `body` the exact body bytes (empty for none).
pub fn sign_request(
    signer: RequestSigner<'_>,
    method: &str,
    path: &str,
    body: &[u8],
    nonce: &[u8; 16],
    timestamp_secs: u64,
) -> SogsAuth {
    let ts = timestamp_secs.to_string();
    let body_hash: Option<[u8; 64]> = (!body.is_empty()).then(|| Blake2b512::digest(body).into());
    let (pubkey, signature) = match signer {
        RequestSigner::Blinded(keys) => {
            let parts = message_parts(keys.server_pk(), nonce, &ts, method, path, &body_hash);
            (
                keys.id().to_string(),
                keys.sign_parts(Blind15Nonce::Desktop, &parts),
            )
        }
        RequestSigner::Unblinded { keys, server_pk } => {
            let parts = message_parts(server_pk, nonce, &ts, method, path, &body_hash);
            (
                AccountId::new(Prefix::Unblinded, *keys.ed25519_public()).to_string(),
                keys.sign_parts(&parts).to_bytes(),
            )
        }
    };
    SogsAuth {
        pubkey,
        nonce: STANDARD.encode(nonce),
        timestamp: ts,
        signature: STANDARD.encode(signature),
    }
}

fn message_parts<'a>(
    server_pk: &'a [u8; 32],
    nonce: &'a [u8; 16],
    ts: &'a str,
    method: &'a str,
    path: &'a str,
    body_hash: &'a Option<[u8; 64]>,
) -> Vec<&'a [u8]> {
    let mut parts: Vec<&[u8]> = vec![
        server_pk,
        nonce,
        ts.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
    ];
    if let Some(h) = body_hash {
        parts.push(h);
    }
    parts
}

/// The X-SOGS-* header values as a server received them (`None` = header absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthHeaders<'a> {
    /// `X-SOGS-Pubkey`.
    pub pubkey: Option<&'a str>,
    /// `X-SOGS-Nonce`.
    pub nonce: Option<&'a str>,
    /// `X-SOGS-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-SOGS-Signature`.
    pub signature: Option<&'a str>,
}

/// Well-formed auth headers whose signature is not yet checked; the server looks up bans and
/// nonces between [`parse_auth`] and [`ParsedAuth::verify`], as pysogs does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// `15‖kA` or `00‖A`.
    pub signer: AccountId,
    /// The 16-byte nonce.
    pub nonce: [u8; 16],
    /// The request timestamp, Unix seconds.
    pub timestamp: u64,
    signature: [u8; 64],
}

/// Checks the shape of the four headers and the timestamp window; `Ok(None)` when there are
/// none (an anonymous request). `require_blinded` refuses `00` keys (the `blind` capability).
pub fn parse_auth(
    h: &AuthHeaders<'_>,
    now_secs: u64,
    require_blinded: bool,
) -> Result<Option<ParsedAuth>, CommunityError> {
    let (pubkey, nonce, timestamp, signature) = match (h.pubkey, h.nonce, h.timestamp, h.signature)
    {
        (None, None, None, None) => return Ok(None),
        (Some(p), Some(n), Some(t), Some(s)) => (p, n, t, s),
        (p, n, t, _) => {
            let missing = if p.is_none() {
                HEADER_PUBKEY
            } else if n.is_none() {
                HEADER_NONCE
            } else if t.is_none() {
                HEADER_TIMESTAMP
            } else {
                HEADER_SIGNATURE
            };
            return Err(CommunityError::PartialAuth { missing });
        }
    };
    let bad = |header, reason| CommunityError::BadAuthHeader { header, reason };
    let signer = AccountId::parse_raw(pubkey)
        .map_err(|_| bad(HEADER_PUBKEY, "must be 66 hex characters"))?;
    match signer.prefix() {
        Some(Prefix::Blinded15) => {}
        Some(Prefix::Unblinded) if require_blinded => return Err(CommunityError::BlindingRequired),
        Some(Prefix::Unblinded) => {}
        _ => return Err(bad(HEADER_PUBKEY, "must start with 15 (or 00)")),
    }
    let nonce_bytes = match nonce.len() {
        32 => hex::decode(nonce).ok(),
        22 | 24 => decode_b64(nonce),
        _ => None,
    }
    .and_then(|b| <[u8; 16]>::try_from(b).ok())
    .ok_or(bad(HEADER_NONCE, "must be 16 bytes in base64 or hex"))?;
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(HEADER_TIMESTAMP, "must be Unix seconds in decimal"));
    }
    let ts: u64 = timestamp
        .parse()
        .map_err(|_| bad(HEADER_TIMESTAMP, "must be Unix seconds in decimal"))?;
    let skew = ts.abs_diff(now_secs);
    if skew > MAX_CLOCK_SKEW_SECS {
        return Err(CommunityError::TimestampSkew {
            skew_secs: skew,
            max_secs: MAX_CLOCK_SKEW_SECS,
        });
    }
    let signature = decode_b64(signature)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(bad(HEADER_SIGNATURE, "must be 64 bytes in base64"))?;
    Ok(Some(ParsedAuth {
        signer,
        nonce: nonce_bytes,
        timestamp: ts,
        signature,
    }))
}

impl ParsedAuth {
    /// Checks the signature over the request: `path` URL-decoded with the raw query.
    pub fn verify(
        &self,
        server_pk: &[u8; 32],
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), CommunityError> {
        let ts = self.timestamp.to_string();
        let body_hash: Option<[u8; 64]> =
            (!body.is_empty()).then(|| Blake2b512::digest(body).into());
        let msg = message_parts(server_pk, &self.nonce, &ts, method, path, &body_hash).concat();
        verify_by_id(&self.signer, &msg, &self.signature)
            .map_err(|_| CommunityError::BadSignature { what: "request" })
    }
}

/// Standard base64, padded or not (pysogs accepts both).
pub(crate) fn decode_b64(s: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(s)
        .ok()
        .or_else(|| STANDARD_NO_PAD.decode(s).ok())
}
