//! Groups (groups.md): an identity's view of each group it belongs to, rebuilt from the store
//! ([`Live`]), the group swarm's auth (admin key or subaccount), one poll of a group (the batch
//! of ns −11, 11, 12, 13, 14, processed in the spec's order: keys, configs, messages, kicked
//! notice), and invitations and promotions read from one-to-one messages.
//!
//! Everything a poll learns is saved in one [`Store::update_group`] (the record, its
//! `Group`/`Conversation` events) and one [`Store::record_received`] (the messages, deduplicated
//! by hash). Bad input (keys not signed by the group, configs with bad signatures, messages
//! that do not decrypt or verify, forged or replayed ones, kicked notices for someone else) is
//! skipped with a debug line naming the hash and the reason, never the content.

use std::collections::HashMap;
use std::sync::Arc;

use session_net::{Auth, Mailbox, NetClient, NetError, Poll, Signer};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::config::user_groups::GroupEntry;
use session_proto::config::Config;
use session_proto::groups::configs::{self, Member, Status, INFO, MEMBERS};
use session_proto::groups::control::{self, GroupUpdate};
use session_proto::groups::keys::GroupKeys;
use session_proto::groups::message::decrypt_group_message;
use session_proto::groups::multi::{read_kicked_notice, KickedNotice};
use session_proto::groups::subaccount::{MemberAuthData, SubaccountSigner};
use session_proto::groups::{
    GroupAdminKeys, NS_INFO, NS_KEYS, NS_MEMBERS, NS_MESSAGES, NS_REVOKED_RETRIEVABLE,
};
use session_proto::interaction::{self, Interaction};
use session_proto::keys::IdentityKeys;
use session_proto::protos::GroupUpdateMessage;
use session_proto::storage_rpc::{Sig, UserPubkey};

use crate::store::{
    GroupMember, GroupRecord, GroupStatus, IdentityId, Inbound, InboundKind, KeysMessage,
    MessageExtras, Received, ReplyRef, Store, StoreError, StoredEvent,
};

/// The namespaces of one group poll, in one batch.
pub const GROUP_NAMESPACES: [i16; 5] = [
    NS_REVOKED_RETRIEVABLE,
    NS_MESSAGES,
    NS_KEYS,
    NS_INFO,
    NS_MEMBERS,
];
/// How many keys messages a record keeps (the newest): enough for every generation still in use.
const KEPT_KEYS_MESSAGES: usize = 16;
/// How often a member renews the expiry of its groups' current keys, info and members messages
/// (to now + the 30-day config TTL), as the account's own configs
/// ([`super::configsync::CONFIG_REFRESH_EVERY_MS`]): a group that changes nothing for a month
/// keeps them, so a new member or device can still read it.
pub const GROUP_REFRESH_EVERY_MS: u64 = super::configsync::CONFIG_REFRESH_EVERY_MS;

/// A subaccount signer as session-net's [`Signer`].
struct MemberSigner(SubaccountSigner);

impl Signer for MemberSigner {
    fn sign(&self, msg: &[u8]) -> Sig {
        self.0.sign(msg)
    }
}

