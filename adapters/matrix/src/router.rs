//! The routes: one line per path, each handler an axum handler (`Me` in its arguments makes it
//! need an access token, see [`crate::auth`]). Every route answers under `r0`, `v3` and `v1`
//! with or without a trailing slash; an unknown path is 404 `M_UNRECOGNIZED`, a known path with
//! another method 405 `M_UNRECOGNIZED`; every answer carries the CORS headers web clients need
//! and `OPTIONS` (a CORS preflight) answers anywhere without a token.
//!
//! Adding an endpoint: write `async fn handler(State(s): State<Arc<Shared>>, me: Me,
//! Path(..): Path<..>, query: Query, body: Body) -> Answer` (any of these, `Body` last) in its
//! module and add one `.route(…)` line to [`client_api`]; a module with several endpoints can
//! offer its own `fn routes() -> Router<Arc<Shared>>` and add one `.merge(module::routes())`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use http::header::HeaderValue;
use http::Method;

use crate::err::MatrixError;
use crate::http::Json;
use crate::state::Shared;
use crate::{account, auth, rooms, sync};

/// The client-server API, under each of the version prefixes clients use.
fn client_api() -> Router<Arc<Shared>> {
    use account as a;
    Router::new()
        .route("/login", get(auth::login_flows).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/account/whoami", get(auth::whoami))
        .route("/account/3pid", get(a::three_pids))
        .route("/capabilities", get(a::capabilities))
        .route("/sync", get(sync::sync))
        .route("/user/:user/filter", post(a::create_filter))
        .route("/user/:user/filter/:id", get(a::get_filter))
        .route(
            "/user/:user/account_data/:kind",
            get(a::get_account_data).put(a::put_account_data),
        )
        .route("/user/:user/rooms/:room/tags", get(rooms::tags))
        .route("/joined_rooms", get(rooms::joined_rooms))
        .route("/createRoom", post(rooms::create_room))
        .route("/join/:room", post(rooms::join))
        .route("/rooms/:room/join", post(rooms::join))
        .route("/rooms/:room/leave", post(rooms::leave))
        .route("/rooms/:room/forget", post(rooms::forget))
        .route("/rooms/:room/invite", post(rooms::invite))
        .route("/rooms/:room/kick", post(rooms::kick))
        .route("/rooms/:room/state", get(rooms::state))
        .route(
            "/rooms/:room/state/:kind",
            get(rooms::state_event).put(rooms::put_state),
        )
        .route(
            "/rooms/:room/state/:kind/:key",
            get(rooms::state_event).put(rooms::put_state),
        )
        .route("/rooms/:room/members", get(rooms::members))
        .route("/rooms/:room/joined_members", get(rooms::joined_members))
        .route("/rooms/:room/messages", get(rooms::messages))
        .route("/rooms/:room/event/:event", get(rooms::event))
        .route("/rooms/:room/send/:kind/:txn", put(rooms::send))
        .route(
            "/rooms/:room/redact/:event/:txn",
            put(crate::interact::redact),
        )
        .route("/rooms/:room/typing/:user", put(rooms::typing))
        .route("/rooms/:room/receipt/:kind/:event", post(rooms::receipt))
        .route("/rooms/:room/read_markers", post(rooms::read_markers))
        .route("/profile/:user", get(a::profile))
        .route(
            "/profile/:user/:field",
            get(a::profile_field).put(a::set_profile),
        )
        .route("/pushrules", get(a::push_rules))
        .route("/pushrules/global", get(a::push_rules_global))
        .route("/pushers", get(a::pushers))
        .route("/pushers/set", post(a::set_pusher))
        .route("/devices", get(a::devices))
        .route("/devices/:id", get(a::device).put(a::put_device))
        .route("/keys/upload", post(a::keys_upload))
        .route("/keys/query", post(a::keys_query))
        .route("/keys/claim", post(a::keys_claim))
        .route("/keys/changes", get(a::keys_changes))
        .route("/sendToDevice/:kind/:txn", put(a::send_to_device))
        .route("/voip/turnServer", get(a::turn_server))
        .route(
            "/presence/:user/status",
            get(a::get_presence).put(a::put_presence),
        )
        .route("/user_directory/search", post(a::user_directory))
        .route("/room_keys/version", get(a::no_key_backup))
        .route("/room_keys/version/*rest", get(a::no_key_backup))
        .route("/room_keys/keys", get(a::no_key_backup))
        .route("/room_keys/keys/*rest", get(a::no_key_backup))
        .route("/thirdparty/protocols", get(a::third_party_protocols))
        .merge(crate::media::routes())
}

/// The whole app: discovery, the client API under its prefixes, the Matrix error for
/// everything else, CORS on every answer.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = client_api();
    Router::new()
        .route("/.well-known/matrix/client", get(account::well_known))
        .route("/_matrix/client/versions", get(account::versions))
        .nest("/_matrix/client/r0", api.clone())
        .nest("/_matrix/client/v3", api.clone())
        .nest("/_matrix/client/v1", api)
        .merge(crate::media::upload_routes())
        // After every route and nest: it applies to the routes added before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn(cors_and_log))
        .with_state(shared)
}

