//! Conversation addresses: the one string that names a conversation everywhere (store keys,
//! event records, API fields, adapters), whatever its kind.
//!
//! | address | kind |
//! |---|---|
//! | `05…` (66 hex) | a one-to-one conversation with that Account ID |
//! | `03…` (66 hex) | a group (its Ed25519 key with the `03` prefix) |
//! | `15…` (66 hex) | a community DM with that blinded ID |
//! | `<canonical base URL>/<lower-case room token>` | a community room, e.g. `http://127.0.0.1:8080/lobby` |
//!
//! Hex addresses are lower-case; a room address is the form the UserGroups config keys rooms by.

use session_proto::account_id::{AccountId, Prefix};
use session_proto::community::url::{check_room_token, ServerUrl};

/// What kind of conversation an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One-to-one with a standard (`05…`) Account ID.
    Direct,
    /// A group (`03…`).
    Group,
    /// A community room (`<base URL>/<room>`).
    CommunityRoom,
    /// A community DM with a blinded (`15…`) ID.
    CommunityDm,
}

impl Kind {
    /// The kind of a stored (canonical) address, by its form alone; `None` if it is none of the
    /// four. Cheap: no full parse.
    pub fn of(address: &str) -> Option<Kind> {
        if address.starts_with("http://") || address.starts_with("https://") {
            return Some(Kind::CommunityRoom);
        }
        if address.len() != 2 * AccountId::LEN {
            return None;
        }
        match address.get(..2)? {
            "05" => Some(Kind::Direct),
            "03" => Some(Kind::Group),
            "15" => Some(Kind::CommunityDm),
            _ => None,
        }
    }

    /// True for the kinds whose other side is one person (one-to-one and community DMs).
    pub fn is_person(self) -> bool {
        matches!(self, Kind::Direct | Kind::CommunityDm)
    }
}

/// Parses a conversation address as a user or client wrote it and returns its canonical form
/// (trimmed; hex lower-cased; a room's base URL canonical and its token lower-cased) with its
/// kind. The error says what is expected.
pub fn parse(text: &str) -> Result<(String, Kind), String> {
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        let (base, room) = text
            .rsplit_once('/')
            .filter(|(base, _)| !base.ends_with('/'))
            .ok_or_else(|| {
                "a community room is addressed as <base URL>/<room token>, e.g. \
                 http://127.0.0.1:8080/lobby"
                    .to_owned()
            })?;
        let server: ServerUrl = base.parse().map_err(|e| format!("{e}"))?;
        check_room_token(room).map_err(|e| format!("{e}"))?;
        return Ok((
            format!("{server}/{}", room.to_ascii_lowercase()),
            Kind::CommunityRoom,
        ));
    }
    let id: AccountId = text.parse().map_err(|e| format!("{e}"))?;
    let kind = match id.prefix() {
        Some(Prefix::Standard) => Kind::Direct,
        Some(Prefix::Group) => Kind::Group,
        Some(Prefix::Blinded15) => Kind::CommunityDm,
        _ => {
            return Err(
                "a conversation is a 05… Account ID, a 03… group, a 15… blinded ID or a \
                 community room URL"
                    .to_owned(),
            )
        }
    };
    Ok((id.to_string(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse(&format!(" 05{hex} ")).expect("direct"),
            (format!("05{hex}"), Kind::Direct)
        );
        assert_eq!(
            parse(&format!("03{}", hex.to_uppercase())).expect("group"),
            (format!("03{hex}"), Kind::Group)
        );
        assert_eq!(parse(&format!("15{hex}")).expect("dm").1, Kind::CommunityDm);
        assert_eq!(
            parse("http://127.0.0.1:8080/Lobby").expect("room"),
            (
                "http://127.0.0.1:8080/lobby".to_owned(),
                Kind::CommunityRoom
            )
        );
        for (canonical, kind) in [
            (format!("05{hex}"), Kind::Direct),
            (format!("03{hex}"), Kind::Group),
            (format!("15{hex}"), Kind::CommunityDm),
            (
                "http://127.0.0.1:8080/lobby".to_owned(),
                Kind::CommunityRoom,
            ),
        ] {
            assert_eq!(Kind::of(&canonical), Some(kind));
        }
    }

    #[test]
    fn malformed_addresses_say_why() {
        let hex = "ab".repeat(32);
        for bad in [
            String::new(),
            "05abc".to_owned(),
            format!("25{hex}"),
            format!("00{hex}"),
            "http://127.0.0.1:8080".to_owned(),
            "http://127.0.0.1:8080/".to_owned(),
            "http://127.0.0.1:8080/bad room".to_owned(),
            "http:///lobby".to_owned(),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(Kind::of("05abc"), None);
        assert_eq!(Kind::of(&format!("25{hex}")), None);
    }
}