/// A group as the identity holds it while working with it: keys and configs rebuilt from the
/// record.
pub struct Live {
    /// The group's ID.
    pub id: AccountId,
    /// The keys (with the admin key if the identity is an admin).
    pub keys: GroupKeys,
    /// The info config (ns 13).
    pub info: Config,
    /// The members config (ns 14).
    pub members: Config,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Why a group operation failed (for the API and the logs; no secrets, no content).
#[derive(Debug, thiserror::Error)]
pub enum GroupOpError {
    /// The stored record is damaged or the protocol refused.
    #[error("{0}")]
    Protocol(String),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn proto(what: &str, e: impl std::fmt::Display) -> GroupOpError {
    GroupOpError::Protocol(format!("{what}: {e}"))
}

/// The admin keys of a record, if it has them.
pub fn admin_keys(rec: &GroupRecord) -> Result<Option<GroupAdminKeys>, GroupOpError> {
    let Some(seed) = rec.admin_seed.as_deref() else {
        return Ok(None);
    };
    let seed: [u8; 32] = hex::decode(seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| GroupOpError::Protocol("the stored group seed is damaged".to_owned()))?;
    Ok(Some(GroupAdminKeys::from_seed(&seed)))
}

impl Live {
    /// Rebuilds the group from its record: keys from the kept keys messages, configs from
    /// their dumps.
    pub fn load(own: &IdentityKeys, rec: &GroupRecord, now_ms: u64) -> Result<Live, GroupOpError> {
        let id: AccountId = rec.id.parse().map_err(|e| proto("group ID", e))?;
        let mut keys = match admin_keys(rec)? {
            Some(admin) => GroupKeys::for_admin(Some(own), admin),
            None => GroupKeys::for_member(own, &id),
        }
        .map_err(|e| proto("group keys", e))?;
        for k in &rec.keys_messages {
            let Ok(data) = hex::decode(&k.data) else {
                continue;
            };
            if let Err(e) = keys.load_key_message(&k.hash, &data, k.timestamp_ms) {
                tracing::debug!(hash = %k.hash, cause = %e, "a kept keys message does not load");
            }
        }
        let load = |ty, dump: &Option<String>| -> Config {
            dump.as_deref()
                .and_then(|d| hex::decode(d).ok())
                .and_then(|d| Config::load(ty, configs::config_keys(&keys), &d, now_ms).ok())
                .unwrap_or_else(|| configs::new_config(ty, &keys))
        };
        let info = load(INFO, &rec.info_dump);
        let members = load(MEMBERS, &rec.members_dump);
        Ok(Live {
            id,
            keys,
            info,
            members,
        })
    }

    /// The group swarm's account.
    pub fn account(&self) -> UserPubkey {
        UserPubkey(*self.id.as_bytes())
    }

