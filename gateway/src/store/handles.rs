//! Contact handles: the rule for a valid handle and how the daemon derives one for a new contact.
//!
//! A handle is 1 to [`MAX_HANDLE`] characters from `[A-Za-z0-9_-]`, starts with an ASCII letter
//! and is not a reserved word ([`RESERVED`], compared case-insensitively). Handles are unique per
//! identity, compared case-insensitively: the store's `contact_handles` index is keyed by
//! [`index_key`].
//!
//! Derivation ([`base`], then [`candidate`] until one is free): the contact's local name, else
//! its profile name, else `s` and the first 8 hex characters of its Account ID after the `05`
//! prefix; sanitised by [`sanitise`]; on a clash (or a reserved word) `2`, `3`, … is appended,
//! the base cut short so the whole stays within [`MAX_HANDLE`].

/// The longest handle, in characters (all ASCII, so also in bytes).
pub const MAX_HANDLE: usize = 30;
/// Handles no contact may have (compared case-insensitively): the IRC adapter's own user.
pub const RESERVED: &[&str] = &["root"];
/// How many hex characters of the Account ID (after `05`) the fallback handle takes.
const ACCOUNT_CHARS: usize = 8;

/// Why a handle is not valid; the text says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// Empty.
    #[error("the handle is empty")]
    Empty,
    /// Longer than [`MAX_HANDLE`].
    #[error("the handle is {len} characters long; the limit is {MAX_HANDLE}")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("{0:?} is not allowed in a handle; use letters, digits, '_' and '-'")]
    BadChar(char),
    /// Does not start with a letter.
    #[error("a handle starts with a letter (A-Z, a-z)")]
    BadStart,
    /// A reserved word.
    #[error("{0:?} is reserved")]
    Reserved(String),
}

/// Checks a handle against the rule.
pub fn validate(handle: &str) -> Result<(), HandleError> {
    let first = handle.chars().next().ok_or(HandleError::Empty)?;
    let len = handle.chars().count();
    if len > MAX_HANDLE {
        return Err(HandleError::TooLong { len });
    }
    if let Some(c) = handle.chars().find(|&c| !allowed(c)) {
        return Err(HandleError::BadChar(c));
    }
    if !first.is_ascii_alphabetic() {
        return Err(HandleError::BadStart);
    }
    if is_reserved(handle) {
        return Err(HandleError::Reserved(handle.to_owned()));
    }
    Ok(())
}

/// The key a handle is unique under: its ASCII lowercase form.
pub fn index_key(handle: &str) -> String {
    handle.to_ascii_lowercase()
}

/// Whether `handle` is a reserved word.
pub fn is_reserved(handle: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(handle))
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Makes a handle base out of a free-form name: letters, digits, `_` and `-` are kept, runs of
/// whitespace become one `_`, everything else is dropped; leading characters up to the first
/// letter and trailing `_`/`-` are removed; the result is cut to [`MAX_HANDLE`]. `None` if
/// nothing is left.
pub fn sanitise(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        if !allowed(c) {
            continue;
        }
        if out.is_empty() && !c.is_ascii_alphabetic() {
            gap = false;
            continue;
        }
        if gap && !out.is_empty() {
            out.push('_');
        }
        gap = false;
        out.push(c);
    }
    out.truncate(MAX_HANDLE);
    let trimmed = out.trim_end_matches(['_', '-']);
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The base a new contact's handle is derived from: its local name, else its profile name, else
/// `s` and the start of its Account ID (after `05`).
pub fn base(name: Option<&str>, profile_name: Option<&str>, account_id: &str) -> String {
    name.and_then(sanitise)
        .or_else(|| profile_name.and_then(sanitise))
        .unwrap_or_else(|| {
            let hex = account_id.get(2..).unwrap_or(account_id);
            let start: String = hex
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(ACCOUNT_CHARS)
                .collect();
            format!("s{start}")
        })
}

/// The `n`th candidate for `base` (`n` from 1): the base itself, then the base with `n`
/// appended, the base cut so the whole fits [`MAX_HANDLE`].
pub fn candidate(base: &str, n: u32) -> String {
    if n <= 1 {
        let mut b = base.to_owned();
        b.truncate(MAX_HANDLE);
        return b;
    }
    let suffix = n.to_string();
    let keep = MAX_HANDLE.saturating_sub(suffix.len());
    let mut out: String = base.chars().take(keep).collect();
    out.push_str(&suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "05a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn validation() {
        for ok in ["a", "Alice", "bob_2", "x-y", "rooted", &"h".repeat(30)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate(""), Err(HandleError::Empty));
        assert_eq!(
            validate(&"h".repeat(31)),
            Err(HandleError::TooLong { len: 31 })
        );
        assert_eq!(validate("a b"), Err(HandleError::BadChar(' ')));
        assert_eq!(validate("jösé"), Err(HandleError::BadChar('ö')));
        assert_eq!(validate("2pac"), Err(HandleError::BadStart));
        assert_eq!(validate("_x"), Err(HandleError::BadStart));
        assert_eq!(validate("root"), Err(HandleError::Reserved("root".into())));
        assert_eq!(validate("ROOT"), Err(HandleError::Reserved("ROOT".into())));
        assert_eq!(index_key("AlIcE"), "alice");
    }

    #[test]
    fn sanitising_names() {
        assert_eq!(sanitise("Alice").as_deref(), Some("Alice"));
        assert_eq!(sanitise("  Alice   Smith ").as_deref(), Some("Alice_Smith"));
        assert_eq!(sanitise("José Ñandú").as_deref(), Some("Jos_and"));
        assert_eq!(sanitise("42 Bob!").as_deref(), Some("Bob"));
        assert_eq!(sanitise("_-x-_").as_deref(), Some("x"));
        assert_eq!(sanitise("😀 🎉"), None);
        assert_eq!(sanitise("1234"), None);
        assert_eq!(sanitise(""), None);
        let long = sanitise(&"abcdefghij".repeat(5)).expect("some");
        assert_eq!(long.len(), MAX_HANDLE);
        // Whatever comes out is a valid handle (unless reserved).
        for name in ["Alice", "a b c", "x.y@z", "  Ω mega  ", "éa", "a—b"] {
            if let Some(h) = sanitise(name) {
                assert_eq!(validate(&h), Ok(()), "{name:?} → {h:?}");
            }
        }
    }

    #[test]
    fn bases_follow_name_then_profile_then_account() {
        assert_eq!(base(Some("Bob"), Some("Robert"), ACCOUNT), "Bob");
        assert_eq!(base(None, Some("Robert"), ACCOUNT), "Robert");
        assert_eq!(base(Some("!!"), Some("Robert"), ACCOUNT), "Robert");
        assert_eq!(base(None, None, ACCOUNT), "sa1b2c3d4");
        assert_eq!(base(Some("😀"), Some(""), ACCOUNT), "sa1b2c3d4");
        assert_eq!(validate(&base(None, None, ACCOUNT)), Ok(()));
    }

    #[test]
    fn candidates_append_numbers_within_the_limit() {
        assert_eq!(candidate("bob", 1), "bob");
        assert_eq!(candidate("bob", 2), "bob2");
        assert_eq!(candidate("bob", 12), "bob12");
        let long = "x".repeat(MAX_HANDLE);
        assert_eq!(candidate(&long, 1), long);
        let c = candidate(&long, 10);
        assert_eq!(c.len(), MAX_HANDLE);
        assert!(c.ends_with("10"));
        assert_eq!(candidate("root", 2), "root2");
        assert_eq!(validate(&candidate("root", 2)), Ok(()));
    }
}
