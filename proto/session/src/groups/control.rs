//! Group control messages (`DataMessage.groupUpdateMessage`, groups.md §6): building them with
//! their admin signatures, and reading received ones into a checked [`GroupUpdate`].
//!
//! Admin signatures are Ed25519 by the group key over ASCII strings, `ts` being the
//! `Envelope.timestamp` (ms) of the message that carries them:
//! - invite: `"INVITE" ‖ invitee_hex66 ‖ ts`;
//! - member change: `"MEMBER_CHANGE" ‖ ascii(type) ‖ ts` (the member list is not signed);
//! - info change: `"INFO_CHANGE" ‖ ascii(type) ‖ ts`;
//! - delete member content: `"DELETE_CONTENT" ‖ ts ‖ sid… ‖ hash…`.
//!
//! Invites and promotions travel one-to-one (the invitee's ns 0); every other control message
//! is a group message in ns 11.

use ed25519_dalek::{Signature, VerifyingKey};

use super::subaccount::{make_member_auth_data, MemberAuthData, SubaccountSigner};
use super::GroupAdminKeys;
use crate::account_id::{AccountId, Prefix};
use crate::err::GroupError;
use crate::keys::IdentityKeys;
use crate::protos::{
    group_update_info_change_message, group_update_member_change_message, Content, DataMessage,
    GroupUpdateDeleteMemberContentMessage, GroupUpdateInfoChangeMessage, GroupUpdateInviteMessage,
    GroupUpdateInviteResponseMessage, GroupUpdateMemberChangeMessage, GroupUpdateMemberLeftMessage,
    GroupUpdateMemberLeftNotificationMessage, GroupUpdateMessage, GroupUpdatePromoteMessage,
};

pub use group_update_info_change_message::Type as InfoChangeType;
pub use group_update_member_change_message::Type as MemberChangeType;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `"INVITE" ‖ invitee_hex66 ‖ ts`.
pub fn invite_signed_bytes(invitee: &AccountId, ts: u64) -> Vec<u8> {
    cat(&[
        b"INVITE",
        invitee.to_string().as_bytes(),
        ts.to_string().as_bytes(),
    ])
}

/// `"MEMBER_CHANGE" ‖ ascii(type) ‖ ts`.
pub fn member_change_signed_bytes(kind: MemberChangeType, ts: u64) -> Vec<u8> {
    cat(&[
        b"MEMBER_CHANGE",
        (kind as i32).to_string().as_bytes(),
        ts.to_string().as_bytes(),
    ])
}

/// `"INFO_CHANGE" ‖ ascii(type) ‖ ts`.
pub fn info_change_signed_bytes(kind: InfoChangeType, ts: u64) -> Vec<u8> {
    cat(&[
        b"INFO_CHANGE",
        (kind as i32).to_string().as_bytes(),
        ts.to_string().as_bytes(),
    ])
}

/// `"DELETE_CONTENT" ‖ ts ‖ sid… ‖ hash…`.
pub fn delete_content_signed_bytes<S: AsRef<str>, H: AsRef<str>>(
    ts: u64,
    member_ids: &[S],
    hashes: &[H],
) -> Vec<u8> {
    let mut v = b"DELETE_CONTENT".to_vec();
    v.extend_from_slice(ts.to_string().as_bytes());
    for s in member_ids {
        v.extend_from_slice(s.as_ref().as_bytes());
    }
    for h in hashes {
        v.extend_from_slice(h.as_ref().as_bytes());
    }
    v
}

fn verify_admin(
    group_pk: &[u8; 32],
    msg: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<(), GroupError> {
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| GroupError::BadSignature { what })?;
    VerifyingKey::from_bytes(group_pk)
        .and_then(|vk| vk.verify_strict(msg, &Signature::from_bytes(&sig)))
        .map_err(|_| GroupError::BadSignature { what })
}

fn wrap(update: GroupUpdateMessage, ts: u64) -> Content {
    Content {
        data_message: Some(DataMessage {
            group_update_message: Some(update),
            ..Default::default()
        }),
        sig_timestamp: Some(ts),
        ..Default::default()
    }
}

