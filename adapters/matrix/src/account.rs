//! Discovery and account endpoints: `.well-known`, versions, capabilities, filters, account
//! data, profiles, push rules and pushers, devices, presence, the user directory.

use serde::Deserialize;
use serde_json::{json, Value};
use sessiond_api::client::looks_like_account_id;
use sessiond_api::v1::SetProfileRequest;

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::m_direct;
use crate::http::Req;
use crate::ids::{parse_user, short_account, user_id, LocalUser};
use crate::state::Shared;
use crate::sync::conversations;

/// `GET /.well-known/matrix/client`: this server, as the client reached it.
pub(crate) fn well_known(req: &Req) -> Value {
    let host = req.host().unwrap_or("localhost:8008");
    json!({ "m.homeserver": { "base_url": format!("http://{host}") } })
}

/// `GET /_matrix/client/versions`.
pub(crate) fn versions() -> Value {
    json!({
        "versions": [
            "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
            "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"
        ],
        "unstable_features": {},
    })
}

/// `GET /_matrix/client/v3/capabilities`.
pub(crate) fn capabilities() -> Value {
    json!({ "capabilities": {
        "m.change_password": { "enabled": false },
        "m.room_versions": {
            "default": crate::events::ROOM_VERSION,
            "available": { crate::events::ROOM_VERSION: "stable" },
        },
        "m.set_displayname": { "enabled": true },
        "m.set_avatar_url": { "enabled": false },
        "m.3pid_changes": { "enabled": false },
        "m.get_login_token": { "enabled": false },
    }})
}

/// A JSON object body, else `M_BAD_JSON`.
fn object_body(req: &Req) -> Result<Value, MatrixError> {
    req.json()
}

