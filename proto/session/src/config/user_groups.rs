//! UserGroups (namespace 5): the groups and communities the account is in.
//!
//! `g[33-byte 03 ID]`: `K` group Ed25519 seed (admins; empty string otherwise), `s` member auth
//! data (non-admins), `n` name, `r` removed status, `d` destroyed, plus the common fields.
//! `o[base URL]{#: 32-byte server key, R: {room (lower case): {n: room as typed, …}}}`.
//! Common fields: `@` notifications, `!` mute-until, `+` priority, `i` invited, `j` joined-at.
//! Legacy groups (`C`) are read-only here and kept untouched.

use ed25519_dalek::SigningKey;

use super::data::{fields, Data, Field};
use crate::account_id::{AccountId, Prefix};
use crate::err::ConfigError;

/// A group (v2) entry.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The group's `03…` ID.
    pub id: AccountId,
    /// The group name (until joined: the invite's name).
    pub name: String,
    /// The group's Ed25519 seed, for admins.
    pub admin_seed: Option<[u8; 32]>,
    /// Member auth data (100 bytes), for non-admins.
    pub auth_data: Vec<u8>,
    /// Invited, not yet accepted.
    pub invited: bool,
    /// Joined at (unix seconds).
    pub joined_at: i64,
    /// 0 normal, −1 hidden, > 0 pinned.
    pub priority: i64,
    /// Removed status (kicked / destroyed), 0 = none.
    pub removed_status: i64,
    /// Muted until (unix seconds).
    pub mute_until: i64,
}

impl std::fmt::Debug for GroupEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupEntry")
            .field("id", &self.id)
            .field("admin", &self.admin_seed.is_some())
            .field("invited", &self.invited)
            .finish_non_exhaustive()
    }
}

/// A community room entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunityEntry {
    /// Canonical base URL (see [`canonical_url`]).
    pub base_url: String,
    /// The server's X25519 public key.
    pub pubkey: [u8; 32],
    /// The room token as typed (its key is the lower-case form).
    pub room: String,
    /// 0 normal, −1 hidden, > 0 pinned.
    pub priority: i64,
    /// Joined at (unix seconds).
    pub joined_at: i64,
}

/// Canonical form of a community base URL: scheme and host in lower case, no default port
/// (`:80` for http, `:443` for https), no trailing `/`.
pub fn canonical_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_owned(), url),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut host = host.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    if let Some(h) = host.strip_suffix(default_port) {
        host = h.to_owned();
    }
    format!("{scheme}://{host}{path}")
}

/// Every group entry; an admin entry whose seed does not match its ID is dropped (as
/// libsession does), other malformed entries are skipped.
pub fn groups(d: &Data) -> Vec<GroupEntry> {
    let Some(g) = fields::dict(d, b"g") else {
        return Vec::new();
    };
    g.iter()
        .filter_map(|(k, v)| {
            let id = AccountId::from_slice(k).ok()?;
            if id.prefix() != Some(Prefix::Group) {
                return None;
            }
            let Field::Dict(info) = v else { return None };
            let admin_seed = match fields::bytes(info, b"K") {
                Some(s) if s.len() == 32 => {
                    let seed: [u8; 32] = s.try_into().ok()?;
                    let pk = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                    if &pk != id.key() {
                        return None;
                    }
                    Some(seed)
                }
                _ => None,
            };
            Some(GroupEntry {
                id,
                name: fields::string(info, b"n").unwrap_or_default(),
                admin_seed,
                auth_data: fields::bytes(info, b"s").unwrap_or_default().to_vec(),
                invited: fields::flag(info, b"i"),
                joined_at: fields::int(info, b"j").unwrap_or(0),
                priority: fields::int(info, b"+").unwrap_or(0),
                removed_status: fields::int(info, b"r").unwrap_or(0),
                mute_until: fields::int(info, b"!").unwrap_or(0),
            })
        })
        .collect()
}

/// Writes a group entry, keeping keys this view does not know.
pub fn set_group(d: &mut Data, g: &GroupEntry) -> Result<(), ConfigError> {
    if g.id.prefix() != Some(Prefix::Group) {
        return Err(ConfigError::Value("a group ID must start with 03"));
    }
    let info = fields::dict_mut(fields::dict_mut(d, b"g"), g.id.as_bytes());
    match &g.admin_seed {
        Some(seed) => {
            fields::set_bytes(info, b"K", seed);
            info.remove(&b"s"[..]);
        }
        None => {
            fields::set_bytes(info, b"K", b"");
            fields::set_nonempty(info, b"s", &g.auth_data);
        }
    }
    fields::set_nonempty(info, b"n", g.name.as_bytes());
    fields::set_flag(info, b"i", g.invited);
    fields::set_positive(info, b"j", g.joined_at);
    fields::set_nonzero(info, b"+", g.priority);
    fields::set_positive(info, b"r", g.removed_status);
    fields::set_positive(info, b"!", g.mute_until);
    Ok(())
}

/// Removes a group entry; true if it existed.
pub fn erase_group(d: &mut Data, id: &AccountId) -> bool {
    match d.get_mut(&b"g"[..]) {
        Some(Field::Dict(g)) => g.remove(&id.as_bytes()[..]).is_some(),
        _ => false,
    }
}

