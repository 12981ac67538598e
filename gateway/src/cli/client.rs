//! The CLI's gRPC client commands (`identity new|restore|list|token|remove|export`, `send`,
//! `listen`): they reach the running daemon on the Unix socket in the data dir with the admin
//! token from `admin.token`, print JSON on stdout, and fail with one line on stderr.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use clap::{Args, Subcommand};
use hyper_util::rt::TokioIo;
use serde_json::json;
use session_proto::err::{ErrorKind, HasKind};
use sessiond_api::client::{looks_like_account_id, Authed, Client};
use sessiond_api::v1::identity_service_client::IdentityServiceClient;
use sessiond_api::v1::message_service_client::MessageServiceClient;
use sessiond_api::v1::{
    event, CreateIdentityRequest, CreateTokenRequest, DeleteIdentityRequest, DeliveryState, Event,
    ExportRecoveryPasswordRequest, RemovedReason, RestoreIdentityRequest, SendMessageRequest,
    SubscribeRequest,
};
use tonic::codegen::http::Uri;
use tonic::transport::Endpoint;
use tonic::Status;
use zeroize::Zeroizing;

use super::run::load_config;
use crate::config::ConfigError;
use crate::daemon::SOCKET_FILE;
use crate::rpc::auth::ADMIN_TOKEN_FILE;

/// Where to find the daemon: shared by every client command.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The daemon's data dir (its socket and admin.token); default as for `sessiond run`.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The configuration file the daemon runs with (only its data_dir is used).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The identity commands that talk to the daemon.
#[derive(Debug, Subcommand)]
pub enum IdentityClientCmd {
    /// Create an identity: prints {name, account_id}; the recovery password goes to stderr once.
    New {
        /// The local name (letters, digits, '.', '_', '-').
        name: String,
    },
    /// Restore an identity from the recovery password read on standard input.
    Restore {
        /// The local name.
        name: String,
    },
    /// List the identities as a JSON array.
    List,
    /// Print a new identity-scoped token: it reaches only this identity.
    Token {
        /// The identity.
        name: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Remove an identity and all its data (keep its recovery password).
    Remove {
        /// The identity.
        name: String,
    },
    /// Print the recovery password of an identity as JSON.
    Export {
        /// The identity.
        name: String,
    },
}

/// Arguments of `sessiond send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The sending identity's name.
    #[arg(long = "from", value_name = "NAME")]
    pub from: String,
    /// The recipient: an Account ID, or the handle of one of the identity's contacts.
    #[arg(long = "to", value_name = "ACCOUNT_ID|HANDLE")]
    pub to: String,
    /// The text.
    pub text: String,
    /// Where the daemon is.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `sessiond listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The identity whose events to print.
    pub name: String,
    /// Print events after this sequence number (0: the whole log).
    #[arg(long, default_value_t = 0)]
    pub from_seq: u64,
    /// The log epoch `--from-seq` belongs to (the `log_epoch` of the printed events, or of
    /// `sessiond identity list`); required with `--from-seq`, so a log that was replaced (the
    /// identity deleted and added again) is refused instead of silently skipping events.
    #[arg(long, default_value_t = 0)]
    pub log_epoch: u64,
    /// Where the daemon is.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The admin token could not be read.
    #[error("cannot read the admin token {}: {source}; is sessiond running with this --data-dir?", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon could not be reached.
    #[error("cannot reach sessiond at {}: {detail}; start it with `sessiond run`", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The daemon answered with an error.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Rpc(Box<Status>),
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
        .chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                vec![' ', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Rpc(Box::new(s))
    }
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        use tonic::Code;
        match self {
            ClientError::Config(e) => e.kind(),
            ClientError::Token { .. } | ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::Rpc(s) => match s.code() {
                Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidInput,
                Code::NotFound => ErrorKind::NotFound,
                Code::AlreadyExists => ErrorKind::AlreadyExists,
                Code::Unauthenticated => ErrorKind::Unauthenticated,
                Code::PermissionDenied => ErrorKind::PermissionDenied,
                Code::DataLoss => ErrorKind::CorruptState,
                _ => ErrorKind::Unavailable,
            },
            ClientError::Stdin(_) => ErrorKind::InvalidInput,
            ClientError::Stdout(_) | ClientError::Runtime(_) => ErrorKind::LocalIo,
        }
    }
}

