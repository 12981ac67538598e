//! Paging of every List call (AIP-158): page sizes and the page tokens handed out.
//!
//! A page token is opaque to clients: base64url of `sessiond1|LIST|part|part…`, where the parts
//! are the position after the last item returned and the request fields the token is bound to
//! (the identity, the filters). A token of another list, with other filters, or not of ours at
//! all is INVALID_ARGUMENT naming `page_token`. Tokens are not secret: one only says where to
//! go on, and the caller's authorization is checked on every page as usual.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::ApiError;

/// The page size of a List call that gives page_size 0.
pub const DEFAULT_PAGE_SIZE: usize = sessiond_api::client::DEFAULT_PAGE_SIZE as usize;
/// The largest page; larger page_size values are treated as this.
pub const MAX_PAGE_SIZE: usize = sessiond_api::client::MAX_PAGE_SIZE as usize;
/// The longest page_token looked at; anything longer is not one of ours.
const MAX_TOKEN_LEN: usize = 1024;
const MAGIC: &str = "sessiond1";

/// The page size a request asks for: 0 is [`DEFAULT_PAGE_SIZE`], larger than [`MAX_PAGE_SIZE`]
/// is [`MAX_PAGE_SIZE`], negative is INVALID_ARGUMENT.
pub fn page_size(page_size: i32) -> Result<usize, ApiError> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(ApiError::field(
            "page_size",
            format!(
                "{n} is negative; use 0 for the default ({DEFAULT_PAGE_SIZE}) or up to \
                 {MAX_PAGE_SIZE}"
            ),
        )),
        n => Ok(usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))),
    }
}

/// The token for the page after the one ending at `parts` of list `list`.
pub fn encode(list: &str, parts: &[&str]) -> String {
    let mut text = format!("{MAGIC}|{list}");
    for part in parts {
        text.push('|');
        text.push_str(part);
    }
    URL_SAFE_NO_PAD.encode(text)
}

/// The parts of a page token of list `list` (`None` for an empty token: the first page). The
/// parts must not contain `|` (names, Account IDs and numbers do not).
pub fn decode(list: &str, token: &str, parts: usize) -> Result<Option<Vec<String>>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ApiError::field(
            "page_token",
            format!(
                "not a page token of this call; pass the next_page_token of the previous {list} \
                 page (with the same other fields), or nothing for the first page"
            ),
        )
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut fields = text.split('|');
    if fields.next() != Some(MAGIC) || fields.next() != Some(list) {
        return Err(bad());
    }
    let out: Vec<String> = fields.map(str::to_owned).collect();
    if out.len() != parts {
        return Err(bad());
    }
    Ok(Some(out))
}

/// A token part that must be a number.
pub fn number(part: &str) -> Result<u64, ApiError> {
    part.parse().map_err(|_| {
        ApiError::field(
            "page_token",
            "not a page token of this call; pass the next_page_token of the previous page",
        )
    })
}

/// Fails unless a token part equals what the request says now: a token is bound to the request
/// fields it was handed out for.
pub fn same(part: &str, now: &str) -> Result<(), ApiError> {
    if part == now {
        Ok(())
    } else {
        Err(ApiError::field(
            "page_token",
            "this page token was handed out for other request fields (identity or filters); ask \
             again with the same fields, or start over without a token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(0).expect("default"), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).expect("small"), 7);
        assert_eq!(page_size(i32::MAX).expect("coerced"), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn tokens_round_trip_and_refuse_what_is_not_theirs() {
        let t = encode("contacts", &["alice", "05ab"]);
        assert_eq!(
            decode("contacts", &t, 2).expect("ok"),
            Some(vec!["alice".to_owned(), "05ab".to_owned()])
        );
        assert_eq!(decode("contacts", "", 2).expect("first page"), None);
        assert!(decode("identities", &t, 2).is_err());
        assert!(decode("contacts", &t, 3).is_err());
        assert!(decode("contacts", "!!!", 2).is_err());
        assert!(decode("contacts", &URL_SAFE_NO_PAD.encode([0xff, 0xfe]), 2).is_err());
        assert!(decode("contacts", &"A".repeat(5000), 2).is_err());
        assert!(number("12").is_ok() && number("x").is_err());
        assert!(same("a", "a").is_ok() && same("a", "b").is_err());
    }
}
