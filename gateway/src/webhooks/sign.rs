//! Webhook secrets and signatures in the Standard Webhooks scheme
//! (<https://www.standardwebhooks.com>): a secret is `whsec_` + base64 of its bytes; a request
//! carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, which is
//! `v1,` + base64(HMAC-SHA256(secret bytes, "<id>.<timestamp>.<body>")).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest secret bytes accepted (the scheme asks for 24 to 64).
pub const MIN_SECRET_BYTES: usize = 24;
/// The most secret bytes accepted.
pub const MAX_SECRET_BYTES: usize = 64;

/// Why a secret is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It lacks the prefix.
    #[error("a webhook secret starts with \"whsec_\" followed by base64")]
    NoPrefix,
    /// The rest is not base64.
    #[error("the part after \"whsec_\" is not base64")]
    NotBase64,
    /// Too short or too long.
    #[error("a webhook secret holds 24 to 64 bytes; this one holds {0}")]
    Length(usize),
}

/// A fresh random secret (32 bytes).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, SecretError> {
    let b64 = secret
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SecretError::NoPrefix)?;
    let bytes = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
        return Err(SecretError::Length(bytes.len()));
    }
    Ok(bytes)
}

/// The `webhook-signature` header value for a request.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body)))
}

fn mac(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Checks a `webhook-signature` header (space-separated `v1,<base64>` entries; one matching
/// is enough) in constant time per entry: what a receiver does.
pub fn verify(key: &[u8], id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|entry| {
        let Some(b64) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            return false;
        };
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        m.update(id.as_bytes());
        m.update(b".");
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        m.verify_slice(&given).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example: secret, id, timestamp, body and the
    /// signature every implementation must produce.
    #[test]
    fn matches_the_standard_webhooks_example() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bogus {sig}")
        ));
        assert!(!verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &sig
        ));
        assert!(!verify(&key, "msg_other", 1614265330, body, &sig));
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(secret_bytes("nope"), Err(SecretError::NoPrefix));
        assert_eq!(secret_bytes("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(secret_bytes("whsec_AAAA"), Err(SecretError::Length(3)));
        let fresh = new_secret();
        assert_eq!(secret_bytes(&fresh).expect("fresh").len(), 32);
        assert_ne!(fresh, new_secret());
    }
}
