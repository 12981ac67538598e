//! Community rooms (SOGS, spec communities-and-files.md Part A) for every identity: joining by
//! URL, the per-server poller, posting, reactions, deletions, moderation and community DMs
//! (the blinded inbox), all as onion requests v4 signed with the identity's blind15 key for the
//! server.
//!
//! # The poller
//! One task ([`supervise`]) keeps a schedule per (identity, server): every
//! `poll.community_interval_ms` it sends that server one signed `POST /batch` holding
//! `/capabilities`, then per joined room `/room/R/pollInfo/0` and
//! `/room/R/messages/since/<seqno>?t=r&reactors=5` (`…/recent` before the first poll), then
//! `/inbox/since/<id>` and `/outbox/since/<id>`. What a room's poll brings (posts, edits,
//! deletions, reactions, its info and our permissions) is recorded in one store transaction
//! with the room's new cursor. A server that fails is retried with a doubling wait (up to 32
//! intervals or a minute); one that answers but refuses a room (404: deleted; 403: no read
//! access) keeps its other rooms polled and shows the reason in the room's `last_error`.
//!
//! Bad input never stops a poll: a row that is not a message object, a post whose signature
//! does not verify or whose Content does not decode, an undecryptable DM are skipped with a
//! debug line naming the room, the row's id and the reason; the cursor moves past them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{json, Value};
use session_net::{NetClient, NetError, Server, ServerRequest};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::community::api::{
    Capabilities, DirectMessage, PollInfo, RoomInfo, RoomMessage, RoomPaths, SendDirectMessage,
    SubRequest, SubResponse,
};
use session_proto::community::room::decode_community_content;
use session_proto::community::url::{check_room_token, CommunityUrl, ServerUrl};
use session_proto::community::{
    decrypt_dm, encode_room_message, encrypt_dm, read_room_message, sign_request, Blind15Keys,
    RequestSigner, RoomUpdate,
};
use session_proto::config::user_groups::CommunityEntry;
use session_proto::err::{ErrorKind, HasKind};
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::rpc::now_ms;
use crate::store::{
    IdentityId, IdentityRecord, RoomItem, RoomPoll, RoomRecord, RoomState, Store, StoreError,
};

/// Rows a messages poll returns at most (the server's default `limit`); a full page means
/// more are waiting, so the server is polled again at once.
const PAGE: usize = 100;
/// Longest wait between polls of a failing server.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often the supervisor looks at the schedule when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

/// Why a community operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The URL or address is not a community room.
    #[error("{0}")]
    BadUrl(String),
    /// A request field is malformed.
    #[error("{field}: {reason}")]
    BadField {
        /// Which.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The identity has not joined this room.
    #[error("not joined to the room {address}; join it first")]
    NotJoined {
        /// The room's address.
        address: String,
    },
    /// The server answered a request with an error status.
    #[error("community server {server} refused {what}: HTTP {status} {reason}")]
    Refused {
        /// The server's base URL.
        server: String,
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The server's text, shortened.
        reason: String,
    },
    /// The room is read-only for this identity.
    #[error("the room {address} is read-only for you: only its moderators may post")]
    ReadOnly {
        /// The room's address.
        address: String,
    },
    /// The server could not be reached through the network.
    #[error("community server {server} unreachable: {source}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// The network's error.
        #[source]
        source: NetError,
    },
    /// The server answered something that is not the API's JSON.
    #[error("community server {server} gave a bad reply to {what}: {reason}")]
    BadReply {
        /// The server's base URL.
        server: String,
        /// What was asked.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking store task failed.
    #[error("a store task failed: {0}")]
    Join(String),
}

impl HasKind for RoomError {
    fn kind(&self) -> ErrorKind {
        match self {
            RoomError::BadUrl(_) | RoomError::BadField { .. } => ErrorKind::InvalidInput,
            RoomError::NotJoined { .. } => ErrorKind::NotFound,
            RoomError::Refused { status, .. } => match status {
                400 | 406 | 413 => ErrorKind::InvalidInput,
                401 => ErrorKind::Rejected,
                403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                412 => ErrorKind::Unsupported,
                425 => ErrorKind::ClockSkew,
                429 => ErrorKind::Busy,
                _ => ErrorKind::Unavailable,
            },
            RoomError::ReadOnly { .. } => ErrorKind::PermissionDenied,
            RoomError::Unreachable { .. } => ErrorKind::Unavailable,
            RoomError::BadReply { .. } => ErrorKind::ProtocolViolation,
            RoomError::Store(e) => e.kind(),
            RoomError::Join(_) => ErrorKind::LocalIo,
        }
    }
}

/// A room's address: `<canonical base URL>/<lower-case token>` (the conversation's name).
pub fn room_address(server: &ServerUrl, token: &str) -> String {
    format!("{server}/{}", token.to_ascii_lowercase())
}

/// Splits a room address into its server and token; `None` if it is not one.
pub fn parse_room_address(address: &str) -> Option<(ServerUrl, String)> {
    let (base, token) = address.rsplit_once('/')?;
    let server: ServerUrl = base.parse().ok()?;
    check_room_token(token).ok()?;
    // Only the canonical form names a room.
    (room_address(&server, token) == address).then(|| (server, token.to_owned()))
}

/// A moderator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Ban a user (`15…`/`05…`) from the room, for `timeout_secs` (0: for good).
    Ban {
        /// The user.
        user: String,
        /// Seconds; 0 = permanent.
        timeout_secs: u64,
    },
    /// Lift a ban.
    Unban {
        /// The user.
        user: String,
    },
    /// Delete every post of a user in the room.
    DeleteAll {
        /// The user.
        user: String,
    },
}

/// A post the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The server's message id.
    pub server_id: i64,
    /// The daemon's message id (recorded in the `Outgoing` event).
    pub message_id: String,
    /// The seq of the `Outgoing` event.
    pub seq: u64,
    /// The post's timestamp, ms.
    pub sent_at_ms: u64,
}

/// The communities side of the engine: shared by the poller and the gRPC service.
#[derive(Debug)]
pub struct Communities {
    net: NetClient,
    store: Store,
    interval: Duration,
    /// Wakes the poller (a room was joined, a post made): every server is polled now.
    wake: Notify,
    /// Config sync: joins and leaves go to the account's UserGroups.
    sync: Arc<super::configsync::SyncHub>,
}