/// Admin: the one-to-one invite for `invitee` (read|write credentials), sent with
/// `Envelope.timestamp = ts`. The caller may add the sender's profile to the DataMessage.
pub fn invite(
    group: &GroupAdminKeys,
    name: &str,
    invitee: &AccountId,
    ts: u64,
) -> Result<Content, GroupError> {
    let auth = make_member_auth_data(group, invitee, super::subaccount::DEFAULT_FLAGS)?;
    let sig = group.keys().sign(&invite_signed_bytes(invitee, ts));
    Ok(wrap(
        GroupUpdateMessage {
            invite_message: Some(GroupUpdateInviteMessage {
                group_session_id: group.id().to_string(),
                name: name.to_owned(),
                member_auth_data: auth.0.to_vec(),
                admin_signature: sig.to_bytes().to_vec(),
            }),
            ..Default::default()
        },
        ts,
    ))
}

/// Admin: the one-to-one promotion, carrying the group seed.
pub fn promote(group: &GroupAdminKeys, name: &str, ts: u64) -> Content {
    wrap(
        GroupUpdateMessage {
            promote_message: Some(GroupUpdatePromoteMessage {
                group_identity_seed: group.seed().to_vec(),
                name: name.to_owned(),
            }),
            ..Default::default()
        },
        ts,
    )
}

/// Invitee: the answer posted to the group (ns 11).
pub fn invite_response(approved: bool, ts: u64) -> Content {
    wrap(
        GroupUpdateMessage {
            invite_response: Some(GroupUpdateInviteResponseMessage {
                is_approved: approved,
            }),
            ..Default::default()
        },
        ts,
    )
}

/// Admin: "members added / removed / promoted", posted to the group.
pub fn member_change(
    group: &GroupAdminKeys,
    kind: MemberChangeType,
    members: &[AccountId],
    history_shared: bool,
    ts: u64,
) -> Content {
    let sig = group.keys().sign(&member_change_signed_bytes(kind, ts));
    wrap(
        GroupUpdateMessage {
            member_change_message: Some(GroupUpdateMemberChangeMessage {
                r#type: kind as i32,
                member_session_ids: members.iter().map(ToString::to_string).collect(),
                history_shared: history_shared.then_some(true),
                admin_signature: sig.to_bytes().to_vec(),
            }),
            ..Default::default()
        },
        ts,
    )
}

/// Admin: "name / avatar / disappearing timer changed", posted to the group.
pub fn info_change(
    group: &GroupAdminKeys,
    kind: InfoChangeType,
    updated_name: Option<&str>,
    updated_expiration: Option<u32>,
    ts: u64,
) -> Content {
    let sig = group.keys().sign(&info_change_signed_bytes(kind, ts));
    wrap(
        GroupUpdateMessage {
            info_change_message: Some(GroupUpdateInfoChangeMessage {
                r#type: kind as i32,
                updated_name: updated_name.map(str::to_owned),
                updated_expiration,
                admin_signature: sig.to_bytes().to_vec(),
            }),
            ..Default::default()
        },
        ts,
    )
}

/// Member: the pair posted when leaving: the notification (at `ts`), then the left message
/// (at `ts + 1`).
pub fn member_left(ts: u64) -> [Content; 2] {
    [
        wrap(
            GroupUpdateMessage {
                member_left_notification_message: Some(GroupUpdateMemberLeftNotificationMessage {}),
                ..Default::default()
            },
            ts,
        ),
        wrap(
            GroupUpdateMessage {
                member_left_message: Some(GroupUpdateMemberLeftMessage {}),
                ..Default::default()
            },
            ts + 1,
        ),
    ]
}

/// "Delete content": with `admin`, everything from `members` plus `hashes`; without, only the
/// sender's own `hashes`.
pub fn delete_member_content(
    admin: Option<&GroupAdminKeys>,
    members: &[AccountId],
    hashes: &[String],
    ts: u64,
) -> Content {
    let ids: Vec<String> = members.iter().map(ToString::to_string).collect();
    let sig = admin.map(|g| {
        g.keys()
            .sign(&delete_content_signed_bytes(ts, &ids, hashes))
            .to_bytes()
            .to_vec()
    });
    wrap(
        GroupUpdateMessage {
            delete_member_content: Some(GroupUpdateDeleteMemberContentMessage {
                member_session_ids: ids,
                message_hashes: hashes.to_vec(),
                admin_signature: sig,
            }),
            ..Default::default()
        },
        ts,
    )
}

