//! The community server's data: rooms, messages with their seqnos, reactions, permissions,
//! moderators, bans, DMs, seen users and used request nonces.
//!
//! Everything sits behind one std `Mutex` in [`super::CommunityShared`]; handlers lock it,
//! work synchronously and unlock before any await.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use session_proto::account_id::AccountId;

/// Posts allowed per user per room within [`RATE_LIMIT_SECS`] (pysogs `rate_limit_size`).
pub const RATE_LIMIT_POSTS: usize = 5;
/// The rate-limit window (pysogs `rate_limit_interval`).
pub const RATE_LIMIT_SECS: f64 = 16.0;
/// How long DMs live (pysogs `DM_EXPIRY`, 15 days).
pub const DM_EXPIRY_SECS: f64 = 15.0 * 86400.0;
/// Users count as active for a week (`active_users_cutoff`).
pub const ACTIVE_CUTOFF_SECS: i64 = 7 * 86400;
/// Remembered nonces at most; older ones are forgotten first (they are outside the
/// timestamp window by then in any realistic run).
pub const MAX_NONCES: usize = 100_000;

/// Room-level permission flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// May read messages.
    pub read: bool,
    /// May post.
    pub write: bool,
    /// May upload files.
    pub upload: bool,
    /// May see the room at all.
    pub accessible: bool,
}

/// Per-user overrides of a room's defaults (`None` = the default applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PermOverride {
    pub read: Option<bool>,
    pub write: Option<bool>,
    pub upload: Option<bool>,
    pub accessible: Option<bool>,
}

/// A moderator entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModRole {
    /// Admin (implies moderator).
    pub admin: bool,
    /// Listed in `moderators`/`admins` (else in the hidden lists).
    pub visible: bool,
}

/// What a user is in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Role {
    pub moderator: bool,
    pub admin: bool,
    pub global_moderator: bool,
    pub global_admin: bool,
}

impl Role {
    pub fn is_mod(&self) -> bool {
        self.moderator || self.admin || self.global_moderator || self.global_admin
    }
    pub fn is_admin(&self) -> bool {
        self.admin || self.global_admin
    }
}

/// One message row.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: i64,
    pub session_id: AccountId,
    pub posted: f64,
    pub edited: Option<f64>,
    /// Latest event of any kind on this row.
    pub seqno: i64,
    /// Latest change of the data (post, edit, deletion).
    pub seqno_data: i64,
    /// `None` once deleted.
    pub data: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
    /// Emoji in order of first use, each with its reactors (oldest first).
    pub reactions: Vec<(String, Vec<(AccountId, f64)>)>,
    pub whisper_to: Option<AccountId>,
    pub whisper_mods: bool,
}

impl Msg {
    pub fn is_whisper(&self) -> bool {
        self.whisper_to.is_some() || self.whisper_mods
    }
    /// Whether `user` (with `role`) may see this row.
    pub fn visible_to(&self, user: Option<&AccountId>, role: &Role) -> bool {
        if !self.is_whisper() || role.is_mod() {
            return true;
        }
        let Some(u) = user else { return false };
        *u == self.session_id || self.whisper_to.as_ref() == Some(u)
    }
}

/// A room.
#[derive(Debug)]
pub struct Room {
    pub token: String,
    pub name: String,
    pub description: Option<String>,
    pub created: f64,
    pub info_updates: i64,
    /// The room's event counter (`message_sequence`).
    pub seq: i64,
    pub messages: BTreeMap<i64, Msg>,
    pub defaults: Perms,
    pub overrides: HashMap<AccountId, PermOverride>,
    pub mods: HashMap<AccountId, ModRole>,
    /// Banned users and when the ban ends (`None` = permanent).
    pub bans: HashMap<AccountId, Option<f64>>,
    pub recent_posts: HashMap<AccountId, VecDeque<f64>>,
    pub active: HashMap<AccountId, f64>,
}

