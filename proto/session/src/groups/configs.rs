//! The group info (ns 13) and members (ns 14) configs (groups.md §2): the generic signed config
//! of [`crate::config`] with the group's keys, and typed views of their data.
//!
//! Both are signed by the group key (members verify, admins sign), encrypted under every group
//! key we hold (the current one encrypts, all are tried), domains `groups::Info` and
//! `groups::Members`, no protobuf wrapper. A member's [`Config`] is read-only: it verifies and
//! picks the winner, it never merges or pushes. After a rekey, admins rebuild both configs with
//! [`with_keys`] and push them again under the new key.
//!
//! Info keys: `!` destroyed, `c` created (s), `d`/`D` delete-before (s), `E` disappearing timer
//! (s), `n` name (≤ 100 bytes), `o` description (≤ 2000 bytes), `p`/`q` picture.
//! Members: `m` → { raw 33-byte Account ID → { `n` name (always written), `p`/`q` picture, `I`
//! invite status, `s` supplement, `A` admin, `P` promotion status, `R` removal } }. Keys neither
//! view knows are kept.

use ed25519_dalek::VerifyingKey;
use zeroize::Zeroizing;

use super::keys::GroupKeys;
use super::{NS_INFO, NS_MEMBERS};
use crate::account_id::{AccountId, Prefix};
use crate::config::data::{fields, Data, Field};
use crate::config::object::{Config, ConfigKeys, ConfigType};
use crate::config::user_profile::{read_pic, write_pic, ProfilePic};
use crate::err::ConfigError;

/// The info config.
pub const INFO: ConfigType = ConfigType {
    namespace: NS_INFO,
    domain: "groups::Info",
    signed: true,
    legacy_wrap: false,
};

/// The members config.
pub const MEMBERS: ConfigType = ConfigType {
    namespace: NS_MEMBERS,
    domain: "groups::Members",
    signed: true,
    legacy_wrap: false,
};

/// Longest group name, bytes.
pub const NAME_MAX_LENGTH: usize = 100;
/// Longest description, bytes.
pub const DESCRIPTION_MAX_LENGTH: usize = 2000;

/// The config keys for a group: every key we hold (the encryption key first), the group key as
/// verifier, and as signer when we are an admin.
pub fn config_keys(keys: &GroupKeys) -> ConfigKeys {
    let mut bases: Vec<Zeroizing<[u8; 32]>> = Vec::new();
    for k in keys
        .encryption_key()
        .into_iter()
        .chain(keys.decryption_keys())
    {
        if !bases.iter().any(|b| **b == *k.key()) {
            bases.push(Zeroizing::new(*k.key()));
        }
    }
    ConfigKeys {
        key_bases: bases,
        identity: None,
        signer: keys.admin().map(|a| a.keys().signing_key().clone()),
        verifier: VerifyingKey::from_bytes(keys.group_public_key()).ok(),
    }
}

/// A fresh info or members config ([`INFO`] or [`MEMBERS`]) for the group.
pub fn new_config(ty: ConfigType, keys: &GroupKeys) -> Config {
    Config::new(ty, config_keys(keys))
}

/// The same config with the group's current keys (after a rekey or a newly loaded key). Admins
/// push the result again so that it is stored under the new key.
pub fn with_keys(
    config: &mut Config,
    keys: &GroupKeys,
    now_ms: u64,
) -> Result<Config, ConfigError> {
    let dump = config.dump(now_ms);
    Config::load(config.config_type(), config_keys(keys), &dump, now_ms)
}

// ---- info ---------------------------------------------------------------------------------------

/// The group info as a member sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `n`.
    pub name: Option<String>,
    /// `o`.
    pub description: Option<String>,
    /// `c`, unix seconds.
    pub created_s: Option<i64>,
    /// `d`: delete messages sent before this (unix seconds).
    pub delete_before_s: Option<i64>,
    /// `D`: delete attachments sent before this (unix seconds).
    pub delete_attachments_before_s: Option<i64>,
    /// `E`: disappearing timer ("after send"), seconds.
    pub expiry_timer_s: Option<i64>,
    /// `!`: the group was destroyed by an admin.
    pub destroyed: bool,
    /// `p`/`q`.
    pub picture: Option<ProfilePic>,
}

fn positive(d: &Data, key: &[u8]) -> Option<i64> {
    fields::int(d, key).filter(|i| *i > 0)
}

/// Reads the info config's data.
pub fn info(d: &Data) -> Info {
    Info {
        name: fields::string(d, b"n").filter(|s| !s.is_empty()),
        description: fields::string(d, b"o").filter(|s| !s.is_empty()),
        created_s: positive(d, b"c"),
        delete_before_s: positive(d, b"d"),
        delete_attachments_before_s: positive(d, b"D"),
        expiry_timer_s: positive(d, b"E"),
        destroyed: fields::flag(d, b"!"),
        picture: read_pic(d, b"p", b"q"),
    }
}

/// Sets (or, when empty, removes) the name.
pub fn set_name(d: &mut Data, name: &str) -> Result<(), ConfigError> {
    if name.len() > NAME_MAX_LENGTH {
        return Err(ConfigError::Value("group name is longer than 100 bytes"));
    }
    fields::set_nonempty(d, b"n", name.as_bytes());
    Ok(())
}

/// Sets (or, when empty, removes) the description.
pub fn set_description(d: &mut Data, text: &str) -> Result<(), ConfigError> {
    if text.len() > DESCRIPTION_MAX_LENGTH {
        return Err(ConfigError::Value(
            "group description is longer than 2000 bytes",
        ));
    }
    fields::set_nonempty(d, b"o", text.as_bytes());
    Ok(())
}