/// A received invite, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The group's `03…` ID.
    pub group_id: AccountId,
    /// The group name the inviter gave (the info config is authoritative).
    pub name: String,
    /// Our swarm credential.
    pub auth: MemberAuthData,
}

/// A received promotion: we hold the group seed now.
#[derive(Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The group's keys, from the seed.
    pub group: GroupAdminKeys,
    /// The group name the sender gave.
    pub name: String,
}

impl std::fmt::Debug for Promotion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promotion")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// A control message after its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupUpdate {
    /// One-to-one: we are invited.
    Invite(Invitation),
    /// One-to-one: we are promoted to admin (boxed: the group keys are large).
    Promote(Box<Promotion>),
    /// In the group: the sender answered its invite.
    InviteResponse {
        /// Accepted (desktop only ever sends true).
        approved: bool,
    },
    /// In the group, admin-signed: members added, removed or promoted (advisory: the members
    /// config is authoritative).
    MemberChange {
        /// What happened.
        kind: MemberChangeType,
        /// To whom (not covered by the signature).
        members: Vec<AccountId>,
        /// Added "with history".
        history_shared: bool,
    },
    /// In the group, admin-signed: name, avatar or timer changed (advisory: the info config is
    /// authoritative).
    InfoChange {
        /// What changed.
        kind: InfoChangeType,
        /// The new name, for NAME.
        name: Option<String>,
        /// The new timer in seconds, for DISAPPEARING_MESSAGES.
        expiration: Option<u32>,
    },
    /// In the group: the sender left (desktop's admin then removes them).
    MemberLeft,
    /// In the group: "X left", to show.
    MemberLeftNotification,
    /// In the group: delete messages.
    DeleteMemberContent {
        /// Everything from these members (admin-signed only).
        members: Vec<AccountId>,
        /// These message hashes (without an admin signature: only the sender's own).
        hashes: Vec<String>,
        /// Whether an admin signed it (else it only covers the sender's own messages).
        by_admin: bool,
    },
}

fn which(u: &GroupUpdateMessage) -> Result<&'static str, GroupError> {
    let set = [
        u.invite_message.is_some().then_some("invite"),
        u.info_change_message.is_some().then_some("info change"),
        u.member_change_message.is_some().then_some("member change"),
        u.promote_message.is_some().then_some("promote"),
        u.member_left_message.is_some().then_some("member left"),
        u.invite_response.is_some().then_some("invite response"),
        u.delete_member_content
            .is_some()
            .then_some("delete member content"),
        u.member_left_notification_message
            .is_some()
            .then_some("member left notification"),
    ];
    let mut present = set.into_iter().flatten();
    match (present.next(), present.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(GroupError::Invalid {
            what: "group update",
            reason: "no update in it",
        }),
        (Some(_), Some(_)) => Err(GroupError::Invalid {
            what: "group update",
            reason: "more than one update in it",
        }),
    }
}

fn member_ids(ids: &[String], what: &'static str) -> Result<Vec<AccountId>, GroupError> {
    ids.iter()
        .map(|s| {
            AccountId::parse_raw(s)
                .ok()
                .filter(|id| id.prefix() == Some(Prefix::Standard))
                .ok_or(GroupError::Invalid {
                    what,
                    reason: "a member ID is not a 05 Account ID",
                })
        })
        .collect()
}

