//! The groups an identity belongs to (or was invited to): one JSON [`GroupRecord`] per
//! (identity, group ID) in the `groups` table, with what the daemon needs to poll the group's
//! swarm again after a restart (credentials, the keys messages it loaded, the config dumps).
//!
//! Every change that a user sees is recorded in the same transaction as its events: the group
//! conversation (created or renamed, with its `Conversation` event) and a `Group` event saying
//! what changed (invited, joined, members added or removed, renamed, kicked, left, destroyed).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    book, decode, encode, require_identity, ConversationRecord, ConversationView, EventKind,
    IdentityId, Log, Store, StoreError, StoredEvent,
};

pub(super) const GROUPS: TableDefinition<'_, (u64, &str), &[u8]> = TableDefinition::new("groups");

/// Where the identity stands in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// Invited; not accepted yet (not polled).
    Invited,
    /// A member (or admin): polled.
    Joined,
    /// Removed by an admin (a kicked notice, or no longer in the members list).
    Kicked,
    /// Left it.
    Left,
    /// An admin destroyed the group.
    Destroyed,
}

impl GroupStatus {
    /// Whether the daemon polls the group's swarm.
    pub fn polled(self) -> bool {
        self == GroupStatus::Joined
    }
}

/// A member as the daemon last saw the members config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member's Account ID.
    pub account_id: String,
    /// The name the members config gives.
    #[serde(default)]
    pub name: String,
    /// An admin.
    #[serde(default)]
    pub admin: bool,
    /// Invited, not yet accepted.
    #[serde(default)]
    pub invited: bool,
}

/// One keys message (ns 12) the daemon loaded, kept to rebuild the keys after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysMessage {
    /// Its swarm hash.
    pub hash: String,
    /// Its bytes, hex.
    pub data: String,
    /// Its swarm timestamp, ms.
    pub timestamp_ms: u64,
}

/// A group of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group's `03…` ID.
    pub id: String,
    /// Its name (from the invite until the info config says otherwise).
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Where the identity stands.
    pub status: GroupStatus,
    /// The group's Ed25519 seed (hex) if the identity is an admin. Secret: never logged,
    /// never in the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_seed: Option<String>,
    /// The member auth data (hex, 100 bytes) an admin issued to the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_data: Option<String>,
    /// Who invited the identity, if it was invited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inviter: Option<String>,
    /// The members, as last seen.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// The keys messages loaded so far (the newest few).
    #[serde(default)]
    pub keys_messages: Vec<KeysMessage>,
    /// The info config's dump (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_dump: Option<String>,
    /// The members config's dump (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_dump: Option<String>,
    /// When the identity got the group (created, invited), ms.
    pub created_at_ms: u64,
}

impl GroupRecord {
    /// Whether the identity holds the admin key.
    pub fn is_admin(&self) -> bool {
        self.admin_seed.is_some()
    }
}

/// What a `Group` event says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GroupChange {
    /// The group's `03…` ID.
    pub group: String,
    /// The group's name after the change.
    pub name: String,
    /// The identity's status after the change.
    pub status: Option<GroupStatus>,
    /// Members that appeared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Members that are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Members that became admins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promoted: Vec<String>,
    /// Who invited the identity (for an invitation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inviter: Option<String>,
    /// The name changed.
    #[serde(default)]
    pub renamed: bool,
    /// The description changed.
    #[serde(default)]
    pub described: bool,
}

impl GroupChange {
    /// Whether it says anything.
    fn is_empty(&self, before: Option<&GroupRecord>, after: &GroupRecord) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.promoted.is_empty()
            && !self.renamed
            && !self.described
            && before.is_some_and(|b| b.status == after.status)
    }
}

/// The difference between two member lists: (added, removed, promoted).
pub fn member_diff(
    before: &[GroupMember],
    after: &[GroupMember],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let find = |list: &[GroupMember], id: &str| list.iter().find(|m| m.account_id == id).cloned();
    let added = after
        .iter()
        .filter(|m| find(before, &m.account_id).is_none())
        .map(|m| m.account_id.clone())
        .collect();
    let removed = before
        .iter()
        .filter(|m| find(after, &m.account_id).is_none())
        .map(|m| m.account_id.clone())
        .collect();
    let promoted = after
        .iter()
        .filter(|m| m.admin && find(before, &m.account_id).is_some_and(|b| !b.admin))
        .map(|m| m.account_id.clone())
        .collect();
    (added, removed, promoted)
}

