//! Discovery and account endpoints: `.well-known`, versions, capabilities, filters, account
//! data, profiles, push rules and pushers, devices, presence, the user directory.

use std::sync::Arc;

use axum::extract::State;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use sessiond_api::client::looks_like_account_id;
use sessiond_api::v1::SetProfileRequest;

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::m_direct;
use crate::http::{Answer, Body, Json, Path};
use crate::ids::{parse_user, short_account, user_id, LocalUser};
use crate::state::Shared;

/// `GET /.well-known/matrix/client`: this server, as the client reached it.
pub(crate) async fn well_known(headers: HeaderMap) -> Json {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8008");
    Json(json!({ "m.homeserver": { "base_url": format!("http://{host}") } }))
}

/// `GET /_matrix/client/versions`.
pub(crate) async fn versions() -> Json {
    Json(json!({
        "versions": [
            "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
            "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"
        ],
        "unstable_features": {},
    }))
}

/// `GET /_matrix/client/v3/capabilities`.
pub(crate) async fn capabilities(_: Me) -> Json {
    Json(json!({ "capabilities": {
        "m.change_password": { "enabled": false },
        "m.room_versions": {
            "default": crate::events::ROOM_VERSION,
            "available": { crate::events::ROOM_VERSION: "stable" },
        },
        "m.set_displayname": { "enabled": true },
        "m.set_avatar_url": { "enabled": false },
        "m.3pid_changes": { "enabled": false },
        "m.get_login_token": { "enabled": false },
    }}))
}

