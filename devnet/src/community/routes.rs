//! The community server's endpoints (the SOGS subset of spec §2 and §4), as a synchronous
//! function from an authenticated request to a reply. HTTP and onion v4 both end here.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::community::api::{
    Access, Capabilities, DirectMessage, PostMessage, Reaction, RoomInfo, SendDirectMessage,
    SubRequest,
};
use session_proto::community::url::check_room_token;

use super::state::{
    Dm, ModRole, Msg, PermOverride, Perms, Role, Room, State, DM_EXPIRY_SECS, RATE_LIMIT_POSTS,
    RATE_LIMIT_SECS,
};
use super::CommunityShared;

/// Most rows one messages or DM request returns (pysogs caps `limit` at 256).
const MAX_LIMIT: usize = 256;
const DEFAULT_LIMIT: usize = 100;
/// Most sub-requests in one batch.
const MAX_BATCH: usize = 64;

/// One request after authentication: the path URL-decoded, the query raw.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    /// The body is JSON (Content-Type application/json, or a batch `json` body).
    pub json: bool,
}

/// A reply: status, content type and body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(code: u16, v: Value) -> Response {
        Response {
            code,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }
    pub fn text(code: u16, s: &str) -> Response {
        Response {
            code,
            content_type: "text/plain; charset=utf-8",
            body: s.as_bytes().to_vec(),
        }
    }
    fn empty(code: u16) -> Response {
        Response {
            code,
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
        }
    }
}

type Res = Result<Response, Response>;

fn bad(s: &str) -> Response {
    Response::text(400, s)
}
fn not_found() -> Response {
    Response::text(404, "Not Found")
}
fn forbidden(s: &str) -> Response {
    Response::text(403, s)
}
fn auth_required() -> Response {
    Response::text(401, "X-SOGS-* request authentication required")
}

/// `key=value&…` lookup in a raw query string.
fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn limit(query: &str) -> Result<usize, Response> {
    match query_param(query, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .map(|n| n.min(MAX_LIMIT))
            .ok_or_else(|| bad("Invalid limit")),
    }
}

fn parse_json(req: &Request<'_>) -> Result<Value, Response> {
    if !req.json {
        return Err(bad(
            "Invalid request: expected a JSON body (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(req.body).map_err(|_| bad("Invalid request: body is not valid JSON"))
}

fn parse_id(s: &str) -> Result<i64, Response> {
    s.parse::<i64>().map_err(|_| not_found())
}

fn parse_sid(s: &str) -> Result<AccountId, Response> {
    AccountId::parse_raw(s)
        .ok()
        .filter(|a| {
            matches!(
                a.prefix(),
                Some(Prefix::Standard | Prefix::Blinded15 | Prefix::Unblinded)
            )
        })
        .ok_or_else(|| bad("Invalid session ID"))
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s)
            .ok()
    })
}

/// Handles one request from `user` (already authenticated, or `None`) at `now` (Unix s).
pub(crate) fn handle(
    shared: &CommunityShared,
    user: Option<&AccountId>,
    req: &Request<'_>,
    now: f64,
) -> Response {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let res = match (req.method, segs.as_slice()) {
        ("GET", ["capabilities"]) => Ok(capabilities(shared, req)),
        ("POST", ["batch"]) => batch(shared, user, req, now, false),
        ("POST", ["sequence"]) => batch(shared, user, req, now, true),
        ("GET", ["rooms"]) => Ok(rooms(shared, user, now)),
        (m, ["room", token, rest @ ..]) => room_route(shared, user, req, now, m, token, rest),
        (m, ["inbox", rest @ ..]) => inbox(shared, user, req, now, m, rest, true),
        (m, ["outbox", rest @ ..]) => inbox(shared, user, req, now, m, rest, false),
        ("POST", ["user", sid, action]) => user_action(shared, user, req, now, sid, action),
        _ => Err(not_found()),
    };
    res.unwrap_or_else(|e| e)
}

