//! Matrix identifiers for sessiond things, made and read back without storage: user ids for
//! identities and contacts, room ids per conversation, event ids from event-log seqs, `since` /
//! pagination tokens and device ids.
//!
//! | thing | Matrix id |
//! |---|---|
//! | identity `alice` | `@alice:<server>` |
//! | contact `05ab…` (a ghost) | `@05ab…:<server>` |
//! | alice's conversation with `05ab…` | `!05ab…_alice:<server>` |
//! | alice's group `03cd…` | `!03cd…_alice:<server>` |
//! | alice's community room `http://h:80/lobby` | `!r<hex of the address>_alice:<server>` |
//! | a poster in a community room, blinded ID `15ef…` | `@15ef…:<server>` |
//! | alice's community DM with `15ef…` | `!15ef…_alice:<server>` |
//! | event-log event with seq 42 | `$42` |
//! | a room's fixed state event (create, members…) | `$<what>_<peer>` |
//! | "after event 42, ephemeral version 7" | `s42_7` |

use sessiond_api::client::{looks_like_account_id, looks_like_blinded_id};

/// What a Matrix user id on this server stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalUser {
    /// An identity, by its local name.
    Identity(String),
    /// A Session contact (a ghost user), by its Account ID in lowercase.
    Ghost(String),
    /// Someone met in a community (a poster, a community DM peer), by blinded ID (`15…`) in
    /// lowercase.
    Blinded(String),
}

/// `@name:server`.
pub fn user_id(localpart: &str, server: &str) -> String {
    format!("@{localpart}:{server}")
}

/// Reads a user id of this server (or a bare localpart, if `bare_ok`). `None` if it is another
/// server's or not a user id at all.
pub fn parse_user(s: &str, server: &str, bare_ok: bool) -> Option<LocalUser> {
    let local = match s.strip_prefix('@') {
        Some(rest) => {
            let (local, host) = rest.split_once(':')?;
            if host != server {
                return None;
            }
            local
        }
        None if bare_ok => s,
        None => return None,
    };
    if local.is_empty() {
        return None;
    }
    if looks_like_account_id(local) {
        return Some(LocalUser::Ghost(local.to_ascii_lowercase()));
    }
    if looks_like_blinded_id(local) {
        return Some(LocalUser::Blinded(local.to_ascii_lowercase()));
    }
    Some(LocalUser::Identity(local.to_owned()))
}

/// The part of a room id that names the conversation: the Account ID, blinded ID or group ID
/// itself, and for a community room (`<base URL>/<token>`, which holds characters a room id
/// cannot) `r` and the address in lowercase hex.
pub fn room_key(address: &str) -> String {
    if is_room_address(address) {
        let mut out = String::with_capacity(1 + 2 * address.len());
        out.push('r');
        for b in address.bytes() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    } else {
        address.to_owned()
    }
}

/// True for a community room's address (`http(s)://…`).
pub fn is_room_address(address: &str) -> bool {
    address.starts_with("http://") || address.starts_with("https://")
}

