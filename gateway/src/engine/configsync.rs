//! Config sync: the account's config messages (UserProfile 2, Contacts 3, ConvoInfoVolatile 4,
//! UserGroups 5, in its own swarm) are what its devices share. This module pulls them, applies
//! them to the store (the display name, contacts, read state, the community rooms joined), and
//! pushes the daemon's own changes the way desktop does.
//!
//! # Pull
//! Every poll of an identity reads its config namespaces in the same batch request as its
//! messages (session-net's member-sticky `poll`), before namespace 0 as desktop does. What
//! arrived is merged into the identity's configs (session-proto `config::Config`), changed dumps
//! are saved, and the configs are applied: the display name; the contacts' nicknames (as local
//! names), announced names, approved / approved_me / blocked; the 1:1 read positions and unread
//! marks; the lists of groups and communities (kept in the [`SyncHub`] for the API).
//!
//! # Push
//! API calls that change something the account shares (SetProfile, SetContactName,
//! SetContactHandle, Open/Leave, MarkConversationRead, Block/Unblock) queue an [`Edit`] in the
//! [`SyncHub`] and wake the identity's poller. The poller's next round pulls first, then applies
//! the queued edits to the merged configs (a real change increments the seqno once per push),
//! applies the result to the store, and pushes every config that needs it in one `sequence`
//! request: a `store` per message, then one `delete` of the obsolete hashes. Success confirms
//! the push (the stored hashes become the current ones); a failure leaves the config dirty for
//! the next round. Dumps are saved after each step, so a dirty config survives a restart.
//!
//! **Never before the first pull** (config-sync §5.1): until every config namespace has been
//! read to its end once since start, edits wait in the hub and nothing is pushed, so an empty
//! or stale config can never overwrite what the account's other devices wrote.
//!
//! # Bad input
//! Config messages that fail to unwrap, decrypt, decompress, parse or merge, whose seqno jumps
//! far ahead, incomplete multipart sets and unknown types are skipped by session-proto (hash
//! and reason logged at debug, never content) and never deleted: the push deletes only the
//! hashes of messages that were merged.
//!
//! # Device groups (namespace −21)
//! The poll also reads the account's public outbox −21, where the coming libsession "device
//! group" publishes the account's rotating keys (config-sync §5.2). sessiond never publishes
//! there. Only the account can store there (the snodes check its signature), so any message in
//! it means another device of the account has published keys: the hub records it and the API,
//! status page and adapters say that messages in the new "v2" format cannot be read here yet.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use session_net::{Auth, NetError, Op, OpOutcome, Poll};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::config::convo_info_volatile::{self, Convo, ReadState};
use session_proto::config::object::USER_CONFIGS;
use session_proto::config::user_groups::{self, CommunityEntry, GroupEntry};
use session_proto::config::{contacts, user_profile, Config, ConfigKeys};
use session_proto::keys::IdentityKeys;
use session_proto::storage_rpc::{ExpireMode, UserPubkey};
use tokio::sync::Notify;

use super::poller::PollError;
use super::Ctx;
use crate::rpc::now_ms;
use crate::store::{IdentityId, IdentityRecord, StoreError, SyncedContact};

/// The UserGroups config's namespace.
const USER_GROUPS_NS: i16 = 5;
/// The account's public outbox for device-group keys (config-sync §5.2).
pub const DEVICE_KEYS_NAMESPACE: i16 = -21;
/// How long pushed config messages live in the swarm (desktop's `TTL_DEFAULT.CONFIG_MESSAGE`);
/// every device's pushes renew them.
pub const CONFIG_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// How often a daemon renews the expiry of the account's current config messages (to now +
/// [`CONFIG_TTL_MS`]); the first time is the first poll after start. Desktop renews them with
/// every poll; once a day keeps them at least 29 days ahead for one request a day.
pub const CONFIG_REFRESH_EVERY_MS: u64 = 24 * 3600 * 1000;
/// At most this many edits wait per identity (while it has not pulled yet, e.g. offline); the
/// oldest are dropped beyond it, with a warning.
pub const MAX_QUEUED_EDITS: usize = 10_000;
/// Longest display name or nickname in a config, in bytes (libsession's limit).
const MAX_NAME_BYTES: usize = user_profile::MAX_NAME_LENGTH;

/// A local change that goes to the account's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// SetProfile: the display name (`None` clears it).
    Profile {
        /// The new name.
        name: Option<String>,
    },
    /// SetContactName: the contact's nickname (`None` clears it); adds the contact.
    Nickname {
        /// The contact's Account ID.
        account_id: String,
        /// The new nickname.
        nickname: Option<String>,
    },
    /// SetContactHandle and the like: the contact is added (if missing).
    AddContact {
        /// The contact's Account ID.
        account_id: String,
    },
    /// OpenConversation (or writing in a message request): the contact is approved and its
    /// conversation shown again.
    Accept {
        /// The contact's Account ID.
        account_id: String,
    },
    /// LeaveConversation: the conversation is hidden and its read state dropped.
    Hide {
        /// The contact's Account ID.
        account_id: String,
    },
    /// BlockContact / UnblockContact.
    Block {
        /// The contact's Account ID.
        account_id: String,
        /// Blocked or not.
        blocked: bool,
    },
    /// MarkConversationRead: read up to the message sent at `read_ms`.
    Read {
        /// The peer's Account ID.
        account_id: String,
        /// The time of the newest message read, ms.
        read_ms: u64,
    },
    /// A group of the account was created, an invitation came or was accepted, the identity
    /// was promoted, kicked, or the group destroyed: its UserGroups entry is written as
    /// libsession writes it (priority, mute and notifications keep the values the entry has).
    Group(GroupEntry),
    /// A group was left or its invitation declined: its UserGroups entry is erased.
    ForgetGroup {
        /// The group's `03…` ID.
        group_id: String,
    },
    /// A community room was joined here: its UserGroups entry is written.
    Room(CommunityEntry),
    /// A community room was left here: its UserGroups entry is erased.
    ForgetRoom {
        /// The server's base URL.
        base_url: String,
        /// The room token.
        room: String,
    },
}