fn capabilities(shared: &CommunityShared, req: &Request<'_>) -> Response {
    let mut caps = vec!["reactions".to_string(), "sogs".to_string()];
    if shared.require_blind {
        caps.push("blind".into());
    }
    caps.sort();
    if let Some(required) = query_param(req.query, "required") {
        let missing: Vec<String> = required
            .split(',')
            .filter(|r| !r.is_empty() && !caps.iter().any(|c| c == r))
            .map(String::from)
            .collect();
        if !missing.is_empty() {
            let body = Capabilities {
                capabilities: caps,
                missing: Some(missing),
            };
            return Response::json(412, json!(body));
        }
    }
    Response::json(
        200,
        json!(Capabilities {
            capabilities: caps,
            missing: None
        }),
    )
}

fn batch(
    shared: &CommunityShared,
    user: Option<&AccountId>,
    req: &Request<'_>,
    now: f64,
    sequence: bool,
) -> Res {
    let v = parse_json(req)?;
    let subs: Vec<SubRequest> = serde_json::from_value(v)
        .map_err(|_| bad("Invalid batch: expected a list of {method, path, ...}"))?;
    if subs.len() > MAX_BATCH {
        return Err(bad("Invalid batch: too many sub-requests"));
    }
    let mut out = Vec::with_capacity(subs.len());
    for sub in &subs {
        let resp = match sub.body() {
            Err(e) => bad(&e.to_string()),
            Ok(_) if sub.path == "/batch" || sub.path == "/sequence" => {
                bad("Invalid batch: sub-requests cannot be batches")
            }
            Ok(body) => {
                let (path, query) = sub.path.split_once('?').unwrap_or((&sub.path, ""));
                let (body, json) = body.unwrap_or_default();
                match super::percent_decode(path) {
                    Some(path) => handle(
                        shared,
                        user,
                        &Request {
                            method: &sub.method,
                            path: &path,
                            query,
                            body: &body,
                            json,
                        },
                        now,
                    ),
                    None => bad("Invalid path encoding"),
                }
            }
        };
        let ok = (200..300).contains(&resp.code);
        let body = if resp.content_type == "application/json" {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        } else if resp.body.is_empty() {
            Value::Null
        } else {
            Value::String(b64(&resp.body))
        };
        out.push(json!({
            "code": resp.code,
            "headers": {"content-type": resp.content_type},
            "body": body,
        }));
        if sequence && !ok {
            break;
        }
    }
    Ok(Response::json(200, Value::Array(out)))
}

fn rooms(shared: &CommunityShared, user: Option<&AccountId>, now: f64) -> Response {
    let st = shared.lock();
    let list: Vec<Value> = st
        .rooms
        .values()
        .filter_map(|room| {
            let (perms, role) = st.perms(room, user, now);
            (perms.accessible || perms.read).then(|| room_json(&st, room, perms, role, now))
        })
        .collect();
    Response::json(200, Value::Array(list))
}

fn access(perms: Perms, role: Role) -> Access {
    let flag = |b: bool| b.then_some(true);
    Access {
        read: perms.read,
        write: perms.write,
        upload: perms.upload,
        moderator: flag(role.is_mod()),
        admin: flag(role.is_admin()),
        global_moderator: flag(role.global_moderator),
        global_admin: flag(role.global_admin),
    }
}