/// When a server is polled next.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next: Instant,
    failures: u32,
}

type Target = (IdentityId, String);

impl Communities {
    /// The communities side over a network client and a store, polling each server every
    /// `interval`.
    pub fn new(
        net: NetClient,
        store: Store,
        interval: Duration,
        sync: Arc<super::configsync::SyncHub>,
    ) -> Arc<Communities> {
        Arc::new(Communities {
            net,
            store,
            interval: interval.max(Duration::from_millis(50)),
            wake: Notify::new(),
            sync,
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, RoomError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| RoomError::Join(e.to_string()))?
            .map_err(RoomError::from)
    }

    async fn identity(&self, name: &str) -> Result<(IdentityRecord, IdentityKeys), RoomError> {
        let name = name.to_owned();
        let (record, seed) = self
            .blocking(move |s| Ok((s.identity(&name)?, s.identity_seed(&name)?)))
            .await?;
        Ok((record, IdentityKeys::from_seed(&seed)))
    }

    async fn joined(&self, id: IdentityId, address: &str) -> Result<RoomRecord, RoomError> {
        let a = address.to_owned();
        self.blocking(move |s| s.community_room(id, &a))
            .await?
            .ok_or_else(|| RoomError::NotJoined {
                address: address.to_owned(),
            })
    }

    /// Sends one signed request to a server through an onion path; returns the status and the
    /// body (JSON, or `Null` for an empty body). Statuses of 400 and up are [`RoomError::Refused`].
    async fn request(
        &self,
        server: &ServerUrl,
        pubkey: &[u8; 32],
        blind: &Blind15Keys,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RoomError> {
        let base = server.to_string();
        let target = Server::new(&base, *pubkey).map_err(|e| RoomError::BadUrl(e.to_string()))?;
        let body = body.map(|b| b.to_string().into_bytes());
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let auth = sign_request(
            RequestSigner::Blinded(blind),
            method,
            path,
            body.as_deref().unwrap_or_default(),
            &nonce,
            now_ms() / 1000,
        );
        let mut headers: BTreeMap<String, String> = auth
            .headers()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if body.is_some() {
            headers.insert("Content-Type".into(), "application/json".into());
        }
        let request = ServerRequest {
            method: method.to_owned(),
            endpoint: path.to_owned(),
            headers,
            body,
        };
        let what = format!("{method} {}", what_path(path));
        match self.net.server_request(&target, &request).await {
            Ok(r) => parse_body(&r.body).map_err(|reason| RoomError::BadReply {
                server: base,
                what,
                reason,
            }),
            Err(NetError::ServerStatus { status, reason, .. }) => Err(RoomError::Refused {
                server: base,
                what,
                status,
                reason,
            }),
            Err(source) => Err(RoomError::Unreachable {
                server: base,
                source,
            }),
        }
    }

    /// Joins a room by its full URL (`http(s)://host[:port]/ROOM?public_key=…`): asks the
    /// server for the room through onion v4 (which only a server holding the URL's key can
    /// answer), stores it and starts polling it. Joining twice returns the stored room.
    pub async fn join(&self, identity: &str, url: &str) -> Result<RoomRecord, RoomError> {
        let url: CommunityUrl = url
            .parse()
            .map_err(|e: session_proto::err::CommunityError| RoomError::BadUrl(e.to_string()))?;
        let (record, keys) = self.identity(identity).await?;
        let address = room_address(url.server(), url.room());
        if let Some(r) = {
            let a = address.clone();
            self.blocking(move |s| s.community_room(record.id, &a))
                .await?
        } {
            return Ok(r);
        }
        let pubkey = *url.server_pubkey();
        let blind = Blind15Keys::new(&keys, &pubkey);
        let paths = RoomPaths::new(url.room()).map_err(|e| RoomError::BadUrl(e.to_string()))?;
        let info = self
            .request(url.server(), &pubkey, &blind, "GET", &paths.info(), None)
            .await?;
        let info: RoomInfo = serde_json::from_value(info).map_err(|e| RoomError::BadReply {
            server: url.server().to_string(),
            what: "the room".into(),
            reason: format!("not a room object: {e}"),
        })?;
        let room = RoomRecord {
            address: address.clone(),
            base_url: url.server().to_string(),
            token: url.room().to_owned(),
            pubkey: hex::encode(pubkey),
            joined_at_ms: now_ms(),
            seqno: None,
            state: Some(state_of(&info)),
            last_poll_ms: 0,
            last_error: String::new(),
        };
        let id = record.id;
        let r = room.clone();
        let sync = Arc::clone(&self.sync);
        let entry = CommunityEntry {
            base_url: room.base_url.clone(),
            pubkey,
            room: room.token.clone(),
            priority: 0,
            joined_at: i64::try_from(room.joined_at_ms / 1000).unwrap_or(0),
        };
        let added = self
            .blocking(move |s| {
                // The store write and the UserGroups edit are one local change.
                let _local = sync.local_change();
                let added = s.join_community_room(id, &r)?;
                let title = r.state.as_ref().map(|st| st.name.as_str());
                s.open_shared_conversation(id, &r.address, title, now_ms())?;
                if added {
                    sync.edit(id, super::configsync::Edit::Room(entry));
                }
                Ok(added)
            })
            .await?;
        if added {
            tracing::info!(identity = %record.name, room = %address, "joined a community room");
        }
        self.wake.notify_one();
        Ok(room)
    }

    /// Leaves a room: stops polling it (its events stay). False if it was not joined.
    pub async fn leave(&self, identity: &str, address: &str) -> Result<bool, RoomError> {
        let (record, _) = self.identity(identity).await?;
        let a = address.to_owned();
        let sync = Arc::clone(&self.sync);
        self.blocking(move |s| {
            let _local = sync.local_change();
            let Some(room) = leave_room(s, record.id, &a, now_ms())? else {
                return Ok(false);
            };
            sync.edit(
                record.id,
                super::configsync::Edit::ForgetRoom {
                    base_url: room.base_url,
                    room: room.token,
                },
            );
            Ok(true)
        })
        .await
    }

    /// The identity's joined rooms.
    pub async fn rooms(&self, identity: &str) -> Result<Vec<RoomRecord>, RoomError> {
        let (record, _) = self.identity(identity).await?;
        self.blocking(move |s| s.community_rooms(record.id)).await
    }

    /// The room, the identity's keys and its blind15 keys for the server.
    async fn context(
        &self,
        identity: &str,
        address: &str,
    ) -> Result<(IdentityRecord, RoomRecord, Ctx), RoomError> {
        let (record, keys) = self.identity(identity).await?;
        let room = self.joined(record.id, address).await?;
        let ctx = Ctx::new(&room, keys)?;
        Ok((record, room, ctx))
    }

    /// Posts `text` in a room and records it as an `Outgoing` event (with its `Delivery` SENT,
    /// whose hash is the server's message id). A read-only room is [`RoomError::ReadOnly`].
    pub async fn post(
        &self,
        identity: &str,
        address: &str,
        text: &str,
    ) -> Result<Posted, RoomError> {
        let (record, room, ctx) = self.context(identity, address).await?;
        if room
            .state
            .as_ref()
            .is_some_and(|s| !s.write && !s.moderator)
        {
            return Err(RoomError::ReadOnly {
                address: address.to_owned(),
            });
        }
        let sent_at_ms = now_ms();
        let content = text_content(text, record.display_name.as_deref(), sent_at_ms);
        let post = encode_room_message(&ctx.blind, &content);
        let body = serde_json::to_value(&post).map_err(|e| RoomError::BadField {
            field: "text",
            reason: e.to_string(),
        })?;
        let reply = self
            .request(
                &ctx.server,
                &ctx.pubkey,
                &ctx.blind,
                "POST",
                &ctx.paths.post(),
                Some(&body),
            )
            .await
            .map_err(|e| match e {
                RoomError::Refused { status: 403, .. } => RoomError::ReadOnly {
                    address: address.to_owned(),
                },
                e => e,
            })?;
        let server_id =
            reply
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| RoomError::BadReply {
                    server: room.base_url.clone(),
                    what: "POST message".into(),
                    reason: "no message id in the reply".into(),
                })?;
        let id = record.id;
        let (a, t) = (address.to_owned(), text.to_owned());
        let (message_id, seq) = self
            .blocking(move |s| s.record_community_sent(id, &a, server_id, &t, sent_at_ms, now_ms()))
            .await?;
        self.wake.notify_one();
        Ok(Posted {
            server_id,
            message_id,
            seq,
            sent_at_ms,
        })
    }

    /// Adds (`add`) or removes the identity's reaction `emoji` on post `server_id`.
    pub async fn react(
        &self,
        identity: &str,
        address: &str,
        server_id: i64,
        emoji: &str,
        add: bool,
    ) -> Result<(), RoomError> {
        let n = emoji.chars().count();
        if n == 0
            || n > 12
            || emoji
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '?')
        {
            return Err(RoomError::BadField {
                field: "emoji",
                reason: "1 to 12 characters, no '/', '?' or control characters".into(),
            });
        }
        let (_, _, ctx) = self.context(identity, address).await?;
        let (method, body) = if add {
            ("PUT", Some(json!({})))
        } else {
            ("DELETE", None)
        };
        self.request(
            &ctx.server,
            &ctx.pubkey,
            &ctx.blind,
            method,
            &ctx.paths.reaction(server_id, emoji),
            body.as_ref(),
        )
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Deletes post `server_id`: the identity's own, or anyone's for a moderator (the server
    /// answers 403 otherwise).
    pub async fn delete(
        &self,
        identity: &str,
        address: &str,
        server_id: i64,
    ) -> Result<(), RoomError> {
        let (_, _, ctx) = self.context(identity, address).await?;
        self.request(
            &ctx.server,
            &ctx.pubkey,
            &ctx.blind,
            "DELETE",
            &ctx.paths.message(server_id),
            None,
        )
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// A moderator action in the room (the server answers 403 to non-moderators).
    pub async fn moderate(
        &self,
        identity: &str,
        address: &str,
        action: &Moderation,
    ) -> Result<(), RoomError> {
        let user = match action {
            Moderation::Ban { user, .. }
            | Moderation::Unban { user }
            | Moderation::DeleteAll { user } => user,
        };
        match user.parse::<AccountId>() {
            Ok(id) if matches!(id.prefix(), Some(Prefix::Standard | Prefix::Blinded15)) => {}
            _ => {
                return Err(RoomError::BadField {
                    field: "user",
                    reason: "a 05… Account ID or a 15… blinded ID (66 hex characters)".into(),
                })
            }
        }
        let (_, room, ctx) = self.context(identity, address).await?;
        let (method, path, body) = match action {
            Moderation::Ban { timeout_secs, .. } => {
                let mut b = json!({"rooms": [room.token]});
                if *timeout_secs > 0 {
                    b["timeout"] = json!(timeout_secs);
                }
                ("POST", format!("/user/{user}/ban"), Some(b))
            }
            Moderation::Unban { .. } => (
                "POST",
                format!("/user/{user}/unban"),
                Some(json!({"rooms": [room.token]})),
            ),
            Moderation::DeleteAll { .. } => {
                ("DELETE", format!("/room/{}/all/{user}", room.token), None)
            }
        };
        self.request(
            &ctx.server,
            &ctx.pubkey,
            &ctx.blind,
            method,
            &path,
            body.as_ref(),
        )
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Sends a community DM to `recipient` (`15…`) through the server of the joined room
    /// `address`, and records it as an `Outgoing` event in the conversation with `recipient`.
    pub async fn send_dm(
        &self,
        identity: &str,
        address: &str,
        recipient: &str,
        text: &str,
    ) -> Result<Posted, RoomError> {
        let to: AccountId = recipient
            .parse()
            .ok()
            .filter(|a: &AccountId| a.prefix() == Some(Prefix::Blinded15))
            .ok_or_else(|| RoomError::BadField {
                field: "recipient",
                reason: "a 15… blinded ID (66 hex characters)".into(),
            })?;
        let (record, room, ctx) = self.context(identity, address).await?;
        let sent_at_ms = now_ms();
        let content = text_content(text, record.display_name.as_deref(), sent_at_ms);
        let wire = encrypt_dm(
            &mut rand::rngs::OsRng,
            &ctx.blind,
            &to,
            &prost::Message::encode_to_vec(&content),
        )
        .map_err(|e| RoomError::BadField {
            field: "recipient",
            reason: e.to_string(),
        })?;
        let body = serde_json::to_value(SendDirectMessage {
            message: STANDARD.encode(wire),
        })
        .map_err(|e| RoomError::Join(e.to_string()))?;
        let reply = self
            .request(
                &ctx.server,
                &ctx.pubkey,
                &ctx.blind,
                "POST",
                &format!("/inbox/{to}"),
                Some(&body),
            )
            .await?;
        let server_id =
            reply
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| RoomError::BadReply {
                    server: room.base_url.clone(),
                    what: "POST inbox".into(),
                    reason: "no message id in the reply".into(),
                })?;
        let id = record.id;
        let (base, t, peer) = (room.base_url.clone(), text.to_owned(), to.to_string());
        let (message_id, seq) = self
            .blocking(move |s| {
                s.record_community_dm_sent(id, &base, &peer, server_id, &t, sent_at_ms, now_ms())
            })
            .await?;
        Ok(Posted {
            server_id,
            message_id,
            seq,
            sent_at_ms,
        })
    }

    /// Sends a community DM to a blinded ID the identity has met (in a DM or a room): the
    /// server is the one it was met on.
    pub async fn send_dm_to_known(
        &self,
        identity: &str,
        recipient: &str,
        text: &str,
    ) -> Result<Posted, RoomError> {
        let (record, _) = self.identity(identity).await?;
        let (id, peer) = (record.id, recipient.to_owned());
        let room = self
            .blocking(move |s| {
                let Some(base) = s.community_peer(id, &peer)? else {
                    return Ok(None);
                };
                Ok(s.community_rooms(id)?
                    .into_iter()
                    .find(|r| r.base_url == base))
            })
            .await?
            .ok_or_else(|| RoomError::NotJoined {
                address: format!("the community server of {}", short(recipient)),
            })?;
        self.send_dm(identity, &room.address, recipient, text).await
    }

    /// Polls every joined server of every identity once, now (what the poller does on its
    /// schedule); for tests and `run --devnet`'s demo.
    pub async fn poll_all(&self) -> Result<(), RoomError> {
        let targets = self.targets().await?;
        for (id, base) in targets {
            self.poll_server(id, &base).await?;
        }
        Ok(())
    }

    async fn targets(&self) -> Result<HashSet<Target>, RoomError> {
        self.blocking(|s| {
            let mut out = HashSet::new();
            for identity in s.identities()? {
                for r in s.community_rooms(identity.id)? {
                    out.insert((identity.id, r.base_url));
                }
            }
            Ok(out)
        })
        .await
    }

    /// One poll of one server for one identity: returns true when a room had a full page (poll
    /// again at once).
    async fn poll_server(&self, identity: IdentityId, base: &str) -> Result<bool, RoomError> {
        let b = base.to_owned();
        let (record, seed, rooms, cursors) = self
            .blocking(move |s| {
                let record = s.identity_by_id(identity)?;
                let seed = s.identity_seed(&record.name)?;
                let rooms: Vec<RoomRecord> = s
                    .community_rooms(identity)?
                    .into_iter()
                    .filter(|r| r.base_url == b)
                    .collect();
                let cursors = s.community_server(identity, &b)?;
                Ok((record, seed, rooms, cursors))
            })
            .await?;
        let Some(first) = rooms.first() else {
            return Ok(false);
        };
        let keys = IdentityKeys::from_seed(&seed);
        let ctx = Ctx::new(first, keys)?;
        let mut subs = vec![SubRequest::get("/capabilities")];
        let mut polled = Vec::new();
        for r in &rooms {
            let Ok(paths) = RoomPaths::new(&r.token) else {
                continue;
            };
            subs.push(SubRequest::get(paths.poll_info(0)));
            subs.push(SubRequest::get(match r.seqno {
                Some(n) => format!("/room/{}/messages/since/{n}?t=r&reactors=5", r.token),
                None => format!("/room/{}/messages/recent?limit={PAGE}&reactors=5", r.token),
            }));
            polled.push(r);
        }
        subs.push(SubRequest::get(match cursors.inbox {
            Some(n) => format!("/inbox/since/{n}"),
            None => "/inbox".to_owned(),
        }));
        subs.push(SubRequest::get(match cursors.outbox {
            Some(n) => format!("/outbox/since/{n}"),
            None => "/outbox".to_owned(),
        }));
        let body = serde_json::to_value(&subs).map_err(|e| RoomError::Join(e.to_string()))?;
        let reply = self
            .request(
                &ctx.server,
                &ctx.pubkey,
                &ctx.blind,
                "POST",
                "/batch",
                Some(&body),
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let why = e.to_string();
                let addresses: Vec<String> = rooms.iter().map(|r| r.address.clone()).collect();
                let _ = self
                    .blocking(move |s| {
                        for a in &addresses {
                            s.update_community_room(identity, a, |r| r.last_error = why.clone())?;
                        }
                        Ok(())
                    })
                    .await;
                return Err(e);
            }
        };
        let replies: Vec<SubResponse> = match serde_json::from_value::<Vec<SubResponse>>(reply) {
            Ok(r) if r.len() == subs.len() => r,
            Ok(r) => {
                return Err(RoomError::BadReply {
                    server: base.to_owned(),
                    what: "POST /batch".into(),
                    reason: format!("{} replies to {} requests", r.len(), subs.len()),
                })
            }
            Err(e) => {
                return Err(RoomError::BadReply {
                    server: base.to_owned(),
                    what: "POST /batch".into(),
                    reason: format!("not a list of sub-replies: {e}"),
                })
            }
        };
        if let Some(caps) = replies.first().filter(|r| r.is_success()) {
            if let Ok(c) = serde_json::from_value::<Capabilities>(caps.body.clone()) {
                if !c.blind() {
                    tracing::debug!(server = %base, "community server does not require blinded IDs");
                }
            }
        }
        let own = ctx.blind.id().to_string();
        let mut more = false;
        for (i, room) in polled.iter().enumerate() {
            let info = &replies[1 + 2 * i];
            let msgs = &replies[2 + 2 * i];
            let poll = room_poll(room, info, msgs, &own);
            more |= poll.rows >= PAGE && room.seqno.is_some();
            let address = room.address.clone();
            let renamed = poll
                .poll
                .state
                .as_ref()
                .map(|st| st.name.clone())
                .filter(|n| room.state.as_ref().is_none_or(|old| &old.name != n));
            let events = self
                .blocking(move |s| s.record_room_poll(identity, &address, &poll.poll, now_ms()))
                .await?;
            if let Some(name) = renamed {
                let a = room.address.clone();
                self.blocking(move |s| {
                    s.open_shared_conversation(identity, &a, Some(&name), now_ms())
                })
                .await?;
            }
            if !events.is_empty() {
                tracing::debug!(identity = %record.name, room = %room.address, events = events.len(), "room poll recorded");
            }
        }
        let inbox = &replies[replies.len() - 2];
        let outbox = &replies[replies.len() - 1];
        let dms = dm_poll(&ctx, base, inbox, outbox);
        if !dms.items.is_empty() || dms.inbox.is_some() || dms.outbox.is_some() {
            let b = base.to_owned();
            self.blocking(move |s| s.record_community_dms(identity, &b, &dms, now_ms()))
                .await?;
        }
        Ok(more)
    }
}

/// What one room's poll of a server is to the store, and how many rows it had.
struct Polled {
    poll: RoomPoll,
    rows: usize,
}

/// Reads one room's pollInfo and messages replies into what the store records.
fn room_poll(room: &RoomRecord, info: &SubResponse, msgs: &SubResponse, own: &str) -> Polled {
    let mut poll = RoomPoll::default();
    let mut rows = 0;
    match info.code {
        200..=299 => match serde_json::from_value::<PollInfo>(info.body.clone()) {
            Ok(p) => {
                let mut state = room.state.clone().unwrap_or_default();
                if let Some(d) = &p.details {
                    state = state_of(d);
                }
                state.read = p.access.read;
                state.write = p.access.write;
                state.moderator = p.access.is_moderator();
                state.admin = p.access.admin == Some(true) || p.access.global_admin == Some(true);
                state.active_users = u64::try_from(p.active_users).unwrap_or(0);
                poll.state = Some(state);
            }
            Err(e) => poll.error = Some(format!("bad room info from the server: {e}")),
        },
        404 => poll.error = Some("the room does not exist on the server (404)".into()),
        403 => poll.error = Some("no permission to read the room (403)".into()),
        code => poll.error = Some(format!("the server refused the room info (HTTP {code})")),
    }
    match msgs.code {
        200..=299 => {
            let list = match &msgs.body {
                Value::Array(a) => a.as_slice(),
                _ => {
                    poll.error = Some("the server's message list is not a list".into());
                    &[]
                }
            };
            rows = list.len();
            let mut max = room.seqno;
            let mut items = Vec::new();
            for row in list {
                let msg: RoomMessage = match serde_json::from_value(row.clone()) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(room = %room.address, cause = %e, "skipping a row that is not a message");
                        continue;
                    }
                };
                max = Some(max.map_or(msg.seqno, |m| m.max(msg.seqno)));
                match read_room_message(&msg) {
                    Ok(RoomUpdate::Post(p)) => {
                        let text = p
                            .content
                            .data_message
                            .as_ref()
                            .and_then(|d| d.body.clone())
                            .unwrap_or_default();
                        let profile_name = p
                            .content
                            .data_message
                            .as_ref()
                            .and_then(|d| d.profile.as_ref())
                            .and_then(|p| p.display_name.clone())
                            .filter(|n| !n.is_empty());
                        let sender = p.sender.to_string();
                        items.push(RoomItem::Post {
                            server_id: p.id,
                            seqno: p.seqno,
                            own: sender == own,
                            sender,
                            text,
                            posted_ms: p.posted_ms,
                            edited_ms: p.edited_ms,
                            profile_name,
                        });
                        if !p.reactions.is_empty() {
                            items.push(RoomItem::Reactions {
                                server_id: p.id,
                                seqno: p.seqno,
                                reactions: reactions(&p.reactions),
                                reactors: reactors(&p.reactions),
                            });
                        }
                    }
                    Ok(RoomUpdate::Deleted { id, seqno }) => {
                        items.push(RoomItem::Deleted {
                            server_id: id,
                            seqno,
                        });
                    }
                    Ok(RoomUpdate::Reactions {
                        id,
                        seqno,
                        reactions: r,
                    }) => items.push(RoomItem::Reactions {
                        server_id: id,
                        seqno,
                        reactions: reactions(&r),
                        reactors: reactors(&r),
                    }),
                    Err(e) => {
                        tracing::debug!(room = %room.address, id = msg.id, cause = %e, "skipping a post that does not verify or decode");
                    }
                }
            }
            // `recent` is newest first; record oldest first.
            items.sort_by_key(RoomItem::seqno);
            poll.items = items;
            poll.seqno = max;
        }
        404 | 403 => {}
        code => {
            poll.error
                .get_or_insert(format!("the server refused the messages (HTTP {code})"));
        }
    }
    Polled { poll, rows }
}

