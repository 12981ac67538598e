//! The route table: (method, path) → endpoint. An unknown path is 404 `M_UNRECOGNIZED`, a
//! known path with another method 405 `M_UNRECOGNIZED`; endpoints other than discovery and
//! login need an access token, checked once here by [`crate::auth::authenticate`].

use http::Method;
use serde_json::Value;

use crate::err::MatrixError;
use crate::http::Req;
use crate::state::Shared;
use crate::{account, auth, rooms, sync};

/// Every endpoint the adapter answers, with its path parameters.
#[derive(Debug)]
pub(crate) enum Endpoint {
    WellKnown,
    Versions,
    LoginFlows,
    Login,
    Logout,
    WhoAmI,
    Capabilities,
    Sync,
    CreateFilter {
        user: String,
    },
    GetFilter {
        user: String,
        id: String,
    },
    JoinedRooms,
    CreateRoom,
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Forget {
        room: String,
    },
    Invite {
        room: String,
    },
    State {
        room: String,
    },
    StateEvent {
        room: String,
        kind: String,
        key: String,
    },
    PutState {
        room: String,
        kind: String,
        key: String,
    },
    Members {
        room: String,
    },
    JoinedMembers {
        room: String,
    },
    Messages {
        room: String,
    },
    Event {
        room: String,
        event: String,
    },
    Send {
        room: String,
        kind: String,
        txn: String,
    },
    Typing {
        room: String,
        user: String,
    },
    Receipt {
        room: String,
        event: String,
    },
    ReadMarkers {
        room: String,
    },
    Profile {
        user: String,
    },
    ProfileField {
        user: String,
        field: String,
    },
    SetProfileField {
        user: String,
        field: String,
    },
    PushRules,
    PushRulesGlobal,
    Pushers,
    SetPusher,
    Devices,
    Device {
        id: String,
    },
    PutDevice {
        id: String,
    },
    KeysUpload,
    KeysQuery,
    KeysClaim,
    KeysChanges,
    SendToDevice,
    TurnServer,
    Tags {
        user: String,
        room: String,
    },
    GetAccountData {
        user: String,
        kind: String,
    },
    PutAccountData {
        user: String,
        kind: String,
    },
    GetPresence {
        user: String,
    },
    PutPresence {
        user: String,
    },
    UserDirectory,
    /// `room_keys/…` reads: there is never a key backup.
    NoKeyBackup,
    ThirdPartyProtocols,
    ThreePids,
}