fn room_json(st: &State, room: &Room, perms: Perms, role: Role, now: f64) -> Value {
    let list = |admin: bool, visible: bool| -> Vec<String> {
        let mut v: Vec<String> = room
            .mods
            .iter()
            .chain(st.global_mods.iter())
            .filter(|(_, m)| m.admin == admin && m.visible == visible)
            .map(|(id, _)| id.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let is_mod = role.is_mod();
    let nonempty = |v: Vec<String>| (is_mod && !v.is_empty()).then_some(v);
    let info = RoomInfo {
        token: room.token.clone(),
        name: room.name.clone(),
        description: room.description.clone(),
        image_id: None,
        info_updates: room.info_updates,
        message_sequence: room.seq,
        created: room.created,
        active_users: room.active_users(now),
        active_users_cutoff: super::state::ACTIVE_CUTOFF_SECS,
        moderators: list(false, true),
        admins: list(true, true),
        hidden_moderators: nonempty(list(false, false)),
        hidden_admins: nonempty(list(true, false)),
        pinned_messages: None,
        access: access(perms, role),
        default_read: is_mod.then_some(room.defaults.read),
        default_accessible: is_mod.then_some(room.defaults.accessible),
        default_write: is_mod.then_some(room.defaults.write),
        default_upload: is_mod.then_some(room.defaults.upload),
    };
    json!(info)
}

/// Looks a room up and checks visibility: unknown, or neither readable nor accessible → 404.
fn visible_room<'s>(
    st: &'s State,
    token: &str,
    user: Option<&AccountId>,
    now: f64,
) -> Result<(&'s Room, Perms, Role), Response> {
    let room = st.rooms.get(token).ok_or_else(not_found)?;
    let (perms, role) = st.perms(room, user, now);
    if !(perms.read || perms.accessible) {
        return Err(not_found());
    }
    Ok((room, perms, role))
}

fn room_route(
    shared: &CommunityShared,
    user: Option<&AccountId>,
    req: &Request<'_>,
    now: f64,
    method: &str,
    token: &str,
    rest: &[&str],
) -> Res {
    let mut st = shared.lock();
    let (_, perms, role) = visible_room(&st, token, user, now)?;
    // Reading with a user marks them active.
    if let Some(u) = user {
        if perms.read {
            if let Some(room) = st.rooms.get_mut(token) {
                room.active.insert(*u, now);
            }
        }
    }
    let reactors = query_param(req.query, "reactors")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4)
        .min(20);
    match (method, rest) {
        ("GET", []) => {
            let room = &st.rooms[token];
            Ok(Response::json(200, room_json(&st, room, perms, role, now)))
        }
        ("GET", ["pollInfo", n]) => {
            let n: i64 = n.parse().map_err(|_| not_found())?;
            if !perms.read {
                return Err(forbidden("read permission required"));
            }
            let room = &st.rooms[token];
            let mut v = json!({
                "token": room.token,
                "active_users": room.active_users(now),
            });
            let obj = v.as_object_mut().expect("a JSON object literal");
            if let Value::Object(a) = json!(access(perms, role)) {
                obj.extend(a);
            }
            if room.info_updates != n {
                obj.insert("details".into(), room_json(&st, room, perms, role, now));
            }
            Ok(Response::json(200, v))
        }
        ("GET", ["messages", "since", n]) => {
            need_read(perms)?;
            let n: i64 = n.parse().map_err(|_| not_found())?;
            let limit = limit(req.query)?;
            let with_reactions = query_param(req.query, "t").is_some_and(|t| t.contains('r'));
            let room = &st.rooms[token];
            let mut rows: Vec<&Msg> = room
                .messages
                .values()
                .filter(|m| m.seqno > n && m.visible_to(user, &role))
                .filter(|m| with_reactions || m.seqno_data > n)
                .collect();
            rows.sort_by_key(|m| m.seqno);
            let out: Vec<Value> = rows
                .into_iter()
                .take(limit)
                .map(|m| {
                    if m.seqno_data > n {
                        msg_json(m, user, reactors)
                    } else {
                        json!({"id": m.id, "seqno": m.seqno, "reactions": reactions_json(m, user, reactors)})
                    }
                })
                .collect();
            Ok(Response::json(200, Value::Array(out)))
        }
        ("GET", ["messages", "recent"]) | ("GET", ["messages", "before", _]) => {
            need_read(perms)?;
            let before = match rest {
                [_, _, id] => Some(parse_id(id)?),
                _ => None,
            };
            let limit = limit(req.query)?;
            let room = &st.rooms[token];
            let out: Vec<Value> = room
                .messages
                .values()
                .rev()
                .filter(|m| m.data.is_some() && m.visible_to(user, &role))
                .filter(|m| before.is_none_or(|b| m.id < b))
                .take(limit)
                .map(|m| msg_json(m, user, reactors))
                .collect();
            Ok(Response::json(200, Value::Array(out)))
        }
        ("GET", ["message", id]) => {
            need_read(perms)?;
            let id = parse_id(id)?;
            let room = &st.rooms[token];
            let m = room
                .messages
                .get(&id)
                .filter(|m| m.data.is_some() && m.visible_to(user, &role))
                .ok_or_else(not_found)?;
            Ok(Response::json(200, msg_json(m, user, reactors)))
        }
        ("POST", ["message"]) => {
            let u = *user.ok_or_else(auth_required)?;
            post_message(&mut st, token, &u, perms, role, req, now)
        }
        ("PUT", ["message", id]) => {
            let u = *user.ok_or_else(auth_required)?;
            let id = parse_id(id)?;
            let body: PostMessage = serde_json::from_value(parse_json(req)?)
                .map_err(|_| bad("Invalid request: expected {data, signature}"))?;
            let (data, sig) = check_post(&body)?;
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            let m = room
                .messages
                .get(&id)
                .filter(|m| m.data.is_some())
                .ok_or_else(not_found)?;
            if m.session_id != u || !perms.write {
                return Err(forbidden("only the author may edit, with write permission"));
            }
            let seq = room.bump();
            let m = room.messages.get_mut(&id).ok_or_else(not_found)?;
            m.data = Some(data);
            m.signature = Some(sig);
            m.edited = Some(now);
            m.seqno = seq;
            m.seqno_data = seq;
            Ok(Response::json(200, json!({})))
        }
        ("DELETE", ["message", id]) => {
            let u = *user.ok_or_else(auth_required)?;
            let id = parse_id(id)?;
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            let m = room
                .messages
                .get(&id)
                .filter(|m| m.data.is_some() && m.visible_to(Some(&u), &role))
                .ok_or_else(not_found)?;
            let own = m.session_id == u && perms.write;
            if !(own || role.is_mod()) {
                return Err(forbidden("only the author or a moderator may delete"));
            }
            delete_msg(room, id);
            Ok(Response::json(200, json!({})))
        }
        ("DELETE", ["all", sid]) => {
            user.ok_or_else(auth_required)?;
            if !role.is_mod() {
                return Err(forbidden("moderator permission required"));
            }
            let sid = parse_sid(sid)?;
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            let ids: Vec<i64> = room
                .messages
                .values()
                .filter(|m| m.session_id == sid && m.data.is_some())
                .map(|m| m.id)
                .collect();
            for id in &ids {
                delete_msg(room, *id);
            }
            Ok(Response::json(200, json!({"deleted": ids.len()})))
        }
        (m @ ("PUT" | "DELETE"), ["reaction", id, emoji]) => {
            let u = *user.ok_or_else(auth_required)?;
            need_read(perms)?;
            let id = parse_id(id)?;
            let n = emoji.chars().count();
            if n == 0 || n > 12 {
                return Err(bad("Invalid reaction: 1-12 characters"));
            }
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            let msg = room
                .messages
                .get(&id)
                .filter(|m| m.data.is_some() && !m.is_whisper())
                .ok_or_else(not_found)?;
            let has = msg
                .reactions
                .iter()
                .any(|(e, rs)| e == emoji && rs.iter().any(|(r, _)| *r == u));
            let add = m == "PUT";
            let changed = has != add;
            let seq = if changed { room.bump() } else { room.seq };
            let msg = room.messages.get_mut(&id).ok_or_else(not_found)?;
            if changed {
                msg.seqno = seq;
                if add {
                    match msg.reactions.iter_mut().find(|(e, _)| e == emoji) {
                        Some((_, rs)) => rs.push((u, now)),
                        None => msg.reactions.push(((*emoji).to_owned(), vec![(u, now)])),
                    }
                } else if let Some((_, rs)) = msg.reactions.iter_mut().find(|(e, _)| e == emoji) {
                    rs.retain(|(r, _)| *r != u);
                }
                msg.reactions.retain(|(_, rs)| !rs.is_empty());
            }
            let key = if add { "added" } else { "removed" };
            Ok(Response::json(200, json!({ key: changed, "seqno": seq })))
        }
        ("DELETE", ["reactions", id, emoji @ ..]) if emoji.len() <= 1 => {
            user.ok_or_else(auth_required)?;
            if !role.is_mod() {
                return Err(forbidden("moderator permission required"));
            }
            let id = parse_id(id)?;
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            let msg = room.messages.get(&id).ok_or_else(not_found)?;
            let removed: usize = msg
                .reactions
                .iter()
                .filter(|(e, _)| emoji.first().is_none_or(|x| x == e))
                .map(|(_, rs)| rs.len())
                .sum();
            let seq = if removed > 0 { room.bump() } else { room.seq };
            let msg = room.messages.get_mut(&id).ok_or_else(not_found)?;
            if removed > 0 {
                msg.reactions
                    .retain(|(e, _)| emoji.first().is_some_and(|x| x != e));
                msg.seqno = seq;
            }
            Ok(Response::json(
                200,
                json!({"removed": removed, "seqno": seq}),
            ))
        }
        ("GET", ["permissions"]) => {
            if !role.is_mod() {
                return Err(forbidden("moderator permission required"));
            }
            let room = &st.rooms[token];
            let map: Map<String, Value> = room
                .overrides
                .iter()
                .map(|(id, o)| {
                    let mut flags = Map::new();
                    for (k, v) in [
                        ("read", o.read),
                        ("write", o.write),
                        ("upload", o.upload),
                        ("accessible", o.accessible),
                    ] {
                        if let Some(v) = v {
                            flags.insert(k.into(), v.into());
                        }
                    }
                    (id.to_string(), Value::Object(flags))
                })
                .collect();
            Ok(Response::json(200, Value::Object(map)))
        }
        ("POST", ["permissions", sid]) => {
            user.ok_or_else(auth_required)?;
            if !role.is_mod() {
                return Err(forbidden("moderator permission required"));
            }
            let sid = parse_sid(sid)?;
            let v = parse_json(req)?;
            let flag = |k: &str| -> Result<Option<bool>, Response> {
                match v.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Bool(b)) => Ok(Some(*b)),
                    Some(_) => Err(bad("Invalid permissions: flags are booleans or null")),
                }
            };
            let o = PermOverride {
                read: flag("read")?,
                write: flag("write")?,
                upload: flag("upload")?,
                accessible: flag("accessible")?,
            };
            let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
            room.overrides.insert(sid, o);
            Ok(Response::json(200, json!({})))
        }
        _ => Err(not_found()),
    }
}