/// The UserGroups edit that says where the identity stands in a group now: set for invited,
/// joined (with the admin seed or the member auth data), kicked and destroyed (without
/// credentials, removed status 1 or 2, as libsession's `mark_kicked`/`mark_destroyed`); erased
/// when left. `None` for a record whose ID is not a group ID.
pub fn group_edit(rec: &crate::store::GroupRecord) -> Option<Edit> {
    use crate::store::GroupStatus;
    let id = rec
        .id
        .parse::<AccountId>()
        .ok()
        .filter(|id| id.prefix() == Some(Prefix::Group))?;
    let credentials = matches!(rec.status, GroupStatus::Invited | GroupStatus::Joined);
    let admin_seed = rec
        .admin_seed
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .filter(|_| credentials);
    let auth_data = match (&admin_seed, &rec.auth_data) {
        (None, Some(a)) if credentials => hex::decode(a).unwrap_or_default(),
        _ => Vec::new(),
    };
    let removed_status = match rec.status {
        GroupStatus::Kicked => 1,
        GroupStatus::Destroyed => 2,
        GroupStatus::Left => {
            return Some(Edit::ForgetGroup {
                group_id: id.to_string(),
            })
        }
        GroupStatus::Invited | GroupStatus::Joined => 0,
    };
    Some(Edit::Group(GroupEntry {
        id,
        name: clip(&rec.name).to_owned(),
        admin_seed,
        auth_data,
        invited: rec.status == GroupStatus::Invited,
        joined_at: i64::try_from(rec.created_at_ms / 1000).unwrap_or(0),
        priority: 0,
        removed_status,
        mute_until: 0,
    }))
}

/// What the API can ask about an identity's config sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Every config namespace was read to its end since start (pushes are allowed).
    pub pulled: bool,
    /// Another device of the account published device-group keys (namespace −21).
    pub other_device_keys: bool,
    /// The account's groups (UserGroups `g`), as last applied.
    pub groups: Vec<GroupEntry>,
    /// The account's communities (UserGroups `o`), as last applied.
    pub communities: Vec<CommunityEntry>,
    /// How many legacy groups the config lists.
    pub legacy_groups: usize,
}

#[derive(Debug, Default)]
struct Slot {
    edits: Vec<Edit>,
    wake: Arc<Notify>,
    status: SyncStatus,
}

/// Shared by the API (which queues edits and reads the status) and the pollers (which apply
/// and push the edits and keep the status).
#[derive(Debug, Default)]
pub struct SyncHub {
    slots: Mutex<HashMap<IdentityId, Slot>>,
    /// Orders local changes against the poller's writes of merged configs: a local change
    /// writes the store and queues its edit while holding it, and the poller writes only while
    /// holding it and no edit is queued, so a merge computed before a local change never
    /// overwrites that change (the next poll applies the edit and writes again).
    local: Mutex<()>,
}

impl SyncHub {
    fn with<T>(&self, id: IdentityId, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        f(slots.entry(id).or_default())
    }

    /// Queues an edit for the identity's configs and wakes its poller.
    pub fn edit(&self, id: IdentityId, edit: Edit) {
        self.with(id, |s| {
            if s.edits.len() >= MAX_QUEUED_EDITS {
                tracing::warn!(
                    identity = id,
                    "too many config changes waiting for the first pull; dropping the oldest"
                );
                s.edits.remove(0);
            }
            s.edits.push(edit);
            s.wake.notify_one();
        });
    }

    /// Held by a local change from its store write until its edit is queued (see `local`).
    pub fn local_change(&self) -> std::sync::MutexGuard<'_, ()> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the poller's store writes unless a local change is queued for the identity;
    /// `None` when it is (the writes wait for the next poll, which applies that change first).
    fn unless_edited<T>(&self, id: IdentityId, f: impl FnOnce() -> T) -> Option<T> {
        let _local = self.local_change();
        if self.with(id, |s| !s.edits.is_empty()) {
            return None;
        }
        Some(f())
    }

    /// True when edits wait for the identity's configs.
    pub fn has_edits(&self, id: IdentityId) -> bool {
        self.with(id, |s| !s.edits.is_empty())
    }

    /// What wakes the identity's poller when an edit is queued.
    pub fn waker(&self, id: IdentityId) -> Arc<Notify> {
        self.with(id, |s| Arc::clone(&s.wake))
    }

    /// The identity's sync status.
    pub fn status(&self, id: IdentityId) -> SyncStatus {
        self.with(id, |s| s.status.clone())
    }

    /// Forgets an identity (removed).
    pub fn forget(&self, id: IdentityId) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn take_edits(&self, id: IdentityId) -> Vec<Edit> {
        self.with(id, |s| std::mem::take(&mut s.edits))
    }

    fn update(&self, id: IdentityId, f: impl FnOnce(&mut SyncStatus)) {
        self.with(id, |s| f(&mut s.status));
    }
}

/// One identity's configs and how far its pulls got since start.
#[derive(Debug)]
pub struct Configs {
    configs: Vec<Config>,
    /// Whether the saved state was applied once since start.
    applied: bool,
    /// Config namespaces read to their end at least once since start.
    pulled: BTreeSet<i16>,
    /// When the current messages' expiry was last renewed since start ([`refresh`]).
    refreshed_ms: Option<u64>,
    /// Groups and rooms a merge took out of UserGroups (another device left them), to leave
    /// here at the next apply.
    dropped: Dropped,
}

/// What merges took out of UserGroups and is not applied yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Dropped {
    /// Group IDs.
    groups: BTreeSet<String>,
    /// Rooms, as (base URL, lower-case token).
    rooms: BTreeSet<(String, String)>,
}

impl Dropped {
    fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.rooms.is_empty()
    }

    /// Adds what is in `before` but not in `after` (UserGroups data before and after a merge).
    fn add_removed(&mut self, before: &Dropped, after: &Dropped) {
        self.groups
            .extend(before.groups.difference(&after.groups).cloned());
        self.rooms
            .extend(before.rooms.difference(&after.rooms).cloned());
    }

    /// The groups and rooms of a UserGroups config's data.
    fn listed(data: &session_proto::config::Data) -> Dropped {
        Dropped {
            groups: user_groups::groups(data)
                .into_iter()
                .map(|g| g.id.to_string())
                .collect(),
            rooms: user_groups::communities(data)
                .into_iter()
                .map(|c| (c.base_url, c.room.to_ascii_lowercase()))
                .collect(),
        }
    }
}

/// What a poller keeps of [`Configs`] it let go between polls ([`Configs::park`]); the
/// default is a start's (nothing applied or pulled yet).
#[derive(Debug, Clone, Default)]
pub struct Parked {
    applied: bool,
    pulled: BTreeSet<i16>,
    refreshed_ms: Option<u64>,
}

impl Parked {
    /// True when a poll that brought no config messages has nothing to do with the configs
    /// (when no edit is queued either): they were applied, every namespace was read to its end
    /// since start, and their expiry is not due for renewal at `now_ms`.
    pub fn settled(&self, now_ms: u64) -> bool {
        self.applied
            && USER_CONFIGS
                .iter()
                .all(|t| self.pulled.contains(&t.namespace))
            && !refresh_due(self.refreshed_ms, now_ms)
    }
}