impl Room {
    pub fn new(
        token: &str,
        name: &str,
        description: Option<String>,
        perms: Perms,
        now: f64,
    ) -> Room {
        Room {
            token: token.to_owned(),
            name: name.to_owned(),
            description,
            created: now,
            // pysogs counts the creation as an update, so pollInfo/0 always carries details.
            info_updates: 1,
            seq: 0,
            messages: BTreeMap::new(),
            defaults: perms,
            overrides: HashMap::new(),
            mods: HashMap::new(),
            bans: HashMap::new(),
            recent_posts: HashMap::new(),
            active: HashMap::new(),
        }
    }

    /// The next event number.
    pub fn bump(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }

    pub fn active_users(&self, now: f64) -> i64 {
        self.active
            .values()
            .filter(|&&t| now - t < ACTIVE_CUTOFF_SECS as f64)
            .count() as i64
    }

    /// Whether `user` is banned here at `now`.
    pub fn banned(&self, user: &AccountId, now: f64) -> bool {
        match self.bans.get(user) {
            Some(None) => true,
            Some(Some(until)) => *until > now,
            None => false,
        }
    }
}

/// A community DM.
#[derive(Debug, Clone)]
pub struct Dm {
    pub id: i64,
    pub posted_at: f64,
    pub expires_at: f64,
    pub sender: AccountId,
    pub recipient: AccountId,
    pub message: Vec<u8>,
}

/// The whole server state.
#[derive(Debug, Default)]
pub struct State {
    pub rooms: BTreeMap<String, Room>,
    /// Every user that made a signed request (DMs go only to them).
    pub users: HashSet<AccountId>,
    pub global_mods: HashMap<AccountId, ModRole>,
    pub global_bans: HashSet<AccountId>,
    pub nonces: HashSet<(AccountId, [u8; 16])>,
    pub nonce_order: VecDeque<(AccountId, [u8; 16])>,
    pub dms: Vec<Dm>,
    pub next_dm_id: i64,
    pub next_msg_id: i64,
}

impl State {
    /// Records a nonce; `false` if this user used it before.
    pub fn use_nonce(&mut self, user: &AccountId, nonce: [u8; 16]) -> bool {
        if !self.nonces.insert((*user, nonce)) {
            return false;
        }
        self.nonce_order.push_back((*user, nonce));
        if self.nonce_order.len() > MAX_NONCES {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        true
    }

    /// The role of `user` in `room`.
    pub fn role(&self, room: &Room, user: Option<&AccountId>) -> Role {
        let Some(u) = user else {
            return Role::default();
        };
        let local = room.mods.get(u);
        let global = self.global_mods.get(u);
        Role {
            moderator: local.is_some(),
            admin: local.is_some_and(|m| m.admin),
            global_moderator: global.is_some(),
            global_admin: global.is_some_and(|m| m.admin),
        }
    }

    /// What `user` may do in `room` at `now`: moderators everything; banned users nothing
    /// but see the room; otherwise the room's defaults with the user's overrides. Anonymous
    /// callers never write or upload.
    pub fn perms(&self, room: &Room, user: Option<&AccountId>, now: f64) -> (Perms, Role) {
        let role = self.role(room, user);
        if role.is_mod() {
            let all = Perms {
                read: true,
                write: true,
                upload: true,
                accessible: true,
            };
            return (all, role);
        }
        let Some(u) = user else {
            let d = room.defaults;
            return (
                Perms {
                    write: false,
                    upload: false,
                    ..d
                },
                role,
            );
        };
        if self.global_bans.contains(u) || room.banned(u, now) {
            let none = Perms {
                read: false,
                write: false,
                upload: false,
                accessible: room.defaults.accessible,
            };
            return (none, role);
        }
        let o = room.overrides.get(u).copied().unwrap_or_default();
        let d = room.defaults;
        let write = o.write.unwrap_or(d.write);
        (
            Perms {
                read: o.read.unwrap_or(d.read),
                write,
                upload: o.upload.unwrap_or(d.upload) && write,
                accessible: o.accessible.unwrap_or(d.accessible),
            },
            role,
        )
    }
}
