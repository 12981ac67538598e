//! UserProfile (namespace 2): the account's display name and picture, Note-to-Self settings.
//!
//! Keys of `&`: `n` name (≤ 100 bytes, absent when empty), `p`/`q` picture URL and 32-byte key
//! (both or neither), `+` Note-to-Self priority, `e` Note-to-Self disappearing seconds, `M`
//! blinded message requests (1/0/absent); newer clients add `t`, `P`, `Q`, `T`, `s`, which are
//! kept as they are.

use super::data::{fields, Data};
use crate::err::ConfigError;

/// Longest display name or nickname, in bytes (libsession `MAX_NAME_LENGTH`).
pub const MAX_NAME_LENGTH: usize = 100;
/// Longest picture URL, in bytes (libsession `profile_pic::MAX_URL_LENGTH`).
pub const MAX_URL_LENGTH: usize = 223;

/// A profile picture: where to download it and the key to decrypt it with.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfilePic {
    /// Download URL.
    pub url: String,
    /// 32-byte decryption key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for ProfilePic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilePic")
            .field("url_len", &self.url.len())
            .finish_non_exhaustive()
    }
}

/// Reads a `p`/`q` pair: both present, URL non-empty, key 32 bytes.
pub(crate) fn read_pic(d: &Data, url_key: &[u8], key_key: &[u8]) -> Option<ProfilePic> {
    let url = fields::string(d, url_key).filter(|u| !u.is_empty())?;
    let key: [u8; 32] = fields::bytes(d, key_key)?.try_into().ok()?;
    Some(ProfilePic { url, key })
}

/// Writes a `p`/`q` pair, or removes both.
pub(crate) fn write_pic(d: &mut Data, pic: Option<&ProfilePic>) -> Result<(), ConfigError> {
    match pic {
        Some(p) if !p.url.is_empty() => {
            if p.url.len() > MAX_URL_LENGTH {
                return Err(ConfigError::Value("profile picture URL is too long"));
            }
            fields::set_bytes(d, b"p", p.url.as_bytes());
            fields::set_bytes(d, b"q", &p.key);
        }
        _ => {
            d.remove(&b"p"[..]);
            d.remove(&b"q"[..]);
        }
    }
    Ok(())
}

/// Checks a name's length.
pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    if name.len() > MAX_NAME_LENGTH {
        Err(ConfigError::Value("name is longer than 100 bytes"))
    } else {
        Ok(())
    }
}

/// The display name, if set.
pub fn name(d: &Data) -> Option<String> {
    fields::string(d, b"n").filter(|n| !n.is_empty())
}

/// Sets (or, when empty, removes) the display name.
pub fn set_name(d: &mut Data, name: &str) -> Result<(), ConfigError> {
    check_name(name)?;
    fields::set_nonempty(d, b"n", name.as_bytes());
    Ok(())
}

/// The profile picture. With the newer re-upload fields, `P`/`Q` win when `T` is later than `t`.
pub fn profile_pic(d: &Data) -> Option<ProfilePic> {
    let t = fields::int(d, b"t").unwrap_or(0);
    let t_reupload = fields::int(d, b"T").unwrap_or(0);
    if t_reupload > t {
        if let Some(p) = read_pic(d, b"P", b"Q") {
            return Some(p);
        }
    }
    read_pic(d, b"p", b"q")
}

/// Sets or clears the profile picture.
pub fn set_profile_pic(d: &mut Data, pic: Option<&ProfilePic>) -> Result<(), ConfigError> {
    write_pic(d, pic)
}

/// Note-to-Self priority: 0 normal, −1 hidden, > 0 pinned.
pub fn nts_priority(d: &Data) -> i64 {
    fields::int(d, b"+").unwrap_or(0)
}

/// Sets the Note-to-Self priority.
pub fn set_nts_priority(d: &mut Data, priority: i64) {
    fields::set_nonzero(d, b"+", priority);
}

/// Note-to-Self disappearing timer in seconds (0 = off).
pub fn nts_expiry_seconds(d: &Data) -> i64 {
    fields::int(d, b"e").unwrap_or(0).max(0)
}

/// Whether blinded (community) message requests are allowed, if set.
pub fn blinded_msgreqs(d: &Data) -> Option<bool> {
    fields::int(d, b"M").map(|v| v != 0)
}