impl ClientError {
    /// The exit status: 2 for the caller's mistakes, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            ErrorKind::InvalidInput
            | ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::PermissionDenied
            | ErrorKind::Unauthenticated => 2,
            _ => 1,
        }
    }
}

/// Connects to a Unix socket: the connector tonic's channel uses.
#[derive(Clone, Debug)]
struct UnixConnector(PathBuf);

impl tonic::codegen::Service<Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) })
    }
}

/// A connection to the daemon of a data dir, authenticated with its admin token.
#[derive(Debug)]
pub struct Connection {
    client: Client,
}

impl Connection {
    /// Connects over `data_dir/sessiond.sock` with the token from `data_dir/admin.token`.
    pub async fn open(data_dir: &Path) -> Result<Connection, ClientError> {
        let token_path = data_dir.join(ADMIN_TOKEN_FILE);
        let token = std::fs::read_to_string(&token_path).map_err(|source| ClientError::Token {
            path: token_path.clone(),
            source,
        })?;
        let socket = data_dir.join(SOCKET_FILE);
        let connect_err = |detail: String| ClientError::Connect {
            path: socket.clone(),
            detail,
        };
        // The URI is required by the API but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://sessiond.invalid")
            .connect_with_connector(UnixConnector(socket.clone()))
            .await
            .map_err(|e| {
                let mut detail = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    detail = format!("{detail}: {s}");
                    source = s.source();
                }
                connect_err(detail)
            })?;
        let client = Client::new(channel, token.trim()).ok_or_else(|| ClientError::Token {
            path: token_path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the token is not printable ASCII",
            ),
        })?;
        Ok(Connection { client })
    }

    /// An Identities client.
    pub fn identities(&self) -> IdentityServiceClient<Authed> {
        self.client.identities.clone()
    }

    /// A Messages client.
    pub fn messages(&self) -> MessageServiceClient<Authed> {
        self.client.messages.clone()
    }

    /// A Webhooks client.
    pub fn webhooks(
        &self,
    ) -> sessiond_api::v1::webhook_service_client::WebhookServiceClient<Authed> {
        self.client.webhooks.clone()
    }

    /// `to` as an Account ID: itself if it looks like one (or cannot be a handle, which starts
    /// with a letter: the daemon then says what is wrong with it), else the Account ID of the
    /// contact of `identity` whose handle it is (compared case-insensitively).
    pub async fn recipient(&self, identity: &str, to: &str) -> Result<String, ClientError> {
        if looks_like_account_id(to) || !to.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Ok(to.to_owned());
        }
        let contacts = self.client.all_contacts(identity).await?;
        contacts
            .into_iter()
            .find(|c| c.handle.eq_ignore_ascii_case(to))
            .map(|c| c.account_id)
            .ok_or_else(|| {
                ClientError::Rpc(Box::new(Status::not_found(format!(
                    "{to:?} is neither an Account ID nor the handle of a contact of {identity:?}"
                ))))
            })
    }
}

/// A current-thread runtime for one client command.
pub fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// The data dir the client args name.
pub fn data_dir(args: &ClientArgs) -> Result<PathBuf, ClientError> {
    Ok(load_config(args.config.clone(), args.data_dir.clone())?.1)
}

/// Prints one JSON value as a line.
pub fn print(stdout: &mut dyn Write, value: &serde_json::Value) -> Result<(), ClientError> {
    writeln!(stdout, "{value}")
        .and_then(|()| stdout.flush())
        .map_err(ClientError::Stdout)
}