/// Every community room entry.
pub fn communities(d: &Data) -> Vec<CommunityEntry> {
    let mut out = Vec::new();
    let Some(o) = fields::dict(d, b"o") else {
        return out;
    };
    for (url, server) in o {
        let (Ok(url), Field::Dict(server)) = (std::str::from_utf8(url), server) else {
            continue;
        };
        let Some(pubkey) = fields::bytes(server, b"#").and_then(|p| <[u8; 32]>::try_from(p).ok())
        else {
            continue;
        };
        for (key, v) in fields::dict(server, b"R").into_iter().flatten() {
            let (Ok(key), Field::Dict(info)) = (std::str::from_utf8(key), v) else {
                continue;
            };
            out.push(CommunityEntry {
                base_url: url.to_owned(),
                pubkey,
                room: fields::string(info, b"n").unwrap_or_else(|| key.to_owned()),
                priority: fields::int(info, b"+").unwrap_or(0),
                joined_at: fields::int(info, b"j").unwrap_or(0),
            });
        }
    }
    out
}

/// Writes a community room entry, keeping keys this view does not know.
pub fn set_community(d: &mut Data, c: &CommunityEntry) {
    let server = fields::dict_mut(
        fields::dict_mut(d, b"o"),
        canonical_url(&c.base_url).as_bytes(),
    );
    fields::set_bytes(server, b"#", &c.pubkey);
    let info = fields::dict_mut(
        fields::dict_mut(server, b"R"),
        c.room.to_lowercase().as_bytes(),
    );
    fields::set_bytes(info, b"n", c.room.as_bytes());
    fields::set_nonzero(info, b"+", c.priority);
    fields::set_positive(info, b"j", c.joined_at);
}

/// Removes a community room entry; true if it existed. The server's entry goes with its last
/// room (as libsession does: its `#` key would keep it alive otherwise).
pub fn erase_community(d: &mut Data, base_url: &str, room: &str) -> bool {
    let url = canonical_url(base_url);
    let Some(Field::Dict(o)) = d.get_mut(&b"o"[..]) else {
        return false;
    };
    let Some(Field::Dict(server)) = o.get_mut(url.as_bytes()) else {
        return false;
    };
    let Some(Field::Dict(rooms)) = server.get_mut(&b"R"[..]) else {
        return false;
    };
    let gone = rooms.remove(room.to_lowercase().as_bytes()).is_some();
    if gone && rooms.is_empty() {
        o.remove(url.as_bytes());
    }
    gone
}

/// The number of legacy group entries (read-only; they are kept untouched).
pub fn legacy_group_count(d: &Data) -> usize {
    fields::dict(d, b"C").map_or(0, |c| c.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::data::write_data;

    fn bytes(d: &Data) -> Vec<u8> {
        let mut out = Vec::new();
        write_data(d, &mut out);
        out
    }

    /// The entries are laid out as libsession's `UserGroups::set` writes them: a member's
    /// entry has an empty `K` and its 100-byte `s`, an admin's the 32-byte seed and no `s`, a
    /// kicked one an empty `K`, no `s` and `r` = 1; a room's server goes with its last room.
    #[test]
    fn entries_have_libsessions_layout() {
        let seed = [7u8; 32];
        let pk = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let id = AccountId::new(Prefix::Group, pk);
        let mut member = GroupEntry {
            id,
            name: "G".into(),
            admin_seed: None,
            auth_data: vec![9; 100],
            invited: true,
            joined_at: 5,
            priority: 0,
            removed_status: 0,
            mute_until: 0,
        };
        let mut d = Data::new();
        set_group(&mut d, &member).expect("set");
        let mut want = b"d1:gd33:".to_vec();
        want.extend_from_slice(id.as_bytes());
        want.extend_from_slice(b"d1:K0:1:ii1e1:ji5e1:n1:G1:s100:");
        want.extend_from_slice(&[9; 100]);
        want.extend_from_slice(b"eee");
        assert_eq!(bytes(&d), want);
        assert_eq!(groups(&d), vec![member.clone()]);

        // Promoted: the seed replaces the auth data.
        member.admin_seed = Some(seed);
        member.invited = false;
        set_group(&mut d, &member).expect("set");
        let mut want = b"d1:gd33:".to_vec();
        want.extend_from_slice(id.as_bytes());
        want.extend_from_slice(b"d1:K32:");
        want.extend_from_slice(&seed);
        want.extend_from_slice(b"1:ji5e1:n1:Geee");
        assert_eq!(bytes(&d), want);

        // Kicked: no credentials, removed status 1.
        member.admin_seed = None;
        member.auth_data.clear();
        member.removed_status = 1;
        set_group(&mut d, &member).expect("set");
        let mut want = b"d1:gd33:".to_vec();
        want.extend_from_slice(id.as_bytes());
        want.extend_from_slice(b"d1:K0:1:ji5e1:n1:G1:ri1eeee");
        assert_eq!(bytes(&d), want);
        assert!(erase_group(&mut d, &id));
        assert!(!erase_group(&mut d, &id));

        let room = |r: &str| CommunityEntry {
            base_url: "http://H:80/".into(),
            pubkey: [1; 32],
            room: r.into(),
            priority: 0,
            joined_at: 0,
        };
        let mut d = Data::new();
        set_community(&mut d, &room("Lobby"));
        set_community(&mut d, &room("news"));
        let mut want = b"d1:od8:http://hd1:#32:".to_vec();
        want.extend_from_slice(&[1; 32]);
        want.extend_from_slice(b"1:Rd5:lobbyd1:n5:Lobbye4:newsd1:n4:newseeeee");
        assert_eq!(bytes(&d), want);
        assert!(erase_community(&mut d, "http://h", "LOBBY"));
        assert_eq!(communities(&d).len(), 1);
        assert!(erase_community(&mut d, "http://h", "news"));
        assert!(!erase_community(&mut d, "http://h", "news"));
        assert_eq!(bytes(&d), b"d1:odee");
    }
}