/// Reaction counts by emoji: (count, whether we reacted).
fn reactions(
    r: &BTreeMap<String, session_proto::community::api::Reaction>,
) -> BTreeMap<String, (u64, bool)> {
    r.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (u64::try_from(v.count).unwrap_or(0), v.you == Some(true)),
            )
        })
        .collect()
}

/// The first reactors the server listed, by emoji (blinded IDs; emoji without a list left out).
fn reactors(
    r: &BTreeMap<String, session_proto::community::api::Reaction>,
) -> BTreeMap<String, Vec<String>> {
    r.iter()
        .filter_map(|(k, v)| {
            let ids: Vec<String> = v
                .reactors
                .iter()
                .flatten()
                .filter(|id| id.len() <= 66)
                .cloned()
                .collect();
            (!ids.is_empty()).then(|| (k.clone(), ids))
        })
        .collect()
}

/// Community DMs of one poll: opened inbox and outbox messages and the new cursors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmPoll {
    /// The DMs, oldest first.
    pub items: Vec<DmItem>,
    /// The new inbox cursor, if it moved.
    pub inbox: Option<i64>,
    /// The new outbox cursor, if it moved.
    pub outbox: Option<i64>,
}

/// One opened community DM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmItem {
    /// The server's id (unique per server and direction).
    pub server_id: i64,
    /// True: we sent it (read from the outbox).
    pub outgoing: bool,
    /// The other side's blinded ID (`15…`): the conversation.
    pub peer: String,
    /// The sender's real Account ID (`05…`), from the key inside the DM.
    pub sender_account: String,
    /// The text.
    pub text: String,
    /// The server's time, ms.
    pub posted_ms: u64,
    /// The display name in the DM's profile.
    pub profile_name: Option<String>,
}