/// Reads a control message that arrived one-to-one (our ns 0) from `sender` with
/// `Envelope.timestamp = ts`: an invite (admin signature and credentials checked for `own`) or
/// a promotion. Anything else belongs in the group and is refused here.
pub fn read_direct_update(
    own: &IdentityKeys,
    sender: &AccountId,
    ts: u64,
    update: &GroupUpdateMessage,
) -> Result<GroupUpdate, GroupError> {
    let kind = which(update)?;
    if sender.prefix() != Some(Prefix::Standard) {
        return Err(GroupError::BadMember {
            reason: "control messages come from 05 Account IDs",
        });
    }
    if let Some(inv) = &update.invite_message {
        let group_id =
            AccountId::parse_raw(&inv.group_session_id).map_err(|_| GroupError::Invalid {
                what: "invite",
                reason: "groupSessionId is not 66 hex characters",
            })?;
        if group_id.prefix() == Some(Prefix::Standard) {
            return Err(GroupError::LegacyGroup {
                what: "invite to a 05 group",
            });
        }
        let group_pk = super::group_public_key(&group_id)?;
        verify_admin(
            &group_pk,
            &invite_signed_bytes(own.account_id(), ts),
            &inv.admin_signature,
            "invite admin signature",
        )?;
        let auth = MemberAuthData::from_slice(&inv.member_auth_data)?;
        SubaccountSigner::new(own, &group_pk, &auth)?;
        return Ok(GroupUpdate::Invite(Invitation {
            group_id,
            name: inv.name.clone(),
            auth,
        }));
    }
    if let Some(p) = &update.promote_message {
        let seed: [u8; 32] =
            p.group_identity_seed
                .as_slice()
                .try_into()
                .map_err(|_| GroupError::Invalid {
                    what: "promotion",
                    reason: "the group seed must be 32 bytes",
                })?;
        return Ok(GroupUpdate::Promote(Box::new(Promotion {
            group: GroupAdminKeys::from_seed(&seed),
            name: p.name.clone(),
        })));
    }
    Err(GroupError::Invalid {
        what: kind,
        reason: "this update belongs in the group, not in a one-to-one message",
    })
}

/// Reads a control message that arrived in the group `group_pk` (ns 11) with
/// `Envelope.timestamp = ts`; the sender was authenticated by the group message signature.
/// Admin-only updates must carry a valid group signature. Invites and promotions are refused
/// (they travel one-to-one).
pub fn read_group_update(
    group_pk: &[u8; 32],
    ts: u64,
    update: &GroupUpdateMessage,
) -> Result<GroupUpdate, GroupError> {
    let kind = which(update)?;
    if let Some(m) = &update.member_change_message {
        let t = MemberChangeType::try_from(m.r#type).map_err(|_| GroupError::Invalid {
            what: kind,
            reason: "unknown member change type",
        })?;
        verify_admin(
            group_pk,
            &member_change_signed_bytes(t, ts),
            &m.admin_signature,
            "member change admin signature",
        )?;
        return Ok(GroupUpdate::MemberChange {
            kind: t,
            members: member_ids(&m.member_session_ids, kind)?,
            history_shared: m.history_shared.unwrap_or(false),
        });
    }
    if let Some(i) = &update.info_change_message {
        let t = InfoChangeType::try_from(i.r#type).map_err(|_| GroupError::Invalid {
            what: kind,
            reason: "unknown info change type",
        })?;
        verify_admin(
            group_pk,
            &info_change_signed_bytes(t, ts),
            &i.admin_signature,
            "info change admin signature",
        )?;
        return Ok(GroupUpdate::InfoChange {
            kind: t,
            name: i.updated_name.clone(),
            expiration: i.updated_expiration,
        });
    }
    if let Some(r) = &update.invite_response {
        return Ok(GroupUpdate::InviteResponse {
            approved: r.is_approved,
        });
    }
    if update.member_left_message.is_some() {
        return Ok(GroupUpdate::MemberLeft);
    }
    if update.member_left_notification_message.is_some() {
        return Ok(GroupUpdate::MemberLeftNotification);
    }
    if let Some(del) = &update.delete_member_content {
        let by_admin = match &del.admin_signature {
            Some(sig) => {
                let msg =
                    delete_content_signed_bytes(ts, &del.member_session_ids, &del.message_hashes);
                verify_admin(group_pk, &msg, sig, "delete content admin signature")?;
                true
            }
            None => false,
        };
        let members = if by_admin {
            member_ids(&del.member_session_ids, kind)?
        } else {
            // Unsigned, only the sender's own hashes count: a member list means nothing.
            Vec::new()
        };
        return Ok(GroupUpdate::DeleteMemberContent {
            members,
            hashes: del.message_hashes.clone(),
            by_admin,
        });
    }
    Err(GroupError::Invalid {
        what: kind,
        reason: "this update travels one-to-one, not in the group",
    })
}

#[cfg(test)]
mod tests;