impl Store {
    /// The identity's groups, by ID.
    pub fn groups(&self, identity: IdentityId) -> Result<Vec<GroupRecord>, StoreError> {
        self.read("listing groups", |tx| {
            let table = tx.open_table(GROUPS)?;
            let mut out = Vec::new();
            for row in table.range((identity, "")..)? {
                let (k, v) = row?;
                if k.value().0 != identity {
                    break;
                }
                let aad = super::lock::group_record(identity, k.value().1);
                out.push(decode("group", &self.open_record(&aad, v.value())?)?);
            }
            Ok(out)
        })
    }

    /// One group of the identity, if it has it.
    pub fn group(&self, identity: IdentityId, id: &str) -> Result<Option<GroupRecord>, StoreError> {
        self.read("reading a group", |tx| {
            let table = tx.open_table(GROUPS)?;
            let v = table.get((identity, id))?;
            match v {
                Some(v) => {
                    let aad = super::lock::group_record(identity, id);
                    Ok(Some(decode("group", &self.open_record(&aad, v.value())?)?))
                }
                None => Ok(None),
            }
        })
    }

    /// Writes a group with `f` (given the stored record, if any; `None` from `f` writes
    /// nothing), and in the same transaction: the group's conversation (created if missing,
    /// accepted once joined, its title the name) with its `Conversation` event if that changed,
    /// and a `Group` event with what changed (the member diff, renames, status). Returns the
    /// record written and the events.
    pub fn update_group(
        &self,
        identity: IdentityId,
        id: &str,
        now_ms: u64,
        f: impl FnOnce(Option<GroupRecord>) -> Option<GroupRecord>,
    ) -> Result<(Option<GroupRecord>, Vec<StoredEvent>), StoreError> {
        let out = self.write("changing a group", |tx| {
            require_identity(tx, identity)?;
            let aad = super::lock::group_record(identity, id);
            let mut table = tx.open_table(GROUPS)?;
            let before: Option<GroupRecord> = match table.get((identity, id))? {
                Some(v) => Some(decode("group", &self.open_record(&aad, v.value())?)?),
                None => None,
            };
            let Some(after) = f(before.clone()) else {
                return Ok((None, Vec::new()));
            };
            let value = self.seal_record(tx, &aad, &encode(&after))?;
            table.insert((identity, id), value.as_slice())?;
            drop(table);
            let mut log = Log::open(tx)?;
            let mut book = book::Book::open(tx)?;
            let mut events = Vec::new();
            let (added, removed, promoted) = member_diff(
                before.as_ref().map_or(&[][..], |b| &b.members[..]),
                &after.members,
            );
            let change = GroupChange {
                group: id.to_owned(),
                name: after.name.clone(),
                status: Some(after.status),
                added,
                removed,
                promoted,
                inviter: (after.status == GroupStatus::Invited)
                    .then(|| after.inviter.clone())
                    .flatten(),
                renamed: before.as_ref().is_some_and(|b| b.name != after.name),
                described: before
                    .as_ref()
                    .is_some_and(|b| b.description != after.description),
            };
            if !change.is_empty(before.as_ref(), &after) {
                events.push(log.append(identity, now_ms, EventKind::Group(change))?);
            }
            let existing = book.conversation(identity, id)?;
            let mut conv = existing.clone().unwrap_or_else(|| ConversationRecord {
                address: id.to_owned(),
                ..ConversationRecord::default()
            });
            conv.title = Some(after.name.clone()).filter(|n| !n.is_empty());
            conv.accepted = after.status != GroupStatus::Invited;
            if matches!(after.status, GroupStatus::Left) {
                conv.left = true;
            } else if after.status == GroupStatus::Joined {
                conv.left = false;
            }
            if existing.as_ref() != Some(&conv) {
                book.put_shared(identity, &conv)?;
                let view = |c: ConversationRecord| ConversationView {
                    contact: book::placeholder(&c.address),
                    conversation: c,
                };
                let before_view = existing.map(view);
                let after_view = view(conv);
                let due = match &before_view {
                    Some(b) => after_view.changed(b),
                    None => true,
                };
                if due {
                    events.push(log.append(
                        identity,
                        now_ms,
                        EventKind::Conversation(after_view),
                    )?);
                }
            }
            Ok((Some(after), events))
        })?;
        if let Some(last) = out.1.last() {
            self.wake(identity, last.seq);
        }
        Ok(out)
    }
}
