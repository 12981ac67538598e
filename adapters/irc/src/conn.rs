//! One IRC connection: the read loop, the bounded outbound queue and its writer task, flood
//! control, the registration timeout, and the dispatch of each line to its handler.
//!
//! A connection is one task (this module's [`run`]) plus a writer task that owns the write half
//! of the socket and, once registered, a subscription task and a read-mark task (see
//! [`session`]). The connection task processes one thing at a time, a client line or a daemon
//! event, so a message this connection sent is recorded before its own event comes back.

mod channels;
mod chat;
mod control;
mod history;
mod interact;
mod query;
mod register;
mod rooms;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_api::client::Connector;
use sessiond_api::v1::Event;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::cap::CapSet;
use crate::command;
use crate::config::IrcConfig;
use crate::flood::TokenBucket;
use crate::line::{LineError, LineReader, Message};
use crate::numeric::*;

pub(crate) use session::Session;

/// How long a closing connection keeps reading (and dropping) what the client sends.
const LINGER: Duration = Duration::from_secs(1);

/// What every connection shares: the config and the channel to the daemon.
#[derive(Debug)]
pub(crate) struct Server {
    /// The `[irc]` settings.
    pub config: IrcConfig,
    /// The daemon's gRPC API: a channel per connection, or one they share.
    pub api: Connector,
    /// When the server started, for 003.
    pub started: String,
}

/// Why a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Close {
    /// Send `ERROR :Closing link: <reason>` and close.
    Quit(String),
    /// The client does not read: drop what is queued, close.
    SendQ,
    /// The socket is gone.
    Gone,
}

/// One line for the writer, and the conversation read mark it carries (written → seen).
#[derive(Debug)]
pub(crate) struct Out {
    line: String,
    mark: Option<(String, u64)>,
}

/// The sending side of a connection's bounded outbound queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Out>,
    timeout: Duration,
}

impl Outbox {
    /// Queues a read mark alone: noted once every line queued before it has been written.
    pub async fn push_mark(&self, peer: String, seq: u64) -> Result<(), Close> {
        let out = Out {
            line: String::new(),
            mark: Some((peer, seq)),
        };
        match tokio::time::timeout(self.timeout, self.tx.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close::Gone),
            Err(_) => Err(Close::SendQ),
        }
    }

    /// Queues a line; waits at most the send-queue timeout for room, else the client is not
    /// reading and the connection ends with [`Close::SendQ`].
    pub async fn push(&self, msg: &Message, mark: Option<(String, u64)>) -> Result<(), Close> {
        let out = Out {
            line: msg.to_line(),
            mark,
        };
        match self.tx.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Close::Gone),
            Err(mpsc::error::TrySendError::Full(out)) => {
                match tokio::time::timeout(self.timeout, self.tx.send(out)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Close::Gone),
                    Err(_) => Err(Close::SendQ),
                }
            }
        }
    }
}

/// Conversation read marks waiting to be told to the daemon (Conversations.MarkRead), newest
/// seq per Account ID. The writer notes a mark once the line is written to the socket; the
/// session's mark task sends them. A std mutex: nothing awaits while holding it.
#[derive(Debug, Default)]
pub(crate) struct ReadMarks {
    pending: Mutex<HashMap<String, u64>>,
    notify: Notify,
    closed: AtomicBool,
}

