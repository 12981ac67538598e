//! The GroupService: creating groups and administering them (invite, remove, promote, rename),
//! accepting or declining invitations, leaving, and reading groups and their members; and
//! [`send_to_group`], MessageService.SendMessage for a group conversation.
//!
//! Admin operations write the group's swarm in one `sequence` signed with the group key (keys
//! ns 12, info ns 13, members ns 14, kicked notices ns −11) before they record anything, so a
//! failed call leaves the store as it was. Invitations and promotions are one-to-one messages
//! sealed like any other.

use rand::rngs::OsRng;
use session_net::{Auth, NetClient, Op, OpOutcome};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::groups::configs::{self, Status, INFO, MEMBERS};
use session_proto::groups::control;
use session_proto::groups::keys::GroupKeys;
use session_proto::groups::message::encrypt_group_message;
use session_proto::groups::multi::kicked_notice;
use session_proto::groups::{
    GroupAdminKeys, NS_INFO, NS_KEYS, NS_MEMBERS, NS_MESSAGES, NS_REVOKED_RETRIEVABLE,
};
use session_proto::keys::IdentityKeys;
use session_proto::protos::Content;
use sessiond_api::v1::group_service_server::GroupService;
use sessiond_api::v1::{
    AcceptInvitationRequest, AcceptInvitationResponse, CreateGroupRequest, CreateGroupResponse,
    DeclineInvitationRequest, DeclineInvitationResponse, GetGroupRequest, GetGroupResponse, Group,
    GroupMember as ApiMember, GroupStatus as ApiStatus, InviteGroupMembersRequest,
    InviteGroupMembersResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupMembersRequest,
    ListGroupMembersResponse, ListGroupsRequest, ListGroupsResponse, PromoteGroupMembersRequest,
    PromoteGroupMembersResponse, RemoveGroupMembersRequest, RemoveGroupMembersResponse,
    UpdateGroupInfoRequest, UpdateGroupInfoResponse,
};
use tonic::{Request, Response, Status as GrpcStatus};

use super::auth::{caller, Caller};
use super::messages::{self, parse_recipient};
use super::{now_ms, ApiError, Service};
use crate::engine::groups::{self as engine, admin_keys, keep_keys_message, member_entry, Live};
use crate::store::{
    ControlOut, GroupRecord, GroupStatus, IdentityRecord, Inbound, InboundKind, MessageExtras,
    NewOutgoing, Queued, ReplyRef,
};

/// How long the swarm keeps group messages and the invitations and promotions sent to members
/// (14 days, as the apps).
const GROUP_TTL_MS: u64 = session_proto::groups::MESSAGE_TTL_MS;
/// How long it keeps a group's keys, info and members and the kicked notices (30 days, as the
/// apps; [`crate::engine::groups`] renews the current ones).
const GROUP_CONFIG_TTL_MS: u64 = session_proto::groups::CONFIG_TTL_MS;

fn status_to_api(s: GroupStatus) -> ApiStatus {
    match s {
        GroupStatus::Invited => ApiStatus::Invited,
        GroupStatus::Joined => ApiStatus::Joined,
        GroupStatus::Kicked => ApiStatus::Kicked,
        GroupStatus::Left => ApiStatus::Left,
        GroupStatus::Destroyed => ApiStatus::Destroyed,
    }
}

/// A group in the API's form.
pub(super) fn group_to_api(rec: &GroupRecord) -> Group {
    Group {
        group_id: rec.id.clone(),
        name: rec.name.clone(),
        description: rec.description.clone(),
        status: status_to_api(rec.status) as i32,
        admin: rec.is_admin(),
        member_count: u32::try_from(rec.members.len()).unwrap_or(u32::MAX),
        inviter: rec.inviter.clone().unwrap_or_default(),
    }
}

/// The API's form of a `Group` event.
pub(super) fn change_to_api(c: crate::store::GroupChange) -> sessiond_api::v1::GroupChanged {
    sessiond_api::v1::GroupChanged {
        group_id: c.group,
        name: c.name,
        status: c.status.map_or(ApiStatus::Unspecified, status_to_api) as i32,
        added: c.added,
        removed: c.removed,
        promoted: c.promoted,
        inviter: c.inviter.unwrap_or_default(),
        renamed: c.renamed,
        description_changed: c.described,
    }
}

