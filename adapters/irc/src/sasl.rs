//! SASL PLAIN (RFC 4616) as carried by IRC's AUTHENTICATE: base64 chunks of 400 bytes.

use base64::Engine as _;

/// The longest AUTHENTICATE chunk; a chunk of exactly this length means more follows.
pub const CHUNK: usize = 400;
/// The most base64 a client may send in all its chunks together.
pub const MAX_PAYLOAD: usize = 4 * CHUNK;

/// The decoded PLAIN credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// The identity to act as (may be empty).
    pub authzid: String,
    /// The user name.
    pub authcid: String,
    /// The password: a sessiond token.
    pub passwd: String,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

impl Plain {
    /// The identity name the credentials ask for: the authzid if given, else the authcid.
    pub fn user(&self) -> Option<&str> {
        [&self.authzid, &self.authcid]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(String::as_str)
    }
}

/// Why a PLAIN payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// Not base64.
    #[error("the AUTHENTICATE payload is not base64")]
    Base64,
    /// Not `authzid NUL authcid NUL passwd` in UTF-8.
    #[error("the AUTHENTICATE payload is not PLAIN credentials")]
    Shape,
}

/// Decodes the joined base64 payload (`+` alone means empty).
pub fn decode_plain(b64: &str) -> Result<Plain, SaslError> {
    let raw = if b64 == "+" {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SaslError::Base64)?
    };
    let text = String::from_utf8(raw).map_err(|_| SaslError::Shape)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Shape);
    };
    if passwd.is_empty() {
        return Err(SaslError::Shape);
    }
    Ok(Plain {
        authzid: authzid.to_owned(),
        authcid: authcid.to_owned(),
        passwd: passwd.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn plain() {
        let p = decode_plain(&b64("\0alice\0tok")).expect("plain");
        assert_eq!((p.user(), p.passwd.as_str()), (Some("alice"), "tok"));
        let p = decode_plain(&b64("bob\0alice\0tok")).expect("plain");
        assert_eq!(p.user(), Some("bob"));
        assert_eq!(decode_plain(&b64("\0\0tok")).expect("plain").user(), None);
        assert_eq!(decode_plain("!!"), Err(SaslError::Base64));
        assert_eq!(decode_plain(&b64("a\0b")), Err(SaslError::Shape));
        assert_eq!(decode_plain(&b64("a\0b\0")), Err(SaslError::Shape));
        assert_eq!(decode_plain("+"), Err(SaslError::Shape));
        assert!(!format!("{:?}", decode_plain(&b64("\0a\0secret")).expect("p")).contains("secret"));
    }
}