/// `POST /_matrix/client/v3/user/{userId}/filter`.
pub(crate) fn create_filter(
    s: &Shared,
    me: &Me,
    user: &str,
    req: &Req,
) -> Result<Value, MatrixError> {
    me.require_self(user)?;
    let filter = object_body(req)?;
    let id = s.identity(me.name()).add_filter(filter);
    Ok(json!({ "filter_id": id.to_string() }))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`.
pub(crate) fn get_filter(s: &Shared, me: &Me, user: &str, id: &str) -> Result<Value, MatrixError> {
    me.require_self(user)?;
    id.parse()
        .ok()
        .and_then(|id| s.identity(me.name()).filter(id))
        .ok_or_else(|| MatrixError::NotFound("no such filter".into()))
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`: `m.direct` is made from the
/// conversations; other types are what the client stored (in memory).
pub(crate) async fn get_account_data(
    s: &Shared,
    me: &Me,
    user: &str,
    kind: &str,
) -> Result<Value, MatrixError> {
    me.require_self(user)?;
    if kind == "m.direct" {
        let convs = conversations(me).await?;
        return Ok(m_direct(me, &s.config.server_name, &convs)["content"].take());
    }
    s.identity(me.name())
        .account_data(kind)
        .ok_or_else(|| MatrixError::NotFound("no account data of this type".into()))
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`: kept in memory (a client's
/// settings); `m.direct` is accepted but always answered from the conversations.
pub(crate) fn put_account_data(
    s: &Shared,
    me: &Me,
    user: &str,
    kind: &str,
    req: &Req,
) -> Result<Value, MatrixError> {
    me.require_self(user)?;
    let content = object_body(req)?;
    s.identity(me.name())
        .set_account_data(kind, content)
        .map_err(|()| MatrixError::Forbidden("too many account data types".into()))?;
    Ok(json!({}))
}

/// The display name of a contact, if the user knows one.
async fn contact_name(me: &Me, peer: &str) -> Result<Option<String>, MatrixError> {
    let contacts = me.client.all_contacts(me.name()).await?;
    Ok(contacts
        .into_iter()
        .find(|c| c.account_id == peer)
        .map(|c| {
            if !c.name.is_empty() {
                c.name
            } else if !c.profile_name.is_empty() {
                c.profile_name
            } else {
                c.handle
            }
        }))
}

/// `GET /_matrix/client/v3/profile/{userId}` (and `/displayname`, `/avatar_url` with `field`):
/// the user's own profile, or a contact's name. Other identities of the daemon do not exist
/// for this user.
pub(crate) async fn profile(
    s: &Shared,
    me: &Me,
    user: &str,
    field: Option<&str>,
) -> Result<Value, MatrixError> {
    let not_found = || MatrixError::NotFound("no such user".into());
    let name = match parse_user(user, &s.config.server_name, false) {
        Some(LocalUser::Identity(_)) if me.is(user) => Some(me.display_name().to_owned()),
        Some(LocalUser::Ghost(peer)) => contact_name(me, &peer)
            .await?
            .or_else(|| Some(short_account(&peer))),
        _ => return Err(not_found()),
    };
    Ok(match (field, name) {
        (Some("avatar_url"), _) | (_, None) => json!({}),
        (_, Some(n)) => json!({ "displayname": n }),
    })
}

#[derive(Debug, Deserialize)]
struct DisplayNameBody {
    displayname: String,
}

/// `PUT /_matrix/client/v3/profile/{userId}/displayname`: the name the identity announces
/// (`SetProfile`). Avatars are not supported (`m.set_avatar_url` is off).
pub(crate) async fn set_profile(
    s: &Shared,
    me: &Me,
    user: &str,
    field: &str,
    req: &Req,
) -> Result<Value, MatrixError> {
    let _ = s;
    me.require_self(user)?;
    if field != "displayname" {
        return Err(MatrixError::Forbidden("avatars are not supported".into()));
    }
    let body: DisplayNameBody = req.json()?;
    me.client
        .identities
        .clone()
        .set_profile(SetProfileRequest {
            name: me.name().to_owned(),
            display_name: body.displayname,
        })
        .await?;
    Ok(json!({}))
}

/// `GET /_matrix/client/v3/pushrules/`: the spec's predefined rules, fixed (Element waits for
/// them before it shows rooms).
pub(crate) fn push_rules(me: &Me) -> Value {
    let localpart = me.name();
    let uid = &me.user_id;
    let sound = json!({ "set_tweak": "sound", "value": "default" });
    let highlight = json!({ "set_tweak": "highlight" });
    let no_highlight = json!({ "set_tweak": "highlight", "value": false });
    let rule = |id: &str, conditions: Value, actions: Value| {
        json!({ "rule_id": id, "default": true, "enabled": true,
                "conditions": conditions, "actions": actions })
    };
    let is =
        |key: &str, pattern: &str| json!({ "kind": "event_match", "key": key, "pattern": pattern });
    let mut master = rule(".m.rule.master", json!([]), json!([]));
    master["enabled"] = json!(false);
    json!({ "global": {
        "override": [
            master,
            rule(".m.rule.suppress_notices", json!([is("content.msgtype", "m.notice")]), json!([])),
            rule(
                ".m.rule.invite_for_me",
                json!([is("type", "m.room.member"), is("content.membership", "invite"), is("state_key", uid)]),
                json!(["notify", sound, no_highlight]),
            ),
            rule(".m.rule.member_event", json!([is("type", "m.room.member")]), json!([])),
            rule(
                ".m.rule.is_user_mention",
                json!([{ "kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": uid }]),
                json!(["notify", sound, highlight]),
            ),
            rule(
                ".m.rule.contains_display_name",
                json!([{ "kind": "contains_display_name" }]),
                json!(["notify", sound, highlight]),
            ),
            rule(
                ".m.rule.is_room_mention",
                json!([
                    { "kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true },
                    { "kind": "sender_notification_permission", "key": "room" }
                ]),
                json!(["notify", highlight]),
            ),
            rule(
                ".m.rule.roomnotif",
                json!([{ "kind": "sender_notification_permission", "key": "room" }, is("content.body", "@room")]),
                json!(["notify", highlight]),
            ),
            rule(
                ".m.rule.tombstone",
                json!([is("type", "m.room.tombstone"), is("state_key", "")]),
                json!(["notify", highlight]),
            ),
            rule(".m.rule.reaction", json!([is("type", "m.reaction")]), json!([])),
            rule(
                ".m.rule.room.server_acl",
                json!([is("type", "m.room.server_acl"), is("state_key", "")]),
                json!([]),
            ),
            rule(
                ".m.rule.suppress_edits",
                json!([{ "kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace" }]),
                json!([]),
            ),
        ],
        "content": [
            { "rule_id": ".m.rule.contains_user_name", "default": true, "enabled": true,
              "pattern": localpart, "actions": ["notify", sound, highlight] },
        ],
        "room": [],
        "sender": [],
        "underride": [
            rule(
                ".m.rule.call",
                json!([is("type", "m.call.invite")]),
                json!(["notify", { "set_tweak": "sound", "value": "ring" }, no_highlight]),
            ),
            rule(
                ".m.rule.encrypted_room_one_to_one",
                json!([{ "kind": "room_member_count", "is": "2" }, is("type", "m.room.encrypted")]),
                json!(["notify", sound, no_highlight]),
            ),
            rule(
                ".m.rule.room_one_to_one",
                json!([{ "kind": "room_member_count", "is": "2" }, is("type", "m.room.message")]),
                json!(["notify", sound, no_highlight]),
            ),
            rule(".m.rule.message", json!([is("type", "m.room.message")]), json!(["notify", no_highlight])),
            rule(".m.rule.encrypted", json!([is("type", "m.room.encrypted")]), json!(["notify", no_highlight])),
        ],
    }})
}

/// `POST /_matrix/client/v3/pushers/set`: accepted; this server never pushes (clients are on
/// the same machine), so `GET /pushers` stays empty.
pub(crate) fn set_pusher(req: &Req) -> Result<Value, MatrixError> {
    object_body(req)?;
    Ok(json!({}))
}

fn device_json(me: &Me) -> Value {
    json!({ "device_id": me.device_id, "display_name": null, "last_seen_ip": null, "last_seen_ts": null })
}

/// `GET /_matrix/client/v3/devices`: the token's device (other tokens are not listed).
pub(crate) fn devices(me: &Me) -> Value {
    json!({ "devices": [device_json(me)] })
}

/// `GET /_matrix/client/v3/devices/{deviceId}`.
pub(crate) fn device(me: &Me, id: &str) -> Result<Value, MatrixError> {
    if id != me.device_id {
        return Err(MatrixError::NotFound("no such device".into()));
    }
    Ok(device_json(me))
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`: device names are not kept.
pub(crate) fn put_device(me: &Me, id: &str, req: &Req) -> Result<Value, MatrixError> {
    device(me, id)?;
    object_body(req)?;
    Ok(json!({}))
}

/// `GET /_matrix/client/v3/presence/{userId}/status`: the user is online; contacts' presence
/// is unknown to Session, so `offline`.
pub(crate) fn get_presence(s: &Shared, me: &Me, user: &str) -> Result<Value, MatrixError> {
    match parse_user(user, &s.config.server_name, false) {
        Some(LocalUser::Identity(_)) if me.is(user) => Ok(json!({ "presence": "online" })),
        Some(LocalUser::Ghost(_)) => Ok(json!({ "presence": "offline" })),
        _ => Err(MatrixError::NotFound("no such user".into())),
    }
}

#[derive(Debug, Deserialize)]
struct PresenceBody {
    #[allow(dead_code)]
    presence: String,
}

/// `PUT /_matrix/client/v3/presence/{userId}/status`: Session has no presence to set.
pub(crate) fn put_presence(
    s: &Shared,
    me: &Me,
    user: &str,
    req: &Req,
) -> Result<Value, MatrixError> {
    let _ = s;
    me.require_self(user)?;
    let _: PresenceBody = req.json()?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
struct DirectoryBody {
    search_term: String,
    #[serde(default)]
    limit: Option<u64>,
}

/// `POST /_matrix/client/v3/user_directory/search`: the user's contacts whose name, handle or
/// Account ID contains the term; a full Account ID (or its user id) is always a result, so
/// "start a chat" finds anyone.
pub(crate) async fn user_directory(s: &Shared, me: &Me, req: &Req) -> Result<Value, MatrixError> {
    let body: DirectoryBody = req.json()?;
    let limit = usize::try_from(body.limit.unwrap_or(10).clamp(1, 50)).unwrap_or(50);
    let server = &s.config.server_name;
    let term = body.search_term.trim().to_lowercase();
    let contacts = me.client.all_contacts(me.name()).await?;
    let mut results: Vec<Value> = Vec::new();
    let direct = match parse_user(&body.search_term, server, true) {
        Some(LocalUser::Ghost(peer)) => Some(peer),
        _ if looks_like_account_id(&term) => Some(term.clone()),
        _ => None,
    };
    for c in &contacts {
        let name = [&c.name, &c.profile_name, &c.handle]
            .into_iter()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| short_account(&c.account_id));
        let hay = [&c.name, &c.profile_name, &c.handle, &c.account_id];
        if direct.as_deref() == Some(c.account_id.as_str())
            || (!term.is_empty() && hay.iter().any(|h| h.to_lowercase().contains(&term)))
        {
            results
                .push(json!({ "user_id": user_id(&c.account_id, server), "display_name": name }));
        }
    }
    if let Some(peer) = direct {
        let uid = user_id(&peer, server);
        if !results.iter().any(|r| r["user_id"] == uid) {
            results.push(json!({ "user_id": uid, "display_name": short_account(&peer) }));
        }
    }
    let limited = results.len() > limit;
    results.truncate(limit);
    Ok(json!({ "results": results, "limited": limited }))
}