/// True for a group's ID: `03` and 64 hex characters.
pub fn is_group_id(s: &str) -> bool {
    s.len() == 66 && s.starts_with("03") && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The room of `identity`'s conversation at `address` (a peer, a group, a community room).
pub fn room_id(identity: &str, address: &str, server: &str) -> String {
    format!("!{}_{identity}:{server}", room_key(address))
}

/// The conversation address of a room id, if the room is `identity`'s on this server; `None`
/// for anything else (malformed, another server's, another identity's), so callers cannot
/// tell those apart.
pub fn parse_room(s: &str, identity: &str, server: &str) -> Option<String> {
    let local = s
        .strip_prefix('!')?
        .strip_suffix(server)?
        .strip_suffix(':')?;
    let (key, owner) = local.split_once('_')?;
    if owner != identity {
        return None;
    }
    if looks_like_account_id(key) || looks_like_blinded_id(key) || is_group_id(key) {
        return Some(key.to_ascii_lowercase());
    }
    let hex = key.strip_prefix('r')?;
    if hex.len() % 2 != 0 || hex.len() > 2 * MAX_ROOM_ADDRESS {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let address = String::from_utf8(bytes).ok()?;
    is_room_address(&address).then_some(address)
}

/// The longest community room address a room id carries.
const MAX_ROOM_ADDRESS: usize = 512;

/// The event id of the Matrix event made from event-log entry `seq`.
pub fn event_id(seq: u64) -> String {
    format!("${seq}")
}

/// The id of the `n`th Matrix event made from event-log entry `seq`: [`event_id`] for the
/// first, `$<seq>_<n>` for the others (a group change's several events, a message's further
/// attachments).
pub fn sub_event_id(seq: u64, n: usize) -> String {
    if n == 0 {
        event_id(seq)
    } else {
        format!("${seq}_{n}")
    }
}

/// The event id of one of a room's fixed state events (`what` = "create", "me", …).
pub fn state_event_id(what: &str, peer: &str) -> String {
    format!("${what}_{peer}")
}

/// The event-log seq of an event id made by [`event_id`] or [`sub_event_id`] (a reply,
/// reaction, redaction or receipt on any of an entry's events is one on the entry); `None` for
/// fixed state events and anything else.
pub fn parse_event_id(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('$')?;
    let digits = match rest.split_once('_') {
        Some((seq, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => seq,
        Some(_) => return None,
        None => rest,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A position in an identity's stream: after event-log entry `seq`, and after ephemeral change
/// `eph` (typing, account data: see `sync::Live`). Used as `since`/`next_batch` and as the
/// `from`/`to`/`prev_batch` tokens of `/messages` (which ignore `eph`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamToken {
    /// Every event with a seq up to this one is before the position.
    pub seq: u64,
    /// The ephemeral version seen (0 if none).
    pub eph: u64,
}

impl StreamToken {
    /// `s<seq>_<eph>`.
    pub fn format(&self) -> String {
        format!("s{}_{}", self.seq, self.eph)
    }

    /// Reads `s<seq>` or `s<seq>_<eph>`.
    pub fn parse(s: &str) -> Option<StreamToken> {
        let rest = s.strip_prefix('s')?;
        let (seq, eph) = match rest.split_once('_') {
            Some((seq, eph)) => (seq, Some(eph)),
            None => (rest, None),
        };
        let num = |t: &str| -> Option<u64> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        Some(StreamToken {
            seq: num(seq)?,
            eph: match eph {
                Some(e) => num(e)?,
                None => 0,
            },
        })
    }
}

/// The device id of an access token: derived from the token (FNV-1a, 64 bits), so it is the
/// same after an adapter restart without storing anything. It says nothing useful about the
/// token (the token has 256 random bits).
pub fn device_id(token: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // 12 characters from A–Z: 56 bits, plenty to tell a user's few devices apart.
    let mut out = String::from("SD");
    for _ in 0..12 {
        let c = b'A' + u8::try_from(h % 26).expect("a value below 26 fits a u8");
        out.push(char::from(c));
        h /= 26;
    }
    out
}

/// A shortened Account ID for logs and names: the first 6 and last 4 hex characters.
pub fn short_account(id: &str) -> String {
    match (id.get(..6), id.get(id.len().saturating_sub(4)..)) {
        (Some(a), Some(b)) if id.len() > 10 => format!("{a}…{b}"),
        _ => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> String {
        format!("05{}", "ab".repeat(32))
    }

    #[test]
    fn users_round_trip() {
        let s = "example.org";
        assert_eq!(
            parse_user(&user_id("alice", s), s, false),
            Some(LocalUser::Identity("alice".into()))
        );
        assert_eq!(
            parse_user(&user_id(&peer().to_uppercase(), s), s, false),
            Some(LocalUser::Ghost(peer()))
        );
        assert_eq!(
            parse_user("alice", s, true),
            Some(LocalUser::Identity("alice".into()))
        );
        let blinded = format!("15{}", "cd".repeat(32));
        assert_eq!(
            parse_user(&user_id(&blinded.to_uppercase(), s), s, false),
            Some(LocalUser::Blinded(blinded.clone()))
        );
        assert_eq!(
            parse_room(&room_id("alice", &blinded, s), "alice", s),
            Some(blinded)
        );
        assert_eq!(parse_user("alice", s, false), None);
        assert_eq!(parse_user("@alice:other.org", s, true), None);
        assert_eq!(parse_user("@:example.org", s, true), None);
        assert_eq!(parse_user("@alice", s, true), None);
    }

    #[test]
    fn rooms_round_trip_and_belong_to_one_identity() {
        let s = "localhost";
        let id = room_id("alice", &peer(), s);
        assert_eq!(parse_room(&id, "alice", s), Some(peer()));
        assert_eq!(parse_room(&id, "bob", s), None);
        assert_eq!(parse_room(&id, "alice", "other"), None);
        assert_eq!(parse_room("!nope:localhost", "alice", s), None);
        assert_eq!(parse_room("", "alice", s), None);
        assert_eq!(
            parse_room(&format!("!{}_alice:localhost", &peer()[..10]), "alice", s),
            None
        );
        // Identity names may hold '_' and '.': the peer is the part before the first '_'.
        let id = room_id("a_b.c", &peer(), s);
        assert_eq!(parse_room(&id, "a_b.c", s), Some(peer()));
        let group = format!("03{}", "ef".repeat(32));
        assert_eq!(
            parse_room(&room_id("alice", &group, s), "alice", s),
            Some(group)
        );
        let lobby = "http://127.0.0.1:8080/lobby";
        let id = room_id("alice", lobby, s);
        assert!(!id[1..id.len() - s.len() - 1].contains(':'), "{id}");
        assert_eq!(parse_room(&id, "alice", s).as_deref(), Some(lobby));
        assert_eq!(parse_room(&id, "bob", s), None);
        for bad in [
            "!r_alice:localhost",
            "!r6_alice:localhost",
            "!rzz_alice:localhost",
            "!r6869_alice:localhost",
            "!rff_alice:localhost",
        ] {
            assert_eq!(parse_room(bad, "alice", s), None, "{bad}");
        }
    }

    #[test]
    fn event_ids_and_tokens() {
        assert_eq!(parse_event_id(&event_id(42)), Some(42));
        assert_eq!(parse_event_id(&state_event_id("create", &peer())), None);
        assert_eq!(parse_event_id("$"), None);
        // A sub-event (a group change's second event, a message's second file) names its entry.
        assert_eq!(parse_event_id(&sub_event_id(42, 0)), Some(42));
        assert_eq!(parse_event_id(&sub_event_id(42, 3)), Some(42));
        for bad in ["$42_", "$_1", "$42_x", "$42_1_2", "$x_1", "$42__1"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
        assert_eq!(parse_event_id("$99999999999999999999999"), None);
        let t = StreamToken { seq: 17, eph: 3 };
        assert_eq!(StreamToken::parse(&t.format()), Some(t));
        assert_eq!(
            StreamToken::parse("s5"),
            Some(StreamToken { seq: 5, eph: 0 })
        );
        for bad in ["", "s", "s_1", "s1_", "x1_2", "s-1", "s1_2_3", "s１"] {
            assert_eq!(StreamToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn device_ids_are_stable_and_distinct() {
        let a = device_id(&"a".repeat(64));
        assert_eq!(a, device_id(&"a".repeat(64)));
        assert_ne!(a, device_id(&"b".repeat(64)));
        assert_eq!(a.len(), 14);
        assert!(a.bytes().all(|b| b.is_ascii_uppercase()));
    }
}