/// Whether config messages last renewed at `refreshed_ms` (`None`: not since start) are due at
/// `now_ms`.
fn refresh_due(refreshed_ms: Option<u64>, now_ms: u64) -> bool {
    refreshed_ms.is_none_or(|t| now_ms.saturating_sub(t) >= CONFIG_REFRESH_EVERY_MS)
}

/// True when a poll brought config messages (or a config namespace has more to read).
pub fn brings_configs(poll: &Poll) -> bool {
    poll.namespaces.iter().any(|part| {
        USER_CONFIGS.iter().any(|t| t.namespace == part.namespace)
            && matches!(&part.result, Ok(f) if !f.messages.is_empty() || f.more)
    })
}

/// Notes in the hub whether the poll found another device's device-group keys (namespace
/// −21); [`absorb`] does it too.
pub(super) fn device_keys(ctx: &Ctx, id: IdentityId, poll: &Poll) {
    for part in &poll.namespaces {
        if part.namespace != DEVICE_KEYS_NAMESPACE {
            continue;
        }
        if let Ok(f) = &part.result {
            if !f.messages.is_empty() {
                ctx.sync.update(id, |s| {
                    if !s.other_device_keys {
                        tracing::info!(
                            identity = id,
                            "another device of the account published device-group keys; \
                             messages in the new format cannot be read here yet"
                        );
                    }
                    s.other_device_keys = true;
                });
            }
        }
    }
}

impl Configs {
    /// The identity's configs as last saved (fresh ones where nothing was saved; a damaged
    /// dump is logged and started over, the swarm still has the messages).
    pub fn load(
        store: &crate::store::Store,
        id: IdentityId,
        keys: &IdentityKeys,
    ) -> Result<Configs, StoreError> {
        let now = now_ms();
        let mut configs = Vec::new();
        for ty in USER_CONFIGS {
            let c = match store.config_dump(id, i32::from(ty.namespace))? {
                Some(d) => Config::load(ty, ConfigKeys::user(keys), &d, now).unwrap_or_else(|e| {
                    tracing::warn!(namespace = ty.namespace, cause = %e, "config dump unreadable, starting over");
                    Config::new(ty, ConfigKeys::user(keys))
                }),
                None => Config::new(ty, ConfigKeys::user(keys)),
            };
            configs.push(c);
        }
        Ok(Configs {
            configs,
            applied: false,
            pulled: BTreeSet::new(),
            refreshed_ms: None,
            dropped: Dropped::default(),
        })
    }

    /// [`Configs::load`] for a poller that let them go between polls ([`Configs::park`]):
    /// the flags since start come back with them.
    pub fn unpark(
        store: &crate::store::Store,
        id: IdentityId,
        keys: &IdentityKeys,
        parked: Parked,
    ) -> Result<Configs, StoreError> {
        let mut configs = Configs::load(store, id, keys)?;
        configs.applied = parked.applied;
        configs.pulled = parked.pulled;
        configs.refreshed_ms = parked.refreshed_ms;
        Ok(configs)
    }

    /// True when the configs can be let go and loaded again from their dumps unchanged: each
    /// is saved and has nothing to push (a dirty one would load as a new seqno).
    pub fn parkable(&self) -> bool {
        self.dropped.is_empty()
            && self
                .configs
                .iter()
                .all(|c| !c.needs_dump() && !c.needs_push())
    }

    /// Lets the configs go (a quiet poller need not hold four parsed configs between polls
    /// minutes apart), keeping what their dumps do not say: whether they were applied and which
    /// namespaces were pulled since start.
    pub fn park(self) -> Parked {
        Parked {
            applied: self.applied,
            pulled: self.pulled,
            refreshed_ms: self.refreshed_ms,
        }
    }

    /// The config of `namespace`.
    pub fn get(&self, namespace: i16) -> Option<&Config> {
        self.configs
            .iter()
            .find(|c| c.config_type().namespace == namespace)
    }

    fn get_mut(&mut self, namespace: i16) -> Option<&mut Config> {
        self.configs
            .iter_mut()
            .find(|c| c.config_type().namespace == namespace)
    }

    /// Every config namespace was read to its end once since start.
    pub fn pulled(&self) -> bool {
        USER_CONFIGS
            .iter()
            .all(|t| self.pulled.contains(&t.namespace))
    }

    /// Applies one edit to the configs. Returns whether a config changed; an edit the configs
    /// cannot take (a malformed Account ID) is logged and dropped.
    pub fn apply_edit(&mut self, edit: &Edit, now_ms: u64) -> bool {
        let r = match edit {
            Edit::Profile { name } => self.edit_ns(2, |d| {
                let name = clip(name.as_deref().unwrap_or(""));
                user_profile::set_name(d, name).map(|_| ())
            }),
            Edit::Nickname {
                account_id,
                nickname,
            } => self.edit_contact(account_id, |c| {
                c.nickname = clip(nickname.as_deref().unwrap_or("")).to_owned()
            }),
            Edit::AddContact { account_id } => self.edit_contact(account_id, |_| {}),
            Edit::Accept { account_id } => self.edit_contact(account_id, |c| {
                c.approved = true;
                if c.priority < 0 {
                    c.priority = 0;
                }
            }),
            Edit::Hide { account_id } => {
                let hid = self.edit_contact(account_id, |c| c.priority = -1);
                let erased = match peer(account_id) {
                    Some(id) => self.edit_ns(4, |d| {
                        convo_info_volatile::erase(d, &Convo::OneToOne(id));
                        Ok(())
                    }),
                    None => Ok(false),
                };
                hid.and_then(|a| erased.map(|b| a | b))
            }
            Edit::Block {
                account_id,
                blocked,
            } => self.edit_contact(account_id, |c| c.blocked = *blocked),
            Edit::Read {
                account_id,
                read_ms,
            } => match peer(account_id) {
                Some(id) => self.edit_ns(4, |d| {
                    let state = ReadState {
                        last_read_ms: i64::try_from(*read_ms).unwrap_or(i64::MAX),
                        unread: false,
                    };
                    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
                    convo_info_volatile::set(d, &Convo::OneToOne(id), state, None, now);
                    Ok(())
                }),
                None => Ok(false),
            },
            Edit::Group(g) => self.edit_ns(5, |d| {
                let mut g = g.clone();
                if let Some(old) = user_groups::groups(d).into_iter().find(|o| o.id == g.id) {
                    g.priority = old.priority;
                    g.mute_until = old.mute_until;
                    if old.joined_at > 0 {
                        g.joined_at = old.joined_at;
                    }
                }
                user_groups::set_group(d, &g)
            }),
            Edit::ForgetGroup { group_id } => match group_id.parse::<AccountId>() {
                Ok(id) if id.prefix() == Some(Prefix::Group) => self.edit_ns(5, |d| {
                    user_groups::erase_group(d, &id);
                    Ok(())
                }),
                _ => Ok(false),
            },
            Edit::Room(c) => self.edit_ns(5, |d| {
                let mut c = c.clone();
                let url = user_groups::canonical_url(&c.base_url);
                if let Some(old) = user_groups::communities(d)
                    .into_iter()
                    .find(|o| o.base_url == url && o.room.to_lowercase() == c.room.to_lowercase())
                {
                    c.priority = old.priority;
                    if old.joined_at > 0 {
                        c.joined_at = old.joined_at;
                    }
                }
                user_groups::set_community(d, &c);
                Ok(())
            }),
            Edit::ForgetRoom { base_url, room } => self.edit_ns(5, |d| {
                user_groups::erase_community(d, base_url, room);
                Ok(())
            }),
        };
        match r {
            Ok(changed) => changed,
            Err(e) => {
                tracing::debug!(cause = %e, "a config change was not taken");
                false
            }
        }
    }