    /// Writes the configs' state and what they say into the record.
    pub fn save(&mut self, rec: &mut GroupRecord, now_ms: u64) {
        rec.info_dump = Some(hex::encode(self.info.dump(now_ms)));
        rec.members_dump = Some(hex::encode(self.members.dump(now_ms)));
        let info = configs::info(self.info.data());
        if let Some(name) = info.name.filter(|n| !n.is_empty()) {
            rec.name = name;
        }
        rec.description = info.description.unwrap_or_default();
        let members = configs::members(self.members.data());
        if !members.is_empty() {
            rec.members = members
                .iter()
                .filter(|m| m.removal.is_none())
                .map(|m| GroupMember {
                    account_id: m.id.to_string(),
                    name: m.name.clone(),
                    admin: m.admin,
                    invited: m.invite.is_some(),
                })
                .collect();
        }
        if info.destroyed {
            rec.status = GroupStatus::Destroyed;
        }
    }
}

/// Adds a keys message to the record's kept ones (the newest [`KEPT_KEYS_MESSAGES`]).
pub fn keep_keys_message(rec: &mut GroupRecord, hash: &str, data: &[u8], timestamp_ms: u64) {
    if rec.keys_messages.iter().any(|k| k.hash == hash) {
        return;
    }
    rec.keys_messages.push(KeysMessage {
        hash: hash.to_owned(),
        data: hex::encode(data),
        timestamp_ms,
    });
    let extra = rec.keys_messages.len().saturating_sub(KEPT_KEYS_MESSAGES);
    rec.keys_messages.drain(..extra);
}

/// A member entry for the members config.
pub fn member_entry(id: AccountId, admin: bool, invite: Option<Status>) -> Member {
    Member {
        admin,
        invite,
        ..Member::new(id)
    }
}

/// The auth for the group's swarm: the admin key, else the identity's subaccount.
pub fn auth(own: &IdentityKeys, rec: &GroupRecord) -> Result<Auth, GroupOpError> {
    if let Some(admin) = admin_keys(rec)? {
        return Ok(Auth::GroupAdmin(admin.keys().signing_key().clone()));
    }
    let id: AccountId = rec.id.parse().map_err(|e| proto("group ID", e))?;
    let data = rec
        .auth_data
        .as_deref()
        .and_then(|d| hex::decode(d).ok())
        .ok_or_else(|| GroupOpError::Protocol("no credentials for this group".to_owned()))?;
    let data = MemberAuthData::from_slice(&data).map_err(|e| proto("member auth data", e))?;
    let signer =
        SubaccountSigner::new(own, id.key(), &data).map_err(|e| proto("credentials", e))?;
    Ok(Auth::Subaccount {
        token: *signer.token(),
        token_sig: data.token_signature(),
        signer: Arc::new(MemberSigner(signer)),
    })
}

/// The auth of `identity` for the group `group` (for the sender task).
pub fn auth_for(store: &Store, identity: IdentityId, group: &str) -> Result<Auth, GroupOpError> {
    let record = store.identity_by_id(identity)?;
    let seed = store.identity_seed(&record.name)?;
    let keys = IdentityKeys::from_seed(&seed);
    let rec = store
        .group(identity, group)?
        .ok_or_else(|| GroupOpError::Protocol("the identity is not in this group".to_owned()))?;
    auth(&keys, &rec)
}

/// An invitation or promotion read from a one-to-one message, checked (admin signature,
/// credential), applied to the identity's groups. Bad ones are logged and dropped.
pub fn direct_update(
    store: &Store,
    identity: IdentityId,
    own: &IdentityKeys,
    sender: &AccountId,
    ts: u64,
    update: &GroupUpdateMessage,
    now_ms: u64,
) -> Result<Option<GroupRecord>, StoreError> {
    let update = match control::read_direct_update(own, sender, ts, update) {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(cause = %e, "skipping a group control message");
            return Ok(None);
        }
    };
    let written = match update {
        GroupUpdate::Invite(inv) => {
            let id = inv.group_id.to_string();
            store
                .update_group(identity, &id, now_ms, |existing| match existing {
                    // Already in it: a repeated invitation (after a re-add) renews the credential.
                    Some(mut rec) if rec.status == GroupStatus::Joined => {
                        if rec.is_admin() {
                            return None;
                        }
                        rec.auth_data = Some(hex::encode(inv.auth.0));
                        Some(rec)
                    }
                    // Declined, left or removed: only a newer invitation (a re-add) brings it back,
                    // not the old one read again (after a restart the swarm is read from the start).
                    Some(rec) if rec.status != GroupStatus::Invited && ts <= rec.created_at_ms => {
                        None
                    }
                    Some(mut rec) => {
                        if rec.status != GroupStatus::Invited {
                            rec.created_at_ms = now_ms;
                        }
                        rec.status = GroupStatus::Invited;
                        rec.auth_data = Some(hex::encode(inv.auth.0));
                        rec.inviter = Some(sender.to_string());
                        Some(rec)
                    }
                    None => Some(GroupRecord {
                        id: id.clone(),
                        name: inv.name.clone(),
                        description: String::new(),
                        status: GroupStatus::Invited,
                        admin_seed: None,
                        auth_data: Some(hex::encode(inv.auth.0)),
                        inviter: Some(sender.to_string()),
                        members: Vec::new(),
                        keys_messages: Vec::new(),
                        info_dump: None,
                        members_dump: None,
                        created_at_ms: now_ms,
                    }),
                })?
                .0
        }
        GroupUpdate::Promote(p) => {
            let id = p.group.id().to_string();
            let seed = hex::encode(p.group.seed());
            store
                .update_group(identity, &id, now_ms, |existing| {
                    let mut rec = existing?;
                    rec.admin_seed = Some(seed);
                    Some(rec)
                })?
                .0
        }
        _ => None,
    };
    Ok(written)
}

/// Leaves group `group` here because another device of the account left or declined it (its
/// UserGroups entry is gone): its status becomes Left (a declined invitation's auth data is
/// dropped) and the poller stops reading it. Nothing is sent to the group. False if the group
/// was unknown here or not joined or invited.
pub fn left_elsewhere(
    store: &Store,
    identity: IdentityId,
    group: &str,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let (written, _) = store.update_group(identity, group, now_ms, |existing| {
        let mut rec = existing?;
        match rec.status {
            GroupStatus::Joined => {}
            GroupStatus::Invited => rec.auth_data = None,
            _ => return None,
        }
        rec.status = GroupStatus::Left;
        Some(rec)
    })?;
    if written.is_some() {
        tracing::info!(
            identity,
            "left a group that the account left on another device"
        );
    }
    Ok(written.is_some())
}

/// Groups listed in the account's UserGroups config that the identity does not have yet
/// (joined or invited on another device of the account) are added: with the admin seed or
/// the member auth data the entry gives, joined unless the entry is a pending invitation, so
/// the poller reads their swarms (keys, info, members) from its next group round on. Entries
/// without credentials (kicked, destroyed) and groups the identity already has (whatever
/// their status: a group left here stays left) are skipped. Returns how many were added.
pub fn adopt(
    store: &Store,
    identity: IdentityId,
    entries: &[GroupEntry],
    now_ms: u64,
) -> Result<usize, StoreError> {
    let mut added = 0;
    for e in entries {
        if e.removed_status != 0 || (e.admin_seed.is_none() && e.auth_data.is_empty()) {
            continue;
        }
        if e.admin_seed.is_none() && MemberAuthData::from_slice(&e.auth_data).is_err() {
            tracing::debug!(identity, "skipping a UserGroups group with bad auth data");
            continue;
        }
        let id = e.id.to_string();
        let status = if e.invited && e.admin_seed.is_none() {
            GroupStatus::Invited
        } else {
            GroupStatus::Joined
        };
        let (written, _) = store.update_group(identity, &id, now_ms, |existing| {
            if existing.is_some() {
                return None;
            }
            Some(GroupRecord {
                id: id.clone(),
                name: e.name.clone(),
                description: String::new(),
                status,
                admin_seed: e.admin_seed.map(hex::encode),
                auth_data: e.admin_seed.is_none().then(|| hex::encode(&e.auth_data)),
                inviter: None,
                members: Vec::new(),
                keys_messages: Vec::new(),
                info_dump: None,
                members_dump: None,
                created_at_ms: u64::try_from(e.joined_at)
                    .ok()
                    .filter(|&j| j > 0)
                    .map_or(now_ms, |j| j.saturating_mul(1000)),
            })
        })?;
        if written.is_some() {
            tracing::info!(identity, "added a group from the account's config");
            added += 1;
        }
    }
    Ok(added)
}

/// Runs a blocking store call off the async threads.
pub async fn run<T, F>(store: &Store, f: F) -> Result<T, GroupOpError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| GroupOpError::Protocol(format!("a store task failed: {e}")))?
        .map_err(GroupOpError::from)
}