fn dm_poll(ctx: &Ctx, base: &str, inbox: &SubResponse, outbox: &SubResponse) -> DmPoll {
    let mut out = DmPoll::default();
    for (reply, outgoing) in [(inbox, false), (outbox, true)] {
        if reply.code == 304 || !reply.is_success() {
            if !reply.is_success() && reply.code != 304 {
                tracing::debug!(server = %base, code = reply.code, outgoing, "community DMs not read this poll");
            }
            continue;
        }
        let Value::Array(rows) = &reply.body else {
            continue;
        };
        let mut max = None;
        for row in rows {
            let dm: DirectMessage = match serde_json::from_value(row.clone()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(server = %base, cause = %e, "skipping a DM row that is not a message");
                    continue;
                }
            };
            max = Some(max.map_or(dm.id, |m: i64| m.max(dm.id)));
            match open_dm(ctx, &dm, outgoing) {
                Ok(item) => out.items.push(item),
                Err(why) => {
                    tracing::debug!(server = %base, id = dm.id, %why, "skipping a community DM")
                }
            }
        }
        if outgoing {
            out.outbox = max;
        } else {
            out.inbox = max;
        }
    }
    out.items.sort_by_key(|d| (d.posted_ms, d.server_id));
    out
}

fn open_dm(ctx: &Ctx, dm: &DirectMessage, outgoing: bool) -> Result<DmItem, String> {
    let sender: AccountId = dm.sender.parse().map_err(|_| "bad sender ID".to_owned())?;
    let recipient: AccountId = dm
        .recipient
        .parse()
        .map_err(|_| "bad recipient ID".to_owned())?;
    let wire = dm
        .message
        .as_deref()
        .and_then(|m| STANDARD.decode(m).ok())
        .ok_or("message is not base64")?;
    let opened = decrypt_dm(&ctx.blind, &sender, &recipient, &wire).map_err(|e| e.to_string())?;
    let content = decode_community_content(&opened.content).map_err(|e| e.to_string())?;
    let data = content.data_message.ok_or("not a visible message")?;
    Ok(DmItem {
        server_id: dm.id,
        outgoing,
        peer: if outgoing {
            dm.recipient.clone()
        } else {
            dm.sender.clone()
        },
        sender_account: opened.sender.to_string(),
        text: data.body.unwrap_or_default(),
        posted_ms: (dm.posted_at.max(0.0) * 1000.0) as u64,
        profile_name: data
            .profile
            .and_then(|p| p.display_name)
            .filter(|n| !n.is_empty()),
    })
}