    /// Runs `f` on the data of `namespace`; whether it changed.
    fn edit_ns(
        &mut self,
        namespace: i16,
        f: impl FnOnce(&mut session_proto::config::Data) -> Result<(), session_proto::err::ConfigError>,
    ) -> Result<bool, session_proto::err::ConfigError> {
        let Some(c) = self.get_mut(namespace) else {
            return Ok(false);
        };
        let before = c.data().clone();
        c.edit(f)??;
        Ok(c.data() != &before)
    }

    fn edit_contact(
        &mut self,
        account_id: &str,
        f: impl FnOnce(&mut contacts::Contact),
    ) -> Result<bool, session_proto::err::ConfigError> {
        let Some(id) = peer(account_id) else {
            return Ok(false);
        };
        self.edit_ns(3, |d| {
            let mut c = contacts::get_or_new(d, &id);
            if c.created == 0 {
                c.created = i64::try_from(now_ms() / 1000).unwrap_or(0);
            }
            f(&mut c);
            contacts::set(d, &c)
        })
    }
}

/// A standard (05) Account ID, else `None`.
fn peer(account_id: &str) -> Option<AccountId> {
    account_id
        .parse::<AccountId>()
        .ok()
        .filter(|id| id.prefix() == Some(Prefix::Standard))
}

/// `s` cut to [`MAX_NAME_BYTES`] at a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_NAME_BYTES {
        return s;
    }
    let mut end = MAX_NAME_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Merges the config namespaces of one batch poll (messages not handed out before), applies
/// the queued edits once every namespace was pulled, saves changed dumps and applies changes to
/// the store. A namespace that failed in this poll is skipped (the mailbox does not move past
/// it, so the next poll asks again). Returns how many config messages were new.
pub(super) async fn absorb(
    ctx: &Ctx,
    record: &IdentityRecord,
    state: &mut Configs,
    poll: &Poll,
) -> Result<usize, PollError> {
    let id = record.id;
    let mut fresh = 0;
    let mut changed = !state.applied;
    device_keys(ctx, id, poll);
    for part in &poll.namespaces {
        let ns = part.namespace;
        if state.get(ns).is_none() {
            continue;
        }
        let fetched = match &part.result {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(identity = id, namespace = ns, cause = %e, "config namespace not read this poll");
                continue;
            }
        };
        if !fetched.more {
            state.pulled.insert(ns);
        }
        if fetched.messages.is_empty() {
            continue;
        }
        let Some(config) = state.get_mut(ns) else {
            continue;
        };
        // Hashes were checked against the data by session-net.
        let msgs: Vec<(&str, &[u8])> = fetched
            .messages
            .iter()
            .map(|m| (m.hash.as_str(), m.data.0.as_slice()))
            .collect();
        fresh += msgs.len();
        let listed_before = (ns == USER_GROUPS_NS).then(|| Dropped::listed(config.data()));
        let report = config.merge(&msgs, now_ms());
        let listed = listed_before.map(|before| (before, Dropped::listed(config.data())));
        for (hash, cause) in &report.skipped {
            tracing::debug!(identity = id, namespace = ns, %hash, %cause, "config message skipped");
        }
        changed |= report.changed;
        if let Some((before, after)) = listed {
            state.dropped.add_removed(&before, &after);
        }
    }
    if state.pulled() {
        let edits = ctx.sync.take_edits(id);
        let now = now_ms();
        for e in &edits {
            changed |= state.apply_edit(e, now);
        }
        ctx.sync.update(id, |s| s.pulled = true);
    }
    save_dumps(ctx, id, state).await?;
    if changed {
        // Not applied when a local change came in meanwhile: the next poll applies it first.
        state.applied = apply(ctx, record, state).await?;
        if state.applied {
            state.dropped = Dropped::default();
        }
    }
    Ok(fresh)
}

async fn save_dumps(ctx: &Ctx, id: IdentityId, state: &mut Configs) -> Result<(), PollError> {
    let now = now_ms();
    let mut dumps = Vec::new();
    for c in &mut state.configs {
        if c.needs_dump() {
            dumps.push((i32::from(c.config_type().namespace), c.dump(now)));
        }
    }
    if dumps.is_empty() {
        return Ok(());
    }
    ctx.blocking(move |s| {
        for (ns, d) in &dumps {
            s.set_config_dump(id, *ns, d)?;
        }
        Ok(())
    })
    .await
    .map_err(super::poller::engine_err)
}