/// Parses a group ID (`03…`).
fn parse_group(field: &'static str, text: &str) -> Result<String, ApiError> {
    let id: AccountId = text
        .trim()
        .parse()
        .map_err(|e| ApiError::protocol(field, &e))?;
    if id.prefix() != Some(Prefix::Group) {
        return Err(ApiError::field(field, "a group ID starts with 03"));
    }
    Ok(id.to_string())
}

/// Parses a member list: `05…` IDs, not the identity itself, duplicates dropped.
fn parse_members(list: &[String], own: &AccountId) -> Result<Vec<AccountId>, ApiError> {
    let mut out: Vec<AccountId> = Vec::new();
    for m in list {
        let id = parse_recipient("members", m)?;
        if id == *own {
            return Err(ApiError::field(
                "members",
                "the identity itself is a member already",
            ));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn validate_name(name: &str, required: bool) -> Result<(), ApiError> {
    if required && name.trim().is_empty() {
        return Err(ApiError::field("name", "the group name is empty"));
    }
    if name.len() > configs::NAME_MAX_LENGTH {
        return Err(ApiError::field("name", "longer than 100 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "control characters"));
    }
    Ok(())
}

fn validate_description(text: &str) -> Result<(), ApiError> {
    if text.len() > configs::DESCRIPTION_MAX_LENGTH {
        return Err(ApiError::field("description", "longer than 2000 bytes"));
    }
    Ok(())
}

fn op_err(e: engine::GroupOpError) -> ApiError {
    match e {
        engine::GroupOpError::Store(e) => ApiError::Store(e),
        engine::GroupOpError::Net(e) if e.is_retryable() => {
            ApiError::Unavailable(format!("the group's swarm: {e}"))
        }
        engine::GroupOpError::Net(e) => ApiError::protocol("the group's swarm refused it", &e),
        engine::GroupOpError::Protocol(why) => ApiError::FailedPrecondition(why),
    }
}

fn proto_err(what: &'static str) -> impl Fn(session_proto::err::GroupError) -> ApiError {
    move |e| ApiError::protocol(what, &e)
}

fn config_err(what: &'static str) -> impl Fn(session_proto::err::ConfigError) -> ApiError {
    move |e| ApiError::protocol(what, &e)
}

/// What [`Service::store_sequence`] stores for one config push.
struct Pushed {
    info: Option<(i64, Vec<String>)>,
    members: Option<(i64, Vec<String>)>,
}

impl Service {
    fn net(&self) -> Result<NetClient, ApiError> {
        self.state()
            .network
            .as_ref()
            .and_then(|n| n.client())
            .ok_or_else(|| {
                ApiError::Unavailable(
                    "this daemon is offline (no network client): groups need the network"
                        .to_owned(),
                )
            })
    }

    /// The identity (checked against the caller) and its keys.
    async fn own(
        &self,
        who: Caller,
        identity: String,
    ) -> Result<(IdentityRecord, IdentityKeys), ApiError> {
        self.blocking(move |state| {
            let record = who.identity(state, "identity", &identity)?;
            let seed = state.store.identity_seed(&record.name)?;
            Ok((record, IdentityKeys::from_seed(&seed)))
        })
        .await
    }

    /// The identity (checked against the caller) and its group, which must hold a pending
    /// invitation (FAILED_PRECONDITION otherwise): where Accept and Decline both start.
    async fn invitation(
        &self,
        who: Caller,
        identity: String,
        group: &str,
    ) -> Result<(IdentityRecord, GroupRecord), ApiError> {
        let (record, _) = self.own(who, identity).await?;
        let rec = self.group_of(&record, group).await?;
        if rec.status != GroupStatus::Invited {
            return Err(ApiError::FailedPrecondition(format!(
                "group {group} has no pending invitation"
            )));
        }
        Ok((record, rec))
    }

    /// One group of the identity; NOT_FOUND if it has none with that ID.
    async fn group_of(
        &self,
        record: &IdentityRecord,
        group: &str,
    ) -> Result<GroupRecord, ApiError> {
        let (id, name, group) = (record.id, record.name.clone(), group.to_owned());
        self.blocking(move |state| {
            state.store.group(id, &group)?.ok_or_else(|| {
                ApiError::NotFound(format!(
                    "{name:?} has no group {group}; ListGroups shows them"
                ))
            })
        })
        .await
    }

    /// Saves a group record (and records its events).
    async fn save(
        &self,
        record: &IdentityRecord,
        rec: GroupRecord,
    ) -> Result<GroupRecord, ApiError> {
        let id = record.id;
        self.blocking(move |state| {
            let gid = rec.id.clone();
            let (saved, _) = state
                .store
                .update_group(id, &gid, now_ms(), |_| Some(rec))?;
            saved.ok_or_else(|| ApiError::Internal("the group was not saved".to_owned()))
        })
        .await
    }

    /// Saves a group record whose standing changed (created, accepted, declined, left) and, in
    /// the same local change (see `SyncHub::local_change`), queues its UserGroups edit so the
    /// account's other devices follow.
    async fn save_synced(
        &self,
        record: &IdentityRecord,
        rec: GroupRecord,
    ) -> Result<GroupRecord, ApiError> {
        let id = record.id;
        self.blocking(move |state| {
            let gid = rec.id.clone();
            let _local = state.sync.local_change();
            let (saved, _) = state
                .store
                .update_group(id, &gid, now_ms(), |_| Some(rec))?;
            let saved =
                saved.ok_or_else(|| ApiError::Internal("the group was not saved".to_owned()))?;
            if let Some(edit) = crate::engine::configsync::group_edit(&saved) {
                state.sync.edit(id, edit);
            }
            Ok(saved)
        })
        .await
    }

    /// Stores `ops` and then the pending pushes of the configs in one `sequence` signed with the
    /// group key; confirms the pushes. Returns the hashes of `ops`, in order.
    async fn store_sequence(
        &self,
        net: &NetClient,
        live: &mut Live,
        admin: &GroupAdminKeys,
        mut ops: Vec<Op>,
        info: bool,
        members: bool,
    ) -> Result<Vec<String>, ApiError> {
        let first = ops.len();
        let mut pushed = Pushed {
            info: None,
            members: None,
        };
        let mut spans = Vec::new();
        for (which, ns, config) in [
            (info, NS_INFO, &mut live.info),
            (members, NS_MEMBERS, &mut live.members),
        ] {
            if !which {
                continue;
            }
            let p = config.push().map_err(config_err("group config"))?;
            let start = ops.len();
            for m in p.messages {
                ops.push(Op::Store {
                    namespace: ns,
                    data: m,
                    ttl_ms: GROUP_CONFIG_TTL_MS,
                });
            }
            spans.push((ns, p.seqno, start, ops.len()));
        }
        let auth = Auth::GroupAdmin(admin.keys().signing_key().clone());
        let results = net
            .sequence(&live.account(), &auth, &ops)
            .await
            .map_err(|e| op_err(e.into()))?;
        let mut hashes = Vec::new();
        for r in results {
            match r {
                Ok(OpOutcome::Stored(s)) => hashes.push(s.hash),
                Ok(_) => hashes.push(String::new()),
                Err(e) => {
                    for (ns, seqno, _, _) in &spans {
                        let c = if *ns == NS_INFO {
                            &mut live.info
                        } else {
                            &mut live.members
                        };
                        c.push_failed(*seqno);
                    }
                    return Err(op_err(e.into()));
                }
            }
        }
        for (ns, seqno, start, end) in spans {
            let h = hashes[start..end].to_vec();
            if ns == NS_INFO {
                pushed.info = Some((seqno, h));
            } else {
                pushed.members = Some((seqno, h));
            }
        }
        if let Some((seqno, h)) = pushed.info {
            live.info.confirm_pushed(seqno, &h);
        }
        if let Some((seqno, h)) = pushed.members {
            live.members.confirm_pushed(seqno, &h);
        }
        Ok(hashes[..first].to_vec())
    }

    /// Sends one-to-one control messages (invitations, promotions), each sealed with its
    /// Envelope timestamp `ts` (which the admin signatures cover). Returns who could not be
    /// reached.
    async fn send_direct(
        &self,
        net: &NetClient,
        own: &IdentityKeys,
        to: Vec<(AccountId, Content)>,
        ts: u64,
    ) -> Vec<AccountId> {
        let mut failed = Vec::new();
        for (who, content) in to {
            let sealed = self.state().sealer.seal(own, &who, &content, ts);
            let ok = match sealed {
                Ok(payload) => net
                    .store(
                        &session_proto::storage_rpc::UserPubkey(*who.as_bytes()),
                        0,
                        &payload,
                        GROUP_TTL_MS,
                        &Auth::None,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = ok {
                tracing::warn!(cause = %why, "a group invitation or promotion was not delivered");
                failed.push(who);
            }
        }
        failed
    }

    /// The admin side of an operation: the record (joined, admin), its keys and live state.
    async fn admin_live(
        &self,
        record: &IdentityRecord,
        own: &IdentityKeys,
        group: &str,
    ) -> Result<(GroupRecord, GroupAdminKeys, Live), ApiError> {
        let rec = self.group_of(record, group).await?;
        if rec.status != GroupStatus::Joined {
            return Err(ApiError::FailedPrecondition(format!(
                "the identity is not in group {group} (any more)"
            )));
        }
        let admin = admin_keys(&rec).map_err(op_err)?.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("the identity is not an admin of group {group}"))
        })?;
        let live = Live::load(own, &rec, now_ms()).map_err(op_err)?;
        Ok((rec, admin, live))
    }
}

#[tonic::async_trait]
impl GroupService for Service {
    async fn create_group(
        &self,
        req: Request<CreateGroupRequest>,
    ) -> Result<Response<CreateGroupResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let CreateGroupRequest {
            identity,
            name,
            description,
            members,
        } = req.into_inner();
        let name = name.trim().to_owned();
        validate_name(&name, true)?;
        validate_description(&description)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let invitees = parse_members(&members, own.account_id())?;
        let now = now_ms();
        let admin = GroupAdminKeys::generate(&mut OsRng);
        let mut keys =
            GroupKeys::for_admin(Some(&own), admin.clone()).map_err(proto_err("group keys"))?;
        let mut everyone = vec![*own.account_id()];
        everyone.extend(invitees.iter().copied());
        let keys_msg = keys.rekey(&everyone).map_err(proto_err("rekey"))?;
        let mut info = configs::new_config(INFO, &keys);
        let mut mems = configs::new_config(MEMBERS, &keys);
        info.edit(|d| {
            configs::set_name(d, &name)?;
            configs::set_description(d, &description)?;
            configs::set_created(d, i64::try_from(now / 1000).unwrap_or(0));
            Ok::<_, session_proto::err::ConfigError>(())
        })
        .and_then(|r| r)
        .map_err(config_err("group info"))?;
        let display = record.display_name.clone().unwrap_or_default();
        mems.edit(|d| {
            let mut me = member_entry(*own.account_id(), true, None);
            me.name = display.chars().take(50).collect();
            configs::set_member(d, &me)?;
            for m in &invitees {
                configs::set_member(d, &member_entry(*m, false, Some(Status::Sent)))?;
            }
            Ok::<_, session_proto::err::ConfigError>(())
        })
        .and_then(|r| r)
        .map_err(config_err("group members"))?;
        let mut live = Live {
            id: *admin.id(),
            keys,
            info,
            members: mems,
        };
        let hashes = self
            .store_sequence(
                &net,
                &mut live,
                &admin,
                vec![Op::Store {
                    namespace: NS_KEYS,
                    data: keys_msg.clone(),
                    ttl_ms: GROUP_CONFIG_TTL_MS,
                }],
                true,
                true,
            )
            .await?;
        let mut rec = GroupRecord {
            id: admin.id().to_string(),
            name: name.clone(),
            description: description.clone(),
            status: GroupStatus::Joined,
            admin_seed: Some(hex::encode(admin.seed())),
            auth_data: None,
            inviter: None,
            members: Vec::new(),
            keys_messages: Vec::new(),
            info_dump: None,
            members_dump: None,
            created_at_ms: now,
        };
        keep_keys_message(&mut rec, &hashes[0], &keys_msg, now);
        live.save(&mut rec, now);
        let rec = self.save_synced(&record, rec).await?;
        let ts = now_ms();
        let mut invites = Vec::new();
        for m in &invitees {
            invites.push((
                *m,
                control::invite(&admin, &name, m, ts).map_err(proto_err("invitation"))?,
            ));
        }
        self.send_direct(&net, &own, invites, ts).await;
        Ok(Response::new(CreateGroupResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn get_group(
        &self,
        req: Request<GetGroupRequest>,
    ) -> Result<Response<GetGroupResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let GetGroupRequest { identity, group_id } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let (record, _) = self.own(who, identity).await?;
        let rec = self.group_of(&record, &group).await?;
        Ok(Response::new(GetGroupResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn list_groups(
        &self,
        req: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let ListGroupsRequest { identity } = req.into_inner();
        let groups = self
            .blocking(move |state| {
                let record = who.identity(state, "identity", &identity)?;
                Ok(state.store.groups(record.id)?)
            })
            .await?;
        Ok(Response::new(ListGroupsResponse {
            groups: groups.iter().map(group_to_api).collect(),
        }))
    }

    async fn list_group_members(
        &self,
        req: Request<ListGroupMembersRequest>,
    ) -> Result<Response<ListGroupMembersResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let ListGroupMembersRequest { identity, group_id } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let (record, _) = self.own(who, identity).await?;
        let rec = self.group_of(&record, &group).await?;
        let mut members: Vec<ApiMember> = rec
            .members
            .iter()
            .map(|m| ApiMember {
                account_id: m.account_id.clone(),
                name: m.name.clone(),
                admin: m.admin,
                invited: m.invited,
            })
            .collect();
        members.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        Ok(Response::new(ListGroupMembersResponse { members }))
    }

    async fn invite_group_members(
        &self,
        req: Request<InviteGroupMembersRequest>,
    ) -> Result<Response<InviteGroupMembersResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let InviteGroupMembersRequest {
            identity,
            group_id,
            members,
            share_history,
        } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let invitees = parse_members(&members, own.account_id())?;
        if invitees.is_empty() {
            return Err(ApiError::field("members", "no one to invite").into());
        }
        let (mut rec, admin, mut live) = self.admin_live(&record, &own, &group).await?;
        let now = now_ms();
        live.members
            .edit(|d| {
                for m in &invitees {
                    let mut e = member_entry(*m, false, Some(Status::Sent));
                    e.supplement = share_history;
                    configs::set_member(d, &e)?;
                }
                Ok::<_, session_proto::err::ConfigError>(())
            })
            .and_then(|r| r)
            .map_err(config_err("group members"))?;
        // With history: the new members get every key we keep; without: a rekey they are in
        // (what was posted before stays unreadable to them).
        let keys_msg = if share_history {
            live.keys
                .key_supplement(&invitees)
                .map_err(proto_err("key supplement"))?
        } else {
            let everyone: Vec<AccountId> = configs::members(live.members.data())
                .into_iter()
                .filter(|m| m.removal.is_none())
                .map(|m| m.id)
                .collect();
            let msg = live.keys.rekey(&everyone).map_err(proto_err("rekey"))?;
            live.info = configs::with_keys(&mut live.info, &live.keys, now)
                .map_err(config_err("group info"))?;
            live.members = configs::with_keys(&mut live.members, &live.keys, now)
                .map_err(config_err("group members"))?;
            // Re-encrypted under the new key: pushed again.
            live.info.edit(|_| ()).map_err(config_err("group info"))?;
            msg
        };
        let hashes = self
            .store_sequence(
                &net,
                &mut live,
                &admin,
                vec![Op::Store {
                    namespace: NS_KEYS,
                    data: keys_msg.clone(),
                    ttl_ms: GROUP_CONFIG_TTL_MS,
                }],
                !share_history,
                true,
            )
            .await?;
        keep_keys_message(&mut rec, &hashes[0], &keys_msg, now);
        live.save(&mut rec, now);
        let rec = self.save(&record, rec).await?;
        let ts = now_ms();
        let mut invites = Vec::new();
        for m in &invitees {
            invites.push((
                *m,
                control::invite(&admin, &rec.name, m, ts).map_err(proto_err("invitation"))?,
            ));
        }
        self.send_direct(&net, &own, invites, ts).await;
        Ok(Response::new(InviteGroupMembersResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn accept_invitation(
        &self,
        req: Request<AcceptInvitationRequest>,
    ) -> Result<Response<AcceptInvitationResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let AcceptInvitationRequest { identity, group_id } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let (record, mut rec) = self.invitation(who, identity, &group).await?;
        rec.status = GroupStatus::Joined;
        let rec = self.save_synced(&record, rec).await?;
        // The poller reads the group from now on.
        self.state().identities_changed.notify_one();
        Ok(Response::new(AcceptInvitationResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn decline_invitation(
        &self,
        req: Request<DeclineInvitationRequest>,
    ) -> Result<Response<DeclineInvitationResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let DeclineInvitationRequest { identity, group_id } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let (record, mut rec) = self.invitation(who, identity, &group).await?;
        rec.status = GroupStatus::Left;
        rec.auth_data = None;
        self.save_synced(&record, rec).await?;
        Ok(Response::new(DeclineInvitationResponse {}))
    }

    async fn remove_group_members(
        &self,
        req: Request<RemoveGroupMembersRequest>,
    ) -> Result<Response<RemoveGroupMembersResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let RemoveGroupMembersRequest {
            identity,
            group_id,
            members,
            delete_messages,
        } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let removed = parse_members(&members, own.account_id())?;
        if removed.is_empty() {
            return Err(ApiError::field("members", "no one to remove").into());
        }
        let (mut rec, admin, mut live) = self.admin_live(&record, &own, &group).await?;
        let now = now_ms();
        let generation = live.keys.current_generation().unwrap_or(0);
        let notice = kicked_notice(&admin, &removed, generation, &mut OsRng)
            .map_err(proto_err("kicked notice"))?;
        live.members
            .edit(|d| {
                for m in &removed {
                    configs::erase_member(d, m);
                }
            })
            .map_err(config_err("group members"))?;
        let everyone: Vec<AccountId> = configs::members(live.members.data())
            .into_iter()
            .map(|m| m.id)
            .collect();
        let keys_msg = live.keys.rekey(&everyone).map_err(proto_err("rekey"))?;
        live.info = configs::with_keys(&mut live.info, &live.keys, now)
            .map_err(config_err("group info"))?;
        live.members = configs::with_keys(&mut live.members, &live.keys, now)
            .map_err(config_err("group members"))?;
        live.info.edit(|_| ()).map_err(config_err("group info"))?;
        let mut ops = vec![
            Op::Store {
                namespace: NS_REVOKED_RETRIEVABLE,
                data: notice,
                ttl_ms: GROUP_CONFIG_TTL_MS,
            },
            Op::Store {
                namespace: NS_KEYS,
                data: keys_msg.clone(),
                ttl_ms: GROUP_CONFIG_TTL_MS,
            },
        ];
        if delete_messages {
            // Under the new key: the members who stay read it.
            let content = control::delete_member_content(Some(&admin), &removed, &[], now);
            let data = encrypt_group_message(&own, &live.keys, &content, now, &mut OsRng)
                .map_err(proto_err("delete member content"))?;
            ops.push(Op::Store {
                namespace: NS_MESSAGES,
                data,
                ttl_ms: GROUP_TTL_MS,
            });
        }
        let hashes = self
            .store_sequence(&net, &mut live, &admin, ops, true, true)
            .await?;
        keep_keys_message(&mut rec, &hashes[1], &keys_msg, now);
        live.save(&mut rec, now);
        let rec = self.save(&record, rec).await?;
        if delete_messages {
            // Out of this identity's log too, as the other members' daemons take them out.
            let deletion = Inbound {
                hash: hashes[2].clone(),
                sender: own.account_id().to_string(),
                conversation: rec.id.clone(),
                sent_at_ms: now,
                what: InboundKind::DeleteHashes {
                    hashes: Vec::new(),
                    members: removed.iter().map(ToString::to_string).collect(),
                    by_admin: true,
                },
            };
            let id = record.id;
            self.blocking(move |state| {
                Ok(state.store.record_inbound(id, &[deletion], None, now)?)
            })
            .await?;
        }
        Ok(Response::new(RemoveGroupMembersResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn promote_group_members(
        &self,
        req: Request<PromoteGroupMembersRequest>,
    ) -> Result<Response<PromoteGroupMembersResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let PromoteGroupMembersRequest {
            identity,
            group_id,
            members,
        } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let promoted = parse_members(&members, own.account_id())?;
        let (mut rec, admin, mut live) = self.admin_live(&record, &own, &group).await?;
        let now = now_ms();
        let current = configs::members(live.members.data());
        for p in &promoted {
            if !current.iter().any(|m| m.id == *p) {
                return Err(ApiError::field("members", format!("{p} is not a member")).into());
            }
        }
        live.members
            .edit(|d| {
                for m in current.iter().filter(|m| promoted.contains(&m.id)) {
                    let mut e = m.clone();
                    e.admin = true;
                    e.invite = None;
                    e.promotion = Some(Status::Sent);
                    configs::set_member(d, &e)?;
                }
                Ok::<_, session_proto::err::ConfigError>(())
            })
            .and_then(|r| r)
            .map_err(config_err("group members"))?;
        self.store_sequence(&net, &mut live, &admin, Vec::new(), false, true)
            .await?;
        live.save(&mut rec, now);
        let rec = self.save(&record, rec).await?;
        let ts = now_ms();
        let promotions = promoted
            .iter()
            .map(|m| (*m, control::promote(&admin, &rec.name, ts)))
            .collect();
        self.send_direct(&net, &own, promotions, ts).await;
        Ok(Response::new(PromoteGroupMembersResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn update_group_info(
        &self,
        req: Request<UpdateGroupInfoRequest>,
    ) -> Result<Response<UpdateGroupInfoResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let UpdateGroupInfoRequest {
            identity,
            group_id,
            name,
            description,
        } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let name = name.trim().to_owned();
        validate_name(&name, false)?;
        validate_description(&description)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let (mut rec, admin, mut live) = self.admin_live(&record, &own, &group).await?;
        live.info
            .edit(|d| {
                if !name.is_empty() {
                    configs::set_name(d, &name)?;
                }
                if !description.is_empty() {
                    configs::set_description(d, &description)?;
                }
                Ok::<_, session_proto::err::ConfigError>(())
            })
            .and_then(|r| r)
            .map_err(config_err("group info"))?;
        self.store_sequence(&net, &mut live, &admin, Vec::new(), true, false)
            .await?;
        live.save(&mut rec, now_ms());
        let rec = self.save(&record, rec).await?;
        Ok(Response::new(UpdateGroupInfoResponse {
            group: Some(group_to_api(&rec)),
        }))
    }

    async fn leave_group(
        &self,
        req: Request<LeaveGroupRequest>,
    ) -> Result<Response<LeaveGroupResponse>, GrpcStatus> {
        let who = caller(&req)?;
        let LeaveGroupRequest { identity, group_id } = req.into_inner();
        let group = parse_group("group_id", &group_id)?;
        let net = self.net()?;
        let (record, own) = self.own(who, identity).await?;
        let mut rec = self.group_of(&record, &group).await?;
        if rec.status != GroupStatus::Joined {
            return Err(ApiError::FailedPrecondition(format!(
                "the identity is not in group {group} (any more)"
            ))
            .into());
        }
        let live = Live::load(&own, &rec, now_ms()).map_err(op_err)?;
        let auth = engine::auth(&own, &rec).map_err(op_err)?;
        let ts = now_ms();
        let mut ops = Vec::new();
        for (i, content) in control::member_left(ts).iter().enumerate() {
            let at = ts + i as u64;
            let data = encrypt_group_message(&own, &live.keys, content, at, &mut OsRng)
                .map_err(proto_err("member left"))?;
            ops.push(Op::Store {
                namespace: NS_MESSAGES,
                data,
                ttl_ms: GROUP_TTL_MS,
            });
        }
        let results = net
            .sequence(&live.account(), &auth, &ops)
            .await
            .map_err(|e| op_err(e.into()))?;
        for r in results {
            // A 401 means we were revoked already: left either way.
            if let Err(e) = r {
                tracing::debug!(cause = %e, "a member-left notice was not stored");
            }
        }
        rec.status = GroupStatus::Left;
        let rec = self.save_synced(&record, rec).await?;
        Ok(Response::new(LeaveGroupResponse {
            group: Some(group_to_api(&rec)),
        }))
    }
}

/// `content` encrypted with the current key of `group`, which the identity must be a member of,
/// for the group's message namespace (11). Blocking.
fn seal_for_group(
    state: &super::State,
    record: &IdentityRecord,
    group: &str,
    content: &Content,
    now: u64,
) -> Result<Vec<u8>, ApiError> {
    let rec = state.store.group(record.id, group)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "{:?} is not in group {group}; ListGroups shows its groups",
            record.name
        ))
    })?;
    if rec.status != GroupStatus::Joined {
        return Err(ApiError::FailedPrecondition(format!(
            "the identity cannot post in group {group}: it is not a member (any more, or has \
             not accepted the invitation)"
        )));
    }
    let seed = state.store.identity_seed(&record.name)?;
    let own = IdentityKeys::from_seed(&seed);
    let live = Live::load(&own, &rec, now).map_err(op_err)?;
    if live.keys.encryption_key().is_none() {
        return Err(ApiError::Unavailable(format!(
            "the keys of group {group} have not been read yet; try again after the next poll"
        )));
    }
    encrypt_group_message(&own, &live.keys, content, now, &mut OsRng)
        .map_err(proto_err("group message"))
}

/// A control message (a reaction) for a group's swarm: `content` sealed by [`seal_for_group`].
/// Blocking.
pub(super) fn group_control(
    state: &super::State,
    record: &IdentityRecord,
    group: &str,
    content: &Content,
    now: u64,
) -> Result<ControlOut, ApiError> {
    let payload = seal_for_group(state, record, group, content, now)?;
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut OsRng, &mut id);
    Ok(ControlOut {
        message_id: hex::encode(id),
        recipient: group.to_owned(),
        payload,
        sent_at_ms: now,
        ttl_ms: GROUP_TTL_MS,
        namespace: i32::from(NS_MESSAGES),
    })
}

/// What SendMessage posts in a group, checked for form.
pub(super) struct GroupPost {
    /// The text (may be empty with attachments).
    pub text: String,
    /// The message it replies to.
    pub reply_to: Option<ReplyRef>,
    /// Uploaded attachments it carries.
    pub attachment_ids: Vec<String>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
}

/// MessageService.SendMessage for a group: the message (with its quote and attachments)
/// encrypted with the group's current key and queued for its swarm (ns 11), recorded as an
/// OutgoingMessage of the group conversation.
pub(super) fn send_to_group(
    state: &super::State,
    record: &IdentityRecord,
    group: &str,
    post: GroupPost,
) -> Result<Queued, ApiError> {
    let GroupPost {
        text,
        reply_to,
        attachment_ids,
        idempotency_key,
    } = post;
    messages::check_quoted(state, record.id, group, reply_to.as_ref())?;
    let (pointers, attachments) =
        messages::sent_attachments(state, record.id, &attachment_ids, group)?;
    let now = now_ms();
    let content = messages::post_content(
        &text,
        reply_to.as_ref(),
        record.display_name.as_deref(),
        None,
        pointers,
        now,
    );
    let payload = seal_for_group(state, record, group, &content, now)?;
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut OsRng, &mut id);
    Ok(state.store.queue_outgoing(
        record.id,
        NewOutgoing {
            message_id: hex::encode(id),
            recipient: group.to_owned(),
            text,
            sent_at_ms: now,
            payload,
            namespace: i32::from(NS_MESSAGES),
            ttl_ms: GROUP_TTL_MS,
            idempotency_key,
            sync_copy: None,
            extras: MessageExtras {
                reply_to,
                ..Default::default()
            },
            attachments,
        },
        now,
    )?)
}