/// What one group poll found.
#[derive(Debug, Default)]
pub struct GroupPolled {
    /// New events recorded.
    pub new: usize,
    /// The swarm has more.
    pub more: bool,
    /// Groups whose status the poll changed (kicked, destroyed), as saved: their UserGroups
    /// entries change too.
    pub changed: Vec<GroupRecord>,
    /// The messages recorded (their attachments may be fetched at once).
    pub received: Vec<StoredEvent>,
}

/// Polls one joined group once and records what it found.
pub async fn poll_group(
    net: &NetClient,
    store: &Store,
    identity: IdentityId,
    own: &IdentityKeys,
    group: &str,
    mailbox: &mut Mailbox,
    now_ms: impl Fn() -> u64,
) -> Result<GroupPolled, GroupOpError> {
    let group_id = group.to_owned();
    let Some(rec) = run(store, move |s| s.group(identity, &group_id)).await? else {
        return Ok(GroupPolled::default());
    };
    if !rec.status.polled() {
        return Ok(GroupPolled::default());
    }
    let auth = auth(own, &rec)?;
    let poll = net.poll(mailbox, &auth, &GROUP_NAMESPACES).await?;
    let now = now_ms();
    let before = rec.status;
    let Absorbed {
        rec,
        received,
        inbound,
        more,
    } = absorb(own, rec, &poll, now)?;
    let (new, saved, received) = run(store, move |s| {
        let id = rec.id.clone();
        let (saved, events) = s.update_group(identity, &id, now, |_| Some(rec))?;
        let mut new = events.len();
        // The messages first: a reaction or unsend in the same poll finds its message.
        let received = if received.is_empty() {
            Vec::new()
        } else {
            s.record_received(identity, i32::from(NS_MESSAGES), &received, None, now)?
        };
        new += received.len();
        if !inbound.is_empty() {
            new += s.record_inbound(identity, &inbound, None, now)?.len();
        }
        Ok((new, saved, received))
    })
    .await?;
    mailbox.advance(&poll);
    let changed = saved.into_iter().filter(|r| r.status != before).collect();
    Ok(GroupPolled {
        new,
        more,
        changed,
        received,
    })
}