/// Pushes every config that needs it in one `sequence` request to the account's own swarm: a
/// `store` per message (TTL [`CONFIG_TTL_MS`]), then one `delete` of the obsolete hashes.
/// Nothing happens before the first pull. Returns how many configs were pushed.
pub(super) async fn push(
    ctx: &Ctx,
    record: &IdentityRecord,
    state: &mut Configs,
    account: &UserPubkey,
    auth: &Auth,
) -> Result<usize, PollError> {
    if !state.pulled() {
        return Ok(0);
    }
    let id = record.id;
    // (config index, seqno, how many stores)
    let mut plan: Vec<(usize, i64, usize)> = Vec::new();
    let mut ops = Vec::new();
    let mut obsolete: BTreeSet<String> = BTreeSet::new();
    for (i, c) in state.configs.iter_mut().enumerate() {
        if !c.needs_push() {
            continue;
        }
        let ns = c.config_type().namespace;
        let p = match c.push() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(identity = id, namespace = ns, cause = %e, "cannot build a config push");
                continue;
            }
        };
        plan.push((i, p.seqno, p.messages.len()));
        obsolete.extend(p.obsolete);
        for data in p.messages {
            ops.push(Op::Store {
                namespace: ns,
                data,
                ttl_ms: CONFIG_TTL_MS,
            });
        }
    }
    if plan.is_empty() {
        return Ok(0);
    }
    let obsolete: Vec<String> = obsolete.into_iter().collect();
    if !obsolete.is_empty() {
        ops.push(Op::Delete {
            hashes: obsolete.clone(),
        });
    }
    let results = ctx.net.sequence(account, auth, &ops).await;
    let mut pushed = 0;
    match results {
        Err(e) => {
            for (i, seqno, _) in &plan {
                state.configs[*i].push_failed(*seqno);
            }
            save_dumps(ctx, id, state).await?;
            if matches!(e, NetError::Shutdown) {
                return Err(PollError::Net(e));
            }
            tracing::debug!(identity = id, cause = %e, "config push failed; will retry");
            return Ok(0);
        }
        Ok(results) => {
            let mut it = results.into_iter();
            for (i, seqno, n) in &plan {
                let mut hashes = Vec::new();
                let mut ok = true;
                for _ in 0..*n {
                    match it.next() {
                        Some(Ok(OpOutcome::Stored(s))) => hashes.push(s.hash),
                        Some(Err(e)) => {
                            tracing::debug!(identity = id, cause = %e, "config store failed");
                            ok = false;
                        }
                        _ => ok = false,
                    }
                }
                let c = &mut state.configs[*i];
                if ok {
                    c.confirm_pushed(*seqno, &hashes);
                    pushed += 1;
                } else {
                    c.push_failed(*seqno);
                }
            }
            if let Some(Ok(OpOutcome::Deleted(_))) = it.next() {
                // Deleted, or already gone: either way nothing is left to delete.
                for c in &mut state.configs {
                    c.forget_obsolete(&obsolete);
                }
            }
        }
    }
    save_dumps(ctx, id, state).await?;
    tracing::debug!(identity = id, configs = pushed, "configs pushed");
    Ok(pushed)
}

/// Renews the expiry of the account's current config messages (and of pending multipart
/// parts) to now + [`CONFIG_TTL_MS`] in one `expire` to its own swarm, when due
/// ([`CONFIG_REFRESH_EVERY_MS`]) and once every namespace was pulled: so the account's settings
/// outlive 30 days without a change while this daemon runs (config-sync §4.1). It only extends
/// (`"extend": true`): a later expiry set by another device is kept. A failure is tried again
/// at the next poll. Returns how many hashes it renewed.
pub(super) async fn refresh(
    ctx: &Ctx,
    record: &IdentityRecord,
    state: &mut Configs,
    account: &UserPubkey,
    auth: &Auth,
) -> Result<usize, PollError> {
    let now = now_ms();
    if !state.pulled() || !refresh_due(state.refreshed_ms, now) {
        return Ok(0);
    }
    let hashes: BTreeSet<String> = state
        .configs
        .iter()
        .flat_map(|c| c.active_hashes(now))
        .collect();
    if hashes.is_empty() {
        state.refreshed_ms = Some(now);
        return Ok(0);
    }
    let hashes: Vec<String> = hashes.into_iter().collect();
    let expiry = now + CONFIG_TTL_MS;
    match ctx
        .net
        .expire(account, &hashes, expiry, ExpireMode::Extend, auth)
        .await
    {
        Ok(_) => {
            state.refreshed_ms = Some(now);
            tracing::debug!(
                identity = record.id,
                hashes = hashes.len(),
                "config expiry renewed"
            );
            Ok(hashes.len())
        }
        Err(NetError::Shutdown) => Err(PollError::Net(NetError::Shutdown)),
        Err(e) => {
            tracing::debug!(identity = record.id, cause = %e, "config expiry not renewed; will retry");
            Ok(0)
        }
    }
}