/// Runs an identity client command.
pub fn run_identity(
    cmd: IdentityClientCmd,
    args: &ClientArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), ClientError> {
    let dir = data_dir(args)?;
    // Read stdin before connecting, so a missing password fails without a daemon round trip.
    let password = match &cmd {
        IdentityClientCmd::Restore { .. } => {
            let mut text = Zeroizing::new(String::new());
            stdin
                .take(4096)
                .read_to_string(&mut text)
                .map_err(ClientError::Stdin)?;
            Some(text)
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let conn = Connection::open(&dir).await?;
        let mut ids = conn.identities();
        match cmd {
            IdentityClientCmd::New { name } => {
                let r = ids
                    .create_identity(CreateIdentityRequest { name })
                    .await?
                    .into_inner();
                let id = r.identity.unwrap_or_default();
                let _ = writeln!(
                    stderr,
                    "recovery password (shown once; anyone who has it has the account): {}",
                    r.recovery_password
                );
                print(
                    stdout,
                    &json!({"name": id.name, "account_id": id.account_id}),
                )
            }
            IdentityClientCmd::Restore { name } => {
                let recovery_password = password
                    .as_deref()
                    .map(|p| p.trim().to_owned())
                    .unwrap_or_default();
                let r = ids
                    .restore_identity(RestoreIdentityRequest {
                        name,
                        recovery_password,
                    })
                    .await?
                    .into_inner();
                let id = r.identity.unwrap_or_default();
                print(
                    stdout,
                    &json!({"name": id.name, "account_id": id.account_id}),
                )
            }
            IdentityClientCmd::List => {
                let identities = conn.client.all_identities().await?;
                let list: Vec<_> = identities
                    .into_iter()
                    .map(|i| {
                        json!({"name": i.name, "account_id": i.account_id,
                               "created_at_ms": i.created_at_ms, "last_seq": i.last_seq,
                               "log_epoch": i.log_epoch})
                    })
                    .collect();
                print(stdout, &serde_json::Value::Array(list))
            }
            IdentityClientCmd::Token { name, label } => {
                let r = ids
                    .create_token(CreateTokenRequest { name, label })
                    .await?
                    .into_inner();
                print(stdout, &json!({"name": r.name, "token": r.token}))
            }
            IdentityClientCmd::Remove { name } => {
                let r = ids
                    .delete_identity(DeleteIdentityRequest { name: name.clone() })
                    .await?
                    .into_inner();
                print(
                    stdout,
                    &json!({"name": name, "account_id": r.account_id, "removed": true}),
                )
            }
            IdentityClientCmd::Export { name } => {
                let r = ids
                    .export_recovery_password(ExportRecoveryPasswordRequest { name: name.clone() })
                    .await?
                    .into_inner();
                print(
                    stdout,
                    &json!({"name": name, "recovery_password": r.recovery_password}),
                )
            }
        }
    })
}

/// Runs `sessiond send`.
pub fn run_send(args: SendArgs, stdout: &mut dyn Write) -> Result<(), ClientError> {
    let dir = data_dir(&args.client)?;
    runtime()?.block_on(async {
        let conn = Connection::open(&dir).await?;
        let recipient = conn.recipient(&args.from, &args.to).await?;
        let r = conn
            .messages()
            .send_message(SendMessageRequest {
                identity: args.from,
                recipient,
                text: args.text,
                ..SendMessageRequest::default()
            })
            .await?
            .into_inner();
        print(
            stdout,
            &json!({"message_id": r.message_id, "seq": r.seq,
                    "state": state_name(r.state), "sent_at_ms": r.sent_at_ms}),
        )
    })
}

/// Runs `sessiond listen`: one JSON line per event until the daemon closes the stream.
pub fn run_listen(args: ListenArgs, stdout: &mut dyn Write) -> Result<(), ClientError> {
    let dir = data_dir(&args.client)?;
    runtime()?.block_on(async {
        let conn = Connection::open(&dir).await?;
        let mut stream = conn
            .messages()
            .subscribe(SubscribeRequest {
                identity: args.name,
                from_seq: args.from_seq,
                typing: false,
                log_epoch: args.log_epoch,
            })
            .await?
            .into_inner();
        while let Some(resp) = stream.message().await? {
            let Some(event) = resp.event else { continue };
            let mut line = event_json(&event);
            line["log_epoch"] = json!(resp.log_epoch);
            print(stdout, &line)?;
        }
        Ok(())
    })
}

fn state_name(state: i32) -> &'static str {
    match DeliveryState::try_from(state) {
        Ok(DeliveryState::Queued) => "queued",
        Ok(DeliveryState::Sent) => "sent",
        Ok(DeliveryState::Failed) => "failed",
        Ok(DeliveryState::Read) => "read",
        _ => "unspecified",
    }
}

fn attachment_json(a: &sessiond_api::v1::Attachment) -> serde_json::Value {
    json!({"id": a.id, "file_name": a.file_name, "content_type": a.content_type, "size": a.size,
           "state": a.state().as_str_name(), "reason": a.reason, "local_url": a.local_url})
}