/// What one poll of a group brought.
struct Absorbed {
    /// The updated record.
    rec: GroupRecord,
    /// The messages to record, in send order.
    received: Vec<Received>,
    /// Reactions and unsend requests of members, to apply after the messages.
    inbound: Vec<Inbound>,
    /// The swarm has more.
    more: bool,
}

/// Processes one poll of a group in the spec's order: keys (12), info and members (13, 14),
/// messages (11), the kicked notice (−11).
fn absorb(
    own: &IdentityKeys,
    mut rec: GroupRecord,
    poll: &Poll,
    now: u64,
) -> Result<Absorbed, GroupOpError> {
    let mut live = Live::load(own, &rec, now)?;
    let part = |ns: i16| {
        poll.namespaces
            .iter()
            .find(|p| p.namespace == ns)
            .and_then(|p| match &p.result {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::debug!(namespace = ns, cause = %e, "group namespace not read this poll");
                    None
                }
            })
    };
    let mut more = false;
    if let Some(f) = part(NS_KEYS) {
        more |= f.more;
        for m in &f.messages {
            match live.keys.load_key_message(&m.hash, &m.data.0, m.timestamp) {
                Ok(_) => keep_keys_message(&mut rec, &m.hash, &m.data.0, m.timestamp),
                Err(e) => tracing::debug!(hash = %m.hash, cause = %e, "skipping a keys message"),
            }
        }
    }
    // With new keys, the configs decrypt under them too.
    live.info =
        configs::with_keys(&mut live.info, &live.keys, now).map_err(|e| proto("info config", e))?;
    live.members = configs::with_keys(&mut live.members, &live.keys, now)
        .map_err(|e| proto("members config", e))?;
    for (ns, config) in [(NS_INFO, &mut live.info), (NS_MEMBERS, &mut live.members)] {
        let Some(f) = part(ns) else { continue };
        more |= f.more;
        let msgs: Vec<(&str, &[u8])> = f
            .messages
            .iter()
            .map(|m| (m.hash.as_str(), m.data.0.as_slice()))
            .collect();
        if msgs.is_empty() {
            continue;
        }
        let report = config.merge(&msgs, now);
        for (hash, cause) in &report.skipped {
            tracing::debug!(namespace = ns, %hash, %cause, "skipping a group config message");
        }
    }
    let mut received = Vec::new();
    let mut inbound = Vec::new();
    if let Some(f) = part(NS_MESSAGES) {
        more |= f.more;
        for m in &f.messages {
            let msg = match decrypt_group_message(&live.keys, &m.data.0) {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::debug!(hash = %m.hash, cause = %e, "skipping a group message");
                    continue;
                }
            };
            let Some(data) = &msg.content.data_message else {
                continue;
            };
            if let Some(update) = &data.group_update_message {
                match control::read_group_update(
                    live.keys.group_public_key(),
                    msg.envelope_timestamp,
                    update,
                ) {
                    // A member deleted its own messages (the apps' "delete for everyone" in a
                    // group), or an admin deleted members' content; our own deletions from
                    // another device are not applied here.
                    Ok(GroupUpdate::DeleteMemberContent {
                        hashes,
                        members,
                        by_admin,
                    }) if msg.sender != *own.account_id()
                        && !(hashes.is_empty() && members.is_empty()) =>
                    {
                        inbound.push(Inbound {
                            hash: m.hash.clone(),
                            sender: msg.sender.to_string(),
                            conversation: rec.id.clone(),
                            sent_at_ms: msg.envelope_timestamp,
                            what: InboundKind::DeleteHashes {
                                hashes,
                                members: members.iter().map(ToString::to_string).collect(),
                                by_admin,
                            },
                        });
                    }
                    Ok(u) => {
                        tracing::debug!(hash = %m.hash, update = ?std::mem::discriminant(&u), "group control message")
                    }
                    Err(e) => {
                        tracing::debug!(hash = %m.hash, cause = %e, "skipping a group control message")
                    }
                }
                continue;
            }
            if msg.sender == *own.account_id() {
                // Our own post (this daemon recorded it when it queued it).
                continue;
            }
            // Reactions and unsend requests as in one-to-one conversations (the store removes
            // only a message of the unsend's own sender); replies keep their quote.
            let control = |what| Inbound {
                hash: m.hash.clone(),
                sender: msg.sender.to_string(),
                conversation: rec.id.clone(),
                sent_at_ms: msg.envelope_timestamp,
                what,
            };
            let reply_to = match interaction::interpret(&msg.sender, &msg.content) {
                Ok(Some(Interaction::Message { reply_to, .. })) => reply_to,
                Ok(Some(Interaction::Reaction {
                    target,
                    emoji,
                    remove,
                })) => {
                    inbound.push(control(InboundKind::Reaction {
                        target_sent_at_ms: target.sent_at_ms,
                        target_author: target.author,
                        emoji,
                        remove,
                    }));
                    continue;
                }
                Ok(Some(Interaction::Unsend { target_sent_at_ms })) => {
                    inbound.push(control(InboundKind::Unsend { target_sent_at_ms }));
                    continue;
                }
                // Receipts, timers and the like are not group business.
                Ok(Some(_) | None) => continue,
                Err(why) => {
                    tracing::debug!(hash = %m.hash, why, "skipping a group message");
                    continue;
                }
            };
            let Some(data) = msg.content.data_message else {
                continue;
            };
            let text = data.body.unwrap_or_default();
            if text.is_empty() && data.attachments.is_empty() {
                continue;
            }
            let (attachments, pointers) = data
                .attachments
                .iter()
                .map(|p| crate::files::incoming_view(p, &rec.id, false))
                .unzip();
            received.push(Received {
                sender: msg.sender.to_string(),
                conversation: Some(rec.id.clone()),
                text,
                sent_at_ms: msg.envelope_timestamp,
                received_at_ms: now,
                hash: m.hash.clone(),
                sender_profile_name: data
                    .profile
                    .and_then(|p| p.display_name)
                    .filter(|n| !n.is_empty()),
                sync_target: None,
                extras: MessageExtras {
                    reply_to: reply_to.map(ReplyRef::from),
                    ..Default::default()
                },
                attachments,
                pointers,
                server_id: None,
                edited_at_ms: None,
            });
        }
    }
    live.save(&mut rec, now);
    if let Some(f) = part(NS_REVOKED_RETRIEVABLE) {
        for m in &f.messages {
            match read_kicked_notice(
                own,
                live.keys.group_public_key(),
                live.keys.current_generation(),
                &m.data.0,
            ) {
                Ok(KickedNotice::Kicked { .. }) if !rec.is_admin() => {
                    rec.status = GroupStatus::Kicked;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(hash = %m.hash, cause = %e, "skipping a kicked notice"),
            }
        }
    }
    // The members list is authoritative: gone from it (once we have read it) is removed.
    let me = own.account_id().to_string();
    if rec.status == GroupStatus::Joined
        && !rec.members.is_empty()
        && !rec.members.iter().any(|m| m.account_id == me)
    {
        rec.status = GroupStatus::Kicked;
    }
    crate::engine::poller::in_send_order(&mut received);
    Ok(Absorbed {
        rec,
        received,
        inbound,
        more,
    })
}

