//! Contacts (namespace 3): who the account talks to, and how.
//!
//! `c` maps the 33-byte Account ID (with its `05`) to a dict: `n` name (always present, so the
//! entry survives pruning), `N` nickname, `p`/`q` picture, `a` approved, `A` approved_me, `b`
//! blocked, `+` priority, `@` notifications, `!` mute-until (s), `e`/`E` disappearing mode and
//! seconds, `j` created (s). Keys this view does not know (`t`, `f`, …) and the top-level `b`
//! of blinded contacts are kept untouched.

use super::data::{fields, Data, Field};
use super::user_profile::{check_name, read_pic, write_pic, ProfilePic};
use crate::account_id::{AccountId, Prefix};
use crate::err::ConfigError;

/// Disappearing-messages mode of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiration {
    /// Off.
    #[default]
    None,
    /// Messages disappear a fixed time after sending.
    AfterSend,
    /// Messages disappear a fixed time after being read.
    AfterRead,
}

/// Notification setting of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// The app's default.
    #[default]
    Default,
    /// Every message.
    All,
    /// None.
    Disabled,
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's Account ID (`05…`).
    pub session_id: AccountId,
    /// The name they gave themselves (may be empty).
    pub name: String,
    /// The name we gave them (empty when none).
    pub nickname: String,
    /// Their picture.
    pub profile_pic: Option<ProfilePic>,
    /// We accepted them: they are a contact, not a message request.
    pub approved: bool,
    /// They accepted us.
    pub approved_me: bool,
    /// We blocked them.
    pub blocked: bool,
    /// 0 normal, −1 hidden, > 0 pinned.
    pub priority: i64,
    /// Notifications.
    pub notifications: Notify,
    /// Muted until (unix seconds; 0 = not muted).
    pub mute_until: i64,
    /// Disappearing mode.
    pub expiration: Expiration,
    /// Disappearing timer in seconds (0 with [`Expiration::None`]).
    pub expiration_seconds: i64,
    /// When the contact was created (unix seconds; 0 = unknown).
    pub created: i64,
    /// Newer clients: when the name or picture last changed (unix seconds), read only.
    pub profile_updated: i64,
}

impl Contact {
    /// A contact with nothing set.
    pub fn new(session_id: AccountId) -> Self {
        Contact {
            session_id,
            name: String::new(),
            nickname: String::new(),
            profile_pic: None,
            approved: false,
            approved_me: false,
            blocked: false,
            priority: 0,
            notifications: Notify::Default,
            mute_until: 0,
            expiration: Expiration::None,
            expiration_seconds: 0,
            created: 0,
            profile_updated: 0,
        }
    }

    /// The nickname when set, else the name, else `None`.
    pub fn display_name(&self) -> Option<&str> {
        [&self.nickname, &self.name]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(|s| s.as_str())
    }

    fn load(session_id: AccountId, d: &Data) -> Self {
        let notifications = match fields::int(d, b"@") {
            Some(1) | Some(3) => Notify::All,
            Some(2) => Notify::Disabled,
            _ => Notify::Default,
        };
        let mut expiration = match fields::int(d, b"e") {
            Some(1) => Expiration::AfterSend,
            Some(2) => Expiration::AfterRead,
            _ => Expiration::None,
        };
        let mut expiration_seconds = fields::int(d, b"E").unwrap_or(0);
        if expiration == Expiration::None || expiration_seconds <= 0 {
            expiration = Expiration::None;
            expiration_seconds = 0;
        }
        Contact {
            session_id,
            name: fields::string(d, b"n").unwrap_or_default(),
            nickname: fields::string(d, b"N").unwrap_or_default(),
            profile_pic: read_pic(d, b"p", b"q"),
            approved: fields::flag(d, b"a"),
            approved_me: fields::flag(d, b"A"),
            blocked: fields::flag(d, b"b"),
            priority: fields::int(d, b"+").unwrap_or(0),
            notifications,
            mute_until: fields::int(d, b"!").unwrap_or(0).max(0),
            expiration,
            expiration_seconds,
            created: fields::int(d, b"j").unwrap_or(0).max(0),
            profile_updated: fields::int(d, b"t").unwrap_or(0).max(0),
        }
    }

    fn store(&self, d: &mut Data) -> Result<(), ConfigError> {
        check_name(&self.name)?;
        check_name(&self.nickname)?;
        fields::set_bytes(d, b"n", self.name.as_bytes());
        fields::set_nonempty(d, b"N", self.nickname.as_bytes());
        write_pic(d, self.profile_pic.as_ref())?;
        fields::set_flag(d, b"a", self.approved);
        fields::set_flag(d, b"A", self.approved_me);
        fields::set_flag(d, b"b", self.blocked);
        fields::set_nonzero(d, b"+", self.priority);
        let notify = match self.notifications {
            Notify::Default => 0,
            Notify::All => 1,
            Notify::Disabled => 2,
        };
        fields::set_positive(d, b"@", notify);
        fields::set_positive(d, b"!", self.mute_until);
        let mode = match self.expiration {
            Expiration::None => 0,
            Expiration::AfterSend => 1,
            Expiration::AfterRead => 2,
        };
        let on = mode != 0 && self.expiration_seconds > 0;
        fields::set_int_if(d, b"e", mode, on);
        fields::set_int_if(d, b"E", self.expiration_seconds, on);
        fields::set_positive(d, b"j", self.created);
        Ok(())
    }
}

fn standard_id(bytes: &[u8]) -> Option<AccountId> {
    let id = AccountId::from_slice(bytes).ok()?;
    (id.prefix() == Some(Prefix::Standard)).then_some(id)
}

/// Every contact, in Account ID order. Entries that are not a 33-byte `05` ID with a dict are
/// skipped (and kept in the data).
pub fn list(d: &Data) -> Vec<Contact> {
    let Some(c) = fields::dict(d, b"c") else {
        return Vec::new();
    };
    c.iter()
        .filter_map(|(k, v)| match v {
            Field::Dict(info) => Some(Contact::load(standard_id(k)?, info)),
            _ => None,
        })
        .collect()
}

/// The contact with this Account ID.
pub fn get(d: &Data, id: &AccountId) -> Option<Contact> {
    let info = fields::dict(fields::dict(d, b"c")?, id.as_bytes())?;
    Some(Contact::load(*id, info))
}

/// The contact, or a new one with nothing set.
pub fn get_or_new(d: &Data, id: &AccountId) -> Contact {
    get(d, id).unwrap_or_else(|| Contact::new(*id))
}

/// Writes a contact, keeping any keys of its dict this view does not know.
pub fn set(d: &mut Data, contact: &Contact) -> Result<(), ConfigError> {
    if contact.session_id.prefix() != Some(Prefix::Standard) {
        return Err(ConfigError::Value(
            "a contact's Account ID must start with 05",
        ));
    }
    let c = fields::dict_mut(d, b"c");
    let info = fields::dict_mut(c, contact.session_id.as_bytes());
    contact.store(info)
}

/// Removes a contact; true if it existed.
pub fn erase(d: &mut Data, id: &AccountId) -> bool {
    match d.get_mut(&b"c"[..]) {
        Some(Field::Dict(c)) => c.remove(&id.as_bytes()[..]).is_some(),
        _ => false,
    }
}