/// Drops one trailing slash before routing (`/pushrules/` is the usual spelling; a state event
/// path ending in `/` has an empty state key).
pub(crate) fn strip_trailing_slash<B>(req: &mut http::Request<B>) {
    let uri = req.uri();
    let path = uri.path();
    if path.len() <= 1 || !path.ends_with('/') {
        return;
    }
    let stripped = match uri.query() {
        Some(q) => format!("{}?{q}", &path[..path.len() - 1]),
        None => path[..path.len() - 1].to_owned(),
    };
    if let Ok(p) = stripped.parse::<http::uri::PathAndQuery>() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(p);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

async fn unknown_endpoint(method: Method) -> MatrixError {
    MatrixError::UnknownEndpoint {
        method: method.to_string(),
    }
}

async fn method_not_allowed(method: Method) -> MatrixError {
    MatrixError::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// CORS for web clients: a preflight (`OPTIONS`, any path) answers at once; every answer gets
/// the headers.
async fn cors_and_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let mut resp = if method == Method::OPTIONS {
        Json(serde_json::json!({})).into_response()
    } else {
        next.run(req).await
    };
    tracing::debug!(
        %method,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "matrix: answered"
    );
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization, Date"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The app with a daemon channel that never connects: what is checked here is answered
    /// before any call to the daemon.
    fn app() -> Router {
        let api = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let (_tx, stop) = tokio::sync::watch::channel(false);
        router(Arc::new(Shared::new(Default::default(), api.into(), stop)))
    }

    /// (status, errcode, allow-origin) of `method path`.
    async fn call(method: &str, path: &str) -> (u16, String, bool) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        strip_trailing_slash(&mut req);
        let resp = app().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let cors = resp.headers().contains_key("access-control-allow-origin");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
        let code = v["errcode"].as_str().unwrap_or("").to_owned();
        (status, code, cors)
    }

    #[tokio::test]
    async fn prefixes_slashes_and_auth() {
        for prefix in ["r0", "v3", "v1"] {
            for path in [
                "sync",
                "pushrules/",
                "rooms/!a:b/state/m.room.name/",
                "room_keys/version/1",
            ] {
                let (status, code, cors) =
                    call("GET", &format!("/_matrix/client/{prefix}/{path}")).await;
                assert_eq!(
                    (status, code.as_str(), cors),
                    (401, "M_MISSING_TOKEN", true),
                    "{prefix}/{path}"
                );
            }
        }
        let (status, _, cors) = call("GET", "/_matrix/client/versions").await;
        assert_eq!((status, cors), (200, true));
        let (status, _, _) = call("GET", "/.well-known/matrix/client/").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn unknown_paths_and_wrong_methods() {
        for path in [
            "/_matrix/client/v3/nope",
            "/somewhere/else",
            "/_matrix/client/v9/sync",
            "/",
            "/_matrix/client/v3",
            "/_matrix/client/v3/rooms/x/ban",
        ] {
            let (status, code, cors) = call("GET", path).await;
            assert_eq!(
                (status, code.as_str(), cors),
                (404, "M_UNRECOGNIZED", true),
                "{path}"
            );
        }
        for (method, path) in [
            ("DELETE", "/_matrix/client/v3/sync"),
            ("GET", "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t"),
            ("GET", "/_matrix/client/r0/logout"),
            ("POST", "/_matrix/client/versions"),
        ] {
            let (status, code, _) = call(method, path).await;
            assert_eq!(
                (status, code.as_str()),
                (405, "M_UNRECOGNIZED"),
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn cors_preflight_answers_anywhere() {
        for path in [
            "/_matrix/client/v3/sync",
            "/nowhere",
            "/_matrix/client/v3/login",
        ] {
            let (status, code, cors) = call("OPTIONS", path).await;
            assert_eq!((status, code.as_str(), cors), (200, "", true), "{path}");
        }
    }
}