/// Renews the expiry of group `group`'s current keys, info and members messages (and the kept
/// keys messages) to now + 30 days with one `expire` (extend only) to its swarm, signed as the
/// identity can (admin key or subaccount). Returns how many hashes it named.
pub async fn renew_group(
    net: &NetClient,
    store: &Store,
    identity: IdentityId,
    own: &IdentityKeys,
    group: &str,
    now_ms: u64,
) -> Result<usize, GroupOpError> {
    let group_id = group.to_owned();
    let Some(rec) = run(store, move |s| s.group(identity, &group_id)).await? else {
        return Ok(0);
    };
    let live = Live::load(own, &rec, now_ms)?;
    let mut hashes: Vec<String> = live
        .info
        .active_hashes(now_ms)
        .into_iter()
        .chain(live.members.active_hashes(now_ms))
        .chain(rec.keys_messages.iter().map(|k| k.hash.clone()))
        .collect();
    hashes.sort();
    hashes.dedup();
    if hashes.is_empty() {
        return Ok(0);
    }
    let expiry = now_ms + session_proto::groups::CONFIG_TTL_MS;
    net.expire(
        &live.account(),
        &hashes,
        expiry,
        session_proto::storage_rpc::ExpireMode::Extend,
        &auth(own, &rec)?,
    )
    .await?;
    Ok(hashes.len())
}