/// An event as the JSON line `sessiond listen` prints.
pub fn event_json(e: &Event) -> serde_json::Value {
    let mut v = json!({"seq": e.seq, "recorded_at_ms": e.recorded_at_ms, "identity": e.identity});
    let extra = match &e.kind {
        Some(event::Kind::Incoming(m)) => json!({
            "type": "incoming", "sender": m.sender, "text": m.text, "sent_at_ms": m.sent_at_ms,
            "received_at_ms": m.received_at_ms, "hash": m.hash,
            "sender_profile_name": m.sender_profile_name, "conversation_id": m.conversation_id,
            "sender_profile_name": m.sender_profile_name,
            "attachments": m.attachments.iter().map(attachment_json).collect::<Vec<_>>(),
        }),
        Some(event::Kind::Outgoing(m)) => json!({
            "type": "outgoing", "message_id": m.message_id, "recipient": m.recipient,
            "text": m.text, "sent_at_ms": m.sent_at_ms, "state": "queued",
        }),
        Some(event::Kind::Delivery(d)) => json!({
            "type": "delivery", "message_id": d.message_id, "recipient": d.recipient,
            "state": state_name(d.state), "hash": d.hash, "reason": d.reason,
            "attempts": d.attempts,
        }),
        Some(event::Kind::Typing(t)) => {
            json!({"type": "typing", "peer": t.peer, "typing": t.typing})
        }
        Some(event::Kind::Conversation(c)) => {
            let c = c.conversation.clone().unwrap_or_default();
            json!({"type": "conversation", "account_id": c.account_id,
                   "conversation_id": c.conversation_id, "handle": c.handle,
                   "display_name": c.display_name, "accepted": c.accepted, "left": c.left,
                   "read_seq": c.read_seq})
        }
        Some(event::Kind::RoomMessageDeleted(d)) => json!({
            "type": "room_message_deleted", "conversation_id": d.conversation_id,
            "server_message_id": d.server_message_id,
        }),
        Some(event::Kind::RoomReactions(r)) => {
            let reactions: Vec<_> = r
                .reactions
                .iter()
                .map(|x| json!({"emoji": x.emoji, "count": x.count, "you": x.you}))
                .collect();
            json!({"type": "room_reactions", "conversation_id": r.conversation_id,
                   "server_message_id": r.server_message_id, "reactions": reactions})
        }
        Some(event::Kind::Group(g)) => json!({
            "type": "group", "group_id": g.group_id, "name": g.name, "status": g.status,
            "added": g.added, "removed": g.removed, "promoted": g.promoted,
            "inviter": g.inviter, "renamed": g.renamed,
        }),
        Some(event::Kind::Unreadable(u)) => json!({
            "type": "unreadable", "hash": u.hash, "received_at_ms": u.received_at_ms,
            "reason": u.reason,
        }),
        Some(event::Kind::Reaction(r)) => {
            let t = r.target.clone().unwrap_or_default();
            json!({"type": "reaction", "conversation": r.conversation, "author": r.author,
                   "target_sent_at_ms": t.sent_at_ms, "target_author": t.author,
                   "emoji": r.emoji, "removed": r.removed})
        }
        Some(event::Kind::Removed(r)) => {
            let m = r.message.clone().unwrap_or_default();
            let reason = match RemovedReason::try_from(r.reason) {
                Ok(RemovedReason::Expired) => "expired",
                Ok(RemovedReason::Deleted) => "deleted",
                _ => "unsent",
            };
            json!({"type": "removed", "conversation": r.conversation, "removed_seq": r.removed_seq,
                   "sent_at_ms": m.sent_at_ms, "author": m.author, "reason": reason})
        }
        Some(event::Kind::Disappearing(d)) => {
            let t = d.disappearing.unwrap_or_default();
            json!({"type": "disappearing", "conversation": d.conversation, "author": d.author,
                   "mode": t.mode, "seconds": t.seconds})
        }
        Some(event::Kind::Notice(n)) => json!({
            "type": "notice", "conversation": n.conversation, "author": n.author,
            "kind": n.kind, "reason": n.reason,
        }),
        Some(event::Kind::Attachment(a)) => {
            let a = a.attachment.clone().unwrap_or_default();
            json!({"type": "attachment", "id": a.id, "conversation_id": a.conversation_id,
                   "file_name": a.file_name, "size": a.size, "state": a.state().as_str_name(),
                   "reason": a.reason, "local_url": a.local_url})
        }
        None => json!({"type": "unknown"}),
    };
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v
}