impl ReadMarks {
    fn note(&self, peer: String, seq: u64) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let e = pending.entry(peer).or_insert(seq);
            *e = (*e).max(seq);
        }
        self.notify.notify_one();
    }

    fn take(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// The state of SASL PLAIN.
#[derive(Debug, Default)]
enum Sasl {
    /// No exchange in progress.
    #[default]
    Idle,
    /// `AUTHENTICATE PLAIN` was accepted; base64 chunks so far.
    Collecting(String),
}

/// The connection's registration and protocol state; [`Session`] once registered.
pub(crate) struct Conn {
    srv: Arc<Server>,
    out: Outbox,
    marks: Arc<ReadMarks>,
    /// The peer address, for logs.
    peer: String,
    caps: CapSet,
    /// CAP LS/REQ was sent and CAP END not yet: registration waits.
    cap_negotiating: bool,
    nick: Option<String>,
    user: Option<String>,
    realname: String,
    /// The PASS argument (a token, or `identity:token`). Never logged.
    pass: Option<String>,
    sasl: Sasl,
    /// A login made by SASL before registration completed.
    sasl_login: Option<sessiond_api::client::Login>,
    /// Failed SASL attempts so far.
    sasl_failures: u8,
    flood: TokenBucket,
    session: Option<Session>,
    batch_counter: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("nick", &self.nick)
            .field("registered", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs one connection until the client leaves, misbehaves or `shutdown` turns true.
pub(crate) async fn run<S>(
    srv: Arc<Server>,
    stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer_half) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(srv.config.sendq_lines.max(1));
    let (abort_tx, abort_rx) = watch::channel(false);
    let marks = Arc::new(ReadMarks::default());
    let stall = srv.config.sendq_timeout();
    let writer = tokio::spawn(write_loop(writer_half, rx, marks.clone(), abort_rx, stall));
    let now = Instant::now();
    let mut conn = Conn {
        out: Outbox {
            tx,
            timeout: srv.config.sendq_timeout(),
        },
        marks: marks.clone(),
        peer: peer.to_string(),
        caps: CapSet::default(),
        cap_negotiating: false,
        nick: None,
        user: None,
        realname: String::new(),
        pass: None,
        sasl: Sasl::Idle,
        sasl_login: None,
        sasl_failures: 0,
        flood: TokenBucket::new(
            srv.config.flood_burst,
            srv.config.flood_lines_per_sec,
            now.into_std(),
        ),
        session: None,
        batch_counter: 0,
        srv,
    };
    let registration_deadline = now + conn.srv.config.registration_timeout();
    let mut lines = LineReader::default();
    let close = 'conn: loop {
        // Everything already buffered first: one read may carry many lines. Events that came
        // meanwhile are handled between lines, so the subscription never backs up.
        while let Some(line) = lines.next_line() {
            if let Err(close) = conn.handle_raw(line).await {
                break 'conn close;
            }
            while let Some(event) = session::ready_event(&mut conn.session) {
                if let Err(close) = conn.handle_event(event).await {
                    break 'conn close;
                }
            }
        }
        let registered = conn.session.is_some();
        tokio::select! {
            read = reader.read_buf(lines.buffer()) => match read {
                Ok(0) | Err(_) => break Close::Gone,
                Ok(_) => {}
            },
            event = session::next_event(&mut conn.session), if registered => {
                let result = match event {
                    Some(event) => conn.handle_event(event).await,
                    None if conn.session.as_ref().is_some_and(|s| s.overflowed()) => {
                        Err(Close::SendQ)
                    }
                    None => Err(Close::Quit("the session with the daemon ended".into())),
                };
                if let Err(close) = result {
                    break close;
                }
            }
            _ = tokio::time::sleep_until(registration_deadline), if !registered => {
                break Close::Quit("Registration timed out".into());
            }
            _ = stopping(&mut shutdown) => {
                break Close::Quit("the server is shutting down".into());
            }
        }
    };
    match &close {
        Close::Quit(reason) => {
            let _ = conn
                .out
                .push(
                    &Message::new("ERROR", vec![format!("Closing link: {reason}")]),
                    None,
                )
                .await;
            debug!(peer = %conn.peer, reason = %reason, "closing the connection");
        }
        Close::SendQ => {
            info!(peer = %conn.peer, "client not reading (SendQ exceeded): dropped");
            let _ = abort_tx.send(true);
        }
        Close::Gone => debug!(peer = %conn.peer, "client went away"),
    }
    let session = conn.session.take();
    drop(conn);
    // The writer drains what is queued (each write bounded by the stall timeout), then closes.
    let _ = writer.await;
    if let Close::Quit(_) = close {
        // A lingering close: read (and drop) what the client still sends, briefly, so that the
        // socket is not closed with unread input, which would reset the connection and could
        // lose the ERROR line on its way.
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    marks.close();
    if let Some(session) = session {
        session.finish().await;
    }
}

/// Resolves when the server stops (or is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Writes queued lines to the socket; notes read marks of written lines. Ends when the queue is
/// closed and drained, when a write stalls longer than `stall`, or on abort (SendQ exceeded).
async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Out>,
    marks: Arc<ReadMarks>,
    abort: watch::Receiver<bool>,
    stall: Duration,
) {
    let aborted = async move {
        let mut abort = abort;
        let sender_gone = abort.wait_for(|a| *a).await.is_err();
        if sender_gone {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(aborted);
    let mut was_aborted = false;
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut aborted => { was_aborted = true; break; }
            item = rx.recv() => item,
        };
        let Some(out) = item else { break };
        if out.line.is_empty() {
            // A mark alone: everything queued before it has been written.
            if let Some((peer, seq)) = out.mark {
                marks.note(peer, seq);
            }
            continue;
        }
        let written = tokio::select! {
            biased;
            _ = &mut aborted => { was_aborted = true; break; }
            r = tokio::time::timeout(stall, w.write_all(out.line.as_bytes())) => matches!(r, Ok(Ok(()))),
        };
        if !written {
            break;
        }
        if let Some((peer, seq)) = out.mark {
            marks.note(peer, seq);
        }
    }
    if was_aborted {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            w.write_all(b"\r\nERROR :Closing link: SendQ exceeded\r\n"),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
}

impl Conn {
    /// The client's nick, or `*` before it has one.
    fn me(&self) -> String {
        self.nick.clone().unwrap_or_else(|| "*".to_owned())
    }

    /// The client's own `nick!user@host`.
    fn my_prefix(&self) -> String {
        let user = match &self.session {
            Some(s) => s.identity.clone(),
            None => self.user.clone().unwrap_or_else(|| "*".into()),
        };
        format!("{}!{}@{}", self.me(), user, self.srv.config.server_name)
    }

    /// `root!root@<server>`.
    fn root_prefix(&self) -> String {
        format!(
            "{0}!{0}@{1}",
            crate::directory::ROOT,
            self.srv.config.server_name
        )
    }

    /// Queues a message.
    async fn send(&self, msg: Message) -> Result<(), Close> {
        self.out.push(&msg, None).await
    }

    /// Queues a numeric reply from the server: `:<server> <code> <nick> <params…>`.
    async fn numeric(&self, code: &str, params: &[&str]) -> Result<(), Close> {
        let mut all = vec![self.me()];
        all.extend(params.iter().map(|p| (*p).to_owned()));
        self.send(Message::new(code, all).with_source(self.srv.config.server_name.clone()))
            .await
    }

    /// Queues a `FAIL <command> <code> [context…] :<text>` standard reply.
    async fn fail(
        &self,
        command: &str,
        code: &str,
        context: &[&str],
        text: &str,
    ) -> Result<(), Close> {
        let mut params = vec![command.to_owned(), code.to_owned()];
        params.extend(context.iter().map(|c| (*c).to_owned()));
        params.push(text.to_owned());
        self.send(Message::new("FAIL", params).with_source(self.srv.config.server_name.clone()))
            .await
    }

    /// A NOTICE from root to the client.
    async fn root_notice(&self, text: &str) -> Result<(), Close> {
        self.send(
            Message::new("NOTICE", vec![self.me(), text.to_owned()])
                .with_source(self.root_prefix()),
        )
        .await
    }

    /// A fresh batch id for this connection.
    fn next_batch(&mut self) -> String {
        self.batch_counter += 1;
        format!("b{}", self.batch_counter)
    }

    /// One raw line: flood control, framing errors, then [`Conn::handle`].
    async fn handle_raw(&mut self, line: Result<Vec<u8>, LineError>) -> Result<(), Close> {
        if !self.flood.take(Instant::now().into_std()) {
            return Err(Close::Quit("Excess Flood".into()));
        }
        let msg = match line.and_then(|l| Message::parse(&l)) {
            Ok(msg) => msg,
            Err(LineError::TooLong) => {
                return self
                    .numeric(ERR_INPUTTOOLONG, &["Input line was too long"])
                    .await;
            }
            Err(LineError::BadUtf8 { command }) => {
                let command = command.unwrap_or_else(|| "*".into());
                return self
                    .fail(
                        &command,
                        "INVALID_UTF8",
                        &[],
                        "Message rejected: it is not valid UTF-8 (this server is UTF8ONLY)",
                    )
                    .await;
            }
            Err(LineError::NoCommand) => {
                return self
                    .numeric(ERR_UNKNOWNCOMMAND, &["*", "Line without a command"])
                    .await;
            }
        };
        self.handle(msg).await
    }

    /// One parsed message: the command table, then the handler.
    async fn handle(&mut self, msg: Message) -> Result<(), Close> {
        let Some(spec) = command::lookup(&msg.command) else {
            return self
                .numeric(ERR_UNKNOWNCOMMAND, &[&msg.command, "Unknown command"])
                .await;
        };
        if self.session.is_none() && !spec.before_registration {
            if spec.name == "NOTICE" {
                // RFC 2812 §3.3.2: a NOTICE never gets an automatic reply, errors included.
                return Ok(());
            }
            return self
                .numeric(ERR_NOTREGISTERED, &["You have not registered"])
                .await;
        }
        if msg.params.len() < spec.min_params {
            return self
                .numeric(ERR_NEEDMOREPARAMS, &[spec.name, "Not enough parameters"])
                .await;
        }
        match spec.name {
            "AUTHENTICATE" => self.authenticate(&msg).await,
            "AWAY" => self.away(&msg).await,
            "CAP" => self.cap(&msg).await,
            "CHATHISTORY" => self.chathistory(&msg).await,
            "INVITE" => {
                let (nick, chan) = (
                    msg.param(0).unwrap_or_default(),
                    msg.param(1).unwrap_or_default(),
                );
                if !self
                    .channel_member_op(channels::MemberOp::Invite, chan, nick)
                    .await?
                {
                    self.numeric(ERR_NOSUCHCHANNEL, &[chan, "No such channel"])
                        .await?;
                }
                Ok(())
            }
            "ISON" => self.ison(&msg).await,
            "JOIN" => self.join(&msg).await,
            "KICK" => {
                let (chan, nick) = (
                    msg.param(0).unwrap_or_default(),
                    msg.param(1).unwrap_or_default(),
                );
                if !self
                    .channel_member_op(channels::MemberOp::Kick, chan, nick)
                    .await?
                {
                    self.numeric(ERR_NOSUCHCHANNEL, &[chan, "No such channel"])
                        .await?;
                }
                Ok(())
            }
            "LIST" => self.list().await,
            "LUSERS" => self.lusers().await,
            "MOTD" => self.motd().await,
            "MARKREAD" => self.markread(&msg).await,
            "MODE" => self.mode(&msg).await,
            "NAMES" => self.names(&msg).await,
            "NICK" => self.nick(&msg).await,
            "NOTICE" | "PRIVMSG" => self.privmsg(&msg).await,
            "PART" => self.part(&msg).await,
            "PASS" => self.pass(&msg).await,
            "PING" => {
                let token = msg.params.first().cloned().unwrap_or_default();
                let server = self.srv.config.server_name.clone();
                self.send(Message::new("PONG", vec![server.clone(), token]).with_source(server))
                    .await
            }
            "PONG" => Ok(()),
            "QUIT" => Err(Close::Quit(match msg.param(0) {
                Some(reason) if !reason.is_empty() => format!("Quit: {reason}"),
                _ => "Quit".into(),
            })),
            "REDACT" => self.redact(&msg).await,
            "TAGMSG" => self.tagmsg(&msg).await,
            "TOPIC" => self.topic(&msg).await,
            "USER" => self.user(&msg).await,
            "USERHOST" => self.userhost(&msg).await,
            "VERSION" => self.version().await,
            "WHO" => self.who(&msg).await,
            "WHOIS" => self.whois(&msg).await,
            other => {
                // The table and this match list the same commands; a command in the table
                // without a handler is answered like an unknown one rather than panicking.
                self.numeric(ERR_UNKNOWNCOMMAND, &[other, "Unknown command"])
                    .await
            }
        }
    }

    /// One event from the daemon.
    async fn handle_event(&mut self, event: Event) -> Result<(), Close> {
        self.deliver_event(event).await
    }
}

#[cfg(test)]
mod tests;