/// The room's state from a room object.
fn state_of(info: &RoomInfo) -> RoomState {
    let mut moderators = info.moderators.clone();
    moderators.extend(info.admins.iter().cloned());
    moderators.sort();
    moderators.dedup();
    RoomState {
        name: info.name.clone(),
        description: info.description.clone().unwrap_or_default(),
        read: info.access.read,
        write: info.access.write,
        moderator: info.access.is_moderator(),
        admin: info.access.admin == Some(true) || info.access.global_admin == Some(true),
        moderators,
        active_users: u64::try_from(info.active_users).unwrap_or(0),
        info_updates: info.info_updates,
    }
}

/// A body as JSON: empty is `Null`; anything else must be JSON (a server answering HTML is a
/// bad reply).
fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&body[..body.len().min(40)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("not JSON ({e}); it starts {start:?}")
    })
}

/// A path for errors and logs: without the query.
fn what_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The first characters of an ID, for messages.
fn short(id: &str) -> String {
    format!("{}…", id.chars().take(8).collect::<String>())
}

/// What a request to one room's server needs.
struct Ctx {
    server: ServerUrl,
    pubkey: [u8; 32],
    blind: Blind15Keys,
    paths: RoomPaths,
}

impl Ctx {
    fn new(room: &RoomRecord, keys: IdentityKeys) -> Result<Ctx, RoomError> {
        let bad = |what: &str| {
            RoomError::Store(StoreError::BadRecord {
                what: "community room",
                detail: what.to_owned(),
            })
        };
        let server: ServerUrl = room.base_url.parse().map_err(|_| bad("bad base URL"))?;
        let mut pubkey = [0u8; 32];
        hex::decode_to_slice(&room.pubkey, &mut pubkey).map_err(|_| bad("bad server key"))?;
        let paths = RoomPaths::new(&room.token).map_err(|_| bad("bad room token"))?;
        Ok(Ctx {
            server,
            blind: Blind15Keys::new(&keys, &pubkey),
            pubkey,
            paths,
        })
    }
}

