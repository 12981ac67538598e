//! The Matrix adapter's parsers of client input, callable without a daemon: the entry point of
//! the `matrix_request` fuzz target (`fuzz/`) and of the unit test that replays its seeds.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::{parse_json, parse_query};
use crate::ids::{parse_event_id, parse_room, parse_user, StreamToken};

/// The server name the parsers are given.
const SERVER: &str = "localhost";
/// The identity room ids are read for.
const IDENTITY: &str = "alice";

/// How many request shapes [`request`] knows (its selector is taken modulo this).
pub const SHAPES: u8 = 16;

/// Feeds `data` to the parser `selector` picks, as a handler would after reading a request: a
/// body type and the checks its handler makes on the values in it, or a path or query string.
/// Answers whether the input was accepted; it must never panic, whatever the bytes.
pub fn request(selector: u8, data: &[u8]) -> bool {
    let text = || std::str::from_utf8(data).ok();
    match selector % SHAPES {
        0 => body::<crate::rooms::CreateRoomBody>(data)
            .is_some_and(|b| b.invite.iter().all(|u| user(u))),
        1 => body::<crate::rooms::MessageBody>(data).is_some_and(|b| {
            let url_ok = b
                .url
                .as_deref()
                .is_none_or(|u| crate::media::attachment_of(SERVER, u).is_ok());
            url_ok && b.msgtype.len() + b.body.len() + b.filename.map_or(0, |f| f.len()) > 0
        }),
        2 => parse_json::<Value>(data).is_ok_and(|raw| {
            raw.pointer("/m.relates_to/m.in_reply_to/event_id")
                .and_then(Value::as_str)
                .is_none_or(|id| parse_event_id(id).is_some())
        }),
        3 => body::<crate::interact::ReactionBody>(data)
            .is_some_and(|b| parse_event_id(&b.relates_to.event_id).is_some()),
        4 => body::<crate::kinds::UserBody>(data).is_some_and(|b| user(&b.user_id)),
        5 => body::<crate::kinds::PowerBody>(data).is_some_and(|b| b.users.keys().all(|u| user(u))),
        6 => body::<crate::kinds::NameBody>(data).is_some(),
        7 => body::<crate::kinds::TopicBody>(data).is_some(),
        8 => body::<crate::auth::LoginBody>(data).is_some(),
        9 => body::<crate::rooms::TypingBody>(data).is_some(),
        10 => body::<crate::rooms::ReadMarkersBody>(data).is_some(),
        11 => body::<crate::account::DisplayNameBody>(data).is_some(),
        12 => body::<crate::account::DirectoryBody>(data).is_some(),
        13 => body::<crate::interact::TimerBody>(data).is_some(),
        // A /sync query: since, timeout, an inline filter.
        14 => text().is_some_and(|q| {
            parse_query(q).is_ok_and(|pairs| {
                pairs.iter().all(|(k, v)| match k.as_str() {
                    "since" => StreamToken::parse(v).is_some(),
                    "timeout" => crate::sync::clamp_number(v, 0, 30_000).is_some(),
                    "filter" => serde_json::from_str::<Value>(v)
                        .is_ok_and(|f| crate::sync::timeline_limit(&f) > 0),
                    _ => true,
                })
            })
        }),
        // A path's room id, alias or community URL, and event id.
        _ => text().is_some_and(|p| {
            let room = crate::kinds::community_url(p, SERVER).is_some()
                || parse_room(p, IDENTITY, SERVER).is_some();
            room || parse_event_id(p).is_some() || user(p)
        }),
    }
}

fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    parse_json(data).ok()
}

fn user(s: &str) -> bool {
    parse_user(s, SERVER, false).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_requests_are_accepted_and_malformed_ones_refused() {
        let good: &[(u8, &str)] = &[
            (
                0,
                r#"{"invite":["@05aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:localhost"],"is_direct":true}"#,
            ),
            (1, r#"{"msgtype":"m.text","body":"hi"}"#),
            (
                3,
                r#"{"m.relates_to":{"rel_type":"m.annotation","event_id":"$5","key":"👍"}}"#,
            ),
            (
                8,
                r#"{"type":"m.login.password","user":"alice","password":"t"}"#,
            ),
            (14, "since=s1_0&timeout=100&filter=%7B%7D"),
        ];
        for (sel, input) in good {
            assert!(request(*sel, input.as_bytes()), "{sel}: {input}");
        }
        let bad: &[(u8, &[u8])] = &[
            (0, b"[1,2]"),
            (
                1,
                br#"{"msgtype":"m.image","body":"x","url":"mxc://elsewhere/00"}"#,
            ),
            (3, b"{\"m.relates_to\":{}}"),
            (8, b"\xff\xfe"),
            (14, b"since=%zz"),
            (15, b"\xc0"),
        ];
        for (sel, input) in bad {
            assert!(!request(*sel, input), "{sel}: {input:?}");
        }
    }
}
