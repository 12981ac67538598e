//! ConvoInfoVolatile (namespace 4): per-conversation read positions and unread marks.
//!
//! `1[33-byte 05 ID]`, `g[33-byte 03 ID]`, `C[legacy group ID]` and
//! `o[base URL]{#: server key, R: {room (lower case): …}}` each hold `r` (last read, **ms**,
//! always present) and `u` (1 = marked unread). A later `r` is stored only if it is within the
//! last 30 days; an earlier one always is. Before a push, entries read more than 45 days ago and
//! not marked unread are pruned (1:1 and community entries; groups are kept).

use super::data::{fields, Data, Field};
use super::user_groups::canonical_url;
use crate::account_id::AccountId;

/// A later read position older than this is not stored (ms).
pub const PRUNE_LOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// Entries read longer ago than this are pruned before a push (ms).
pub const PRUNE_HIGH_MS: i64 = 45 * 24 * 3600 * 1000;

/// The read state of one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadState {
    /// Last read, ms since the epoch (0 = nothing read).
    pub last_read_ms: i64,
    /// Explicitly marked unread.
    pub unread: bool,
}

/// Which conversation an entry is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Convo {
    /// A one-to-one conversation (`05…`).
    OneToOne(AccountId),
    /// A group (`03…`).
    Group(AccountId),
    /// A community room: canonical base URL and lower-case room token.
    Community {
        /// Base URL, canonical (see [`canonical_url`]).
        base_url: String,
        /// Room token, lower case.
        room: String,
    },
}

fn load(d: &Data) -> ReadState {
    ReadState {
        last_read_ms: fields::int(d, b"r").unwrap_or(0),
        unread: fields::flag(d, b"u"),
    }
}

/// Every entry this view understands (legacy groups are skipped and kept).
pub fn list(d: &Data) -> Vec<(Convo, ReadState)> {
    let mut out = Vec::new();
    for (top, mk) in [
        (&b"1"[..], Convo::OneToOne as fn(AccountId) -> Convo),
        (b"g", Convo::Group),
    ] {
        if let Some(m) = fields::dict(d, top) {
            for (k, v) in m {
                if let (Ok(id), Field::Dict(info)) = (AccountId::from_slice(k), v) {
                    out.push((mk(id), load(info)));
                }
            }
        }
    }
    if let Some(o) = fields::dict(d, b"o") {
        for (url, server) in o {
            let (Field::Dict(server), Ok(url)) = (server, std::str::from_utf8(url)) else {
                continue;
            };
            for (room, v) in fields::dict(server, b"R").into_iter().flatten() {
                if let (Ok(room), Field::Dict(info)) = (std::str::from_utf8(room), v) {
                    let c = Convo::Community {
                        base_url: url.to_owned(),
                        room: room.to_owned(),
                    };
                    out.push((c, load(info)));
                }
            }
        }
    }
    out
}

fn entry<'a>(d: &'a Data, c: &Convo) -> Option<&'a Data> {
    match c {
        Convo::OneToOne(id) => fields::dict(fields::dict(d, b"1")?, id.as_bytes()),
        Convo::Group(id) => fields::dict(fields::dict(d, b"g")?, id.as_bytes()),
        Convo::Community { base_url, room } => {
            let server = fields::dict(fields::dict(d, b"o")?, canonical_url(base_url).as_bytes())?;
            fields::dict(fields::dict(server, b"R")?, room.to_lowercase().as_bytes())
        }
    }
}

/// The read state of a conversation.
pub fn get(d: &Data, c: &Convo) -> Option<ReadState> {
    entry(d, c).map(load)
}

/// Sets the read state at `now_ms`: a later `last_read_ms` is stored only if it is within the
/// last 30 days, an earlier one always; `r` is always present. For a community, `server_pubkey`
/// is written when given.
pub fn set(
    d: &mut Data,
    c: &Convo,
    state: ReadState,
    server_pubkey: Option<&[u8; 32]>,
    now_ms: i64,
) {
    let info = match c {
        Convo::OneToOne(id) => fields::dict_mut(fields::dict_mut(d, b"1"), id.as_bytes()),
        Convo::Group(id) => fields::dict_mut(fields::dict_mut(d, b"g"), id.as_bytes()),
        Convo::Community { base_url, room } => {
            let server = fields::dict_mut(
                fields::dict_mut(d, b"o"),
                canonical_url(base_url).as_bytes(),
            );
            if let Some(pk) = server_pubkey {
                fields::set_bytes(server, b"#", pk);
            }
            fields::dict_mut(
                fields::dict_mut(server, b"R"),
                room.to_lowercase().as_bytes(),
            )
        }
    };
    let current = fields::int(info, b"r");
    match current {
        Some(cur) if state.last_read_ms < cur => {
            fields::set_int_if(info, b"r", state.last_read_ms, true)
        }
        _ if state.last_read_ms > now_ms - PRUNE_LOW_MS => {
            fields::set_int_if(info, b"r", state.last_read_ms, true)
        }
        None => fields::set_int_if(info, b"r", 0, true),
        Some(_) => {}
    }
    fields::set_flag(info, b"u", state.unread);
}

/// Removes an entry; true if it existed.
pub fn erase(d: &mut Data, c: &Convo) -> bool {
    let (top, key): (&[u8], Vec<u8>) = match c {
        Convo::OneToOne(id) => (b"1", id.as_bytes().to_vec()),
        Convo::Group(id) => (b"g", id.as_bytes().to_vec()),
        Convo::Community { base_url, room } => {
            let Some(Field::Dict(o)) = d.get_mut(&b"o"[..]) else {
                return false;
            };
            let Some(Field::Dict(server)) = o.get_mut(canonical_url(base_url).as_bytes()) else {
                return false;
            };
            let Some(Field::Dict(rooms)) = server.get_mut(&b"R"[..]) else {
                return false;
            };
            return rooms.remove(room.to_lowercase().as_bytes()).is_some();
        }
    };
    match d.get_mut(top) {
        Some(Field::Dict(m)) => m.remove(&key).is_some(),
        _ => false,
    }
}

/// Drops 1:1 and community entries read more than 45 days before `now_ms` and not marked
/// unread (libsession does this before every push).
pub fn prune_stale(d: &mut Data, now_ms: i64) {
    let cutoff = now_ms - PRUNE_HIGH_MS;
    let stale = |v: &Field| match v {
        Field::Dict(info) => {
            !fields::flag(info, b"u") && fields::int(info, b"r").unwrap_or(0) < cutoff
        }
        _ => false,
    };
    if let Some(Field::Dict(m)) = d.get_mut(&b"1"[..]) {
        m.retain(|_, v| !stale(v));
    }
    if let Some(Field::Dict(o)) = d.get_mut(&b"o"[..]) {
        for server in o.values_mut() {
            if let Field::Dict(server) = server {
                if let Some(Field::Dict(rooms)) = server.get_mut(&b"R"[..]) {
                    rooms.retain(|_, v| !stale(v));
                }
            }
        }
    }
}