/// Leaves the room at `address` in the store: stops polling it and leaves its conversation
/// (its events stay). The room, if it was joined.
fn leave_room(
    store: &Store,
    identity: IdentityId,
    address: &str,
    now_ms: u64,
) -> Result<Option<RoomRecord>, StoreError> {
    let Some(room) = store.community_room(identity, address)? else {
        return Ok(None);
    };
    if !store.leave_community_room(identity, address)? {
        return Ok(None);
    }
    match store.leave_conversation(identity, address, now_ms) {
        Ok(_) | Err(StoreError::UnknownConversation { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(Some(room))
}

/// Leaves the room `token` of the server at `base_url` here because another device of the
/// account left it (its UserGroups entry is gone). False if it was not joined here.
pub fn left_elsewhere(
    store: &Store,
    identity: IdentityId,
    base_url: &str,
    token: &str,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let Ok(server) = base_url.parse::<ServerUrl>() else {
        return Ok(false);
    };
    let left = leave_room(store, identity, &room_address(&server, token), now_ms)?.is_some();
    if left {
        tracing::info!(
            identity,
            "left a community room that the account left on another device"
        );
    }
    Ok(left)
}

/// Joins the rooms of the account's UserGroups config that the identity has not joined (rooms
/// joined on its other devices); the poller picks them up. Entries with a bad URL are skipped
/// with a debug line. A room joined here but missing from the config is not left (until this
/// daemon pushes UserGroups, it is not there yet); only one that a merge takes out of the
/// config is ([`left_elsewhere`]). Returns how many were joined.
pub fn adopt(
    store: &Store,
    identity: IdentityId,
    entries: &[CommunityEntry],
    now_ms: u64,
) -> Result<usize, StoreError> {
    let mut joined = 0;
    for e in entries {
        let Ok(server) = e.base_url.parse::<ServerUrl>() else {
            tracing::debug!(identity, "skipping a UserGroups room with a bad base URL");
            continue;
        };
        if check_room_token(&e.room).is_err() {
            tracing::debug!(identity, "skipping a UserGroups room with a bad token");
            continue;
        }
        let address = room_address(&server, &e.room);
        if store.community_room(identity, &address)?.is_some() {
            continue;
        }
        let room = RoomRecord {
            address,
            base_url: server.to_string(),
            token: e.room.clone(),
            pubkey: hex::encode(e.pubkey),
            joined_at_ms: u64::try_from(e.joined_at)
                .ok()
                .filter(|&j| j > 0)
                .map_or(now_ms, |j| j.saturating_mul(1000)),
            seqno: None,
            state: None,
            last_poll_ms: 0,
            last_error: String::new(),
        };
        if store.join_community_room(identity, &room)? {
            store.open_shared_conversation(identity, &room.address, None, now_ms)?;
            tracing::info!(identity, room = %room.address, "joined a community room from the account's config");
            joined += 1;
        }
    }
    Ok(joined)
}

/// What `run --devnet`'s echo identity posts in the demo room the first time.
pub const DEMO_POSTS: [&str; 3] = [
    "Welcome to the devnet's community room!",
    "Posts here are signed with a blinded key and sent as onion requests.",
    "Say hello: post with SendMessage to this room, or /join it from IRC.",
];

/// `run --devnet`: `poster` joins the room at `url` and, the first time, posts
/// [`DEMO_POSTS`]; then `me` joins. Retries (the network may still be starting) until it
/// works, `stop` turns true, or a minute has passed.
pub async fn demo(
    c: Arc<Communities>,
    url: String,
    me: &'static str,
    poster: &'static str,
    mut stop: watch::Receiver<bool>,
) {
    for _ in 0..30 {
        let done = async {
            let fresh = c.rooms(poster).await?.is_empty();
            let room = c.join(poster, &url).await?;
            if fresh {
                for text in DEMO_POSTS {
                    c.post(poster, &room.address, text).await?;
                }
            }
            c.join(me, &url).await?;
            Ok::<_, RoomError>(())
        };
        let done = tokio::select! {
            _ = stop.changed() => return,
            r = done => r,
        };
        match done {
            Ok(()) => return,
            Err(e) => tracing::debug!(cause = %e, "demo room not ready; will retry"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    tracing::warn!("could not join the demo community room");
}

/// The poller: polls every (identity, server) pair on its schedule until `stop` turns true.
pub async fn supervise(c: Arc<Communities>, mut stop: watch::Receiver<bool>) {
    let mut schedule: HashMap<Target, Schedule> = HashMap::new();
    let mut running: HashSet<Target> = HashSet::new();
    let mut tasks: JoinSet<(Target, Result<bool, RoomError>)> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        match c.targets().await {
            Ok(targets) => {
                schedule.retain(|t, _| targets.contains(t));
                for t in targets {
                    let s = schedule.entry(t.clone()).or_insert(Schedule {
                        next: now,
                        failures: 0,
                    });
                    if s.next <= now && !running.contains(&t) {
                        running.insert(t.clone());
                        let c = Arc::clone(&c);
                        // Task "community-poll": owned by this loop's JoinSet, aborted with it.
                        tasks.spawn(async move {
                            let r = c.poll_server(t.0, &t.1).await;
                            (t, r)
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(cause = %e, "cannot list community rooms to poll"),
        }
        let next = schedule
            .iter()
            .filter(|(t, _)| !running.contains(*t))
            .map(|(_, s)| s.next)
            .min()
            .map_or(TICK, |n| {
                n.saturating_duration_since(Instant::now()).min(TICK)
            });
        tokio::select! {
            _ = stop.changed() => break,
            () = c.wake.notified() => {
                for s in schedule.values_mut() {
                    s.next = Instant::now();
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((t, r)) = done else { continue };
                running.remove(&t);
                let s = schedule.entry(t.clone()).or_insert(Schedule { next: Instant::now(), failures: 0 });
                match r {
                    Ok(more) => {
                        s.failures = 0;
                        s.next = if more { Instant::now() } else { Instant::now() + c.interval };
                    }
                    Err(RoomError::Unreachable { source: NetError::Shutdown, .. }) => break,
                    Err(e) => {
                        s.failures = s.failures.saturating_add(1);
                        let wait = c.interval.saturating_mul(1 << s.failures.min(5)).min(BACKOFF_MAX.max(c.interval));
                        s.next = Instant::now() + wait;
                        tracing::debug!(identity = t.0, server = %t.1, failures = s.failures, cause = %e, "community poll failed");
                    }
                }
            }
            () = tokio::time::sleep(next) => {}
        }
    }
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomRecord {
        RoomRecord {
            address: "http://127.0.0.1:8080/lobby".into(),
            base_url: "http://127.0.0.1:8080".into(),
            token: "lobby".into(),
            pubkey: hex::encode([9u8; 32]),
            joined_at_ms: 1,
            seqno: Some(4),
            state: None,
            last_poll_ms: 0,
            last_error: String::new(),
        }
    }

    fn ok(body: Value) -> SubResponse {
        SubResponse::json(200, body)
    }

    fn info() -> SubResponse {
        ok(
            json!({"token": "lobby", "active_users": 3, "read": true, "write": false,
                  "details": {"token": "lobby", "name": "Lobby", "description": "hi",
                              "read": true, "write": false, "moderators": ["15ab"]}}),
        )
    }

    /// A signed post by `keys`.
    fn post(keys: &Blind15Keys, id: i64, seqno: i64, text: &str) -> Value {
        let now = 1_700_000_000_000u64;
        let p = encode_room_message(keys, &text_content(text, Some("Poster"), now));
        json!({"id": id, "seqno": seqno, "session_id": keys.id().to_string(),
               "posted": now as f64 / 1000.0, "data": p.data, "signature": p.signature})
    }

    #[test]
    fn room_addresses_are_canonical_only() {
        let (s, t) = parse_room_address("http://127.0.0.1:8080/lobby").expect("a room");
        assert_eq!(
            (s.to_string().as_str(), t.as_str()),
            ("http://127.0.0.1:8080", "lobby")
        );
        for bad in [
            "http://127.0.0.1:8080/Lobby",
            "http://127.0.0.1:80/lobby",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/a/b",
            "ftp://x/lobby",
            "lobby",
        ] {
            assert!(parse_room_address(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bodies_that_are_not_json_are_bad_replies() {
        assert_eq!(parse_body(b""), Ok(Value::Null));
        assert_eq!(parse_body(b"[1]"), Ok(json!([1])));
        let e = parse_body(b"<html><body>502 Bad Gateway</body></html>").expect_err("html");
        assert!(e.contains("not JSON") && e.contains("<html>"), "{e}");
        let huge = vec![b'x'; 5_000_000];
        let e = parse_body(&huge).expect_err("junk");
        assert!(e.len() < 200, "the reason stays short: {}", e.len());
    }

    #[test]
    fn a_poll_keeps_good_rows_and_skips_bad_ones() {
        let keys = IdentityKeys::from_seed(&[1; 32]);
        let poster = Blind15Keys::new(&keys, &[9; 32]);
        let mut bad_sig = post(&poster, 7, 7, "forged");
        bad_sig["signature"] = json!(STANDARD.encode([0u8; 64]));
        let rows = json!([
            post(&poster, 5, 5, "first"),
            "not an object",
            {"id": "x"},
            bad_sig,
            {"id": 5, "seqno": 8, "session_id": poster.id().to_string(), "data": null, "deleted": true},
            {"id": 6, "seqno": 9, "reactions": {"👍": {"index": 0, "count": 2, "you": true}}},
            {"id": 10, "seqno": 12, "session_id": poster.id().to_string(), "posted": 1.0,
             "data": STANDARD.encode([0xffu8; 40]), "signature": STANDARD.encode(poster.sign(&[0xff; 40]))},
        ]);
        let p = room_poll(&room(), &info(), &ok(rows), "15none");
        assert_eq!(p.rows, 7);
        assert_eq!(p.poll.seqno, Some(12), "the cursor passes bad rows too");
        assert_eq!(p.poll.error, None);
        let state = p.poll.state.expect("state");
        assert_eq!(
            (state.name.as_str(), state.write, state.active_users),
            ("Lobby", false, 3)
        );
        let items = &p.poll.items;
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(
            matches!(&items[0], RoomItem::Post { text, server_id: 5, own: false, profile_name: Some(n), .. } if text == "first" && n == "Poster")
        );
        assert!(matches!(&items[1], RoomItem::Deleted { server_id: 5, .. }));
        assert!(
            matches!(&items[2], RoomItem::Reactions { server_id: 6, reactions, .. } if reactions.get("👍") == Some(&(2, true)))
        );
        // Our own post is marked as ours.
        let mine = room_poll(
            &room(),
            &info(),
            &ok(json!([post(&poster, 11, 13, "me")])),
            &poster.id().to_string(),
        );
        assert!(matches!(
            &mine.poll.items[0],
            RoomItem::Post { own: true, .. }
        ));
    }

    #[test]
    fn refusals_and_odd_replies_say_why_and_keep_the_cursor() {
        let gone = SubResponse::bytes(404, "text/plain", b"Not found");
        let p = room_poll(&room(), &gone, &gone, "15none");
        assert!(
            p.poll.error.as_deref().is_some_and(|e| e.contains("404")),
            "{:?}",
            p.poll.error
        );
        assert_eq!(p.poll.seqno, None, "nothing read: the stored cursor stays");
        let p = room_poll(&room(), &info(), &ok(json!({"not": "a list"})), "15none");
        assert!(p.poll.error.is_some());
        assert!(p.poll.items.is_empty());
        let p = room_poll(
            &room(),
            &info(),
            &SubResponse::bytes(500, "text/html", b"<html>"),
            "15none",
        );
        assert!(p.poll.error.as_deref().is_some_and(|e| e.contains("500")));
        let p = room_poll(&room(), &ok(json!("junk")), &ok(json!([])), "15none");
        assert!(p
            .poll
            .error
            .as_deref()
            .is_some_and(|e| e.contains("bad room info")));
    }

    #[test]
    fn dms_that_do_not_open_are_skipped() {
        let me = IdentityKeys::from_seed(&[2; 32]);
        let them = IdentityKeys::from_seed(&[3; 32]);
        let server = [9u8; 32];
        let (bm, bt) = (
            Blind15Keys::new(&me, &server),
            Blind15Keys::new(&them, &server),
        );
        let wire = encrypt_dm(
            &mut rand::rngs::OsRng,
            &bt,
            bm.id(),
            &prost::Message::encode_to_vec(&text_content("hey", None, 5)),
        )
        .expect("encrypt");
        let row = |id: i64, msg: String| {
            json!({"id": id, "posted_at": 2.0, "expires_at": 3.0, "sender": bt.id().to_string(),
                   "recipient": bm.id().to_string(), "message": msg})
        };
        let inbox = ok(json!([
            row(1, STANDARD.encode(&wire)),
            row(2, "!!!".into()),
            row(3, STANDARD.encode([0u8; 10])),
            42,
        ]));
        let ctx = Ctx {
            server: "http://127.0.0.1:1".parse().expect("url"),
            pubkey: server,
            blind: bm,
            paths: RoomPaths::new("lobby").expect("token"),
        };
        let dms = dm_poll(
            &ctx,
            "http://127.0.0.1:1",
            &inbox,
            &SubResponse::json(304, Value::Null),
        );
        assert_eq!(dms.inbox, Some(3));
        assert_eq!(dms.outbox, None);
        assert_eq!(dms.items.len(), 1);
        assert_eq!(dms.items[0].text, "hey");
        assert_eq!(dms.items[0].peer, bt.id().to_string());
        assert_eq!(dms.items[0].sender_account, them.account_id().to_string());
    }
}