/// Sets the creation time (unix seconds).
pub fn set_created(d: &mut Data, unix_s: i64) {
    fields::set_positive(d, b"c", unix_s);
}

/// Sets (or, with 0, turns off) the disappearing timer.
pub fn set_expiry_timer(d: &mut Data, seconds: i64) {
    fields::set_positive(d, b"E", seconds);
}

/// "Delete all messages before": sets `d` and `D`.
pub fn set_delete_before(d: &mut Data, unix_s: i64) {
    fields::set_positive(d, b"d", unix_s);
    fields::set_positive(d, b"D", unix_s);
}

/// Sets or removes the picture.
pub fn set_picture(d: &mut Data, pic: Option<&ProfilePic>) -> Result<(), ConfigError> {
    write_pic(d, pic)
}

/// Marks the group destroyed (`!` = 1): every client deletes it.
pub fn destroy(d: &mut Data) {
    fields::set_flag(d, b"!", true);
}

// ---- members ------------------------------------------------------------------------------------

/// Invite or promotion progress (`I` / `P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 1: sent, not accepted yet.
    Sent,
    /// 2: sending failed.
    Failed,
    /// 3: not sent yet.
    NotSent,
}

impl Status {
    fn from_int(i: i64) -> Option<Status> {
        match i {
            1 => Some(Status::Sent),
            2 => Some(Status::Failed),
            3 => Some(Status::NotSent),
            _ => None,
        }
    }
    fn to_int(self) -> i64 {
        match self {
            Status::Sent => 1,
            Status::Failed => 2,
            Status::NotSent => 3,
        }
    }
}

/// A pending removal (`R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// 1: remove the member.
    Member,
    /// 2: remove the member and their messages.
    MemberAndMessages,
}

/// One member entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's `05` Account ID.
    pub id: AccountId,
    /// `n` (may be empty).
    pub name: String,
    /// `p`/`q`.
    pub picture: Option<ProfilePic>,
    /// `I`: invite progress; `None` once accepted.
    pub invite: Option<Status>,
    /// `s`: invited with history (a supplement was sent).
    pub supplement: bool,
    /// `A`: an admin.
    pub admin: bool,
    /// `P`: promotion progress; `None` when none is pending.
    pub promotion: Option<Status>,
    /// `R`: removal pending.
    pub removal: Option<Removal>,
}

impl Member {
    /// A new entry with only the ID (and an empty name).
    pub fn new(id: AccountId) -> Self {
        Member {
            id,
            name: String::new(),
            picture: None,
            invite: None,
            supplement: false,
            admin: false,
            promotion: None,
            removal: None,
        }
    }
}

fn read_member(key: &[u8], entry: &Data) -> Option<Member> {
    let id = AccountId::from_slice(key)
        .ok()
        .filter(|id| id.prefix() == Some(Prefix::Standard))?;
    Some(Member {
        id,
        name: fields::string(entry, b"n").unwrap_or_default(),
        picture: read_pic(entry, b"p", b"q"),
        invite: fields::int(entry, b"I").and_then(Status::from_int),
        supplement: fields::flag(entry, b"s"),
        admin: fields::flag(entry, b"A"),
        promotion: fields::int(entry, b"P").and_then(Status::from_int),
        removal: match fields::int(entry, b"R") {
            Some(1) => Some(Removal::Member),
            Some(2) => Some(Removal::MemberAndMessages),
            _ => None,
        },
    })
}

/// Every member, in Account ID order. Entries whose key is not a 33-byte `05` ID, or whose value
/// is not a dict, are skipped.
pub fn members(d: &Data) -> Vec<Member> {
    let Some(m) = fields::dict(d, b"m") else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(k, v)| match v {
            Field::Dict(entry) => read_member(k, entry),
            _ => None,
        })
        .collect()
}

/// One member, if present.
pub fn member(d: &Data, id: &AccountId) -> Option<Member> {
    match fields::dict(d, b"m")?.get(&id.as_bytes()[..])? {
        Field::Dict(entry) => read_member(id.as_bytes(), entry),
        _ => None,
    }
}

/// Adds or updates a member; keys of the entry this view does not know are kept.
pub fn set_member(d: &mut Data, m: &Member) -> Result<(), ConfigError> {
    if m.id.prefix() != Some(Prefix::Standard) {
        return Err(ConfigError::Value("group members have 05 Account IDs"));
    }
    if m.name.len() > NAME_MAX_LENGTH {
        return Err(ConfigError::Value("member name is longer than 100 bytes"));
    }
    let entry = fields::dict_mut(fields::dict_mut(d, b"m"), m.id.as_bytes());
    fields::set_bytes(entry, b"n", m.name.as_bytes());
    write_pic(entry, m.picture.as_ref())?;
    // An admin has no pending invite.
    let invite = m.invite.filter(|_| !m.admin);
    fields::set_int_if(
        entry,
        b"I",
        invite.map_or(0, Status::to_int),
        invite.is_some(),
    );
    fields::set_flag(entry, b"s", m.supplement && invite.is_some());
    fields::set_flag(entry, b"A", m.admin);
    let promo = m.promotion;
    fields::set_int_if(
        entry,
        b"P",
        promo.map_or(0, Status::to_int),
        promo.is_some(),
    );
    let removal = match m.removal {
        None => 0,
        Some(Removal::Member) => 1,
        Some(Removal::MemberAndMessages) => 2,
    };
    fields::set_positive(entry, b"R", removal);
    Ok(())
}

/// Removes a member; true if it was there.
pub fn erase_member(d: &mut Data, id: &AccountId) -> bool {
    match d.get_mut(&b"m"[..]) {
        Some(Field::Dict(m)) => m.remove(&id.as_bytes()[..]).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