/// Finds the endpoint for a request.
pub(crate) fn resolve(method: &Method, segments: &[String]) -> Result<Endpoint, MatrixError> {
    use Endpoint as E;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown = || MatrixError::UnknownEndpoint {
        method: method.to_string(),
    };
    // Pick the endpoint for this method among the ones a path offers.
    let pick = |choices: Vec<(Method, Endpoint)>| -> Result<Endpoint, MatrixError> {
        choices
            .into_iter()
            .find(|(m, _)| m == method)
            .map(|(_, e)| e)
            .ok_or_else(|| MatrixError::MethodNotAllowed {
                method: method.to_string(),
            })
    };
    use Method as M;
    let s = |x: &str| x.to_owned();
    match segs.as_slice() {
        [".well-known", "matrix", "client"] => return pick(vec![(M::GET, E::WellKnown)]),
        ["_matrix", "client", "versions"] => return pick(vec![(M::GET, E::Versions)]),
        ["_matrix", "client", "r0" | "v3" | "v1", ..] => {}
        _ => return Err(unknown()),
    }
    let rest = &segs[3..];
    // A trailing slash adds an empty segment; `/pushrules/` is the usual spelling.
    let rest = match rest {
        [head @ .., ""] if !head.is_empty() => head,
        _ => rest,
    };
    match rest {
        ["login"] => pick(vec![(M::GET, E::LoginFlows), (M::POST, E::Login)]),
        ["logout"] => pick(vec![(M::POST, E::Logout)]),
        ["account", "whoami"] => pick(vec![(M::GET, E::WhoAmI)]),
        ["capabilities"] => pick(vec![(M::GET, E::Capabilities)]),
        ["sync"] => pick(vec![(M::GET, E::Sync)]),
        ["user", user, "filter"] => pick(vec![(M::POST, E::CreateFilter { user: s(user) })]),
        ["user", user, "filter", id] => pick(vec![(
            M::GET,
            E::GetFilter {
                user: s(user),
                id: s(id),
            },
        )]),
        ["user", user, "account_data", kind] => pick(vec![
            (
                M::GET,
                E::GetAccountData {
                    user: s(user),
                    kind: s(kind),
                },
            ),
            (
                M::PUT,
                E::PutAccountData {
                    user: s(user),
                    kind: s(kind),
                },
            ),
        ]),
        ["user", user, "rooms", room, "tags"] => pick(vec![(
            M::GET,
            E::Tags {
                user: s(user),
                room: s(room),
            },
        )]),
        ["joined_rooms"] => pick(vec![(M::GET, E::JoinedRooms)]),
        ["createRoom"] => pick(vec![(M::POST, E::CreateRoom)]),
        ["join", room] => pick(vec![(M::POST, E::Join { room: s(room) })]),
        ["rooms", room, "join"] => pick(vec![(M::POST, E::Join { room: s(room) })]),
        ["rooms", room, "leave"] => pick(vec![(M::POST, E::Leave { room: s(room) })]),
        ["rooms", room, "forget"] => pick(vec![(M::POST, E::Forget { room: s(room) })]),
        ["rooms", room, "invite"] => pick(vec![(M::POST, E::Invite { room: s(room) })]),
        ["rooms", room, "state"] => pick(vec![(M::GET, E::State { room: s(room) })]),
        ["rooms", room, "state", kind] => pick(vec![
            (
                M::GET,
                E::StateEvent {
                    room: s(room),
                    kind: s(kind),
                    key: String::new(),
                },
            ),
            (
                M::PUT,
                E::PutState {
                    room: s(room),
                    kind: s(kind),
                    key: String::new(),
                },
            ),
        ]),
        ["rooms", room, "state", kind, key] => pick(vec![
            (
                M::GET,
                E::StateEvent {
                    room: s(room),
                    kind: s(kind),
                    key: s(key),
                },
            ),
            (
                M::PUT,
                E::PutState {
                    room: s(room),
                    kind: s(kind),
                    key: s(key),
                },
            ),
        ]),
        ["rooms", room, "members"] => pick(vec![(M::GET, E::Members { room: s(room) })]),
        ["rooms", room, "joined_members"] => {
            pick(vec![(M::GET, E::JoinedMembers { room: s(room) })])
        }
        ["rooms", room, "messages"] => pick(vec![(M::GET, E::Messages { room: s(room) })]),
        ["rooms", room, "event", event] => pick(vec![(
            M::GET,
            E::Event {
                room: s(room),
                event: s(event),
            },
        )]),
        ["rooms", room, "send", kind, txn] => pick(vec![(
            M::PUT,
            E::Send {
                room: s(room),
                kind: s(kind),
                txn: s(txn),
            },
        )]),
        ["rooms", room, "typing", user] => pick(vec![(
            M::PUT,
            E::Typing {
                room: s(room),
                user: s(user),
            },
        )]),
        ["rooms", room, "receipt", _kind, event] => pick(vec![(
            M::POST,
            E::Receipt {
                room: s(room),
                event: s(event),
            },
        )]),
        ["rooms", room, "read_markers"] => pick(vec![(M::POST, E::ReadMarkers { room: s(room) })]),
        ["profile", user] => pick(vec![(M::GET, E::Profile { user: s(user) })]),
        ["profile", user, field @ ("displayname" | "avatar_url")] => pick(vec![
            (
                M::GET,
                E::ProfileField {
                    user: s(user),
                    field: s(field),
                },
            ),
            (
                M::PUT,
                E::SetProfileField {
                    user: s(user),
                    field: s(field),
                },
            ),
        ]),
        ["pushrules"] => pick(vec![(M::GET, E::PushRules)]),
        ["pushrules", "global"] => pick(vec![(M::GET, E::PushRulesGlobal)]),
        ["pushers"] => pick(vec![(M::GET, E::Pushers)]),
        ["pushers", "set"] => pick(vec![(M::POST, E::SetPusher)]),
        ["devices"] => pick(vec![(M::GET, E::Devices)]),
        ["devices", id] => pick(vec![
            (M::GET, E::Device { id: s(id) }),
            (M::PUT, E::PutDevice { id: s(id) }),
        ]),
        ["keys", "upload"] => pick(vec![(M::POST, E::KeysUpload)]),
        ["keys", "query"] => pick(vec![(M::POST, E::KeysQuery)]),
        ["keys", "claim"] => pick(vec![(M::POST, E::KeysClaim)]),
        ["keys", "changes"] => pick(vec![(M::GET, E::KeysChanges)]),
        ["sendToDevice", _kind, _txn] => pick(vec![(M::PUT, E::SendToDevice)]),
        ["voip", "turnServer"] => pick(vec![(M::GET, E::TurnServer)]),
        ["presence", user, "status"] => pick(vec![
            (M::GET, E::GetPresence { user: s(user) }),
            (M::PUT, E::PutPresence { user: s(user) }),
        ]),
        ["user_directory", "search"] => pick(vec![(M::POST, E::UserDirectory)]),
        ["room_keys", "version" | "keys", ..] => pick(vec![(M::GET, E::NoKeyBackup)]),
        ["thirdparty", "protocols"] => pick(vec![(M::GET, E::ThirdPartyProtocols)]),
        ["account", "3pid"] => pick(vec![(M::GET, E::ThreePids)]),
        _ => Err(unknown()),
    }
}