/// Applies the configs to the store: the identity's display name, the contacts, the 1:1 read
/// positions; and the groups and communities to the hub. Only differences are written.
/// Returns false, having written nothing, when a local change was queued meanwhile.
async fn apply(ctx: &Ctx, record: &IdentityRecord, state: &Configs) -> Result<bool, PollError> {
    let id = record.id;
    let name = state
        .get(2)
        .and_then(|c| user_profile::name(c.data()))
        .filter(|n| Some(n) != record.display_name.as_ref());
    let identity = record.name.clone();
    let synced: Vec<SyncedContact> = state
        .get(3)
        .map(|c| contacts::list(c.data()))
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.session_id.prefix() == Some(Prefix::Standard))
        .map(|c| SyncedContact {
            account_id: c.session_id.to_string(),
            nickname: Some(c.nickname).filter(|n| !n.is_empty()),
            profile_name: Some(c.name).filter(|n| !n.is_empty()),
            approved: c.approved,
            approved_me: c.approved_me,
            blocked: c.blocked,
        })
        .collect();
    let reads: Vec<(String, ReadState)> = state
        .get(4)
        .map(|c| convo_info_volatile::list(c.data()))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(c, r)| match c {
            Convo::OneToOne(id) => Some((id.to_string(), r)),
            _ => None,
        })
        .collect();
    let (groups, rooms) = state.get(5).map_or_else(Default::default, |c| {
        (
            user_groups::groups(c.data()),
            user_groups::communities(c.data()),
        )
    });
    let (adopt_groups, adopt_rooms) = (groups.clone(), rooms.clone());
    let dropped = state.dropped.clone();
    let now = now_ms();
    let hub = Arc::clone(&ctx.sync);
    let written = ctx
        .blocking(move |s| {
            hub.unless_edited(id, || {
                // Groups and rooms another device left (a merge took them out of UserGroups)
                // are left here too, without a word to them: that device told them.
                for group in &dropped.groups {
                    super::groups::left_elsewhere(s, id, group, now)?;
                }
                for (base_url, token) in &dropped.rooms {
                    super::community::left_elsewhere(s, id, base_url, token, now)?;
                }
                // Groups and rooms of the account's other devices are joined here too (only
                // ones this daemon does not know: what it left or was removed from stays so).
                if !adopt_groups.is_empty() {
                    super::groups::adopt(s, id, &adopt_groups, now)?;
                }
                if !adopt_rooms.is_empty() {
                    super::community::adopt(s, id, &adopt_rooms, now)?;
                }
                if name.is_some() {
                    s.set_display_name(&identity, name.as_deref())?;
                }
                for c in &synced {
                    s.sync_contact(id, c, now)?;
                }
                for (peer, r) in &reads {
                    let read_ms = u64::try_from(r.last_read_ms).unwrap_or(0);
                    s.sync_read(id, peer, read_ms, r.unread, now)?;
                }
                Ok(())
            })
            .transpose()
        })
        .await
        .map_err(super::poller::engine_err)?;
    if written.is_none() {
        return Ok(false);
    }
    if let Some(g) = state.get(5) {
        let legacy = user_groups::legacy_group_count(g.data());
        ctx.sync.update(id, |s| {
            s.groups = groups;
            s.communities = rooms;
            s.legacy_groups = legacy;
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs() -> Configs {
        let keys = IdentityKeys::from_seed16(&[9; 16]);
        Configs {
            configs: USER_CONFIGS
                .iter()
                .map(|t| Config::new(*t, ConfigKeys::user(&keys)))
                .collect(),
            applied: false,
            pulled: BTreeSet::new(),
            refreshed_ms: None,
            dropped: Dropped::default(),
        }
    }

    const BOB: &str = "050000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn edits_change_the_configs_desktop_would() {
        let mut c = configs();
        let now = 1_800_000_000_000;
        assert!(c.apply_edit(
            &Edit::Profile {
                name: Some("Me".into())
            },
            now
        ));
        assert_eq!(
            user_profile::name(c.get(2).expect("profile").data()).as_deref(),
            Some("Me")
        );
        assert!(c.apply_edit(
            &Edit::Nickname {
                account_id: BOB.into(),
                nickname: Some("Bobby".into())
            },
            now
        ));
        assert!(c.apply_edit(
            &Edit::Block {
                account_id: BOB.into(),
                blocked: true
            },
            now
        ));
        // The same edit again changes nothing.
        assert!(!c.apply_edit(
            &Edit::Block {
                account_id: BOB.into(),
                blocked: true
            },
            now
        ));
        let bob: AccountId = BOB.parse().expect("id");
        let k = contacts::get(c.get(3).expect("contacts").data(), &bob).expect("bob");
        assert_eq!((k.nickname.as_str(), k.blocked), ("Bobby", true));
        assert!(c.apply_edit(
            &Edit::Read {
                account_id: BOB.into(),
                read_ms: now - 5
            },
            now
        ));
        let r = convo_info_volatile::get(c.get(4).expect("convo").data(), &Convo::OneToOne(bob))
            .expect("read state");
        assert_eq!(r.last_read_ms, (now - 5) as i64);
        assert!(c.apply_edit(
            &Edit::Hide {
                account_id: BOB.into()
            },
            now
        ));
        assert!(
            convo_info_volatile::get(c.get(4).expect("convo").data(), &Convo::OneToOne(bob))
                .is_none()
        );
        assert_eq!(
            contacts::get(c.get(3).expect("contacts").data(), &bob)
                .expect("bob")
                .priority,
            -1
        );
        assert!(c.apply_edit(
            &Edit::Accept {
                account_id: BOB.into()
            },
            now
        ));
        let k = contacts::get(c.get(3).expect("contacts").data(), &bob).expect("bob");
        assert_eq!((k.approved, k.priority), (true, 0));
        // Not an Account ID, or not a 1:1 one: nothing changes.
        for bad in ["nope", "03aa", &format!("03{}", &BOB[2..])] {
            assert!(
                !c.apply_edit(
                    &Edit::Block {
                        account_id: bad.into(),
                        blocked: true
                    },
                    now
                ),
                "{bad}"
            );
        }
        // A name over 100 bytes is cut at a character boundary.
        let long = "é".repeat(80);
        assert!(c.apply_edit(&Edit::Profile { name: Some(long) }, now));
        let n = user_profile::name(c.get(2).expect("profile").data()).expect("name");
        assert_eq!(n, "é".repeat(50));
    }

    /// Where the identity stands in a group becomes its UserGroups entry: credentials while
    /// invited or joined, none and a removed status when kicked or destroyed, erased when left;
    /// a room joined or left here is written or erased; the entry's priority survives.
    #[test]
    fn group_and_room_edits_write_usergroups_as_libsession_does() {
        use crate::store::{GroupRecord, GroupStatus};
        let mut c = configs();
        let now = 1_800_000_000_000;
        let seed = [4u8; 32];
        let admin = session_proto::groups::GroupAdminKeys::from_seed(&seed);
        let mut rec = GroupRecord {
            id: admin.id().to_string(),
            name: "Team".into(),
            description: String::new(),
            status: GroupStatus::Invited,
            admin_seed: None,
            auth_data: Some(hex::encode([7u8; 100])),
            inviter: None,
            members: Vec::new(),
            keys_messages: Vec::new(),
            info_dump: None,
            members_dump: None,
            created_at_ms: 1_700_000_000_000,
        };
        let entry = |c: &Configs| {
            user_groups::groups(c.get(5).expect("groups").data())
                .into_iter()
                .find(|g| g.id == *admin.id())
        };
        let edit = group_edit(&rec).expect("an edit");
        assert!(c.apply_edit(&edit, now));
        assert!(!c.apply_edit(&edit, now), "the same edit changes nothing");
        let g = entry(&c).expect("listed");
        assert!(g.invited && g.admin_seed.is_none());
        assert_eq!((g.auth_data.len(), g.joined_at), (100, 1_700_000_000));
        // Pinned on the phone meanwhile: the priority stays through the next edits.
        c.edit_ns(5, |d| {
            let mut g = g.clone();
            g.priority = 3;
            user_groups::set_group(d, &g)
        })
        .expect("pin");
        rec.status = GroupStatus::Joined;
        rec.admin_seed = Some(hex::encode(seed));
        assert!(c.apply_edit(&group_edit(&rec).expect("edit"), now));
        let g = entry(&c).expect("listed");
        assert_eq!(
            (g.admin_seed, g.invited, g.priority),
            (Some(seed), false, 3)
        );
        assert!(g.auth_data.is_empty());
        rec.status = GroupStatus::Kicked;
        assert!(c.apply_edit(&group_edit(&rec).expect("edit"), now));
        let g = entry(&c).expect("listed");
        assert_eq!(
            (g.admin_seed, g.auth_data.len(), g.removed_status),
            (None, 0, 1)
        );
        rec.status = GroupStatus::Destroyed;
        assert!(c.apply_edit(&group_edit(&rec).expect("edit"), now));
        assert_eq!(entry(&c).expect("listed").removed_status, 2);
        rec.status = GroupStatus::Left;
        let forget = group_edit(&rec).expect("edit");
        assert!(matches!(forget, Edit::ForgetGroup { .. }));
        assert!(c.apply_edit(&forget, now));
        assert!(entry(&c).is_none());
        // Not a group ID: no edit, and a forged one changes nothing.
        rec.id = BOB.into();
        assert!(group_edit(&rec).is_none());
        assert!(!c.apply_edit(
            &Edit::ForgetGroup {
                group_id: BOB.into()
            },
            now
        ));

        let room = CommunityEntry {
            base_url: "http://127.0.0.1:8080/".into(),
            pubkey: [2; 32],
            room: "Lobby".into(),
            priority: 0,
            joined_at: 1_700_000_000,
        };
        assert!(c.apply_edit(&Edit::Room(room.clone()), now));
        let rooms = user_groups::communities(c.get(5).expect("groups").data());
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].base_url, "http://127.0.0.1:8080");
        assert!(c.apply_edit(
            &Edit::ForgetRoom {
                base_url: room.base_url.clone(),
                room: "lobby".into()
            },
            now
        ));
        assert!(user_groups::communities(c.get(5).expect("groups").data()).is_empty());
    }

    #[test]
    fn nothing_is_pulled_until_every_namespace_is() {
        let mut c = configs();
        assert!(!c.pulled());
        for ns in [2, 3, 4] {
            c.pulled.insert(ns);
        }
        assert!(!c.pulled());
        c.pulled.insert(5);
        assert!(c.pulled());
    }

    fn ctx(store: crate::store::Store) -> Ctx {
        Ctx {
            net: session_net::NetClient::with_https(
                session_net::NetConfig::devnet(vec!["http://127.0.0.1:9/".into()]),
                Arc::new(session_net::MemoryPoolStore::new()),
            ),
            store,
            outbox: Default::default(),
            poll: Default::default(),
            outbox_wake: Arc::new(Notify::new()),
            identities_changed: Arc::new(Notify::new()),
            activity: Mutex::new(HashMap::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            sync: Arc::new(SyncHub::default()),
            files: None,
            local_accounts: Mutex::new(Default::default()),
            poll_budget: crate::engine::budget::Budget::new(50),
        }
    }

    /// A store in a temp dir (kept while the first value lives) with identity "me" from
    /// `seed` (16 bytes of it), a [`Ctx`] on it, and its configs as loaded.
    fn identity(
        tag: &str,
        seed: u8,
    ) -> (
        crate::store::tests::TempDir,
        crate::store::Store,
        IdentityKeys,
        IdentityRecord,
        Ctx,
        Configs,
    ) {
        let dir = crate::store::tests::TempDir::new(tag);
        std::fs::create_dir_all(dir.path()).expect("dir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let keys = IdentityKeys::from_seed16(&[seed; 16]);
        let record = store
            .add_identity("me", &keys.account_id().to_string(), keys.seed(), 1)
            .expect("identity");
        let ctx = ctx(store.clone());
        let state = Configs::load(&store, record.id, &keys).expect("configs");
        (dir, store, keys, record, ctx, state)
    }

    fn poll(contacts_ok: bool) -> Poll {
        let ok = || {
            Ok(session_net::Fetched {
                messages: Vec::new(),
                more: false,
                last_hash: None,
                repeats: 0,
            })
        };
        Poll {
            member: session_net::Snode {
                ed25519: [1; 32],
                x25519: [2; 32],
                ip: std::net::Ipv4Addr::LOCALHOST,
                port: 1,
            },
            namespaces: [2, 3, 4, 5]
                .into_iter()
                .map(|ns| session_net::NamespacePoll {
                    namespace: ns,
                    result: if ns == 3 && !contacts_ok {
                        Err(NetError::NotRun)
                    } else {
                        ok()
                    },
                })
                .collect(),
            at_ms: 0,
            swarm: Vec::new(),
        }
    }

    /// A restored identity whose Contacts read failed in its first poll keeps the API's edit
    /// waiting and pushes nothing; once every namespace was read, the edit lands.
    #[tokio::test]
    async fn edits_wait_for_the_first_complete_pull() {
        let (_dir, store, keys, record, ctx, mut state) = identity("configsync", 9);
        ctx.sync.edit(
            record.id,
            Edit::Nickname {
                account_id: BOB.into(),
                nickname: Some("Bobby".into()),
            },
        );
        let account = UserPubkey(*keys.account_id().as_bytes());
        let auth = Auth::Account(keys.signing_key().clone());

        absorb(&ctx, &record, &mut state, &poll(false))
            .await
            .expect("absorb");
        assert!(!state.pulled() && !ctx.sync.status(record.id).pulled);
        assert!(state
            .get(3)
            .is_some_and(|c| !c.needs_push() && c.seqno() == 0));
        // Not pulled: no push is even tried (the client has no network to try it on).
        assert_eq!(
            push(&ctx, &record, &mut state, &account, &auth)
                .await
                .expect("push"),
            0
        );

        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(state.pulled() && ctx.sync.status(record.id).pulled);
        let c = state.get(3).expect("contacts");
        assert!(c.needs_push() && c.seqno() == 1);
        let bob: AccountId = BOB.parse().expect("id");
        assert_eq!(
            contacts::get(c.data(), &bob).expect("bob").nickname,
            "Bobby"
        );
        // The dirty config is saved: a restart pushes it.
        let again = Configs::load(&store, record.id, &keys).expect("configs");
        assert!(again.get(3).is_some_and(|c| c.needs_push()));
    }

    /// A group and a room that another device of the account left (a merge takes them out of
    /// UserGroups) are left here too; ones that were never in the config are not.
    #[tokio::test]
    async fn what_another_device_left_is_left_here() {
        use crate::store::GroupStatus;
        let (_dir, store, keys, record, ctx, mut state) = identity("configsync-left", 6);
        let admin = session_proto::groups::GroupAdminKeys::from_seed(&[4; 32]);
        let group = GroupEntry {
            id: *admin.id(),
            name: "Team".into(),
            admin_seed: Some([4; 32]),
            auth_data: Vec::new(),
            invited: false,
            joined_at: 1_700_000_000,
            priority: 0,
            removed_status: 0,
            mute_until: 0,
        };
        let room = |token: &str| CommunityEntry {
            base_url: "http://127.0.0.1:9".into(),
            pubkey: [3; 32],
            room: token.into(),
            priority: 0,
            joined_at: 1_700_000_000,
        };
        // The phone's UserGroups: the group and the rooms Lobby and Dev.
        let mut phone = Config::new(USER_CONFIGS[3], ConfigKeys::user(&keys));
        assert_eq!(phone.config_type().namespace, USER_GROUPS_NS);
        phone
            .edit(|d| {
                user_groups::set_group(d, &group)?;
                user_groups::set_community(d, &room("Lobby"));
                user_groups::set_community(d, &room("dev"));
                Ok::<_, session_proto::err::ConfigError>(())
            })
            .expect("writable")
            .expect("valid");
        let phone_poll = |phone: &mut Config, hash: &str| {
            let push = phone.push().expect("push");
            phone.confirm_pushed(push.seqno, &[hash.to_owned()]);
            let mut p = poll(true);
            for part in &mut p.namespaces {
                if part.namespace == USER_GROUPS_NS {
                    part.result = Ok(session_net::Fetched {
                        messages: vec![session_proto::storage_rpc::RetrievedMessage {
                            hash: hash.into(),
                            timestamp: 1,
                            expiration: u64::MAX,
                            data: session_proto::storage_rpc::Base64Bytes(push.messages[0].clone()),
                        }],
                        more: false,
                        last_hash: Some(hash.into()),
                        repeats: 0,
                    });
                }
            }
            p
        };
        let joined = |token: &str| {
            let address = format!("http://127.0.0.1:9/{}", token.to_ascii_lowercase());
            store
                .community_room(record.id, &address)
                .expect("room")
                .is_some()
        };
        let status = || {
            store
                .group(record.id, &admin.id().to_string())
                .expect("group")
                .map(|g| g.status)
        };
        let p = phone_poll(&mut phone, "h1");
        absorb(&ctx, &record, &mut state, &p).await.expect("absorb");
        assert!(joined("lobby") && joined("dev"));
        assert_eq!(status(), Some(GroupStatus::Joined));
        // A room joined only here (not pushed yet, as far as the config goes) stays.
        let here = crate::store::RoomRecord {
            address: "http://127.0.0.1:9/mine".into(),
            base_url: "http://127.0.0.1:9".into(),
            token: "mine".into(),
            pubkey: hex::encode([3; 32]),
            joined_at_ms: 1,
            seqno: None,
            state: None,
            last_poll_ms: 0,
            last_error: String::new(),
        };
        assert!(store.join_community_room(record.id, &here).expect("join"));

        // The phone leaves the group and Lobby.
        phone
            .edit(|d| {
                user_groups::erase_group(d, admin.id());
                user_groups::erase_community(d, "http://127.0.0.1:9", "lobby");
                Ok::<_, session_proto::err::ConfigError>(())
            })
            .expect("writable")
            .expect("valid");
        let p = phone_poll(&mut phone, "h2");
        absorb(&ctx, &record, &mut state, &p).await.expect("absorb");
        assert!(!joined("lobby") && joined("dev") && joined("mine"));
        assert_eq!(status(), Some(GroupStatus::Left));
        assert!(state.dropped.is_empty() && state.parkable());
        // A later poll with nothing new leaves nothing more.
        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(joined("dev") && joined("mine"));
    }

    /// A local unblock made while a poll's merge (still saying blocked) was being applied is not
    /// overwritten by it: the merge's writes wait, and the next poll applies the unblock first.
    #[tokio::test]
    async fn a_merge_never_overwrites_a_local_change_made_meanwhile() {
        let (_dir, store, _keys, record, ctx, mut state) = identity("configsync-race", 7);
        let block = |blocked| Edit::Block {
            account_id: BOB.into(),
            blocked,
        };
        store
            .set_contact_blocked(record.id, BOB, true, 1)
            .expect("block");
        ctx.sync.edit(record.id, block(true));
        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(store.contact(record.id, BOB).expect("contact").blocked);

        // The unblock lands in the store and the hub after the merge was computed.
        {
            let _local = ctx.sync.local_change();
            store
                .set_contact_blocked(record.id, BOB, false, 2)
                .expect("unblock");
            ctx.sync.edit(record.id, block(false));
        }
        assert!(!apply(&ctx, &record, &state).await.expect("apply"));
        assert!(!store.contact(record.id, BOB).expect("contact").blocked);
        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(state.applied);
        assert!(!store.contact(record.id, BOB).expect("contact").blocked);
        let bob: AccountId = BOB.parse().expect("id");
        assert!(
            !contacts::get(state.get(3).expect("contacts").data(), &bob)
                .expect("bob")
                .blocked
        );
    }

    #[test]
    fn the_hub_queues_edits_and_bounds_them() {
        let hub = SyncHub::default();
        hub.edit(
            1,
            Edit::AddContact {
                account_id: BOB.into(),
            },
        );
        assert_eq!(hub.take_edits(1).len(), 1);
        assert!(hub.take_edits(1).is_empty());
        for _ in 0..MAX_QUEUED_EDITS + 5 {
            hub.edit(
                2,
                Edit::AddContact {
                    account_id: BOB.into(),
                },
            );
        }
        assert_eq!(hub.take_edits(2).len(), MAX_QUEUED_EDITS);
        assert!(!hub.status(3).pulled);
    }

    /// A poller lets its configs go only when nothing of theirs is unsaved or unpushed, and
    /// gets them back with the flags since start; a poll with nothing for settled configs does
    /// not need them.
    #[tokio::test]
    async fn configs_park_only_when_saved_and_pushed_and_come_back_with_their_flags() {
        let (_dir, store, keys, record, ctx, mut state) = identity("configsync-park", 7);
        assert!(!Parked::default().settled(now_ms()));
        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(state.pulled() && state.parkable());
        assert!(!brings_configs(&poll(true)));
        // Not settled until the expiry of its messages was renewed (nothing to renew here:
        // no call), and again once a day.
        assert!(refresh_due(state.refreshed_ms, now_ms()));
        let account = UserPubkey(*keys.account_id().as_bytes());
        let auth = Auth::Account(keys.signing_key().clone());
        refresh(&ctx, &record, &mut state, &account, &auth)
            .await
            .expect("refresh");
        let parked = state.park();
        assert!(parked.settled(now_ms()));
        assert!(!parked.settled(now_ms() + CONFIG_REFRESH_EVERY_MS));
        let back = Configs::unpark(&store, record.id, &keys, parked).expect("unpark");
        assert!(back.pulled() && back.applied);

        // An edit makes a config dirty: it is kept until pushed.
        let mut state = back;
        ctx.sync.edit(
            record.id,
            Edit::Nickname {
                account_id: BOB.into(),
                nickname: Some("Bobby".into()),
            },
        );
        assert!(ctx.sync.has_edits(record.id));
        absorb(&ctx, &record, &mut state, &poll(true))
            .await
            .expect("absorb");
        assert!(!ctx.sync.has_edits(record.id));
        assert!(!state.parkable());
    }
}