fn need_read(perms: Perms) -> Result<(), Response> {
    if perms.read {
        Ok(())
    } else {
        Err(forbidden("read permission required"))
    }
}

/// Decodes `data` and `signature`; the server checks only that the signature is 64 bytes.
fn check_post(body: &PostMessage) -> Result<(Vec<u8>, Vec<u8>), Response> {
    let data = decode_b64(&body.data).ok_or_else(|| bad("Invalid request: data is not base64"))?;
    let sig = decode_b64(&body.signature)
        .filter(|s| s.len() == 64)
        .ok_or_else(|| bad("Invalid request: signature must be 64 bytes of base64"))?;
    Ok((data, sig))
}

fn post_message(
    st: &mut State,
    token: &str,
    user: &AccountId,
    perms: Perms,
    role: Role,
    req: &Request<'_>,
    now: f64,
) -> Res {
    let body: PostMessage = serde_json::from_value(parse_json(req)?)
        .map_err(|_| bad("Invalid request: expected {data, signature}"))?;
    if !perms.write {
        return Err(forbidden(
            "This room is read-only for you: write permission required",
        ));
    }
    let (data, sig) = check_post(&body)?;
    let whisper_to = body.whisper_to.as_deref().map(parse_sid).transpose()?;
    let whisper_mods = body.whisper_mods.unwrap_or(false);
    if (whisper_to.is_some() || whisper_mods) && !role.is_mod() {
        return Err(forbidden("only moderators may whisper"));
    }
    st.next_msg_id += 1;
    let id = st.next_msg_id;
    let room = st.rooms.get_mut(token).ok_or_else(not_found)?;
    if !role.is_admin() {
        let recent = room.recent_posts.entry(*user).or_default();
        recent.retain(|&t| now - t < RATE_LIMIT_SECS);
        if recent.len() >= RATE_LIMIT_POSTS {
            return Err(Response::text(429, "Rate limit exceeded: too many posts"));
        }
        recent.push_back(now);
    }
    let seq = room.bump();
    let msg = Msg {
        id,
        session_id: *user,
        posted: now,
        edited: None,
        seqno: seq,
        seqno_data: seq,
        data: Some(data),
        signature: Some(sig),
        reactions: Vec::new(),
        whisper_to,
        whisper_mods,
    };
    let v = msg_json(&msg, Some(user), 0);
    room.messages.insert(id, msg);
    Ok(Response::json(201, v))
}