/// The per-identity group mailboxes of a poller, following the identity's joined groups.
#[derive(Debug, Default)]
pub struct GroupCursors {
    mailboxes: HashMap<String, Mailbox>,
    /// Group ID → when its config messages' expiry was last renewed (or tried) since start.
    renewed: HashMap<String, u64>,
}

impl GroupCursors {
    /// Polls every joined group of the identity once; returns new events and whether any
    /// group has more. A group that fails is logged and left for the next round.
    pub async fn poll_all(
        &mut self,
        net: &NetClient,
        store: &Store,
        identity: IdentityId,
        own: &IdentityKeys,
    ) -> Result<GroupPolled, StoreError> {
        let groups = match run(store, move |s| s.groups(identity)).await {
            Ok(g) => g,
            Err(GroupOpError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::debug!(identity, cause = %e, "cannot list groups");
                return Ok(GroupPolled::default());
            }
        };
        let joined: Vec<String> = groups
            .into_iter()
            .filter(|g| g.status.polled())
            .map(|g| g.id)
            .collect();
        self.mailboxes.retain(|id, _| joined.contains(id));
        self.renewed.retain(|id, _| joined.contains(id));
        let mut out = GroupPolled::default();
        for id in joined {
            let Ok(account) = id.parse::<AccountId>() else {
                continue;
            };
            if account.prefix() != Some(Prefix::Group) {
                continue;
            }
            let mailbox = self
                .mailboxes
                .entry(id.clone())
                .or_insert_with(|| Mailbox::new(UserPubkey(*account.as_bytes())));
            match poll_group(net, store, identity, own, &id, mailbox, crate::rpc::now_ms).await {
                Ok(p) => {
                    out.new += p.new;
                    out.more |= p.more;
                    out.changed.extend(p.changed);
                    out.received.extend(p.received);
                    self.renew_if_due(net, store, identity, own, &id).await?;
                }
                Err(GroupOpError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::debug!(identity, cause = %e, "group poll failed");
                }
            }
        }
        Ok(out)
    }

    /// [`renew_group`] once every [`GROUP_REFRESH_EVERY_MS`] per group (first after its first
    /// poll since start). A failure is logged and tried again at the next interval: a member
    /// whose subaccount may not extend expiries need not ask every poll.
    async fn renew_if_due(
        &mut self,
        net: &NetClient,
        store: &Store,
        identity: IdentityId,
        own: &IdentityKeys,
        group: &str,
    ) -> Result<(), StoreError> {
        let now = crate::rpc::now_ms();
        if self
            .renewed
            .get(group)
            .is_some_and(|&t| now.saturating_sub(t) < GROUP_REFRESH_EVERY_MS)
        {
            return Ok(());
        }
        self.renewed.insert(group.to_owned(), now);
        match renew_group(net, store, identity, own, group, now).await {
            Ok(n) => tracing::debug!(identity, hashes = n, "group config expiry renewed"),
            Err(GroupOpError::Store(e)) => return Err(e),
            Err(e) => tracing::debug!(identity, cause = %e, "group config expiry not renewed"),
        }
        Ok(())
    }
}