/// Answers a request: resolve, authenticate if the endpoint needs it, run the handler.
pub(crate) async fn dispatch(s: &Shared, req: &Req) -> Result<Value, MatrixError> {
    use Endpoint as E;
    let endpoint = resolve(&req.method, &req.segments)?;
    match endpoint {
        E::WellKnown => return Ok(account::well_known(req)),
        E::Versions => return Ok(account::versions()),
        E::LoginFlows => return Ok(auth::login_flows()),
        E::Login => return auth::login(s, req).await,
        _ => {}
    }
    let me = auth::authenticate(s, req).await?;
    match endpoint {
        E::WellKnown | E::Versions | E::LoginFlows | E::Login => {
            unreachable!("answered above without a token")
        }
        E::Logout => auth::logout(&me).await,
        E::WhoAmI => Ok(auth::whoami(&me)),
        E::Capabilities => Ok(account::capabilities()),
        E::Sync => sync::sync(s, &me, req).await,
        E::CreateFilter { user } => account::create_filter(s, &me, &user, req),
        E::GetFilter { user, id } => account::get_filter(s, &me, &user, &id),
        E::GetAccountData { user, kind } => account::get_account_data(s, &me, &user, &kind).await,
        E::PutAccountData { user, kind } => account::put_account_data(s, &me, &user, &kind, req),
        E::Tags { user, room } => rooms::tags(s, &me, &user, &room).await,
        E::JoinedRooms => rooms::joined_rooms(s, &me).await,
        E::CreateRoom => rooms::create_room(s, &me, req).await,
        E::Join { room } => rooms::join(s, &me, &room).await,
        E::Leave { room } => rooms::leave(s, &me, &room).await,
        E::Forget { room } => rooms::forget(s, &me, &room).await,
        E::Invite { room } => rooms::invite(s, &me, &room, req).await,
        E::State { room } => rooms::state(s, &me, &room).await,
        E::StateEvent { room, kind, key } => rooms::state_event(s, &me, &room, &kind, &key).await,
        E::PutState { room, kind, key } => rooms::put_state(s, &me, &room, &kind, &key, req).await,
        E::Members { room } => rooms::members(s, &me, &room).await,
        E::JoinedMembers { room } => rooms::joined_members(s, &me, &room).await,
        E::Messages { room } => rooms::messages(s, &me, &room, req).await,
        E::Event { room, event } => rooms::event(s, &me, &room, &event).await,
        E::Send { room, kind, txn } => rooms::send(s, &me, &room, &kind, &txn, req).await,
        E::Typing { room, user } => rooms::typing(s, &me, &room, &user, req).await,
        E::Receipt { room, event } => rooms::receipt(s, &me, &room, &event).await,
        E::ReadMarkers { room } => rooms::read_markers(s, &me, &room, req).await,
        E::Profile { user } => account::profile(s, &me, &user, None).await,
        E::ProfileField { user, field } => account::profile(s, &me, &user, Some(&field)).await,
        E::SetProfileField { user, field } => {
            account::set_profile(s, &me, &user, &field, req).await
        }
        E::PushRules => Ok(account::push_rules(&me)),
        E::PushRulesGlobal => Ok(account::push_rules(&me)["global"].take()),
        E::Pushers => Ok(serde_json::json!({ "pushers": [] })),
        E::SetPusher => account::set_pusher(req),
        E::Devices => Ok(account::devices(&me)),
        E::Device { id } => account::device(&me, &id),
        E::PutDevice { id } => account::put_device(&me, &id, req),
        E::KeysUpload => Ok(serde_json::json!({ "one_time_key_counts": {} })),
        E::KeysQuery => Ok(serde_json::json!({ "device_keys": {}, "failures": {} })),
        E::KeysClaim => Ok(serde_json::json!({ "one_time_keys": {}, "failures": {} })),
        E::KeysChanges => Ok(serde_json::json!({ "changed": [], "left": [] })),
        E::SendToDevice => Ok(serde_json::json!({})),
        E::TurnServer => Ok(serde_json::json!({})),
        E::GetPresence { user } => account::get_presence(s, &me, &user),
        E::PutPresence { user } => account::put_presence(s, &me, &user, req),
        E::UserDirectory => account::user_directory(s, &me, req).await,
        // The spec's answer when no backup exists (clients ask at every start).
        E::NoKeyBackup => Err(MatrixError::NotFound(
            "no key backup: this server keeps none".into(),
        )),
        E::ThirdPartyProtocols => Ok(serde_json::json!({})),
        E::ThreePids => Ok(serde_json::json!({ "threepids": [] })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn routes() {
        assert!(matches!(
            resolve(&Method::GET, &path("/_matrix/client/versions")),
            Ok(Endpoint::Versions)
        ));
        assert!(matches!(
            resolve(&Method::GET, &path("/_matrix/client/r0/sync")),
            Ok(Endpoint::Sync)
        ));
        assert!(matches!(
            resolve(&Method::GET, &path("/_matrix/client/v3/pushrules/")),
            Ok(Endpoint::PushRules)
        ));
        assert!(matches!(
            resolve(&Method::PUT, &path("/_matrix/client/v3/rooms/!a:b/send/m.room.message/t1")),
            Ok(Endpoint::Send { room, kind, txn }) if room == "!a:b" && kind == "m.room.message" && txn == "t1"
        ));
        assert!(matches!(
            resolve(&Method::GET, &path("/_matrix/client/v3/rooms/!a:b/state/m.room.name/")),
            Ok(Endpoint::StateEvent { key, .. }) if key.is_empty()
        ));
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        let code = |m: Method, p: &str| {
            resolve(&m, &path(p))
                .map(|_| ())
                .unwrap_err()
                .response_parts()
        };
        let e = code(Method::GET, "/_matrix/client/v3/nope");
        assert_eq!((e.status.as_u16(), e.errcode), (404, "M_UNRECOGNIZED"));
        let e = code(Method::GET, "/somewhere/else");
        assert_eq!((e.status.as_u16(), e.errcode), (404, "M_UNRECOGNIZED"));
        let e = code(Method::GET, "/_matrix/client/v9/sync");
        assert_eq!(e.status.as_u16(), 404);
        let e = code(Method::DELETE, "/_matrix/client/v3/sync");
        assert_eq!((e.status.as_u16(), e.errcode), (405, "M_UNRECOGNIZED"));
        let e = code(
            Method::GET,
            "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t",
        );
        assert_eq!(e.status.as_u16(), 405);
    }
}