/// `POST /_matrix/client/v3/user/{userId}/filter`.
pub(crate) async fn create_filter(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(user): Path<String>,
    body: Body,
) -> Answer {
    me.require_self(&user)?;
    let filter: Value = body.json()?;
    let id = s.identity(me.name()).add_filter(filter);
    Ok(Json(json!({ "filter_id": id.to_string() })))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`.
pub(crate) async fn get_filter(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((user, id)): Path<(String, String)>,
) -> Answer {
    me.require_self(&user)?;
    id.parse()
        .ok()
        .and_then(|id| s.identity(me.name()).filter(id))
        .map(Json)
        .ok_or_else(|| MatrixError::NotFound("no such filter".into()))
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`: `m.direct` is made from the
/// conversations; other types are what the client stored (in memory).
pub(crate) async fn get_account_data(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((user, kind)): Path<(String, String)>,
) -> Answer {
    me.require_self(&user)?;
    if kind == crate::ignored::KIND {
        return Ok(Json(
            crate::ignored::content(&me, &s.config.server_name).await?,
        ));
    }
    if kind == "m.direct" {
        let convs = crate::kinds::load_all_with(&me, &|_| false).await?;
        return Ok(Json(
            m_direct(&me, &s.config.server_name, convs.iter().map(|l| &l.conv))["content"].take(),
        ));
    }
    s.identity(me.name())
        .account_data(&kind)
        .map(Json)
        .ok_or_else(|| MatrixError::NotFound("no account data of this type".into()))
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`: kept in memory (a client's
/// settings); `m.direct` is accepted but always answered from the conversations;
/// `m.ignored_user_list` blocks and unblocks contacts (and is answered from them).
pub(crate) async fn put_account_data(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((user, kind)): Path<(String, String)>,
    body: Body,
) -> Answer {
    me.require_self(&user)?;
    let content: Value = body.json()?;
    if kind == crate::ignored::KIND {
        // Blocking: the daemon's blocked contacts are the list (nothing kept here).
        let wanted = crate::ignored::wanted(&content, &s.config.server_name)?;
        crate::ignored::apply(&me, &wanted).await?;
        return Ok(Json(json!({})));
    }
    s.identity(me.name())
        .set_account_data(&kind, content)
        .map_err(|()| MatrixError::Forbidden("too many account data types".into()))?;
    Ok(Json(json!({})))
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

/// `GET /_matrix/client/v3/profile/{userId}`: the user's own profile, or a contact's name.
/// Other identities of the daemon do not exist for this user.
pub(crate) async fn profile(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(user): Path<String>,
) -> Answer {
    profile_of(&s, &me, &user, None).await.map(Json)
}

/// `GET /_matrix/client/v3/profile/{userId}/{displayname|avatar_url}`.
pub(crate) async fn profile_field(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path((user, field)): Path<(String, String)>,
) -> Answer {
    profile_of(&s, &me, &user, Some(profile_field_name(&field)?))
        .await
        .map(Json)
}

/// The profile fields there are; another name is an unknown endpoint.
fn profile_field_name(field: &str) -> Result<&str, MatrixError> {
    match field {
        "displayname" | "avatar_url" => Ok(field),
        _ => Err(MatrixError::UnknownEndpoint {
            method: "this method".into(),
        }),
    }
}

async fn profile_of(
    s: &Shared,
    me: &Me,
    user: &str,
    field: Option<&str>,
) -> Result<Value, MatrixError> {
    let not_found = || MatrixError::NotFound("no such user".into());
    let name = match parse_user(user, &s.config.server_name, false) {
        Some(LocalUser::Identity(_)) if me.is(user) => Some(me.display_name().to_owned()),
        Some(LocalUser::Ghost(peer) | LocalUser::Blinded(peer)) => contact_name(me, &peer)
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
pub(crate) struct DisplayNameBody {
    displayname: String,
}

/// `PUT /_matrix/client/v3/profile/{userId}/displayname`: the name the identity announces
/// (`SetProfile`). Avatars are not supported (`m.set_avatar_url` is off).
pub(crate) async fn set_profile(
    me: Me,
    Path((user, field)): Path<(String, String)>,
    body: Body,
) -> Answer {
    me.require_self(&user)?;
    if profile_field_name(&field)? != "displayname" {
        return Err(MatrixError::Forbidden("avatars are not supported".into()));
    }
    let body: DisplayNameBody = body.json()?;
    me.client
        .identities
        .clone()
        .set_profile(SetProfileRequest {
            name: me.name().to_owned(),
            display_name: body.displayname,
        })
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/pushrules/`: the spec's predefined rules, fixed (Element waits for
/// them before it shows rooms).
pub(crate) async fn push_rules(me: Me) -> Json {
    Json(push_rules_of(&me))
}

/// `GET /_matrix/client/v3/pushrules/global/`.
pub(crate) async fn push_rules_global(me: Me) -> Json {
    Json(push_rules_of(&me)["global"].take())
}

/// `GET /_matrix/client/v3/pushers`: this server never pushes.
pub(crate) async fn pushers(_: Me) -> Json {
    Json(json!({ "pushers": [] }))
}

fn push_rules_of(me: &Me) -> Value {
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
pub(crate) async fn set_pusher(_: Me, body: Body) -> Answer {
    let _: Value = body.json()?;
    Ok(Json(json!({})))
}

fn device_json(me: &Me) -> Value {
    json!({ "device_id": me.device_id, "display_name": null, "last_seen_ip": null, "last_seen_ts": null })
}

/// `GET /_matrix/client/v3/devices`: the token's device (other tokens are not listed).
pub(crate) async fn devices(me: Me) -> Json {
    Json(json!({ "devices": [device_json(&me)] }))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`.
pub(crate) async fn device(me: Me, Path(id): Path<String>) -> Answer {
    own_device(&me, &id)?;
    Ok(Json(device_json(&me)))
}

/// `NotFound` unless `id` is the token's device.
fn own_device(me: &Me, id: &str) -> Result<(), MatrixError> {
    if id != me.device_id {
        return Err(MatrixError::NotFound("no such device".into()));
    }
    Ok(())
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`: device names are not kept.
pub(crate) async fn put_device(me: Me, Path(id): Path<String>, body: Body) -> Answer {
    own_device(&me, &id)?;
    let _: Value = body.json()?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/presence/{userId}/status`: the user is online; contacts' presence
/// is unknown to Session, so `offline`.
pub(crate) async fn get_presence(
    State(s): State<Arc<Shared>>,
    me: Me,
    Path(user): Path<String>,
) -> Answer {
    match parse_user(&user, &s.config.server_name, false) {
        Some(LocalUser::Identity(_)) if me.is(&user) => Ok(Json(json!({ "presence": "online" }))),
        Some(LocalUser::Ghost(_) | LocalUser::Blinded(_)) => {
            Ok(Json(json!({ "presence": "offline" })))
        }
        _ => Err(MatrixError::NotFound("no such user".into())),
    }
}

#[derive(Debug, Deserialize)]
struct PresenceBody {
    #[allow(dead_code)]
    presence: String,
}

/// `PUT /_matrix/client/v3/presence/{userId}/status`: Session has no presence to set.
pub(crate) async fn put_presence(me: Me, Path(user): Path<String>, body: Body) -> Answer {
    me.require_self(&user)?;
    let _: PresenceBody = body.json()?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DirectoryBody {
    search_term: String,
    #[serde(default)]
    limit: Option<u64>,
}

/// `POST /_matrix/client/v3/user_directory/search`: the user's contacts whose name, handle or
/// Account ID contains the term; a full Account ID (or its user id) is always a result, so
/// "start a chat" finds anyone.
pub(crate) async fn user_directory(State(s): State<Arc<Shared>>, me: Me, body: Body) -> Answer {
    let body: DirectoryBody = body.json()?;
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
    Ok(Json(json!({ "results": results, "limited": limited })))
}

/// `POST /_matrix/client/v3/keys/upload`: no end-to-end encryption keys are kept (Session
/// encrypts; the Matrix side is a local, plain connection).
pub(crate) async fn keys_upload(_: Me) -> Json {
    Json(json!({ "one_time_key_counts": {} }))
}

/// `POST /_matrix/client/v3/keys/query`.
pub(crate) async fn keys_query(_: Me) -> Json {
    Json(json!({ "device_keys": {}, "failures": {} }))
}

/// `POST /_matrix/client/v3/keys/claim`.
pub(crate) async fn keys_claim(_: Me) -> Json {
    Json(json!({ "one_time_keys": {}, "failures": {} }))
}

/// `GET /_matrix/client/v3/keys/changes`.
pub(crate) async fn keys_changes(_: Me) -> Json {
    Json(json!({ "changed": [], "left": [] }))
}

/// `PUT /_matrix/client/v3/sendToDevice/{type}/{txnId}`: there are no other devices to reach.
pub(crate) async fn send_to_device(_: Me) -> Json {
    Json(json!({}))
}

/// `GET /_matrix/client/v3/voip/turnServer`: no TURN server.
pub(crate) async fn turn_server(_: Me) -> Json {
    Json(json!({}))
}

/// `GET /_matrix/client/v3/room_keys/…`: the spec's answer when no backup exists (clients ask
/// at every start).
pub(crate) async fn no_key_backup(_: Me) -> MatrixError {
    MatrixError::NotFound("no key backup: this server keeps none".into())
}

/// `GET /_matrix/client/v3/thirdparty/protocols`: none.
pub(crate) async fn third_party_protocols(_: Me) -> Json {
    Json(json!({}))
}

/// `GET /_matrix/client/v3/account/3pid`: no third-party ids.
pub(crate) async fn three_pids(_: Me) -> Json {
    Json(json!({ "threepids": [] }))
}