fn delete_msg(room: &mut Room, id: i64) {
    let seq = room.bump();
    if let Some(m) = room.messages.get_mut(&id) {
        m.data = None;
        m.signature = None;
        m.reactions.clear();
        m.seqno = seq;
        m.seqno_data = seq;
    }
}

fn reactions_json(m: &Msg, user: Option<&AccountId>, reactors: usize) -> Value {
    let map: BTreeMap<String, Reaction> = m
        .reactions
        .iter()
        .enumerate()
        .map(|(i, (emoji, rs))| {
            let r = Reaction {
                index: i as i64,
                count: rs.len() as i64,
                reactors: (reactors > 0).then(|| {
                    rs.iter()
                        .take(reactors)
                        .map(|(a, _)| a.to_string())
                        .collect()
                }),
                you: user
                    .is_some_and(|u| rs.iter().any(|(a, _)| a == u))
                    .then_some(true),
            };
            (emoji.clone(), r)
        })
        .collect();
    json!(map)
}

fn msg_json(m: &Msg, user: Option<&AccountId>, reactors: usize) -> Value {
    let mut v = json!({
        "id": m.id,
        "session_id": m.session_id.to_string(),
        "posted": m.posted,
        "seqno": m.seqno,
    });
    let obj = v.as_object_mut().expect("a JSON object literal");
    match (&m.data, &m.signature) {
        (Some(d), Some(s)) => {
            obj.insert("data".into(), b64(d).into());
            obj.insert("signature".into(), b64(s).into());
            obj.insert("reactions".into(), reactions_json(m, user, reactors));
            if let Some(e) = m.edited {
                obj.insert("edited".into(), e.into());
            }
            if m.is_whisper() {
                obj.insert("whisper".into(), true.into());
                obj.insert("whisper_mods".into(), m.whisper_mods.into());
                if let Some(t) = &m.whisper_to {
                    obj.insert("whisper_to".into(), t.to_string().into());
                }
            }
        }
        _ => {
            obj.insert("data".into(), Value::Null);
            obj.insert("deleted".into(), true.into());
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn inbox(
    shared: &CommunityShared,
    user: Option<&AccountId>,
    req: &Request<'_>,
    now: f64,
    method: &str,
    rest: &[&str],
    inbox: bool,
) -> Res {
    let u = *user.ok_or_else(auth_required)?;
    if u.prefix() != Some(Prefix::Blinded15) {
        return Err(Response::text(401, "blinded authentication required"));
    }
    let mut st = shared.lock();
    st.dms.retain(|d| d.expires_at > now);
    match (method, rest, inbox) {
        ("POST", [sid], true) => {
            let to = AccountId::parse_raw(sid)
                .ok()
                .filter(|a| a.prefix() == Some(Prefix::Blinded15))
                .ok_or_else(|| bad("Invalid recipient: must be a 15… blinded ID"))?;
            if !st.users.contains(&to) || st.global_bans.contains(&to) {
                return Err(not_found());
            }
            let body: SendDirectMessage = serde_json::from_value(parse_json(req)?)
                .map_err(|_| bad("Invalid request: expected {message}"))?;
            let message = decode_b64(&body.message)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| bad("Invalid request: message is not base64"))?;
            st.next_dm_id += 1;
            let dm = Dm {
                id: st.next_dm_id,
                posted_at: now,
                expires_at: now + DM_EXPIRY_SECS,
                sender: u,
                recipient: to,
                message,
            };
            let reply = dm_json(&dm, false);
            st.dms.push(dm);
            Ok(Response::json(201, json!(reply)))
        }
        ("GET", [], _) | ("GET", ["since", _], _) => {
            let since = match rest {
                [_, n] => Some(n.parse::<i64>().map_err(|_| not_found())?),
                _ => None,
            };
            let limit = limit(req.query)?;
            let rows: Vec<DirectMessage> = st
                .dms
                .iter()
                .filter(|d| {
                    if inbox {
                        d.recipient == u
                    } else {
                        d.sender == u
                    }
                })
                .filter(|d| since.is_none_or(|n| d.id > n))
                .take(limit)
                .map(|d| dm_json(d, true))
                .collect();
            if since.is_some() && rows.is_empty() {
                return Ok(Response::empty(304));
            }
            Ok(Response::json(200, json!(rows)))
        }
        ("DELETE", [], true) => {
            let before = st.dms.len();
            st.dms.retain(|d| d.recipient != u);
            Ok(Response::json(
                200,
                json!({"deleted": before - st.dms.len()}),
            ))
        }
        _ => Err(not_found()),
    }
}

fn dm_json(d: &Dm, with_message: bool) -> DirectMessage {
    DirectMessage {
        id: d.id,
        posted_at: d.posted_at,
        expires_at: d.expires_at,
        sender: d.sender.to_string(),
        recipient: d.recipient.to_string(),
        message: with_message.then(|| b64(&d.message)),
    }
}

/// `/user/SID/ban`, `/unban`, `/moderator`.
fn user_action(
    shared: &CommunityShared,
    user: Option<&AccountId>,
    req: &Request<'_>,
    now: f64,
    sid: &str,
    action: &str,
) -> Res {
    let caller = *user.ok_or_else(auth_required)?;
    let target = parse_sid(sid)?;
    let v = parse_json(req)?;
    let global = v.get("global").and_then(Value::as_bool).unwrap_or(false);
    let rooms: Vec<String> = match v.get("rooms") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| r.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("Invalid request: rooms is a list of tokens"))?,
        Some(_) => return Err(bad("Invalid request: rooms is a list of tokens")),
    };
    if global != rooms.is_empty() {
        return Err(bad("Invalid request: give exactly one of rooms or global"));
    }
    let mut st = shared.lock();
    let caller_global = st.global_mods.get(&caller).copied();
    let tokens: Vec<String> = if rooms.iter().any(|r| r == "*") {
        st.rooms
            .values()
            .filter(|r| st.role(r, Some(&caller)).is_mod())
            .map(|r| r.token.clone())
            .collect()
    } else {
        rooms
    };
    if global {
        let ok = match action {
            "moderator" => caller_global.is_some_and(|m| m.admin),
            _ => caller_global.is_some(),
        };
        if !ok {
            return Err(forbidden("global moderator permission required"));
        }
    }
    for t in &tokens {
        check_room_token(t).map_err(|_| bad("Invalid room token"))?;
        let room = st.rooms.get(t).ok_or_else(not_found)?;
        let role = st.role(room, Some(&caller));
        let ok = if action == "moderator" {
            role.is_admin()
        } else {
            role.is_mod()
        };
        if !ok {
            return Err(forbidden("moderator permission required"));
        }
    }
    match action {
        "ban" | "unban" => {
            let timeout = v.get("timeout").and_then(Value::as_f64);
            if global {
                if action == "ban" {
                    st.global_bans.insert(target);
                } else {
                    st.global_bans.remove(&target);
                }
            }
            for t in &tokens {
                let room = st.rooms.get_mut(t).ok_or_else(not_found)?;
                if action == "ban" {
                    room.bans.insert(target, timeout.map(|s| now + s));
                } else {
                    room.bans.remove(&target);
                }
            }
            Ok(Response::json(200, json!({})))
        }
        "moderator" => {
            let flag = |k| v.get(k).and_then(Value::as_bool);
            let admin = flag("admin");
            let moderator = flag("moderator");
            let visible = flag("visible").unwrap_or(true);
            let make = admin == Some(true) || moderator == Some(true);
            let role = ModRole {
                admin: admin == Some(true),
                visible,
            };
            if global {
                if make {
                    st.global_mods.insert(target, role);
                } else {
                    st.global_mods.remove(&target);
                }
            }
            let mut updates = Map::new();
            for t in &tokens {
                let room = st.rooms.get_mut(t).ok_or_else(not_found)?;
                if make {
                    room.mods.insert(target, role);
                } else {
                    room.mods.remove(&target);
                }
                room.info_updates += 1;
                updates.insert(t.clone(), room.info_updates.into());
            }
            Ok(Response::json(200, json!({ "info_updates": updates })))
        }
        _ => Err(not_found()),
    }
}
